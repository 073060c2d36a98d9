//! The ledger against real stores: concurrent appenders, finding the head from a fresh
//! process, tampering found by the checker, and recovery of what a killed run left unlogged.
//!
//! Every case runs in memory and on local disk, and on the loopback S3 (moto, SeaweedFS) and
//! Azure (Azurite) servers when `scripts/emulators.sh` has set their `RECARCH_TEST_*`
//! variables (skipped with a line on stderr otherwise, a failure under
//! `RECARCH_REQUIRE_EMULATORS=1`, as `scripts/test` sets).

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine as _;
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use recarch_store::ledger::{
    Actor, Leaf, LedgerChecker, LedgerEvent, LedgerFinding, LedgerRecord, LedgerSigner, LedgerVerifier,
    ledger_record_key,
};
use recarch_store::{Archive, Sha256Digest, ShardId, StoreError};
use serde_json::Map;
use tempfile::TempDir;

use common::FailingGets;

/// A store under test: opens independent clients of one archive, as separate processes
/// would have (each with its own memory of the ledger's head).
struct Backend {
    name: &'static str,
    url: String,
    options: Vec<(String, String)>,
    /// The one in-memory store every client shares.
    memory: Option<Arc<InMemory>>,
    _dir: Option<TempDir>,
}

impl Backend {
    fn client(&self) -> Archive {
        match &self.memory {
            Some(store) => Archive::from_store(Arc::clone(store) as Arc<dyn ObjectStore>, "memory://"),
            None => Archive::open(&self.url, &self.options).unwrap(),
        }
    }
}

fn memory() -> Backend {
    Backend {
        name: "memory",
        url: "memory://".into(),
        options: Vec::new(),
        memory: Some(Arc::new(InMemory::new())),
        _dir: None,
    }
}

fn local() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path().join("archive")).unwrap();
    Backend {
        name: "local",
        url: url.to_string(),
        options: Vec::new(),
        memory: None,
        _dir: Some(dir),
    }
}

/// `RECARCH_TEST_<name>_<suffix>` for each suffix, or `None` (with a line on stderr) when the
/// endpoint is not set; panics when it is not set but emulators are required.
fn emulator(name: &str, suffixes: &[&str]) -> Option<Vec<String>> {
    let var = |suffix: &str| format!("RECARCH_TEST_{name}_{suffix}");
    if std::env::var_os(var("ENDPOINT")).is_none() {
        let required = std::env::var("RECARCH_REQUIRE_EMULATORS").is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "{} is not set but RECARCH_REQUIRE_EMULATORS is",
            var("ENDPOINT")
        );
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "*** SKIPPING the ledger tests on {name}: {} is not set (scripts/emulators.sh run cargo test) ***",
            var("ENDPOINT")
        );
        return None;
    }
    Some(suffixes.iter().map(|s| std::env::var(var(s)).unwrap()).collect())
}

fn prefix(case: &str) -> String {
    format!("t/ledger-{case}-{:016x}", fastrand::u64(..))
}

