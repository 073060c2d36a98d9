//! `recarch dispose`: with a retention of seconds, items past their retain-until and under no
//! hold are deleted (manifest, then each blob no remaining manifest names) after a `dispose`
//! ledger record; held items, items not yet expired and blobs shared with a kept item stay; a
//! dry run deletes nothing; `verify` stays clean and `ls` stops listing what was disposed of.
//!
//! Every check goes through the object store, so that an S3 variant (once retention with a
//! mode is accepted there) is one more `#[tokio::test]` calling the same function.

use std::collections::{BTreeMap, BTreeSet};

use recarch_store::ledger::{Actor, LedgerEvent};
use recarch_store::{Archive, CatalogEntry, ManifestWrite, OrganizerId, ShardId};
use serde_json::{Value, json};

use super::util::{Backend, Env, raw_get, raw_keys, sha256_hex};

/// Two seconds of retention, in governance mode.
const RETENTION: &str = "[retention]\nmode = \"governance\"\nperiod = \"2s\"\n";
const OFFICER: (&str, &str) = ("USER", "records-officer");
const KINDS: (&str, &str) = ("RECARCH_SOURCE__KINDS", "recordings,transcripts");

/// Every object of the archive with the SHA-256 of its bytes, past the archive.
async fn snapshot(env: &Env) -> BTreeMap<String, String> {
    let archive = env.open_archive();
    let store = archive.object_store();
    let mut out = BTreeMap::new();
    for key in raw_keys(store.as_ref()).await {
        let bytes = raw_get(store.as_ref(), key.clone()).await;
        out.insert(key, sha256_hex(&bytes));
    }
    out
}

fn manifest_key(kind: &str, org: &str, id: &str) -> String {
    format!("manifests/{kind}/{org}/{}.json", sha256_hex(id.as_bytes()))
}

/// The ledger's records, oldest first.
async fn records(env: &Env) -> Vec<Value> {
    let archive = env.open_archive();
    let store = archive.object_store();
    let mut keys: Vec<String> = raw_keys(store.as_ref())
        .await
        .into_iter()
        .filter(|k| k.starts_with("ledger/"))
        .collect();
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        out.push(serde_json::from_slice(&raw_get(store.as_ref(), key).await).expect("a record"));
    }
    out
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The blobs an item's manifest names (content, and a transcript's metadata), with their
/// sizes.
fn blobs_of(manifest: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for member in manifest.as_object().expect("an object").values() {
        if let (Some(blob), Some(size)) = (
            member.get("blob").and_then(Value::as_str),
            member.get("size").and_then(Value::as_u64),
        ) {
            out.insert(blob.to_owned(), size);
        }
    }
    out
}

