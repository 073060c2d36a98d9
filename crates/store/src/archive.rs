//! [`Archive`]: opening a store and the blob, manifest, state and run-report operations.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, GetResultPayload, ObjectMeta, ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutMode, PutPayload,
    RetryConfig, UpdateVersion, WriteMultipart,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use url::Url;

use crate::layout::{self, path};
use crate::model::{MANIFEST_RESERVED, VERSIONS};
use crate::{
    Kind, MANIFEST_SCHEMA, Manifest, OrganizerId, OrganizerState, STATE_SCHEMA, Sha256Digest, ShardId, StageError,
    StoreError,
};
use serde_json::Value;

/// Default size of the parts of a staging upload in the store (S3 requires at least 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Default size of the parts of an upload of a spooled file (S3, Azure): S3's smallest.
/// Each upload holds one part in memory, so at concurrency 8 this is 40 MiB of buffers
/// (8 MiB parts: 64 MiB, and 113 MiB peak RSS against 100 or less with 5 MiB on Azurite).
/// A file of over 10 000 parts (48.8 GiB) is sent in larger parts.
pub const SPOOL_PART_SIZE: usize = 5 * 1024 * 1024;
/// Smallest part S3 accepts in a multipart upload (except the last part); smaller part
/// sizes asked of an S3 archive are raised to this.
pub const S3_MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Default number of parts of one staging upload in flight at once.
pub const DEFAULT_PART_CONCURRENCY: usize = 4;
/// How many objects are fetched at once when listing manifests or states.
const LIST_FETCH_CONCURRENCY: usize = 8;
/// How many names are tried for a run report before giving up.
const RUN_REPORT_ATTEMPTS: u32 = 16;
/// How often a create-only commit that lost to a blob not yet visible is retried.
const COMMIT_ATTEMPTS: u32 = 4;

/// Retries of [`Archive::probe`] on S3 and Azure: a few quick ones, so that a wrong
/// endpoint fails in seconds rather than after `object_store`'s default of ten retries
/// over up to three minutes.
fn probe_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(15),
    }
}

/// An archive: an object store (already narrowed to the archive's prefix) plus the
/// conventions of the layout.
///
/// Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct Archive {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The same store with brief retries, for [`Archive::probe`] (S3 and Azure only).
    probe_store: Option<Arc<dyn ObjectStore>>,
    display_url: String,
    /// Root directory when opened from a `file://` URL: blobs are written under it and
    /// hard-linked into place, and the temporary files `LocalFileSystem` leaves behind when a
    /// process is killed mid-write are swept from it.
    pub(crate) local_root: Option<PathBuf>,
    pub(crate) part_size: usize,
    pub(crate) part_concurrency: usize,
    /// Where downloads are spooled before their single upload (S3 and Azure); `None`: staged
    /// in the store and renamed (local disk, in memory).
    spool_dir: Option<PathBuf>,
    /// Smallest part size the backend accepts ([`S3_MIN_PART_SIZE`] on S3, else 1).
    min_part_size: usize,
    /// The version (ETag / object version) of each state document as this archive last read
    /// or wrote it, so that the next write replaces exactly that version (shared by clones).
    state_versions: Arc<std::sync::Mutex<std::collections::HashMap<String, UpdateVersion>>>,
    /// Serialise updates of one document (meeting index, versioned manifest) in this process
    /// (shared by clones; see the `document` module).
    pub(crate) document_locks: Arc<[tokio::sync::Mutex<()>; crate::document::LOCK_STRIPES]>,
    /// S3 archives opened from a URL: lists and aborts incomplete multipart uploads.
    pub(crate) s3_uploads: Option<Arc<crate::multipart::S3Uploads>>,
}

impl fmt::Debug for Archive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Archive")
            .field("url", &self.display_url)
            .field("store", &format_args!("{}", self.store))
            .finish_non_exhaustive()
    }
}

/// A staged upload: bytes stored under `staging/<shard>/…` (local disk, in memory) or in a
/// spool file (S3, Azure: see [`Archive::with_spool_dir`]), not yet a blob.
///
/// Pass it to [`Archive::commit_blob`] or [`Archive::discard`]. If it is dropped instead
/// (or the process dies), it stays behind until [`Archive::clean_staging`] runs for the
/// shard.
#[must_use = "commit or discard a staged upload, or it stays behind until clean_staging"]
#[derive(Debug)]
pub struct Staged {
    key: String,
    /// Where the bytes are, when spooled to a local file rather than staged in the store.
    spool: Option<PathBuf>,
    size: u64,
    digest: Sha256Digest,
}

impl Staged {
    /// Number of bytes staged.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// SHA-256 of the bytes staged, computed while they streamed through.
    pub fn digest(&self) -> Sha256Digest {
        self.digest
    }

    /// The staging key (`staging/<shard>/…`), or the spool file's path.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Outcome of [`Archive::commit_blob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobCommit {
    /// The blob key, `blobs/sha256/<hex>`.
    pub key: String,
    /// `true` if this call created the blob; `false` if it was already there.
    pub created: bool,
}

/// Outcome of [`Archive::put_manifest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestWrite {
    /// The manifest was written.
    Created,
    /// A manifest for this recording already existed; it was left untouched.
    AlreadyExists,
}