fn s3(name: &'static str, env: &str, case: &str) -> Option<Backend> {
    let [endpoint, bucket, region, key_id, secret] = <[String; 5]>::try_from(emulator(
        env,
        &["ENDPOINT", "BUCKET", "REGION", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY"],
    )?)
    .unwrap();
    let options = [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true".into()),
        ("aws_region", region),
        ("aws_access_key_id", key_id),
        ("aws_secret_access_key", secret),
        ("aws_virtual_hosted_style_request", "false".into()),
        ("aws_conditional_put", "etag".into()),
    ];
    Some(Backend {
        name,
        url: format!("s3://{bucket}/{}", prefix(case)),
        options: options.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        memory: None,
        _dir: None,
    })
}

fn azure(case: &str) -> Option<Backend> {
    let [endpoint, account, key, container] =
        <[String; 4]>::try_from(emulator("AZURE", &["ENDPOINT", "ACCOUNT", "ACCESS_KEY", "CONTAINER"])?).unwrap();
    let options = [
        ("azure_storage_account_name", account),
        ("azure_storage_account_key", key),
        ("azure_storage_endpoint", endpoint),
        ("azure_allow_http", "true".into()),
    ];
    Some(Backend {
        name: "azure",
        url: format!("az://{container}/{}", prefix(case)),
        options: options.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        memory: None,
        _dir: None,
    })
}

/// Every backend available, each a fresh archive.
fn backends(case: &str) -> Vec<Backend> {
    let mut all = vec![memory(), local()];
    all.extend(s3("s3", "S3", case));
    all.extend(s3("seaweedfs", "SEAWEEDFS", case));
    all.extend(azure(case));
    all
}

fn actor(shard: &str) -> Actor {
    Actor {
        user: "tester".into(),
        host: "test-host".into(),
        shard: shard.into(),
        version: "recarch test".into(),
    }
}

fn leaf(key: &str, content: &str) -> Leaf {
    Leaf::of_bytes(key, content.as_bytes()).unwrap()
}

/// Reads and checks the whole ledger: the findings, and every record that parsed.
async fn check_all(archive: &Archive, verifier: Option<LedgerVerifier>) -> (Vec<LedgerFinding>, Vec<LedgerRecord>) {
    let mut checker = LedgerChecker::new(verifier);
    let mut findings = Vec::new();
    let mut records = Vec::new();
    let mut items = archive.read_ledger(0);
    while let Some(item) = items.next().await {
        let checked = checker.check(item.unwrap());
        findings.extend(checked.findings);
        records.extend(checked.record.map(|(_, record)| record));
    }
    assert_eq!(checker.records(), records.len() as u64);
    (findings, records)
}

fn raw_path(key: &str) -> Path {
    Path::from(key)
}

async fn raw_get(archive: &Archive, key: &str) -> bytes::Bytes {
    archive
        .object_store()
        .get(&raw_path(key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
}

async fn raw_put(archive: &Archive, key: &str, bytes: Vec<u8>) {
    archive
        .object_store()
        .put(&raw_path(key), PutPayload::from(bytes))
        .await
        .unwrap();
}

fn signer() -> LedgerSigner {
    LedgerSigner::from_seed("recarch.test/ledger", [42; 32]).unwrap()
}

// ------------------------------------------------------------------ appending

/// Eight appenders, each its own client (as eight processes), four records of three leaves
/// each: one linear chain of 32 records, every leaf once, nothing found by the checker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_form_one_chain() {
    for backend in backends("concurrent") {
        let signer = Arc::new(signer());
        // Every writer looks at the (empty) ledger first, then all start at once: each
        // believes record 0 is free, as processes started together would.
        let start = Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..8 {
            let archive = backend.client();
            let signer = Arc::clone(&signer);
            let start = Arc::clone(&start);
            tasks.spawn(async move {
                assert!(archive.ledger_head().await.unwrap().is_none());
                start.wait().await;
                let mut attempts = 0;
                for record in 0..4 {
                    let leaves = (0..3)
                        .map(|i| leaf(&format!("manifests/recordings/w{writer}/{record}-{i}.json"), "x"))
                        .collect();
                    let appended = archive
                        .append_ledger(
                            LedgerEvent::Run,
                            &actor(&format!("{writer}-of-8")),
                            leaves,
                            Map::new(),
                            Some(&signer),
                        )
                        .await
                        .unwrap();
                    attempts += appended.attempts;
                }
                attempts
            });
        }
        let mut attempts = 0;
        while let Some(done) = tasks.join_next().await {
            attempts += done.unwrap();
        }

        let reader = backend.client();
        let (findings, records) = check_all(&reader, Some(signer.verifier())).await;
        assert!(findings.is_empty(), "{}: {findings:?}", backend.name);
        assert_eq!(records.len(), 32, "{}", backend.name);
        let keys: BTreeSet<String> = records
            .iter()
            .flat_map(|r| r.leaves.iter().map(|l| l.key.clone()))
            .collect();
        assert_eq!(keys.len(), 96, "{}: a leaf lost or logged twice", backend.name);
        assert_eq!(records.last().unwrap().tree_size, 96);
        let head = reader.ledger_head().await.unwrap().unwrap();
        assert_eq!((head.seq, head.tree_size), (31, 96));
        // Eight writers racing for record 0: seven lost it and caught up.
        assert!(attempts >= 32 + 7, "{}: {attempts} attempts", backend.name);
        eprintln!("{}: 32 records in {attempts} attempts", backend.name);
    }
}

/// Appenders sharing one client take turns in the process, and never race each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_appends_in_turn() {
    for backend in [memory(), local()] {
        let archive = backend.client();
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..8 {
            let archive = archive.clone();
            tasks.spawn(async move {
                let leaves = vec![leaf(&format!("meetings/w{writer}/m.json"), "m")];
                archive
                    .append_ledger(LedgerEvent::Run, &actor("0-of-1"), leaves, Map::new(), None)
                    .await
                    .unwrap()
                    .attempts
            });
        }
        while let Some(done) = tasks.join_next().await {
            assert_eq!(done.unwrap(), 1, "{}: clones share the head", backend.name);
        }
        let (findings, records) = check_all(&archive, None).await;
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(records.len(), 8);
    }
}

#[tokio::test]
async fn leaves_outside_the_logged_prefixes_are_refused() {
    let archive = memory().client();
    let bad = Leaf {
        key: "blobs/sha256/00".into(),
        sha256: Sha256Digest::of(b""),
    };
    let err = archive
        .append_ledger(LedgerEvent::Run, &actor("0-of-1"), vec![bad], Map::new(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Rejected { ref key, .. } if key == "blobs/sha256/00"),
        "{err}"
    );
    assert!(archive.ledger_head().await.unwrap().is_none());
}

/// A fresh process finds the head (past a hole, which only a deletion makes) and appends
/// after it; records it reads are checked, not trusted.
#[tokio::test]
async fn a_fresh_client_finds_the_head() {
    for backend in backends("head") {
        let first = backend.client();
        assert!(first.ledger_head().await.unwrap().is_none());
        for i in 0..37 {
            let leaves = vec![leaf(&format!("catalog/{i}.jsonl"), "c")];
            let appended = first
                .append_ledger(LedgerEvent::Run, &actor("0-of-1"), leaves, Map::new(), None)
                .await
                .unwrap();
            assert_eq!(appended.seq, i);
        }
        let head = backend.client().ledger_head().await.unwrap().unwrap();
        assert_eq!((head.seq, head.tree_size), (36, 37), "{}", backend.name);

        first
            .object_store()
            .delete(&raw_path(&ledger_record_key(20)))
            .await
            .unwrap();
        let second = backend.client();
        let appended = second
            .append_ledger(LedgerEvent::Export, &actor(""), Vec::new(), Map::new(), None)
            .await
            .unwrap();
        assert_eq!((appended.seq, appended.tree_size), (37, 37), "{}", backend.name);
        // The first client's memory is stale: it catches up instead of overwriting.
        let appended = first
            .append_ledger(LedgerEvent::Retry, &actor(""), Vec::new(), Map::new(), None)
            .await
            .unwrap();
        assert_eq!((appended.seq, appended.attempts), (38, 2), "{}", backend.name);

        let (findings, records) = check_all(&second, None).await;
        assert_eq!(records.len(), 38);
        assert_eq!(
            findings,
            vec![LedgerFinding::Missing {
                first: ledger_record_key(20),
                last: ledger_record_key(20)
            }],
            "{}",
            backend.name
        );
    }
}

/// A head record whose frontier does not add up is not extended.
#[tokio::test]
async fn a_corrupt_head_is_not_extended() {
    let backend = memory();
    let archive = backend.client();
    for i in 0..3 {
        archive
            .append_ledger(
                LedgerEvent::Run,
                &actor(""),
                vec![leaf(&format!("holds/{i}.json"), "h")],
                Map::new(),
                None,
            )
            .await
            .unwrap();
    }
    let key = ledger_record_key(2);
    let mut record: serde_json::Value = serde_json::from_slice(&raw_get(&archive, &key).await).unwrap();
    record["frontier"] = serde_json::json!([]);
    raw_put(&archive, &key, serde_json::to_vec(&record).unwrap()).await;
    let err = backend
        .client()
        .append_ledger(LedgerEvent::Run, &actor(""), Vec::new(), Map::new(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { key: ref k, .. } if *k == key),
        "{err}"
    );
    assert!(err.to_string().contains("verify"), "{err}");
}

// ------------------------------------------------------------------ checking

/// A signed chain of six records, then: a leaf changed, a record's details changed, a stray
/// object, an unsigned record, and the wrong public key. Each finding names its record.
#[tokio::test]
async fn tampering_is_found_and_named() {
    for backend in backends("tamper") {
        let archive = backend.client();
        let signer = signer();
        for i in 0..6 {
            let leaves = (0..2)
                .map(|j| leaf(&format!("manifests/contacts/o/{i}-{j}.json"), "v1"))
                .collect();
            archive
                .append_ledger(LedgerEvent::Run, &actor("0-of-1"), leaves, Map::new(), Some(&signer))
                .await
                .unwrap();
        }
        let (findings, _) = check_all(&archive, Some(signer.verifier())).await;
        assert!(findings.is_empty(), "{findings:?}");

        // A leaf's digest changed in record 2 (as if to hide a modified manifest).
        let key2 = ledger_record_key(2);
        let mut record: serde_json::Value = serde_json::from_slice(&raw_get(&archive, &key2).await).unwrap();
        record["leaves"][1]["sha256"] = Sha256Digest::of(b"v2").to_hex().into();
        raw_put(&archive, &key2, serde_json::to_vec_pretty(&record).unwrap()).await;
        // Record 4's details changed (the signature covers the tree head, the chain the rest).
        let key4 = ledger_record_key(4);
        let mut record: serde_json::Value = serde_json::from_slice(&raw_get(&archive, &key4).await).unwrap();
        record["details"]["note"] = "edited".into();
        raw_put(&archive, &key4, serde_json::to_vec_pretty(&record).unwrap()).await;

        let (findings, _) = check_all(&archive, Some(signer.verifier())).await;
        let named: Vec<(&str, &str)> = findings
            .iter()
            .map(|f| {
                let kind = match f {
                    LedgerFinding::RootMismatch { .. } => "root",
                    LedgerFinding::BrokenChain { .. } => "chain",
                    other => panic!("{}: unexpected {other}", backend.name),
                };
                (f.key(), kind)
            })
            .collect();
        let (k2, k3, k5) = (key2.clone(), ledger_record_key(3), ledger_record_key(5));
        assert_eq!(
            named,
            vec![(k2.as_str(), "root"), (k3.as_str(), "chain"), (k5.as_str(), "chain")],
            "{}",
            backend.name
        );
        assert!(findings[0].to_string().starts_with(&key2), "{}", findings[0]);

        // An unsigned record and a stray object at the end; another key for everything.
        archive
            .append_ledger(LedgerEvent::Dispose, &actor(""), Vec::new(), Map::new(), None)
            .await
            .unwrap();
        raw_put(&archive, "ledger/notes.txt", b"hello".to_vec()).await;
        let other = LedgerSigner::from_seed("recarch.test/ledger", [1; 32]).unwrap();
        let (findings, records) = check_all(&archive, Some(other.verifier())).await;
        assert_eq!(records.len(), 7);
        let bad_signatures = findings
            .iter()
            .filter(|f| matches!(f, LedgerFinding::BadSignature { .. }))
            .count();
        assert_eq!(bad_signatures, 6, "{findings:?}");
        assert!(findings.contains(&LedgerFinding::Unsigned {
            key: ledger_record_key(6)
        }));
        assert!(findings.contains(&LedgerFinding::Stray {
            key: "ledger/notes.txt".into()
        }));
        // Without a key, the checkpoints still agree with their records.
        let (findings, _) = check_all(&archive, None).await;
        assert_eq!(findings.len(), 4, "{}: {findings:?}", backend.name);
    }
}

/// A record removed from the middle, or the last records removed, is found as missing or not
/// at all (the end of a chain is wherever the records stop: the signed head is what
/// anchors it), and checking resumes after a hole.
#[tokio::test]
async fn holes_are_missing_records() {
    let archive = memory().client();
    for i in 0..10 {
        archive
            .append_ledger(
                LedgerEvent::Run,
                &actor(""),
                vec![leaf(&format!("calls/u/{i}.json"), "c")],
                Map::new(),
                None,
            )
            .await
            .unwrap();
    }
    for seq in [0, 4, 5] {
        archive
            .object_store()
            .delete(&raw_path(&ledger_record_key(seq)))
            .await
            .unwrap();
    }
    let (findings, records) = check_all(&archive, None).await;
    assert_eq!(records.len(), 7);
    assert_eq!(
        findings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            format!("{}: missing", ledger_record_key(0)),
            format!("{} to {}: missing", ledger_record_key(4), ledger_record_key(5)),
        ]
    );
}

