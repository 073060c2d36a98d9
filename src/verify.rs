//! `recarch verify`: every manifest checked against the blobs it names, blobs re-hashed (all,
//! or a random sample), orphans and unreadable objects reported.
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
//! **Failures.** An unreadable manifest (a read error, not JSON, an unknown schema, no blob
//! reference, stored under another key than its `organizerId` and `id` give) is reported and
//! skipped. Manifests are listed one organizer directory (`manifests/<kind>/<organizer>/`) at
//! a time, because a listing stops at its first error on every backend: a failed listing
//! loses only the rest of its directory, and is reported. While a listing is incomplete its
//! absent entries would read as false findings (every blob of an unlisted manifest an
//! orphan, every unlisted blob missing): those are then counted in one line instead. Only a
//! failure to list `manifests/` or `blobs/sha256/` at all, or temporary files that cannot be
//! written or read back, end the check (exit 4).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;
use recarch_store::{Archive, MANIFEST_SCHEMA, OrganizerId, Sha256Digest, StoreError};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::exit::{Exit, ExitError};
use crate::pipeline::error_chain;

/// How many blobs are re-hashed at once.
const HASH_PARALLELISM: usize = 4;
/// How many manifests are read at once.
const MANIFEST_READS: usize = 8;
/// Entries of one list held in memory before they are sorted and spilled to a file.
const RUN_ENTRIES: usize = 64 * 1024;
/// Sorted runs merged at once (each holds an open file and a read buffer).
const MERGE_FAN_IN: usize = 64;
/// Read buffer of each run being merged.
const RUN_READ_BUFFER: usize = 32 * 1024;
/// Findings of the join waiting to be printed or hashed.
const EVENT_QUEUE: usize = 256;
/// Problems kept in [`VerifyReport::problems`]; all of them are counted.
pub const KEPT_PROBLEMS: usize = 1000;
/// Where manifests of every kind live.
const MANIFESTS: &str = "manifests";
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
) -> Result<VerifyReport, ExitError> {
    check(archive, sample, Limits::DEFAULT, on_problem, progress).await
}

/// `recarch verify`: prints the findings as they come; exit 0 when clean, 1 when anything is
/// wrong, also when stdout's reader went away meanwhile (nothing more is printed then; any
/// other stdout error is returned when the check ends).
pub async fn verify_cli(
    archive: &Archive,
    sample: Option<usize>,
    progress: std::sync::Arc<dyn crate::progress::Progress>,
) -> Result<Exit, ExitError> {
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
            "verify {}: {} manifests, {} blobs, {} re-hashed ({:.1} MiB), {} problems",
            archive.display_url(),
            report.manifests,
            report.blobs,
            report.rehashed,
            report.rehashed_bytes as f64 / 1048576.0,
            report.problem_count
        ),
    };
    crate::output::finish(printed, exit)
}

/// The memory knobs ([`RUN_ENTRIES`], [`MERGE_FAN_IN`]), small in tests so that spilling and
/// multi-level merges are exercised.
#[derive(Debug, Clone, Copy)]
struct Limits {
    run_entries: usize,
    fan_in: usize,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        run_entries: RUN_ENTRIES,
        fan_in: MERGE_FAN_IN,
    };
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
) -> Result<VerifyReport, ExitError> {
    let mut report = VerifyReport::default();
    let mut refs = Spill::<RefEntry>::new(limits);
    let manifests_complete = read_manifests(archive, &mut refs, &mut report, &mut on_problem, progress).await?;
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
                        format!("blob blobs/sha256/{digest} is corrupt: its bytes hash to {actual}"),
                        &mut on_problem,
                    );
                }
            }
            Err(e) => report.found(
                format!("cannot read blob blobs/sha256/{digest}: {}", error_chain(&e)),
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
    check_meeting_indexes(archive, &mut report, &mut on_problem).await;
    Ok(report)
}