impl Archive {
    /// Opens the archive at `url`.
    ///
    /// Accepted URLs:
    /// - `file:///absolute/path`: a directory on local disk, created if missing;
    /// - `s3://bucket/prefix` (and `s3a://`, and `https://` S3 endpoint URLs): AWS S3 or a
    ///   compatible store, configured from the `AWS_*` environment variables, then
    ///   `options`;
    /// - `az://container/prefix` (and `azure://`, `abfs[s]://`, `adl://`, and
    ///   `https://<account>.blob.core.windows.net/container/prefix`): Azure Blob Storage,
    ///   configured from the `AZURE_*` environment variables, then `options`;
    /// - `memory://` (optionally with a prefix): a fresh in-memory store, for tests.
    ///
    /// `options` are `object_store` configuration keys and values, e.g.
    /// `("aws_endpoint", "http://localhost:9000")`, `("aws_allow_http", "true")`,
    /// `("azure_storage_account_name", "acct")`; keys are case-insensitive. `file://`
    /// and `memory://` take no options.
    ///
    /// Nothing is contacted here; call [`Archive::probe`] to check the store works.
    ///
    /// # Errors
    /// [`StoreError::InvalidUrl`] for an unsupported or malformed URL or a backend that
    /// cannot be configured from it; [`StoreError::InvalidOption`] for an option key the
    /// backend does not know.
    pub fn open(url: &str, options: &[(String, String)]) -> Result<Archive, StoreError> {
        let parsed = Url::parse(url).map_err(|e| StoreError::InvalidUrl {
            url: redact_unparsed(url),
            reason: e.to_string(),
        })?;
        let display = display_url(&parsed);
        let invalid = |reason: String| StoreError::InvalidUrl {
            url: display.clone(),
            reason,
        };

        match parsed.scheme() {
            "file" => open_local(&parsed, display.clone(), options),
            "memory" => {
                reject_options("memory://", options)?;
                let prefix = Path::from_url_path(parsed.path()).map_err(|e| invalid(format!("bad prefix: {e}")))?;
                Ok(Self::build(
                    prefixed(Arc::new(InMemory::new()), prefix),
                    display.clone(),
                    None,
                ))
            }
            "s3" | "s3a" => open_s3(&parsed, display.clone(), options),
            "az" | "azure" | "abfs" | "abfss" | "adl" => open_azure(&parsed, display.clone(), options),
            "https" | "http" => match ObjectStoreScheme::parse(&parsed) {
                Ok((ObjectStoreScheme::AmazonS3, _)) => open_s3(&parsed, display.clone(), options),
                Ok((ObjectStoreScheme::MicrosoftAzure, _)) => open_azure(&parsed, display.clone(), options),
                _ => Err(invalid(
                    "not a recognised S3 or Azure endpoint; use s3://bucket/prefix or az://container/prefix".into(),
                )),
            },
            other => Err(invalid(format!(
                "unsupported scheme {other:?}; use file:///path, s3://bucket/prefix or az://container/prefix"
            ))),
        }
    }

    /// Wraps a store that is already narrowed to the archive's root (e.g. with
    /// [`PrefixStore`]). `display_url` is what messages show; credentials and query in it
    /// are stripped.
    ///
    /// An archive built this way does not know the local directory behind a
    /// `LocalFileSystem`, so [`Archive::clean_staging`] cannot sweep the temporary files
    /// that backend leaves behind when killed; use [`Archive::open`] with a `file://` URL
    /// for that. Nor does it know the backend: [`Archive::probe`] uses the store's own
    /// retry settings, and for S3 keep the part size at least [`S3_MIN_PART_SIZE`] (the
    /// default [`DEFAULT_PART_SIZE`] is) when calling [`Archive::with_upload_parts`].
    pub fn from_store(store: Arc<dyn ObjectStore>, display_url: &str) -> Archive {
        let display = match Url::parse(display_url) {
            Ok(url) => self::display_url(&url),
            Err(_) => redact_unparsed(display_url),
        };
        Self::build(store, display, None)
    }

    fn build(store: Arc<dyn ObjectStore>, display_url: String, local: Option<PathBuf>) -> Self {
        Self {
            store,
            probe_store: None,
            display_url,
            local_root: local,
            part_size: DEFAULT_PART_SIZE,
            part_concurrency: DEFAULT_PART_CONCURRENCY,
            spool_dir: None,
            min_part_size: 1,
            state_versions: Arc::default(),
            document_locks: Arc::new(std::array::from_fn(|_| tokio::sync::Mutex::new(()))),
            s3_uploads: None,
        }
    }

    fn with_min_part_size(mut self, min: usize) -> Self {
        self.min_part_size = min;
        self.part_size = self.part_size.max(min);
        self
    }

    fn with_probe_store(mut self, probe_store: Arc<dyn ObjectStore>) -> Self {
        self.probe_store = Some(probe_store);
        self
    }

    /// The store [`Archive::probe`] talks to.
    pub(crate) fn probe_store(&self) -> &Arc<dyn ObjectStore> {
        self.probe_store.as_ref().unwrap_or(&self.store)
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
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        if self.local_root.is_none() {
            let tag = hex::encode(&Sha256::digest(self.display_url.as_bytes())[..8]);
            self.spool_dir = Some(dir.into().join(tag));
        }
        self
    }

    /// The spool directory in use, if any (see [`Archive::with_spool_dir`]).
    pub fn spool_dir(&self) -> Option<&std::path::Path> {
        self.spool_dir.as_deref()
    }

