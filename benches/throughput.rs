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
}

fn parse_args() -> Result<Args, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let benching = raw.iter().any(|a| a == "--bench");
    let mut args = if benching {
        Args {
            count: 16,
            size: 16 << 20,
            concurrency: 8,
        }
    } else {
        Args {
            count: 4,
            size: 256 << 10,
            concurrency: 2,
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
    rt.block_on(bench(args));
}

async fn bench(args: Args) {
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

    // Baseline in the same process: SHA-256 over the same number of bytes, 1 MiB at a time.
    let total = args.count as u64 * args.size;
    let buf = vec![0x5au8; 1 << 20];
    let started = Instant::now();
    let mut hasher = Sha256::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    std::hint::black_box(hasher.finalize());
    let hash_secs = started.elapsed().as_secs_f64();

    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let report = run::run(&config, Shard { index: 0, count: 1 }, CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("run failed: {:#}", e.error));
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    assert_eq!(report.exit_code, 0, "benchmark run failed: {:?}", report.failures);
    assert_eq!(report.counts.archived as usize, args.count);

    let gib = total as f64 / f64::from(1u32 << 30);
    println!(
        "recarch throughput: {} recordings x {} bytes, concurrency {}",
        args.count, args.size, args.concurrency
    );
    println!(
        "  archive:   {:.3} GiB/s, {:.1} recordings/s, {secs:.2} s wall, {cpu:.2} s CPU",
        gib / secs,
        args.count as f64 / secs
    );
    println!("  sha256:    {:.3} GiB/s (hashing limit, one core)", gib / hash_secs);
    println!("  ratio:     archive / sha256 = {:.2}", hash_secs / secs);
    println!("  peak RSS:  {:.1} MiB", peak_rss_kib() as f64 / 1024.0);
}

/// Peak resident set size of this process (VmHWM), in KiB; 0 where /proc is missing.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
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
