//! Conformance suite for `recarch-store`.
//!
//! Every case is an `async fn(Fixture)` run against each backend listed in the
//! `conformance!` invocation at the bottom: in-memory, local disk, S3 on moto, S3 on
//! SeaweedFS (a real distributed object store) and Azure Blob (Azurite). Each case gets a
//! fresh, empty archive: a temporary directory, or a unique prefix in the shared test
//! bucket/container.
//!
//! The S3 and Azure cases need the loopback servers (`scripts/emulators.sh`), found through
//! the `RECARCH_TEST_S3_*` / `RECARCH_TEST_SEAWEEDFS_*` / `RECARCH_TEST_AZURE_*` variables. Without them those cases are
//! skipped with a loud line on stderr, unless `RECARCH_REQUIRE_EMULATORS=1` (set by
//! `scripts/test`), which makes their absence a failure.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use proptest::prelude::*;
use recarch_store::{
    Archive, Checkpoint, ContentRef, FailureClass, KIND_CALL_RECORDING, Kind, Lease, LinkKind, Manifest, ManifestWrite,
    OrganizerId, OrganizerState, QueuedItem, Sha256Digest, ShardId, StageError, StoreError, item_key,
};
use tempfile::TempDir;

use common::FailingGets;

/// Small parts so that test payloads span several multipart parts.
const TEST_PART_SIZE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    Local,
    /// S3 on moto.
    S3,
    /// S3 on SeaweedFS.
    SeaweedFs,
    Azure,
}

impl Backend {
    /// Whether the archive talks the S3 API.
    fn is_s3(self) -> bool {
        matches!(self, Backend::S3 | Backend::SeaweedFs)
    }
}

/// An archive under test, plus what keeps it alive.
struct Fixture {
    archive: Archive,
    backend: Backend,
    /// URL and options the archive was opened with (for a second, independent client).
    url: String,
    options: Vec<(String, String)>,
    /// Root directory for backends that live on local disk.
    root: Option<PathBuf>,
    _dir: Option<TempDir>,
}

impl Fixture {
    /// Whether the backend is expected to honour conditional updates (`PutMode::Update`).
    fn conditional_update(&self) -> bool {
        self.backend != Backend::Local
    }

    /// Another client of the same archive, as a second process would have (for memory,
    /// the same store, as there is no other way to share it).
    fn twin(&self) -> Archive {
        match self.backend {
            Backend::Memory => self.archive.clone(),
            _ => Archive::open(&self.url, &self.options)
                .unwrap()
                .with_upload_parts(TEST_PART_SIZE, 3),
        }
    }
}

fn memory(_case: &str) -> Option<Fixture> {
    let archive = Archive::open("memory://", &[])
        .unwrap()
        .with_upload_parts(TEST_PART_SIZE, 3);
    Some(Fixture {
        archive,
        backend: Backend::Memory,
        url: "memory://".into(),
        options: Vec::new(),
        root: None,
        _dir: None,
    })
}

fn local(_case: &str) -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: `open` must create it.
    let root = dir.path().join("archive");
    let url = url::Url::from_directory_path(&root).unwrap();
    let archive = Archive::open(url.as_str(), &[])
        .unwrap()
        .with_upload_parts(TEST_PART_SIZE, 3);
    Some(Fixture {
        archive,
        backend: Backend::Local,
        url: url.to_string(),
        options: Vec::new(),
        root: Some(root.canonicalize().unwrap()),
        _dir: Some(dir),
    })
}

// ---------------------------------------------------------- emulator backends

/// Set by `scripts/test`: a missing emulator is then a failure, not a skip.
const REQUIRE_EMULATORS: &str = "RECARCH_REQUIRE_EMULATORS";

/// Reads the emulator variables of one backend (`RECARCH_TEST_<NAME>_<SUFFIX>` for each
/// suffix). `None` when the endpoint variable is absent and emulators are not required (a
/// loud line goes to stderr, once per backend); panics when they are required, or when the
/// endpoint is set but another variable is missing.
fn emulator_env(name: &str, suffixes: &[&str]) -> Option<Vec<String>> {
    use std::io::Write;
    static S3_SKIP: std::sync::Once = std::sync::Once::new();
    static SEAWEEDFS_SKIP: std::sync::Once = std::sync::Once::new();
    static AZURE_SKIP: std::sync::Once = std::sync::Once::new();

    let var = |suffix: &str| format!("RECARCH_TEST_{name}_{suffix}");
    let endpoint = var("ENDPOINT");
    if std::env::var_os(&endpoint).is_none() {
        let required = std::env::var(REQUIRE_EMULATORS).is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "{endpoint} is not set but {REQUIRE_EMULATORS} is: start the emulators first \
             (scripts/emulators.sh run cargo test ..., or ./scripts/test)"
        );
        let once = match name {
            "S3" => &S3_SKIP,
            "SEAWEEDFS" => &SEAWEEDFS_SKIP,
            _ => &AZURE_SKIP,
        };
        once.call_once(|| {
            // Straight to stderr: the test harness would swallow eprintln! of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPING the {name} store tests: {endpoint} is not set. Run them with \
                 `scripts/emulators.sh run cargo test -p recarch-store` or ./scripts/test. ***\n"
            );
        });
        return None;
    }
    Some(
        suffixes
            .iter()
            .map(|suffix| {
                let var = var(suffix);
                std::env::var(&var).unwrap_or_else(|_| panic!("{endpoint} is set but {var} is not"))
            })
            .collect(),
    )
}

/// A fresh prefix for one case, unique across runs against the same emulator.
fn unique_prefix(case: &str) -> String {
    format!("t/{case}-{:016x}", fastrand::u64(..))
}

/// S3 settings of the moto emulator: `(bucket, options)`, or `None` to skip.
fn s3_settings() -> Option<(String, Vec<(String, String)>)> {
    s3_settings_of("S3")
}

/// S3 settings of the SeaweedFS server: `(bucket, options)`, or `None` to skip.
fn seaweedfs_settings() -> Option<(String, Vec<(String, String)>)> {
    s3_settings_of("SEAWEEDFS")
}

/// S3 settings from the `RECARCH_TEST_<name>_*` variables.
fn s3_settings_of(name: &str) -> Option<(String, Vec<(String, String)>)> {
    let env = emulator_env(
        name,
        &["ENDPOINT", "BUCKET", "REGION", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY"],
    )?;
    let [endpoint, bucket, region, key_id, secret] = <[String; 5]>::try_from(env).unwrap();
    let options = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_region", region.as_str()),
        ("aws_access_key_id", key_id.as_str()),
        ("aws_secret_access_key", secret.as_str()),
        ("aws_virtual_hosted_style_request", "false"),
        // Atomic blob commits: UploadPartCopy + CompleteMultipartUpload with If-None-Match.
        ("aws_copy_if_not_exists", "multipart"),
        // The default, spelled out: If-None-Match / If-Match on PutObject.
        ("aws_conditional_put", "etag"),
    ];
    Some((bucket, owned(&options)))
}

/// Azure settings of the Azurite emulator: `(container, options)`, or `None` to skip.
fn azure_settings() -> Option<(String, Vec<(String, String)>)> {
    let env = emulator_env("AZURE", &["ENDPOINT", "ACCOUNT", "ACCESS_KEY", "CONTAINER"])?;
    let [endpoint, account, key, container] = <[String; 4]>::try_from(env).unwrap();
    let options = [
        ("azure_storage_account_name", account.as_str()),
        ("azure_storage_account_key", key.as_str()),
        ("azure_storage_endpoint", endpoint.as_str()),
        ("azure_allow_http", "true"),
    ];
    Some((container, owned(&options)))
}

