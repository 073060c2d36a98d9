//! Blobs: staging a body while hashing it, committing it under its digest, and what else
//! touches `blobs/sha256/` and `staging/`.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetResultPayload, ObjectStoreExt, WriteMultipart};
use recarch_failure::RetryPolicy;
use sha2::{Digest, Sha256};

use super::Backend;
use crate::layout::{self, path};
use crate::{Archive, OrganizerId, Sha256Digest, ShardId, StageError, StoreError};

/// How a create-only commit that lost to a blob not yet visible is retried: four attempts,
/// about 100, 200 and 400 ms apart.
fn commit_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        max_total: Duration::from_secs(10),
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
    /// Where the bytes are.
    held: Held,
    size: u64,
    digest: Sha256Digest,
}

/// Where a staged upload's bytes are, which decides how it becomes a blob (see [`Backend`]).
#[derive(Debug)]
enum Held {
    /// A file in the local archive's staging area, hard-linked to its blob name.
    Local {
        /// The archive's directory.
        root: PathBuf,
        /// The file.
        file: PathBuf,
    },
    /// A spool file, uploaded under its blob name.
    Spool(PathBuf),
    /// The body in memory (S3, Azure: see [`Archive::with_spool_memory`]), uploaded under
    /// its blob name; the budget share is returned when it is dropped.
    Memory {
        chunks: Vec<Bytes>,
        /// The shard staging it (for the intent record of an upload in parts).
        shard: ShardId,
        _budget: tokio::sync::OwnedSemaphorePermit,
    },
    /// The object at [`Staged::key`] in the store, renamed to its blob name.
    Object,
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

