//! End-to-end tests of the built `recarch` binary against the Graph simulator, into a
//! temporary local-disk archive, and (for the main flow) into S3 and Azure emulators.

mod util;

#[path = "cli/adhoc.rs"]
mod adhoc;
#[path = "cli/contacts.rs"]
mod contacts;
#[path = "cli/dispose.rs"]
mod dispose;
#[path = "cli/encryption.rs"]
mod encryption;
#[path = "cli/enrich.rs"]
mod enrich;
#[path = "cli/environment.rs"]
mod environment;
#[path = "cli/export.rs"]
mod export;
#[path = "cli/failure_policy.rs"]
mod failure_policy;
#[path = "cli/find.rs"]
mod find;
#[path = "cli/holds.rs"]
mod holds;
#[path = "cli/kinds.rs"]
mod kinds;
#[path = "cli/ledger.rs"]
mod ledger;
#[path = "cli/metrics.rs"]
mod metrics;
#[path = "cli/operator.rs"]
mod operator;
#[path = "cli/organizers.rs"]
mod organizers;
#[path = "cli/progress.rs"]
mod progress;
#[path = "cli/readme.rs"]
mod readme;
#[path = "cli/retention.rs"]
mod retention;
#[path = "cli/s3_payload.rs"]
mod s3_payload;
#[path = "cli/sign_in.rs"]
mod sign_in;
#[path = "cli/state_url.rs"]
mod state_url;
#[path = "cli/transcripts.rs"]
mod transcripts;
#[path = "cli/uploads.rs"]
mod uploads;
#[path = "cli/verify_catalog.rs"]
mod verify_catalog;
#[path = "cli/worm.rs"]
mod worm;

use recarch_graph_sim::{ContentMode, SimConfig, Target};
use util::{Backend, Env, all_recordings, assert_archive, assert_store_archive, last_report, recarch};

