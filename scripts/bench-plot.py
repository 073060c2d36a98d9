#!/usr/bin/env python3
"""Throughput and peak RSS against concurrency, recarch beside rclone, from the cold-process
benchmark: writes docs/throughput-vs-concurrency.svg (plain SVG, no plotting library needed).

    scripts/bench-plot.py [--json SWEEP.json] [--levels 1,2,4,8] [--runs 3] [-- more bench-cold.py args]

Without --json it first runs `scripts/bench-cold.py --stores local --sweep LEVELS --json ...`
(recarch at concurrency C beside `rclone copy --transfers C`, fresh processes, same iterations).
Points are medians; the bars span min to max.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GIB = 1 << 30
COLORS = {"recarch": "#1f77b4", "rclone": "#ff7f0e", "rclone+sha": "#d62728", "floor": "#7f7f7f"}


def series(data, tool, metric):
    """[(concurrency, min, median, max)] of `metric` for `tool` over the local results."""
    out = []
    total = data["count"] * data["size"] / GIB
    for r in data["results"]:
        if r["store"] != "local" or not r["runs"].get(tool):
            continue
        vals = [total / m["wall"] if metric == "rate" else m["rss"] for m in r["runs"][tool]]
        out.append((r["concurrency"], min(vals), statistics.median(vals), max(vals)))
    return sorted(out)


def panel(parts, ox, oy, w, h, title, unit, lines, levels):
    ymax = max(p[3] for _, pts in lines for p in pts) * 1.1 or 1
    x = lambda c: ox + 50 + levels.index(c) * (w - 70) / max(1, len(levels) - 1)
    y = lambda v: oy + h - 30 - v / ymax * (h - 60)
    parts.append(f'<text x="{ox + 50}" y="{oy + 16}" font-weight="bold">{title}</text>')
    parts.append(f'<line x1="{ox + 50}" y1="{oy + h - 30}" x2="{ox + w - 20}" y2="{oy + h - 30}" stroke="black"/>')
    parts.append(f'<line x1="{ox + 50}" y1="{oy + 30}" x2="{ox + 50}" y2="{oy + h - 30}" stroke="black"/>')
    parts.append(f'<text x="{ox + 5}" y="{oy + 26}">{unit}</text>')
    parts.append(f'<text x="{ox + w / 2 - 40}" y="{oy + h - 4}">concurrency</text>')
    for c in levels:
        parts.append(f'<text x="{x(c) - 4}" y="{oy + h - 14}">{c}</text>')
    for k in range(6):
        v = ymax * k / 5
        parts.append(f'<text x="{ox + 8}" y="{y(v) + 4}">{v:.1f}</text>')
        parts.append(f'<line x1="{ox + 50}" y1="{y(v):.1f}" x2="{ox + w - 20}" y2="{y(v):.1f}" stroke="#eee"/>')
    for name, pts in lines:
        color = COLORS.get(name, "#2ca02c")
        parts.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                     % (color, " ".join(f"{x(c):.1f},{y(med):.1f}" for c, _, med, _ in pts)))
        for c, lo, med, hi in pts:
            parts.append(f'<line x1="{x(c):.1f}" y1="{y(lo):.1f}" x2="{x(c):.1f}" y2="{y(hi):.1f}" stroke="{color}"/>')
            parts.append(f'<circle cx="{x(c):.1f}" cy="{y(med):.1f}" r="3" fill="{color}"/>')


def svg(data, path):
    tools = [t for t in ("recarch", "rclone", "rclone+sha") if series(data, t, "rate")]
    extra = [t for r in data["results"] for t in r["runs"] if t not in tools and t not in ("floor", "floor-2core")]
    tools += list(dict.fromkeys(extra))
    levels = sorted({r["concurrency"] for r in data["results"] if r["store"] == "local"})
    w, h = 900, 380
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h + 60}" font-family="sans-serif" '
             f'font-size="12">', f'<rect width="{w}" height="{h + 60}" fill="white"/>']
    panel(parts, 0, 0, w / 2, h, "throughput (cold process, local disk)", "GiB/s",
          [(t, series(data, t, "rate")) for t in tools], levels)
    panel(parts, w / 2, 0, w / 2, h, "peak RSS of the process", "MiB",
          [(t, series(data, t, "rss")) for t in tools], levels)
    for i, t in enumerate(tools):
        parts.append(f'<text x="{60 + i * 200}" y="{h + 30}" fill="{COLORS.get(t, "#2ca02c")}">{t}</text>')
    m = data.get("machine", {})
    parts.append(f'<text x="60" y="{h + 50}" fill="#555">{data["count"]} x {data["size"] >> 20} MiB, '
                 f'{m.get("nproc")} vCPUs {m.get("cpu", "")}, median and min-max of the runs</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--levels", default="1,2,4,8")
    ap.add_argument("--runs", default="3")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "throughput-vs-concurrency.svg")
    ap.add_argument("rest", nargs="*")
    args = ap.parse_args()
    path = args.json
    if path is None:
        path = Path(tempfile.mkdtemp()) / "sweep.json"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "bench-cold.py"), "--stores", "local", "--sweep",
                        args.levels, "--runs", args.runs, "--no-floor", "--json", str(path), *args.rest], check=True)
    svg(json.loads(path.read_text()), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
