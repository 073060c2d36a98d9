//! `[store].state_url`: the documents a run rewrites (`state/`, `locks/`, `runs/`) in a store
//! of their own, the archive's bucket or directory holding only what is written once.

use recarch_graph_sim::{ContentMode, SimConfig};

use super::util::{Backend, Env, Store, all_recordings, assert_store_archive, files, raw_keys};

/// The prefixes that live at `state_url`.
const MUTABLE: [&str; 3] = ["state/", "locks/", "runs/"];

fn is_mutable(key: &str) -> bool {
    MUTABLE.iter().any(|p| key.starts_with(p))
}

/// A tenant of one organizer with five recordings, listed three to a delta page (so that a
/// round from the start takes several delta requests, and one resumed from its deltaLink one).
async fn tenant(backend: Backend) -> Option<Env> {
    let config = SimConfig {
        content_mode: ContentMode::Direct,
        page_size: 2,
        ..SimConfig::default()
    };
    let env = Env::on(backend, config, 1).await?;
    for i in 0..5 {
        env.sim.add_recording(&env.organizers[0], 20_000 + i * 1_001);
    }
    Some(env)
}

/// `[store]` of `store` with `state_url` added (its options, if any, are the archive's: a
/// state store of the same kind takes them).
fn with_state_url(store: &Store, state_url: &str) -> String {
    store
        .toml()
        .replacen("[store]\n", &format!("[store]\nstate_url = \"{state_url}\"\n"), 1)
}

/// Runs, checks the split, runs again (resuming from the checkpoint read at `state_url`), and
/// checks `status` and `verify`. `keys` lists (archive, state) keys after a run.
async fn run_twice_and_read<F, Fut>(env: &Env, keys: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (Vec<String>, Vec<String>)>,
{
    let first = env.run().await;
    first.assert_code(0);
    assert!(first.stdout.contains("5 archived"), "{}", first.stdout);
    let full_round = env.sim.stats().delta_requests;
    assert!(full_round >= 3, "a round from the start pages: {full_round}");
    assert_store_archive(env, &all_recordings(env)).await;
    let (archive, state) = keys().await;
    let misplaced: Vec<&String> = archive.iter().filter(|k| is_mutable(k)).collect();
    assert!(misplaced.is_empty(), "mutable documents in the archive: {misplaced:#?}");
    assert!(
        archive.iter().any(|k| k.starts_with("blobs/")) && archive.iter().any(|k| k.starts_with("manifests/")),
        "{archive:#?}"
    );
    let stray: Vec<&String> = state.iter().filter(|k| !is_mutable(k)).collect();
    assert!(stray.is_empty(), "archive objects at state_url: {stray:#?}");
    for prefix in ["state/recordings/", "runs/"] {
        assert!(
            state.iter().any(|k| k.starts_with(prefix)),
            "no {prefix} at state_url: {state:#?}"
        );
    }

    // The second run reads its checkpoint there: one delta request (the deltaLink), nothing
    // downloaded.
    env.sim.reset_stats();
    env.run().await.assert_code(0);
    let stats = env.sim.stats();
    assert_eq!(stats.content_requests, 0, "rerun downloaded again");
    assert_eq!(stats.delta_requests, 1, "resumed from the saved deltaLink");
    let (archive, state) = keys().await;
    assert!(!archive.iter().any(|k| is_mutable(k)), "{archive:#?}");
    assert_eq!(
        state.iter().filter(|k| k.starts_with("runs/")).count(),
        2,
        "both run reports at state_url: {state:#?}"
    );

    let status = env.recarch(&["status"], &[]).await;
    status.assert_code(0);
    let org = &env.organizers[0];
    assert!(
        status.stdout.contains(&format!("organizer {org}: up to date"))
            && status.stdout.contains("last run: shard 0-of-1")
            && status.stdout.contains("state: "),
        "{}",
        status.stdout
    );
    let verify = env.recarch(&["verify"], &[]).await;
    verify.assert_code(0);
    assert!(verify.stdout.contains("0 problems"), "{}", verify.stdout);
}

/// An S3 archive (moto) with its state in a second bucket of the same server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_in_a_second_bucket_on_s3() {
    let Some(env) = tenant(Backend::S3).await else {
        return;
    };
    let bucket = format!("recarch-state-{:08x}", fastrand::u32(..));
    let state = env.create_bucket(&bucket, false).await;
    env.write_config_with(&with_state_url(&env.store, &state.url));
    let keys = || async {
        let archive = raw_keys(env.open_archive().object_store().as_ref()).await;
        let state = recarch_store::Archive::open(&state.url, &state.options).expect("open the state store");
        (archive, raw_keys(state.object_store().as_ref()).await)
    };
    run_twice_and_read(&env, keys).await;
}