/// Every meeting index entry must point at a manifest that exists. Streams: one index at a
/// time, a bounded number of lookups in flight.
async fn check_meeting_indexes(archive: &Archive, report: &mut VerifyReport, on_problem: &mut impl FnMut(&str)) {
    let store = archive.object_store();
    let mut listing = store.list(Some(&Path::from("meetings")));
    while let Some(meta) = listing.next().await {
        let meta = match meta {
            Ok(meta) => meta,
            Err(e) => {
                report.found(format!("cannot list meetings/: {}", error_chain(&e)), on_problem);
                return;
            }
        };
        let key = meta.location.to_string();
        let index: serde_json::Value = match store.get(&meta.location).await {
            Ok(got) => match got.bytes().await.map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    report.found(format!("unreadable meeting index {key}: {e}"), on_problem);
                    continue;
                }
                Err(e) => {
                    report.found(
                        format!("cannot read meeting index {key}: {}", error_chain(&e)),
                        on_problem,
                    );
                    continue;
                }
            },
            Err(e) => {
                report.found(
                    format!("cannot read meeting index {key}: {}", error_chain(&e)),
                    on_problem,
                );
                continue;
            }
        };
        let manifests: Vec<String> = index["entries"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e["manifest"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let missing: Vec<String> = futures::stream::iter(manifests)
            .map(|m| async move {
                match store.head(&Path::from(m.as_str())).await {
                    Ok(_) => None,
                    Err(_) => Some(m),
                }
            })
            .buffer_unordered(8)
            .filter_map(futures::future::ready)
            .collect()
            .await;
        for m in missing {
            report.found(
                format!("meeting index {key} lists manifest {m}, which does not exist"),
                on_problem,
            );
        }
    }
}

// ------------------------------------------------------------------ listing

/// An object listed under `manifests/` and read, or a listing that failed under `unit`.
enum Listed {
    Error(Path, object_store::Error),
    Object(String, Result<bytes::Bytes, object_store::Error>),
}

/// Reads and checks every manifest, pushing its blob references into `refs`. Returns whether
/// the listing was complete.
///
/// The listing goes one organizer directory (`manifests/<kind>/<organizer>/`) at a time: a
/// listing that fails (on local disk, an entry that cannot be walked; on S3 or Azure, a page
/// that cannot be fetched) ends only that directory's listing, so the rest is still checked.
/// Only a failure to list `manifests/` itself is fatal.
async fn read_manifests(
    archive: &Archive,
    refs: &mut Spill<RefEntry>,
    report: &mut VerifyReport,
    on_problem: &mut impl FnMut(&str),
    progress: &dyn crate::progress::Progress,
) -> Result<bool, ExitError> {
    let store = archive.object_store();
    let top = store
        .list_with_delimiter(Some(&Path::from(MANIFESTS)))
        .await
        .map_err(|e| {
            ExitError::new(
                Exit::Fatal,
                anyhow::anyhow!(
                    "cannot list {MANIFESTS}/ in {}: {}",
                    archive.display_url(),
                    error_chain(&e)
                ),
            )
        })?;
    let mut complete = true;
    // Objects directly under `manifests/` or `manifests/<kind>/` are misplaced, but checked.
    let mut loose = top.objects;
    let mut directories = Vec::new();
    for kind in top.common_prefixes {
        match store.list_with_delimiter(Some(&kind)).await {
            Ok(listed) => {
                loose.extend(listed.objects);
                directories.extend(listed.common_prefixes);
            }
            Err(e) => {
                complete = false;
                report.found(
                    format!(
                        "cannot list manifests under {kind}/: {}; none of them was checked",
                        error_chain(&e)
                    ),
                    on_problem,
                );
            }
        }
    }
    let listing = futures::stream::iter(loose.into_iter().map(Ok))
        .chain(futures::stream::iter(directories).flat_map(|dir| {
            // A failed listing ends by itself after its error.
            store
                .list(Some(&dir))
                .map(move |item| item.map_err(|e| (dir.clone(), e)))
        }))
        .map(|item| async move {
            match item {
                Err((dir, e)) => Listed::Error(dir, e),
                Ok(meta) => {
                    let read = match store.get(&meta.location).await {
                        Ok(got) => got.bytes().await,
                        Err(e) => Err(e),
                    };
                    Listed::Object(meta.location.to_string(), read)
                }
            }
        })
        .buffer_unordered(MANIFEST_READS);
    let mut listing = std::pin::pin!(listing);
    let mut last_progress = Instant::now();
    while let Some(item) = listing.next().await {
        let (key, read) = match item {
            Listed::Error(dir, e) => {
                complete = false;
                report.found(
                    format!(
                        "cannot list manifests under {dir}/: {}; the rest of it was not checked",
                        error_chain(&e)
                    ),
                    on_problem,
                );
                continue;
            }
            Listed::Object(key, read) => (key, read),
        };
        report.manifests += 1;
        progress.discovered(1);
        progress.settled();
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) => {
                report.found(format!("cannot read manifest {key}: {}", error_chain(&e)), on_problem);
                continue;
            }
        };
        let (blob_refs, problems) = match check_manifest(&key, &bytes) {
            Ok(checked) => checked,
            Err(problem) => {
                report.found(problem, on_problem);
                continue;
            }
        };
        for p in problems {
            report.found(p, on_problem);
        }
        for (digest, size) in blob_refs {
            let entry = RefEntry {
                digest,
                size,
                key: key.clone(),
            };
            refs.push(entry).await.map_err(spill_failed)?;
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            tracing::info!(manifests = report.manifests, "reading manifests");
        }
    }
    Ok(complete)
}

