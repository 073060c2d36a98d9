//! The environment's faults never cost an item: a content or token-endpoint outage and a full
//! disk (under a local archive, and under the spool of an S3 archive) end the run with exit 4
//! and the cause named, charge no attempt, dead-letter nothing, and the run after recovery
//! archives everything. A failed run stays visible in `status` and its run report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use recarch_graph_sim::{ContentMode, SimConfig, Target};

use super::util::{Backend, Env, all_recordings, assert_archive, assert_store_archive, files, last_report};

/// Quick in-run retries, and items given up on after two failed runs: an outage charged to
/// the items would dead-letter every one of them by the second run.
const POLICY: &str = "[fetch]\nmax_attempts = 2\nmax_item_attempts = 2\n";

fn config() -> SimConfig {
    SimConfig {
        content_mode: ContentMode::Alternate,
        page_size: 3,
        ..SimConfig::default()
    }
}

/// Queue entries and dead letters in a local archive.
fn queue_files(env: &Env) -> (Vec<String>, Vec<String>) {
    let all = files(&env.archive().join("state"));
    let queued = all.iter().filter(|f| f.contains("/queue/")).cloned().collect();
    let dead = all.iter().filter(|f| f.contains("/dead/")).cloned().collect();
    (queued, dead)
}

/// `status --json`, parsed, and its exit code.
async fn status(env: &Env) -> (i32, serde_json::Value) {
    let out = env.recarch(&["status", "--json"], &[]).await;
    let json = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("status --json: {e}: {}", out.stdout));
    (out.code, json)
}

/// Every content request answers 503 for three runs; each run ends with exit 4 naming the
/// content service, charges nothing and dead-letters nothing (with `max_item_attempts = 2`);
/// `status` is unhealthy with the cause; once the service is back, one run archives all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_outage_over_three_runs_costs_no_item() {
    let env = Env::new(config(), 2).await;
    env.write_config(POLICY);
    for org in &env.organizers {
        for i in 0..6 {
            env.sim.add_recording(org, 20_000 + i * 1_000);
        }
    }
    let faults = env.sim.faults();
    faults.throttle(Target::Content, 503, None, u32::MAX);
    for run in 1..=3 {
        env.sim.reset_stats();
        let started = Instant::now();
        let out = env.run().await;
        let took = started.elapsed();
        let requests = env.sim.stats().requests.len();
        eprintln!("outage run {run}: {requests} requests, {:.1} s", took.as_secs_f64());
        out.assert_code(4);
        assert!(
            out.stderr.contains("the content service is failing every request"),
            "run {run}: {}",
            out.stderr
        );
        let report = last_report(&env);
        assert_eq!(report["outcome"], "fatal", "run {run}: {report}");
        assert_eq!(report["exitCode"], 4);
        assert_eq!(report["cause"]["kind"], "contentOutage", "{report}");
        assert_eq!(report["deadLettered"], 0, "{report}");
        assert_eq!(report["failed"], 0, "nothing charged: {report}");
        let (queued, dead) = queue_files(&env);
        assert!(dead.is_empty(), "run {run}: dead letters {dead:?}");
        assert!(queued.is_empty(), "run {run}: nothing charged to the queue: {queued:?}");
        let (code, json) = status(&env).await;
        assert_eq!(code, 1, "status is unhealthy after a failed run: {json}");
        assert_eq!(json["healthy"], false);
        let attention = json["attention"].to_string();
        assert!(attention.contains("the content service is failing"), "{attention}");
    }
    faults.clear();
    env.sim.reset_stats();
    let started = Instant::now();
    env.run().await.assert_code(0);
    eprintln!(
        "recovery run: {} requests, {:.1} s",
        env.sim.stats().requests.len(),
        started.elapsed().as_secs_f64()
    );
    assert_archive(&env, &all_recordings(&env));
    let (code, json) = status(&env).await;
    assert_eq!(code, 0, "healthy again: {json}");
}

