//! Write-once retention and legal holds against S3 Object Lock (moto, which enforces them:
//! a locked or held version cannot be deleted) and on local disk (files made read-only).
//!
//! The S3 cases need the loopback moto server of `scripts/emulators.sh` (skipped with a line
//! on stderr otherwise, a failure under `RECARCH_REQUIRE_EMULATORS=1`).

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read as _, Write as _};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use recarch_store::ledger::{Actor, Leaf, LedgerEvent};
use recarch_store::{
    Archive, ContentRef, KIND_CALL_RECORDING, LockMode, Manifest, ManifestWrite, OrganizerId, ShardId, WormPolicy,
    WormSupport, blob_key,
};

const ORGANIZER: &str = "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d";

/// moto's endpoint and options, or `None` (with a line on stderr) when it is not running.
fn moto() -> Option<(String, Vec<(String, String)>)> {
    let Ok(endpoint) = std::env::var("RECARCH_TEST_S3_ENDPOINT") else {
        let required = std::env::var("RECARCH_REQUIRE_EMULATORS").is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "RECARCH_TEST_S3_ENDPOINT is not set but RECARCH_REQUIRE_EMULATORS is"
        );
        let _ = writeln!(
            std::io::stderr(),
            "*** SKIPPING the Object Lock tests: RECARCH_TEST_S3_ENDPOINT is not set (scripts/emulators.sh run cargo test) ***"
        );
        return None;
    };
    let var = |s: &str| std::env::var(format!("RECARCH_TEST_S3_{s}")).unwrap();
    let options = [
        ("aws_endpoint", endpoint.clone()),
        ("aws_allow_http", "true".into()),
        ("aws_region", var("REGION")),
        ("aws_access_key_id", var("ACCESS_KEY_ID")),
        ("aws_secret_access_key", var("SECRET_ACCESS_KEY")),
        ("aws_virtual_hosted_style_request", "false".into()),
        ("aws_conditional_put", "etag".into()),
    ];
    Some((endpoint, options.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// Creates bucket `name` on moto (any credentials are accepted there), with Object Lock
/// enabled or not, by a plain `CreateBucket` request.
fn create_bucket(endpoint: &str, name: &str, object_lock: bool) {
    let url = url::Url::parse(endpoint).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port_or_known_default().unwrap());
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    let lock = if object_lock {
        "x-amz-bucket-object-lock-enabled: true\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "PUT /{name} HTTP/1.1\r\nHost: {host}\r\n{lock}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

fn policy() -> WormPolicy {
    WormPolicy {
        mode: LockMode::Governance,
        longest: TimeDelta::days(1),
    }
}

/// Stages and commits `bytes` as a blob; returns its manifest, asking for retention until
/// `until`.
async fn item(archive: &Archive, id: &str, bytes: &'static [u8], until: DateTime<Utc>) -> Manifest {
    let shard = ShardId::new(0, 1);
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(bytes))]);
    let staged = archive.stage(&shard, body).await.unwrap();
    let (digest, size) = (staged.digest(), staged.size());
    archive.commit_blob(staged, &digest).await.unwrap();
    let mut manifest = Manifest::new(
        KIND_CALL_RECORDING,
        id,
        OrganizerId::parse(ORGANIZER).unwrap(),
        ContentRef::new(digest, size, "video/mp4"),
    );
    manifest.extra.insert("meetingId".into(), "meeting-1".into());
    manifest.extra.insert(
        "retention".into(),
        serde_json::json!({"mode": "governance", "retainUntil": until.to_rfc3339()}),
    );
    manifest
}

fn manifest_key(id: &str) -> String {
    Archive::manifest_key_of(
        recarch_store::Kind::Recordings,
        &OrganizerId::parse(ORGANIZER).unwrap(),
        id,
    )
}

fn actor() -> Actor {
    Actor {
        user: "tester".into(),
        host: "test-host".into(),
        shard: "0-of-1".into(),
        version: "recarch test".into(),
    }
}

