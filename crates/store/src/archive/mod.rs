//! [`Archive`]: an object store narrowed to the archive's prefix, plus the conventions of the
//! layout. The operations live beside it, one file per job: opening a store (`open`), blobs and
//! staging (`blobs`), manifests (`manifests`), organizer state (`state`) and run reports
//! (`reports`); queues, leases, meeting indexes and multipart uploads have modules of their own
//! at the crate's root.

mod backend;
mod blobs;
mod manifests;
mod open;
mod reports;
mod state;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, UpdateVersion};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub(crate) use backend::Backend;
pub use blobs::{BlobCommit, BlobCopyError, Staged};
pub use manifests::{ManifestRead, ManifestWrite, StoredManifest};
pub use open::redact_url;
pub use reports::RunReportRef;

use crate::StoreError;
use crate::extensions::{Extensions, NoExtensions};
use crate::layout::path;

/// Default size of the parts of a staging upload in the store (S3 requires at least 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Default size of the parts of an upload of a spooled file (S3, Azure): S3's smallest.
/// Each upload holds one part in memory, so at concurrency 8 this is 40 MiB of buffers
/// (8 MiB parts: 64 MiB, and 113 MiB peak RSS against 100 or less with 5 MiB on Azurite).
/// A file of over 10 000 parts (48.8 GiB) is sent in larger parts.
pub const SPOOL_PART_SIZE: usize = 5 * 1024 * 1024;
/// Default memory budget of a spooled archive (S3, Azure) for downloads held in memory
/// instead of spool files (see [`Archive::with_spool_memory`]).
pub const DEFAULT_SPOOL_MEMORY: usize = 128 * 1024 * 1024;
/// Largest memory budget [`Archive::with_spool_memory`] takes: a body held in memory goes
/// to S3 in one put, and S3 takes at most 5 GiB in one put.
pub const MAX_SPOOL_MEMORY: usize = 4 * 1024 * 1024 * 1024;
/// Smallest part S3 accepts in a multipart upload (except the last part); smaller part
/// sizes asked of an S3 archive are raised to this.
pub const S3_MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Default number of parts of one staging upload in flight at once.
pub const DEFAULT_PART_CONCURRENCY: usize = 4;
/// How many objects are fetched at once when listing manifests or states.
const LIST_FETCH_CONCURRENCY: usize = 8;

/// An archive: an object store (already narrowed to the archive's prefix) plus the
/// conventions of the layout.
///
/// Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct Archive {
    /// The store, narrowed to the archive's prefix.
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The store [`Archive::probe`] talks to: on S3 and Azure the same store with brief
    /// retries, elsewhere `store` itself.
    probe_store: Arc<dyn ObjectStore>,
    /// The archive URL without credentials or query, for messages.
    display_url: String,
    /// How blobs are written: stage and link (local disk), spooled upload (S3, Azure) or
    /// multipart upload in the store (in memory).
    pub(crate) backend: Backend,
    /// Size of the parts of an upload (see [`Archive::with_upload_parts`]).
    pub(crate) part_size: usize,
    /// Parts of one upload in flight at once.
    pub(crate) part_concurrency: usize,
    /// Smallest part size the backend accepts ([`S3_MIN_PART_SIZE`] on S3, else 1).
    min_part_size: usize,
    /// The version (ETag / object version) of each state document as this archive last read
    /// or wrote it, so that the next write replaces exactly that version (shared by clones).
    state_versions: Arc<std::sync::Mutex<std::collections::HashMap<String, UpdateVersion>>>,
    /// Serialise updates of one document (meeting index, versioned manifest) in this process
    /// (shared by clones; see the `document` module).
    pub(crate) document_locks: Arc<[tokio::sync::Mutex<()>; crate::document::LOCK_STRIPES]>,
    /// What the backend is asked beyond `object_store` (S3 archives opened from a URL: listing
    /// and aborting incomplete multipart uploads; nothing elsewhere).
    pub(crate) extensions: Arc<dyn Extensions>,
    /// What the next ledger record extends, once read (shared by clones; see the `ledger`
    /// module). Locked for a whole append, so appends from one process take turns instead of
    /// racing each other for the same sequence number.
    pub(crate) ledger_tip: Arc<tokio::sync::Mutex<Option<crate::ledger::Tip>>>,
    /// The ledger's leaves of the objects this archive wrote under the logged prefixes, in
    /// write order, until [`Archive::take_leaves`] takes them (shared by clones).
    journal: Arc<std::sync::Mutex<Vec<crate::ledger::Leaf>>>,
    /// How objects are locked as they are written (see the `worm` module); `None`: not.
    pub(crate) worm: Option<crate::worm::WormPolicy>,
    /// What locking cost (shared by clones).
    pub(crate) lock_counters: Arc<crate::worm::LockCounters>,
}

