//! Find and produce: `ls`, `show`, `cat` and `export` read the archive without Graph. They
//! find items through the catalog (`catalog/`, see `recarch_store::CatalogEntry`), built from
//! the manifests the first time an archive made before it is searched.

pub mod cat;
pub mod export;
pub mod filter;
pub mod ls;
pub mod show;
pub mod text;

use std::collections::HashMap;

use futures::StreamExt;
use recarch_store::{Archive, CatalogEntry, CatalogLine, DisposalMarker, ManifestRead};

use crate::exit::{Exit, ExitError};
use crate::ledger::Ledger;
use filter::Filters;
use recarch_failure::error_chain;

/// Entries written per catalog segment by a rebuild.
const REBUILD_SEGMENT: usize = 10_000;
/// Manifests read at once when every manifest is read (a rebuild, `verify`, `dispose`).
const MANIFEST_READS: usize = 8;

/// Every manifest of `archive`, read [`MANIFEST_READS`] at a time (see
/// [`Archive::read_manifests`]). Exit 4 when `manifests/` itself cannot be listed.
pub(crate) async fn read_all_manifests(
    archive: &Archive,
) -> Result<futures::stream::BoxStream<'_, ManifestRead>, ExitError> {
    archive.read_manifests(MANIFEST_READS).await.map_err(|e| {
        ExitError::new(
            Exit::Fatal,
            anyhow::anyhow!(
                "cannot list manifests/ in {}: {}",
                archive.display_url(),
                error_chain(&e)
            ),
        )
    })
}

/// What a search found: one entry per item (for a contact, its newest version that passes
/// the filters; entries of one `(manifest, sha256)` merged), oldest first, and how many catalog lines could not be read.
#[derive(Debug, Default)]
pub struct Found {
    /// The items.
    pub entries: Vec<CatalogEntry>,
    /// The items that passed the filters but were disposed of (a disposal marker hides every
    /// entry of theirs), one per manifest, oldest first: what `show` reports as disposed.
    pub disposed: Vec<Disposed>,
    /// Catalog lines or segments that could not be read (logged).
    pub unreadable: u64,
}

/// An item disposed of: its last catalog entry and the marker that hides it.
#[derive(Debug, Clone)]
pub struct Disposed {
    /// The entry, as cataloged before the disposal.
    pub entry: CatalogEntry,
    /// The disposal.
    pub marker: DisposalMarker,
}

/// The items that pass `filters`, through the catalog (built first if the archive has none).
/// Entries a disposal marker hides (those listed in segments before the marker's) are left
/// out, and reported in [`Found::disposed`].
///
/// # Errors
/// Exit 4 when the store cannot be listed or the catalog cannot be built.
pub async fn find(archive: &Archive, ledger: &Ledger, filters: &Filters) -> Result<Found, ExitError> {
    let fatal = |what: &str, e: recarch_store::StoreError| {
        ExitError::new(
            Exit::Fatal,
            anyhow::anyhow!("{what} in {}: {}", archive.display_url(), error_chain(&e)),
        )
    };
    if !archive
        .has_catalog()
        .await
        .map_err(|e| fatal("cannot list catalog/", e))?
    {
        let built = rebuild(archive, ledger).await?;
        tracing::info!(
            entries = built,
            "the archive had no catalog: built it from the manifests"
        );
    }
    let mut found = Found::default();
    // One entry per (manifest, sha256) that passes, with the newest segment listing it; and
    // the newest marker of each (manifest, sha256) disposed of, with its segment.
    type Identity = (String, String);
    let mut listed: HashMap<Identity, (CatalogEntry, String)> = HashMap::new();
    let mut markers: HashMap<Identity, (String, DisposalMarker)> = HashMap::new();
    let mut lines = archive.catalog_entries();
    while let Some(item) = lines.next().await {
        let (segment, line) = match item.map_err(|e| fatal("cannot list catalog/", e))? {
            Ok(line) => line,
            Err(e) => {
                found.unreadable += 1;
                tracing::warn!(error = %error_chain(&e), "a catalog entry cannot be read; `recarch catalog rebuild` writes it anew from the manifests");
                continue;
            }
        };
        let entry = match line {
            CatalogLine::Entry(entry) => entry,
            CatalogLine::Disposed(marker) => {
                let identity = (marker.manifest.clone(), marker.sha256.clone());
                match markers.get_mut(&identity) {
                    Some((newest, _)) if *newest >= segment => {}
                    _ => {
                        markers.insert(identity, (segment, marker));
                    }
                }
                continue;
            }
        };
        if !filters.matches(&entry) {
            continue;
        }
        let identity = (entry.manifest.clone(), entry.sha256.clone());
        match listed.get_mut(&identity) {
            // The same item (or version) listed again: a later run's entry adds the names an
            // earlier one could not read (`crate::enrich`), so members absent from one are
            // taken from the other. The filters above read no `extra` member, so they passed
            // or failed both alike.
            Some((kept, newest)) => {
                merge_extra(kept, entry);
                if *newest < segment {
                    *newest = segment;
                }
            }
            None => {
                listed.insert(identity, (entry, segment));
            }
        }
    }
    // One entry per manifest: the newest version that passes (contacts), or the item; those
    // a marker written after every segment listing them hides, apart.
    let mut by_manifest: HashMap<String, CatalogEntry> = HashMap::new();
    let mut disposed: HashMap<String, Disposed> = HashMap::new();
    for (identity, (entry, newest)) in listed {
        match markers.get(&identity) {
            Some((marked_in, marker)) if *marked_in > newest => match disposed.get(&entry.manifest) {
                Some(kept) if kept.entry.archived_at >= entry.archived_at => {}
                _ => {
                    let marker = marker.clone();
                    disposed.insert(entry.manifest.clone(), Disposed { entry, marker });
                }
            },
            _ => match by_manifest.get(&entry.manifest) {
                Some(kept) if kept.archived_at >= entry.archived_at => {}
                _ => {
                    by_manifest.insert(entry.manifest.clone(), entry);
                }
            },
        }
    }
    let order = |a: &CatalogEntry, b: &CatalogEntry| {
        (a.searched_time(), a.kind, &a.organizer_id, &a.manifest).cmp(&(
            b.searched_time(),
            b.kind,
            &b.organizer_id,
            &b.manifest,
        ))
    };
    // An item archived again after its disposal is listed, not disposed.
    let mut disposed: Vec<Disposed> = disposed
        .into_values()
        .filter(|d| !by_manifest.contains_key(&d.entry.manifest))
        .collect();
    let mut entries: Vec<CatalogEntry> = by_manifest.into_values().collect();
    entries.sort_by(order);
    disposed.sort_by(|a, b| order(&a.entry, &b.entry));
    found.entries = entries;
    found.disposed = disposed;
    Ok(found)
}