/// Lists every blob into `blobs`. Returns whether the listing was complete. A listing that
/// fails before yielding anything is fatal; a failure later ends the listing (every backend
/// stops at its first error) and is reported.
async fn list_blobs(
    archive: &Archive,
    blobs: &mut Spill<BlobEntry>,
    report: &mut VerifyReport,
    on_problem: &mut impl FnMut(&str),
) -> Result<bool, ExitError> {
    let mut listing = archive.list_blobs();
    let mut listed_any = false;
    let mut complete = true;
    while let Some(entry) = listing.next().await {
        match entry {
            Ok((digest, size)) => {
                listed_any = true;
                blobs.push(BlobEntry { digest, size }).await.map_err(spill_failed)?;
            }
            // A badly named object was listed: the listing itself works.
            Err(e @ StoreError::Corrupt { .. }) => {
                listed_any = true;
                report.found(format!("bad blob entry: {}", error_chain(&e)), on_problem);
            }
            Err(e) if !listed_any => {
                return Err(ExitError::new(
                    Exit::Fatal,
                    anyhow::anyhow!("cannot list blobs in {}: {}", archive.display_url(), error_chain(&e)),
                ));
            }
            Err(e) => {
                complete = false;
                report.found(
                    format!(
                        "cannot list blobs: {}; the blobs after it were not checked",
                        error_chain(&e)
                    ),
                    on_problem,
                );
            }
        }
    }
    Ok(complete)
}

// ---------------------------------------------------------------- manifests

/// The blob references of the manifest stored at `key`, `(digest, size)` each, with the
/// problems found in them; `Err` with the problem line when the manifest cannot be used.
///
/// Parsed as plain JSON so that every kind (recordings, transcripts, kinds added later) is
/// checked alike: a blob reference is any top-level member shaped `{sha256, size, blob, …}`,
/// or an array of those.
#[allow(clippy::type_complexity)] // a private helper: the pair reads plainly
fn check_manifest(key: &str, bytes: &[u8]) -> Result<(Vec<(Sha256Digest, u64)>, Vec<String>), String> {
    let unreadable = |reason: String| format!("unreadable manifest {key}: {reason}");
    let value: Value = serde_json::from_slice(bytes).map_err(|e| unreadable(format!("not JSON: {e}")))?;
    let Value::Object(manifest) = value else {
        return Err(unreadable("not a JSON object".into()));
    };
    match manifest.get("schema") {
        Some(Value::String(schema)) if schema == MANIFEST_SCHEMA => {}
        Some(other) => {
            return Err(unreadable(format!(
                "unsupported schema {other} (this version reads {MANIFEST_SCHEMA:?})"
            )));
        }
        None => return Err(unreadable(format!("no schema member (expected {MANIFEST_SCHEMA:?})"))),
    }
    let id = manifest
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| unreadable("no string member id".into()))?;
    let organizer = manifest
        .get("organizerId")
        .and_then(Value::as_str)
        .ok_or_else(|| unreadable("no string member organizerId".into()))?;
    let organizer = OrganizerId::parse(organizer).map_err(|e| unreadable(e.to_string()))?;
    let expected = expected_key(key, &organizer, id);
    if key != expected {
        return Err(format!(
            "manifest {key} is misplaced: its id and organizerId belong at {expected}"
        ));
    }

    let mut refs = Vec::new();
    let mut problems = Vec::new();
    for (name, member) in &manifest {
        match member {
            Value::Object(entry) if is_blob_ref(entry) => {
                blob_ref(key, name, entry, &mut refs, &mut problems);
            }
            Value::Array(items) => {
                let entries = items.iter().enumerate().filter_map(|(i, item)| match item {
                    Value::Object(entry) if is_blob_ref(entry) => Some((i, entry)),
                    _ => None,
                });
                for (i, entry) in entries {
                    blob_ref(key, &format!("{name}[{i}]"), entry, &mut refs, &mut problems);
                }
            }
            _ => {}
        }
    }
    if refs.is_empty() && problems.is_empty() {
        return Err(unreadable(
            "it names no blob (no member with sha256, size and blob)".into(),
        ));
    }
    Ok((refs, problems))
}