impl fmt::Debug for Archive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Archive")
            .field("url", &self.display_url)
            .field("store", &format_args!("{}", self.store))
            .finish_non_exhaustive()
    }
}

impl Archive {
    fn build(store: Arc<dyn ObjectStore>, display_url: String, backend: Backend) -> Self {
        Self {
            probe_store: Arc::clone(&store),
            store,
            display_url,
            backend,
            part_size: DEFAULT_PART_SIZE,
            part_concurrency: DEFAULT_PART_CONCURRENCY,
            min_part_size: 1,
            state_versions: Arc::default(),
            document_locks: Arc::new(std::array::from_fn(|_| tokio::sync::Mutex::new(()))),
            extensions: Arc::new(NoExtensions),
            worm: None,
            lock_counters: Arc::default(),
            ledger_tip: Arc::default(),
            journal: Arc::default(),
        }
    }

    fn with_min_part_size(mut self, min: usize) -> Self {
        self.min_part_size = min;
        self.part_size = self.part_size.max(min);
        self
    }

    fn with_extensions(mut self, extensions: Arc<dyn Extensions>) -> Self {
        self.extensions = extensions;
        self
    }

    pub(crate) fn with_probe_store(mut self, probe_store: Arc<dyn ObjectStore>) -> Self {
        self.probe_store = probe_store;
        self
    }

    /// The store [`Archive::probe`] talks to.
    pub(crate) fn probe_store(&self) -> &Arc<dyn ObjectStore> {
        &self.probe_store
    }

    /// Sets the part size and the number of parts in flight for [`Archive::stage`]
    /// (defaults: [`DEFAULT_PART_SIZE`], or [`SPOOL_PART_SIZE`] for S3 and Azure archives,
    /// and [`DEFAULT_PART_CONCURRENCY`]; local-disk archives write no parts). Both are at least 1.
    /// S3 rejects parts under 5 MiB (except the last), so on an archive opened from an S3
    /// URL the part size is at least [`S3_MIN_PART_SIZE`] whatever is asked. Memory use per
    /// staged upload is about `part_size * (part_concurrency + 1)`; an upload of a spooled
    /// file (S3, Azure) holds one part.
    pub fn with_upload_parts(mut self, part_size: usize, part_concurrency: usize) -> Self {
        self.part_size = part_size.max(self.min_part_size).max(1);
        self.part_concurrency = part_concurrency.max(1);
        self
    }

