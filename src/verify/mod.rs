//! `recarch verify`: every manifest checked against the blobs it names, blobs re-hashed (all,
//! or a random sample), orphans and unreadable objects reported; the ledger checked against
//! the objects it logs, and the catalog checked complete and true against the manifests
//! (see the `catalog` module: `ls`, `show` and `export` find items only through it).
//!
//! # Streaming, in memory that does not grow with the archive
//!
//! The check is a merge-join of two lists sorted by digest: the blob references of every
//! manifest (`digest, size, manifest key`) and the blobs (`digest, size`). Listings come in no
//! useful order (`LocalFileSystem` walks directories as they come; S3 and Azure list by key,
//! which for manifests is not the digest order of their references), so each list goes
//! through an external sort:
//!
//! 1. **Manifests.** Every object under `manifests/` (any kind: `recordings/`,
//!    `transcripts/`, …) is read, 8 at a time, and parsed as plain JSON. Every top-level
//!    member that is an object with `sha256`, `size` and `blob` (a recording's `content`, a
//!    transcript's `content` and `metadata`), or an array of such objects, is a blob
//!    reference. References are collected in runs of 64 Ki; a full run is sorted and
//!    written to a temporary file.
//! 2. **Blobs.** `blobs/sha256/` is listed the same way, into runs of its own.
//! 3. **Join.** Each list is merged back from its runs (at most 64 at once; more are first
//!    merged in groups), and the two sorted streams are walked side by side: a digest named
//!    but not listed is a missing blob, listed but not named an orphan, named with another
//!    size a mismatch. Every listed blob (or a uniform random sample of `--sample N`, chosen
//!    on the way without holding the list) is re-hashed, 4 at once.
//!
//! **Memory bound**: at most 64 Ki blob references and 64 Ki blob entries in memory at once
//! (about 13 MiB and 2.5 MiB, with manifest keys of 128 bytes), one 32 KiB read buffer per run
//! being merged (at most 2 x 65, about 4 MiB), 8 manifests and 4 hashing buffers of 1 MiB in
//! flight, and 256 findings queued for printing: some 25 MiB above the process's base,
//! whatever the number of blobs and manifests. Problems are printed as they are found and
//! only counted; the report keeps the first [`KEPT_PROBLEMS`]. The one list that grows is that
//! of organizer directories under each `manifests/<kind>/` (one path each, see below). The
//! temporary runs take about 170 bytes per reference and 40 per blob (some 210 MB for 10^6
//! recordings) under `$TMPDIR`, and are removed at the end; an archive of fewer than 64 Ki
//! manifests and blobs writes none. Measured (`benches/verify_status.rs`, docs/benchmarks.md):
//! 10^6 blobs and manifests on local disk, peak RSS 88-90 MiB, 31 MiB with one malloc arena;
//! the previous in-memory maps took 388 MiB.
//!
//! **The catalog** (module `catalog`) is checked from the same reads: each manifest, as read
//! above, derives its catalog entries; each segment, as the ledger check reads it, gives the
//! entries listed. Both lists go through the same external sort by `(manifest, sha256)`, in
//! runs of 8 Ki entries (about 5 MiB each), and are merge-joined holding one manifest's
//! entries at a time. Their temporary runs take some 400 bytes per entry.
//!
//! **Failures.** An unreadable manifest (a read error, not JSON, an unknown schema, no blob
//! reference, stored under another key than its `organizerId` and `id` give) is reported and
//! skipped. Manifests are listed one organizer directory (`manifests/<kind>/<organizer>/`) at
//! a time, because a listing stops at its first error on every backend: a failed listing
//! loses only the rest of its directory, and is reported. While a listing is incomplete its
//! absent entries would read as false findings (every blob of an unlisted manifest an
//! orphan, every unlisted blob missing): those are then counted in one line instead. Only a
//! failure to list `manifests/` or `blobs/sha256/` at all, or temporary files that cannot be
//! written or read back, end the check (exit 4).

mod catalog;
pub(crate) mod checks;
mod join;
mod ledger;
mod listing;
mod meetings;
mod sort;

use std::io;
use std::time::{Duration, Instant};

use futures::StreamExt;
pub use ledger::KeptCheckpoint;
use recarch_store::ledger::LedgerVerifier;
use recarch_store::{Archive, blob_key};
use serde::Serialize;

use crate::exit::{Exit, ExitError};
use catalog::CatalogCheck;
use join::{Event, Outcome, Reported, Sampler, join};
use listing::{list_blobs, read_manifests};
use meetings::check_indexes;
use recarch_failure::error_chain;
use sort::{BlobEntry, Limits, RefEntry, Spill};