/// The public key read from its PEM file checks records signed with the private key read
/// from its PKCS#8 PEM file.
#[tokio::test]
async fn key_files_sign_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    // PKCS#8 v1 of an Ed25519 seed (RFC 8410): a fixed prefix, then the 32 bytes.
    let seed = [9u8; 32];
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(&seed);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let key_file = dir.path().join("ledger.key");
    std::fs::write(&key_file, pem).unwrap();
    let signer = LedgerSigner::from_pkcs8_pem_file(&key_file, "recarch.test/ledger").unwrap();
    assert_eq!(
        signer.verifier_key(),
        LedgerSigner::from_seed("recarch.test/ledger", seed)
            .unwrap()
            .verifier_key()
    );
    let pub_file = dir.path().join("ledger.pub");
    std::fs::write(&pub_file, signer.public_key_pem()).unwrap();

    let archive = memory().client();
    archive
        .append_ledger(
            LedgerEvent::Run,
            &actor(""),
            vec![leaf("holds/a.json", "h")],
            Map::new(),
            Some(&signer),
        )
        .await
        .unwrap();
    let verifier = LedgerVerifier::from_spki_pem_file(&pub_file).unwrap();
    let (findings, records) = check_all(&archive, Some(verifier)).await;
    assert!(findings.is_empty(), "{findings:?}");
    let note = records[0].checkpoint.as_deref().unwrap();
    assert!(note.starts_with("recarch.test/ledger\n1\n"), "{note}");
    assert!(note.contains("\n\n\u{2014} recarch.test/ledger "), "{note}");
}