    /// The directory of a local-disk archive (`None` on S3, Azure and in memory).
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
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
        if self.local_root.is_some() { 2 } else { 1 }
    }

    /// The archive URL with credentials and query stripped, for messages.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// The underlying store, rooted at the archive's prefix.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    // ---------------------------------------------------------------- blobs

    /// Streams `body` into a fresh object under `staging/<shard>/`, hashing it on the way.
    ///
    /// On local disk the object is a file written directly (and fsynced), which
    /// [`Archive::commit_blob`] hard-links into place; on S3 and Azure it is a spool file
    /// (see [`Archive::with_spool_dir`]). Other stores (in memory) get a multipart upload:
    /// the stream's [`Bytes`] are handed to the upload without copying, cut into parts of
    /// the configured size, with a bounded number of parts in flight (see
    /// [`Archive::with_upload_parts`]). Memory stays bounded whatever the recording size.
    ///
    /// # Errors
    /// [`StageError::Body`] if `body` yields an error, [`StageError::Store`] if the store
    /// fails. Either way the upload is aborted and nothing is left behind (except when the
    /// backend itself cannot clean up, e.g. an S3 abort that fails: `clean_staging` and a
    /// bucket lifecycle rule for incomplete multipart uploads cover that).
    pub async fn stage<S, E>(&self, shard: &ShardId, mut body: S) -> Result<Staged, StageError<E>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        // Local disk: the bytes go to a file under `<root>/staging/<shard>/` that becomes the
        // blob by a hard link (see `Archive::commit_blob`), written with the spool's writer
        // rather than as a `LocalFileSystem` upload (which fsyncs the staging directory twice
        // more per blob and hands every part to the blocking pool twice).
        let spooled = match (&self.local_root, &self.spool_dir) {
            (Some(root), _) => Some((root.join(layout::STAGING), crate::spool::Durability::Sync)),
            (None, Some(spool)) => Some((spool.clone(), crate::spool::Durability::Scratch)),
            (None, None) => None,
        };
        if let Some((root, durability)) = spooled {
            let (file, size, digest) = crate::spool::spool(&root, shard, body, durability).await?;
            // On local disk the file is in the store: name it by its key, as listings do.
            let name = file.file_name().map(|n| n.to_string_lossy());
            let key = match (&self.local_root, name) {
                (Some(_), Some(name)) => format!("{}/{name}", layout::staging_prefix(shard)),
                _ => file.display().to_string(),
            };
            return Ok(Staged {
                key,
                spool: Some(file),
                size,
                digest,
            });
        }
        let key = layout::staging_key(shard);
        let location = path(&key);
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(|e| StoreError::from_backend(&key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;

        while let Some(next) = body.next().await {
            let mut chunk = match next {
                Ok(chunk) => chunk,
                Err(e) => {
                    abort_upload(writer, &key).await;
                    return Err(StageError::Body(e));
                }
            };
            hasher.update(&chunk);
            size += chunk.len() as u64;
            while !chunk.is_empty() {
                // At most one part is started per `put` of at most `part_size` bytes, so
                // waiting for a free slot first bounds the parts in flight.
                if let Err(e) = writer.wait_for_capacity(self.part_concurrency).await {
                    abort_upload(writer, &key).await;
                    return Err(StoreError::from_backend(&key, e).into());
                }
                let piece = chunk.split_to(chunk.len().min(self.part_size));
                writer.put(piece);
            }
        }

        if let Err(e) = writer.finish().await {
            // `finish` aborts the upload itself on failure; make sure no object remains.
            if let Err(del) = self.delete_quietly(&key).await {
                tracing::warn!(key = %key, error = %del, "could not remove a failed staging upload; clean_staging will");
            }
            return Err(StoreError::from_backend(&key, e).into());
        }
        let digest = Sha256Digest::from_bytes(hasher.finalize().into());
        tracing::debug!(key = %key, size, %digest, "staged");
        Ok(Staged {
            key,
            spool: None,
            size,
            digest,
        })
    }

    /// Moves a staged upload to `blobs/sha256/<digest>` unless that blob exists.
    ///
    /// `digest` must be the SHA-256 of the staged bytes (it is checked against
    /// [`Staged::digest`]). If the blob already exists the staged copy is deleted and
    /// `created` is `false`. Two runs committing the same digest at once both succeed and
    /// one blob remains.
    ///
    /// # Errors
    /// [`StoreError::DigestMismatch`] if `digest` is not the staged bytes' digest (the
    /// staged copy is discarded); [`StoreError::Corrupt`] if a blob of that name exists
    /// with a different size; other variants for store failures (the staged copy may
    /// then remain until [`Archive::clean_staging`]).
    pub async fn commit_blob(&self, staged: Staged, digest: &Sha256Digest) -> Result<BlobCommit, StoreError> {
        let key = layout::blob_key(digest);
        if staged.digest != *digest {
            let actual = staged.digest;
            self.discard(staged).await?;
            return Err(StoreError::DigestMismatch {
                key,
                expected: digest.to_hex(),
                actual: actual.to_hex(),
            });
        }
        if let Some(file) = &staged.spool {
            if let Some(root) = &self.local_root {
                return match crate::local::link_blob(root, file, &key).await? {
                    crate::local::Linked::Created => {
                        tracing::debug!(key = %key, size = staged.size, "blob created");
                        Ok(BlobCommit { key, created: true })
                    }
                    crate::local::Linked::Existed { size } => self.existing_blob(key, size, staged.size),
                };
            }
            return self.commit_spooled(file, staged.size, digest).await;
        }
        let from = path(&staged.key);
        let to = path(&key);
        let mut attempt = 0;
        loop {
            match self.store.rename_if_not_exists(&from, &to).await {
                Ok(()) => {
                    tracing::debug!(key = %key, size = staged.size, "blob created");
                    return Ok(BlobCommit { key, created: true });
                }
                // The destination exists: AlreadyExists (409, or S3's 412 mapped), or a bare
                // Precondition (Azure documents 412 for a failed If-None-Match, and
                // object_store does not remap it on copies). S3 may also answer 409 while a
                // concurrent create of the same name completes; then the blob is not visible
                // yet, so look and retry briefly.
                Err(e @ (object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. })) => {
                    if self.head(&key).await?.is_some() {
                        return self.blob_was_there(staged, key).await;
                    }
                    attempt += 1;
                    if attempt >= COMMIT_ATTEMPTS {
                        return Err(StoreError::from_backend(&key, e));
                    }
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. }) => {
                    // S3 without `aws_copy_if_not_exists`: no atomic create-only copy. The
                    // name is the content's digest, so overwriting an identical blob is
                    // harmless; only `created` may then be `true` for two racing runs.
                    return match self.store.head(&to).await {
                        Ok(_) => self.blob_was_there(staged, key).await,
                        Err(object_store::Error::NotFound { .. }) => {
                            self.store
                                .rename(&from, &to)
                                .await
                                .map_err(|e| StoreError::from_backend(&key, e))?;
                            Ok(BlobCommit { key, created: true })
                        }
                        Err(e) => Err(StoreError::from_backend(&key, e)),
                    };
                }
                Err(e) => return Err(StoreError::from_backend(&key, e)),
            }
        }
    }

    async fn blob_was_there(&self, staged: Staged, key: String) -> Result<BlobCommit, StoreError> {
        let existing = self
            .store
            .head(&path(&key))
            .await
            .map_err(|e| StoreError::from_backend(&key, e))?;
        let staged_size = staged.size;
        self.discard(staged).await?;
        if existing.size != staged_size {
            return Err(StoreError::corrupt(
                key,
                format!(
                    "blob is {} bytes but its content is {staged_size} bytes; verify it with hash_blob and delete it so a later run stores it again",
                    existing.size
                ),
            ));
        }
        tracing::debug!(key = %key, "blob already present");
        Ok(BlobCommit { key, created: false })
    }

    /// Deletes a staged upload.
    ///
    /// # Errors
    /// Store failures; a staged object that is already gone is not an error.
    pub async fn discard(&self, staged: Staged) -> Result<(), StoreError> {
        if let Some(file) = &staged.spool {
            crate::spool::remove_spool_file(file).await;
            return Ok(());
        }
        self.delete_quietly(&staged.key).await
    }

    /// Removes everything under `staging/<shard>/`: uploads of killed or failed runs.
    /// Returns how many objects (or temporary files) were removed.
    ///
    /// Only call it while holding the shard's lease: it would destroy the staging
    /// uploads of a run working on the same shard.
    ///
    /// For an archive opened from a `file://` URL this also removes the `<name>#<n>`
    /// temporary files `LocalFileSystem` writes multipart uploads to: a killed process
    /// leaves them behind and `object_store` listings do not show them.
    ///
    /// # Errors
    /// Store (or, for `file://`, file system) failures.
    pub async fn clean_staging(&self, shard: &ShardId) -> Result<usize, StoreError> {
        let prefix = layout::staging_prefix(shard);
        // Collect first: deleting while a LocalFileSystem listing walks the directory
        // could remove the directory under the walk.
        let locations: Vec<Path> = self
            .store
            .list(Some(&path(&prefix)))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| StoreError::from_backend(&prefix, e))?;
        let mut removed = 0;
        let mut deleted = self
            .store
            .delete_stream(futures::stream::iter(locations.into_iter().map(Ok)).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(location) => {
                    tracing::info!(key = %location, "removed staging debris");
                    removed += 1;
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(StoreError::from_backend(&prefix, e)),
            }
        }
        if let Some(root) = &self.local_root {
            removed += crate::local::sweep_staging(root.clone(), shard).await?;
        }
        if let Some(spool) = &self.spool_dir {
            removed += crate::spool::clean(spool, shard).await?;
        }
        Ok(removed)
    }

    /// Reclaims everything a killed run of `shard` may have left: staging objects (see
    /// [`Archive::clean_staging`]) and, on local disk, the temporaries of interrupted writes
    /// of this shard's state, manifests (of `organizers`), run reports and lease. Call it
    /// while holding the shard's lease. Returns how many objects or files were removed.
    ///
    /// # Errors
    /// Store failures.
    pub async fn reclaim(&self, shard: &ShardId, organizers: &[OrganizerId]) -> Result<usize, StoreError> {
        let mut removed = self.clean_staging(shard).await?;
        if let Some(root) = &self.local_root {
            removed += crate::local::sweep_interrupted_writes(root.clone(), shard, organizers).await?;
        }
        Ok(removed)
    }

    /// Size of the blob named `digest`, or `None` if there is none.
    ///
    /// # Errors
    /// Store failures.
    pub async fn blob_size(&self, digest: &Sha256Digest) -> Result<Option<u64>, StoreError> {
        let key = layout::blob_key(digest);
        Ok(self.head(&key).await?.map(|meta| meta.size))
    }

    /// Reads the blob named `digest` back, hashing it as it streams; returns the actual
    /// digest and size (compare them with what is expected to verify the blob).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such blob; store failures.
    pub async fn hash_blob(&self, digest: &Sha256Digest) -> Result<(Sha256Digest, u64), StoreError> {
        let key = layout::blob_key(digest);
        let got = self
            .store
            .get(&path(&key))
            .await
            .map_err(|e| StoreError::from_backend(&key, e))?;
        match got.payload {
            // LocalFileSystem hands out the open file; hash it on a blocking thread with
            // large reads instead of polling 8 KiB chunks through the runtime.
            GetResultPayload::File(file, _) => crate::local::blocking(&key, move || hash_file(file)).await,
            GetResultPayload::Stream(mut stream) => {
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| StoreError::from_backend(&key, e))?;
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                }
                Ok((Sha256Digest::from_bytes(hasher.finalize().into()), size))
            }
        }
    }

    /// Every blob with its size, in no particular order. An object under `blobs/sha256/`
    /// whose name is not a valid digest is yielded as [`StoreError::Corrupt`] and the
    /// listing goes on.
    pub fn list_blobs(&self) -> BoxStream<'_, Result<(Sha256Digest, u64), StoreError>> {
        self.store
            .list(Some(&path(layout::BLOBS)))
            .map(|item| {
                let meta = item.map_err(|e| StoreError::from_backend(layout::BLOBS, e))?;
                let key = meta.location.to_string();
                match layout::digest_of_blob_key(&key) {
                    Some(digest) => Ok((digest, meta.size)),
                    None => Err(StoreError::corrupt(
                        key,
                        "not named blobs/sha256/<64 lowercase hex digits>",
                    )),
                }
            })
            .boxed()
    }

    // ------------------------------------------------------------ manifests

    /// The manifest key of a recording:
    /// `manifests/recordings/<organizer>/<lowercase hex SHA-256 of recording_id>.json`.
    ///
    /// The recording id is hashed, so whatever it contains (`/`, `..`, …) the key stays
    /// inside the organizer's directory.
    pub fn manifest_key(organizer: &OrganizerId, recording_id: &str) -> String {
        layout::manifest_key(organizer, recording_id)
    }

    /// The manifest key of item `id` of `kind`: `manifests/<kind>/<organizer>/<hex SHA-256 of
    /// id>.json`.
    pub fn manifest_key_of(kind: Kind, organizer: &OrganizerId, id: &str) -> String {
        layout::manifest_key_of(kind, organizer, id)
    }

    /// Whether the recording's manifest exists.
    ///
    /// # Errors
    /// Store failures.
    pub async fn manifest_exists(&self, organizer: &OrganizerId, recording_id: &str) -> Result<bool, StoreError> {
        self.manifest_exists_of(Kind::Recordings, organizer, recording_id).await
    }

    /// Whether the manifest of item `id` of `kind` exists
    /// (`manifests/<kind>/<organizer>/<key>.json`).
    ///
    /// # Errors
    /// Store failures.
    pub async fn manifest_exists_of(&self, kind: Kind, organizer: &OrganizerId, id: &str) -> Result<bool, StoreError> {
        let key = layout::manifest_key_of(kind, organizer, id);
        Ok(self.head(&key).await?.is_some())
    }

    /// Writes the manifest, create-only: an existing manifest for the recording is left
    /// untouched and `Ok(ManifestWrite::AlreadyExists)` is returned.
    ///
    /// Checked first: the schema is [`MANIFEST_SCHEMA`], `content.blob` names
    /// `content.sha256`, [`Manifest::extra`] reuses no field name, and the blob exists
    /// with `content.size` bytes (a manifest never points at a missing blob).
    ///
    /// # Errors
    /// [`StoreError::Rejected`] if a check fails; store failures.
    pub async fn put_manifest(&self, manifest: &Manifest) -> Result<ManifestWrite, StoreError> {
        let key = self.check_manifest(manifest).await?;
        let body = to_json(&key, manifest)?;
        match self.store.put_opts(&path(&key), body, PutMode::Create.into()).await {
            Ok(_) => Ok(ManifestWrite::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(ManifestWrite::AlreadyExists),
            Err(e) => Err(StoreError::from_backend(&key, e)),
        }
    }

    /// Appends a version to the manifest of a versioned item (a contact): `manifest` describes
    /// the new version (its `content` is the version's blob, its `archivedAt` when it was
    /// archived, its other members the item's newest state) and becomes the stored manifest,
    /// whose `versions` array keeps every earlier version followed by this one: `content`'s
    /// members, `archivedAt`, and `version` (caller-owned members of the entry, e.g. why it
    /// was removed). Nothing is ever taken out of `versions`.
    ///
    /// A version whose blob is that of the newest version already listed is not appended
    /// (`Ok(ManifestWrite::AlreadyExists)`): replaying a page after a kill appends nothing
    /// twice. Updates are conditional on the version read (see the `document`
    /// module), so concurrent writers never lose a version.
    ///
    /// # Errors
    /// As [`Archive::put_manifest`]; [`StoreError::Corrupt`] for a stored manifest that is not
    /// one of this item; [`StoreError::Precondition`] when other writers kept winning.
    pub async fn append_version(
        &self,
        manifest: &Manifest,
        version: serde_json::Map<String, Value>,
    ) -> Result<ManifestWrite, StoreError> {
        let key = self.check_manifest(manifest).await?;
        if manifest.extra.contains_key(VERSIONS) {
            return Err(StoreError::Rejected {
                key,
                reason: format!("extra member {VERSIONS:?} is kept by the store"),
            });
        }
        let mut entry = match serde_json::to_value(&manifest.content) {
            Ok(Value::Object(entry)) => entry,
            _ => serde_json::Map::new(),
        };
        entry.insert(
            "archivedAt".into(),
            serde_json::to_value(manifest.archived_at).unwrap_or(Value::Null),
        );
        entry.extend(version);
        let entry = Value::Object(entry);
        let written = self
            .update_document(&key, "a manifest", |stored: Option<Manifest>| {
                let mut versions = match &stored {
                    Some(stored) => {
                        if stored.id != manifest.id || stored.organizer_id != manifest.organizer_id {
                            return Err(StoreError::corrupt(&key, "a manifest of another item"));
                        }
                        match stored.extra.get(VERSIONS) {
                            Some(Value::Array(versions)) => versions.clone(),
                            _ => return Err(StoreError::corrupt(&key, format!("no {VERSIONS:?} array"))),
                        }
                    }
                    None => Vec::new(),
                };
                let newest = versions.last().and_then(|v| v.get("sha256")).and_then(Value::as_str);
                if newest == Some(manifest.content.sha256.to_hex().as_str()) {
                    return Ok(None);
                }
                versions.push(entry.clone());
                let mut next = manifest.clone();
                next.extra.insert(VERSIONS.into(), Value::Array(versions));
                Ok(Some(next))
            })
            .await?;
        Ok(match written {
            Some(_) => ManifestWrite::Created,
            None => ManifestWrite::AlreadyExists,
        })
    }

    /// The checks every manifest passes before it is written; returns its key.
    async fn check_manifest(&self, manifest: &Manifest) -> Result<String, StoreError> {
        let kind = Kind::of_manifest(&manifest.kind).ok_or_else(|| StoreError::Rejected {
            key: layout::manifest_key(&manifest.organizer_id, &manifest.id),
            reason: format!("unknown kind {:?}", manifest.kind),
        })?;
        let key = layout::manifest_key_of(kind, &manifest.organizer_id, &manifest.id);
        let rejected = |reason: String| StoreError::Rejected {
            key: key.clone(),
            reason,
        };
        if manifest.schema != MANIFEST_SCHEMA {
            return Err(rejected(format!(
                "schema is {:?}, expected {MANIFEST_SCHEMA:?}",
                manifest.schema
            )));
        }
        let blob = layout::blob_key(&manifest.content.sha256);
        if manifest.content.blob != blob {
            return Err(rejected(format!(
                "content.blob is {:?}, expected {blob:?}",
                manifest.content.blob
            )));
        }
        if let Some(name) = MANIFEST_RESERVED
            .iter()
            .find(|name| manifest.extra.contains_key(**name))
        {
            return Err(rejected(format!(
                "extra member {name:?} collides with a manifest field"
            )));
        }
        match self.blob_size(&manifest.content.sha256).await? {
            Some(size) if size == manifest.content.size => {}
            Some(size) => {
                return Err(rejected(format!(
                    "blob {blob} is {size} bytes, manifest says {}",
                    manifest.content.size
                )));
            }
            None => return Err(rejected(format!("blob {blob} does not exist"))),
        }
        // Every other blob the manifest names (a transcript's `metadata`) must be there too.
        for (name, value) in &manifest.extra {
            let Ok(other) = serde_json::from_value::<crate::ContentRef>(value.clone()) else {
                continue;
            };
            if other.blob != layout::blob_key(&other.sha256) {
                return Err(rejected(format!("{name}.blob does not name {name}.sha256")));
            }
            if self.blob_size(&other.sha256).await? != Some(other.size) {
                return Err(rejected(format!(
                    "blob {} of {name} is missing or not {} bytes",
                    other.blob, other.size
                )));
            }
        }
        Ok(key)
    }

    /// Reads the recording's manifest, or `None` if there is none.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it is not a valid manifest of that recording; store
    /// failures.
    pub async fn get_manifest(
        &self,
        organizer: &OrganizerId,
        recording_id: &str,
    ) -> Result<Option<Manifest>, StoreError> {
        let key = layout::manifest_key(organizer, recording_id);
        match self.get_bytes(&key).await? {
            Some(bytes) => parse_manifest(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every manifest of `kind` of `organizer`, in no particular order.
    ///
    /// # Errors
    /// Listing or read failures, and [`StoreError::Corrupt`] for an object that is not a
    /// manifest.
    pub fn manifests_of(&self, kind: Kind, organizer: &OrganizerId) -> BoxStream<'_, Result<Manifest, StoreError>> {
        let prefix = format!("manifests/{kind}/{organizer}");
        self.store
            .list(Some(&path(&prefix)))
            .map(move |item| {
                let prefix = prefix.clone();
                async move {
                    let meta = item.map_err(|e| StoreError::from_backend(&prefix, e))?;
                    let key = meta.location.to_string();
                    match self.get_bytes(&key).await? {
                        Some(bytes) => parse_manifest(&key, &bytes).map(Some),
                        // Listed, then gone.
                        None => Ok(None),
                    }
                }
            })
            .buffered(LIST_FETCH_CONCURRENCY)
            .try_filter_map(|m| async move { Ok(m) })
            .boxed()
    }

    /// Every manifest, in no particular order, as `(key, manifest)`. The outer error is
    /// a listing or read failure; the inner one ([`StoreError::Corrupt`]) an object
    /// under `manifests/recordings/` that is not a valid manifest stored under its
    /// proper key.
    #[allow(clippy::type_complexity)] // the signature is the documented contract
    pub fn list_manifests(&self) -> BoxStream<'_, Result<(String, Result<Manifest, StoreError>), StoreError>> {
        self.store
            .list(Some(&path(layout::MANIFESTS)))
            .map(move |item| async move {
                let meta = item.map_err(|e| StoreError::from_backend(layout::MANIFESTS, e))?;
                let key = meta.location.to_string();
                let bytes = self
                    .store
                    .get(&meta.location)
                    .await
                    .map_err(|e| StoreError::from_backend(&key, e))?
                    .bytes()
                    .await
                    .map_err(|e| StoreError::from_backend(&key, e))?;
                let manifest = parse_manifest(&key, &bytes);
                Ok((key, manifest))
            })
            .buffered(LIST_FETCH_CONCURRENCY)
            .boxed()
    }

    // ---------------------------------------------------------------- state

    /// Reads the organizer's state, or `None` if there is none yet.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it is not a valid state document of that organizer;
    /// store failures.
    pub async fn load_state(&self, kind: Kind, organizer: &OrganizerId) -> Result<Option<OrganizerState>, StoreError> {
        let key = layout::state_key(kind, organizer);
        match self.get_with_meta(&key).await? {
            Some((bytes, meta)) => {
                let state = parse_state(kind, &key, &bytes)?;
                self.remember_state_version(&key, meta.e_tag, meta.version);
                Ok(Some(state))
            }
            None => {
                self.forget_state_version(&key);
                Ok(None)
            }
        }
    }

    fn remember_state_version(&self, key: &str, e_tag: Option<String>, version: Option<String>) {
        if let Ok(mut versions) = self.state_versions.lock() {
            if e_tag.is_some() || version.is_some() {
                versions.insert(key.to_owned(), UpdateVersion { e_tag, version });
            } else {
                versions.remove(key);
            }
        }
    }

    /// Forgets the version of the organizer's state this archive last read or wrote, once
    /// its pass is over, so that a run over many organizers does not keep one per organizer.
    /// The next [`Archive::save_state`] of that state must follow a [`Archive::load_state`]:
    /// without a known version it is a create, refused when the state exists.
    pub fn forget_state(&self, kind: Kind, organizer: &OrganizerId) {
        self.forget_state_version(&layout::state_key(kind, organizer));
    }

    fn forget_state_version(&self, key: &str) {
        if let Ok(mut versions) = self.state_versions.lock() {
            versions.remove(key);
        }
    }

    /// Writes the organizer's state, replacing the previous one atomically (readers see
    /// the old or the new document, never a mix).
    ///
    /// # Errors
    /// [`StoreError::Rejected`] if the schema is not [`STATE_SCHEMA`]; store failures.
    pub async fn save_state(&self, state: &OrganizerState) -> Result<(), StoreError> {
        let key = layout::state_key(state.kind, &state.organizer_id);
        if state.schema != STATE_SCHEMA {
            return Err(StoreError::Rejected {
                reason: format!("schema is {:?}, expected {STATE_SCHEMA:?}", state.schema),
                key,
            });
        }
        let body = to_json(&key, state)?;
        // Replace exactly the version last read or written here (ETag match), or create the
        // document if there was none: a state changed by anyone else in between means another
        // run works on this organizer, and nothing is overwritten. Backends without
        // conditional updates (local disk) overwrite; the shard lease keeps writers apart there.
        let known = self.state_versions.lock().ok().and_then(|v| v.get(&key).cloned());
        let mode = match known {
            Some(version) => PutMode::Update(version),
            None => PutMode::Create,
        };
        let written = match self.store.put_opts(&path(&key), body.clone(), mode.into()).await {
            Ok(written) => written,
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                return Err(StoreError::Precondition { key });
            }
            Err(object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. }) => self
                .store
                .put_opts(&path(&key), body, PutMode::Overwrite.into())
                .await
                .map_err(|e| StoreError::from_backend(&key, e))?,
            Err(e) => return Err(StoreError::from_backend(&key, e)),
        };
        self.remember_state_version(&key, written.e_tag, written.version);
        Ok(())
    }

    /// Every organizer's state of `kind`, sorted by organizer id.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for the first checkpoint under `state/<kind>/` that is not
    /// a valid state document under its proper key; store failures.
    pub async fn list_states(&self, kind: Kind) -> Result<Vec<OrganizerState>, StoreError> {
        let prefix = layout::state_prefix(kind);
        let mut states: Vec<OrganizerState> = self
            .store
            .list(Some(&path(&prefix)))
            .try_filter(|meta| {
                let key = meta.location.to_string();
                futures::future::ready(matches!(layout::parse_state_key(kind, &key), Some((_, None))))
            })
            .map(|item| async move {
                let meta = item.map_err(|e| StoreError::from_backend(layout::state_prefix(kind), e))?;
                let key = meta.location.to_string();
                match self.get_bytes(&key).await? {
                    Some(bytes) => parse_state(kind, &key, &bytes).map(Some),
                    // Listed, then gone: nothing to report.
                    None => Ok(None),
                }
            })
            .buffered(LIST_FETCH_CONCURRENCY)
            .try_filter_map(|state| async move { Ok(state) })
            .try_collect()
            .await?;
        states.sort_by(|a, b| a.organizer_id.cmp(&b.organizer_id));
        Ok(states)
    }

    // ---------------------------------------------------------- run reports

    /// Writes a run report (create-only) as `runs/<YYYYMMDDTHHMMSS.mmmZ>-<shard>.json`, using
    /// `started` in UTC (fixed width: names sort as runs started). If that name is taken (two
    /// runs of a shard in one millisecond), a counter is added. Returns the key written.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if every candidate name is taken; store failures.
    pub async fn put_run_report(
        &self,
        shard: &ShardId,
        started: DateTime<Utc>,
        report: &serde_json::Value,
    ) -> Result<String, StoreError> {
        let mut key = layout::run_report_key(started, shard, 0);
        let body = to_json(&key, report)?;
        for attempt in 0..RUN_REPORT_ATTEMPTS {
            key = layout::run_report_key(started, shard, attempt);
            match self
                .store
                .put_opts(&path(&key), body.clone(), PutMode::Create.into())
                .await
            {
                Ok(_) => return Ok(key),
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(StoreError::from_backend(&key, e)),
            }
        }
        Err(StoreError::AlreadyExists { key })
    }

    /// The newest run report of each shard, by the start time and counter in its name (never
    /// by the objects' modification times, which a copied archive does not keep), sorted by
    /// shard. Names of earlier versions (whole seconds) are read too.
    ///
    /// # Errors
    /// Store failures while listing `runs/`.
    pub async fn newest_run_reports(&self) -> Result<Vec<RunReportRef>, StoreError> {
        let mut newest: std::collections::BTreeMap<String, RunReportRef> = Default::default();
        let mut listing = self.store.list(Some(&path(layout::RUNS)));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| StoreError::from_backend(layout::RUNS, e))?;
            let key = meta.location.to_string();
            let Some((started, shard, counter)) = layout::parse_run_report_key(&key) else {
                continue;
            };
            let candidate = RunReportRef {
                key,
                started,
                shard,
                counter,
            };
            match newest.get(candidate.shard.as_str()) {
                Some(known) if (known.started, known.counter) >= (candidate.started, candidate.counter) => {}
                _ => {
                    newest.insert(candidate.shard.as_str().to_owned(), candidate);
                }
            }
        }
        Ok(newest.into_values().collect())
    }

    /// The run report named by `report`, as written.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if it is gone, [`StoreError::Corrupt`] if it is not JSON;
    /// store failures.
    pub async fn read_run_report(&self, report: &RunReportRef) -> Result<serde_json::Value, StoreError> {
        let bytes = self.get_bytes(&report.key).await?.ok_or_else(|| StoreError::NotFound {
            key: report.key.clone(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::corrupt(&report.key, format!("not a run report: {e}")))
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

    /// Deletes `key`; absent is fine.
    pub(crate) async fn delete_quietly(&self, key: &str) -> Result<(), StoreError> {
        match self.store.delete(&path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::from_backend(key, e)),
        }
    }
}

/// Aborts a failed staging upload; failures are only logged (the caller reports the
/// original error, and `clean_staging` removes what remains).
async fn abort_upload(writer: WriteMultipart, key: &str) {
    if let Err(e) = writer.abort().await {
        tracing::warn!(key = %key, error = %e, "could not abort a staging upload; clean_staging will remove it");
    }
}

fn hash_file(mut file: std::fs::File) -> std::io::Result<(Sha256Digest, u64)> {
    use std::io::Read;
    let mut hasher = Sha256::new();
    // No bigger than the file: small blobs (most of a large archive) need no 1 MiB buffer each.
    let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let mut buf = vec![0u8; usize::try_from(len.clamp(1, 1024 * 1024)).unwrap_or(1024 * 1024)];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((Sha256Digest::from_bytes(hasher.finalize().into()), size))
}

/// Pretty JSON with a trailing newline.
pub(crate) fn to_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<PutPayload, StoreError> {
    let mut body = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Rejected {
        key: key.to_owned(),
        reason: format!("cannot serialize: {e}"),
    })?;
    body.push(b'\n');
    Ok(PutPayload::from(body))
}