fn is_blob_ref(entry: &Map<String, Value>) -> bool {
    ["sha256", "size", "blob"].iter().all(|m| entry.contains_key(*m))
}

fn blob_ref(
    key: &str,
    name: &str,
    entry: &Map<String, Value>,
    refs: &mut Vec<(Sha256Digest, u64)>,
    problems: &mut Vec<String>,
) {
    let digest = match entry["sha256"].as_str().map(Sha256Digest::from_hex) {
        Some(Ok(digest)) => digest,
        Some(Err(e)) => return problems.push(format!("manifest {key}: {name}.sha256: {e}")),
        None => return problems.push(format!("manifest {key}: {name}.sha256 is not a string")),
    };
    let Some(size) = entry["size"].as_u64() else {
        return problems.push(format!("manifest {key}: {name}.size is not a byte count"));
    };
    let blob = entry["blob"].as_str().unwrap_or_default();
    if blob != format!("blobs/sha256/{digest}") {
        problems.push(format!("manifest {key} names blob {blob} but its sha256 is {digest}"));
    }
    refs.push((digest, size));
}

/// Where a manifest of this organizer and id belongs, in the kind directory it was found in:
/// `manifests/<kind>/<organizerId>/<hex SHA-256 of id>.json` (for recordings, what
/// [`Archive::manifest_key`] gives).
fn expected_key(key: &str, organizer: &OrganizerId, id: &str) -> String {
    let kind = key
        .strip_prefix("manifests/")
        .and_then(|rest| rest.split_once('/'))
        .map_or("recordings", |(kind, _)| kind);
    format!(
        "{MANIFESTS}/{kind}/{organizer}/{}.json",
        hex::encode(Sha256::digest(id.as_bytes()))
    )
}

// --------------------------------------------------------------------- join

/// What the join found, in digest order.
#[derive(Debug)]
enum Event {
    Problem(String),
    Hash(Sha256Digest),
}

enum Outcome {
    Problem(String),
    Hashed(Sha256Digest, Result<(Sha256Digest, u64), StoreError>),
}

/// Picks `wanted` of the next `left` items uniformly at random, one decision at a time
/// (selection sampling, Knuth's algorithm S): no list of the candidates is kept.
struct Sampler {
    wanted: u64,
    left: u64,
}

impl Sampler {
    fn pick(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        let take = fastrand::u64(..self.left) < self.wanted;
        self.left -= 1;
        if take {
            self.wanted -= 1;
        }
        take
    }
}

/// Which findings of the join are listed one by one (those an incomplete listing cannot
/// produce falsely); the others are counted in one line.
#[derive(Debug, Clone, Copy)]
struct Reported {
    orphans: bool,
    missing: bool,
}