/// How many blobs are re-hashed at once.
const HASH_PARALLELISM: usize = 4;
/// Findings of the join waiting to be printed or hashed.
const EVENT_QUEUE: usize = 256;
/// Problems kept in [`VerifyReport::problems`]; all of them are counted.
pub const KEPT_PROBLEMS: usize = 1000;
/// How often progress is logged on large archives.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What `verify` found.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Manifests listed (readable or not).
    pub manifests: u64,
    /// Blobs listed.
    pub blobs: u64,
    /// Blobs re-hashed.
    pub rehashed: u64,
    /// Bytes re-hashed.
    pub rehashed_bytes: u64,
    /// How many problems were found.
    pub problem_count: u64,
    /// The first [`KEPT_PROBLEMS`] problems, one line each.
    pub problems: Vec<String>,
    /// Ledger records checked.
    pub ledger_records: u64,
    /// Leaves they log.
    pub ledger_leaves: u64,
    /// Catalog entries read (lines of every segment).
    pub catalog_entries: u64,
    /// Disposal markers read (lines of every segment that hide a disposed item's entries).
    pub catalog_disposed: u64,
}

impl VerifyReport {
    fn found(&mut self, problem: String, on_problem: &mut impl FnMut(&str)) {
        on_problem(&problem);
        self.problem_count += 1;
        if self.problems.len() < KEPT_PROBLEMS {
            self.problems.push(problem);
        }
    }
}

/// Checks the archive. `sample`: re-hash only that many randomly chosen blobs. The report
/// keeps the first [`KEPT_PROBLEMS`] problems; [`verify_with`] sees every one.
pub async fn verify(archive: &Archive, sample: Option<usize>) -> Result<VerifyReport, ExitError> {
    verify_with(archive, sample, |_| {}).await
}

/// [`verify`], handing each problem to `on_problem` as soon as it is found.
pub async fn verify_with(
    archive: &Archive,
    sample: Option<usize>,
    on_problem: impl FnMut(&str),
) -> Result<VerifyReport, ExitError> {
    check(
        archive,
        sample,
        Limits::DEFAULT,
        on_problem,
        &crate::progress::NoProgress,
        (None, &[]),
    )
    .await
}

/// [`verify_with`], reporting progress (bars on a terminal: manifests read and blobs re-hashed,
/// bytes and rate).
pub async fn verify_with_progress(
    archive: &Archive,
    sample: Option<usize>,
    on_problem: impl FnMut(&str),
    progress: &dyn crate::progress::Progress,
    ledger_keys: (Option<LedgerVerifier>, &[KeptCheckpoint]),
) -> Result<VerifyReport, ExitError> {
    check(archive, sample, Limits::DEFAULT, on_problem, progress, ledger_keys).await
}

/// `recarch verify`: prints the findings as they come; exit 0 when clean, 1 when anything is
/// wrong, also when stdout's reader went away meanwhile (nothing more is printed then; any
/// other stdout error is returned when the check ends).
pub async fn verify_cli(
    archive: &Archive,
    sample: Option<usize>,
    progress: std::sync::Arc<dyn crate::progress::Progress>,
    verifier: Option<LedgerVerifier>,
    kept: &[KeptCheckpoint],
) -> Result<Exit, ExitError> {
    let signed = verifier.is_some();
    let mut refused: Option<crate::output::StdoutError> = None;
    let report = verify_with_progress(
        archive,
        sample,
        |p| {
            if refused.is_none() {
                progress.suspend(&mut || refused = crate::outln!("problem: {p}").err());
            }
        },
        progress.as_ref(),
        (verifier, kept),
    )
    .await;
    progress.finish();
    let report = report?;
    let exit = if report.problem_count == 0 {
        Exit::Ok
    } else {
        Exit::Partial
    };
    let printed = match refused {
        Some(e) => Err(e),
        None => crate::outln!(
            "verify {}: {} manifests, {} blobs, {} re-hashed ({:.1} MiB), {} ledger records ({} leaves{}), {} catalog entries, {} problems",
            archive.display_url(),
            report.manifests,
            report.blobs,
            report.rehashed,
            report.rehashed_bytes as f64 / 1048576.0,
            report.ledger_records,
            report.ledger_leaves,
            if signed { ", signatures checked" } else { "" },
            report.catalog_entries,
            report.problem_count
        ),
    };
    crate::output::finish(printed, exit)
}

fn fatal(context: String) -> impl FnOnce(io::Error) -> ExitError {
    move |e| ExitError::new(Exit::Fatal, anyhow::Error::new(e).context(context))
}