fn parse_manifest(key: &str, bytes: &[u8]) -> Result<Manifest, StoreError> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(key, format!("not a manifest: {e}")))?;
    if manifest.schema != MANIFEST_SCHEMA {
        return Err(StoreError::corrupt(
            key,
            format!(
                "unsupported schema {:?} (this version reads {MANIFEST_SCHEMA:?})",
                manifest.schema
            ),
        ));
    }
    let expected = match Kind::of_manifest(&manifest.kind) {
        Some(kind) => layout::manifest_key_of(kind, &manifest.organizer_id, &manifest.id),
        None => return Err(StoreError::corrupt(key, format!("unknown kind {:?}", manifest.kind))),
    };
    if expected != key {
        return Err(StoreError::corrupt(
            key,
            format!("its id and organizerId belong at {expected}"),
        ));
    }
    let blob = layout::blob_key(&manifest.content.sha256);
    if manifest.content.blob != blob {
        return Err(StoreError::corrupt(
            key,
            format!("content.blob is {:?}, expected {blob:?}", manifest.content.blob),
        ));
    }
    Ok(manifest)
}

fn parse_state(kind: Kind, key: &str, bytes: &[u8]) -> Result<OrganizerState, StoreError> {
    let state: OrganizerState =
        serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(key, format!("not a state document: {e}")))?;
    if state.schema != STATE_SCHEMA {
        return Err(StoreError::corrupt(
            key,
            format!(
                "unsupported schema {:?} (this version reads {STATE_SCHEMA:?})",
                state.schema
            ),
        ));
    }
    let expected = layout::state_key(state.kind, &state.organizer_id);
    if expected != key || state.kind != kind {
        return Err(StoreError::corrupt(
            key,
            format!("its kind and organizerId belong at {expected}"),
        ));
    }
    Ok(state)
}

