#!/usr/bin/env python3
"""Throughput vs concurrency: runs the throughput bench at several concurrency levels and
writes docs/throughput-vs-concurrency.svg (plain SVG, no plotting library needed).

    scripts/bench-plot.py [--count N] [--size BYTES] [--levels 1,2,4,8,16]
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(count, size, concurrency):
    out = subprocess.run(
        ["cargo", "bench", "--quiet", "--bench", "throughput", "--", "--count", str(count), "--size", str(size),
         "--concurrency", str(concurrency), "--delta-items", "1000"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    sys.stdout.write(out)
    recarch = float(re.search(r"recarch:\s+([0-9.]+) GiB/s", out).group(1))
    rclone = re.search(r"rclone:\s+([0-9.]+) GiB/s", out)
    sha2 = float(re.search(r"GiB/s on one core, ([0-9.]+) GiB/s on two", out).group(1))
    floor = float(re.search(r"floor:\s+([0-9.]+) GiB/s", out).group(1))
    return recarch, float(rclone.group(1)) if rclone else None, sha2, floor


def svg(levels, rows, path):
    w, h, left, bottom, top, right = 700, 400, 70, 50, 30, 230
    ymax = max(max(v or 0 for v in r) for r in rows) * 1.1
    target = 0.6 * sum(r[2] for r in rows) / len(rows)
    x = lambda i: left + i * (w - left - right) / max(1, len(levels) - 1)
    y = lambda v: h - bottom - v / ymax * (h - top - bottom)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{w / 2 - 100}" y="18">archive throughput vs concurrency</text>',
             f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
             f'<text x="{w / 2 - 60}" y="{h - 12}">downloads in flight</text>',
             f'<text x="{left - 45}" y="{top - 12}">GiB/s</text>']
    for i, level in enumerate(levels):
        parts.append(f'<text x="{x(i) - 4}" y="{h - bottom + 16}">{level}</text>')
    for k in range(6):
        v = ymax * k / 5
        parts.append(f'<text x="{left - 40}" y="{y(v) + 4}">{v:.2f}</text>')
        parts.append(f'<line x1="{left}" y1="{y(v)}" x2="{w - right}" y2="{y(v)}" stroke="#ddd"/>')
    series = [("recarch (hash, write, fsync)", 0, "#1f77b4"), ("rclone copy --transfers 4", 1, "#ff7f0e"),
              ("SHA-256 limit, 2 cores", 2, "#2ca02c"), ("floor: TCP+hash+write+fsync", 3, "#7f7f7f")]
    for n, (name, col, color) in enumerate(series):
        pts = [(x(i), y(r[col])) for i, r in enumerate(rows) if r[col] is not None]
        if not pts:
            continue
        parts.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                     % (color, " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)))
        parts.append(f'<text x="{w - right + 10}" y="{top + 20 + n * 18}" fill="{color}">{name}</text>')
    parts.append(f'<line x1="{left}" y1="{y(target):.1f}" x2="{w - right}" y2="{y(target):.1f}" stroke="#2ca02c" '
                 f'stroke-dasharray="6,4"/>')
    parts.append(f'<text x="{w - right + 10}" y="{top + 20 + len(series) * 18}" fill="#2ca02c">60 % of the SHA-256 limit</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=32)
    p.add_argument("--size", type=int, default=32 << 20)
    p.add_argument("--levels", default="1,2,4,8,16")
    a = p.parse_args()
    levels = [int(v) for v in a.levels.split(",")]
    rows = [measure(a.count, a.size, c) for c in levels]
    out = ROOT / "docs" / "throughput-vs-concurrency.svg"
    svg(levels, rows, out)
    print(f"wrote {out}")
    print("| concurrency | recarch GiB/s | floor GiB/s | recarch / floor | rclone GiB/s | SHA-256 limit, 2 cores, GiB/s |")
    for level, (r, c, s, f) in zip(levels, rows):
        print(f"| {level} | {r:.3f} | {f:.3f} | {r / f:.2f} | {c if c is not None else '-'} | {s:.3f} |")


if __name__ == "__main__":
    main()
