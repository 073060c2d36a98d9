//! Listing what the check joins: every manifest (read and checked, its blob references
//! spilled) and every blob.

use std::time::Instant;

use futures::StreamExt;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;
use recarch_store::{Archive, StoreError};

use super::checks::check_manifest;
use super::sort::{BlobEntry, RefEntry, Spill};
use super::{PROGRESS_EVERY, VerifyReport, spill_failed};
use crate::exit::{Exit, ExitError};
use crate::pipeline::error_chain;

/// How many manifests are read at once.
const MANIFEST_READS: usize = 8;
/// Where manifests of every kind live.
const MANIFESTS: &str = "manifests";

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
pub(super) async fn read_manifests(
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
pub(super) async fn list_blobs(
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