fn prefixed(store: Arc<dyn ObjectStore>, prefix: Path) -> Arc<dyn ObjectStore> {
    if prefix.is_root() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

fn reject_options(what: &str, options: &[(String, String)]) -> Result<(), StoreError> {
    match options.first() {
        Some((key, _)) => Err(StoreError::InvalidOption {
            key: key.clone(),
            reason: format!("{what} archives take no options"),
        }),
        None => Ok(()),
    }
}

fn open_local(url: &Url, display: String, options: &[(String, String)]) -> Result<Archive, StoreError> {
    reject_options("file://", options)?;
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: display.clone(),
        reason,
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a file:// URL takes no query or fragment".into()));
    }
    let dir = url
        .to_file_path()
        .map_err(|()| invalid("not an absolute local path (use file:///absolute/path)".into()))?;
    // A valid path whose directory cannot be made or reached (permissions, a read-only or
    // missing mount) is an unreachable store, not a malformed URL.
    let unreachable = |e| crate::local::io_error(dir.display().to_string(), e);
    std::fs::create_dir_all(&dir).map_err(unreachable)?;
    let root = std::fs::canonicalize(&dir).map_err(unreachable)?;
    let store = LocalFileSystem::new_with_prefix(&root)
        .map_err(|e| invalid(e.to_string()))?
        // No automatic removal of emptied directories: with fsync on, LocalFileSystem's
        // delete fsyncs the file's parent directory after unlinking, and a concurrent delete
        // that emptied and removed that directory makes the first delete fail ("unable to
        // sync data", seen with two blob commits at once). Emptied staging directories are
        // removed by `clean_staging`, the lease directory by `release_lease`.
        .with_automatic_cleanup(false)
        // Archives are the system of record: make every completed write durable.
        .with_fsync(true);
    Ok(Archive::build(Arc::new(store), display, Some(root)))
}