fn owned(options: &[(&str, &str)]) -> Vec<(String, String)> {
    options
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A fixture on a remote backend: `{scheme}://{container}/` under a fresh prefix for `case`,
/// opened with the backend's `options`.
fn remote(
    backend: Backend,
    scheme: &str,
    (container, options): (String, Vec<(String, String)>),
    case: &str,
) -> Fixture {
    let url = format!("{scheme}://{container}/{}", unique_prefix(case));
    // Downloads are spooled to local files before their single upload: a spool of its own per
    // case, as cases run side by side. Every body goes to a file here (the `held` fixtures
    // run the blob cases again with bodies held in memory, the default).
    let spool = tempfile::tempdir().unwrap();
    let archive = Archive::open(&url, &options)
        .unwrap()
        .with_upload_parts(TEST_PART_SIZE, 3)
        .with_spool_dir(spool.path())
        .with_spool_memory(0);
    Fixture {
        archive,
        backend,
        url,
        options,
        root: None,
        _dir: Some(spool),
    }
}

/// The memory budget of the `held` fixtures: bodies up to about 1 MiB stay in memory, and
/// larger ones spill to their spool file part way through.
const HELD_BUDGET: usize = 1024 * 1024;

/// `fixture` with bodies held in memory while [`HELD_BUDGET`] allows.
fn held(fixture: Option<Fixture>) -> Option<Fixture> {
    fixture.map(|mut f| {
        f.archive = f.archive.with_spool_memory(HELD_BUDGET);
        f
    })
}

fn s3_held(case: &str) -> Option<Fixture> {
    held(s3(case))
}

fn seaweedfs_held(case: &str) -> Option<Fixture> {
    held(seaweedfs(case))
}

fn azure_held(case: &str) -> Option<Fixture> {
    held(azure(case))
}

fn s3(case: &str) -> Option<Fixture> {
    Some(remote(Backend::S3, "s3", s3_settings()?, case))
}

fn seaweedfs(case: &str) -> Option<Fixture> {
    Some(remote(Backend::SeaweedFs, "s3", seaweedfs_settings()?, case))
}

fn azure(case: &str) -> Option<Fixture> {
    Some(remote(Backend::Azure, "az", azure_settings()?, case))
}

// ------------------------------------------------------------------ helpers

fn org() -> OrganizerId {
    OrganizerId::parse("0A1B2C3D-4E5F-6A7B-8C9D-0E1F2A3B4C5D").unwrap()
}

fn shard() -> ShardId {
    ShardId::new(0, 1)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

type Body = futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>;

fn chunked(bytes: &[u8], chunk: usize) -> Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

async fn store_blob(archive: &Archive, bytes: &[u8]) -> (Sha256Digest, u64) {
    let staged = archive.stage(&shard(), chunked(bytes, 10_000)).await.unwrap();
    let digest = staged.digest();
    let size = staged.size();
    archive.commit_blob(staged, &digest).await.unwrap();
    (digest, size)
}

/// Every key visible through the object store.
async fn all_keys(archive: &Archive) -> BTreeSet<String> {
    archive
        .object_store()
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

/// Every regular file below `root`, as `/`-separated relative paths.
fn all_files(root: &FsPath) -> BTreeSet<String> {
    fn walk(root: &FsPath, dir: &FsPath, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                let rel: Vec<_> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                out.insert(rel.join("/"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// Everything stored, including local files hidden from listings.
async fn everything(f: &Fixture) -> BTreeSet<String> {
    let mut keys = all_keys(&f.archive).await;
    if let Some(root) = &f.root {
        keys.extend(all_files(root));
    }
    keys
}

/// Staging objects in the store, and spool files on local disk (S3, Azure).
async fn staging_leftovers(f: &Fixture) -> Vec<String> {
    let mut left: Vec<String> = everything(f)
        .await
        .into_iter()
        .filter(|k| k.starts_with("staging/"))
        .collect();
    if let Some(spool) = f.archive.spool_dir() {
        let mut dirs = vec![spool.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.path().is_dir() {
                    dirs.push(entry.path());
                } else {
                    left.push(entry.path().display().to_string());
                }
            }
        }
    }
    left.sort();
    left
}

fn manifest_for(id: &str, digest: Sha256Digest, size: u64) -> Manifest {
    let mut m = Manifest::new(
        KIND_CALL_RECORDING,
        id,
        org(),
        ContentRef::new(digest, size, "video/mp4"),
    );
    m.extra.insert("meetingId".into(), serde_json::Value::from("meeting-1"));
    m.extra.insert(
        "graph".into(),
        serde_json::json!({"id": id, "createdDateTime": "2024-05-06T07:08:09Z"}),
    );
    m
}

fn is_layout_key(key: &str) -> bool {
    let segs: Vec<&str> = key.split('/').collect();
    let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let json_named = |s: &str, f: &dyn Fn(&str) -> bool| s.strip_suffix(".json").is_some_and(f);
    let guid = |s: &str| OrganizerId::parse(s).is_ok_and(|o| o.as_str() == s);
    match segs.as_slice() {
        ["blobs", "sha256", name] => hex64(name),
        ["manifests", "recordings", o, name] => guid(o) && json_named(name, &hex64),
        ["state", "recordings", name] => json_named(name, &guid),
        ["runs", name] => name.ends_with(".json"),
        ["locks", name] => json_named(name, &|s| ShardId::parse(s).is_ok()),
        _ => false,
    }
}

// -------------------------------------------------------------------- cases

async fn probe_succeeds(f: Fixture) {
    let report = f.archive.probe().await.unwrap();
    assert!(report.create_only, "{report}");
    assert!(!report.leases_are_advisory(), "{report}");
    assert_eq!(report.conditional_update, f.conditional_update(), "{report}");
    assert!(report.create_only_copy, "{report}");
    assert_eq!(
        report.warnings().is_empty(),
        f.conditional_update(),
        "{:?}",
        report.warnings()
    );
    assert!(everything(&f).await.is_empty(), "probe left {:?}", everything(&f).await);
}

/// Enough bytes for several parts at the smallest part size every backend accepts (S3's
/// 5 MiB), so that multipart staging is exercised for real on S3 too.
async fn large_blob_spans_several_parts(f: Fixture) {
    let a = f.archive.clone().with_upload_parts(1024 * 1024, 2);
    if f.backend.is_s3() {
        assert_eq!(
            a.part_size(),
            recarch_store::S3_MIN_PART_SIZE,
            "S3 parts are at least 5 MiB"
        );
    } else {
        assert_eq!(a.part_size(), 1024 * 1024);
    }
    let bytes = data(2 * recarch_store::S3_MIN_PART_SIZE + 123_457, 7);
    let staged = a.stage(&shard(), chunked(&bytes, 256 * 1024 + 1)).await.unwrap();
    let digest = staged.digest();
    assert_eq!(digest, Sha256Digest::of(&bytes));
    assert!(a.commit_blob(staged, &digest).await.unwrap().created);
    assert_eq!(a.hash_blob(&digest).await.unwrap(), (digest, bytes.len() as u64));
    assert!(staging_leftovers(&f).await.is_empty());
    // Nothing invisible either: no incomplete upload, no intent record.
    assert_eq!(a.incomplete_uploads().await.unwrap().is_some(), f.backend.is_s3());
    assert_eq!(a.incomplete_uploads().await.unwrap().unwrap_or_default(), vec![]);
    let keys = all_keys(&a).await;
    assert_eq!(keys, BTreeSet::from([format!("blobs/sha256/{}", digest.to_hex())]));
}

/// A body larger than a part held whole in memory: on S3 one put signed with its digest, on
/// Azure blocks cut from what is held. Either way exactly the bytes, and nothing else left.
async fn large_blob_held_whole(f: Fixture) {
    let a = f.archive.clone().with_spool_memory(64 * 1024 * 1024);
    let bytes = data(2 * recarch_store::S3_MIN_PART_SIZE + 654_321, 8);
    let staged = a.stage(&shard(), chunked(&bytes, 256 * 1024 + 3)).await.unwrap();
    assert_eq!(staged.key(), "memory");
    let digest = staged.digest();
    assert_eq!(digest, Sha256Digest::of(&bytes));
    assert!(a.commit_blob(staged, &digest).await.unwrap().created);
    assert_eq!(a.hash_blob(&digest).await.unwrap(), (digest, bytes.len() as u64));
    // The same bytes again: found, not sent.
    let again = a.stage(&shard(), chunked(&bytes, 1_000_000)).await.unwrap();
    assert!(!a.commit_blob(again, &digest).await.unwrap().created);
    assert!(staging_leftovers(&f).await.is_empty());
    assert_eq!(a.incomplete_uploads().await.unwrap().unwrap_or_default(), vec![]);
    let keys = all_keys(&a).await;
    assert_eq!(keys, BTreeSet::from([format!("blobs/sha256/{}", digest.to_hex())]));
}

/// Every incomplete multipart upload under the archive (none where there is no such thing).
async fn incomplete(a: &Archive) -> Vec<recarch_store::IncompleteUpload> {
    a.incomplete_uploads().await.unwrap().unwrap_or_default()
}

/// S3: a run killed during a multipart upload leaves the upload incomplete (billed, and not
/// in listings) with its intent record; the next run of the shard aborts it and drops the
/// record, and leaves alone the uploads of other shards and those started after it started.
async fn interrupted_multipart_uploads_are_aborted(f: Fixture) {
    if !f.backend.is_s3() {
        assert!(f.archive.incomplete_uploads().await.unwrap().is_none());
        assert_eq!(
            f.archive.abort_interrupted_uploads(&shard(), Utc::now()).await.unwrap(),
            0
        );
        return;
    }
    // One part in flight at a time, seven parts: the upload lasts long enough to be cut.
    let a = f.archive.clone().with_upload_parts(recarch_store::S3_MIN_PART_SIZE, 1);
    let bytes = data(6 * recarch_store::S3_MIN_PART_SIZE + 1, 11);
    let blob = Path::from(format!("blobs/sha256/{}", Sha256Digest::of(&bytes).to_hex()));
    let mut interrupted = false;
    for _ in 0..3 {
        let staged = a.stage(&shard(), chunked(&bytes, 1 << 20)).await.unwrap();
        let digest = staged.digest();
        let commit = tokio::spawn({
            let a = a.clone();
            async move { a.commit_blob(staged, &digest).await }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while incomplete(&a).await.is_empty() && !commit.is_finished() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The "kill": the commit stops where it is, without aborting anything.
        commit.abort();
        let _ = commit.await;
        if !incomplete(&a).await.is_empty() {
            interrupted = true;
            break;
        }
        // It completed first: start over.
        a.object_store().delete(&blob).await.unwrap();
    }
    assert!(interrupted, "no commit was cut during its upload");
    let killed = incomplete(&a).await;
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert_eq!(killed[0].key, blob.as_ref());
    let records = |keys: BTreeSet<String>| -> Vec<String> {
        keys.into_iter().filter(|k| k.starts_with("state/uploads/")).collect()
    };
    let left = records(all_keys(&a).await);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(&format!("state/uploads/0-of-1/{}-", Sha256Digest::of(&bytes).to_hex())));

    // What a killed probe leaves in the shard's staging area (its create-only copy is a
    // multipart upload), and another shard's.
    let store = a.object_store();
    let probe = store
        .put_multipart(&Path::from("staging/0-of-1/probe-1-copy"))
        .await
        .unwrap();
    let others = store
        .put_multipart(&Path::from("staging/1-of-2/probe-2-copy"))
        .await
        .unwrap();
    // Store clocks may count whole seconds.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let next_run_started = Utc::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // An upload of the same blob started since (by another shard).
    let mut later = store.put_multipart(&blob).await.unwrap();
    later.put_part(PutPayload::from(data(1000, 1))).await.unwrap();

    // The next run, another process.
    let next = f.twin();
    assert_eq!(
        next.abort_interrupted_uploads(&shard(), next_run_started)
            .await
            .unwrap(),
        2
    );
    let mut left: Vec<String> = incomplete(&a).await.into_iter().map(|u| u.key).collect();
    left.sort();
    assert_eq!(left, vec![blob.to_string(), "staging/1-of-2/probe-2-copy".to_owned()]);
    assert_eq!(records(all_keys(&a).await), Vec::<String>::new());
    // Idempotent.
    assert_eq!(next.abort_interrupted_uploads(&shard(), Utc::now()).await.unwrap(), 0);
    drop(probe);
    for mut upload in [later, others] {
        upload.abort().await.unwrap();
    }
    assert_eq!(incomplete(&a).await, vec![]);
    assert!(everything(&f).await.is_empty(), "{:?}", everything(&f).await);
    // The killed commit's spool file goes with the next run's `clean_staging`, as ever.
    assert_eq!(f.archive.clean_staging(&shard()).await.unwrap(), 1);
    assert!(staging_leftovers(&f).await.is_empty());
}

async fn stage_commit_and_hash(f: Fixture) {
    let a = &f.archive;
    let bytes = data(300_000, 1);
    let staged = a.stage(&shard(), chunked(&bytes, 7_777)).await.unwrap();
    assert_eq!(staged.size(), bytes.len() as u64);
    assert_eq!(staged.digest(), Sha256Digest::of(&bytes));
    assert!(
        staged.key().starts_with("staging/0-of-1/") || staged.key().contains("/0-of-1/") || staged.key() == "memory",
        "{}",
        staged.key()
    );
    let digest = staged.digest();

    let commit = a.commit_blob(staged, &digest).await.unwrap();
    assert!(commit.created);
    assert_eq!(commit.key, format!("blobs/sha256/{}", digest.to_hex()));
    assert_eq!(a.blob_size(&digest).await.unwrap(), Some(bytes.len() as u64));
    assert_eq!(
        a.hash_blob(&digest).await.unwrap(),
        (Sha256Digest::of(&bytes), bytes.len() as u64)
    );
    let stored = raw_get(a, &commit.key).await;
    assert_eq!(stored.as_ref(), bytes.as_slice());
    assert!(staging_leftovers(&f).await.is_empty());

    let missing = Sha256Digest::of(b"missing");
    assert_eq!(a.blob_size(&missing).await.unwrap(), None);
    assert!(matches!(
        a.hash_blob(&missing).await,
        Err(StoreError::NotFound { key }) if key.ends_with(&missing.to_hex())
    ));
}

async fn empty_blob(f: Fixture) {
    let a = &f.archive;
    let staged = a.stage(&shard(), chunked(&[], 1)).await.unwrap();
    assert_eq!(staged.size(), 0);
    let digest = staged.digest();
    assert_eq!(digest, Sha256Digest::of(b""));
    assert!(a.commit_blob(staged, &digest).await.unwrap().created);
    assert_eq!(a.hash_blob(&digest).await.unwrap(), (digest, 0));
}

async fn commit_same_digest_twice(f: Fixture) {
    let a = &f.archive;
    let bytes = data(150_000, 2);
    let first = a.stage(&shard(), chunked(&bytes, 4096)).await.unwrap();
    let second = a.stage(&shard(), chunked(&bytes, 65_536)).await.unwrap();
    let digest = first.digest();
    assert_eq!(second.digest(), digest);
    assert!(a.commit_blob(first, &digest).await.unwrap().created);
    let again = a.commit_blob(second, &digest).await.unwrap();
    assert!(!again.created);
    assert!(staging_leftovers(&f).await.is_empty());
    let blobs: Vec<_> = a.list_blobs().try_collect().await.unwrap();
    assert_eq!(blobs, vec![(digest, bytes.len() as u64)]);
}

/// A blob already under the digest's name whose size is not the content's (truncated by
/// hand, a bad copy) is never taken for the content: the commit is refused as corrupt, the
/// blob is left for `verify` to report, and no staging debris remains.
async fn commit_over_a_blob_of_the_wrong_size(f: Fixture) {
    let a = &f.archive;
    let bytes = data(120_000, 4);
    let staged = a.stage(&shard(), chunked(&bytes, 8192)).await.unwrap();
    let digest = staged.digest();
    let key = format!("blobs/sha256/{}", digest.to_hex());
    a.object_store()
        .put(&Path::from(key.as_str()), PutPayload::from(bytes[..1000].to_vec()))
        .await
        .unwrap();
    match a.commit_blob(staged, &digest).await {
        Err(StoreError::Corrupt { key: k, .. }) => assert_eq!(k, key),
        other => panic!("committed over a 1000-byte blob: {:?}", other.map(|c| c.created)),
    }
    assert!(staging_leftovers(&f).await.is_empty());
    let blobs: Vec<_> = a.list_blobs().try_collect().await.unwrap();
    assert_eq!(blobs, vec![(digest, 1000)]);
}

/// Two runs (separate clients) committing the same digest at once: both succeed, exactly
/// one reports having created the blob, one blob remains and no staging debris.
async fn concurrent_commits_of_one_digest(f: Fixture) {
    let a = &f.archive;
    let b = f.twin();
    let bytes = data(200_000, 3);
    for _ in 0..5 {
        let one = a.stage(&shard(), chunked(&bytes, 50_000)).await.unwrap();
        let two = b.stage(&shard(), chunked(&bytes, 30_000)).await.unwrap();
        let digest = one.digest();
        let (x, y) = tokio::join!(
            tokio::spawn({
                let a = a.clone();
                async move { a.commit_blob(one, &digest).await }
            }),
            tokio::spawn({
                let b = b.clone();
                async move { b.commit_blob(two, &digest).await }
            }),
        );
        let (x, y) = (x.unwrap().unwrap(), y.unwrap().unwrap());
        assert_eq!(x.key, y.key);
        assert!(!(x.created && y.created), "both commits claim to have created it");
        assert_eq!(a.hash_blob(&digest).await.unwrap(), (digest, bytes.len() as u64));
        assert!(staging_leftovers(&f).await.is_empty());
        let blobs: Vec<_> = a.list_blobs().try_collect().await.unwrap();
        assert_eq!(blobs, vec![(digest, bytes.len() as u64)]);
    }
}

async fn stage_body_error_leaves_nothing(f: Fixture) {
    let a = &f.archive;
    // Enough data for several parts to be uploaded before the failure.
    let mut items: Vec<Result<Bytes, std::io::Error>> = (0..10).map(|i| Ok(Bytes::from(data(50_000, i)))).collect();
    items.push(Err(std::io::Error::other("connection reset")));
    items.push(Ok(Bytes::from_static(b"never read")));
    let result = a.stage(&shard(), futures::stream::iter(items)).await;
    match result {
        Err(StageError::Body(e)) => assert_eq!(e.to_string(), "connection reset"),
        other => panic!("expected a body error, got {other:?}"),
    }
    // LocalFileSystem removes its temporary file from a blocking task: give it a moment.
    for _ in 0..50 {
        if everything(&f).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(everything(&f).await.is_empty(), "left {:?}", everything(&f).await);
}

async fn commit_with_wrong_digest_is_refused(f: Fixture) {
    let a = &f.archive;
    let staged = a.stage(&shard(), chunked(b"real bytes", 3)).await.unwrap();
    let wrong = Sha256Digest::of(b"other bytes");
    match a.commit_blob(staged, &wrong).await {
        Err(StoreError::DigestMismatch { key, expected, actual }) => {
            assert_eq!(key, format!("blobs/sha256/{}", wrong.to_hex()));
            assert_eq!(expected, wrong.to_hex());
            assert_eq!(actual, Sha256Digest::of(b"real bytes").to_hex());
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert!(everything(&f).await.is_empty());
}

async fn discard_removes_the_staged_object(f: Fixture) {
    let a = &f.archive;
    let staged = a.stage(&shard(), chunked(&data(100_000, 4), 999)).await.unwrap();
    a.discard(staged).await.unwrap();
    assert!(everything(&f).await.is_empty());
}

async fn manifest_is_create_only(f: Fixture) {
    let a = &f.archive;
    let (digest, size) = store_blob(a, b"recording").await;
    let id = "recording-1";
    assert!(!a.manifest_exists(&org(), id).await.unwrap());
    assert_eq!(a.get_manifest(&org(), id).await.unwrap(), None);

    let original = manifest_for(id, digest, size);
    assert_eq!(a.put_manifest(&original).await.unwrap(), ManifestWrite::Created);
    assert!(a.manifest_exists(&org(), id).await.unwrap());

    let (other_digest, other_size) = store_blob(a, b"another recording").await;
    let mut changed = manifest_for(id, other_digest, other_size);
    changed.extra.insert("meetingId".into(), "meeting-2".into());
    assert_eq!(a.put_manifest(&changed).await.unwrap(), ManifestWrite::AlreadyExists);
    assert_eq!(a.get_manifest(&org(), id).await.unwrap(), Some(original.clone()));

    // The stored JSON has the documented shape.
    let key = Archive::manifest_key(&org(), id);
    let raw = raw_get(a, &key).await;
    let json: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(json["schema"], "recarch.manifest.v1");
    assert_eq!(json["kind"], "callRecording");
    assert_eq!(json["id"], id);
    assert_eq!(json["organizerId"], "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d");
    assert_eq!(json["content"]["sha256"], digest.to_hex());
    assert_eq!(json["content"]["size"], size);
    assert_eq!(json["content"]["mediaType"], "video/mp4");
    assert_eq!(json["content"]["blob"], format!("blobs/sha256/{}", digest.to_hex()));
    assert_eq!(json["meetingId"], "meeting-1");
    assert_eq!(json["graph"]["id"], id);
    assert!(
        DateTime::parse_from_rfc3339(json["archivedAt"].as_str().unwrap()).is_ok(),
        "archivedAt is RFC 3339"
    );
}

async fn manifest_checks_before_writing(f: Fixture) {
    let a = &f.archive;
    let digest = Sha256Digest::of(b"never stored");
    // Blob missing.
    let m = manifest_for("r", digest, 12);
    assert!(matches!(a.put_manifest(&m).await, Err(StoreError::Rejected { .. })));
    let (digest, size) = store_blob(a, b"stored").await;
    // Wrong size.
    let m = manifest_for("r", digest, size + 1);
    assert!(matches!(a.put_manifest(&m).await, Err(StoreError::Rejected { .. })));
    // Blob key inconsistent with the digest.
    let mut m = manifest_for("r", digest, size);
    m.content.blob = "blobs/sha256/elsewhere".into();
    assert!(matches!(a.put_manifest(&m).await, Err(StoreError::Rejected { .. })));
    // Extra member shadowing a field.
    let mut m = manifest_for("r", digest, size);
    m.extra.insert("organizerId".into(), "x".into());
    assert!(matches!(a.put_manifest(&m).await, Err(StoreError::Rejected { .. })));
    // Wrong schema.
    let mut m = manifest_for("r", digest, size);
    m.schema = "recarch.manifest.v0".into();
    assert!(matches!(a.put_manifest(&m).await, Err(StoreError::Rejected { .. })));
    assert!(!a.manifest_exists(&org(), "r").await.unwrap());
}

async fn manifest_keys_stay_inside_the_organizer(f: Fixture) {
    let a = &f.archive;
    let (digest, size) = store_blob(a, b"bytes").await;
    let prefix = format!("manifests/recordings/{}/", org().as_str());
    let ids = [
        "a/b",
        "../../../etc/passwd",
        "..",
        ".",
        "x+y=",
        "AAMkAGI2TG93AAA=",
        "/leading/slash",
        "trailing/",
        "with space and ü",
        "",
        "a#1",
    ];
    let mut keys = BTreeSet::new();
    for id in ids {
        let key = Archive::manifest_key(&org(), id);
        let name = key.strip_prefix(&prefix).unwrap();
        let hex = name.strip_suffix(".json").unwrap();
        assert_eq!(hex, Sha256Digest::of(id.as_bytes()).to_hex(), "{id:?}");
        assert!(is_layout_key(&key), "{key}");
        keys.insert(key.clone());
        assert_eq!(
            a.put_manifest(&manifest_for(id, digest, size)).await.unwrap(),
            ManifestWrite::Created
        );
        assert_eq!(
            a.get_manifest(&org(), id).await.unwrap().map(|m| m.id),
            Some(id.to_owned())
        );
    }
    let listed: BTreeSet<String> = a
        .list_manifests()
        .map_ok(|(key, manifest)| {
            assert_eq!(Archive::manifest_key(&org(), &manifest.unwrap().id), key);
            key
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, keys);
}

async fn state_writes_replace_only_the_version_read(f: Fixture) {
    let a = &f.archive;
    // A second client of the same store, with its own idea of the state's version.
    let b = Archive::from_store(Arc::clone(a.object_store()), "other-client");
    let state = OrganizerState::new(Kind::Recordings, org());
    a.save_state(&state).await.unwrap();
    let mut theirs = b.load_state(Kind::Recordings, &org()).await.unwrap().unwrap();
    // Different content (S3's ETag is the content's MD5: an identical rewrite keeps it).
    theirs.rounds_completed += 1;
    b.save_state(&theirs).await.unwrap();
    // `a` still holds the version it wrote: replacing it now would overwrite b's write.
    let stale = a.save_state(&state).await;
    if f.root.is_some() {
        // Local disk has no conditional updates: the write goes through (the lease keeps
        // writers apart there).
        stale.unwrap();
    } else {
        assert!(matches!(stale, Err(StoreError::Precondition { .. })), "{stale:?}");
        // Re-reading gives the current version, and then the write succeeds.
        a.load_state(Kind::Recordings, &org()).await.unwrap();
        a.save_state(&state).await.unwrap();
    }
    // A client that never read an existing state does not clobber it blindly.
    let c = Archive::from_store(Arc::clone(a.object_store()), "third-client");
    let blind = c.save_state(&state).await;
    assert!(matches!(blind, Err(StoreError::Precondition { .. })), "{blind:?}");
    // Once its pass is over the version is forgotten: the next write must read first.
    a.forget_state(Kind::Recordings, &org());
    let forgotten = a.save_state(&state).await;
    assert!(
        matches!(forgotten, Err(StoreError::Precondition { .. })),
        "{forgotten:?}"
    );
    a.load_state(Kind::Recordings, &org()).await.unwrap();
    a.save_state(&state).await.unwrap();
}

async fn state_roundtrip(f: Fixture) {
    let a = &f.archive;
    assert_eq!(a.load_state(Kind::Recordings, &org()).await.unwrap(), None);
    assert!(a.list_states(Kind::Recordings).await.unwrap().is_empty());

    let now = Utc::now();
    let mut state = OrganizerState::new(Kind::Recordings, org());
    state.set_checkpoint(
        None,
        Some(Checkpoint {
            kind: LinkKind::Next,
            link: "https://example.invalid/next?$skiptoken=abc%2F&x=1".into(),
        }),
    );
    state.queue.push(QueuedItem {
        id: "rec/1".into(),
        item: serde_json::json!({"id": "rec/1", "nested": {"n": 1.5}}),
        attempts: 2,
        permanent_failures: 0,
        last_class: FailureClass::Transient,
        last_error: "download failed: 503".into(),
        first_failed_at: now,
        last_failed_at: now,
    });
    state.rounds_completed = 3;
    a.save_state(&state).await.unwrap();
    assert_eq!(
        a.load_state(Kind::Recordings, &org()).await.unwrap(),
        Some(state.clone())
    );

    state.set_checkpoint(
        None,
        Some(Checkpoint {
            kind: LinkKind::Delta,
            link: "https://example.invalid/delta".into(),
        }),
    );
    state.queue.clear();
    a.save_state(&state).await.unwrap();
    assert_eq!(
        a.load_state(Kind::Recordings, &org()).await.unwrap(),
        Some(state.clone())
    );

    let other = OrganizerState::new(
        Kind::Recordings,
        OrganizerId::parse("00000000-0000-0000-0000-000000000001").unwrap(),
    );
    a.save_state(&other).await.unwrap();
    assert_eq!(a.list_states(Kind::Recordings).await.unwrap(), vec![other, state]);

    let mut bad = OrganizerState::new(Kind::Recordings, org());
    bad.schema = "something else".into();
    assert!(matches!(a.save_state(&bad).await, Err(StoreError::Rejected { .. })));
    assert!(
        all_keys(a)
            .await
            .contains("state/recordings/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d.json")
    );
}

async fn queue_and_dead_letters(f: Fixture) {
    let a = &f.archive;
    let k = Kind::Recordings;
    let o = org();
    assert!(a.list_queued(k, &o).await.unwrap().is_empty());
    // Ids of every shape; each is queued once, whatever is written twice.
    let ids = ["rec/1+2==", "rec/1+2=", "../x", "plain"];
    for id in ids {
        let q = QueuedItem::first_failure(id, serde_json::json!({"id": id}), FailureClass::Transient, "503");
        a.put_queued(k, &o, &q).await.unwrap();
        a.put_queued(k, &o, &q).await.unwrap();
    }
    let mut queued: Vec<QueuedItem> = a
        .list_queued(k, &o)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    queued.sort_by(|x, y| x.id.cmp(&y.id));
    let mut want: Vec<&str> = ids.to_vec();
    want.sort_unstable();
    assert_eq!(queued.iter().map(|q| q.id.as_str()).collect::<Vec<_>>(), want);
    // Another kind's queue and another organizer's are separate.
    assert!(a.list_queued(Kind::Transcripts, &o).await.unwrap().is_empty());

    // An update replaces the entry.
    let mut first = queued.remove(0);
    first.failed_again(FailureClass::Permanent, "404");
    a.put_queued(k, &o, &first).await.unwrap();
    let again = a.list_queued(k, &o).await.unwrap();
    let entry = again
        .iter()
        .map(|r| r.as_ref().unwrap())
        .find(|q| q.id == first.id)
        .expect("still queued");
    assert_eq!((entry.attempts, entry.permanent_failures), (2, 1));

    // Dead-lettering moves it; the queue no longer lists it; the keys name it.
    let letter = a.dead_letter(k, &o, first.clone(), "failed twice").await.unwrap();
    assert_eq!(letter.reason, "failed twice");
    assert_eq!(a.list_queued(k, &o).await.unwrap().len(), ids.len() - 1);
    let dead = a.dead_letter_keys(k, &o).await.unwrap();
    assert_eq!(dead, [item_key(&first.id)].into_iter().collect());
    let letters = a.list_dead_letters(k, &o).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].as_ref().unwrap().item, first);

    // A move interrupted between its two writes (both lists hold the item): the dead letter
    // wins, and the stray queue entry is removed.
    a.put_queued(k, &o, &first).await.unwrap();
    assert!(
        a.list_queued(k, &o)
            .await
            .unwrap()
            .iter()
            .all(|q| q.as_ref().unwrap().id != first.id)
    );
    let overview = a.state_overview(k).await.unwrap();
    assert_eq!(overview[&o].queued, ids.len() - 1);
    assert_eq!(overview[&o].dead, 1);
    assert!(!overview[&o].has_checkpoint);
    // The totals of one listing agree, and count only the organizers asked for.
    assert_eq!(
        a.queue_totals(k, |org| *org == o).await.unwrap(),
        ((ids.len() - 1) as u64, 1)
    );
    assert_eq!(a.queue_totals(k, |org| *org != o).await.unwrap(), (0, 0));

    // Revived: back on the queue with fresh counts, gone from the dead letters.
    let letter = a.list_dead_letters(k, &o).await.unwrap().remove(0).unwrap();
    let revived = a.revive_dead_letter(k, &o, letter).await.unwrap();
    assert_eq!((revived.attempts, revived.permanent_failures), (0, 0));
    assert!(a.dead_letter_keys(k, &o).await.unwrap().is_empty());
    assert_eq!(a.list_queued(k, &o).await.unwrap().len(), ids.len());

    // Removing is idempotent; the checkpoint shows in the overview.
    for id in ids {
        a.remove_queued(k, &o, id).await.unwrap();
        a.remove_queued(k, &o, id).await.unwrap();
    }
    a.save_state(&OrganizerState::new(k, o.clone())).await.unwrap();
    let overview = a.state_overview(k).await.unwrap();
    assert_eq!(
        overview[&o],
        recarch_store::StateOverview {
            has_checkpoint: true,
            queued: 0,
            dead: 0
        }
    );
    // A document under the queue that is not a queue entry is reported, not fatal.
    a.object_store()
        .put(
            &Path::from(format!("state/recordings/{o}/queue/{}.json", item_key("zz"))),
            PutPayload::from_static(b"{not json"),
        )
        .await
        .unwrap();
    let listed = a.list_queued(k, &o).await.unwrap();
    assert!(
        matches!(listed.as_slice(), [Err(StoreError::Corrupt { .. })]),
        "{listed:?}"
    );
}

async fn leases(f: Fixture) {
    let a = &f.archive;
    let s = shard();
    let long = Duration::from_secs(3600);

    let lease = a.acquire_lease(&s, "run-a", long).await.unwrap();
    assert_eq!(lease.shard, s);
    assert_eq!(lease.owner, "run-a");
    assert!(lease.expires_at > Utc::now() + chrono::TimeDelta::minutes(59));
    assert!(all_keys(a).await.contains("locks/0-of-1.json"));

    match a.acquire_lease(&s, "run-b", long).await {
        Err(StoreError::LeaseHeld {
            shard,
            owner,
            expires_at,
        }) => {
            assert_eq!(shard, "0-of-1");
            assert_eq!(owner, "run-a");
            assert_eq!(expires_at, lease.expires_at);
        }
        other => panic!("expected LeaseHeld, got {other:?}"),
    }

    // Another shard is independent.
    let other = a.acquire_lease(&ShardId::new(1, 2), "run-b", long).await.unwrap();
    a.release_lease(other).await.unwrap();

    let mut lease = lease;
    let before = lease.expires_at;
    tokio::time::sleep(Duration::from_millis(5)).await;
    a.renew_lease(&mut lease).await.unwrap();
    assert!(lease.expires_at > before);

    a.release_lease(lease).await.unwrap();
    assert!(!all_keys(a).await.contains("locks/0-of-1.json"));

    // An expired lease is taken over; the old holder then loses it.
    let mut stale = a.acquire_lease(&s, "run-a", Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut fresh = a.acquire_lease(&s, "run-b", long).await.unwrap();
    assert_eq!(fresh.owner, "run-b");
    assert!(matches!(
        a.renew_lease(&mut stale).await,
        Err(StoreError::LeaseLost { shard }) if shard == "0-of-1"
    ));
    // Releasing the lost lease leaves the new holder's alone.
    a.release_lease(stale).await.unwrap();
    assert!(matches!(
        a.acquire_lease(&s, "run-c", long).await,
        Err(StoreError::LeaseHeld { owner, .. }) if owner == "run-b"
    ));
    a.renew_lease(&mut fresh).await.unwrap();
    a.release_lease(fresh).await.unwrap();
    assert!(everything(&f).await.is_empty(), "left {:?}", everything(&f).await);

    // The same owner name does not make a second acquisition succeed.
    let first = a.acquire_lease(&s, "same", long).await.unwrap();
    assert!(matches!(
        a.acquire_lease(&s, "same", long).await,
        Err(StoreError::LeaseHeld { .. })
    ));
    a.release_lease(first).await.unwrap();
}

/// Four runs (separate clients), `{owner}-{i}`, racing for the shard's lease: exactly one
/// gets it, and every other finds it held (a contender that lost a compare-and-swap re-reads
/// and finds a live lease). The winner's lease.
async fn race_for_the_lease(f: &Fixture, owner: &str) -> Lease {
    let contenders: Vec<Archive> = (0..4).map(|_| f.twin()).collect();
    let results = futures::future::join_all(contenders.iter().enumerate().map(|(i, a)| async move {
        a.acquire_lease(&shard(), &format!("{owner}-{i}"), Duration::from_secs(3600))
            .await
    }))
    .await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{owner}: {results:?}");
    for r in &results {
        assert!(matches!(r, Ok(_) | Err(StoreError::LeaseHeld { .. })), "{r:?}");
    }
    results.into_iter().find_map(Result::ok).unwrap()
}

/// Several runs (separate clients) racing for a free lease: exactly one gets it.
async fn concurrent_acquisitions_of_a_free_lease(f: Fixture) {
    race_for_the_lease(&f, "run").await;
}

/// Several runs racing to take over one expired lease: where the store has conditional
/// updates (S3, Azure, in-memory) exactly one wins and the old holder has lost it. (On
/// local disk takeover is delete-then-create; that race is documented and not tested.)
async fn concurrent_takeovers_of_an_expired_lease(f: Fixture) {
    if !f.conditional_update() {
        return;
    }
    for round in 0..3 {
        let mut stale = f
            .archive
            .acquire_lease(&shard(), "stale", Duration::ZERO)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let winner = race_for_the_lease(&f, &format!("run-{round}")).await;
        assert!(matches!(
            f.archive.renew_lease(&mut stale).await,
            Err(StoreError::LeaseLost { .. })
        ));
        f.archive.release_lease(winner).await.unwrap();
    }
    assert!(everything(&f).await.is_empty(), "left {:?}", everything(&f).await);
}

async fn unreadable_lease(f: Fixture) {
    let a = &f.archive;
    a.object_store()
        .put(&Path::from("locks/0-of-1.json"), PutPayload::from_static(b"{not json"))
        .await
        .unwrap();
    // Fresh garbage counts as held for the TTL…
    assert!(matches!(
        a.acquire_lease(&shard(), "run-a", Duration::from_secs(3600)).await,
        Err(StoreError::LeaseHeld { .. })
    ));
    // …and is taken over once older than the TTL.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let lease = a
        .acquire_lease(&shard(), "run-a", Duration::from_millis(1))
        .await
        .unwrap();
    a.release_lease(lease).await.unwrap();
    assert!(everything(&f).await.is_empty());
}

async fn clean_staging_removes_debris(f: Fixture) {
    let a = &f.archive;
    // A "killed run": staged but never committed nor discarded.
    for i in 0..3 {
        let staged = a.stage(&shard(), chunked(&data(70_000, i), 5000)).await.unwrap();
        drop(staged);
    }
    // Another shard's staging area is not touched.
    let other_shard = ShardId::new(1, 2);
    let other = a.stage(&other_shard, chunked(b"other", 2)).await.unwrap();

    assert_eq!(staging_leftovers(&f).await.len(), 4);
    assert_eq!(a.clean_staging(&shard()).await.unwrap(), 3);
    assert_eq!(a.clean_staging(&shard()).await.unwrap(), 0);
    let left = staging_leftovers(&f).await;
    assert_eq!(left, vec![other.key().to_owned()]);
    a.discard(other).await.unwrap();
    assert!(everything(&f).await.is_empty());
}

async fn run_report_keys(f: Fixture) {
    let a = &f.archive;
    let started: DateTime<Utc> = DateTime::parse_from_rfc3339("2024-05-06T07:08:09.123Z")
        .unwrap()
        .with_timezone(&Utc);
    let report = serde_json::json!({"archived": 3, "failed": 0});
    let first = a.put_run_report(&shard(), started, &report).await.unwrap();
    assert_eq!(first, "runs/20240506T070809.123Z-0-of-1.json");
    let second = a.put_run_report(&shard(), started, &report).await.unwrap();
    assert_eq!(second, "runs/20240506T070809.123Z-0-of-1-1.json");
    let third = a.put_run_report(&shard(), started, &report).await.unwrap();
    assert_eq!(third, "runs/20240506T070809.123Z-0-of-1-2.json");
    let raw = raw_get(a, &first).await;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&raw).unwrap(), report);

    // The newest report per shard is chosen by the time in its name, never by when the
    // object was written: an earlier version's whole-second name written last, and a later
    // run of another shard, change nothing for this shard.
    let older = serde_json::json!({"archived": 1});
    raw_put(a, "runs/20240506T070808Z-0-of-1.json", &older).await;
    raw_put(a, "runs/20240506T070809Z-0-of-1.json", &older).await;
    let later = started + chrono::Duration::seconds(60);
    a.put_run_report(&ShardId::new(1, 2), later, &report).await.unwrap();
    raw_put(a, "runs/notes.txt", &older).await;
    let newest = a.newest_run_reports().await.unwrap();
    let keys: Vec<&str> = newest.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "runs/20240506T070809.123Z-0-of-1-2.json",
            "runs/20240506T070909.123Z-1-of-2.json"
        ]
    );
    assert_eq!(a.read_run_report(&newest[0]).await.unwrap(), report);
}

/// The stored bytes of `key`, read past the archive.
async fn raw_get(a: &Archive, key: &str) -> Bytes {
    a.object_store()
        .get(&Path::from(key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
}

/// Rewrites the JSON object `key` with `edit`, past the archive.
async fn raw_edit(a: &Archive, key: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut value = serde_json::from_slice(&raw_get(a, key).await).unwrap();
    edit(&mut value);
    raw_put(a, key, &value).await;
}

/// Stores `value` as the JSON object `key`, past the archive.
async fn raw_put(a: &Archive, key: &str, value: &serde_json::Value) {
    a.object_store()
        .put(&Path::from(key), PutPayload::from(serde_json::to_vec(value).unwrap()))
        .await
        .unwrap();
}

async fn listings_report_corrupt_objects(f: Fixture) {
    let a = &f.archive;
    let (digest, size) = store_blob(a, b"good").await;
    let raw = a.object_store();
    raw.put(&Path::from("blobs/sha256/not-a-digest"), PutPayload::from_static(b"x"))
        .await
        .unwrap();
    let blobs: Vec<_> = a.list_blobs().collect().await;
    assert_eq!(blobs.len(), 2);
    assert!(
        blobs
            .iter()
            .any(|b| matches!(b, Ok((d, s)) if *d == digest && *s == size))
    );
    assert!(
        blobs
            .iter()
            .any(|b| matches!(b, Err(StoreError::Corrupt { key, .. }) if key == "blobs/sha256/not-a-digest"))
    );

    a.put_manifest(&manifest_for("good", digest, size)).await.unwrap();
    let garbage = format!("manifests/recordings/{}/garbage.json", org().as_str());
    raw.put(&Path::from(garbage.as_str()), PutPayload::from_static(b"[1,2"))
        .await
        .unwrap();
    // A valid manifest stored under the wrong key.
    let misfiled = format!("manifests/recordings/{}/{}.json", org().as_str(), "0".repeat(64));
    let body = serde_json::to_vec(&manifest_for("good", digest, size)).unwrap();
    raw.put(&Path::from(misfiled.as_str()), PutPayload::from(body))
        .await
        .unwrap();
    let manifests: Vec<(String, Result<Manifest, StoreError>)> = a.list_manifests().try_collect().await.unwrap();
    assert_eq!(manifests.len(), 3);
    for (key, manifest) in &manifests {
        if *key == Archive::manifest_key(&org(), "good") {
            assert_eq!(manifest.as_ref().unwrap().id, "good");
        } else {
            assert!(
                matches!(manifest, Err(StoreError::Corrupt { key: k, .. }) if k == key),
                "{key}: {manifest:?}"
            );
        }
    }

    // A state document under the wrong organizer's key.
    let wrong = "state/recordings/00000000-0000-0000-0000-000000000009.json";
    let body = serde_json::to_vec(&OrganizerState::new(Kind::Recordings, org())).unwrap();
    raw.put(&Path::from(wrong), PutPayload::from(body)).await.unwrap();
    assert!(matches!(
        a.list_states(Kind::Recordings).await,
        Err(StoreError::Corrupt { key, .. }) if key == wrong
    ));
}

/// What `status` and `verify` read, through the typed reads: leases, every manifest as stored
/// (any kind directory, and objects outside the layout), meeting indexes and the manifests
/// they name.
async fn typed_reads_of_leases_manifests_and_meeting_indexes(f: Fixture) {
    let a = &f.archive;
    assert!(a.leases().await.unwrap().is_empty());
    let lease = a
        .acquire_lease(&shard(), "run-a", Duration::from_secs(600))
        .await
        .unwrap();
    let other = ShardId::new(1, 2);
    raw_put(a, "locks/1-of-2.json", &serde_json::json!({"not": "a lease"})).await;
    raw_put(a, "locks/notes.txt", &serde_json::json!({})).await;
    let leases = a.leases().await.unwrap();
    assert_eq!(leases.len(), 2, "{leases:?}");
    let held = leases[0].as_ref().unwrap();
    assert_eq!((&held.shard, held.owner.as_str()), (&shard(), "run-a"));
    assert_eq!(held.lease_id, lease.lease_id());
    assert_eq!(held.expires_at, lease.expires_at);
    assert_eq!(held.holder.host, recarch_store::hostname());
    // Serialised as stored.
    let stored: serde_json::Value = serde_json::from_slice(&raw_get(a, "locks/0-of-1.json").await).unwrap();
    assert_eq!(serde_json::to_value(held).unwrap(), stored);
    assert!(
        matches!(&leases[1], Err(StoreError::Corrupt { key, .. }) if *key == format!("locks/{other}.json")),
        "{leases:?}"
    );
    a.release_lease(lease).await.unwrap();

    let (digest, size) = store_blob(a, b"recording").await;
    a.put_manifest(&manifest_for("rec/1", digest, size)).await.unwrap();
    let mut transcript = manifest_for("t/1", digest, size);
    transcript.kind = "callTranscript".into();
    a.put_manifest(&transcript).await.unwrap();
    raw_put(a, "manifests/loose.json", &serde_json::json!({})).await;
    let mut read: Vec<(String, Vec<u8>)> = Vec::new();
    let mut reads = a.read_manifests(4).await.unwrap();
    while let Some(item) = reads.next().await {
        match item {
            recarch_store::ManifestRead::Stored(m) => {
                let parsed: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
                if let Some(id) = parsed["id"].as_str() {
                    assert_eq!(m.expected_key(&org(), id), m.key, "stored where it belongs");
                    let elsewhere = OrganizerId::parse("99999999-2222-3333-4444-555555555555").unwrap();
                    assert_ne!(m.expected_key(&elsewhere, id), m.key);
                }
                read.push((m.key, m.bytes.to_vec()));
            }
            other => panic!("{other:?}"),
        }
    }
    read.sort();
    let keys: Vec<&str> = read.iter().map(|(k, _)| k.as_str()).collect();
    let recording = Archive::manifest_key(&org(), "rec/1");
    let transcript_key = Archive::manifest_key_of(Kind::Transcripts, &org(), "t/1");
    let mut expected = vec!["manifests/loose.json", recording.as_str(), transcript_key.as_str()];
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(recarch_store::blob_key(&digest), format!("blobs/sha256/{digest}"));

    let entry = |kind: &str, id: &str, manifest: &str| recarch_store::MeetingEntry {
        kind: kind.into(),
        id: id.into(),
        manifest: manifest.into(),
        content_correlation_id: Some("c".into()),
    };
    a.add_to_index(
        recarch_store::Container::Meeting,
        &org(),
        "m-1",
        entry("callRecording", "rec/1", &recording),
    )
    .await
    .unwrap();
    a.add_to_index(
        recarch_store::Container::Meeting,
        &org(),
        "m-1",
        entry("callTranscript", "t/1", &transcript_key),
    )
    .await
    .unwrap();
    raw_put(a, &format!("meetings/{}/x.json", org()), &serde_json::json!([1])).await;
    // Members missing from an index read as empty; its entries are still there to check.
    let partial = serde_json::json!({"entries": [{"manifest": "manifests/x"}, {"id": "no manifest"}, 7], "pairs": 1});
    raw_put(a, &format!("meetings/{}/y.json", org()), &partial).await;
    let mut indexes: Vec<(String, Result<recarch_store::MeetingIndex, StoreError>)> = a
        .indexes(recarch_store::Container::Meeting)
        .try_collect()
        .await
        .unwrap();
    indexes.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(indexes.len(), 3, "{indexes:?}");
    let partial = indexes[2].1.as_ref().unwrap();
    assert_eq!(partial.entries.len(), 1);
    assert_eq!(partial.entries[0].manifest, "manifests/x");
    assert!(partial.organizer_id.is_empty() && partial.pairs.is_empty());
    let (key, index) = &indexes[0];
    assert_eq!(*key, recarch_store::meeting_key(&org(), "m-1"));
    let index = index.as_ref().unwrap();
    assert_eq!(index.entries.len(), 2);
    assert_eq!(index.pairs.len(), 1);
    assert!(matches!(&indexes[1].1, Err(StoreError::Corrupt { .. })));
    for e in &index.entries {
        assert!(a.manifest_exists_at(&e.manifest).await.unwrap(), "{}", e.manifest);
    }
    let absent = Archive::manifest_key(&org(), "never archived");
    assert!(!a.manifest_exists_at(&absent).await.unwrap());
    // Keys outside the layout name no manifest, whatever is stored there.
    for bogus in ["manifests/loose.json", "locks/0-of-1.json", "../manifests/x", ""] {
        assert!(!a.manifest_exists_at(bogus).await.unwrap(), "{bogus}");
    }
}

async fn full_flow_leaves_only_the_layout(f: Fixture) {
    let a = &f.archive;
    let s = shard();
    a.probe().await.unwrap();
    let lease = a.acquire_lease(&s, "run", Duration::from_secs(600)).await.unwrap();
    a.clean_staging(&s).await.unwrap();

    let started = Utc::now();
    let mut state = a
        .load_state(Kind::Recordings, &org())
        .await
        .unwrap()
        .unwrap_or_else(|| OrganizerState::new(Kind::Recordings, org()));
    for (i, id) in ["rec/1", "rec+2=", "rec/1"].iter().enumerate() {
        if a.manifest_exists(&org(), id).await.unwrap() {
            continue;
        }
        let bytes = data(120_000 + i * 1000, i as u8);
        let staged = a.stage(&s, chunked(&bytes, 8192)).await.unwrap();
        let (digest, size) = (staged.digest(), staged.size());
        a.commit_blob(staged, &digest).await.unwrap();
        a.put_manifest(&manifest_for(id, digest, size)).await.unwrap();
    }
    // A failed download and a dropped staging upload, cleaned at the end.
    let failed = a
        .stage(
            &s,
            futures::stream::iter(vec![
                Ok(Bytes::from(data(100_000, 9))),
                Err(std::io::Error::other("boom")),
            ]),
        )
        .await;
    assert!(matches!(failed, Err(StageError::Body(_))));
    drop(a.stage(&s, chunked(b"abandoned", 3)).await.unwrap());

    state.set_checkpoint(
        None,
        Some(Checkpoint {
            kind: LinkKind::Delta,
            link: "https://example.invalid/delta".into(),
        }),
    );
    state.rounds_completed += 1;
    a.save_state(&state).await.unwrap();
    a.put_run_report(&s, started, &serde_json::json!({"archived": 2}))
        .await
        .unwrap();
    a.clean_staging(&s).await.unwrap();
    a.release_lease(lease).await.unwrap();

    let keys = everything(&f).await;
    assert_eq!(keys.len(), 2 + 2 + 1 + 1, "{keys:#?}");
    for key in &keys {
        assert!(is_layout_key(key), "unexpected object {key}");
    }
    if let Some(root) = &f.root {
        // No empty staging directories either.
        assert!(!root.join("staging").exists());
    }
}

async fn reclaim_cleans_staging(f: Fixture) {
    let a = &f.archive;
    drop(a.stage(&shard(), chunked(b"abandoned", 4)).await.unwrap());
    assert_eq!(a.reclaim(&shard(), &[org()]).await.unwrap(), 1);
    assert!(everything(&f).await.is_empty());
}

/// A lease written by a process of this host that no longer exists need not wait out its
/// TTL (only decidable where `/proc` exists).
async fn lease_of_a_dead_local_process_is_taken_over(f: Fixture) {
    if !FsPath::new("/proc/self").exists() {
        return;
    }
    let a = &f.archive;
    let mut original = a
        .acquire_lease(&shard(), "run-a", Duration::from_secs(3600))
        .await
        .unwrap();
    let key = "locks/0-of-1.json";
    raw_edit(a, key, |record| {
        // Same host, but a PID above any pid_max: that process cannot be running.
        record["pid"] = serde_json::Value::from(999_999_999u32);
        record["leaseId"] = serde_json::Value::from("killed-run");
    })
    .await;
    let taken = a
        .acquire_lease(&shard(), "run-b", Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(taken.owner, "run-b");
    assert!(matches!(
        a.renew_lease(&mut original).await,
        Err(StoreError::LeaseLost { .. })
    ));

    // A lease of another host is presumed alive whatever its PID.
    a.release_lease(taken).await.unwrap();
    let _ = a
        .acquire_lease(&shard(), "run-c", Duration::from_secs(3600))
        .await
        .unwrap();
    raw_edit(a, key, |record| {
        record["pid"] = serde_json::Value::from(999_999_999u32);
        record["host"] = serde_json::Value::from("some-other-host.invalid");
    })
    .await;
    assert!(matches!(
        a.acquire_lease(&shard(), "run-d", Duration::from_secs(3600)).await,
        Err(StoreError::LeaseHeld { owner, .. }) if owner == "run-c"
    ));
}

// ------------------------------------------------------ backend-specific cases

/// `reclaim` also removes the temporaries of interrupted non-staging writes of this shard
/// and its organizers on local disk, and leaves other shards' alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_reclaim_removes_interrupted_writes_of_the_shard() {
    let f = local("local").unwrap();
    let root = f.root.clone().unwrap();
    let other_org = "00000000-0000-0000-0000-000000000001";
    let o = org();
    let ours = [
        format!("state/recordings/{}.json#1", o.as_str()),
        format!("state/transcripts/{}.json#3", o.as_str()),
        format!("state/contacts/{}/queue/{}.json#1", o.as_str(), "c".repeat(64)),
        format!("state/recordings/{}/dead/{}.json#1", o.as_str(), "d".repeat(64)),
        format!("manifests/recordings/{}/{}.json#2", o.as_str(), "a".repeat(64)),
        format!("manifests/transcripts/{}/{}.json#1", o.as_str(), "e".repeat(64)),
        format!("manifests/contacts/{}/{}.json#1", o.as_str(), "f".repeat(64)),
        format!("meetings/{}/{}.json#1", o.as_str(), "9".repeat(64)),
        "state/directory/0-of-1/users.json#1".to_owned(),
        "state/shards/0-of-1.json#1".to_owned(),
        "runs/20240506T070809Z-0-of-1.json#1".to_owned(),
        // A second report of the shard in the same millisecond.
        "runs/20240506T070809.123Z-0-of-1-2.json#1".to_owned(),
        "locks/0-of-1.json#1".to_owned(),
        "staging/0-of-1/x#1".to_owned(),
    ];
    let theirs = [
        format!("state/recordings/{other_org}.json#1"),
        format!("manifests/recordings/{other_org}/{}.json#1", "b".repeat(64)),
        format!("meetings/{other_org}/{}.json#1", "9".repeat(64)),
        "state/shards/1-of-2.json#1".to_owned(),
        "runs/20240506T070809Z-1-of-2.json#1".to_owned(),
        "runs/20240506T070809.123Z-1-of-2-2.json#1".to_owned(),
        "locks/1-of-2.json#1".to_owned(),
        "staging/1-of-2/y#1".to_owned(),
    ];
    for rel in ours.iter().chain(&theirs) {
        let file = root.join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"partial").unwrap();
    }
    // A real object next to the temporaries is untouched.
    let (digest, size) = store_blob(&f.archive, b"bytes").await;
    f.archive
        .put_manifest(&manifest_for("kept", digest, size))
        .await
        .unwrap();

    assert_eq!(f.archive.reclaim(&shard(), &[org()]).await.unwrap(), ours.len());
    let left = all_files(&root);
    for rel in &ours {
        assert!(!left.contains(rel), "{rel} survived");
    }
    for rel in &theirs {
        assert!(left.contains(rel), "{rel} was removed");
    }
    assert!(f.archive.manifest_exists(&org(), "kept").await.unwrap());
}

/// A process killed mid-upload leaves `LocalFileSystem`'s `<name>#<n>` temporary file,
/// which listings do not show; `clean_staging` must still remove it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_clean_staging_removes_interrupted_upload_files() {
    let f = local("local").unwrap();
    let root = f.root.clone().unwrap();
    let store = f.archive.object_store();
    let mut upload = store.put_multipart(&Path::from("staging/0-of-1/killed")).await.unwrap();
    upload.put_part(PutPayload::from(data(1000, 1))).await.unwrap();
    // Simulate the kill: the upload is never completed, aborted or dropped.
    std::mem::forget(upload);
    // And a temporary from an older, deeper layout, just in case.
    std::fs::create_dir_all(root.join("staging/0-of-1/nested")).unwrap();
    std::fs::write(root.join("staging/0-of-1/nested/x#3"), b"x").unwrap();

    assert!(all_keys(&f.archive).await.is_empty(), "listing hides temporaries");
    assert_eq!(
        all_files(&root),
        BTreeSet::from([
            "staging/0-of-1/killed#1".to_owned(),
            "staging/0-of-1/nested/x#3".to_owned()
        ])
    );
    assert_eq!(f.archive.clean_staging(&shard()).await.unwrap(), 2);
    assert!(all_files(&root).is_empty());
    assert!(!root.join("staging").exists());
}

#[tokio::test]
async fn local_open_creates_directory_and_rejects_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/c");
    let url = url::Url::from_directory_path(&root).unwrap();
    let archive = Archive::open(url.as_str(), &[]).unwrap();
    assert!(root.is_dir());
    assert_eq!(archive.display_url(), url.as_str());
    archive.probe().await.unwrap();
    assert!(all_files(&root).is_empty());
    assert!(matches!(
        Archive::open(url.as_str(), &[("aws_region".into(), "x".into())]),
        Err(StoreError::InvalidOption { .. })
    ));
}

#[tokio::test]
async fn probe_reports_url_and_backend_message() {
    // A read-only store fails the write step.
    let archive = Archive::from_store(
        Arc::new(ReadOnly(object_store::memory::InMemory::new())),
        "s3://user:secret@bucket/prefix?token=abc",
    );
    assert_eq!(archive.display_url(), "s3://bucket/prefix");
    let err = archive.probe().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{msg}");
    assert!(msg.contains("s3://bucket/prefix"), "{msg}");
    assert!(msg.contains("read-only test store"), "{msg}");
    assert!(!msg.contains("secret") && !msg.contains("token"), "{msg}");
}

/// Probes `url` (expected to be misconfigured) and checks the error: `Unreachable`, naming
/// the archive URL and one of `expect_any` (the server's own error), showing none of
/// `secrets` (in the message, its `Debug` form or its source chain), within a few seconds.
async fn assert_probe_fails(url: &str, options: &[(String, String)], expect_any: &[&str], secrets: &[&str]) {
    let archive = Archive::open(url, options).unwrap();
    let started = std::time::Instant::now();
    let err = archive.probe().await.unwrap_err();
    let elapsed = started.elapsed();
    let msg = err.to_string();
    println!("probe error ({elapsed:?}): {msg}");
    assert!(matches!(err, StoreError::Unreachable { .. }), "{msg}");
    assert!(msg.contains(archive.display_url()), "the URL is not named: {msg}");
    assert!(
        expect_any.iter().any(|e| msg.contains(e)),
        "none of {expect_any:?} in: {msg}"
    );
    let mut everything_shown = format!("{msg}\n{err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        everything_shown.push_str(&format!("\n{e}\n{e:?}"));
        source = e.source();
    }
    for secret in secrets {
        assert!(
            !everything_shown.contains(secret),
            "a secret is shown: {everything_shown}"
        );
    }
    assert!(elapsed < Duration::from_secs(20), "the probe took {elapsed:?}");
}

/// `options` with `key` set to `value`.
fn with_option(options: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    let mut out: Vec<_> = options.iter().filter(|(k, _)| k != key).cloned().collect();
    out.push((key.to_owned(), value.to_owned()));
    out
}

fn option<'a>(options: &'a [(String, String)], key: &str) -> &'a str {
    &options.iter().find(|(k, _)| k == key).unwrap().1
}

/// On an S3 server that checks signatures (`checked`: options with valid credentials for it),
/// a wrong secret, an unknown key id and (with `options`) a missing bucket fail the probe with
/// the server's own error code, and `secret` is never shown.
async fn assert_s3_rejects(url: &str, checked: &[(String, String)], options: &[(String, String)], secret: &str) {
    let wrong = "wrong-secret-Zq9yXbT4mK2pL7vN3wR8sJ6hF1dG5cA0";
    let wrong_secret = with_option(checked, "aws_secret_access_key", wrong);
    assert_probe_fails(url, &wrong_secret, &["SignatureDoesNotMatch"], &[wrong, secret]).await;
    let unknown_key = with_option(checked, "aws_access_key_id", "AKIAUNKNOWNKEY000000");
    assert_probe_fails(url, &unknown_key, &["InvalidAccessKeyId"], &[secret]).await;
    assert_probe_fails(
        &format!("s3://recarch-no-such-bucket/{}", unique_prefix("probe")),
        options,
        &["NoSuchBucket"],
        &[secret],
    )
    .await;
}

/// A loopback address nothing listens on.
fn closed_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_probe_failures_name_the_url_and_the_server_error() {
    let Some((bucket, options)) = s3_settings() else {
        return;
    };
    let url = format!("s3://{bucket}/{}", unique_prefix("probe"));
    // Credentials are checked by the second, signature-checking moto only.
    let [auth_endpoint, key_id, secret] = <[String; 3]>::try_from(
        emulator_env("S3", &["AUTH_ENDPOINT", "AUTH_ACCESS_KEY_ID", "AUTH_SECRET_ACCESS_KEY"]).unwrap(),
    )
    .unwrap();
    let checked = with_option(&options, "aws_endpoint", &auth_endpoint);
    let checked = with_option(&checked, "aws_access_key_id", &key_id);
    let checked = with_option(&checked, "aws_secret_access_key", &secret);
    // The right key works there (so the failures below are about the key)...
    let report = Archive::open(&url, &checked).unwrap().probe().await.unwrap();
    assert!(report.create_only, "{report}");
    // ...a wrong secret or an unknown key id does not, nor a missing bucket.
    assert_s3_rejects(&url, &checked, &options, &secret).await;
    let endpoint = closed_endpoint();
    let unreachable = with_option(&options, "aws_endpoint", &endpoint);
    assert_probe_fails(
        &url,
        &unreachable,
        &["Connection refused", "connection refused"],
        &[&secret],
    )
    .await;
}

/// SeaweedFS checks every signature: a wrong secret, an unknown key and a missing bucket fail
/// the probe with the server's own error code, and no secret is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_probe_failures_name_the_url_and_the_server_error() {
    let Some((bucket, options)) = seaweedfs_settings() else {
        return;
    };
    let url = format!("s3://{bucket}/{}", unique_prefix("probe"));
    let secret = option(&options, "aws_secret_access_key").to_owned();
    let report = Archive::open(&url, &options).unwrap().probe().await.unwrap();
    assert!(
        report.create_only && report.conditional_update && report.create_only_copy,
        "{report}"
    );
    assert_s3_rejects(&url, &options, &options, &secret).await;
}

/// S3 without `aws_copy_if_not_exists` (the `object_store` default): the probe says commits
/// are not atomic, and commits fall back to check-then-copy, which still leaves one blob
/// per digest and no staging debris.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_without_copy_if_not_exists_falls_back_to_check_then_copy() {
    let Some((bucket, options)) = s3_settings() else {
        return;
    };
    let options: Vec<_> = options
        .into_iter()
        .filter(|(k, _)| k != "aws_copy_if_not_exists")
        .collect();
    let f = remote(Backend::S3, "s3", (bucket, options), "no-copy-if-not-exists");
    let report = f.archive.probe().await.unwrap();
    assert!(report.create_only && report.conditional_update, "{report}");
    assert!(!report.create_only_copy, "{report}");
    assert!(
        report.warnings().iter().any(|w| w.contains("aws_copy_if_not_exists")),
        "{:?}",
        report.warnings()
    );

    let bytes = data(100_000, 5);
    let (digest, _) = store_blob(&f.archive, &bytes).await;
    let again = f.archive.stage(&shard(), chunked(&bytes, 7_000)).await.unwrap();
    assert!(!f.archive.commit_blob(again, &digest).await.unwrap().created);

    let (a, b) = (f.archive.clone(), f.twin());
    let bytes = data(150_000, 6);
    let one = a.stage(&shard(), chunked(&bytes, 10_000)).await.unwrap();
    let two = b.stage(&shard(), chunked(&bytes, 20_000)).await.unwrap();
    let digest2 = one.digest();
    let (x, y) = tokio::join!(a.commit_blob(one, &digest2), b.commit_blob(two, &digest2));
    // Both succeed (both may report `created`: that is the documented weakness).
    assert_eq!(x.unwrap().key, y.unwrap().key);
    assert!(staging_leftovers(&f).await.is_empty());
    let mut blobs: Vec<_> = f.archive.list_blobs().try_collect().await.unwrap();
    blobs.sort();
    let mut expected = vec![(digest, 100_000), (digest2, 150_000)];
    expected.sort();
    assert_eq!(blobs, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_probe_failures_name_the_url_and_the_server_error() {
    let Some((container, options)) = azure_settings() else {
        return;
    };
    let key = option(&options, "azure_storage_account_key").to_owned();
    let url = format!("az://{container}/{}", unique_prefix("probe"));
    // A well-formed key that is not the account's.
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let wrong_key = with_option(&options, "azure_storage_account_key", wrong);
    assert_probe_fails(&url, &wrong_key, &["AuthorizationFailure"], &[wrong, &key]).await;
    assert_probe_fails(
        &format!("az://recarch-no-such-container/{}", unique_prefix("probe")),
        &options,
        &["ContainerNotFound"],
        &[&key],
    )
    .await;
    let endpoint = format!(
        "{}/{}",
        closed_endpoint(),
        option(&options, "azure_storage_account_name")
    );
    let unreachable = with_option(&options, "azure_storage_endpoint", &endpoint);
    assert_probe_fails(
        &url,
        &unreachable,
        &["Connection refused", "connection refused"],
        &[&key],
    )
    .await;
}

/// An in-memory store that refuses every write.
#[derive(Debug)]
struct ReadOnly(object_store::memory::InMemory);

impl std::fmt::Display for ReadOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadOnly")
    }
}

fn refused(path: &Path) -> object_store::Error {
    object_store::Error::PermissionDenied {
        path: path.to_string(),
        source: "read-only test store".into(),
    }
}

#[async_trait::async_trait]
impl ObjectStore for ReadOnly {
    async fn put_opts(
        &self,
        location: &Path,
        _: PutPayload,
        _: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        Err(refused(location))
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        _: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        Err(refused(location))
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.0.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
        locations.map(|l| l.and_then(|l| Err(refused(&l)))).boxed()
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<object_store::ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, _: &Path, to: &Path, _: object_store::CopyOptions) -> object_store::Result<()> {
        Err(refused(to))
    }
}

/// The listing rule: an object listed, then gone when read, is left out by every listing that
/// reads documents, never reported as an error or an entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_then_gone_is_left_out_by_every_listing() {
    // The objects named in `failing` are still listed but no longer read, as if deleted
    // between a LIST and its GET.
    let store = Arc::new(FailingGets::new("Vanishing", |location| {
        object_store::Error::NotFound {
            path: location.to_string(),
            source: "deleted since it was listed".into(),
        }
    }));
    let a = Archive::from_store(store.clone(), "memory://vanishing");
    let orgs = [
        org(),
        OrganizerId::parse("99999999-2222-3333-4444-555555555555").unwrap(),
    ];
    let (digest, size) = store_blob(&a, b"bytes").await;
    for (n, o) in orgs.iter().enumerate() {
        let mut m = manifest_for(&format!("rec-{n}"), digest, size);
        m.organizer_id = o.clone();
        a.put_manifest(&m).await.unwrap();
        a.save_state(&OrganizerState::new(Kind::Recordings, o.clone()))
            .await
            .unwrap();
        let entry = recarch_store::MeetingEntry {
            kind: KIND_CALL_RECORDING.into(),
            id: format!("rec-{n}"),
            manifest: Archive::manifest_key(o, &format!("rec-{n}")),
            content_correlation_id: None,
        };
        a.add_to_index(recarch_store::Container::Meeting, o, "m", entry)
            .await
            .unwrap();
    }
    for id in ["q-0", "q-1", "d-0", "d-1"] {
        let item = QueuedItem::first_failure(id, serde_json::Value::Null, FailureClass::Transient, "x");
        a.put_queued(Kind::Recordings, &org(), &item).await.unwrap();
        if id.starts_with('d') {
            a.dead_letter(Kind::Recordings, &org(), item, "given up").await.unwrap();
        }
    }
    let leases = [
        a.acquire_lease(&ShardId::new(0, 2), "run", Duration::from_secs(600))
            .await
            .unwrap(),
        a.acquire_lease(&ShardId::new(1, 2), "run", Duration::from_secs(600))
            .await
            .unwrap(),
    ];

    // One of each is deleted between the listing and the read.
    let gone = [
        Archive::manifest_key(&orgs[1], "rec-1"),
        format!("state/recordings/{}.json", orgs[1]),
        recarch_store::meeting_key(&orgs[1], "m"),
        format!("state/recordings/{}/queue/{}.json", org(), item_key("q-1")),
        format!("state/recordings/{}/dead/{}.json", org(), item_key("d-1")),
        "locks/1-of-2.json".to_owned(),
    ];
    store.failing.lock().unwrap().extend(gone.iter().cloned());

    let manifests: Vec<_> = a.list_manifests().try_collect().await.unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0].0, Archive::manifest_key(&org(), "rec-0"));
    assert!(manifests[0].1.is_ok());
    let of: Vec<Manifest> = a.manifests_of(Kind::Recordings, &orgs[1]).try_collect().await.unwrap();
    assert!(of.is_empty(), "{of:?}");
    let mut read = a.read_manifests(4).await.unwrap();
    let mut stored = Vec::new();
    while let Some(item) = read.next().await {
        match item {
            recarch_store::ManifestRead::Stored(m) => stored.push(m.key),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stored, [Archive::manifest_key(&org(), "rec-0")]);
    let states = a.list_states(Kind::Recordings).await.unwrap();
    assert_eq!(states.iter().map(|s| &s.organizer_id).collect::<Vec<_>>(), [&org()]);
    let indexes: Vec<_> = a
        .indexes(recarch_store::Container::Meeting)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(indexes.len(), 1);
    assert_eq!(indexes[0].0, recarch_store::meeting_key(&org(), "m"));
    let queued = a.list_queued(Kind::Recordings, &org()).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].as_ref().unwrap().id, "q-0");
    let dead = a.list_dead_letters(Kind::Recordings, &org()).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].as_ref().unwrap().item.id, "d-0");
    let held = a.leases().await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].as_ref().unwrap().shard, ShardId::new(0, 2));
    drop(leases);
}

