//! Throughput benchmark: the real archive pipeline against the Graph simulator.
//!
//! `cargo bench --bench throughput [-- --count N --size BYTES --concurrency C]` starts the
//! simulator serving `N` recordings of `BYTES` each (content redirected to a second origin),
//! archives them with `recarch run`'s code into a fresh local-disk store, and reports GiB/s,
//! recordings/s, CPU time and peak RSS, next to the in-process SHA-256 speed on the same number
//! of bytes (the hashing limit), as a ratio. Under `cargo test` (no `--bench` argument) it runs
//! a tiny smoke size so that the benchmark itself stays working.

use std::time::Instant;

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
}

fn parse_args() -> Result<Args, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let benching = raw.iter().any(|a| a == "--bench");
    let mut args = if benching {
        Args {
            count: 32,
            size: 32 << 20,
            concurrency: 8,
            delta_items: 100_000,
        }
    } else {
        Args {
            count: 4,
            size: 256 << 10,
            concurrency: 2,
            delta_items: 500,
        }
    };
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or(format!("{name} needs a value"))?
                .parse::<u64>()
                .map_err(|e| format!("{name}: {e}"))
        };
        match a.as_str() {
            "--count" => args.count = value("--count")? as usize,
            "--size" => args.size = value("--size")?,
            "--concurrency" => args.concurrency = value("--concurrency")? as usize,
            "--delta-items" => args.delta_items = value("--delta-items")? as usize,
            _ => {}
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        bench(&args).await;
        delta_enumeration(args.delta_items).await;
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
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(&archive).expect("archive dir");
    let toml = format!(
        "[graph]\nbase_url = \"{}\"\nauthority_url = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"secret\"\n[source]\norganizers = [\"{org}\"]\n[store]\nurl = \"{}\"\n[fetch]\nconcurrency = {}\n",
        sim.base_url(),
        sim.authority_url(),
        sim.config().tenant_id,
        sim.config().client_id,
        url::Url::from_directory_path(&archive).expect("absolute path"),
        args.concurrency
    );
    let config_path = dir.path().join("recarch.toml");
    std::fs::write(&config_path, toml).expect("config");
    let config = Config::load(&config_path, &[]).expect("valid config");

    // Baselines in the same process: SHA-256 over the same number of bytes, 1 MiB at a time,
    // on one core and split over two threads (the machine's hashing limit).
    let total = args.count as u64 * args.size;
    let hash_secs = hash_seconds(total, 1);
    let hash2_secs = hash_seconds(total, 2);

    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let report = run::run(&config, Shard { index: 0, count: 1 }, CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("run failed: {:#}", e.error));
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    assert_eq!(report.exit_code, 0, "benchmark run failed: {:?}", report.failures);
    assert_eq!(report.counts.archived as usize, args.count);

    let peak = peak_rss_kib();
    let gib = total as f64 / f64::from(1u32 << 30);
    println!(
        "recarch throughput: {} recordings x {} bytes, concurrency {}",
        args.count, args.size, args.concurrency
    );
    println!(
        "  recarch:   {:.3} GiB/s, {:.1} recordings/s, {secs:.2} s wall, {cpu:.2} s CPU, peak RSS {:.1} MiB (simulator included)",
        gib / secs,
        args.count as f64 / secs,
        peak as f64 / 1024.0
    );
    println!(
        "  sha256:    {:.3} GiB/s on one core, {:.3} GiB/s on two",
        gib / hash_secs,
        gib / hash2_secs
    );
    println!(
        "  ratio:     recarch / sha256 one core = {:.2}, / two cores = {:.2}",
        hash_secs / secs,
        hash2_secs / secs
    );
    match rclone(&sim, total) {
        Some((rclone_secs, rclone_rss)) => {
            println!(
                "  rclone:    {:.3} GiB/s (copy --transfers 4, no hashing), {rclone_secs:.2} s wall, peak RSS {:.1} MiB",
                gib / rclone_secs,
                rclone_rss as f64 / 1024.0
            );
            println!("  ratio:     recarch / rclone = {:.2}", rclone_secs / secs);
        }
        None => println!("  rclone:    not measured (install the Debian package `rclone`)"),
    }
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
