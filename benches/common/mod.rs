//! What the benchmarks share: reading their command line, and the `[graph]` section of a
//! configuration for the simulator. Each benchmark uses a part of it.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use recarch_graph_sim::GraphSim;

/// The benchmark's arguments (the program name left out), and whether `cargo bench` runs it
/// (a `--bench` argument) rather than `cargo test` (which runs it at a smoke size).
pub fn command_line() -> (Vec<String>, bool) {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let benching = raw.iter().any(|a| a == "--bench");
    (raw, benching)
}

/// The arguments `parse` reads, or, when they are wrong, the error on stderr and exit 2.
pub fn args_or_exit<T>(parse: impl FnOnce() -> Result<T, String>) -> T {
    parse().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    })
}

/// The value of the option `name`: the next argument of `it`.
pub fn value<'a>(it: &mut impl Iterator<Item = &'a String>, name: &str) -> Result<&'a String, String> {
    it.next().ok_or(format!("{name} needs a value"))
}

/// The value of the option `name` (the next argument of `it`), a number.
pub fn number<'a>(it: &mut impl Iterator<Item = &'a String>, name: &str) -> Result<u64, String> {
    value(it, name)?.parse::<u64>().map_err(|e| format!("{name}: {e}"))
}

/// Where a benchmark writes: `dir` (created, kept), or a new temporary directory named
/// `prefix…`, removed when the returned guard drops.
pub fn work_dir(dir: Option<&Path>, prefix: &str) -> (std::path::PathBuf, Option<tempfile::TempDir>) {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).expect("create --dir");
            (dir.to_owned(), None)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .expect("temporary directory");
            (temp.path().to_owned(), Some(temp))
        }
    }
}

/// The `[graph]` section of a configuration for `sim`, its client secret read from the file
/// `secret` beside the configuration.
pub fn graph_section(sim: &GraphSim) -> String {
    format!(
        "[graph]\nbase_url = \"{}\"\nauthority_url = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"secret\"\n",
        sim.base_url(),
        sim.authority_url(),
        sim.config().tenant_id,
        sim.config().client_id,
    )
}

/// A child process run to completion.
pub struct Measured {
    /// What it printed and how it exited.
    pub output: Output,
    /// Its wall time.
    pub wall: Duration,
    /// Its peak RSS, KiB.
    pub peak_kib: u64,
    /// How the peak was read.
    pub rss_source: &'static str,
}

/// Runs `recarch args…` to completion: its output, wall time and peak RSS.
pub fn measure(recarch: &Path, args: &[&str]) -> Measured {
    const GNU_TIME: &str = "/usr/bin/time";
    let gnu_time = Path::new(GNU_TIME).exists();
    let rss_file = tempfile::NamedTempFile::new().expect("temporary file");
    let mut command = if gnu_time {
        let mut c = Command::new(GNU_TIME);
        c.arg("-f").arg("%M").arg("-o").arg(rss_file.path()).arg(recarch);
        c
    } else {
        Command::new(recarch)
    };
    command
        .args(args)
        .env_remove("RECARCH_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = command.spawn().expect("spawn recarch");
    let status_path = format!("/proc/{}/status", child.id());
    // Without GNU time, poll the child's high-water mark while it runs.
    let poller = (!gnu_time).then(|| {
        std::thread::spawn(move || {
            let mut peak = 0;
            while let Ok(status) = std::fs::read_to_string(&status_path) {
                let hwm = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
                match hwm {
                    Some(kib) => peak = peak.max(kib),
                    None => break, // exited: a zombie has no memory left to report
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    });
    let output = child.wait_with_output().expect("wait for recarch");
    let wall = started.elapsed();
    let (peak_kib, rss_source) = match poller {
        Some(poller) => (poller.join().unwrap_or(0), "VmHWM polled every 10 ms"),
        None => (
            std::fs::read_to_string(rss_file.path())
                .ok()
                .and_then(|s| s.lines().last()?.trim().parse().ok())
                .unwrap_or(0),
            "ru_maxrss",
        ),
    };
    Measured {
        output,
        wall,
        peak_kib,
        rss_source,
    }
}