// ------------------------------------------------------------------ proptest

fn split_at_cuts(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        // Empty chunks included: streams may yield them.
        out.push(Bytes::copy_from_slice(&bytes[start..cut]));
        start = cut;
    }
    out
}

fn stage_and_hash(make: fn(&str) -> Option<Fixture>, part_size: usize, bytes: &[u8], cuts: &[usize]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let f = make("proptest").unwrap();
        let archive = f.archive.clone().with_upload_parts(part_size, 2);
        let chunks = split_at_cuts(bytes, cuts);
        let body = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let staged = archive.stage(&shard(), body).await.unwrap();
        let expected = Sha256Digest::of(bytes);
        assert_eq!(staged.digest(), expected);
        assert_eq!(staged.size(), bytes.len() as u64);
        archive.commit_blob(staged, &expected).await.unwrap();
        assert_eq!(
            archive.hash_blob(&expected).await.unwrap(),
            (expected, bytes.len() as u64)
        );
    });
}

/// `cases` random bodies (up to 5000 bytes, cut into up to 21 writes, in parts of 1 to 699
/// bytes) staged on `make`'s backend: each hashes like a one-shot SHA-256 ([`stage_and_hash`]).
fn hashes_match_one_shot_sha256(make: fn(&str) -> Option<Fixture>, cases: u32) {
    let config = ProptestConfig {
        cases,
        source_file: Some(file!()),
        ..ProptestConfig::default()
    };
    let bodies = (
        proptest::collection::vec(any::<u8>(), 0..5000),
        proptest::collection::vec(any::<usize>(), 0..20),
        1usize..700,
    );
    proptest::test_runner::TestRunner::new(config)
        .run(&bodies, |(bytes, cuts, part_size)| {
            stage_and_hash(make, part_size, &bytes, &cuts);
            Ok(())
        })
        .unwrap();
}

