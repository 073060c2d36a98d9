//! The ledger through the binary: every write logged, tampering of any kind named by
//! `verify`, signed checkpoints checked with the public key, a killed run's writes recovered,
//! shards side by side keeping one chain, and human actions logged with their actor.

use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, spki::der::pem::LineEnding};
use recarch_graph_sim::{AdhocCallKind, ContentMode};

use super::util::{Env, files, raw_get, raw_keys, raw_put};

const KINDS: (&str, &str) = ("RECARCH_SOURCE__KINDS", "recordings,transcripts,adhoc_recordings");

/// Every ledger record on disk, parsed, in order.
fn records(env: &Env) -> Vec<serde_json::Value> {
    let dir = env.archive().join("ledger");
    let mut names = files(&dir);
    names.sort();
    names
        .iter()
        .map(|f| serde_json::from_str(&std::fs::read_to_string(dir.join(f)).expect("record")).expect("JSON"))
        .collect()
}

/// A tenant with meetings (recordings, paired transcripts) and a call, archived once.
async fn archived() -> Env {
    let env = Env::paged(ContentMode::Direct, 2, 2).await;
    for org in env.organizers.clone() {
        for _ in 0..3 {
            let rec = env.sim.add_recording(&org, 20_000);
            env.sim.add_transcript(&org, Some(&rec), 1_000);
        }
        let call = env.sim.add_adhoc_call(&org, AdhocCallKind::OneToOne);
        env.sim.add_adhoc_recording(&org, &call, 5_000, None);
    }
    env.recarch(&["run"], &[KINDS]).await.assert_code(0);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_logged_and_verify_names_what_was_modified_deleted_or_inserted() {
    let env = archived().await;
    let ledger = records(&env);
    assert!(!ledger.is_empty());
    // A chain: each record names the digest of the one before, leaves in order, tree growing.
    let mut size = 0;
    for (seq, r) in ledger.iter().enumerate() {
        assert_eq!(r["schema"], "recarch.ledger.v1");
        assert_eq!(r["seq"], seq);
        assert_eq!(r["event"], "run");
        assert_eq!(r["actor"]["shard"], "0-of-1");
        assert!(
            r["actor"]["version"]
                .as_str()
                .unwrap_or_default()
                .starts_with("recarch ")
        );
        size += r["leaves"].as_array().expect("leaves").len();
        assert_eq!(r["treeSize"], size);
        if seq == 0 {
            assert!(r["prev"].is_null());
        } else {
            let before = std::fs::read(env.archive().join(format!("ledger/{:020}.json", seq - 1))).expect("record");
            assert_eq!(r["prev"], super::util::sha256_hex(&before).as_str());
        }
    }
    // Every object under the logged prefixes is a leaf; the meeting indexes once per version.
    let logged: std::collections::BTreeSet<String> = ledger
        .iter()
        .flat_map(|r| r["leaves"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l["key"].as_str().map(str::to_owned))
        .collect();
    for prefix in ["manifests", "meetings", "calls", "catalog"] {
        let dir = env.archive().join(prefix);
        for f in files(&dir) {
            let key = format!("{prefix}/{f}");
            assert!(logged.contains(&key), "{key} is not logged");
        }
    }
    let clean = env.recarch(&["verify"], &[KINDS]).await;
    clean.assert_code(0);
    assert!(
        clean.stdout.contains(&format!("{} ledger records", ledger.len())),
        "{}",
        clean.stdout
    );

    // Modified: a manifest's bytes changed (its blob untouched).
    let manifest = env.archive().join("manifests/transcripts").join(&env.organizers[0]);
    let manifest = manifest.join(&files(&manifest)[0]);
    let original = std::fs::read(&manifest).expect("manifest");
    let mut changed: serde_json::Value = serde_json::from_slice(&original).expect("JSON");
    changed["createdDateTime"] = "2020-01-01T00:00:00Z".into();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&changed).expect("JSON")).expect("write");
    // Deleted: a call index removed.
    let calls = env.archive().join("calls").join(&env.organizers[1]);
    let call_index = calls.join(&files(&calls)[0]);
    std::fs::remove_file(&call_index).expect("remove");
    // Inserted: a meeting index nobody wrote.
    let stray = env
        .archive()
        .join("meetings")
        .join(&env.organizers[1])
        .join(format!("{}.json", "0".repeat(64)));
    std::fs::write(&stray, br#"{"schema":"recarch.meeting.v1","entries":[]}"#).expect("write");
    let found = env.recarch(&["verify"], &[KINDS]).await;
    found.assert_code(1);
    let rel = |p: &std::path::Path| {
        p.strip_prefix(env.archive())
            .expect("in the archive")
            .display()
            .to_string()
    };
    assert!(
        found.stdout.contains(&format!("modified: {}", rel(&manifest))),
        "{}",
        found.stdout
    );
    assert!(
        found.stdout.contains(&format!("deleted: {}", rel(&call_index))),
        "{}",
        found.stdout
    );
    assert!(
        found.stdout.contains(&format!("inserted: {}", rel(&stray))),
        "{}",
        found.stdout
    );

    // A record rewritten to hide a change: its root no longer matches, and the next record's
    // prev no longer matches it.
    std::fs::write(&manifest, &original).expect("restore");
    std::fs::remove_file(&stray).expect("remove");
    let first = env.archive().join(format!("ledger/{:020}.json", 0));
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&first).expect("record")).expect("JSON");
    record["leaves"][0]["sha256"] = "00".repeat(32).into();
    std::fs::write(&first, serde_json::to_vec(&record).expect("JSON")).expect("write");
    let found = env.recarch(&["verify"], &[KINDS]).await;
    found.assert_code(1);
    assert!(
        found.stdout.contains("ledger/00000000000000000000.json"),
        "{}",
        found.stdout
    );
    if ledger.len() > 1 {
        assert!(
            found.stdout.contains("ledger/00000000000000000001.json"),
            "{}",
            found.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_checkpoints_are_checked_with_the_public_key() {
    let env = Env::paged(ContentMode::Direct, 5, 1).await;
    let org = env.organizers[0].clone();
    env.sim.add_recording(&org, 10_000);
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let dir = env.dir.path();
    std::fs::write(
        dir.join("ledger.key"),
        key.to_pkcs8_pem(LineEnding::LF).expect("PEM").as_bytes(),
    )
    .expect("write key");
    std::fs::write(
        dir.join("ledger.pub"),
        key.verifying_key().to_public_key_pem(LineEnding::LF).expect("PEM"),
    )
    .expect("write key");
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    std::fs::write(
        dir.join("other.pub"),
        other.verifying_key().to_public_key_pem(LineEnding::LF).expect("PEM"),
    )
    .expect("write key");
    env.write_config("\n[ledger]\nsigning_key_file = \"ledger.key\"\norigin = \"archive.contoso.test/teams\"\n");
    env.run().await.assert_code(0);
    let ledger = records(&env);
    let checkpoint = ledger[0]["checkpoint"].as_str().expect("a signed checkpoint");
    assert!(checkpoint.starts_with("archive.contoso.test/teams\n"), "{checkpoint}");
    assert!(checkpoint.contains("\n— archive.contoso.test/teams "), "{checkpoint}");
    let public = dir.join("ledger.pub").display().to_string();
    let ok = env.recarch(&["verify", "--public-key", &public], &[]).await;
    ok.assert_code(0);
    assert!(ok.stdout.contains("signatures checked"), "{}", ok.stdout);
    let wrong = dir.join("other.pub").display().to_string();
    let bad = env.recarch(&["verify", "--public-key", &wrong], &[]).await;
    bad.assert_code(1);
    assert!(
        bad.stdout.contains("ledger/00000000000000000000.json"),
        "{}",
        bad.stdout
    );

    // A key file that is not a key: exit 2 naming the file, never its content.
    std::fs::write(
        dir.join("ledger.key"),
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ1dC1ub3QtYS1rZXk=\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let refused = env.run().await;
    refused.assert_code(2);
    assert!(refused.stderr.contains("ledger.key"), "{}", refused.stderr);
    assert!(!refused.stderr.contains("c2VjcmV0"), "{}", refused.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_killed_run_wrote_is_logged_by_the_next_one() {
    let env = Env::paged(ContentMode::Alternate, 2, 2).await;
    env.write_config("\n[fetch]\nconcurrency = 1\n");
    env.sim.faults().content_rate(Some(4 << 20));
    for org in env.organizers.clone() {
        for _ in 0..6 {
            let rec = env.sim.add_recording(&org, 400_000);
            env.sim.add_transcript(&org, Some(&rec), 2_000);
        }
    }
    let mut child = env.spawn_run();
    let manifests = env.archive().join("manifests/recordings");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while env
        .organizers
        .iter()
        .map(|o| files(&manifests.join(o)).len())
        .sum::<usize>()
        < 3
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child.start_kill().expect("kill");
    let status = child.wait().await.expect("ends");
    assert!(status.code().is_none(), "killed, not finished");
    env.sim.faults().content_rate(None);
    env.run().await.assert_code(0);
    env.recarch(&["verify"], &[]).await.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_shards_side_by_side_keep_one_chain() {
    let env = Env::paged(ContentMode::Direct, 3, 16).await;
    for org in env.organizers.clone() {
        env.sim.add_recording(&org, 8_000);
        env.sim.add_recording(&org, 9_000);
    }
    let argv: Vec<[String; 5]> = (0..8)
        .map(|i| {
            [
                "run".into(),
                "--shard-index".into(),
                i.to_string(),
                "--shard-count".into(),
                "8".into(),
            ]
        })
        .collect();
    let argv: Vec<Vec<&str>> = argv.iter().map(|a| a.iter().map(String::as_str).collect()).collect();
    let runs = argv.iter().map(|a| env.recarch(a, &[]));
    for out in futures::future::join_all(runs).await {
        out.assert_code(0);
    }
    let ledger = records(&env);
    let shards: std::collections::BTreeSet<&str> = ledger.iter().filter_map(|r| r["actor"]["shard"].as_str()).collect();
    assert!(shards.len() >= 2, "{shards:?}");
    env.recarch(&["verify"], &[]).await.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_is_logged_with_its_actor() {
    let env = Env::paged(ContentMode::Direct, 5, 1).await;
    env.write_config("\n[fetch]\nmax_item_attempts = 1\nmax_attempts = 1\n");
    let org = env.organizers[0].clone();
    let bad = env.sim.add_recording(&org, 5_000);
    env.sim.faults().content_status(&bad.id, Some(404));
    env.run().await.assert_code(1);
    env.recarch(&["retry", "--all"], &[("USER", "compliance-officer")])
        .await
        .assert_code(0);
    let last = records(&env).pop().expect("a record");
    assert_eq!(last["event"], "retry", "{last}");
    assert_eq!(last["actor"]["user"], "compliance-officer");
    assert_eq!(last["details"]["moved"], 1);
    assert_eq!(last["details"]["items"][0]["id"], bad.id.as_str());
    env.recarch(&["verify"], &[]).await.assert_code(0);
}

mod tampering {
    use super::super::util::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn is_caught_on_local_disk() {
        super::tampering_is_caught(Backend::Local).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn is_caught_on_s3() {
        super::tampering_is_caught(Backend::S3).await;
    }
}

/// Each kind of tampering, done through the store's own API (as whoever can write the bucket
/// would), is named by `verify` with exit 1; the original bytes put back, `verify` is clean
/// again.
async fn tampering_is_caught(backend: super::util::Backend) {
    use futures::TryStreamExt as _;
    use object_store::ObjectStoreExt as _;
    use object_store::path::Path;

    let Some(env) = Env::on(backend, recarch_graph_sim::SimConfig::default(), 2).await else {
        return;
    };
    for org in env.organizers.clone() {
        for _ in 0..3 {
            env.sim.add_recording(&org, 6_000);
        }
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let dir = env.dir.path();
    std::fs::write(
        dir.join("ledger.key"),
        key.to_pkcs8_pem(LineEnding::LF).expect("PEM").as_bytes(),
    )
    .expect("key");
    std::fs::write(
        dir.join("ledger.pub"),
        key.verifying_key().to_public_key_pem(LineEnding::LF).expect("PEM"),
    )
    .expect("key");
    let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    std::fs::write(
        dir.join("other.pub"),
        other.verifying_key().to_public_key_pem(LineEnding::LF).expect("PEM"),
    )
    .expect("key");
    env.write_config("\n[ledger]\nsigning_key_file = \"ledger.key\"\n");
    env.run().await.assert_code(0);
    // A checkpoint kept elsewhere (mailed to a second party).
    let status = env.recarch(&["status", "--json"], &[]).await;
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(status["ledger"]["signed"], true, "{status}");
    std::fs::write(
        dir.join("kept.checkpoint"),
        status["ledger"]["checkpoint"].as_str().expect("checkpoint"),
    )
    .expect("write");
    // More archived after it: a kept checkpoint is a prefix of the ledger.
    env.sim.add_recording(&env.organizers[0], 7_000);
    env.run().await.assert_code(0);
    let public = dir.join("ledger.pub").display().to_string();
    let kept = dir.join("kept.checkpoint").display().to_string();
    let env = &env;
    let verify = |extra: &'static [&'static str]| {
        let mut args = vec!["verify", "--public-key", public.as_str(), "--checkpoint", kept.as_str()];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            env.recarch(&args, &[]).await
        }
    };
    verify(&[]).await.assert_code(0);

    let archive = env.open_archive();
    let store = archive.object_store();
    let keys = raw_keys(store).await;
    let get = |k: String| raw_get(store, k);
    let put = |k: String, bytes: Vec<u8>| raw_put(store, k, bytes);
    let manifests: Vec<String> = keys.iter().filter(|k| k.starts_with("manifests/")).cloned().collect();
    let (a, b) = (manifests[0].clone(), manifests[1].clone());
    let (a_bytes, b_bytes) = (get(a.clone()).await, get(b.clone()).await);
    let expect = |out: &super::util::Run, what: &str| {
        out.assert_code(1);
        assert!(out.stdout.contains(what), "looking for {what:?} in\n{}", out.stdout);
    };

    // A flipped byte in a manifest.
    let mut flipped = a_bytes.clone();
    let at = flipped.iter().position(|b| *b == b'Z').expect("a Z (a timestamp's)");
    flipped[at] = b'z';
    put(a.clone(), flipped).await;
    expect(&verify(&[]).await, &format!("modified: {a}"));
    put(a.clone(), a_bytes.clone()).await;
    // A deleted manifest.
    store.delete(&Path::from(b.as_str())).await.expect("delete");
    expect(&verify(&[]).await, &format!("deleted: {b}"));
    put(b.clone(), b_bytes.clone()).await;
    // A manifest inserted by hand.
    let forged = format!("{}/{}.json", a.rsplit_once('/').expect("dir").0, "f".repeat(64));
    put(forged.clone(), a_bytes.clone()).await;
    expect(&verify(&[]).await, &format!("inserted: {forged}"));
    store.delete(&Path::from(forged.as_str())).await.expect("delete");
    verify(&[]).await.assert_code(0);

    // An edited ledger record: the next record's prev no longer matches.
    let r0 = "ledger/00000000000000000000.json".to_owned();
    let r0_bytes = get(r0.clone()).await;
    let mut edited: serde_json::Value = serde_json::from_slice(&r0_bytes).expect("JSON");
    edited["actor"]["user"] = "someone-else".into();
    put(r0.clone(), serde_json::to_vec(&edited).expect("JSON")).await;
    expect(&verify(&[]).await, "ledger/00000000000000000001.json");
    // A deleted ledger record: a hole.
    store.delete(&Path::from(r0.as_str())).await.expect("delete");
    expect(&verify(&[]).await, "ledger/00000000000000000000.json");
    put(r0.clone(), r0_bytes.clone()).await;
    // A forged signature.
    let mut forged_sig: serde_json::Value = serde_json::from_slice(&r0_bytes).expect("JSON");
    let note = forged_sig["checkpoint"].as_str().expect("signed").to_owned();
    let (body, sig) = note.rsplit_once(' ').expect("a signature line");
    let mut sig = sig.trim_end().to_owned();
    let last = if sig.ends_with("A=") { "B=" } else { "A=" };
    sig.truncate(sig.len() - 2);
    sig.push_str(last);
    forged_sig["checkpoint"] = format!("{body} {sig}\n").into();
    put(r0.clone(), serde_json::to_vec(&forged_sig).expect("JSON")).await;
    expect(&verify(&[]).await, "ledger/00000000000000000000.json");
    put(r0.clone(), r0_bytes.clone()).await;
    verify(&[]).await.assert_code(0);
    // The wrong key.
    let wrong = dir.join("other.pub").display().to_string();
    let out = env.recarch(&["verify", "--public-key", &wrong], &[]).await;
    expect(&out, "ledger/00000000000000000000.json");

    // A rewritten history: the whole ledger replaced by one that logs the archive as it is now
    // (consistent in itself, even signed with the same key), after a manifest was changed.
    let mut rewritten: serde_json::Value = serde_json::from_slice(&a_bytes).expect("JSON");
    rewritten["createdDateTime"] = "2001-01-01T00:00:00Z".into();
    put(a.clone(), serde_json::to_vec(&rewritten).expect("JSON")).await;
    let records: Vec<String> = keys.iter().filter(|k| k.starts_with("ledger/")).cloned().collect();
    let all: Vec<String> = store
        .list(Some(&Path::from("ledger")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    assert!(all.len() >= records.len());
    for r in all {
        store.delete(&Path::from(r.as_str())).await.expect("delete");
    }
    env.run().await.assert_code(0);
    // The new ledger is consistent in itself; only the catalog, whose segment was written
    // before the change, still tells the old createdDateTime.
    let alone = env.recarch(&["verify", "--public-key", &public], &[]).await;
    alone.assert_code(1);
    let problems: Vec<&str> = alone.stdout.lines().filter(|l| l.starts_with("problem: ")).collect();
    assert_eq!(problems.len(), 1, "{}", alone.stdout);
    assert!(
        problems[0].starts_with("problem: catalog: wrong: ")
            && problems[0].ends_with(&format!("the manifest says \"2001-01-01T00:00:00Z\" ({a})")),
        "{}",
        alone.stdout
    );
    expect(&verify(&[]).await, "rewritten history");
}