async fn expired_unheld_items_are_disposed_of_after_the_record(backend: Backend) {
    let Some(env) = Env::on(
        backend,
        recarch_graph_sim::SimConfig {
            content_mode: recarch_graph_sim::ContentMode::Direct,
            ..Default::default()
        },
        2,
    )
    .await
    else {
        return;
    };
    env.write_config(RETENTION);
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    let ra = env.sim.add_recording(&a, 10_000);
    let ta = env.sim.add_transcript(&a, Some(&ra), 2_000);
    let ra2 = env.sim.add_recording(&a, 11_000);
    let rb = env.sim.add_recording(&b, 12_000);
    env.recarch(&["run"], &[KINDS]).await.assert_code(0);
    env.recarch(
        &["hold", "place", "--matter", "Acme", "--organizer", b.as_str()],
        &[OFFICER],
    )
    .await
    .assert_code(0);

    // Nothing has expired yet: nothing to dispose of, and nothing logged.
    let before = snapshot(&env).await;
    let early = env.recarch(&["dispose", "--yes", "--json"], &[]).await;
    early.assert_code(0);
    let early = json_of(&early.stdout);
    assert_eq!(early["eligible"], 0, "{early}");
    assert_eq!(early["notExpired"], 3, "{early}");
    assert_eq!(early["held"], 1, "{early}");
    assert_eq!(snapshot(&env).await, before, "nothing changed");

    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let disposed_keys = [
        manifest_key("recordings", &a, &ra.id),
        manifest_key("transcripts", &a, &ta.id),
        manifest_key("recordings", &a, &ra2.id),
    ];
    let kept_key = manifest_key("recordings", &b, &rb.id);
    let manifest = |key: &str| {
        let before = &before;
        let env = &env;
        let key = key.to_owned();
        async move {
            assert!(before.contains_key(&key), "{key} archived");
            let archive = env.open_archive();
            serde_json::from_slice::<Value>(&raw_get(archive.object_store().as_ref(), key).await).expect("JSON")
        }
    };
    let mut doomed = BTreeMap::new();
    for key in &disposed_keys {
        doomed.extend(blobs_of(&manifest(key).await));
    }
    let kept_blobs = blobs_of(&manifest(&kept_key).await);
    // Two recordings, a transcript's content and its metadata.
    assert_eq!(doomed.len(), 4, "{doomed:?}");
    let doomed_bytes: u64 = doomed.values().sum();
    let doomed_blobs: BTreeSet<String> = doomed.keys().cloned().collect();

    // A dry run (the default) says what would go, and deletes nothing.
    for args in [&["dispose"][..], &["dispose", "--dry-run"][..]] {
        let dry = env.recarch(args, &[]).await;
        dry.assert_code(0);
        assert!(dry.stdout.contains("(dry run): 3 eligible"), "{}", dry.stdout);
        assert!(dry.stdout.contains("1 held"), "{}", dry.stdout);
        assert!(dry.stdout.contains("nothing was deleted"), "{}", dry.stdout);
        for key in disposed_keys.iter().chain(&doomed_blobs) {
            assert!(dry.stdout.contains(key.as_str()), "{key}: {}", dry.stdout);
        }
        assert_eq!(snapshot(&env).await, before, "a dry run changes nothing");
    }
    let dry = json_of(&env.recarch(&["dispose", "--json"], &[]).await.stdout);
    assert_eq!(dry["dryRun"], true);
    assert_eq!((dry["eligible"].as_u64(), dry["disposed"].as_u64()), (Some(3), Some(0)));
    assert_eq!(dry["held"], 1);
    assert_eq!(dry["blobsDeleted"], 4);
    assert_eq!(dry["bytesFreed"], doomed_bytes);
    // The two flags say opposite things.
    env.recarch(&["dispose", "--dry-run", "--yes"], &[])
        .await
        .assert_code(2);
    assert_eq!(snapshot(&env).await, before);

    // Locked objects are read-only files on local disk: disposal deletes them all the same
    // (a file's removal needs only its directory to be writable).
    if backend == Backend::Local {
        for key in disposed_keys.iter().chain(&doomed_blobs) {
            let path = env.archive().join(key);
            let mut permissions = std::fs::metadata(&path).expect("archived").permissions();
            permissions.set_readonly(true);
            std::fs::set_permissions(&path, permissions).expect("read-only");
        }
    }
    let ledger_before = records(&env).await.len();
    let done = env.recarch(&["dispose", "--yes", "--json"], &[OFFICER]).await;
    done.assert_code(0);
    let done = json_of(&done.stdout);
    assert_eq!(done["dryRun"], false);
    assert_eq!(
        (done["eligible"].as_u64(), done["disposed"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(done["held"], 1);
    assert_eq!(done["blobsDeleted"], 4);
    assert_eq!(done["bytesFreed"], doomed_bytes);
    assert_eq!(done["failures"], json!([]));

    // Exactly the expired, unheld manifests and their blobs are gone.
    let after = snapshot(&env).await;
    let gone: BTreeSet<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let expected: BTreeSet<&String> = disposed_keys.iter().chain(&doomed_blobs).collect();
    assert_eq!(gone, expected);
    assert!(after.contains_key(&kept_key));
    for blob in kept_blobs.keys() {
        assert!(after.contains_key(blob), "{blob} kept");
    }

    // The dispose record came first: it logs each manifest with the digest of its bytes as
    // they were, the blobs, the counts and the actor; the markers' record follows it.
    let ledger = records(&env).await;
    let new = &ledger[ledger_before..];
    assert_eq!(new[0]["event"], "dispose", "{new:#?}");
    let record = &new[0];
    let leaves: BTreeMap<String, String> = record["leaves"]
        .as_array()
        .expect("leaves")
        .iter()
        .map(|l| {
            (
                l["key"].as_str().expect("key").to_owned(),
                l["sha256"].as_str().expect("digest").to_owned(),
            )
        })
        .collect();
    let logged: BTreeMap<String, String> = disposed_keys.iter().map(|k| (k.clone(), before[k].clone())).collect();
    assert_eq!(leaves, logged);
    assert_eq!(record["details"]["items"], 3);
    assert_eq!(record["details"]["held"], 1);
    assert_eq!(record["actor"]["user"], "records-officer");
    assert_eq!(record["details"]["actor"]["user"], "records-officer");
    let blobs: BTreeSet<String> = record["details"]["blobs"]
        .as_array()
        .expect("blobs")
        .iter()
        .map(|b| format!("blobs/sha256/{}", b.as_str().expect("hex")))
        .collect();
    assert_eq!(blobs, doomed_blobs);
    let seq = record["seq"].as_u64().expect("seq");
    assert_eq!(done["ledgerRecords"], json!([format!("ledger/{seq:020}.json")]));
    assert!(
        new[1..]
            .iter()
            .any(|r| r["details"]["disposalMarkers"] == json!(format!("ledger/{seq:020}.json"))),
        "{new:#?}"
    );
    // Nothing it deleted was logged after it.
    for later in &new[1..] {
        for leaf in later["leaves"].as_array().into_iter().flatten() {
            assert!(!disposed_keys.contains(&leaf["key"].as_str().unwrap_or_default().to_owned()));
        }
    }

    // verify is clean: the ledger excuses the deletions, the meeting index keeps its entries
    // as evidence, the catalog's markers hide what was disposed of.
    let verify = env.recarch(&["verify"], &[]).await;
    verify.assert_code(0);
    assert!(verify.stdout.contains("0 problems"), "{}", verify.stdout);
    let ls = env.recarch(&["ls", "--json"], &[]).await;
    ls.assert_code(0);
    let listed: BTreeSet<String> = ls
        .stdout
        .lines()
        .map(|l| json_of(l)["manifest"].as_str().expect("manifest").to_owned())
        .collect();
    assert_eq!(listed, BTreeSet::from([kept_key.clone()]));
    let shown = env.recarch(&["show", "--json", &ra.id], &[]).await;
    shown.assert_code(0);
    let shown = json_of(&shown.stdout);
    assert_eq!(shown["items"], json!([]), "{shown}");
    assert_eq!(shown["disposed"][0]["manifest"], disposed_keys[0].as_str(), "{shown}");
    assert_eq!(shown["disposed"][0]["record"], format!("ledger/{seq:020}.json"));
    let text = env.recarch(&["show", &ra2.id], &[]).await;
    text.assert_code(0);
    assert!(text.stdout.contains("disposed of: recordings"), "{}", text.stdout);
    let status = env.recarch(&["status"], &[]).await;
    assert!(
        status.stdout.contains("disposed: 3 items, 4 blobs"),
        "{}",
        status.stdout
    );
    let status = json_of(&env.recarch(&["status", "--json"], &[]).await.stdout);
    assert_eq!(status["disposed"]["items"], 3, "{status}");
    assert_eq!(status["disposed"]["last"]["user"], "records-officer", "{status}");

    // Again: nothing left to dispose of, nothing logged, nothing changed.
    let settled = snapshot(&env).await;
    let again = env.recarch(&["dispose", "--yes"], &[]).await;
    again.assert_code(0);
    assert!(again.stdout.contains(": 0 eligible, 0 disposed of"), "{}", again.stdout);
    assert_eq!(snapshot(&env).await, settled);

    // Released, the held item goes the same way.
    env.recarch(&["hold", "release", "--matter", "Acme"], &[])
        .await
        .assert_code(0);
    let released = json_of(&env.recarch(&["dispose", "--yes", "--json"], &[]).await.stdout);
    assert_eq!(released["disposed"], 1, "{released}");
    assert!(!snapshot(&env).await.contains_key(&kept_key));
    env.recarch(&["verify"], &[]).await.assert_code(0);
    let ls = env.recarch(&["ls", "--json"], &[]).await;
    ls.assert_code(0);
    assert!(ls.stdout.trim().is_empty(), "{}", ls.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_unheld_items_are_disposed_of_on_local_disk() {
    expired_unheld_items_are_disposed_of_after_the_record(Backend::Local).await;
}

/// Another item naming `of`'s blob, kept until 2099: written, cataloged and logged through
/// the store, as a run would have.
async fn another_item_naming_the_blob_of(env: &Env, org: &str, of: &str) -> String {
    let archive: Archive = env.open_archive();
    let org = OrganizerId::parse(org).expect("guid");
    let original = archive.get_manifest(&org, of).await.expect("read").expect("archived");
    let mut copy = original.clone();
    copy.id = format!("{of}-copy");
    copy.extra.insert(
        "retention".into(),
        json!({"mode": "governance", "retainUntil": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(
        archive.put_manifest(&copy).await.expect("write"),
        ManifestWrite::Created
    );
    let key = Archive::manifest_key(&org, &copy.id);
    archive
        .put_catalog_segment(&ShardId::new(0, 1), &CatalogEntry::of_manifest(&key, &copy))
        .await
        .expect("catalog");
    let actor = Actor {
        user: "test".into(),
        host: "test".into(),
        shard: "0-of-1".into(),
        version: "test".into(),
    };
    archive
        .append_ledger(
            LedgerEvent::Run,
            &actor,
            archive.take_leaves(),
            Default::default(),
            None,
        )
        .await
        .expect("logged");
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_not_yet_expired_and_blobs_a_kept_item_names_are_kept() {
    let env = Env::direct(1).await;
    env.write_config(RETENTION);
    let a = env.organizers[0].clone();
    let old = env.sim.add_recording(&a, 10_000);
    let shared = env.sim.add_recording(&a, 20_000);
    env.run().await.assert_code(0);
    let copy = another_item_naming_the_blob_of(&env, &a, &shared.id).await;
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let fresh = env.sim.add_recording(&a, 30_000);
    env.run().await.assert_code(0);
    env.recarch(&["verify"], &[]).await.assert_code(0);

    let before = snapshot(&env).await;
    let done = env.recarch(&["dispose", "--yes", "--json"], &[]).await;
    done.assert_code(0);
    let done = json_of(&done.stdout);
    assert_eq!(done["disposed"], 2, "{done}");
    assert_eq!(done["notExpired"], 2, "the fresh one and the copy: {done}");
    assert_eq!(done["blobsDeleted"], 1, "{done}");
    assert_eq!(done["bytesFreed"], 10_000, "{done}");
    let after = snapshot(&env).await;
    let blob = |id: &str| format!("blobs/sha256/{}", env.sim.content_sha256(id).expect("known"));
    assert!(!after.contains_key(&manifest_key("recordings", &a, &old.id)));
    assert!(!after.contains_key(&blob(&old.id)));
    assert!(!after.contains_key(&manifest_key("recordings", &a, &shared.id)));
    assert!(after.contains_key(&blob(&shared.id)), "the copy still names it");
    assert!(after.contains_key(&copy));
    assert!(after.contains_key(&manifest_key("recordings", &a, &fresh.id)));
    assert!(after.contains_key(&blob(&fresh.id)));
    let gone = before.keys().filter(|k| !after.contains_key(*k)).count();
    assert_eq!(gone, 3, "two manifests and one blob");
    let verify = env.recarch(&["verify"], &[]).await;
    verify.assert_code(0);
    let ls = env.recarch(&["ls", "--json"], &[]).await;
    assert_eq!(ls.stdout.lines().count(), 2, "{}", ls.stdout);
    // `show` of the shared blob: the copy names it, the disposed item named it.
    let shown = json_of(
        &env.recarch(&["show", "--json", &blob(&shared.id)[13..]], &[])
            .await
            .stdout,
    );
    assert_eq!(shown["blob"]["referredToBy"], json!([copy]), "{shown}");
    assert_eq!(shown["disposed"].as_array().map(Vec::len), Some(1), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retention_nothing_is_disposed_of_and_bad_usage_is_exit_2() {
    let env = Env::direct(1).await;
    env.sim.add_recording(&env.organizers[0], 1_000);
    env.run().await.assert_code(0);
    let before = snapshot(&env).await;
    let out = env.recarch(&["dispose", "--yes", "--json"], &[]).await;
    out.assert_code(0);
    let out = json_of(&out.stdout);
    assert_eq!(
        (out["eligible"].as_u64(), out["noRetention"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(snapshot(&env).await, before);
    for args in [
        &["dispose", "--yes", "--now"][..],
        &["dispose", "--dry-run", "--yes"][..],
    ] {
        env.recarch(args, &[]).await.assert_code(2);
    }
    let missing = super::util::recarch(&["dispose".to_owned(), "--yes".to_owned()], &[]).await;
    missing.assert_code(2);
}