/// A local-disk archive with its state in another directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_in_another_directory() {
    let env = tenant(Backend::Local).await.expect("local disk");
    let state_dir = env.dir.path().join("state");
    let state_url = url::Url::from_directory_path(&state_dir).expect("absolute").to_string();
    env.write_config_with(&with_state_url(&env.store, &state_url));
    let keys = || async { (files(&env.archive()), files(&state_dir)) };
    run_twice_and_read(&env, keys).await;
}

/// An archive that ran before `state_url` was set: its first run with it copies the state
/// across and carries on from its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_that_ran_before_carries_on_from_its_checkpoint() {
    let env = tenant(Backend::Local).await.expect("local disk");
    env.run().await.assert_code(0);
    let before = files(&env.archive());
    let state_dir = env.dir.path().join("state");
    let state_url = url::Url::from_directory_path(&state_dir).expect("absolute").to_string();
    env.write_config_with(&with_state_url(&env.store, &state_url));
    env.sim.reset_stats();
    let moved = env.run().await;
    moved.assert_code(0);
    assert!(moved.stderr.contains("copied the archive's state/"), "{}", moved.stderr);
    let stats = env.sim.stats();
    assert_eq!(stats.content_requests, 0, "nothing downloaded again");
    assert_eq!(stats.delta_requests, 1, "resumed from the checkpoint copied across");
    let state = files(&state_dir);
    for key in before.iter().filter(|k| is_mutable(k)) {
        assert!(state.contains(key), "{key} copied: {state:#?}");
    }
    let reports = |files: &[String]| files.iter().filter(|k| k.starts_with("runs/")).count();
    assert_eq!(reports(&state), 2, "the copied report and this run's: {state:#?}");
    assert_eq!(reports(&files(&env.archive())), 1, "the original stays, no new one");
    // Once there, nothing is copied again.
    let again = env.run().await;
    again.assert_code(0);
    assert!(
        !again.stderr.contains("copied the archive's state/"),
        "{}",
        again.stderr
    );
}

/// Exit 2: the state in the archive's own bucket or directory, and retention on S3 without a
/// state store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_configurations() {
    let env = tenant(Backend::Local).await.expect("local disk");
    let inside = url::Url::from_directory_path(env.archive().join("state"))
        .expect("absolute")
        .to_string();
    env.write_config_with(&with_state_url(&env.store, &inside));
    let out = env.run().await;
    out.assert_code(2);
    assert!(
        out.stderr.contains("[store].state_url") && out.stderr.contains("contain one another"),
        "{}",
        out.stderr
    );
    assert!(!env.archive().join("manifests").exists(), "nothing written");

    // S3: another prefix of the archive's bucket is still its bucket.
    let Some(s3) = tenant(Backend::S3).await else {
        return;
    };
    let bucket = s3.store.url["s3://".len()..]
        .split('/')
        .next()
        .expect("a bucket")
        .to_owned();
    s3.write_config_with(&with_state_url(&s3.store, &format!("s3://{bucket}/elsewhere")));
    let out = s3.run().await;
    out.assert_code(2);
    assert!(
        out.stderr.contains("[store].state_url") && out.stderr.contains(&format!("bucket \"{bucket}\"")),
        "{}",
        out.stderr
    );

    // Retention on Azure needs a state store, as on S3 (`retention::retention_that_cannot_be_kept_is_refused` tests that one).
    let Some(azure) = tenant(Backend::Azure).await else {
        return;
    };
    azure.write_config("[retention]\nmode = \"governance\"\nperiod = \"10s\"\n");
    let out = azure.run().await;
    out.assert_code(2);
    assert!(
        out.stderr.contains("az://") && out.stderr.contains("requires [store].state_url"),
        "{}",
        out.stderr
    );
}