/// An outage that ends while the run is retrying is just retries: the run goes on and
/// archives everything, exit 0, nothing queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_that_ends_mid_run_lets_the_run_go_on() {
    let env = Env::new(config(), 1).await;
    env.write_config("[fetch]\nmax_attempts = 4\nmax_item_attempts = 2\n");
    let org = env.organizers[0].clone();
    for i in 0..5 {
        env.sim.add_recording(&org, 10_000 + i * 100);
    }
    // Seven answers of 503 spread over the first downloads, then the service is back.
    env.sim.faults().throttle(Target::Content, 503, None, 7);
    let out = env.run().await;
    out.assert_code(0);
    assert!(env.sim.stats().throttled >= 7, "the outage happened");
    assert_archive(&env, &all_recordings(&env));
    let report = last_report(&env);
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(queue_files(&env), (vec![], vec![]));
}

/// One bad item among working ones is still its own failure: charged, queued, and
/// dead-lettered after `max_item_attempts` runs, while the others are archived (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_item_among_working_ones_is_charged() {
    let env = Env::new(config(), 1).await;
    env.write_config(POLICY);
    let org = env.organizers[0].clone();
    let bad = env.sim.add_recording(&org, 5_000);
    let also_bad = env.sim.add_recording(&org, 5_000);
    env.sim.faults().content_status(&bad.id, Some(503));
    env.sim.faults().content_status(&also_bad.id, Some(500));
    for i in 0..4 {
        env.sim.add_recording(&org, 7_000 + i);
    }
    for run in 1..=2 {
        env.sim.add_recording(&org, 9_000 + run);
        let out = env.run().await;
        out.assert_code(1);
        let report = last_report(&env);
        assert_eq!(report["failed"], 2, "run {run}: {report}");
        assert!(report.get("cause").is_none(), "{report}");
    }
    let (queued, dead) = queue_files(&env);
    assert_eq!((queued.len(), dead.len()), (0, 2), "dead-lettered after two runs");
}

/// The token endpoint answers 503 to everything: exit 4 naming it, a run report that
/// records the cause, `status` unhealthy (exit 1) saying why, and the metrics file says the
/// run failed; the next run after it recovers is healthy again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_outage_is_reported_and_shown_by_status() {
    let env = Env::new(config(), 1).await;
    env.write_config(POLICY);
    let org = env.organizers[0].clone();
    env.sim.add_recording(&org, 4_000);
    env.run().await.assert_code(0);
    let (code, _) = status(&env).await;
    assert_eq!(code, 0);

    env.sim.add_recording(&org, 4_000);
    env.sim.faults().throttle(Target::Token, 503, None, u32::MAX);
    // Tokens are cached per process: a new run must fetch one.
    let metrics = env.dir.path().join("recarch.prom");
    let metrics_arg = metrics.display().to_string();
    let out = env.recarch(&["run", "--metrics-file", &metrics_arg], &[]).await;
    out.assert_code(4);
    assert!(out.stderr.contains("token endpoint"), "{}", out.stderr);
    let report = last_report(&env);
    assert_eq!(report["outcome"], "fatal", "{report}");
    assert_eq!(report["cause"]["kind"], "tokenEndpoint", "{report}");
    assert!(
        report["lastSuccessAt"].is_string(),
        "the earlier success is kept: {report}"
    );
    let prom = std::fs::read_to_string(&metrics).expect("metrics file");
    assert!(prom.contains("recarch_run_exit_code 4"), "{prom}");
    assert!(prom.contains("recarch_run_fatal{cause=\"tokenEndpoint\"} 1"), "{prom}");

    let (code, json) = status(&env).await;
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["healthy"], false);
    assert_eq!(json["lastRun"]["cause"]["kind"], "tokenEndpoint", "{json}");
    let text = env.recarch(&["status"], &[]).await;
    assert!(text.stdout.contains("token endpoint"), "{}", text.stdout);

    env.sim.faults().clear();
    env.run().await.assert_code(0);
    assert_archive(&env, &all_recordings(&env));
    let (code, json) = status(&env).await;
    assert_eq!(code, 0, "{json}");
}