/// Walks the sorted references and blobs side by side (blocking: reads the spilled runs).
fn join(
    refs: Spill<RefEntry>,
    blobs: Spill<BlobEntry>,
    mut sampler: Sampler,
    reported: Reported,
    events: &tokio::sync::mpsc::Sender<Event>,
) -> io::Result<()> {
    // The receiver goes away only when the async side has stopped on an error of its own.
    let send = |event| {
        events
            .blocking_send(event)
            .map_err(|_| io::Error::other("verify stopped"))
    };
    let mut refs = refs.into_sorted()?;
    let mut blobs = blobs.into_sorted()?;
    let mut next_ref = refs.next()?;
    let mut next_blob = blobs.next()?;
    let (mut unlisted_orphans, mut unlisted_missing) = (0u64, 0u64);
    loop {
        let digest = match (&next_ref, &next_blob) {
            (None, None) => break,
            (Some(r), None) => r.digest,
            (None, Some(b)) => b.digest,
            (Some(r), Some(b)) => r.digest.min(b.digest),
        };
        let blob = next_blob.take_if(|b| b.digest == digest);
        if blob.is_some() {
            next_blob = blobs.next()?;
        }
        // Every manifest naming the digest is compared with the blob, and with the first of
        // them (the least key).
        let mut first: Option<RefEntry> = None;
        while let Some(r) = next_ref.take_if(|r| r.digest == digest) {
            if let Some(b) = blob.as_ref().filter(|b| b.size != r.size) {
                send(Event::Problem(format!(
                    "blob blobs/sha256/{digest} has {} bytes, manifest {} says {}",
                    b.size, r.key, r.size
                )))?;
            }
            match &first {
                None => first = Some(r),
                Some(f) if f.size != r.size => send(Event::Problem(format!(
                    "manifests {} and {} give blob {digest} different sizes ({} and {})",
                    f.key, r.key, f.size, r.size
                )))?,
                Some(_) => {}
            }
            next_ref = refs.next()?;
        }
        match (&first, &blob) {
            (Some(_), None) if !reported.missing => unlisted_missing += 1,
            (Some(f), None) => send(Event::Problem(format!(
                "missing blob blobs/sha256/{digest} (named by {})",
                f.key
            )))?,
            (None, Some(_)) if !reported.orphans => unlisted_orphans += 1,
            (None, Some(_)) => send(Event::Problem(format!(
                "orphan blob blobs/sha256/{digest}: no manifest names it"
            )))?,
            _ => {}
        }
        if blob.is_some() && sampler.pick() {
            send(Event::Hash(digest))?;
        }
    }
    if unlisted_orphans > 0 {
        send(Event::Problem(format!(
            "{unlisted_orphans} blobs are named by no manifest listed; not reported as orphans, as the manifest listing was incomplete"
        )))?;
    }
    if unlisted_missing > 0 {
        send(Event::Problem(format!(
            "{unlisted_missing} blobs named by manifests were not listed; not reported as missing, as the blob listing was incomplete"
        )))?;
    }
    Ok(())
}

// ------------------------------------------------------------ external sort

/// An entry of a list sorted on disk, with its fixed binary encoding.
trait Entry: Ord + Send + Sized + 'static {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()>;
    /// The next entry, or `None` at the clean end of the input.
    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>>;
}

/// A blob as listed. Sorted by digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct BlobEntry {
    digest: Sha256Digest,
    size: u64,
}

/// A manifest's reference to a blob. Sorted by digest, then manifest key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RefEntry {
    digest: Sha256Digest,
    key: String,
    size: u64,
}

fn read_digest_and_size(input: &mut impl BufRead) -> io::Result<Option<(Sha256Digest, u64)>> {
    if input.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let mut digest = [0u8; 32];
    input.read_exact(&mut digest)?;
    let mut size = [0u8; 8];
    input.read_exact(&mut size)?;
    Ok(Some((Sha256Digest::from_bytes(digest), u64::from_le_bytes(size))))
}

impl Entry for BlobEntry {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(self.digest.as_bytes())?;
        out.write_all(&self.size.to_le_bytes())
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        Ok(read_digest_and_size(input)?.map(|(digest, size)| BlobEntry { digest, size }))
    }
}

impl Entry for RefEntry {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(self.digest.as_bytes())?;
        out.write_all(&self.size.to_le_bytes())?;
        let len = u32::try_from(self.key.len()).map_err(io::Error::other)?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(self.key.as_bytes())
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        let Some((digest, size)) = read_digest_and_size(input)? else {
            return Ok(None);
        };
        let mut len = [0u8; 4];
        input.read_exact(&mut len)?;
        let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut key)?;
        let key = String::from_utf8(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(Some(RefEntry { digest, key, size }))
    }
}

/// An external sort: entries pushed in any order come back sorted from
/// [`Spill::into_sorted`], with at most `run_entries` of them in memory. Each full run is
/// sorted and written to a file in a temporary directory, created on the first spill and
/// removed on drop.
struct Spill<T> {
    limits: Limits,
    run: Vec<T>,
    dir: Option<tempfile::TempDir>,
    runs: Vec<PathBuf>,
    files_made: usize,
    /// Entries pushed.
    len: u64,
}

impl<T: Entry> Spill<T> {
    fn new(limits: Limits) -> Self {
        Self {
            limits: Limits {
                run_entries: limits.run_entries.max(1),
                fan_in: limits.fan_in.max(2),
            },
            run: Vec::new(),
            dir: None,
            runs: Vec::new(),
            files_made: 0,
            len: 0,
        }
    }

    async fn push(&mut self, entry: T) -> io::Result<()> {
        self.run.push(entry);
        self.len += 1;
        if self.run.len() >= self.limits.run_entries {
            let path = self.new_file()?;
            let run = std::mem::take(&mut self.run);
            let written = path.clone();
            tokio::task::spawn_blocking(move || write_run(&written, run))
                .await
                .map_err(io::Error::other)??;
            self.runs.push(path);
        }
        Ok(())
    }

