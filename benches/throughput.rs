//! Throughput benchmark: the real archive pipeline against the Graph simulator.
//!
//! `cargo bench --bench throughput [-- --count N --size BYTES --concurrency C --runs R]` starts
//! the simulator serving `N` recordings of `BYTES` each (content redirected to a second origin),
//! archives them with `recarch run`'s code into a fresh local-disk store (one warm-up pass, then
//! the median of `R` passes), and reports GiB/s, recordings/s, CPU time and peak RSS. In the
//! same process it measures, on the same number of bytes: the floor (the same data movement
//! by plain threads: loopback TCP, SHA-256, write, fsync), the SHA-256 speed on one and two
//! cores (the hashing limit) and, when installed, `rclone copy`; it prints the ratios, then a
//! delta-enumeration rate. `--pipeline-only` skips everything but the archive passes (for
//! `perf record`). Under `cargo test` (no `--bench` argument) it runs a tiny smoke size so
//! that the benchmark itself stays working. Results: `docs/benchmarks.md`.

use std::path::Path;
use std::time::Instant;

#[path = "../tests/util/backends.rs"]
mod backends;
mod common;

use backends::Backend;
use recarch::config::Config;
use recarch::run::{self, Shard};
use recarch_graph_sim::{ContentMode, GraphSim, SimConfig};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

struct Args {
    count: usize,
    size: u64,
    concurrency: usize,
    /// Recordings listed by the delta-enumeration measurement.
    delta_items: usize,
    /// Measured passes (after one warm-up); the median is reported.
    runs: usize,
    /// Measure only the archive pipeline (no hashing limit, rclone or delta walk): for
    /// profiling it with `perf record`.
    pipeline_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let (raw, benching) = common::command_line();
    let mut args = if benching {
        Args {
            count: 32,
            size: 32 << 20,
            concurrency: 8,
            delta_items: 100_000,
            pipeline_only: false,
            runs: 3,
        }
    } else {
        Args {
            count: 4,
            size: 256 << 10,
            concurrency: 2,
            delta_items: 500,
            pipeline_only: false,
            runs: 1,
        }
    };
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| common::number(&mut it, name);
        match a.as_str() {
            "--count" => args.count = value("--count")? as usize,
            "--size" => args.size = value("--size")?,
            "--concurrency" => args.concurrency = value("--concurrency")? as usize,
            "--delta-items" => args.delta_items = value("--delta-items")? as usize,
            "--pipeline-only" => args.pipeline_only = true,
            "--runs" => args.runs = (value("--runs")? as usize).max(1),
            _ => {}
        }
    }
    Ok(args)
}

fn main() {
    let args = common::args_or_exit(parse_args);
    // `RECARCH_LOG=debug` shows the pipeline's own events with timestamps, for profiling.
    if let Ok(filter) = std::env::var("RECARCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        bench(&args).await;
        if !args.pipeline_only {
            delta_enumeration(args.delta_items).await;
        }
    });
}