#[test]
fn hash_blob_matches_one_shot_sha256_in_memory() {
    hashes_match_one_shot_sha256(memory, 64);
}

#[test]
fn hash_blob_matches_one_shot_sha256_on_local_disk() {
    hashes_match_one_shot_sha256(local, 12);
}

/// A versioned item's manifest (a contact): versions appended in order, the same blob twice in
/// a row appended once, and concurrent writers (independent clients where the backend has
/// conditional updates, one process's clones where it has not) never lose one.
async fn versions_are_appended_and_never_lost(f: Fixture) {
    let a = &f.archive;
    let id = "AAMkAGI2TG93AAA=";
    let version = |digest: Sha256Digest, size: u64| {
        let mut m = Manifest::new("contact", id, org(), ContentRef::new(digest, size, "application/json"));
        m.extra.insert("graph".into(), serde_json::json!({"id": id}));
        m
    };
    let note = |n: u64| {
        let mut extra = serde_json::Map::new();
        extra.insert("folderId".into(), serde_json::Value::from(format!("folder-{n}")));
        extra
    };
    let (d1, s1) = store_blob(a, b"{\"displayName\":\"Ada\"}").await;
    let (d2, s2) = store_blob(a, b"{\"displayName\":\"Ada King\"}").await;
    assert_eq!(
        a.append_version(&version(d1, s1), note(1)).await.unwrap(),
        ManifestWrite::Created
    );
    assert_eq!(
        a.append_version(&version(d1, s1), note(1)).await.unwrap(),
        ManifestWrite::AlreadyExists,
        "the newest version again is not appended"
    );
    assert_eq!(
        a.append_version(&version(d2, s2), note(2)).await.unwrap(),
        ManifestWrite::Created
    );
    // Back to the first state: a new version, not a duplicate.
    assert_eq!(
        a.append_version(&version(d1, s1), note(3)).await.unwrap(),
        ManifestWrite::Created
    );
    let key = Archive::manifest_key_of(Kind::Contacts, &org(), id);
    let read = |a: Archive| {
        let key = key.clone();
        async move {
            let raw = raw_get(&a, &key).await;
            serde_json::from_slice::<serde_json::Value>(&raw).unwrap()
        }
    };
    let json = read(a.clone()).await;
    let versions = json["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3, "{json}");
    let hexes: Vec<&str> = versions.iter().map(|v| v["sha256"].as_str().unwrap()).collect();
    assert_eq!(hexes, [d1.to_hex(), d2.to_hex(), d1.to_hex()]);
    assert_eq!(versions[1]["folderId"], "folder-2");
    assert_eq!(versions[1]["blob"], format!("blobs/sha256/{}", d2.to_hex()));
    assert!(DateTime::parse_from_rfc3339(versions[1]["archivedAt"].as_str().unwrap()).is_ok());
    assert_eq!(json["content"]["sha256"], d1.to_hex(), "content is the newest version");
    assert_eq!(json["kind"], "contact");

    // A version naming a missing blob is refused, and nothing changes.
    let missing = Sha256Digest::from_bytes([7; 32]);
    assert!(a.append_version(&version(missing, 3), note(9)).await.is_err());
    // `versions` is the store's.
    let mut own = version(d2, s2);
    own.extra.insert("versions".into(), serde_json::json!([]));
    assert!(a.append_version(&own, note(9)).await.is_err());
    assert_eq!(read(a.clone()).await, json);

    // Writers at once: 12 new versions, none lost.
    let mut blobs = Vec::new();
    for n in 0..12u8 {
        blobs.push(store_blob(a, format!("{{\"n\":{n}}}").as_bytes()).await);
    }
    let writers: Vec<Archive> = (0..4)
        .map(|_| {
            // `memory://` opened again would be another store.
            if f.conditional_update() && f.backend != Backend::Memory {
                Archive::open(&f.url, &f.options).unwrap()
            } else {
                a.clone()
            }
        })
        .collect();
    let tasks = blobs.iter().enumerate().map(|(n, (d, s))| {
        let w = writers[n % writers.len()].clone();
        let m = version(*d, *s);
        let extra = note(n as u64);
        async move { w.append_version(&m, extra).await }
    });
    for written in futures::future::join_all(tasks).await {
        assert_eq!(written.unwrap(), ManifestWrite::Created);
    }
    let json = read(a.clone()).await;
    let versions = json["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3 + 12, "no version lost: {json}");
    for (d, _) in &blobs {
        assert!(versions.iter().any(|v| v["sha256"] == d.to_hex()), "{d} kept");
    }
}

// ---------------------------------------------------------------- the matrix

macro_rules! backend_suite {
    ($backend:ident => $make:path; $($case:ident),+) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    // `None`: the backend's emulator is absent and not required (skipped loudly).
                    if let Some(fixture) = $make(stringify!($case)) {
                        super::$case(fixture).await
                    }
                }
            )+
        }
    };
}

