//! Listing what the check joins: every manifest (read and checked, its blob references
//! spilled) and every blob.

use std::time::Instant;

use futures::StreamExt;
use recarch_store::{Archive, ManifestRead, StoreError};

use super::catalog::CatalogCheck;
use super::checks::check_manifest;
use super::sort::{BlobEntry, RefEntry, Spill};
use super::{PROGRESS_EVERY, VerifyReport, spill_failed};
use crate::exit::{Exit, ExitError};
use recarch_failure::error_chain;

/// Reads and checks every manifest, pushing its blob references into `refs` and the catalog
/// entries it derives into `catalog`. Returns whether the listing was complete.
///
/// The store lists one organizer directory (`manifests/<kind>/<organizer>/`) at a time
/// ([`Archive::read_manifests`]): a listing that fails (on local disk, an entry that cannot
/// be walked; on S3 or Azure, a page that cannot be fetched) ends only that directory's
/// listing, so the rest is still checked. Only a failure to list `manifests/` itself is fatal.
pub(super) async fn read_manifests(
    archive: &Archive,
    refs: &mut Spill<RefEntry>,
    catalog: &mut CatalogCheck,
    report: &mut VerifyReport,
    on_problem: &mut impl FnMut(&str),
    progress: &dyn crate::progress::Progress,
) -> Result<bool, ExitError> {
    let mut listing = crate::find::read_all_manifests(archive).await?;
    let mut complete = true;
    let mut last_progress = Instant::now();
    while let Some(item) = listing.next().await {
        let manifest = match item {
            ManifestRead::Unlisted { prefix, error, whole } => {
                complete = false;
                let lost = if whole {
                    "none of them was checked"
                } else {
                    "the rest of it was not checked"
                };
                report.found(
                    format!("cannot list manifests under {prefix}/: {}; {lost}", error_chain(&error)),
                    on_problem,
                );
                continue;
            }
            ManifestRead::Unreadable { key, error } => {
                catalog.exists(&key).await?;
                report.manifests += 1;
                progress.discovered(1);
                progress.settled();
                report.found(
                    format!("cannot read manifest {key}: {}", error_chain(&error)),
                    on_problem,
                );
                continue;
            }
            ManifestRead::Stored(manifest) => manifest,
            // A kind of finding this version does not know: nothing to check.
            _ => continue,
        };
        report.manifests += 1;
        progress.discovered(1);
        progress.settled();
        let key = manifest.key.clone();
        catalog.manifest(&manifest).await?;
        let (blob_refs, problems) = match check_manifest(&manifest) {
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