    fn new_file(&mut self) -> io::Result<PathBuf> {
        if self.dir.is_none() {
            self.dir = Some(tempfile::Builder::new().prefix("recarch-verify-").tempdir()?);
        }
        self.files_made += 1;
        let dir = self.dir.as_ref().map(|d| d.path()).unwrap_or(std::path::Path::new("."));
        Ok(dir.join(format!("run-{}", self.files_made)))
    }

    /// Every entry, sorted (blocking). Runs beyond the merge fan-in are first merged in
    /// groups into longer runs, so the final merge holds at most `fan_in` files open.
    fn into_sorted(mut self) -> io::Result<Sorted<T>> {
        let mut last = std::mem::take(&mut self.run);
        last.sort_unstable();
        while self.runs.len() > self.limits.fan_in {
            let group: Vec<PathBuf> = self.runs.drain(..self.limits.fan_in).collect();
            let path = self.new_file()?;
            let mut merge = Merge::new(group.iter().map(|p| open_run::<T>(p)).collect::<io::Result<_>>()?)?;
            let mut out = BufWriter::with_capacity(256 * 1024, File::create_new(&path)?);
            while let Some(entry) = merge.next()? {
                entry.write_to(&mut out)?;
            }
            out.into_inner().map_err(|e| e.into_error())?;
            for p in &group {
                std::fs::remove_file(p)?;
            }
            self.runs.push(path);
        }
        let mut sources: Vec<Source<T>> = self.runs.iter().map(|p| open_run(p)).collect::<io::Result<_>>()?;
        sources.push(Source::Memory(last.into_iter()));
        Ok(Sorted {
            merge: Merge::new(sources)?,
            _dir: self.dir,
        })
    }
}