// ------------------------------------------------------------------ recovery

/// A run writes its intent, some of the objects, and dies before logging. The next run's
/// recovery logs exactly what was written after the intent: not what was there before, not
/// what was never written, not what was already logged.
#[tokio::test]
async fn recovery_logs_what_a_killed_run_wrote() {
    for backend in backends("recover") {
        let shard = ShardId::new(0, 2);
        let dead = backend.client();
        assert!(
            dead.recover_ledger(&shard, &actor("0-of-2"), None)
                .await
                .unwrap()
                .is_none()
        );

        // Before the run: an object already there, already logged.
        raw_put(&dead, "manifests/recordings/o/old.json", b"old".to_vec()).await;
        dead.append_ledger(
            LedgerEvent::Run,
            &actor("0-of-2"),
            vec![leaf("manifests/recordings/o/old.json", "old")],
            Map::new(),
            None,
        )
        .await
        .unwrap();

        // Page 1: intent, writes, record — but killed before the intent was deleted (its
        // record went in): nothing of it is recovered twice.
        let page1 = vec!["manifests/recordings/o/a.json".to_owned()];
        let _intent1 = dead.ledger_intend(&shard, page1).await.unwrap();
        raw_put(&dead, "manifests/recordings/o/a.json", b"a".to_vec()).await;
        dead.append_ledger(
            LedgerEvent::Run,
            &actor("0-of-2"),
            vec![leaf("manifests/recordings/o/a.json", "a")],
            Map::new(),
            None,
        )
        .await
        .unwrap();

        // Page 2: intent, two of four objects written (one a rewritten meeting index), then
        // killed. Another shard appends meanwhile.
        let page2 = vec![
            "manifests/recordings/o/old.json".to_owned(),
            "manifests/recordings/o/b.json".to_owned(),
            "meetings/o/m.json".to_owned(),
            "manifests/recordings/o/never.json".to_owned(),
        ];
        let _intent2 = dead.ledger_intend(&shard, page2).await.unwrap();
        raw_put(&dead, "manifests/recordings/o/b.json", b"b".to_vec()).await;
        raw_put(&dead, "meetings/o/m.json", b"m1".to_vec()).await;
        raw_put(&dead, "meetings/o/m.json", b"m2".to_vec()).await;
        backend
            .client()
            .append_ledger(
                LedgerEvent::Run,
                &actor("1-of-2"),
                vec![leaf("holds/x.json", "x")],
                Map::new(),
                None,
            )
            .await
            .unwrap();
        drop(dead);

        // The next run of the shard.
        let next = backend.client();
        let signer = signer();
        let recovery = next
            .recover_ledger(&shard, &actor("0-of-2"), Some(&signer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (recovery.intents, recovery.intended, recovery.recovered),
            (2, 5, 2),
            "{}",
            backend.name
        );
        let (findings, records) = check_all(&next, None).await;
        assert!(findings.is_empty(), "{findings:?}");
        let last = records.last().unwrap();
        assert_eq!(last.seq, recovery.record.seq);
        assert_eq!(last.event, LedgerEvent::Recover);
        assert_eq!(
            last.leaves,
            vec![
                leaf("manifests/recordings/o/b.json", "b"),
                leaf("meetings/o/m.json", "m2")
            ],
            "{}",
            backend.name
        );
        assert_eq!(last.details["recovered"], 2);
        assert!(last.checkpoint.is_some());
        // Every key written after its intent, logged before or now: `a` was logged by page
        // 1's record before the kill.
        let written = [
            "manifests/recordings/o/a.json",
            "manifests/recordings/o/b.json",
            "meetings/o/m.json",
        ];
        // (`old`, written before the intent, looks written after it on stores that keep
        // times in whole seconds; handing it back too is harmless.)
        let after = |keys: &[String]| -> std::collections::BTreeSet<String> {
            keys.iter()
                .filter(|k| *k != "manifests/recordings/o/old.json")
                .cloned()
                .collect()
        };
        let expected: std::collections::BTreeSet<String> = written.iter().map(|k| (*k).to_owned()).collect();
        assert_eq!(after(&recovery.written), expected, "{}", backend.name);
        // Killed before settling: the next recovery logs nothing new (an empty record, the
        // trail of that run) and hands back the same keys.
        let again = next
            .recover_ledger(&shard, &actor("0-of-2"), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (again.recovered, after(&again.written)),
            (0, expected),
            "{}",
            backend.name
        );
        let (findings, _) = check_all(&next, None).await;
        assert!(findings.is_empty(), "{findings:?}");
        next.ledger_settle(again.left).await;
        // Settled: the intents are gone, and the next recovery finds nothing.
        assert!(
            next.recover_ledger(&shard, &actor("0-of-2"), None)
                .await
                .unwrap()
                .is_none()
        );
    }
}

/// The usual path: intent, writes, record, settled intent; nothing is left to recover.
#[tokio::test]
async fn logged_pages_leave_nothing_to_recover() {
    for backend in [memory(), local()] {
        let shard = ShardId::new(0, 1);
        let archive = backend.client();
        for page in 0..3 {
            let keys: Vec<String> = (0..4)
                .map(|i| format!("manifests/transcripts/o/{page}-{i}.json"))
                .collect();
            let intent = archive.ledger_intend(&shard, keys.clone()).await.unwrap();
            let mut leaves = Vec::new();
            for key in keys {
                raw_put(&archive, &key, key.clone().into_bytes()).await;
                leaves.push(leaf(&key, &key));
            }
            archive
                .append_ledger(LedgerEvent::Run, &actor("0-of-1"), leaves, Map::new(), None)
                .await
                .unwrap();
            archive.ledger_settle(vec![intent]).await;
        }
        let next = backend.client();
        assert!(
            next.recover_ledger(&shard, &actor("0-of-1"), None)
                .await
                .unwrap()
                .is_none()
        );
        let (findings, records) = check_all(&next, None).await;
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(records.last().unwrap().tree_size, 12);
        let err = archive
            .ledger_intend(&shard, vec!["state/recordings/x.json".into()])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Rejected { .. }), "{err}");
    }
}