fn spill_failed(e: io::Error) -> ExitError {
    fatal(format!(
        "cannot keep verify's sorted runs in {}; set TMPDIR to a writable directory with room for them",
        std::env::temp_dir().display()
    ))(e)
}

async fn check(
    archive: &Archive,
    sample: Option<usize>,
    limits: Limits,
    mut on_problem: impl FnMut(&str),
    progress: &dyn crate::progress::Progress,
    ledger_keys: (Option<LedgerVerifier>, &[KeptCheckpoint]),
) -> Result<VerifyReport, ExitError> {
    let mut report = VerifyReport::default();
    let mut refs = Spill::<RefEntry>::new(limits);
    let mut catalog = CatalogCheck::new(limits);
    let manifests_complete =
        read_manifests(archive, &mut refs, &mut catalog, &mut report, &mut on_problem, progress).await?;
    let mut blobs = Spill::<BlobEntry>::new(limits);
    let blobs_complete = list_blobs(archive, &mut blobs, &mut report, &mut on_problem).await?;
    report.blobs = blobs.len;
    // An incomplete listing would turn into false findings: every blob of an unlisted
    // manifest an "orphan", every unlisted blob "missing". Those are counted, not listed.
    let reported = Reported {
        orphans: manifests_complete,
        missing: blobs_complete,
    };

    let total = sample.map_or(report.blobs, |n| (n as u64).min(report.blobs));
    progress.discovered(total);
    let hashed_bytes = progress.download(None);
    let sampler = Sampler {
        wanted: total,
        left: report.blobs,
    };
    // The join reads the sorted runs with blocking file I/O, so it runs on a blocking thread
    // and hands its findings over a bounded channel: it waits while hashing catches up. It
    // owns the sender and ends by dropping it, which ends the stream below.
    let (events, received) = tokio::sync::mpsc::channel(EVENT_QUEUE);
    let joiner = tokio::task::spawn_blocking(move || join(refs, blobs, sampler, reported, &events));
    let received = futures::stream::unfold(received, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    let mut outcomes = std::pin::pin!(
        received
            .map(|event| async move {
                match event {
                    Event::Problem(p) => Outcome::Problem(p),
                    Event::Hash(digest) => Outcome::Hashed(digest, archive.hash_blob(&digest).await),
                }
            })
            .buffer_unordered(HASH_PARALLELISM)
    );

    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut seen = 0u64;
    while let Some(outcome) = outcomes.next().await {
        let (digest, result) = match outcome {
            Outcome::Problem(p) => {
                report.found(p, &mut on_problem);
                continue;
            }
            Outcome::Hashed(digest, result) => (digest, result),
        };
        seen += 1;
        progress.settled();
        match result {
            Ok((actual, size)) => {
                report.rehashed += 1;
                report.rehashed_bytes += size;
                hashed_bytes.advance(size);
                if actual != digest {
                    report.found(
                        format!("blob {} is corrupt: its bytes hash to {actual}", blob_key(&digest)),
                        &mut on_problem,
                    );
                }
            }
            Err(e) => report.found(
                format!("cannot read blob {}: {}", blob_key(&digest), error_chain(&e)),
                &mut on_problem,
            ),
        }
        // Progress every few seconds on large archives, and once at the end.
        if last_progress.elapsed() >= PROGRESS_EVERY || seen == total {
            last_progress = Instant::now();
            let rate = report.rehashed_bytes as f64 / started.elapsed().as_secs_f64().max(0.001) / 1048576.0;
            tracing::info!(
                done = seen,
                total,
                mib_per_sec = format!("{rate:.0}"),
                "re-hashing blobs"
            );
        }
    }
    joiner
        .await
        .map_err(|e| spill_failed(io::Error::other(e)))?
        .map_err(spill_failed)?;
    let disposed =
        ledger::check_ledger(archive, ledger_keys, limits, &mut catalog, &mut report, &mut on_problem).await?;
    check_indexes(archive, disposed, limits, &mut report, &mut on_problem).await?;
    catalog.finish(manifests_complete, &mut report, &mut on_problem).await?;
    Ok(report)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Manifests and blobs written by hand, for the tests of each module.
    #![allow(clippy::unwrap_used)]

    use recarch_store::{MANIFEST_SCHEMA, Sha256Digest};
    use serde_json::Value;
    use sha2::{Digest as _, Sha256};

    pub(crate) const ORG: &str = "11111111-2222-3333-4444-555555555555";

    pub(crate) fn blob_json(bytes: &[u8]) -> Value {
        let d = Sha256Digest::of(bytes);
        serde_json::json!({"sha256": d.to_hex(), "size": bytes.len(), "mediaType": "text/vtt", "blob": format!("blobs/sha256/{d}")})
    }

    pub(crate) fn manifest_json(kind_dir: &str, id: &str, members: Value) -> (String, Vec<u8>) {
        manifest_json_of(ORG, kind_dir, id, members)
    }

    pub(crate) fn manifest_json_of(org: &str, kind_dir: &str, id: &str, members: Value) -> (String, Vec<u8>) {
        let mut m = serde_json::json!({
            "schema": MANIFEST_SCHEMA, "kind": "k", "id": id, "organizerId": org,
            "archivedAt": "2026-01-01T00:00:00Z", "graph": {"id": id, "size": 1}
        });
        for (k, v) in members.as_object().unwrap() {
            m[k] = v.clone();
        }
        let key = format!(
            "manifests/{kind_dir}/{org}/{}.json",
            hex::encode(Sha256::digest(id.as_bytes()))
        );
        (key, serde_json::to_vec(&m).unwrap())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::testing::{ORG, blob_json, manifest_json, manifest_json_of};
    use super::*;
    use recarch_store::Sha256Digest;
    use serde_json::Value;

    /// A local-disk archive in a fresh directory, whose objects the tests write by hand.
    fn local_archive() -> (tempfile::TempDir, Archive) {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let archive = Archive::open(url.as_str(), &[]).unwrap();
        (dir, archive)
    }

    /// Writes the object `key` of the archive in `dir`, as anything outside recarch could.
    fn put(dir: &tempfile::TempDir, key: &str, bytes: Vec<u8>) {
        let path = dir.path().join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn put_blob(dir: &tempfile::TempDir, bytes: &[u8]) {
        put(dir, &recarch_store::blob_key(&Sha256Digest::of(bytes)), bytes.to_vec());
    }

    /// The whole check on an archive large enough, for tiny limits, to spill and merge in
    /// several levels: every kind of finding, each exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_finds_everything_while_spilling() {
        let (dir, archive) = local_archive();
        for n in 0..20u32 {
            let body = format!("recording {n}").into_bytes();
            put_blob(&dir, &body);
            let (key, bytes) = manifest_json(
                "recordings",
                &format!("r{n}"),
                serde_json::json!({"content": blob_json(&body)}),
            );
            put(&dir, &key, bytes);
        }
        // A transcript: two blobs, one missing.
        put_blob(&dir, b"vtt");
        let (key, bytes) = manifest_json(
            "transcripts",
            "t",
            serde_json::json!({"content": blob_json(b"vtt"), "metadata": blob_json(b"absent")}),
        );
        put(&dir, &key, bytes);
        // Another manifest naming recording 0's blob with another size.
        let mut other = blob_json(b"recording 0");
        other["size"] = Value::from(999);
        let (key, bytes) = manifest_json("recordings", "dup", serde_json::json!({"content": other}));
        put(&dir, &key, bytes);
        // An orphan, a corrupt blob, a broken manifest, a badly named blob.
        put_blob(&dir, b"orphan");
        let corrupt = Sha256Digest::of(b"recording 5");
        put(&dir, &format!("blobs/sha256/{corrupt}"), b"recording X".to_vec());
        put(&dir, &format!("manifests/recordings/{ORG}/broken.json"), b"{".to_vec());
        put(&dir, "blobs/sha256/not-a-digest", b"?".to_vec());

        let mut printed = Vec::new();
        let report = check(
            &archive,
            None,
            Limits::TINY,
            |p| printed.push(p.to_owned()),
            &crate::progress::NoProgress,
            (None, &[]),
        )
        .await
        .unwrap();
        assert_eq!(report.manifests, 23);
        assert_eq!(report.blobs, 22);
        assert_eq!(report.rehashed, 22);
        let has = |needle: &str| printed.iter().filter(|p| p.contains(needle)).count();
        assert_eq!(has("missing blob"), 1, "{printed:#?}");
        assert_eq!(has("different sizes ("), 1, "{printed:#?}");
        assert_eq!(has("has 11 bytes, manifest manifests/recordings/"), 1, "{printed:#?}");
        assert_eq!(has("orphan blob"), 1, "{printed:#?}");
        assert_eq!(
            has(&format!("blob blobs/sha256/{corrupt} is corrupt")),
            1,
            "{printed:#?}"
        );
        assert_eq!(has("unreadable manifest"), 1, "{printed:#?}");
        assert_eq!(has("bad blob entry"), 1, "{printed:#?}");
        // Written by hand: no ledger logs these objects (one finding for all of them).
        assert_eq!(has("no ledger: "), 1, "{printed:#?}");
        assert_eq!(printed.len(), 8, "{printed:#?}");
        assert_eq!(report.problem_count, 8);
        assert_eq!(report.problems, printed);

        // A sample rehashes that many blobs, and no more.
        for sample in [5, 0] {
            let sampled = check(
                &archive,
                Some(sample),
                Limits::TINY,
                |_| {},
                &crate::progress::NoProgress,
                (None, &[]),
            )
            .await
            .unwrap();
            assert_eq!(sampled.rehashed, sample as u64, "sample {sample}");
        }
    }

    /// Meeting index entries naming no manifest, and objects under `meetings/` that are not
    /// indexes, are problems.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn meeting_indexes_name_manifests_that_exist() {
        let (dir, archive) = local_archive();
        let org = recarch_store::OrganizerId::parse(ORG).unwrap();
        let body = b"recording".to_vec();
        put_blob(&dir, &body);
        let (present, bytes) = manifest_json("recordings", "r", serde_json::json!({"content": blob_json(&body)}));
        put(&dir, &present, bytes);
        let absent = recarch_store::Archive::manifest_key(&org, "never archived");
        for (id, manifest) in [("r", &present), ("gone", &absent)] {
            let entry = recarch_store::MeetingEntry {
                kind: "callRecording".into(),
                id: id.into(),
                manifest: manifest.clone(),
                content_correlation_id: None,
            };
            archive
                .add_to_index(recarch_store::Container::Meeting, &org, "m", entry)
                .await
                .unwrap();
        }
        put(&dir, &format!("meetings/{ORG}/garbage.json"), b"[1]".to_vec());
        let mut printed = Vec::new();
        let mut report = VerifyReport::default();
        check_indexes(
            &archive,
            ledger::DisposedKeys::default(),
            Limits::TINY,
            &mut report,
            &mut |p: &str| printed.push(p.to_owned()),
        )
        .await
        .unwrap();
        printed.sort();
        let index = recarch_store::meeting_key(&org, "m");
        assert_eq!(printed.len(), 2, "{printed:#?}");
        assert_eq!(
            printed[0],
            format!("meeting index {index} lists manifest {absent}, which does not exist")
        );
        let garbage = format!("unreadable meeting index meetings/{ORG}/garbage.json: not a meeting index: ");
        assert!(printed[1].starts_with(&garbage), "{printed:#?}");
        assert_eq!(report.problem_count, 2);
    }

    /// A listing error (here a file name that is not UTF-8, which `LocalFileSystem` cannot
    /// list) ends only its organizer directory's listing: the other directories are checked,
    /// and the blobs of unlisted manifests are not reported as orphans one by one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listing_error_ends_only_its_directory() {
        use std::os::unix::ffi::OsStrExt;

        let (dir, archive) = local_archive();
        let other_org = "99999999-2222-3333-4444-555555555555";
        for (n, org) in [ORG, other_org].into_iter().enumerate() {
            for i in 0..3 {
                let body = format!("{org} {i}").into_bytes();
                put_blob(&dir, &body);
                let content = serde_json::json!({"content": blob_json(&body)});
                let (key, bytes) = manifest_json_of(org, "recordings", &format!("r{n}{i}"), content);
                put(&dir, &key, bytes);
            }
        }
        let bad_dir = dir.path().join(format!("manifests/recordings/{other_org}"));
        std::fs::write(bad_dir.join(std::ffi::OsStr::from_bytes(b"\xff.json")), b"{}").unwrap();
        let mut printed = Vec::new();
        let report = check(
            &archive,
            None,
            Limits::DEFAULT,
            |p| printed.push(p.to_owned()),
            &crate::progress::NoProgress,
            (None, &[]),
        )
        .await
        .unwrap();
        assert_eq!(report.blobs, 6);
        assert_eq!(report.rehashed, 6);
        assert!(report.manifests >= 3, "{report:?}");
        let listing_error = format!("cannot list manifests under manifests/recordings/{other_org}/");
        assert!(printed.iter().any(|p| p.contains(&listing_error)), "{printed:#?}");
        assert!(!printed.iter().any(|p| p.contains("orphan blob")), "{printed:#?}");
        let unlisted = 6 - report.manifests;
        if unlisted > 0 {
            let count = format!("{unlisted} blobs are named by no manifest listed");
            assert!(printed.iter().any(|p| p.starts_with(&count)), "{printed:#?}");
        }
    }
}
