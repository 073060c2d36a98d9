//! WORM retention on S3 Object Lock, through the binary, on moto (which enforces Object Lock,
//! legal holds and governance retention: a locked or held version cannot be deleted): every
//! object of the archive locked until its retain-until in the configured mode, the state only
//! at `state_url`, legal holds on exactly the matching custodian's objects and off again,
//! disposition of what expired and no hold covers, and `verify` clean afterwards.

use std::collections::BTreeMap;

use chrono::Utc;
use recarch_graph_sim::{ContentMode, SimConfig};
use serde_json::Value;

use super::util::{Backend, Env, Store, raw_keys};

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The configuration: the archive in `archive` (a bucket of moto), the state in `state`,
/// governance retention of `period`.
fn config(archive: &Store, state: &Store, period: &str) -> String {
    format!(
        "[retention]\nmode = \"governance\"\nperiod = \"{period}\"\n{}",
        archive
            .toml()
            .replacen("[store]\n", &format!("[store]\nstate_url = \"{}\"\n", state.url), 1)
    )
}

/// The manifests of organizer `org` among `keys`.
fn manifests_of(keys: &BTreeMap<String, recarch_store::LockState>, org: &str) -> Vec<String> {
    keys.keys()
        .filter(|k| k.starts_with("manifests/") && k.contains(org))
        .cloned()
        .collect()
}