/// A record that cannot be read is a finding of its own, and checking goes on after it from
/// the next record's own frontier; a store whose every read fails ends the stream with an
/// error instead of reading forever.
#[tokio::test]
async fn an_unreadable_record_is_named_and_skipped() {
    let store = Arc::new(FailingGets::new("Failing", |_| object_store::Error::Generic {
        store: "Failing",
        source: "injected failure".into(),
    }));
    let archive = Archive::from_store(store.clone(), "memory://failing");
    for i in 0..5 {
        let leaves = vec![leaf(&format!("holds/{i}.json"), "h")];
        archive
            .append_ledger(LedgerEvent::HoldPlace, &actor(""), leaves, Map::new(), None)
            .await
            .unwrap();
    }
    store.failing.lock().unwrap().insert(ledger_record_key(2));
    let (findings, records) = check_all(&archive, None).await;
    assert_eq!(records.len(), 4);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        matches!(&findings[0], LedgerFinding::Unreadable { key, reason } if *key == ledger_record_key(2) && reason.contains("injected failure")),
        "{findings:?}"
    );

    store.failing.lock().unwrap().insert("*".into());
    let items: Vec<_> = archive.read_ledger(0).collect().await;
    let (last, before) = items.split_last().unwrap();
    assert!(matches!(last, Err(StoreError::Backend { .. })), "{last:?}");
    assert!(before.len() < 32, "{} items", before.len());
}

