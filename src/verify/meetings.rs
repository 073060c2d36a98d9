//! Meeting and call indexes: every entry must name a manifest that exists.

use futures::StreamExt;
use recarch_store::{Archive, Container, StoreError};

use super::VerifyReport;
use recarch_failure::error_chain;

/// Manifests of one index looked up at once.
const LOOKUPS: usize = 8;

/// Every entry of a meeting index (`meetings/`) and of a call index (`calls/`) must point at
/// a manifest that exists.
pub(super) async fn check_indexes(archive: &Archive, report: &mut VerifyReport, on_problem: &mut impl FnMut(&str)) {
    for container in Container::ALL {
        check_indexes_of(archive, container, report, on_problem).await;
    }
}

/// The indexes of `container`. Streams: a few indexes read at a time ([`Archive::indexes`]),
/// each checked before the next, with a bounded number of lookups in flight.
async fn check_indexes_of(
    archive: &Archive,
    container: Container,
    report: &mut VerifyReport,
    on_problem: &mut impl FnMut(&str),
) {
    let noun = container.noun();
    let mut indexes = archive.indexes(container);
    while let Some(item) = indexes.next().await {
        let (key, index) = match item {
            Ok(read) => read,
            Err(e) => {
                report.found(
                    format!("cannot list {}/: {}", container.prefix(), error_chain(&e)),
                    on_problem,
                );
                return;
            }
        };
        let index = match index {
            Ok(index) => index,
            Err(StoreError::Corrupt { reason, .. }) => {
                report.found(format!("unreadable {noun} index {key}: {reason}"), on_problem);
                continue;
            }
            Err(e) => {
                report.found(
                    format!("cannot read {noun} index {key}: {}", error_chain(&e)),
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
                    format!("{noun} index {key} lists manifest {manifest}, which does not exist"),
                    on_problem,
                ),
                Err(e) => report.found(
                    format!(
                        "cannot check manifest {manifest} of {noun} index {key}: {}",
                        error_chain(&e)
                    ),
                    on_problem,
                ),
            }
        }
    }
}