/// Walks one delta round of `items` recordings (pages of 1000, what the simulator sends for
/// `$top=1000`-sized pages) with the real delta client: items per second, and the RSS growth
/// while walking (the client holds one page at a time, so it stays flat in `items`).
async fn delta_enumeration(items: usize) {
    use futures::TryStreamExt;
    use recarch_delta::auth::StaticToken;
    use recarch_delta::{CallRecording, DeltaClient, GraphHttp, PageRequest, resources};

    let sim = GraphSim::start(SimConfig {
        page_size: 1000,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let org = sim.add_organizer();
    for _ in 0..items {
        sim.add_recording(&org, 1);
    }
    let base = url::Url::parse(&sim.base_url()).expect("base url");
    let http = GraphHttp::new(
        reqwest::Client::new(),
        std::sync::Arc::new(StaticToken::new(sim.issue_access_token())),
        &base,
        recarch_delta::retry::RetryPolicy::default(),
    );
    let client = DeltaClient::new(http);
    let rss_before = current_rss_kib();
    let started = Instant::now();
    let mut seen = 0usize;
    let mut rss_max = rss_before;
    let mut pages = std::pin::pin!(
        client.pages::<CallRecording>(PageRequest::First(resources::recordings_request(&base, &org, None)))
    );
    while let Some(page) = pages.try_next().await.expect("page") {
        seen += page.items.len();
        rss_max = rss_max.max(current_rss_kib());
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(seen, items);
    println!(
        "  delta:     {items} items in {secs:.2} s = {:.0} items/s; RSS grew {:.1} MiB while walking",
        items as f64 / secs,
        rss_max.saturating_sub(rss_before) as f64 / 1024.0
    );
}

/// Current resident set size (VmRSS), in KiB; 0 where /proc is missing.
fn current_rss_kib() -> u64 {
    proc_status_kib("/proc/self/status", "VmRSS:")
}

/// Connections of the floor measurement: its fastest arrangement on the two-core machine
/// (measured: 1 stream 0.74, 2 1.39, 4 1.57, 8 1.64, 16 1.49 GiB/s), so that fsync waits
/// overlap and both cores stay busy.
const FLOOR_STREAMS: usize = 8;

/// One measured archive pass.
#[derive(Debug, Clone, Copy)]
struct Pass {
    secs: f64,
    cpu: f64,
    machine: f64,
}

async fn bench(args: &Args) {
    let sim = GraphSim::start(SimConfig {
        content_mode: ContentMode::Redirect,
        page_size: 100,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let org = sim.add_organizer();
    for _ in 0..args.count {
        sim.add_recording(&org, args.size);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), &sim.config().client_secret).expect("secret");
    let total = args.count as u64 * args.size;
    let gib = total as f64 / f64::from(1u32 << 30);

    // One warm-up pass, then `runs` measured ones, each into a fresh archive that is deleted
    // afterwards; the median is reported. On a virtual machine the first pass pays for pages
    // the host has not backed yet (page cache, buffers): the warm-up takes that cost, which
    // belongs to the machine, not to the program.
    let mut passes = Vec::new();
    for pass in 0..=args.runs {
        let archive = dir.path().join(format!("archive-{pass}"));
        let store = Backend::Local.store(&archive).expect("local disk is always there");
        std::fs::create_dir_all(&archive).expect("archive dir");
        let measured = archive_pass(args, &bench_config(&sim, dir.path(), &store, &org, args.concurrency)).await;
        std::fs::remove_dir_all(&archive).expect("remove the archive");
        if pass > 0 {
            passes.push(measured);
        }
    }
    let Pass { secs, cpu, machine } = median_by(passes, |p| p.secs);

    // Peak memory of the archive passes alone (the baselines below have buffers of their own).
    let peak = peak_rss_kib();

    // The S3 and Azure emulators, when running (`scripts/emulators.sh run cargo bench ...`):
    // one pass each, into a fresh prefix. They are loopback emulators (moto serves one
    // request at a time), so these figures show the store path working at size and its
    // memory, not what S3 or Azure would sustain.
    let mut remote = Vec::new();
    for backend in [Backend::S3, Backend::Azure] {
        let Some(store) = backend.store(dir.path()) else {
            continue;
        };
        reset_peak_rss();
        let measured = archive_pass(args, &bench_config(&sim, dir.path(), &store, &org, args.concurrency)).await;
        remote.push((backend, measured, peak_rss_kib()));
    }

    // Baselines in the same process, after the archive passes: SHA-256 over the same number
    // of bytes, 1 MiB at a time, on one core and split over two threads (the machine's hashing
    // limit); and the floor, the same data movement by plain threads (warm-up, then median).
    let baselines = (!args.pipeline_only).then(|| {
        let hash1 = hash_seconds(total, 1);
        let hash2 = hash_seconds(total, 2);
        let floors: Vec<(f64, f64)> = (0..=args.runs)
            .map(|_| {
                let cpu_before = cpu_seconds();
                let secs = floor_seconds(args.count, args.size, dir.path());
                (secs, cpu_seconds() - cpu_before)
            })
            .skip(1)
            .collect();
        (hash1, hash2, median_by(floors, |f| f.0))
    });

    println!(
        "recarch throughput: {} recordings x {} bytes, concurrency {}, median of {} runs after a warm-up",
        args.count, args.size, args.concurrency, args.runs
    );
    println!(
        "  recarch:   {:.3} GiB/s, {:.1} recordings/s, {secs:.2} s wall, {cpu:.2} s CPU ({machine:.2} s on the whole machine), peak RSS {:.1} MiB (simulator included)",
        gib / secs,
        args.count as f64 / secs,
        peak as f64 / 1024.0
    );
    for (backend, pass, peak) in &remote {
        println!(
            "  {:<10} {:.3} GiB/s, {:.2} s wall, {:.2} s CPU, peak RSS {:.1} MiB (one pass; a loopback emulator)",
            format!("{backend:?}:").to_lowercase(),
            gib / pass.secs,
            pass.secs,
            pass.cpu,
            *peak as f64 / 1024.0
        );
    }
    let Some((hash_secs, hash2_secs, (floor_secs, floor_cpu))) = baselines else {
        return;
    };
    println!(
        "  floor:     {:.3} GiB/s, {floor_secs:.2} s wall, {floor_cpu:.2} s CPU: the same bytes sent over loopback TCP, received, SHA-256 hashed, written and fsynced by plain threads ({FLOOR_STREAMS} streams; no HTTP, no object store)",
        gib / floor_secs
    );
    println!(
        "  sha256:    {:.3} GiB/s on one core, {:.3} GiB/s on two",
        gib / hash_secs,
        gib / hash2_secs
    );
    println!(
        "  ratio:     recarch / floor = {:.2}, recarch / sha256 one core = {:.2}, / two cores = {:.2}",
        floor_secs / secs,
        hash_secs / secs,
        hash2_secs / secs
    );
    // With an infinitely fast disk the floor would still need `floor_cpu` seconds of CPU.
    let cpu_bound_secs = floor_cpu / 2.0;
    println!(
        "  ratio:     floor / sha256 two cores = {:.2}; with an infinitely fast disk (floor CPU on two cores) {:.2}: the most any archiver of these bytes reaches here",
        hash2_secs / floor_secs,
        hash2_secs / cpu_bound_secs
    );
    let rclone_runs: Vec<(f64, u64)> = (0..args.runs).filter_map(|_| rclone(&sim, total)).collect();
    if rclone_runs.is_empty() {
        println!("  rclone:    not measured (install the Debian package `rclone`)");
        return;
    }
    let rclone_rss = rclone_runs.iter().map(|r| r.1).max().unwrap_or(0);
    let runs = rclone_runs.len();
    let (rclone_secs, _) = median_by(rclone_runs, |r| r.0);
    println!(
        "  rclone:    {:.3} GiB/s (copy --transfers 4, no hashing, no fsync; median of {}), {rclone_secs:.2} s wall, peak RSS {:.1} MiB",
        gib / rclone_secs,
        runs,
        rclone_rss as f64 / 1024.0
    );
    println!("  ratio:     recarch / rclone = {:.2}", rclone_secs / secs);
}

/// One `recarch run` pass with `config`: wall, process and machine CPU seconds. Panics unless
/// every recording was archived.
async fn archive_pass(args: &Args, config: &Config) -> Pass {
    let cpu_before = cpu_seconds();
    let machine_before = machine_busy_seconds();
    let started = Instant::now();
    let report = run::run(config, Shard { index: 0, count: 1 }, CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("run failed: {:#}", e.error));
    let measured = Pass {
        secs: started.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - cpu_before,
        machine: machine_busy_seconds() - machine_before,
    };
    assert_eq!(report.exit_code, 0, "benchmark run failed: {:?}", report.failures);
    assert_eq!(report.counts.archived as usize, args.count);
    measured
}

/// A configuration archiving `org`'s recordings from `sim` into `store`.
fn bench_config(sim: &GraphSim, dir: &Path, store: &backends::Store, org: &str, concurrency: usize) -> Config {
    let toml = format!(
        "{}[source]\norganizers = [\"{org}\"]\n[fetch]\nconcurrency = {concurrency}\n{}",
        common::graph_section(sim),
        store.toml(),
    );
    let config_path = dir.join("recarch.toml");
    std::fs::write(&config_path, toml).expect("config");
    Config::load(&config_path, &[]).expect("valid config")
}

/// The median of `runs` by `key` (the upper middle one for an even count), so that a
/// measured run is reported whole; `runs` is never empty (at least one run is measured).
fn median_by<T: Copy>(mut runs: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    runs[runs.len() / 2]
}

/// Seconds for the least work any archiver of `count` recordings of `size` bytes does on this
/// machine: every byte sent over loopback TCP, received, SHA-256 hashed and written to a file in
/// `dir`, each file fsynced, by plain threads with reused buffers ([`FLOOR_STREAMS`]
/// connections, each with a sender and a receiver thread), without HTTP, an async runtime or
/// an object store. The files are removed.
fn floor_seconds(count: usize, size: u64, dir: &Path) -> f64 {
    use std::io::{Read, Write};
    let streams = count.clamp(1, FLOOR_STREAMS);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for stream in 0..streams {
            let files: Vec<usize> = (stream..count).step_by(streams).collect();
            let bytes = files.len() as u64 * size;
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            let addr = listener.local_addr().expect("local address");
            scope.spawn(move || {
                let (mut out, _) = listener.accept().expect("accept");
                let buf: Vec<u8> = (0..1u32 << 20)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect();
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    out.write_all(&buf[..n]).expect("send");
                    left -= n as u64;
                }
            });
            scope.spawn(move || {
                let mut input = std::net::TcpStream::connect(addr).expect("connect");
                let mut buf = vec![0u8; 1 << 20];
                for f in files {
                    let mut file = std::fs::File::create(dir.join(format!("floor-{f}"))).expect("create");
                    let mut hasher = Sha256::new();
                    let mut left = size;
                    while left > 0 {
                        let want = left.min(buf.len() as u64) as usize;
                        let n = input.read(&mut buf[..want]).expect("receive");
                        assert!(n > 0, "sender closed early");
                        hasher.update(&buf[..n]);
                        file.write_all(&buf[..n]).expect("write");
                        left -= n as u64;
                    }
                    file.sync_all().expect("fsync");
                    std::hint::black_box(hasher.finalize());
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    for f in 0..count {
        let _ = std::fs::remove_file(dir.join(format!("floor-{f}")));
    }
    secs
}

/// Seconds to SHA-256 `total` bytes split over `threads` threads, 1 MiB at a time.
fn hash_seconds(total: u64, threads: u64) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let buf = vec![0x5au8; 1 << 20];
                let mut hasher = Sha256::new();
                let mut left = total / threads;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    hasher.update(&buf[..n]);
                    left -= n as u64;
                }
                std::hint::black_box(hasher.finalize());
            });
        }
    });
    started.elapsed().as_secs_f64()
}