    /// Spools downloads to files under `dir` (per shard) and uploads each blob once under its
    /// final name (see the `spool` module docs), instead of staging it in the store and
    /// copying it. The default for S3 and Azure archives (under the system's temporary
    /// directory); has no effect on local-disk archives, where staging is a rename.
    ///
    /// Files go under `<dir>/<tag>/<shard>/`, where the tag is derived from the archive's
    /// URL: runs of different archives sharing a directory (and a shard name) never touch
    /// each other's files; runs of one shard of one archive are kept apart by its lease.
    ///
    /// Bodies are held in memory instead of a file while [`DEFAULT_SPOOL_MEMORY`] bytes (or
    /// what [`Archive::with_spool_memory`] sets) allow, across the downloads of this archive.
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let memory = match &self.backend {
            Backend::Local { .. } => return self,
            Backend::Spooled { memory, .. } => memory.clone(),
            Backend::Multipart => Some(crate::spool::MemoryBudget::new(DEFAULT_SPOOL_MEMORY)),
        };
        let tag = hex::encode(&Sha256::digest(self.display_url.as_bytes())[..8]);
        self.backend = Backend::Spooled {
            dir: dir.into().join(tag),
            memory,
        };
        self
    }

    /// How many bytes of downloads a spooled archive (S3, Azure: see
    /// [`Archive::with_spool_dir`]) may hold in memory at once instead of in spool files,
    /// shared by all its downloads; at most [`MAX_SPOOL_MEMORY`], and 0 spools every body
    /// to a file. A body is kept in memory while the budget has room for all of it, and is
    /// then uploaded from there (on S3 in one put, elsewhere in parts when it is larger than
    /// one): no spool file is written or read back (on S3 over https that was a third of the
    /// client's CPU beyond the content hash). A body
    /// that outgrows what is left is moved to its spool file and goes on from there. No
    /// effect on other archives.
    pub fn with_spool_memory(mut self, bytes: usize) -> Self {
        if let Backend::Spooled { memory, .. } = &mut self.backend {
            *memory = (bytes > 0).then(|| crate::spool::MemoryBudget::new(bytes.min(MAX_SPOOL_MEMORY)));
        }
        self
    }

    /// The spool directory in use, if any (see [`Archive::with_spool_dir`]).
    pub fn spool_dir(&self) -> Option<&std::path::Path> {
        self.backend.spool_dir()
    }

    /// The directory of a local-disk archive (`None` on S3, Azure and in memory).
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.backend.local_root()
    }

    /// The part size [`Archive::stage`] uses (see [`Archive::with_upload_parts`]).
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// How many uploads are worth staging at once per download in flight, for a caller that
    /// lets the end of one upload overlap the next download (as `recarch run` does). One
    /// upload staged in the store buffers at most `part_size * (part_concurrency + 1)` bytes,
    /// one upload of a spooled file one part, one blob written on local disk about 2 MiB.
    ///
    /// On local disk, finishing an upload is mostly waiting for fsync while its few small
    /// parts drain at disk speed: two per download keep the network busy (measured: +15-20 %)
    /// for little memory. On S3, Azure and in memory, finishing means sending the buffered
    /// parts, which overlapping would not speed up; one per download keeps memory at one
    /// upload's buffers per download (measured on the emulators at concurrency 8: 250-280 MiB
    /// peak with one, up to 470 MiB with two).
    pub fn staged_uploads_per_download(&self) -> usize {
        self.backend.staged_uploads_per_download()
    }

    /// The archive URL with credentials and query stripped, for messages.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// The underlying store, rooted at the archive's prefix: for tests that plant or inspect
    /// raw objects, and for no other code. Everything the archive holds has a typed
    /// operation on [`Archive`] that keeps the layout's rules (keys, create-only writes,
    /// versions, the listing rule), which raw access would bypass; `recarch` itself never
    /// calls this.
    #[doc(hidden)]
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    // -------------------------------------------------------------- helpers

    /// Metadata of `key`, `None` if absent.
    pub(crate) async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        match self.store.head(&path(key)).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::from_backend(key, e)),
        }
    }

    /// Content of `key`, `None` if absent.
    pub(crate) async fn get_bytes(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.get_with_meta(key).await?.map(|(bytes, _)| bytes))
    }

    /// Content and metadata of `key`, `None` if absent.
    pub(crate) async fn get_with_meta(&self, key: &str) -> Result<Option<(Bytes, ObjectMeta)>, StoreError> {
        let got = match self.store.get(&path(key)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(StoreError::from_backend(key, e)),
        };
        let meta = got.meta.clone();
        match got.bytes().await {
            Ok(bytes) => Ok(Some((bytes, meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::from_backend(key, e)),
        }
    }

    /// How the object at `key` is encrypted at rest, as the backend reports it (S3: the
    /// server-side encryption headers of a HEAD); `None` where the backend reports nothing
    /// (local disk, Azure, in memory).
    ///
    /// # Errors
    /// Store failures (the object missing among them).
    pub async fn encryption_of(&self, key: &str) -> Result<Option<crate::Encryption>, StoreError> {
        self.extensions.encryption(key).await
    }

    /// Deletes `key`; absent is fine.
    pub(crate) async fn delete_quietly(&self, key: &str) -> Result<(), StoreError> {
        match self.store.delete(&path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::from_backend(key, e)),
        }
    }

    /// Writes `body` at `key` create-only and journals it for the ledger (catalog segments,
    /// hold records: objects that are never rewritten and always logged).
    pub(crate) async fn put_new_logged(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let body = PutPayload::from(bytes::Bytes::from(body));
        let written = self
            .store
            .put_opts(
                &crate::layout::path(key),
                body.clone(),
                object_store::PutMode::Create.into(),
            )
            .await
            .map_err(|e| StoreError::from_backend(key, e))?;
        self.written(key, &body, written.version.as_deref()).await
    }

    /// After `body` was written at `key` (as `version`, where the store keeps versions):
    /// journals it for the ledger and, with a lock policy, locks it until its retain-until
    /// (a manifest's own `retention.retainUntil`; anything else the policy's longest period
    /// from now) before the write counts as done.
    ///
    /// # Errors
    /// The lock could not be set: the object is written and journaled, but the caller must
    /// not count it as done (a manifest met again is locked then, see `put_manifest`).
    pub(crate) async fn written(&self, key: &str, body: &PutPayload, version: Option<&str>) -> Result<(), StoreError> {
        self.written_locked(key, body, version, self.lock_of(key, body)).await
    }

    /// [`Archive::written`] with the lock already known (`None`: not locked), as
    /// `put_manifest` knows it from the manifest it writes.
    pub(crate) async fn written_locked(
        &self,
        key: &str,
        body: &PutPayload,
        version: Option<&str>,
        lock: Option<crate::worm::ObjectLock>,
    ) -> Result<(), StoreError> {
        self.journal(key, body);
        match lock {
            Some(lock) => self.lock_new(key, version, lock).await,
            None => Ok(()),
        }
    }

    /// The lock of an object under the logged prefixes just written, with a lock policy:
    /// a manifest's own retention (none: not locked), anything else's from now.
    pub(crate) fn lock_of(&self, key: &str, body: &PutPayload) -> Option<crate::worm::ObjectLock> {
        let policy = self.worm?;
        crate::ledger::check_leaf_key(key).ok()?;
        if key.starts_with(crate::layout::MANIFEST_ROOT) {
            let bytes: Vec<u8> = body.iter().flat_map(|chunk| chunk.iter().copied()).collect();
            return crate::worm::manifest_lock(&bytes);
        }
        Some(policy.lock_from(chrono::Utc::now()))
    }
}