fn open_s3(url: &Url, display: String, options: &[(String, String)]) -> Result<Archive, StoreError> {
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    for (key, value) in
        parse_options::<AmazonS3ConfigKey>(options, "an S3 option (see object_store's AmazonS3ConfigKey)")?
    {
        builder = builder.with_config(key, value);
    }
    let invalid = |e: object_store::Error| StoreError::InvalidUrl {
        url: display.clone(),
        reason: e.to_string(),
    };
    let probe = builder.clone().with_retry(probe_retry()).build().map_err(invalid)?;
    let (store, http) = crate::multipart::build_s3(builder).map_err(invalid)?;
    let store = Arc::new(store);
    let prefix = url_prefix(url, &display)?;
    let uploads = crate::multipart::S3Uploads::new(Arc::clone(&store), http, prefix.clone());
    Ok(Archive::build(prefixed(store, prefix.clone()), display.clone(), None)
        .with_probe_store(prefixed(Arc::new(probe), prefix))
        .with_min_part_size(S3_MIN_PART_SIZE)
        .with_upload_parts(SPOOL_PART_SIZE, DEFAULT_PART_CONCURRENCY)
        .with_spool_dir(default_spool_dir())
        .with_s3_uploads(uploads))
}

fn open_azure(url: &Url, display: String, options: &[(String, String)]) -> Result<Archive, StoreError> {
    let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
    for (key, value) in parse_options::<AzureConfigKey>(options, "an Azure option (see object_store's AzureConfigKey)")?
    {
        builder = builder.with_config(key, value);
    }
    let invalid = |e: object_store::Error| StoreError::InvalidUrl {
        url: display.clone(),
        reason: e.to_string(),
    };
    let probe = builder.clone().with_retry(probe_retry()).build().map_err(invalid)?;
    let store = builder.build().map_err(invalid)?;
    let prefix = url_prefix(url, &display)?;
    Ok(
        Archive::build(prefixed(Arc::new(store), prefix.clone()), display.clone(), None)
            .with_probe_store(prefixed(Arc::new(probe), prefix))
            .with_upload_parts(SPOOL_PART_SIZE, DEFAULT_PART_CONCURRENCY)
            .with_spool_dir(default_spool_dir()),
    )
}