    /// The staging key (`staging/<shard>/…`), the spool file's path, or `memory` for a body
    /// held in memory.
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

impl Archive {
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
        if let Some((dir, durability, memory)) = self.backend.spool_target() {
            let (spooled, size, digest) = crate::spool::spool(&dir, shard, body, durability, memory).await?;
            let (key, held) = match spooled {
                crate::spool::Spooled::Memory { chunks, budget } => (
                    "memory".to_owned(),
                    Held::Memory {
                        chunks,
                        shard: shard.clone(),
                        _budget: budget,
                    },
                ),
                crate::spool::Spooled::File(file) => match (&self.backend, file.file_name()) {
                    // On local disk the file is in the store: name it by its key, as listings do.
                    (Backend::Local { root }, Some(name)) => (
                        layout::staging_file_key(shard, &name.to_string_lossy()),
                        Held::Local {
                            root: root.clone(),
                            file,
                        },
                    ),
                    _ => (file.display().to_string(), Held::Spool(file)),
                },
            };
            return Ok(Staged {
                key,
                held,
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
            held: Held::Object,
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
        match staged.held {
            Held::Local { ref root, ref file } => {
                return match crate::local::link_blob(root, file, &key).await? {
                    crate::local::Linked::Created => {
                        tracing::debug!(key = %key, size = staged.size, "blob created");
                        Ok(BlobCommit { key, created: true })
                    }
                    crate::local::Linked::Existed { size } => self.existing_blob(key, size, staged.size),
                };
            }
            Held::Spool(ref file) => return self.commit_spooled(file, staged.size, digest).await,
            Held::Memory { chunks, ref shard, .. } => {
                return self.commit_in_memory(shard, chunks, staged.size, digest).await;
            }
            Held::Object => {}
        }
        let from = path(&staged.key);
        let to = path(&key);
        let policy = commit_retry();
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
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
                    if !policy.wait_before_retry(attempt, started.elapsed(), None, |_| ()).await {
                        return Err(StoreError::from_backend(&key, e));
                    }
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
        match &staged.held {
            Held::Local { file, .. } | Held::Spool(file) => {
                crate::spool::remove_spool_file(file).await;
                Ok(())
            }
            Held::Memory { .. } => Ok(()),
            Held::Object => self.delete_quietly(&staged.key).await,
        }
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
        removed += match &self.backend {
            Backend::Local { root } => crate::local::sweep_staging(root.clone(), shard).await?,
            Backend::Spooled { dir, .. } => crate::spool::clean(dir, shard).await?,
            Backend::Multipart => 0,
        };
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
        if let Backend::Local { root } = &self.backend {
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

    /// Opens the blob named `digest` for reading; returns its key (for errors) and the read.
    async fn open_blob(&self, digest: &Sha256Digest) -> Result<(String, object_store::GetResult), StoreError> {
        let key = layout::blob_key(digest);
        let got = self
            .store
            .get(&path(&key))
            .await
            .map_err(|e| StoreError::from_backend(&key, e))?;
        Ok((key, got))
    }

    /// Reads the blob named `digest` back, hashing it as it streams; returns the actual
    /// digest and size (compare them with what is expected to verify the blob).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such blob; store failures.
    pub async fn hash_blob(&self, digest: &Sha256Digest) -> Result<(Sha256Digest, u64), StoreError> {
        let (key, got) = self.open_blob(digest).await?;
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

    /// The bytes of the blob named `digest`, as a stream of chunks, and its size as stored.
    /// Nothing is checked on the way: hash what you read (`recarch cat`, exports).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such blob; store failures (also as items of
    /// the stream, for a read that fails part way).
    pub async fn read_blob(
        &self,
        digest: &Sha256Digest,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, StoreError>>), StoreError> {
        let (key, got) = self.open_blob(digest).await?;
        let size = got.meta.size;
        let stream = got
            .into_stream()
            .map(move |chunk| chunk.map_err(|e| StoreError::from_backend(&key, e)))
            .boxed();
        Ok((size, stream))
    }

    /// Copies the blob named `digest` into `sink` on a blocking thread and returns the sink
    /// and the bytes copied. On local disk the file is read in 1 MiB reads; from an object
    /// store the chunks are handed over as they arrive (a few in flight), so memory stays
    /// flat for a blob of any size. Nothing is checked: hash in `sink` (exports).
    ///
    /// # Errors
    /// [`BlobCopyError::Read`] when the blob cannot be read ([`StoreError::NotFound`] if
    /// there is none), [`BlobCopyError::Write`] when `sink` fails.
    pub async fn copy_blob<W: std::io::Write + Send + 'static>(
        &self,
        digest: &Sha256Digest,
        mut sink: W,
    ) -> Result<(W, u64), BlobCopyError> {
        let (key, got) = self.open_blob(digest).await.map_err(BlobCopyError::Read)?;
        let join = |key: &str, e: tokio::task::JoinError| BlobCopyError::Read(StoreError::from_backend(key, e.into()));
        match got.payload {
            GetResultPayload::File(mut file, _) => {
                let copied = tokio::task::spawn_blocking(move || {
                    let size = read_file(
                        &mut file,
                        |chunk| sink.write_all(chunk).map_err(Copy::Write),
                        Copy::Read,
                    )?;
                    Ok((sink, size))
                })
                .await
                .map_err(|e| join(&key, e))?;
                copied.map_err(|e| match e {
                    Copy::Read(e) => BlobCopyError::Read(crate::local::io_error(&key, e)),
                    Copy::Write(e) => BlobCopyError::Write(e),
                })
            }
            GetResultPayload::Stream(mut stream) => {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
                let writer = tokio::task::spawn_blocking(move || {
                    let mut size = 0u64;
                    while let Some(chunk) = rx.blocking_recv() {
                        sink.write_all(&chunk)?;
                        size += chunk.len() as u64;
                    }
                    Ok::<_, std::io::Error>((sink, size))
                });
                let mut read = Ok(());
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        // The writer stopped (a write failed): its error is the one to report.
                        Ok(chunk) => {
                            if tx.send(chunk).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            read = Err(StoreError::from_backend(&key, e));
                            break;
                        }
                    }
                }
                drop(tx);
                let written = writer.await.map_err(|e| join(&key, e))?;
                read.map_err(BlobCopyError::Read)?;
                written.map_err(BlobCopyError::Write)
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
}

/// Why [`Archive::copy_blob`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobCopyError {
    /// The blob could not be read.
    #[error(transparent)]
    Read(StoreError),
    /// The sink failed.
    #[error("{0}")]
    Write(std::io::Error),
}

/// Which side of a local copy failed.
enum Copy {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Aborts a failed staging upload; failures are only logged (the caller reports the
/// original error, and `clean_staging` removes what remains).
async fn abort_upload(writer: WriteMultipart, key: &str) {
    if let Err(e) = writer.abort().await {
        tracing::warn!(key = %key, error = %e, "could not abort a staging upload; clean_staging will remove it");
    }
}

fn hash_file(mut file: std::fs::File) -> std::io::Result<(Sha256Digest, u64)> {
    let mut hasher = Sha256::new();
    let size = read_file(
        &mut file,
        |chunk| {
            hasher.update(chunk);
            Ok(())
        },
        |e| e,
    )?;
    Ok((Sha256Digest::from_bytes(hasher.finalize().into()), size))
}

/// Reads `file` to its end in reads of up to 1 MiB, handing each to `chunk`; returns the bytes
/// read. A read error becomes an `E` through `read_error`.
fn read_file<E>(
    file: &mut std::fs::File,
    mut chunk: impl FnMut(&[u8]) -> Result<(), E>,
    read_error: impl Fn(std::io::Error) -> E,
) -> Result<u64, E> {
    use std::io::Read;
    // No bigger than the file: small blobs (most of a large archive) need no 1 MiB buffer each.
    let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let mut buf = vec![0u8; usize::try_from(len.clamp(1, 1024 * 1024)).unwrap_or(1024 * 1024)];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        chunk(&buf[..n])?;
        size += n as u64;
    }
    Ok(size)
}
