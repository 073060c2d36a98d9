//! Finding and producing, measured as users run them: the built binary in a fresh process per
//! pass.
//!
//! `cargo bench --bench find_export [-- --items N[,N...] --segment E --stores local,seaweedfs
//! --recordings K --size MIB --size-kib KIB --runs R --recarch PATH --dir PATH]`
//!
//! - **ls**: writes `N` catalog entries (recordings of 100 organizers, one every 5 minutes of
//!   `createdDateTime`) as segments of `E` entries each (default 100: a run writes one per
//!   batch of settled pages, so a real catalog is many small segments) through
//!   `recarch_store`, on local disk and, when `scripts/emulators.sh` runs SeaweedFS
//!   (`RECARCH_TEST_SEAWEEDFS_*`), on S3. Several sizes, ascending, grow one catalog. Then
//!   `recarch ls --json --from D --to D+1day` (a day's window: 288 items) and `recarch ls
//!   --json` (everything) run `R` times each; wall time and peak RSS, min and median.
//! - **export**: writes `K` recordings of `MIB` MiB of random bytes (default 16 x 64 MiB)
//!   with manifests and a catalog into a local-disk archive, then, `R` times in alternating
//!   order (`--size-kib` sizes them in KiB instead, for productions of many small documents),
//!   `recarch export --out DIR` against the baseline `cp` of the same blobs, then
//!   `sha256sum`, then `md5sum` of the copies (and the same with `sync` after `cp`, since the
//!   export makes its files durable). Everything is in the page cache; wall and CPU time.
//!
//! Under `cargo test` it runs at a smoke size. Results: `docs/benchmarks.md`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use recarch_store::{Archive, CatalogEntry, ContentRef, Kind, Manifest, OrganizerId, Sha256Digest, ShardId};
use sha2::{Digest, Sha256};

mod common;

/// Organizers the items are spread over.
const ORGANIZERS: u64 = 100;

struct Args {
    items: Vec<u64>,
    segment: u64,
    stores: Vec<String>,
    recordings: u64,
    size_mib: u64,
    size_kib: Option<u64>,
    runs: usize,
    recarch: PathBuf,
    dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let (raw, benching) = common::command_line();
    let mut args = Args {
        items: if benching { vec![10_000, 100_000] } else { vec![500] },
        segment: 100,
        stores: vec!["local".into(), "seaweedfs".into()],
        recordings: if benching { 16 } else { 3 },
        size_mib: if benching { 64 } else { 1 },
        size_kib: None,
        runs: if benching { 3 } else { 1 },
        recarch: PathBuf::from(env!("CARGO_BIN_EXE_recarch")),
        dir: None,
    };
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--items" => {
                let v = common::value(&mut it, "--items")?;
                args.items = v
                    .split(',')
                    .map(|n| n.trim().parse::<u64>().map_err(|e| format!("--items {n}: {e}")))
                    .collect::<Result<_, _>>()?;
                args.items.sort_unstable();
            }
            "--segment" => args.segment = common::number(&mut it, "--segment")?.max(1),
            "--stores" => {
                args.stores = common::value(&mut it, "--stores")?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "--recordings" => args.recordings = common::number(&mut it, "--recordings")?,
            "--size" => args.size_mib = common::number(&mut it, "--size")?,
            "--size-kib" => args.size_kib = Some(common::number(&mut it, "--size-kib")?),
            "--runs" => args.runs = common::number(&mut it, "--runs")?.max(1) as usize,
            "--recarch" => args.recarch = PathBuf::from(common::value(&mut it, "--recarch")?),
            "--dir" => args.dir = Some(PathBuf::from(common::value(&mut it, "--dir")?)),
            _ => {}
        }
    }
    Ok(args)
}

fn main() {
    let args = common::args_or_exit(parse_args);
    let (work, _temp) = common::work_dir(args.dir.as_deref(), "recarch-bench-find-");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("recarch: {}", args.recarch.display());
    for store in &args.stores {
        let Some((url, options)) = store_for(store, &work) else {
            println!("ls on {store}: skipped (no emulator: scripts/emulators.sh start DIR, then source DIR/env)");
            continue;
        };
        bench_ls(&args, &runtime, &work, store, &url, &options);
    }
    if args.recordings > 0 {
        bench_export(&args, &runtime, &work);
    }
}