/// Pretty JSON with a trailing newline.
impl Archive {
    /// Records the leaf of `body`, just written at `key`, when `key` is under a prefix the
    /// ledger logs (`manifests/`, `meetings/`, `calls/`, `catalog/`, `holds/`).
    pub(crate) fn journal(&self, key: &str, body: &PutPayload) {
        if crate::ledger::check_leaf_key(key).is_err() {
            return;
        }
        let mut hasher = Sha256::new();
        for chunk in body.iter() {
            hasher.update(chunk);
        }
        let digest = crate::Sha256Digest::from_bytes(hasher.finalize().into());
        if let Ok(leaf) = crate::ledger::Leaf::new(key, digest) {
            self.journal_lock().push(leaf);
        }
    }

    /// The leaves of the objects written under the logged prefixes since the last call, in
    /// the order written: what the next ledger record logs.
    pub fn take_leaves(&self) -> Vec<crate::ledger::Leaf> {
        std::mem::take(&mut *self.journal_lock())
    }

    /// Puts `leaves` back in front of those written since (a record that could not be
    /// appended: they go into the next one).
    pub fn return_leaves(&self, mut leaves: Vec<crate::ledger::Leaf>) {
        let mut journal = self.journal_lock();
        leaves.append(&mut journal);
        *journal = leaves;
    }

    /// Every object under the prefixes the ledger logs (`manifests/`, `meetings/`, `calls/`,
    /// `catalog/`, `holds/`), read a few at a time in no particular order, as `(key, bytes)`:
    /// for checking them against the ledger, or logging those written before it. The outer
    /// error ends the stream (a listing failure); the inner one is a read that failed.
    #[allow(clippy::type_complexity)] // the pair is the contract, as in `list_manifests`
    pub fn ledgered_objects(
        &self,
    ) -> futures::stream::BoxStream<'_, Result<(String, Result<Bytes, StoreError>), StoreError>> {
        use futures::StreamExt as _;
        futures::stream::iter(crate::layout::LEDGER_LOGGED)
            .flat_map(move |prefix| self.list_and_read(prefix, |_| true, LIST_FETCH_CONCURRENCY))
            .boxed()
    }

    fn journal_lock(&self) -> std::sync::MutexGuard<'_, Vec<crate::ledger::Leaf>> {
        self.journal.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub(crate) fn to_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<PutPayload, StoreError> {
    let mut body = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Rejected {
        key: key.to_owned(),
        reason: format!("cannot serialize: {e}"),
    })?;
    body.push(b'\n');
    Ok(PutPayload::from(body))
}