/// Adds to `kept` the `extra` members of `other` it lacks (both entries of one
/// `(manifest, sha256)`).
fn merge_extra(kept: &mut CatalogEntry, other: CatalogEntry) {
    for (name, value) in other.extra {
        kept.extra.entry(name).or_insert(value);
    }
}

/// Writes catalog segments for every manifest (`recarch catalog rebuild`, and the first
/// search of an archive without a catalog); returns how many entries were written. The
/// catalog is add-only: what was there stays, and readers keep one entry per manifest and
/// content.
///
/// # Errors
/// Exit 4 when `manifests/` cannot be listed or a segment cannot be written.
pub async fn rebuild(archive: &Archive, ledger: &Ledger) -> Result<u64, ExitError> {
    let fatal = |e: anyhow::Error| ExitError::new(Exit::Fatal, e);
    // Objects written before the ledger are logged as they are before segments are added.
    crate::ledger::genesis(archive, ledger).await?;
    let catalog = crate::catalog::CatalogWriter::new(archive.clone(), ledger.shard().clone());
    let mut listing = read_all_manifests(archive).await?;
    let mut written = 0u64;
    while let Some(read) = listing.next().await {
        match read {
            ManifestRead::Stored(stored) => match stored.parse() {
                Ok(manifest) => catalog.record(&manifest),
                Err(e) => {
                    tracing::warn!(key = %stored.key, error = %error_chain(&e), "not cataloged: not a manifest (`recarch verify` reports it)")
                }
            },
            ManifestRead::Unreadable { key, error } => {
                return Err(fatal(anyhow::anyhow!(
                    "cannot read manifest {key}: {}; the catalog was not completed",
                    error_chain(&error)
                )));
            }
            ManifestRead::Unlisted { prefix, error, .. } => {
                return Err(fatal(anyhow::anyhow!(
                    "cannot list {prefix}: {}; the catalog was not completed",
                    error_chain(&error)
                )));
            }
            _ => {}
        }
        if catalog.pending() >= REBUILD_SEGMENT {
            written += flush(&catalog, ledger, "catalogRebuild").await?;
        }
    }
    written += flush(&catalog, ledger, "catalogRebuild").await?;
    Ok(written)
}

/// Writes what `catalog` holds as a segment (named in a ledger intent first) and logs it right
/// after, its record's details saying `why`; returns how many entries it held.
async fn flush(catalog: &crate::catalog::CatalogWriter, ledger: &Ledger, why: &str) -> Result<u64, ExitError> {
    let n = catalog.pending() as u64;
    let written = async {
        let intent = catalog.flush(ledger).await?;
        if intent.is_none() {
            return Ok(None);
        }
        let mut details = serde_json::Map::new();
        details.insert(why.into(), serde_json::Value::Bool(true));
        ledger
            .log(
                intent.into_iter().collect(),
                recarch_store::ledger::LedgerEvent::Run,
                details,
            )
            .await
    }
    .await;
    written.map_err(|e| {
        ExitError::new(
            Exit::Fatal,
            anyhow::anyhow!("cannot write a catalog segment: {}", error_chain(&e)),
        )
    })?;
    Ok(n)
}

/// Catalogs the manifests among `keys` (what an interrupted run wrote, as the ledger's
/// recovery found it): a run killed after writing a manifest and before writing its catalog
/// segment left an item that the next run finds archived and would never catalog. Entries
/// already in the catalog are written again, which readers tolerate (one per identity).
///
/// # Errors
/// Exit 4 when a manifest cannot be read or the segment cannot be written.
pub async fn recatalog(archive: &Archive, ledger: &Ledger, keys: &[String]) -> Result<u64, ExitError> {
    let catalog = crate::catalog::CatalogWriter::new(archive.clone(), ledger.shard().clone());
    for key in keys.iter().filter(|k| k.starts_with("manifests/")) {
        match archive.manifest_at(key).await {
            Ok(Some(manifest)) => catalog.record(&manifest),
            Ok(None) => {}
            Err(e) => {
                return Err(ExitError::new(
                    Exit::Fatal,
                    anyhow::anyhow!("cannot read {key} to catalog it: {}", error_chain(&e)),
                ));
            }
        }
    }
    flush(&catalog, ledger, "catalogRecovered").await
}