/// The store URL and options of `name`, under a fresh prefix.
fn store_for(name: &str, work: &Path) -> Option<(String, Vec<(String, String)>)> {
    let unique = format!("bench-find-{:016x}", fastrand::u64(..));
    match name {
        "local" => {
            let dir = work.join(format!("ls-{unique}"));
            std::fs::create_dir_all(&dir).expect("archive dir");
            Some((
                url::Url::from_directory_path(&dir).expect("absolute").to_string(),
                Vec::new(),
            ))
        }
        "seaweedfs" => {
            let var = |s: &str| std::env::var(format!("RECARCH_TEST_SEAWEEDFS_{s}")).ok();
            Some((
                format!("s3://{}/{unique}", var("BUCKET")?),
                vec![
                    ("aws_endpoint".into(), var("ENDPOINT")?),
                    ("aws_region".into(), var("REGION")?),
                    ("aws_access_key_id".into(), var("ACCESS_KEY_ID")?),
                    ("aws_secret_access_key".into(), var("SECRET_ACCESS_KEY")?),
                    ("aws_allow_http".into(), "true".into()),
                    ("aws_virtual_hosted_style_request".into(), "false".into()),
                ],
            ))
        }
        other => panic!("--stores: {other:?} is not local or seaweedfs"),
    }
}

fn write_config(path: &Path, url: &str, options: &[(String, String)]) {
    let mut toml = format!(
        "[graph]\ntenant_id = \"2f6c2a4e-0000-4000-8000-7d8e9f0a1b2c\"\nclient_id = \"3a7d3b5f-0000-4000-8000-8e9f0a1b2c3d\"\n\n[source]\norganizers = [\"00000000-0000-4000-8000-000000000000\"]\n\n[store]\nurl = \"{url}\"\n"
    );
    if !options.is_empty() {
        toml.push_str("\n[store.options]\n");
        for (k, v) in options {
            toml.push_str(&format!("{k} = \"{v}\"\n"));
        }
    }
    std::fs::write(path, toml).expect("write config");
}

fn organizer(n: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", n >> 16, n & 0xffff)
}

/// When item `i` was created: one every 5 minutes from 2025-01-01.
fn created(i: u64) -> DateTime<Utc> {
    let start = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .expect("date")
        .with_timezone(&Utc);
    start + chrono::Duration::minutes(5 * i as i64)
}