/// Runs every case against every backend. A constructor returns a `Fixture` on a fresh,
/// empty archive, or `None` to skip (see `emulator_env`).
macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        backend_suite!(in_memory => super::memory; $($case),+);
        backend_suite!(local_fs => super::local; $($case),+);
        backend_suite!(s3 => super::s3; $($case),+);
        backend_suite!(seaweedfs => super::seaweedfs; $($case),+);
        backend_suite!(azure => super::azure; $($case),+);
    };
}

/// The blob cases, named once: `$suite!` runs them and the `$more` cases.
macro_rules! with_blob_cases {
    ($suite:ident; $($more:ident),* $(,)?) => {
        $suite!(
            stage_commit_and_hash,
            large_blob_spans_several_parts,
            empty_blob,
            commit_same_digest_twice,
            commit_over_a_blob_of_the_wrong_size,
            concurrent_commits_of_one_digest,
            stage_body_error_leaves_nothing,
            commit_with_wrong_digest_is_refused,
            discard_removes_the_staged_object,
            full_flow_leaves_only_the_layout,
            $($more),*
        );
    };
}

with_blob_cases!(
    conformance;
    probe_succeeds,
    interrupted_multipart_uploads_are_aborted,
    manifest_is_create_only,
    manifest_checks_before_writing,
    manifest_keys_stay_inside_the_organizer,
    versions_are_appended_and_never_lost,
    state_roundtrip,
    queue_and_dead_letters,
    state_writes_replace_only_the_version_read,
    leases,
    concurrent_acquisitions_of_a_free_lease,
    concurrent_takeovers_of_an_expired_lease,
    unreadable_lease,
    clean_staging_removes_debris,
    run_report_keys,
    listings_report_corrupt_objects,
    typed_reads_of_leases_manifests_and_meeting_indexes,
    reclaim_cleans_staging,
    lease_of_a_dead_local_process_is_taken_over,
);