fn write_run<T: Entry>(path: &std::path::Path, mut run: Vec<T>) -> io::Result<()> {
    run.sort_unstable();
    let mut out = BufWriter::with_capacity(256 * 1024, File::create_new(path)?);
    for entry in &run {
        entry.write_to(&mut out)?;
    }
    out.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

fn open_run<T>(path: &std::path::Path) -> io::Result<Source<T>> {
    Ok(Source::File(BufReader::with_capacity(
        RUN_READ_BUFFER,
        File::open(path)?,
    )))
}

/// The sorted entries of a [`Spill`]; keeps its temporary directory until dropped.
struct Sorted<T> {
    merge: Merge<T>,
    _dir: Option<tempfile::TempDir>,
}

impl<T: Entry> Sorted<T> {
    fn next(&mut self) -> io::Result<Option<T>> {
        self.merge.next()
    }
}

/// One sorted run: a file, or the last run still in memory.
enum Source<T> {
    File(BufReader<File>),
    Memory(std::vec::IntoIter<T>),
}

impl<T: Entry> Source<T> {
    fn next(&mut self) -> io::Result<Option<T>> {
        match self {
            Source::File(input) => T::read_from(input),
            Source::Memory(entries) => Ok(entries.next()),
        }
    }
}

/// A k-way merge of sorted sources: a min-heap of each source's next entry.
struct Merge<T> {
    sources: Vec<Source<T>>,
    heads: BinaryHeap<Reverse<(T, usize)>>,
}

impl<T: Entry> Merge<T> {
    fn new(mut sources: Vec<Source<T>>) -> io::Result<Self> {
        let mut heads = BinaryHeap::with_capacity(sources.len());
        for (i, source) in sources.iter_mut().enumerate() {
            if let Some(entry) = source.next()? {
                heads.push(Reverse((entry, i)));
            }
        }
        Ok(Self { sources, heads })
    }

    fn next(&mut self) -> io::Result<Option<T>> {
        let Some(Reverse((entry, i))) = self.heads.pop() else {
            return Ok(None);
        };
        if let Some(following) = self.sources[i].next()? {
            self.heads.push(Reverse((following, i)));
        }
        Ok(Some(entry))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use bytes::Bytes;
    use object_store::PutPayload;

    const TINY: Limits = Limits {
        run_entries: 3,
        fan_in: 2,
    };

    fn digest(n: u64) -> Sha256Digest {
        Sha256Digest::of(&n.to_le_bytes())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spill_sorts_through_files_and_multi_level_merges() {
        let mut refs = Spill::<RefEntry>::new(TINY);
        let mut blobs = Spill::<BlobEntry>::new(TINY);
        let mut expected_refs = Vec::new();
        let mut expected_blobs = Vec::new();
        for n in 0..50u64 {
            let r = RefEntry {
                digest: digest(n % 17),
                key: format!("manifests/recordings/x/{n:03}.json"),
                size: n,
            };
            refs.push(r.clone()).await.unwrap();
            expected_refs.push(r);
            let b = BlobEntry {
                digest: digest(n),
                size: n,
            };
            blobs.push(b.clone()).await.unwrap();
            expected_blobs.push(b);
        }
        assert!(refs.runs.len() > TINY.fan_in, "spilled into several runs");
        let dir = refs.dir.as_ref().unwrap().path().to_owned();
        expected_refs.sort();
        expected_blobs.sort();
        let drain = |mut s: Sorted<RefEntry>| {
            let mut out = Vec::new();
            while let Some(e) = s.next().unwrap() {
                out.push(e);
            }
            out
        };
        assert_eq!(drain(refs.into_sorted().unwrap()), expected_refs);
        assert!(!dir.exists(), "temporary runs removed");
        let mut sorted = blobs.into_sorted().unwrap();
        let mut got = Vec::new();
        while let Some(e) = sorted.next().unwrap() {
            got.push(e);
        }
        assert_eq!(got, expected_blobs);
        // Nothing pushed: nothing comes back, and no file was made.
        let empty = Spill::<BlobEntry>::new(TINY);
        assert!(empty.dir.is_none());
        assert!(empty.into_sorted().unwrap().next().unwrap().is_none());
    }

    #[test]
    fn sampler_picks_exactly_the_sample() {
        for (wanted, left) in [(0, 10), (3, 10), (10, 10), (0, 0)] {
            let mut s = Sampler { wanted, left };
            let picked = (0..left).filter(|_| s.pick()).count() as u64;
            assert_eq!(picked, wanted);
        }
    }

    const ORG: &str = "11111111-2222-3333-4444-555555555555";

    fn blob_json(bytes: &[u8]) -> Value {
        let d = Sha256Digest::of(bytes);
        serde_json::json!({"sha256": d.to_hex(), "size": bytes.len(), "mediaType": "text/vtt", "blob": format!("blobs/sha256/{d}")})
    }

    fn manifest_json(kind_dir: &str, id: &str, members: Value) -> (String, Vec<u8>) {
        manifest_json_of(ORG, kind_dir, id, members)
    }

    fn manifest_json_of(org: &str, kind_dir: &str, id: &str, members: Value) -> (String, Vec<u8>) {
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

    #[test]
    fn every_blob_reference_of_any_kind_is_collected() {
        let (key, bytes) = manifest_json(
            "transcripts",
            "t/1",
            serde_json::json!({"content": blob_json(b"vtt"), "metadata": blob_json(b"meta")}),
        );
        let (refs, problems) = check_manifest(&key, &bytes).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            refs,
            vec![(Sha256Digest::of(b"vtt"), 3), (Sha256Digest::of(b"meta"), 4)]
        );
        // The recordings key is the store's own.
        let (key, _) = manifest_json("recordings", "r/1+=", serde_json::json!({}));
        assert_eq!(key, Archive::manifest_key(&OrganizerId::parse(ORG).unwrap(), "r/1+="));
        // Arrays of references count too (a list of versions, say).
        let (key, bytes) = manifest_json(
            "contacts",
            "c",
            serde_json::json!({"versions": [blob_json(b"v1"), {"removed": true}, blob_json(b"v2")]}),
        );
        assert_eq!(check_manifest(&key, &bytes).unwrap().0.len(), 2);
    }

    #[test]
    fn unusable_manifests_are_problems() {
        let (key, good) = manifest_json("recordings", "r", serde_json::json!({"content": blob_json(b"x")}));
        assert!(
            check_manifest(&key, b"{ not json")
                .unwrap_err()
                .contains("unreadable manifest")
        );
        let other_key = key.replace(ORG, "99999999-2222-3333-4444-555555555555");
        assert!(check_manifest(&other_key, &good).unwrap_err().contains("is misplaced"));
        let loose = format!("manifests/{}", key.rsplit('/').next().unwrap());
        assert!(check_manifest(&loose, &good).unwrap_err().contains("is misplaced"));
        let no_blob = manifest_json("recordings", "r", serde_json::json!({})).1;
        assert!(check_manifest(&key, &no_blob).unwrap_err().contains("names no blob"));
        let mut wrong_blob = blob_json(b"x");
        wrong_blob["blob"] = Value::from("blobs/sha256/00");
        let bytes = manifest_json("recordings", "r", serde_json::json!({"content": wrong_blob})).1;
        let (refs, problems) = check_manifest(&key, &bytes).unwrap();
        assert_eq!(refs.len(), 1);
        assert!(
            problems[0].contains("names blob blobs/sha256/00 but its sha256 is"),
            "{problems:?}"
        );
        let mut v: Value = serde_json::from_slice(&good).unwrap();
        v["schema"] = Value::from("recarch.manifest.v9");
        let err = check_manifest(&key, &serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.contains("unsupported schema \"recarch.manifest.v9\""), "{err}");
    }

    async fn put(archive: &Archive, key: &str, bytes: Vec<u8>) {
        archive
            .object_store()
            .put(&Path::from(key), PutPayload::from(Bytes::from(bytes)))
            .await
            .unwrap();
    }

    async fn put_blob(archive: &Archive, bytes: &[u8]) {
        put(
            archive,
            &format!("blobs/sha256/{}", Sha256Digest::of(bytes)),
            bytes.to_vec(),
        )
        .await;
    }

    /// The whole check on an archive large enough, for tiny limits, to spill and merge in
    /// several levels: every kind of finding, each exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_finds_everything_while_spilling() {
        let archive = Archive::open("memory://", &[]).unwrap();
        for n in 0..20u32 {
            let body = format!("recording {n}").into_bytes();
            put_blob(&archive, &body).await;
            let (key, bytes) = manifest_json(
                "recordings",
                &format!("r{n}"),
                serde_json::json!({"content": blob_json(&body)}),
            );
            put(&archive, &key, bytes).await;
        }
        // A transcript: two blobs, one missing.
        put_blob(&archive, b"vtt").await;
        let (key, bytes) = manifest_json(
            "transcripts",
            "t",
            serde_json::json!({"content": blob_json(b"vtt"), "metadata": blob_json(b"absent")}),
        );
        put(&archive, &key, bytes).await;
        // Another manifest naming recording 0's blob with another size.
        let mut other = blob_json(b"recording 0");
        other["size"] = Value::from(999);
        let (key, bytes) = manifest_json("recordings", "dup", serde_json::json!({"content": other}));
        put(&archive, &key, bytes).await;
        // An orphan, a corrupt blob, a broken manifest, a badly named blob.
        put_blob(&archive, b"orphan").await;
        let corrupt = Sha256Digest::of(b"recording 5");
        put(&archive, &format!("blobs/sha256/{corrupt}"), b"recording X".to_vec()).await;
        put(
            &archive,
            &format!("manifests/recordings/{ORG}/broken.json"),
            b"{".to_vec(),
        )
        .await;
        put(&archive, "blobs/sha256/not-a-digest", b"?".to_vec()).await;

        let mut printed = Vec::new();
        let report = check(
            &archive,
            None,
            TINY,
            |p| printed.push(p.to_owned()),
            &crate::progress::NoProgress,
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
        assert_eq!(printed.len(), 7, "{printed:#?}");
        assert_eq!(report.problem_count, 7);
        assert_eq!(report.problems, printed);

        let sampled = check(&archive, Some(5), TINY, |_| {}, &crate::progress::NoProgress)
            .await
            .unwrap();
        assert_eq!(sampled.rehashed, 5);
        let none = check(&archive, Some(0), TINY, |_| {}, &crate::progress::NoProgress)
            .await
            .unwrap();
        assert_eq!(none.rehashed, 0);
    }

    /// A listing error (here a file name that is not UTF-8, which `LocalFileSystem` cannot
    /// list) ends only its organizer directory's listing: the other directories are checked,
    /// and the blobs of unlisted manifests are not reported as orphans one by one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listing_error_ends_only_its_directory() {
        use std::os::unix::ffi::OsStrExt;

        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let archive = Archive::open(url.as_str(), &[]).unwrap();
        let other_org = "99999999-2222-3333-4444-555555555555";
        for (n, org) in [ORG, other_org].into_iter().enumerate() {
            for i in 0..3 {
                let body = format!("{org} {i}").into_bytes();
                put_blob(&archive, &body).await;
                let content = serde_json::json!({"content": blob_json(&body)});
                let (key, bytes) = manifest_json_of(org, "recordings", &format!("r{n}{i}"), content);
                put(&archive, &key, bytes).await;
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