/// A validly signed checkpoint moved onto another record states the wrong tree head.
#[tokio::test]
async fn a_checkpoint_moved_to_another_record_is_found() {
    let archive = memory().client();
    let signer = signer();
    for i in 0..4 {
        let leaves = vec![leaf(&format!("catalog/{i}.jsonl"), "c")];
        archive
            .append_ledger(LedgerEvent::Run, &actor(""), leaves, Map::new(), Some(&signer))
            .await
            .unwrap();
    }
    let first: serde_json::Value = serde_json::from_slice(&raw_get(&archive, &ledger_record_key(1)).await).unwrap();
    let key = ledger_record_key(3);
    let mut last: serde_json::Value = serde_json::from_slice(&raw_get(&archive, &key).await).unwrap();
    last["checkpoint"] = first["checkpoint"].clone();
    raw_put(&archive, &key, serde_json::to_vec_pretty(&last).unwrap()).await;
    let (findings, _) = check_all(&archive, Some(signer.verifier())).await;
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        matches!(&findings[0], LedgerFinding::CheckpointMismatch { key: k, reason } if *k == key && reason.contains("tree size 2")),
        "{findings:?}"
    );
}

/// A create-only write that fails with another error than "already exists" is settled by what
/// the key holds: this very record (a lost response) is an append done; another writer's is a
/// number taken, caught up with. Without that, a lost race on local disk (whose temporary a
/// sweep removed) stopped a run.
#[tokio::test]
async fn a_write_reported_failed_is_settled_by_what_is_there() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(FailingGets::new("test", |p| object_store::Error::NotFound {
        path: p.to_string(),
        source: "gone".into(),
    }));
    let first = Archive::from_store(store.clone(), "memory://");
    let second = Archive::from_store(store.clone(), "memory://");
    let leaf = |n: u32| vec![Leaf::of_bytes(format!("manifests/recordings/o/{n}.json"), b"{}").unwrap()];
    let append = |archive: &Archive, n: u32| {
        let archive = archive.clone();
        async move {
            archive
                .append_ledger(LedgerEvent::Run, &actor("0-of-1"), leaf(n), Map::new(), None)
                .await
        }
    };
    assert_eq!(append(&first, 0).await.unwrap().seq, 0);
    // The response of a stored record is lost: the append is done, once.
    store.lose_next_response.store(true, SeqCst);
    let appended = append(&first, 1).await.unwrap();
    assert_eq!((appended.seq, appended.attempts), (1, 1));
    // Another writer takes the next number; the first, unaware, is told only "failed".
    assert_eq!(append(&second, 2).await.unwrap().seq, 2);
    store.mask_conflicts.store(true, SeqCst);
    let appended = append(&first, 3).await.unwrap();
    assert_eq!((appended.seq, appended.attempts), (3, 2));
    let head = first.ledger_head().await.unwrap().unwrap();
    assert_eq!((head.seq, head.tree_size), (3, 4));
}