/// The blob cases on S3 and Azure with bodies held in memory, as they are by default: small
/// ones whole (one put, with the digest the spool computed), large ones spilled to their spool
/// file part way through.
macro_rules! held_in_memory {
    ($($case:ident),+ $(,)?) => {
        backend_suite!(s3_held => super::s3_held; $($case),+);
        backend_suite!(seaweedfs_held => super::seaweedfs_held; $($case),+);
        backend_suite!(azure_held => super::azure_held; $($case),+);
    };
}

with_blob_cases!(held_in_memory; large_blob_held_whole);

// ------------------------------------------------- lease holders in containers

/// This process's identity as `acquire_lease` records it, read back from a lease of a spare
/// shard.
async fn own_lease_identity(a: &Archive) -> serde_json::Value {
    let spare = ShardId::new(1, 2);
    let lease = a.acquire_lease(&spare, "probe", Duration::from_secs(60)).await.unwrap();
    let raw = raw_get(a, "locks/1-of-2.json").await;
    a.release_lease(lease).await.unwrap();
    serde_json::from_slice(&raw).unwrap()
}

/// A lease of shard `0-of-1`, unexpired for an hour, written by hand for a holder on our host
/// and boot (as `me` recorded them) with the given pid, pid namespace and start time.
async fn put_hand_written_lease(a: &Archive, me: &serde_json::Value, pid: u32, pid_namespace: u64, start_ticks: u64) {
    let now = Utc::now();
    let lease = serde_json::json!({
        "schema": "recarch.lease.v1",
        "shard": "0-of-1",
        "owner": "other-pod",
        "leaseId": "hand-written",
        "host": me["host"],
        "pid": pid,
        "bootId": me["bootId"],
        "pidNamespace": pid_namespace,
        "startTicks": start_ticks,
        "acquiredAt": now,
        "renewedAt": now,
        "expiresAt": now + chrono::TimeDelta::hours(1),
    });
    raw_put(a, "locks/0-of-1.json", &lease).await;
}