/// A tmpfs of `mib` MiB mounted at a fresh directory, unmounted when dropped. `None` where
/// this process may not mount (not root): then the test says so and stops, unless the suite
/// runs with `RECARCH_REQUIRE_EMULATORS` (as CI does, as root), where it fails.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).expect("mkdir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(
                std::env::var_os("RECARCH_REQUIRE_EMULATORS").is_none(),
                "cannot mount a tmpfs (the full-disk tests need root)"
            );
            eprintln!("SKIPPED: cannot mount a tmpfs here (not root)");
            return None;
        }
        Some(Tmpfs { _dir: dir, path })
    }

    fn grow(&self, mib: u32) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {}", self.path.display());
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A local archive on a disk that fills up mid-run: exit 4 naming the disk and the space
/// free and needed, no item downloaded twice, nothing charged or dead-lettered; after the
/// disk grows, the next run archives everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_local_archive_disk_costs_no_item() {
    let Some(disk) = Tmpfs::mount(6) else { return };
    let env = Env::new(config(), 2).await;
    env.write_config(POLICY);
    // The archive directory the configuration names is on the small disk.
    std::os::unix::fs::symlink(disk.path(), env.archive()).expect("symlink");
    for org in &env.organizers {
        for i in 0..5 {
            env.sim.add_recording(org, 1_500_000 + i * 10_000);
        }
    }
    for run in 1..=2 {
        env.sim.reset_stats();
        let out = env.run().await;
        out.assert_code(4);
        assert!(
            // The archive's own path, as the store resolved it (through the link).
            out.stderr.contains(&format!(
                "no space left on {}",
                disk.path().canonicalize().expect("canonical").display()
            )) && out.stderr.contains("free"),
            "run {run}: {}",
            out.stderr
        );
        let stats = env.sim.stats();
        assert!(
            stats.content_requests_by_id.values().all(|n| *n == 1),
            "run {run}: the same bytes downloaded again into a full disk: {:?}",
            stats.content_requests_by_id
        );
        let (queued, dead) = queue_files(&env);
        assert!(
            queued.is_empty() && dead.is_empty(),
            "run {run}: an item was charged: {queued:?} {dead:?}"
        );
    }
    disk.grow(64);
    env.run().await.assert_code(0);
    assert_archive(&env, &all_recordings(&env));
}

/// An S3 archive whose spool disk is full: exit 4 naming the spool directory, nothing
/// charged; after the disk grows, the next run archives everything. The memory budget is
/// 1 MiB, so each body starts in memory and spills to the full disk part way through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_disk_costs_no_item() {
    let Some(env) = Env::on(Backend::S3, config(), 1).await else {
        return;
    };
    let Some(disk) = Tmpfs::mount(3) else { return };
    env.write_config(POLICY);
    let org = env.organizers[0].clone();
    for i in 0..4 {
        env.sim.add_recording(&org, 2_000_000 + i * 10_000);
    }
    let spool = disk.path().display().to_string();
    for run in 1..=2 {
        env.sim.reset_stats();
        let out = env
            .recarch(
                &["run"],
                &[
                    ("RECARCH_STORE__SPOOL_DIR", &spool),
                    ("RECARCH_STORE__SPOOL_MEMORY_MIB", "1"),
                ],
            )
            .await;
        out.assert_code(4);
        assert!(
            out.stderr.contains(&format!("no space left on {spool}")) && out.stderr.contains("needed"),
            "run {run}: {}",
            out.stderr
        );
        let stats = env.sim.stats();
        assert!(
            stats.content_requests_by_id.values().all(|n| *n == 1),
            "run {run}: downloaded again into a full disk: {:?}",
            stats.content_requests_by_id
        );
    }
    let (code, json) = status(&env).await;
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["totals"]["queued"], 0, "nothing charged: {json}");
    assert_eq!(json["totals"]["deadLetters"], 0, "{json}");
    disk.grow(64);
    env.recarch(
        &["run"],
        &[
            ("RECARCH_STORE__SPOOL_DIR", &spool),
            ("RECARCH_STORE__SPOOL_MEMORY_MIB", "1"),
        ],
    )
    .await
    .assert_code(0);
    assert_store_archive(&env, &all_recordings(&env)).await;
}
