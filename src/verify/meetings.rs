//! Meeting indexes: every entry must name a manifest that exists.

use futures::StreamExt;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;
use recarch_store::Archive;

use super::VerifyReport;
use crate::pipeline::error_chain;

/// Every meeting index entry must point at a manifest that exists. Streams: one index at a
/// time, a bounded number of lookups in flight.
pub(super) async fn check_meeting_indexes(
    archive: &Archive,
    report: &mut VerifyReport,
    on_problem: &mut impl FnMut(&str),
) {
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