/// Kubernetes: every pod's recarch is pid 1, and a fixed `hostname:` repeats host names. A
/// live holder in another pod (another pid namespace) must not be taken for dead because our
/// own pid 1 is someone else, or because its pid is absent from our `/proc`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_of_another_pod_with_pid_1_and_our_hostname_is_held() {
    for f in [memory("pod"), local("pod")].into_iter().flatten() {
        let a = &f.archive;
        let me = own_lease_identity(a).await;
        if FsPath::new("/proc/self/stat").exists() {
            let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
            assert_eq!(me["bootId"], boot_id.trim(), "{me}");
            let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
            assert_eq!(format!("pid:[{}]", me["pidNamespace"]), ns.to_string_lossy(), "{me}");
            assert_eq!(me["pid"], std::process::id(), "{me}");
            assert!(me["startTicks"].is_u64(), "{me}");
        }
        let our_namespace = me["pidNamespace"].as_u64().unwrap_or(4026531836);
        for other_namespace in [our_namespace + 1, our_namespace - 1] {
            put_hand_written_lease(a, &me, 1, other_namespace, 1).await;
            match a.acquire_lease(&shard(), "this-pod", Duration::from_secs(3600)).await {
                Err(StoreError::LeaseHeld { owner, .. }) => assert_eq!(owner, "other-pod"),
                other => panic!("expected LeaseHeld, got {other:?}"),
            }
        }
    }
}

