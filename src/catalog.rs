//! What a run adds to the catalog (`catalog/`, see `recarch_store::CatalogEntry`): every
//! manifest it writes is recorded here, and written as a segment before the checkpoint of a
//! page that archived it is saved (and at the end of the run), so that the catalog trails the
//! manifests by at most the pages in flight, and a page whose entries were lost with a killed
//! run is listed again by the next one.

use std::sync::Mutex;

use recarch_store::ledger::LedgerIntent;
use recarch_store::{Archive, CatalogEntry, Manifest, ShardId, StoreError};

/// Catalog entries of manifests written and not yet in a segment.
#[derive(Debug)]
pub struct CatalogWriter {
    archive: Archive,
    shard: ShardId,
    pending: Mutex<Vec<CatalogEntry>>,
}

impl CatalogWriter {
    /// A writer of `shard`'s segments into `archive`.
    pub fn new(archive: Archive, shard: ShardId) -> Self {
        CatalogWriter {
            archive,
            shard,
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Records a manifest just written (for a contact, the version appended).
    pub fn record(&self, manifest: &Manifest) {
        if let Some(key) = manifest.key() {
            self.lock().extend(CatalogEntry::of_manifest(&key, manifest));
        }
    }

    /// Records a contact's version just appended: `manifest` as written and the `version`'s
    /// own members (a deletion's `removed`), which its entry says as a rebuild's would.
    pub fn record_version(&self, manifest: &Manifest, version: &serde_json::Map<String, serde_json::Value>) {
        if let Some(key) = manifest.key() {
            self.lock()
                .extend(CatalogEntry::of_appended_version(&key, manifest, version));
        }
    }

    /// Records entries made otherwise: names filled in for manifests written by an earlier
    /// run (`crate::enrich::fill_in`), which readers merge with the manifest's own entries.
    pub fn record_entries(&self, entries: Vec<CatalogEntry>) {
        if !entries.is_empty() {
            self.lock().extend(entries);
        }
    }

    /// Entries recorded and not written yet.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Writes what was recorded as one segment (nothing when nothing was), named in a ledger
    /// intent first; returns the intent, for the record that logs the segment. On failure the
    /// entries stay pending for the next flush.
    ///
    /// # Errors
    /// Store failures.
    pub async fn flush(&self, ledger: &crate::ledger::Ledger) -> Result<Option<LedgerIntent>, StoreError> {
        let entries = std::mem::take(&mut *self.lock());
        if entries.is_empty() {
            return Ok(None);
        }
        let key = Archive::catalog_segment_key(&self.shard);
        let written = async {
            let intent = ledger.intend(vec![key.clone()]).await?;
            self.archive.put_catalog_segment_at(&key, &entries).await?;
            Ok(intent)
        }
        .await;
        if written.is_err() {
            let mut pending = self.lock();
            let later = std::mem::take(&mut *pending);
            *pending = entries;
            pending.extend(later);
        }
        written
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CatalogEntry>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
