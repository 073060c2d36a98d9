//! No invisible debris on S3: a run killed (SIGKILL) during multipart uploads leaves them
//! incomplete (billed, not in listings); the next run of the shard aborts them.

use std::time::{Duration, Instant};

use recarch_graph_sim::{ContentMode, SimConfig};

use crate::util::{Backend, Env, all_recordings, assert_store_archive};

/// Recordings of three parts and a bit (8 MiB parts): every upload is a multipart upload (the
/// tests spool every body to a file: held in memory, a blob goes to S3 in one put).
const RECORDING_SIZE: u64 = 3 * 8 * 1024 * 1024 + 12_345;

/// The archive's incomplete multipart uploads, as `(key, upload id)`.
async fn incomplete(archive: &recarch_store::Archive) -> Vec<(String, String)> {
    archive
        .incomplete_uploads()
        .await
        .expect("ListMultipartUploads")
        .expect("an S3 archive lists its incomplete uploads")
        .into_iter()
        .map(|u| (u.key, u.upload_id))
        .collect()
}

/// Starts a run and kills it with SIGKILL once one of its multipart uploads is under way.
/// Returns the incomplete uploads the kill left, or `None` when the run finished first or its
/// uploads all completed between the look and the kill.
async fn kill_mid_upload(env: &Env, archive: &recarch_store::Archive) -> Option<Vec<(String, String)>> {
    let before = incomplete(archive).await;
    let mut child = env.spawn_run();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = incomplete(archive).await;
        // Uploads left by an earlier kill are aborted by this run at its start: only new
        // ones count, and only of blobs (the store probe's copy is a multipart upload too,
        // under the shard's staging prefix, before the run's cleanup).
        if now.iter().any(|u| u.0.starts_with("blobs/") && !before.contains(u)) {
            break;
        }
        if child.try_wait().expect("child status").is_some() || Instant::now() > deadline {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.start_kill().expect("kill -9");
    let status = child.wait().await.expect("child ends");
    assert!(status.code().is_none(), "the run ended before the kill: {status:?}");
    let left = incomplete(archive).await;
    (!left.is_empty()).then_some(left)
}

async fn killed_mid_upload_then_rerun_leaves_no_incomplete_upload(backend: Backend) {
    let config = SimConfig {
        content_mode: ContentMode::Direct,
        page_size: 2,
        ..SimConfig::default()
    };
    let Some(env) = Env::on(backend, config, 1).await else {
        return;
    };
    let started = Instant::now();
    for _ in 0..8 {
        env.sim.add_recording(&env.organizers[0], RECORDING_SIZE);
    }
    let store = env
        .store
        .toml()
        .replacen("[store]\n", "[store]\nspool_memory_mib = 0\n", 1);
    env.write_config_with(&format!("[fetch]\nconcurrency = 2\n{store}"));
    let archive = env.open_archive();

    // Two kills, each inside an upload.
    let mut kills: Vec<Vec<(String, String)>> = Vec::new();
    for _ in 0..6 {
        if let Some(left) = kill_mid_upload(&env, &archive).await {
            // The run killed now aborted, at its start, what the kill before it left.
            if let Some(earlier) = kills.last() {
                for upload in earlier {
                    assert!(
                        !left.contains(upload),
                        "{upload:?} of the previous kill is still there: {left:?}"
                    );
                }
            }
            kills.push(left);
            if kills.len() == 2 {
                break;
            }
        }
    }
    assert_eq!(kills.len(), 2, "no two runs could be killed during an upload");
    eprintln!(
        "{backend:?}: incomplete uploads after each kill: {:?}",
        kills.iter().map(Vec::len).collect::<Vec<_>>()
    );
    // They are the uploads of blobs, with their intent records under the shard's prefix.
    let object_keys: Vec<String> = {
        use futures::TryStreamExt;
        archive
            .object_store()
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .expect("list")
    };
    for (key, _) in kills[1].iter().filter(|(k, _)| !k.starts_with("staging/0-of-1/probe-")) {
        assert!(key.starts_with("blobs/sha256/"), "{key}");
        let digest = key.trim_start_matches("blobs/sha256/");
        assert!(
            object_keys
                .iter()
                .any(|k| k.starts_with(&format!("state/uploads/0-of-1/{digest}-"))),
            "no intent record for {key}: {object_keys:#?}"
        );
    }

    // The next run finishes the work and aborts what the last kill left.
    let last = env.run().await;
    last.assert_code(0);
    assert!(
        last.stderr
            .contains("aborted incomplete multipart uploads of interrupted runs"),
        "{}",
        last.stderr
    );
    eprintln!(
        "{backend:?}: left after the run that exited 0: {}",
        incomplete(&archive).await.len()
    );
    assert_eq!(
        incomplete(&archive).await,
        vec![],
        "uploads left after a run that exited 0"
    );
    assert_store_archive(&env, &all_recordings(&env)).await;
    let keys = crate::util::raw_keys_under(archive.object_store().as_ref(), Some("state/uploads")).await;
    assert_eq!(keys, Vec::<String>::new(), "intent records left");
    env.recarch(&["verify"], &[]).await.assert_code(0);
    eprintln!("{backend:?}: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_upload_on_s3_then_rerun_leaves_no_incomplete_upload() {
    killed_mid_upload_then_rerun_leaves_no_incomplete_upload(Backend::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_upload_on_seaweedfs_then_rerun_leaves_no_incomplete_upload() {
    killed_mid_upload_then_rerun_leaves_no_incomplete_upload(Backend::SeaweedFs).await;
}