/// `<system temporary directory>/recarch-spool`.
fn default_spool_dir() -> PathBuf {
    std::env::temp_dir().join("recarch-spool")
}

/// Parses `[store.options]` keys (case-insensitive) into a backend's config keys; values are
/// never echoed in errors, as they may be credentials.
fn parse_options<K: std::str::FromStr>(
    options: &[(String, String)],
    what: &str,
) -> Result<Vec<(K, String)>, StoreError> {
    options
        .iter()
        .map(|(key, value)| {
            let parsed = key
                .to_ascii_lowercase()
                .parse()
                .map_err(|_| StoreError::InvalidOption {
                    key: key.clone(),
                    reason: format!("not {what}"),
                })?;
            Ok((parsed, value.clone()))
        })
        .collect()
}

/// The path inside the bucket/container that the archive lives under.
fn url_prefix(url: &Url, display: &str) -> Result<Path, StoreError> {
    ObjectStoreScheme::parse(url)
        .map(|(_, prefix)| prefix)
        .map_err(|e| StoreError::InvalidUrl {
            url: display.to_owned(),
            reason: e.to_string(),
        })
}

/// `url` without password (and without user name when a password came with it), query
/// or fragment.
fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Failures only happen for URLs that cannot carry credentials anyway.
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
    }
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// A URL (or something meant to be one) for messages: user info replaced by `[redacted]`, no
/// query or fragment (signatures, SAS tokens). Works on text that does not parse as a URL too.
pub fn redact_url(text: &str) -> String {
    let no_query = text.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = no_query.split_once("://") else {
        return no_query.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://[redacted]@{host}{path}"),
        None => no_query.to_owned(),
    }
}