/// `name_on_local_disk`, `name_on_s3` (moto), `name_on_seaweedfs` and `name_on_azure` tests
/// running `async fn name(Backend)`.
macro_rules! on_every_backend {
    ($name:ident) => {
        mod $name {
            use super::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_local_disk() {
                super::$name(Backend::Local).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_s3() {
                super::$name(Backend::S3).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_seaweedfs() {
                super::$name(Backend::SeaweedFs).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_azure() {
                super::$name(Backend::Azure).await;
            }
        }
    };
}

fn sim_config(mode: ContentMode) -> SimConfig {
    SimConfig {
        content_mode: mode,
        page_size: 3,
        ..SimConfig::default()
    }
}

on_every_backend!(run_rerun_incremental_verify_status);

async fn run_rerun_incremental_verify_status(backend: Backend) {
    let Some(env) = Env::on(backend, sim_config(ContentMode::Alternate), 2).await else {
        return;
    };
    for (i, org) in env.organizers.iter().enumerate() {
        for j in 0..5 {
            env.sim.add_recording(org, 50_000 + (i * 7 + j) as u64 * 30_011);
        }
    }
    // Real Graph's quirks, all at once: empty pages that still carry a nextLink, and items
    // repeated across pages.
    env.sim.faults().empty_pages(true);
    env.sim.faults().duplicate_items(true);

    let first = env.run().await;
    first.assert_code(0);
    assert!(first.stdout.contains("10 archived"), "{}", first.stdout);
    assert_store_archive(&env, &all_recordings(&env)).await;
    let stats = env.sim.stats();
    assert_eq!(
        stats.auth_header_on_download_origin, 0,
        "token leaked to the download origin"
    );
    assert!(stats.download_requests > 0, "some content came through redirects");
    for (_, rec) in all_recordings(&env) {
        assert_eq!(
            stats.content_requests_by_id.get(&rec.id),
            Some(&1),
            "{} downloaded once",
            rec.id
        );
    }
    if backend == Backend::Local {
        let report = last_report(&env);
        assert_eq!(report["archived"], 10);
        assert_eq!(report["exitCode"], 0);
        assert_eq!(report["failures"].as_array().map(Vec::len), Some(0));
        assert_archive(&env, &all_recordings(&env));
    }

    // A rerun downloads nothing.
    env.sim.reset_stats();
    env.run().await.assert_code(0);
    assert_eq!(env.sim.stats().content_requests, 0, "rerun downloaded again");
    assert_store_archive(&env, &all_recordings(&env)).await;

    // An incremental round downloads only the new recordings.
    let new_a = env.sim.add_recording(&env.organizers[0], 77_777);
    let new_b = env.sim.add_recording(&env.organizers[1], 1);
    env.sim.reset_stats();
    let third = env.run().await;
    third.assert_code(0);
    let stats = env.sim.stats();
    assert_eq!(
        stats.content_requests, 2,
        "only the new recordings: {:?}",
        stats.content_requests_by_id
    );
    assert!(
        stats.content_requests_by_id.contains_key(&new_a.id) && stats.content_requests_by_id.contains_key(&new_b.id)
    );
    assert_store_archive(&env, &all_recordings(&env)).await;

    let verify = env.recarch(&["verify"], &[]).await;
    verify.assert_code(0);
    assert!(
        verify.stderr.contains("re-hashing blobs") && verify.stderr.contains("done=12 total=12"),
        "progress: {}",
        verify.stderr
    );
    assert!(
        verify.stdout.contains("12 manifests") && verify.stdout.contains("0 problems"),
        "{}",
        verify.stdout
    );

    let status = env.recarch(&["status"], &[]).await;
    status.assert_code(0);
    for org in &env.organizers {
        assert!(
            status.stdout.contains(&format!("organizer {org}: up to date")),
            "{}",
            status.stdout
        );
    }
    let json = env.recarch(&["status", "--json"], &[]).await;
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("status --json is JSON");
    assert_eq!(json["organizers"][0]["round"], "up to date");
    assert!(!json.to_string().contains(&env.sim.config().client_secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_reset_410_starts_over_without_downloading_again() {
    for (code, with_location) in [("SyncStateNotFound", false), ("resyncRequired", true)] {
        let env = Env::new(sim_config(ContentMode::Direct), 1).await;
        let org = env.organizers[0].clone();
        for _ in 0..7 {
            env.sim.add_recording(&org, 10_000);
        }
        env.run().await.assert_code(0);
        let added = env.sim.add_recording(&org, 12_345);
        env.sim.faults().expire_sync_state(code, with_location);
        env.sim.reset_stats();
        env.run().await.assert_code(0);
        let stats = env.sim.stats();
        assert!(stats.gone >= 1, "the saved deltaLink was refused");
        assert_eq!(
            stats.content_requests, 1,
            "{code}: only the new recording: {:?}",
            stats.content_requests_by_id
        );
        assert!(stats.content_requests_by_id.contains_key(&added.id));
        assert_eq!(last_report(&env)["resyncs"], 1);
        assert_archive(&env, &all_recordings(&env));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_waits_for_retry_after() {
    let env = Env::new(sim_config(ContentMode::Direct), 1).await;
    let org = env.organizers[0].clone();
    env.sim.add_recording(&org, 1000);
    env.sim.faults().throttle(Target::Delta, 429, Some(1), 1);
    env.sim.faults().throttle(Target::Content, 503, Some(1), 1);
    env.run().await.assert_code(0);
    let stats = env.sim.stats();
    assert_eq!(stats.throttled, 2);
    // Each throttled request is retried no sooner than Retry-After said.
    let reqs = &stats.requests;
    for (i, r) in reqs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == 429 || r.status == 503)
    {
        let retry = reqs[i + 1..]
            .iter()
            .find(|n| n.path_and_query == r.path_and_query)
            .expect("the throttled request is retried");
        let waited = retry.at.duration_since(r.at);
        assert!(
            waited >= std::time::Duration::from_millis(950),
            "retried after {waited:?}"
        );
    }
    assert_archive(&env, &all_recordings(&env));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_retried_and_never_stored_short() {
    let env = Env::new(sim_config(ContentMode::Redirect), 1).await;
    let org = env.organizers[0].clone();
    // Large enough that the cut reaches recarch as a body error (for small bodies the HTTP
    // client's own retry absorbs it before the response is handed over).
    for _ in 0..3 {
        env.sim.add_recording(&org, 2_000_000);
    }
    env.sim.faults().drop_mid_body(2);
    let run = env.run().await;
    run.assert_code(0);
    assert_eq!(
        run.stderr.matches("download failed, retrying").count(),
        2,
        "both cut bodies were retried by recarch: {}",
        run.stderr
    );
    assert_archive(&env, &all_recordings(&env));
    let stats = env.sim.stats();
    assert_eq!(stats.auth_header_on_download_origin, 0);
    assert_eq!(stats.content_requests, 5, "3 downloads + 2 retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_origin_content_url_is_refused_and_queued() {
    let env = Env::new(sim_config(ContentMode::Direct), 1).await;
    let org = env.organizers[0].clone();
    let good = env.sim.add_recording(&org, 5_000);
    // A recordingContentUrl on another origin: fetching it would hand over the token.
    let evil_url = format!("{}/download/stolen", env.sim.download_origin());
    let evil = env.sim.add_recording_with_content_url(&org, 5_000, &evil_url);
    let run = env.run().await;
    run.assert_code(1);
    assert!(
        run.stdout.contains(&evil.id) && run.stdout.contains("refusing content url"),
        "{}",
        run.stdout
    );
    assert_eq!(env.sim.stats().download_requests, 0, "the off-origin url was fetched");
    assert!(util::manifest_path(&env.archive(), &org, &good.id).exists());
    assert!(!util::manifest_path(&env.archive(), &org, &evil.id).exists());

    let status = env.recarch(&["status"], &[]).await;
    assert!(
        status
            .stdout
            .contains(&format!("queued {} (attempts 1, permanent)", evil.id)),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("refusing content url"),
        "the reason is listed: {}",
        status.stdout
    );
    // The failure is queued, and the round still completes: the deltaLink advances.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.archive().join(format!("state/recordings/{org}.json"))).expect("state"),
    )
    .expect("state is JSON");
    assert_eq!(state["sources"]["organizer"]["checkpoint"]["kind"], "delta");
    let entry = env.archive().join(format!(
        "state/recordings/{org}/queue/{}.json",
        util::sha256_hex(evil.id.as_bytes())
    ));
    let entry: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(entry).expect("queue entry")).expect("queue entry is JSON");
    assert_eq!(entry["id"], evil.id.as_str());
    assert_eq!(entry["lastClass"], "permanent");
    // Retried first next run, it fails permanently a second time: dead-lettered (exit 1, this
    // run's failure), never fetched, and the good one stays archived once.
    env.sim.reset_stats();
    let second = env.run().await;
    second.assert_code(1);
    assert!(second.stdout.contains("dead-lettered"), "{}", second.stdout);
    assert_eq!(env.sim.stats().content_requests, 0);
    let status = env.recarch(&["status"], &[]).await;
    assert!(
        status
            .stdout
            .contains(&format!("dead letter {} (attempts 2, permanent", evil.id)),
        "{}",
        status.stdout
    );
    // A dead letter from an earlier run makes later runs neither fail nor retry it.
    env.run().await.assert_code(0);
    assert_eq!(env.sim.stats().content_requests, 0);
    assert_eq!(util::last_report(&env)["deadLetters"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_exit_4_without_leaking_the_secret() {
    let env = Env::new(sim_config(ContentMode::Direct), 1).await;
    std::fs::write(env.dir.path().join("secret"), "wrong-secret-value").expect("write secret");
    let run = env.run().await;
    run.assert_code(4);
    assert!(run.stderr.contains("invalid_client"), "{}", run.stderr);
    assert!(!run.stderr.contains("wrong-secret-value") && !run.stdout.contains("wrong-secret-value"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_required_is_fatal_and_plain() {
    let env = Env::new(sim_config(ContentMode::Direct), 1).await;
    env.sim.add_recording(&env.organizers[0], 100);
    env.sim.faults().payment_required(true);
    let run = env.run().await;
    run.assert_code(4);
    assert!(
        run.stderr.contains("402 payment required") && run.stderr.contains("metered"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_exit_2_naming_the_key() {
    let env = Env::new(sim_config(ContentMode::Direct), 1).await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("RECARCH_SOURCE__ORGANIZERS", "not-a-guid")],
            "[source].organizers[0]",
        ),
        (&[("RECARCH_FETCH__CONCURRENCY", "many")], "RECARCH_FETCH__CONCURRENCY"),
        (&[("RECARCH_STORE__URL", "ftp://x/y")], "[store].url"),
        (&[("RECARCH_GRAPH__TENANT", "x")], "unknown field `tenant`"),
        (
            &[("RECARCH_GRAPH__CLIENT_SECRET_FILE", "/nonexistent/secret")],
            "[graph].client_secret_file",
        ),
        (&[("RECARCH_GRAPH__BASE_URL", "https://[::1")], "[graph].base_url"),
    ];
    for (envs, needle) in cases {
        let run = env.recarch(&["run"], envs).await;
        run.assert_code(2);
        assert!(run.stderr.contains(needle), "{needle:?} not in {}", run.stderr);
        assert!(!run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"));
    }
    // The secret from an environment variable: unset, or empty.
    let text = std::fs::read_to_string(env.config_path()).expect("config");
    let text = text.replace(
        "client_secret_file = \"secret\"",
        "client_secret_env = \"RECARCH_TEST_SECRET\"",
    );
    std::fs::write(env.config_path(), text).expect("config");
    let run = env.recarch(&["run"], &[]).await;
    run.assert_code(2);
    assert!(run.stderr.contains("RECARCH_TEST_SECRET is not set"), "{}", run.stderr);
    let run = env.recarch(&["run"], &[("RECARCH_TEST_SECRET", " ")]).await;
    run.assert_code(2);
    assert!(run.stderr.contains("RECARCH_TEST_SECRET is empty"), "{}", run.stderr);
    let missing = recarch(&["run".into(), "--config".into(), "/nonexistent.toml".into()], &[]).await;
    missing.assert_code(2);
    let usage = recarch(&["run".into()], &[]).await;
    usage.assert_code(2);
    let shard = env
        .recarch(&["run", "--shard-index", "2", "--shard-count", "2"], &[])
        .await;
    shard.assert_code(2);
    assert!(
        !env.archive().join("manifests").exists(),
        "nothing written on configuration errors"
    );
}

on_every_backend!(a_second_concurrent_run_of_a_shard_exits_3);

async fn a_second_concurrent_run_of_a_shard_exits_3(backend: Backend) {
    let Some(env) = Env::on(backend, sim_config(ContentMode::Direct), 1).await else {
        return;
    };
    env.sim.add_recording(&env.organizers[0], 3 << 20);
    // A slow network keeps the first run busy (about 3 s) while the second one starts.
    env.sim.faults().content_rate(Some(1 << 20));
    let first = env.spawn_run();
    // Wait until the first run holds the lease, i.e. has started downloading.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while env.sim.stats().content_requests == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "first run never started downloading"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let second = env.run().await;
    second.assert_code(3);
    assert!(second.stderr.contains("lease"), "{}", second.stderr);
    let first = first.wait_with_output().await.expect("first run ends");
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(env.sim.stats().content_requests, 1, "the second run downloaded nothing");
    assert_store_archive(&env, &all_recordings(&env)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_organizers() {
    let env = Env::new(sim_config(ContentMode::Direct), 4).await;
    for org in &env.organizers {
        env.sim.add_recording(org, 1000);
    }
    env.recarch(&["run", "--shard-index", "0", "--shard-count", "2"], &[])
        .await
        .assert_code(0);
    let after_first = env.sim.stats().content_requests;
    env.recarch(&["run", "--shard-count", "2"], &[("JOB_COMPLETION_INDEX", "1")])
        .await
        .assert_code(0);
    assert_eq!(
        env.sim.stats().content_requests,
        4,
        "every organizer in exactly one shard"
    );
    assert!(after_first <= 4);
    assert_archive(&env, &all_recordings(&env));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_corruption_and_orphans() {
    let env = Env::new(sim_config(ContentMode::Direct), 1).await;
    let rec = env.sim.add_recording(&env.organizers[0], 2048);
    env.run().await.assert_code(0);
    let sha = env.sim.content_sha256(&rec.id).expect("known");
    let blob = env.archive().join(format!("blobs/sha256/{sha}"));
    let mut bytes = std::fs::read(&blob).expect("blob");
    bytes[100] ^= 1;
    std::fs::write(&blob, &bytes).expect("corrupt blob");
    let orphan = util::sha256_hex(b"orphan");
    std::fs::write(env.archive().join(format!("blobs/sha256/{orphan}")), b"orphan").expect("orphan");
    let verify = env.recarch(&["verify"], &[]).await;
    verify.assert_code(1);
    assert!(
        verify.stdout.contains(&format!("blob blobs/sha256/{sha} is corrupt")),
        "{}",
        verify.stdout
    );
    assert!(
        verify.stdout.contains(&format!("orphan blob blobs/sha256/{orphan}")),
        "{}",
        verify.stdout
    );
    let sampled = env.recarch(&["verify", "--sample", "0"], &[]).await;
    assert!(sampled.stdout.contains("0 re-hashed"), "{}", sampled.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_offline_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("demo");
    let run = recarch(&["demo".into(), "--out".into(), out.display().to_string()], &[]).await;
    run.assert_code(0);
    assert!(run.stdout.contains("0 problems"), "{}", run.stdout);
    assert!(out.join("archive/blobs/sha256").is_dir());
    // The closing hints work as printed (the binary named by its path: not on PATH under
    // `cargo run`).
    let hints: Vec<&str> = run
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(" status --config ") || l.contains(" verify --config "))
        .collect();
    assert_eq!(hints.len(), 2, "{}", run.stdout);
    for hint in hints {
        let status = std::process::Command::new("sh")
            .args(["-c", hint])
            .env_remove("RECARCH_CLIENT_SECRET")
            .output()
            .expect("sh runs");
        assert_eq!(
            status.status.code(),
            Some(0),
            "{hint}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    // Running it into a non-empty directory is refused, and changes nothing.
    let again = recarch(&["demo".into(), "--out".into(), out.display().to_string()], &[]).await;
    again.assert_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_any_instant_then_rerun_archives_everything_exactly_once() {
    let env = Env::new(sim_config(ContentMode::Alternate), 2).await;
    // One download at a time, so that kills land while paging, mid-download, between blob and
    // manifest, and while checkpoints are written.
    // Single attempts, so that a poisoned item fails (and its queue entry is written) at once.
    env.write_config("\n[fetch]\nconcurrency = 1\nmax_attempts = 1\n");
    // A slow network (8 MiB/s), so that a run lasts long enough to be killed inside.
    env.sim.faults().content_rate(Some(8 << 20));
    // Items that fail while the kills land: their queue entries and dead letters are written
    // (and moved) at every instant a kill may hit.
    let mut poisoned = Vec::new();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for org in &env.organizers {
        for _ in 0..6 {
            env.sim.add_recording(org, rng.u64(100_000..900_000));
        }
    }
    let mut killed = 0;
    for round in 0..14 {
        // New work every round, so that every run has downloads to be killed in.
        for org in &env.organizers {
            env.sim.add_recording(org, rng.u64(300_000..1_500_000));
            let bad = env.sim.add_recording(org, rng.u64(1_000..50_000));
            env.sim
                .faults()
                .content_status(&bad.id, Some(if round % 2 == 0 { 503 } else { 404 }));
            poisoned.push(bad.id);
        }
        let mut child = env.spawn_run();
        tokio::time::sleep(std::time::Duration::from_millis(rng.u64(5..250))).await;
        // Killing a process that already exited fails harmlessly.
        let _ = child.start_kill();
        let out = child.wait_with_output().await.expect("child ends");
        let status = out.status;
        // Killed, or finished first (0); never anything else.
        assert!(
            status.code().is_none() || status.code() == Some(0),
            "round {round}: {status:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        killed += usize::from(status.code().is_none());
    }
    eprintln!("{killed} of 14 runs killed mid-way");
    // Every poisoned item is on its organizer's queue or dead-letter list, or still ahead of
    // the checkpoint: fixed at the source and brought back, the next run archives it.
    for id in &poisoned {
        env.sim.faults().content_status(id, None);
    }
    let before = env.run().await;
    assert!(matches!(before.code, 0 | 1), "{}", before.stderr);
    env.recarch(&["retry", "--all"], &[]).await.assert_code(0);
    assert!(
        killed >= 7,
        "too few runs were killed mid-way ({killed}) for the test to mean anything"
    );
    // The lease of the killed process is recognised as dead: no waiting for its TTL.
    let last = env.run().await;
    last.assert_code(0);
    if std::env::var("RECARCH_TEST_KEEP").is_ok() {
        let kept = env.dir.path().to_owned();
        std::mem::forget(env.dir.path().to_owned());
        eprintln!(
            "archive kept at {}\nstdout: {}\nstderr: {}",
            kept.display(),
            last.stdout,
            last.stderr
        );
        let missing: Vec<_> = all_recordings(&env)
            .into_iter()
            .filter(|(o, r)| !util::manifest_path(&env.archive(), o, &r.id).exists())
            .map(|(o, r)| (o, r.id, r.created))
            .collect();
        eprintln!("missing: {missing:#?}");
        let _ = std::process::Command::new("cp")
            .args(["-r", &kept.display().to_string(), "/tmp/killcase"])
            .status();
    }
    assert_archive(&env, &all_recordings(&env));
    env.recarch(&["verify"], &[]).await.assert_code(0);
    // Every recording is archived once: one more run downloads nothing.
    env.sim.reset_stats();
    env.run().await.assert_code(0);
    assert_eq!(env.sim.stats().content_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_the_next_run_finishes() {
    let env = Env::new(sim_config(ContentMode::Direct), 1).await;
    env.write_config("\n[fetch]\nconcurrency = 1\n");
    let org = env.organizers[0].clone();
    for _ in 0..30 {
        env.sim.add_recording(&org, 600_000);
    }
    let child = env.spawn_run();
    // Wait until something is archived, then ask it to stop.
    let archive = env.archive();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while util::files(&archive)
        .iter()
        .filter(|f| f.starts_with("manifests/"))
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "run made no progress");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let out = util::terminate(child).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let archived_now = util::files(&archive)
        .iter()
        .filter(|f| f.starts_with("manifests/"))
        .count();
    eprintln!("{archived_now} of 30 archived when SIGTERM arrived");
    assert!(
        archived_now < 30,
        "the run finished before SIGTERM; the test proves nothing"
    );
    {
        assert_eq!(out.status.code(), Some(1), "interrupted runs exit 1: {stdout}");
        assert!(stdout.contains("(interrupted)"), "{stdout}");
        let report = last_report(&env);
        assert_eq!(report["interrupted"], true);
        assert_eq!(report["outcome"], "interrupted");
        // The checkpoint never runs ahead of finished work: whatever is not archived is still
        // ahead of the saved link.
        // (No checkpoint at all is truthful too: the first page may still have had an item
        // waiting for its download when the signal came.)
        if let Ok(text) = std::fs::read_to_string(archive.join(format!("state/recordings/{org}.json"))) {
            let state: serde_json::Value = serde_json::from_str(&text).expect("state is JSON");
            assert_ne!(
                state["sources"]["organizer"]["checkpoint"]["kind"], "delta",
                "round not complete: {state}"
            );
        }
    }
    // Nothing half-written is left, and the next run picks up the rest.
    assert!(
        !util::files(&archive)
            .iter()
            .any(|f| f.starts_with("staging/") || f.starts_with("locks/"))
    );
    env.run().await.assert_code(0);
    assert_archive(&env, &all_recordings(&env));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_no_new_download_starts() {
    let env = Env::new(sim_config(ContentMode::Direct), 1).await;
    env.write_config("\n[fetch]\nconcurrency = 1\n");
    let org = env.organizers[0].clone();
    for _ in 0..5 {
        env.sim.add_recording(&org, 1_000_000);
    }
    // Slow bodies (about a second each), so that the signal lands mid-download while the next
    // item already waits for the download slot.
    env.sim.faults().content_rate(Some(1_000_000));
    let child = env.spawn_run();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while env.sim.stats().content_requests == 0 {
        assert!(std::time::Instant::now() < deadline, "no download started");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let out = util::terminate(child).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "interrupted runs exit 1: {stdout}");
    // The download open at the signal finished within the grace period; none started after.
    assert_eq!(env.sim.stats().content_requests, 1, "{stdout}");
    let report = last_report(&env);
    assert_eq!(report["interrupted"], true);
    assert_eq!(
        (report["archived"].as_u64(), report["failed"].as_u64()),
        (Some(1), Some(0)),
        "{report}"
    );
    env.sim.faults().content_rate(None);
    env.run().await.assert_code(0);
    assert_archive(&env, &all_recordings(&env));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_missing_blobs_size_mismatches_and_unreadable_manifests() {
    let env = Env::new(sim_config(ContentMode::Direct), 1).await;
    let org = env.organizers[0].clone();
    let a = env.sim.add_recording(&org, 3000);
    let b = env.sim.add_recording(&org, 4000);
    let c = env.sim.add_recording(&org, 5000);
    env.run().await.assert_code(0);
    let archive = env.archive();
    let blob = |r: &recarch_graph_sim::RecordingInfo| {
        archive.join(format!(
            "blobs/sha256/{}",
            env.sim.content_sha256(&r.id).expect("known")
        ))
    };
    std::fs::remove_file(blob(&a)).expect("remove blob");
    std::fs::write(blob(&b), b"short").expect("truncate blob");
    std::fs::write(util::manifest_path(&archive, &org, &c.id), b"{ not json").expect("break manifest");
    let verify = env.recarch(&["verify"], &[]).await;
    verify.assert_code(1);
    let out = &verify.stdout;
    assert!(out.contains("missing blob"), "{out}");
    assert!(out.contains("has 5 bytes, manifest"), "{out}");
    assert!(out.contains("unreadable manifest"), "{out}");
    // c's blob is now named by no readable manifest.
    assert!(out.contains("orphan blob"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_never_reach_logs_reports_or_status() {
    let env = Env::new(sim_config(ContentMode::Redirect), 1).await;
    env.sim.add_recording(&env.organizers[0], 1000);
    let secret = env.sim.config().client_secret.clone();
    for format in ["text", "json"] {
        env.sim.add_recording(&env.organizers[0], 1000);
        let run = env
            .recarch(&["run", "--log-format", format], &[("RECARCH_LOG", "trace")])
            .await;
        run.assert_code(0);
        for text in [&run.stdout, &run.stderr] {
            assert!(!text.contains(&secret), "client secret leaked: {text}");
            assert!(!text.to_ascii_lowercase().contains("bearer "), "token leaked: {text}");
            // Pre-authenticated download URLs carry signatures: only their host may be logged.
            assert!(!text.contains("/download/"), "download url leaked: {text}");
        }
    }
    let status = env.recarch(&["status", "--json"], &[]).await;
    assert!(!status.stdout.contains(&secret));
    for f in util::files(&env.archive()) {
        if f.ends_with(".json") {
            let text = std::fs::read_to_string(env.archive().join(&f)).expect("read");
            assert!(!text.contains(&secret), "{f} holds the secret");
        }
    }
}

/// Peak RSS (VmHWM) of a running process in KiB, polled until it exits.
async fn run_measuring_peak_rss(env: &Env) -> (std::process::Output, u64) {
    let child = env.spawn_run();
    let status_path = format!("/proc/{}/status", child.id().expect("running"));
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let peak = std::sync::Arc::clone(&peak);
        tokio::spawn(async move {
            while let Ok(status) = tokio::fs::read_to_string(&status_path).await {
                let hwm = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                    .unwrap_or(0);
                peak.fetch_max(hwm, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };
    let out = child.wait_with_output().await.expect("child ends");
    watcher.abort();
    (out, peak.load(std::sync::atomic::Ordering::Relaxed))
}

async fn a_large_recording_streams_with_bounded_memory(backend: Backend) {
    let Some(env) = Env::on(backend, sim_config(ContentMode::Redirect), 1).await else {
        return;
    };
    const SIZE: u64 = 1 << 30;
    let rec = env.sim.add_recording(&env.organizers[0], SIZE);
    let (out, peak_kib) = run_measuring_peak_rss(&env).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // A 1 GiB body through buffers of a few MiB: the whole process stays far below its size.
    eprintln!("{backend:?}: peak RSS {} MiB for a 1 GiB recording", peak_kib / 1024);
    assert!(peak_kib > 0 && peak_kib < 200 * 1024, "peak RSS {peak_kib} KiB");
    let archive = env.open_archive();
    let org = recarch_store::OrganizerId::parse(&env.organizers[0]).expect("guid");
    let manifest = archive
        .get_manifest(&org, &rec.id)
        .await
        .expect("read")
        .expect("manifest written");
    assert_eq!(manifest.content.size, SIZE);
    assert_eq!(
        manifest.content.sha256.to_hex(),
        env.sim.content_sha256(&rec.id).expect("known")
    );
    // The stored bytes re-hash to their name.
    let (digest, size) = archive
        .hash_blob(&manifest.content.sha256)
        .await
        .expect("blob readable");
    assert_eq!((digest, size), (manifest.content.sha256, SIZE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_recording_streams_to_s3_with_bounded_memory() {
    a_large_recording_streams_with_bounded_memory(Backend::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_recording_streams_to_seaweedfs_with_bounded_memory() {
    a_large_recording_streams_with_bounded_memory(Backend::SeaweedFs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_recording_streams_to_azure_with_bounded_memory() {
    a_large_recording_streams_with_bounded_memory(Backend::Azure).await;
}

/// A real S3 server that checks signatures (SeaweedFS): a wrong secret key is exit 4 with the
/// server's error code, and the key never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_key_on_seaweedfs_exits_4_without_showing_it() {
    let Some(env) = Env::on(Backend::SeaweedFs, sim_config(ContentMode::Direct), 1).await else {
        return;
    };
    env.sim.add_recording(&env.organizers[0], 100);
    let wrong = env
        .recarch(
            &["run"],
            &[(
                "RECARCH_STORE__OPTIONS__AWS_SECRET_ACCESS_KEY",
                "wrong-secret-key-value",
            )],
        )
        .await;
    wrong.assert_code(4);
    assert!(wrong.stderr.contains("SignatureDoesNotMatch"), "{}", wrong.stderr);
    assert!(wrong.stderr.contains("s3://recarch-test/"), "{}", wrong.stderr);
    for text in [&wrong.stdout, &wrong.stderr] {
        assert!(!text.contains("wrong-secret-key-value"), "{text}");
    }
    assert_eq!(env.sim.stats().content_requests, 0);
    // The right key works.
    env.run().await.assert_code(0);
    assert_store_archive(&env, &all_recordings(&env)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_store_exits_4_naming_the_store() {
    let Some(env) = Env::on(Backend::S3, sim_config(ContentMode::Direct), 1).await else {
        return;
    };
    env.sim.add_recording(&env.organizers[0], 100);
    // Unreachable endpoint.
    let dead = env
        .recarch(
            &["run"],
            &[("RECARCH_STORE__OPTIONS__AWS_ENDPOINT", "http://127.0.0.1:9")],
        )
        .await;
    dead.assert_code(4);
    assert!(dead.stderr.contains("s3://recarch-test/"), "{}", dead.stderr);
    // A bucket that does not exist.
    let missing = env
        .recarch(&["run"], &[("RECARCH_STORE__URL", "s3://no-such-bucket-recarch/x")])
        .await;
    missing.assert_code(4);
    assert!(
        missing.stderr.contains("s3://no-such-bucket-recarch/x") && missing.stderr.contains("NoSuchBucket"),
        "{}",
        missing.stderr
    );
    // Wrong credentials, against the emulator that checks signatures.
    if let Ok(auth_endpoint) = std::env::var("RECARCH_TEST_S3_AUTH_ENDPOINT") {
        let wrong = env
            .recarch(
                &["run"],
                &[
                    ("RECARCH_STORE__OPTIONS__AWS_ENDPOINT", auth_endpoint.as_str()),
                    (
                        "RECARCH_STORE__OPTIONS__AWS_SECRET_ACCESS_KEY",
                        "wrong-secret-key-value",
                    ),
                ],
            )
            .await;
        wrong.assert_code(4);
        assert!(!wrong.stderr.contains("wrong-secret-key-value"), "{}", wrong.stderr);
        assert!(wrong.stderr.contains("s3://recarch-test/"), "{}", wrong.stderr);
    }
    assert_eq!(
        env.sim.stats().content_requests,
        0,
        "nothing fetched before the store was found usable"
    );
}