/// Catalog entry `i`, as a run writes it for a recording.
fn entry(i: u64) -> CatalogEntry {
    let org = organizer(i % ORGANIZERS);
    let id = format!("VjIjI{i:012}+rec/{i}=");
    let sha = hex::encode(Sha256::digest(id.as_bytes()));
    let key = hex::encode(Sha256::digest(format!("manifest {i}").as_bytes()));
    let mut extra = serde_json::Map::new();
    extra.insert("subject".into(), format!("Weekly review {}", i % 977).into());
    extra.insert(
        "contentCorrelationId".into(),
        format!("c0ffee00-0000-4000-8000-{i:012}").into(),
    );
    CatalogEntry {
        kind: Kind::Recordings,
        organizer_id: org.clone(),
        id,
        meeting_id: Some(format!("MSp{:040}", i / 2)),
        call_id: None,
        created_date_time: Some(created(i).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        archived_at: created(i) + chrono::Duration::hours(1),
        size: 10_000_000 + i,
        sha256: sha,
        manifest: format!("manifests/recordings/{org}/{key}.json"),
        extra,
    }
}

fn bench_ls(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    work: &Path,
    store: &str,
    url: &str,
    options: &[(String, String)],
) {
    let archive = Archive::open(url, options).expect("open archive");
    let config = work.join(format!("ls-{store}.toml"));
    write_config(&config, url, options);
    let config = config.display().to_string();
    let shard = ShardId::new(0, 1);
    let mut made = 0u64;
    for &n in &args.items {
        let started = Instant::now();
        let segments: Vec<(u64, u64)> = (made..n)
            .step_by(args.segment as usize)
            .map(|s| (s, (s + args.segment).min(n)))
            .collect();
        runtime.block_on(async {
            use futures::StreamExt;
            futures::stream::iter(segments.iter().map(|&(from, to)| {
                let archive = &archive;
                let shard = &shard;
                async move {
                    let entries: Vec<CatalogEntry> = (from..to).map(entry).collect();
                    archive.put_catalog_segment(shard, &entries).await.expect("segment");
                }
            }))
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
        });
        println!(
            "{store}: wrote {} catalog entries in {} segments in {:.1} s ({n} in all)",
            n - made,
            segments.len(),
            started.elapsed().as_secs_f64()
        );
        made = n;
        // A day in the middle of what is there: 288 items.
        let day = created(n / 2).date_naive();
        let (from, to) = (day.to_string(), day.succ_opt().expect("next day").to_string());
        for (what, extra) in [
            ("ls, one day", vec!["--from", from.as_str(), "--to", to.as_str()]),
            ("ls, everything", vec![]),
        ] {
            let mut walls = Vec::new();
            let mut peaks = Vec::new();
            let mut lines = 0;
            for _ in 0..args.runs {
                let mut a = vec!["ls", "--json", "--config", config.as_str()];
                a.extend(extra.iter().copied());
                let run = common::measure(&args.recarch, &a);
                assert!(
                    run.output.status.success(),
                    "{what}: {}",
                    String::from_utf8_lossy(&run.output.stderr)
                );
                lines = run.output.stdout.iter().filter(|&&b| b == b'\n').count();
                walls.push(run.wall);
                peaks.push(run.peak_kib);
            }
            if extra.is_empty() {
                assert_eq!(lines as u64, n, "everything listed");
            }
            walls.sort_unstable();
            peaks.sort_unstable();
            println!(
                "{store:<9} {n:>7} items, {what:<15}: {lines:>7} lines, wall min {:.2} s median {:.2} s, peak RSS median {:.1} MiB",
                walls[0].as_secs_f64(),
                walls[walls.len() / 2].as_secs_f64(),
                peaks[peaks.len() / 2] as f64 / 1024.0
            );
        }
    }
}

fn bench_export(args: &Args, runtime: &tokio::runtime::Runtime, work: &Path) {
    let root = work.join("export-archive");
    std::fs::create_dir_all(&root).expect("archive dir");
    let url = url::Url::from_directory_path(&root).expect("absolute").to_string();
    let config = work.join("export.toml");
    write_config(&config, &url, &[]);
    let archive = Archive::open(&url, &[]).expect("open archive");
    let blobs = root.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("blobs dir");
    let size = args.size_kib.map_or(args.size_mib << 20, |k| k << 10);
    let org = OrganizerId::parse(&organizer(7)).expect("GUID");
    let mut entries = Vec::new();
    let started = Instant::now();
    for i in 0..args.recordings {
        let mut bytes = vec![0u8; size as usize];
        fastrand::Rng::with_seed(i).fill(&mut bytes);
        let digest = Sha256Digest::from_bytes(Sha256::digest(&bytes).into());
        std::fs::write(blobs.join(digest.to_hex()), &bytes).expect("blob");
        let id = format!("VjIjI{i:012}");
        let mut manifest = Manifest::new(
            "callRecording",
            id.clone(),
            org.clone(),
            ContentRef::new(digest, size, "video/mp4"),
        );
        manifest.extra.insert("meetingId".into(), format!("MSp{i:040}").into());
        manifest
            .extra
            .insert("createdDateTime".into(), created(i).to_rfc3339().into());
        let key = Archive::manifest_key_of(Kind::Recordings, &org, &id);
        let path = root.join(&key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("manifest dir");
        std::fs::write(&path, serde_json::to_vec_pretty(&manifest).expect("JSON")).expect("manifest");
        entries.extend(CatalogEntry::of_manifest(&key, &manifest));
    }
    runtime
        .block_on(archive.put_catalog_segment(&ShardId::new(0, 1), &entries))
        .expect("catalog");
    let total = args.recordings * size;
    println!(
        "export: wrote {} recordings of {} KiB in {:.1} s",
        args.recordings,
        size >> 10,
        started.elapsed().as_secs_f64()
    );
    let config = config.display().to_string();
    let mut rows: Vec<(&str, Vec<Timed>)> = vec![
        ("recarch export", vec![]),
        ("cp+sha256sum+md5sum", vec![]),
        ("cp+sync+sha256sum+md5sum", vec![]),
    ];
    for run in 0..args.runs {
        let mut order = [0, 1, 2];
        order.rotate_left(run % 3);
        for which in order {
            let out = work.join(format!("out-{run}-{which}"));
            let measured = match which {
                0 => {
                    let out = out.display().to_string();
                    let m = timed(
                        "/bin/sh",
                        &[
                            "-c",
                            &format!("exec \"$0\" export --config '{config}' --out '{out}' --progress never"),
                            &args.recarch.display().to_string(),
                        ],
                    );
                    assert!(m.ok, "export failed");
                    m
                }
                _ => {
                    std::fs::create_dir_all(&out).expect("out");
                    // Through find and xargs: a production of many documents exceeds one
                    // command line.
                    let each = |tool: &str| format!("find \"$2\" -type f -print0 | xargs -0 {tool}");
                    let sync = if which == 2 {
                        format!("{} && ", each("sync"))
                    } else {
                        String::new()
                    };
                    let script = format!(
                        "cp -r \"$1\"/. \"$2\"/ && {sync}{} >/dev/null && {} >/dev/null",
                        each("sha256sum"),
                        each("md5sum")
                    );
                    let m = timed(
                        "/bin/sh",
                        &[
                            "-c",
                            &script,
                            "sh",
                            &blobs.display().to_string(),
                            &out.display().to_string(),
                        ],
                    );
                    assert!(m.ok, "baseline failed");
                    m
                }
            };
            rows[which].1.push(measured);
            let _ = std::fs::remove_dir_all(&out);
        }
    }
    let mib = total as f64 / 1048576.0;
    let base: Vec<Duration> = rows[0].1.iter().map(|m| m.wall).collect();
    for (name, ms) in &rows {
        let mut walls: Vec<Duration> = ms.iter().map(|m| m.wall).collect();
        walls.sort_unstable();
        let median = walls[walls.len() / 2];
        let cpu: f64 = ms.iter().map(|m| m.cpu).sum::<f64>() / ms.len() as f64;
        let peak = ms.iter().map(|m| m.peak_kib).max().unwrap_or(0);
        let ratios: Vec<String> = ms
            .iter()
            .zip(&base)
            .map(|(m, b)| format!("{:.2}", m.wall.as_secs_f64() / b.as_secs_f64()))
            .collect();
        println!(
            "{name:<26} {mib:>6.0} MiB: wall median {:.2} s ({:.0} MiB/s), CPU mean {cpu:.2} s, peak RSS {:.1} MiB (largest process), time / export's per run: {}",
            median.as_secs_f64(),
            mib / median.as_secs_f64(),
            peak as f64 / 1024.0,
            ratios.join(" ")
        );
    }
}

/// Runs `program args…` (its stdout discarded) under GNU time: success, wall time, CPU
/// seconds (user + system) and the peak RSS of its largest process.
fn timed(program: &str, args: &[&str]) -> Timed {
    let cpu_file = tempfile::NamedTempFile::new().expect("temporary file");
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%U %S %M")
        .arg("-o")
        .arg(cpu_file.path())
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("runs");
    let wall = started.elapsed();
    let line = std::fs::read_to_string(cpu_file.path()).unwrap_or_default();
    let parts: Vec<f64> = line
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let (cpu, peak) = match parts[..] {
        [user, system, peak] => (user + system, peak as u64),
        _ => (0.0, 0),
    };
    Timed {
        ok: status.success(),
        wall,
        cpu,
        peak_kib: peak,
    }
}

/// A process run under GNU time.
struct Timed {
    ok: bool,
    wall: Duration,
    cpu: f64,
    peak_kib: u64,
}