/// Best effort for strings that do not parse as URLs: drop everything from `?`/`#` and
/// any `user:password@`.
fn redact_unparsed(raw: &str) -> String {
    let cut = raw.find(['?', '#']).map_or(raw, |i| &raw[..i]);
    match (cut.find("://"), cut.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://{}", &cut[..scheme_end], &cut[at + 1..])
        }
        _ => cut.to_owned(),
    }
}

/// A run report under `runs/`, known by its name: when the run started, its shard, and the
/// counter that tells apart runs of a shard started in the same millisecond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReportRef {
    /// The report's key.
    pub key: String,
    /// When the run started (from the name).
    pub started: DateTime<Utc>,
    /// The run's shard.
    pub shard: ShardId,
    /// 0, or the counter added to the name.
    pub counter: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_url_strips_credentials_and_query() {
        let url = Url::parse("s3://user:secret@bucket/prefix?sig=abc#frag").expect("valid");
        assert_eq!(display_url(&url), "s3://bucket/prefix");
        assert_eq!(
            redact_unparsed("s3://user:secret@bu cket/prefix?sig=abc"),
            "s3://bu cket/prefix"
        );
    }

    #[test]
    fn open_rejects_bad_urls_and_options() {
        assert!(matches!(
            Archive::open("ftp://host/x", &[]),
            Err(StoreError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Archive::open("not a url", &[]),
            Err(StoreError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Archive::open("memory://", &[("aws_region".into(), "x".into())]),
            Err(StoreError::InvalidOption { .. })
        ));
        assert!(matches!(
            Archive::open(
                "s3://bucket/prefix",
                &[("no_such_option".into(), "secret-value".into())]
            ),
            Err(StoreError::InvalidOption { key, .. }) if key == "no_such_option"
        ));
        let err = Archive::open("file://remotehost/x", &[]).expect_err("remote host");
        assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err}");
    }

    #[test]
    fn open_s3_and_azure_without_network() {
        let s3 = Archive::open(
            "s3://bucket/some/prefix?x=1",
            &[
                ("AWS_REGION".into(), "eu-west-1".into()),
                ("aws_access_key_id".into(), "AKIDEXAMPLE".into()),
                ("aws_secret_access_key".into(), "secret".into()),
            ],
        )
        .expect("s3 archive");
        assert_eq!(s3.display_url(), "s3://bucket/some/prefix");
        let az = Archive::open(
            "az://container/prefix",
            &[
                ("azure_storage_account_name".into(), "acct".into()),
                ("azure_storage_account_key".into(), "a2V5".into()),
            ],
        )
        .expect("azure archive");
        assert_eq!(az.display_url(), "az://container/prefix");
        assert!(!format!("{az:?}").contains("a2V5"));

        assert_eq!(s3.staged_uploads_per_download(), 1);
        assert_eq!(az.staged_uploads_per_download(), 1);

        // S3 parts are never below 5 MiB; other backends take what is asked.
        assert_eq!(s3.part_size(), SPOOL_PART_SIZE);
        assert_eq!(az.part_size(), SPOOL_PART_SIZE);
        assert_eq!(s3.with_upload_parts(64 * 1024, 2).part_size(), S3_MIN_PART_SIZE);
        assert_eq!(az.with_upload_parts(64 * 1024, 2).part_size(), 64 * 1024);
        let memory = Archive::open("memory://", &[]).expect("memory archive");
        assert_eq!(memory.with_upload_parts(0, 0).part_size(), 1);
        let dir = tempfile::tempdir().expect("tempdir");
        let url = url::Url::from_directory_path(dir.path()).expect("absolute path");
        let local = Archive::open(url.as_str(), &[]).expect("local archive");
        // Overlapping uploads pays only where finishing one is waiting, not sending.
        assert_eq!(local.staged_uploads_per_download(), 2);
    }
}