/// Each archive object's lock, as the store reports it.
async fn locks(archive: &recarch_store::Archive) -> BTreeMap<String, recarch_store::LockState> {
    let mut out = BTreeMap::new();
    for key in raw_keys(archive.object_store().as_ref()).await {
        if key.starts_with("staging/") {
            continue;
        }
        let state = archive.lock_state(&key).await.expect("HEAD").expect("present");
        out.insert(key, state);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_lock_holds_and_disposition_on_moto() {
    let config_sim = SimConfig {
        content_mode: ContentMode::Direct,
        ..SimConfig::default()
    };
    let Some(env) = Env::on(Backend::S3, config_sim, 2).await else {
        return;
    };
    let tag = format!("{:08x}", fastrand::u32(..));
    let (locked_bucket, plain_bucket) = (format!("worm-{tag}"), format!("plain-{tag}"));
    let archive_store = env.create_bucket(&locked_bucket, true).await;
    let state_store = env.create_bucket(&format!("state-{tag}"), false).await;
    let plain_store = env.create_bucket(&plain_bucket, false).await;
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    for org in [&a, &b] {
        env.sim.add_recording(org, 30_000);
        env.sim.add_recording(org, 40_000);
    }

    // A bucket without Object Lock: exit 2 naming it, before anything is written.
    env.write_config_with(&config(&plain_store, &state_store, "6s"));
    let refused = env.recarch(&["run"], &[]).await;
    refused.assert_code(2);
    assert!(
        refused.stderr.contains(&plain_bucket) && refused.stderr.contains("Object Lock"),
        "{}",
        refused.stderr
    );

    // Every archive object is locked in governance mode until its retain-until; the state is
    // only at state_url.
    env.write_config_with(&config(&archive_store, &state_store, "6s"));
    let started = Utc::now();
    let metrics = env.dir.path().join("metrics.prom");
    let run = env
        .recarch(&["run", "--metrics-file", &metrics.display().to_string()], &[])
        .await;
    run.assert_code(0);
    let metrics = std::fs::read_to_string(&metrics).expect("metrics written");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("recarch_objects_locked{how=\"locked\"} ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    let archive = recarch_store::Archive::open(&archive_store.url, &archive_store.options).expect("open");
    let locked = locks(&archive).await;
    assert!(locked.keys().any(|k| k.starts_with("blobs/")), "{locked:#?}");
    for prefix in ["manifests/", "meetings/", "catalog/", "ledger/"] {
        assert!(locked.keys().any(|k| k.starts_with(prefix)), "no {prefix}: {locked:#?}");
    }
    for (key, state) in &locked {
        assert!(
            !key.starts_with("state/") && !key.starts_with("locks/") && !key.starts_with("runs/"),
            "mutable {key} in the locked bucket"
        );
        let lock = state.retention.unwrap_or_else(|| panic!("{key} is not locked"));
        assert_eq!(lock.mode, recarch_store::LockMode::Governance, "{key}");
        assert!(
            lock.retain_until >= started + chrono::Duration::seconds(5),
            "{key}: {lock:?}"
        );
        assert!(!state.legal_hold, "{key}");
    }
    let state = recarch_store::Archive::open(&state_store.url, &state_store.options).expect("open");
    let state_keys = raw_keys(state.object_store().as_ref()).await;
    assert!(state_keys.iter().any(|k| k.starts_with("runs/")), "{state_keys:#?}");
    // The run report says what locking cost.
    let report = state_keys.iter().find(|k| k.starts_with("runs/")).expect("a report");
    let report: Value = {
        use object_store::ObjectStoreExt as _;
        let bytes = state
            .object_store()
            .get(&report.as_str().into())
            .await
            .expect("report")
            .bytes()
            .await
            .expect("bytes");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    assert_eq!(report["retention"]["mode"], "governance", "{report}");
    // Every object but the run's last ledger record (appended after the report) was locked
    // as it was written, or (blobs, written before their manifest) set then.
    let counted =
        report["retention"]["locked"].as_u64().unwrap_or(0) + report["retention"]["extended"].as_u64().unwrap_or(0);
    assert!(counted + 1 >= locked.len() as u64, "{report}");

    // The store refuses to delete a locked version.
    let manifest = locked.keys().find(|k| k.starts_with("manifests/")).expect("a manifest");
    let refused = archive.dispose_object(manifest).await.expect_err("locked, yet deleted");
    assert!(format!("{refused:#}").contains(manifest.as_str()), "{refused:#}");
    assert!(archive.lock_state(manifest).await.expect("HEAD").is_some());

    // A hold on organizer A: the legal hold on exactly A's manifests and blobs.
    env.recarch(&["hold", "place", "--matter", "Acme", "--organizer", a.as_str()], &[])
        .await
        .assert_code(0);
    let check_held = |held: &BTreeMap<String, recarch_store::LockState>, items_of_a: usize| {
        assert_eq!(manifests_of(held, &a).len(), items_of_a);
        for key in manifests_of(held, &a) {
            assert!(held[&key].legal_hold, "{key} of A not held");
        }
        for key in manifests_of(held, &b) {
            assert!(!held[&key].legal_hold, "{key} of B held");
        }
        let held_blobs = held
            .iter()
            .filter(|(k, s)| k.starts_with("blobs/") && s.legal_hold)
            .count();
        assert_eq!(held_blobs, items_of_a, "A's blobs: {held:#?}");
    };
    check_held(&locks(&archive).await, 2);

    // An item archived later that the matter covers is held as it is written; a second matter
    // on the same custodian keeps the holds on when the first is released.
    env.sim.add_recording(&a, 25_000);
    env.recarch(&["run"], &[]).await.assert_code(0);
    check_held(&locks(&archive).await, 3);
    env.recarch(&["hold", "place", "--matter", "Beta", "--organizer", a.as_str()], &[])
        .await
        .assert_code(0);
    env.recarch(&["hold", "release", "--matter", "Acme"], &[])
        .await
        .assert_code(0);
    let held = locks(&archive).await;
    check_held(&held, 3);

    // Past the retention: a dry run deletes nothing; --yes deletes B's items and keeps A's.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let dry = json_of(&env.recarch(&["dispose", "--json"], &[]).await.stdout);
    assert_eq!(
        (dry["eligible"].as_u64(), dry["held"].as_u64()),
        (Some(2), Some(3)),
        "{dry}"
    );
    assert_eq!(locks(&archive).await.len(), held.len(), "a dry run deleted something");
    let done = env.recarch(&["dispose", "--yes", "--json"], &[]).await;
    done.assert_code(0);
    let done = json_of(&done.stdout);
    assert_eq!(done["disposed"], 2, "{done}");
    let after = locks(&archive).await;
    for key in manifests_of(&held, &b) {
        assert!(!after.contains_key(&key), "{key} of B is still there");
    }
    for key in manifests_of(&held, &a) {
        assert!(after.contains_key(&key), "{key} of A (held) was deleted");
    }
    env.recarch(&["verify"], &[]).await.assert_code(0);

    // Released: the legal holds go off, and A's items go at the next disposition.
    env.recarch(&["hold", "release", "--matter", "Beta"], &[])
        .await
        .assert_code(0);
    let released = locks(&archive).await;
    assert!(released.values().all(|s| !s.legal_hold), "{released:#?}");
    let done = json_of(&env.recarch(&["dispose", "--yes", "--json"], &[]).await.stdout);
    assert_eq!(done["disposed"], 3, "{done}");
    env.recarch(&["verify"], &[]).await.assert_code(0);
}

/// Azure: a container without version-level immutability (Azurite has none) is refused with
/// a retention mode, exit 2 naming the container, before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_container_without_immutability_is_refused() {
    let Some(env) = Env::on(Backend::Azure, SimConfig::default(), 1).await else {
        return;
    };
    env.sim.add_recording(&env.organizers[0], 10_000);
    let state_dir = env.dir.path().join("state");
    let state = Store {
        url: url::Url::from_directory_path(&state_dir).expect("absolute").to_string(),
        options: Vec::new(),
    };
    env.write_config_with(&config(&env.store, &state, "1d"));
    let refused = env.recarch(&["run"], &[]).await;
    refused.assert_code(2);
    let container = env.store.url["az://".len()..].split('/').next().expect("a container");
    assert!(
        refused.stderr.contains(container) && refused.stderr.contains("version-level immutability"),
        "{}",
        refused.stderr
    );
    let archive = env.open_archive();
    assert!(
        raw_keys(archive.object_store().as_ref()).await.is_empty(),
        "something was written"
    );
}
