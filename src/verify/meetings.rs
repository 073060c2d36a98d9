//! Meeting indexes: every entry must name a manifest that exists.

use futures::StreamExt;
use recarch_store::{Archive, StoreError};

use super::VerifyReport;
use recarch_failure::error_chain;

/// Manifests of one index looked up at once.
const LOOKUPS: usize = 8;

/// Every meeting index entry must point at a manifest that exists. Streams: a few indexes
/// read at a time ([`Archive::meeting_indexes`]), each checked before the next, with a
/// bounded number of lookups in flight.
pub(super) async fn check_meeting_indexes(
    archive: &Archive,
    report: &mut VerifyReport,
    on_problem: &mut impl FnMut(&str),
) {
    let mut indexes = archive.meeting_indexes();
    while let Some(item) = indexes.next().await {
        let (key, index) = match item {
            Ok(read) => read,
            Err(e) => {
                report.found(format!("cannot list meetings/: {}", error_chain(&e)), on_problem);
                return;
            }
        };
        let index = match index {
            Ok(index) => index,
            Err(StoreError::Corrupt { reason, .. }) => {
                report.found(format!("unreadable meeting index {key}: {reason}"), on_problem);
                continue;
            }
            Err(e) => {
                report.found(
                    format!("cannot read meeting index {key}: {}", error_chain(&e)),
                    on_problem,
                );
                continue;
            }
        };
        let mut lookups = std::pin::pin!(
            futures::stream::iter(index.entries)
                .map(|entry| async move {
                    let exists = archive.manifest_exists_at(&entry.manifest).await;
                    (entry.manifest, exists)
                })
                .buffer_unordered(LOOKUPS)
        );
        while let Some((manifest, exists)) = lookups.next().await {
            match exists {
                Ok(true) => {}
                Ok(false) => report.found(
                    format!("meeting index {key} lists manifest {manifest}, which does not exist"),
                    on_problem,
                ),
                Err(e) => report.found(
                    format!(
                        "cannot check manifest {manifest} of meeting index {key}: {}",
                        error_chain(&e)
                    ),
                    on_problem,
                ),
            }
        }
    }
}