/// Within our own boot and pid namespace a holder whose pid is gone, or now belongs to a
/// process started at another time, is provably dead: its lease is taken over before it
/// expires. The same pid with the same start time is alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_of_a_dead_holder_in_our_pid_namespace_is_taken_over() {
    if !FsPath::new("/proc/self/stat").exists() {
        return;
    }
    for f in [memory("dead"), local("dead")].into_iter().flatten() {
        let a = &f.archive;
        let me = own_lease_identity(a).await;
        let ns = me["pidNamespace"].as_u64().unwrap();
        let started = me["startTicks"].as_u64().unwrap();

        // A pid above any pid_max: no such process.
        put_hand_written_lease(a, &me, 999_999_999, ns, started).await;
        let taken = a
            .acquire_lease(&shard(), "this-run", Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(taken.owner, "this-run");
        a.release_lease(taken).await.unwrap();

        // Our own pid, but recorded with another start time: a reused pid.
        put_hand_written_lease(a, &me, std::process::id(), ns, started + 1).await;
        let taken = a
            .acquire_lease(&shard(), "this-run", Duration::from_secs(3600))
            .await
            .unwrap();
        a.release_lease(taken).await.unwrap();

        // Our own pid with our start time: that holder runs (it is us).
        put_hand_written_lease(a, &me, std::process::id(), ns, started).await;
        assert!(matches!(
            a.acquire_lease(&shard(), "this-run", Duration::from_secs(3600)).await,
            Err(StoreError::LeaseHeld { owner, .. }) if owner == "other-pod"
        ));
    }
}