/// `rclone copy --transfers 4` of the same recordings from the simulator's download origin to
/// local disk: wall seconds and rclone's peak RSS in KiB, or `None` without rclone.
fn rclone(sim: &GraphSim, total: u64) -> Option<(f64, u64)> {
    let dest = tempfile::tempdir().ok()?;
    let started = Instant::now();
    let mut child = std::process::Command::new("rclone")
        .args(["copy", "--transfers", "4", "--http-no-head", "--http-url"])
        .arg(format!("{}/files/", sim.download_origin()))
        .arg(":http:")
        .arg(dest.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().ok()? {
            break status;
        }
        peak = peak.max(vm_hwm(&status_path));
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let secs = started.elapsed().as_secs_f64();
    let copied: u64 = std::fs::read_dir(dest.path())
        .ok()?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    if !status.success() || copied != total {
        eprintln!("rclone failed ({status}), copied {copied} of {total} bytes");
        return None;
    }
    Some((secs, peak))
}

/// VmHWM (peak resident set size) from a `/proc/<pid>/status` file, in KiB; 0 if unreadable.
fn vm_hwm(status_path: &str) -> u64 {
    proc_status_kib(status_path, "VmHWM:")
}

/// A `kB` field (e.g. `VmHWM:`) of a `/proc/<pid>/status` file; 0 if unreadable.
fn proc_status_kib(status_path: &str, field: &str) -> u64 {
    std::fs::read_to_string(status_path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Resets this process's peak resident set size (VmHWM) to the current one, so that the
/// next phase's peak can be read on its own; does nothing where that is not supported.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size of this process (VmHWM), in KiB; 0 where /proc is missing.
fn peak_rss_kib() -> u64 {
    vm_hwm("/proc/self/status")
}

/// User + system CPU seconds of this process so far (from /proc/self/stat); 0 where missing.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the full line: indexes 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Busy CPU seconds of the whole machine so far, all cores (from /proc/stat: every column but
/// idle and iowait); 0 where missing. Kernel threads that write back the page cache work for
/// the archive too, and show here rather than in the process's own time.
fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let ticks: Vec<f64> = cpu.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    busy / 100.0
}