/// Every object is locked as it is written; a blob is extended, never shortened; a locked
/// version cannot be deleted, an expired one can; legal holds go on and off.
#[tokio::test]
async fn object_lock_on_moto() {
    let Some((endpoint, options)) = moto() else {
        return;
    };
    let bucket = format!("worm-{:08x}", fastrand::u32(..));
    create_bucket(&endpoint, &bucket, true);
    let plain = format!("plain-{:08x}", fastrand::u32(..));
    create_bucket(&endpoint, &plain, false);

    let unlocked = Archive::open(&format!("s3://{plain}/a"), &options).unwrap();
    match unlocked.worm_support().await.unwrap() {
        WormSupport::NotEnabled(reason) => assert!(reason.contains(&plain), "{reason}"),
        other => panic!("{other:?}"),
    }

    let archive = Archive::open(&format!("s3://{bucket}/a"), &options)
        .unwrap()
        .with_worm(policy());
    assert_eq!(archive.worm_support().await.unwrap(), WormSupport::Enforced);

    // A manifest and its blob, locked until the manifest's retain-until.
    let until = Utc::now() + TimeDelta::hours(2);
    let first = item(&archive, "rec-1", b"shared bytes", until).await;
    assert_eq!(archive.put_manifest(&first).await.unwrap(), ManifestWrite::Created);
    let key = manifest_key("rec-1");
    let state = archive.lock_state(&key).await.unwrap().unwrap();
    let lock = state.retention.unwrap();
    assert_eq!(lock.mode, LockMode::Governance);
    assert_eq!(
        lock.retain_until.timestamp(),
        until.timestamp() + i64::from(until.timestamp_subsec_nanos() > 0)
    );
    let blob = blob_key(&first.content.sha256);
    let blob_until = archive
        .lock_state(&blob)
        .await
        .unwrap()
        .unwrap()
        .retention
        .unwrap()
        .retain_until;
    assert_eq!(blob_until, lock.retain_until);

    // A second item on the same blob that needs it longer extends it; a shorter one does not
    // shorten it.
    let later = until + TimeDelta::hours(5);
    let second = item(&archive, "rec-2", b"shared bytes", later).await;
    archive.put_manifest(&second).await.unwrap();
    let extended = archive
        .lock_state(&blob)
        .await
        .unwrap()
        .unwrap()
        .retention
        .unwrap()
        .retain_until;
    assert!(extended > blob_until && extended >= later, "{extended} {later}");
    let third = item(&archive, "rec-3", b"shared bytes", until).await;
    archive.put_manifest(&third).await.unwrap();
    let kept = archive
        .lock_state(&blob)
        .await
        .unwrap()
        .unwrap()
        .retention
        .unwrap()
        .retain_until;
    assert_eq!(kept, extended);

    // A ledger record and a logged document are locked for the policy's longest period.
    let record = archive
        .append_ledger(
            LedgerEvent::Run,
            &actor(),
            vec![Leaf::of_bytes(key.clone(), b"x").unwrap()],
            serde_json::Map::new(),
            None,
        )
        .await
        .unwrap();
    let record_lock = archive
        .lock_state(&record.key)
        .await
        .unwrap()
        .unwrap()
        .retention
        .unwrap();
    assert!(record_lock.retain_until > Utc::now() + TimeDelta::hours(23));

    // Deleting a locked version is refused by the store, and the object stays.
    let err = archive.dispose_object(&key).await.unwrap_err();
    assert!(format!("{err:#}").contains(&key), "{err:#}");
    let organizer = OrganizerId::parse(ORGANIZER).unwrap();
    assert!(archive.manifest_exists(&organizer, "rec-1").await.unwrap());

    // A legal hold goes on and off.
    archive.set_legal_hold(&key, true).await.unwrap();
    assert!(archive.lock_state(&key).await.unwrap().unwrap().legal_hold);
    archive.set_legal_hold(&key, false).await.unwrap();
    assert!(!archive.lock_state(&key).await.unwrap().unwrap().legal_hold);

    // An item kept for two seconds: refused while locked (and while held), gone for good
    // (every version) once expired and released.
    let brief = item(&archive, "rec-4", b"brief bytes", Utc::now() + TimeDelta::seconds(2)).await;
    archive.put_manifest(&brief).await.unwrap();
    let brief_key = manifest_key("rec-4");
    archive.set_legal_hold(&brief_key, true).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(archive.dispose_object(&brief_key).await.is_err(), "held, yet deleted");
    archive.set_legal_hold(&brief_key, false).await.unwrap();
    archive.dispose_object(&brief_key).await.unwrap();
    assert!(archive.lock_state(&brief_key).await.unwrap().is_none());
    let brief_blob = blob_key(&brief.content.sha256);
    archive.dispose_object(&brief_blob).await.unwrap();
    assert!(archive.lock_state(&brief_blob).await.unwrap().is_none());
}

/// On local disk a locked object's file is read-only (not WORM: the directory's owner can
/// still delete it), and the archive says so.
#[tokio::test]
async fn local_files_are_made_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let archive = Archive::open(url.as_str(), &[]).unwrap().with_worm(policy());
    assert_eq!(archive.worm_support().await.unwrap(), WormSupport::Local);
    let manifest = item(&archive, "rec-1", b"local bytes", Utc::now() + TimeDelta::hours(1)).await;
    archive.put_manifest(&manifest).await.unwrap();
    for key in [manifest_key("rec-1"), blob_key(&manifest.content.sha256)] {
        let meta = std::fs::metadata(dir.path().join(&key)).unwrap();
        assert!(meta.permissions().readonly(), "{key} is writable");
    }
    // Without a policy nothing is made read-only.
    let plain = Archive::open(url.as_str(), &[]).unwrap();
    let other = item(&plain, "rec-2", b"other bytes", Utc::now()).await;
    plain.put_manifest(&other).await.unwrap();
    let meta = std::fs::metadata(dir.path().join(manifest_key("rec-2"))).unwrap();
    assert!(!meta.permissions().readonly());
    // Disposal deletes a read-only file.
    archive.dispose_object(&manifest_key("rec-1")).await.unwrap();
    assert!(!dir.path().join(manifest_key("rec-1")).exists());
}
