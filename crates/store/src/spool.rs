//! The spool: how a blob reaches S3 or Azure with its bytes sent once, under its final name.
//!
//! A content-addressed blob's name is known only once every byte is hashed, and object stores
//! cannot rename: staging the upload in the store and copying it to `blobs/sha256/<hex>`
//! sends every byte twice (once up, once server-side) and, on S3, cannot commit a blob over
//! 5 GiB (one CopyObject), while on Azure a copy may still be pending when its source is
//! deleted. So on those stores a download is written to a local spool file while it is hashed;
//! then, unless the blob already exists, the file is uploaded once to its final key: one
//! create-only put when it fits in one part, else a multipart upload (parts read from the
//! file, a bounded number in flight), which the store makes visible atomically on completion.
//!
//! Disk: one file per download being stored (`[fetch].concurrency` × the recording size at
//! most), under `<spool dir>/<shard>/`; a file is removed when its blob is committed or
//! discarded, and a killed run's files by the next run of the shard
//! ([`Archive::clean_staging`]). Memory: one part per upload ([`SPOOL_PART_SIZE`] unless
//! set otherwise), whatever the file's size: the next part is read from the file only once
//! the last has been sent.
//!
//! Local-disk archives write their blobs with the same writer, into
//! `<archive>/staging/<shard>/`, fsynced, then hard-linked into place (see the `local`
//! module). The writer gathers network chunks into batches of about 1 MiB and hashes and
//! writes each batch on the blocking pool, one batch in flight while the next arrives.
//!
//! [`SPOOL_PART_SIZE`]: crate::SPOOL_PART_SIZE

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use futures::{Stream, StreamExt};
use object_store::{ObjectStoreExt as _, PutMode, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::layout::{self, path};
use crate::{Archive, BlobCommit, Sha256Digest, ShardId, StageError, StoreError};

/// The spool directory of `shard` under `root`.
pub(crate) fn shard_dir(root: &Path, shard: &ShardId) -> PathBuf {
    root.join(shard.as_str())
}

fn io_error(what: impl Into<String>, e: std::io::Error) -> StoreError {
    StoreError::from_backend(
        what,
        object_store::Error::Generic {
            store: "spool",
            source: Box::new(e),
        },
    )
}

/// Bytes handed to the blocking pool at once. A network chunk is 16-64 KiB; hashing and
/// writing each one in a blocking task of its own would cost a thread hand-off (and a
/// wake-up) per chunk, so chunks are gathered, without copying, into batches this large.
const WRITE_BATCH: usize = 1 << 20;

/// Whether [`spool`] makes the file durable (fsync) before returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// The file is read back and uploaded, then removed: a crash loses nothing it held.
    Scratch,
    /// The file becomes the blob itself (a hard link on local disk): fsync it.
    Sync,
}

/// The memory a spooled archive may hold bodies in (see [`Archive::with_spool_memory`]): a
/// budget of bytes shared by its downloads, and the buffers that held bodies before, kept for
/// the next ones.
///
/// Buffers are reused because a fresh one costs more than its copy: a buffer of a batch's
/// size is above glibc's `mmap` threshold, so each new one was mapped, faulted in and zeroed
/// page by page by the kernel and unmapped again when freed (4 % of an S3 run's CPU samples,
/// as much as the copy itself).
///
/// [`Archive::with_spool_memory`]: crate::Archive::with_spool_memory
pub(crate) struct MemoryBudget {
    bytes: Arc<Semaphore>,
    buffers: std::sync::Mutex<Vec<Vec<u8>>>,
    /// How many buffers are kept at most: as many as the budget's worth of batches.
    kept: usize,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("available", &self.bytes.available_permits())
            .finish_non_exhaustive()
    }
}

impl MemoryBudget {
    /// A budget of `bytes`.
    pub(crate) fn new(bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            bytes: Arc::new(Semaphore::new(bytes)),
            buffers: std::sync::Mutex::default(),
            kept: bytes.div_ceil(WRITE_BATCH),
        })
    }

    /// Takes `n` more bytes of the budget, if it has them.
    fn try_take(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.bytes)
            .try_acquire_many_owned(u32::try_from(n).ok()?)
            .ok()
    }

    /// An empty buffer of at least `len` bytes' capacity, reused when one is kept.
    fn buffer(&self, len: usize) -> Vec<u8> {
        let reused = self.buffers.lock().ok().and_then(|mut kept| kept.pop());
        let mut buffer = reused.unwrap_or_default();
        buffer.clear();
        buffer.reserve(len);
        buffer
    }

    /// Keeps `buffer` for a later body, unless enough are kept (or it is oversized).
    fn give_back(&self, buffer: Vec<u8>) {
        if buffer.capacity() <= 4 * WRITE_BATCH {
            if let Ok(mut kept) = self.buffers.lock() {
                if kept.len() < self.kept {
                    kept.push(buffer);
                }
            }
        }
    }
}

/// A batch of a body held in memory; its buffer goes back to the budget's when dropped.
struct Pooled {
    buffer: Vec<u8>,
    budget: Arc<MemoryBudget>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.budget.give_back(std::mem::take(&mut self.buffer));
    }
}

/// What a body is held in while it streams through the spool.
enum Holding {
    /// Batches copied into buffers of the archive's memory budget.
    Memory(Vec<Bytes>, Arc<MemoryBudget>),
    /// The spool file.
    File(std::fs::File),
}

/// Where the spool holds a body and the hash of what streamed through, moved between the
/// async side and the blocking pool.
struct Sink {
    held: Holding,
    hasher: Sha256,
}

impl Sink {
    /// Hashes one batch and writes it to the file, or keeps it in memory (on a blocking-pool
    /// thread: hashing is most of the CPU a download costs, and there it runs beside the
    /// runtime's workers). With `spill`, what was held in memory first goes to a new file at
    /// that path (in a directory that may not exist yet), and so does the rest of the body.
    fn write(&mut self, batch: Vec<Bytes>, spill: Option<&Path>) -> std::io::Result<()> {
        if let Some(file) = spill {
            self.spill(file)?;
        }
        match &mut self.held {
            Holding::File(file) => {
                for chunk in &batch {
                    self.hasher.update(chunk);
                    file.write_all(chunk)?;
                }
            }
            // Copied into one buffer of the batch's size while each chunk is still in the
            // cache from hashing: the network's chunks are slices of read buffers that a
            // chunk kept alive would keep whole (up to twice the body's size), and one
            // allocation per batch is what the budget counts.
            Holding::Memory(held, budget) => {
                let mut buffer = budget.buffer(batch.iter().map(Bytes::len).sum());
                for chunk in &batch {
                    self.hasher.update(chunk);
                    buffer.extend_from_slice(chunk);
                }
                held.push(Bytes::from_owner(Pooled {
                    buffer,
                    budget: Arc::clone(budget),
                }));
            }
        }
        Ok(())
    }

    fn spill(&mut self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::File::create(path)?;
        if let Holding::Memory(held, _) = &self.held {
            for chunk in held {
                file.write_all(chunk)?;
            }
        }
        self.held = Holding::File(file);
        Ok(())
    }
}

/// The sink, idle or busy writing one batch (at most one in flight: the next batch is
/// gathered from the network meanwhile).
enum Writer {
    Idle(Sink),
    Busy(tokio::task::JoinHandle<std::io::Result<Sink>>),
}

impl Writer {
    async fn ready(self) -> std::io::Result<Sink> {
        match self {
            Writer::Idle(sink) => Ok(sink),
            Writer::Busy(job) => job.await.map_err(std::io::Error::other)?,
        }
    }
}

/// Gathers chunks from `body` until [`WRITE_BATCH`] bytes or the end; `true` at the end.
async fn next_batch<S, E>(body: &mut S) -> Result<(Vec<Bytes>, usize, bool), E>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut batch = Vec::new();
    let mut batched = 0;
    while batched < WRITE_BATCH {
        match body.next().await {
            Some(chunk) => {
                let chunk = chunk?;
                batched += chunk.len();
                batch.push(chunk);
            }
            None => return Ok((batch, batched, true)),
        }
    }
    Ok((batch, batched, false))
}

/// Where [`spool`] left a body.
#[derive(Debug)]
pub(crate) enum Spooled {
    /// In memory: the chunks as they arrived, and the share of the archive's memory budget
    /// they hold until they are dropped.
    Memory {
        /// The body.
        chunks: Vec<Bytes>,
        /// Returned to the budget when dropped.
        budget: OwnedSemaphorePermit,
    },
    /// In a file.
    File(PathBuf),
}

/// Streams `body` through, hashing it, into a fresh file under `<root>/<shard>/`, or into
/// memory while `memory` (a budget of bytes shared by the downloads of an archive) has room
/// for it: a body that outgrows what the budget can give is spilled to the file, and the
/// rest of it follows there. A file is removed again on any failure; with
/// [`Durability::Sync`] it is fsynced before this returns (pass no budget then: such a file
/// becomes the blob itself).
pub(crate) async fn spool<S, E>(
    root: &Path,
    shard: &ShardId,
    mut body: S,
    durability: Durability,
    memory: Option<&Arc<MemoryBudget>>,
) -> Result<(Spooled, u64, Sha256Digest), StageError<E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    let dir = shard_dir(root, shard);
    // A full disk names the spool (or archive) directory and what is free there; any other
    // I/O error names the file.
    let failed = |what: &str, e: std::io::Error| {
        if crate::error::is_storage_full(&e) {
            StoreError::disk_full(root, e)
        } else {
            io_error(what, e)
        }
    };
    let file_path = dir.join(format!(
        "{}-{:032x}.part",
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        fastrand::u128(..)
    ));
    let shown = file_path.display().to_string();
    // With a budget the body starts in memory (holding none of the budget yet); without one
    // the file is made now, so that a directory that cannot be written fails before a byte
    // is downloaded.
    let (held, mut budget) = match memory.and_then(|budget| Some((budget, budget.try_take(0)?))) {
        Some((memory, permit)) => (Holding::Memory(Vec::new(), Arc::clone(memory)), Some(permit)),
        None => {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| failed(&dir.display().to_string(), e))?;
            let file = tokio::fs::File::create(&file_path)
                .await
                .map_err(|e| failed(&shown, e))?
                .into_std()
                .await;
            (Holding::File(file), None)
        }
    };
    let mut writer = Writer::Idle(Sink {
        held,
        hasher: Sha256::new(),
    });
    let mut size = 0u64;
    let result: Result<Sink, StageError<E>> = async {
        loop {
            let (batch, batched, ended) = match next_batch(&mut body).await {
                Ok(next) => next,
                Err(e) => {
                    // Let the write in flight end before the file is removed.
                    let _ = writer.ready().await;
                    return Err(StageError::Body(e));
                }
            };
            let mut sink = writer.ready().await.map_err(|e| failed(&shown, e))?;
            if batch.is_empty() {
                return Ok(sink);
            }
            size += batched as u64;
            // Still in memory: take the batch's bytes from the budget, or spill (the body is
            // in memory exactly while it holds a share of the budget). What was held goes back
            // to the budget once it is written to the file.
            let mut released = None;
            if let (Some(held), Some(memory)) = (budget.as_mut(), memory) {
                match memory.try_take(batched) {
                    Some(more) => held.merge(more),
                    None => released = budget.take(),
                }
            }
            let spill = released.is_some().then(|| file_path.clone());
            if budget.is_some() {
                sink.write(batch, None).map_err(|e| failed(&shown, e))?;
                writer = Writer::Idle(sink);
                if ended {
                    return writer.ready().await.map_err(|e| failed(&shown, e).into());
                }
                continue;
            }
            writer = Writer::Busy(tokio::task::spawn_blocking(move || {
                let written = sink.write(batch, spill.as_deref());
                drop(released);
                written.map(|()| sink)
            }));
            if ended {
                return writer.ready().await.map_err(|e| failed(&shown, e).into());
            }
        }
    }
    .await;
    let in_file = budget.is_none();
    let result = match (result, durability) {
        (Ok(sink), Durability::Sync) if in_file => Writer::Busy(tokio::task::spawn_blocking(move || {
            if let Holding::File(file) = &sink.held {
                file.sync_all()?;
            }
            Ok(sink)
        }))
        .ready()
        .await
        .map_err(|e| failed(&shown, e).into()),
        (result, _) => result,
    };
    match result {
        Ok(sink) => {
            let digest = Sha256Digest::from_bytes(sink.hasher.finalize().into());
            let spooled = match (sink.held, budget) {
                (Holding::Memory(chunks, _), Some(budget)) => Spooled::Memory { chunks, budget },
                _ => Spooled::File(file_path),
            };
            Ok((spooled, size, digest))
        }
        Err(e) => {
            if in_file {
                let _ = tokio::fs::remove_file(&file_path).await;
            }
            Err(e)
        }
    }
}

/// Reads up to `len` bytes from `file` (its current position on) on the blocking pool;
/// fewer only at the end of the file.
async fn read_part(file: std::fs::File, len: usize) -> std::io::Result<(std::fs::File, Vec<u8>)> {
    // Allocated here, on a runtime worker, not on the blocking pool's thread: glibc gives
    // each thread that allocates an arena of its own, and freed part buffers kept in the
    // arenas of many blocking threads doubled peak RSS (Azurite, concurrency 8: 235 MiB
    // against 128). Not zeroed: `read_to_end` fills spare capacity (a memset of every part
    // was 2.8 % of the CPU of an S3 run).
    let mut part = Vec::with_capacity(len);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        (&mut file).take(len as u64).read_to_end(&mut part)?;
        Ok((file, part))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The most parts one upload may have (S3's limit; Azure allows 50 000 blocks).
const MAX_PARTS: u64 = 10_000;

/// The part size for an upload of `size` bytes: `configured`, or larger when that many
/// parts would exceed [`MAX_PARTS`] (from 78 GiB on with 8 MiB parts).
fn part_size_for(configured: usize, size: u64) -> usize {
    let needed = size.div_ceil(MAX_PARTS);
    usize::try_from(needed).map_or(usize::MAX, |needed| configured.max(needed))
}

impl Archive {
    /// Uploads a spooled file as the blob `digest` unless it exists; removes the file either
    /// way (on success or when the blob was there).
    pub(crate) async fn commit_spooled(
        &self,
        file: &Path,
        size: u64,
        digest: &Sha256Digest,
    ) -> Result<BlobCommit, StoreError> {
        let key = layout::blob_key(digest);
        if let Some(existing) = self.head(&key).await? {
            remove_spool_file(file).await;
            return self.existing_blob(key, existing.size, size);
        }
        let shown = file.display().to_string();
        let reader = std::fs::File::open(file).map_err(|e| io_error(&shown, e))?;
        let on_disk = reader.metadata().map_err(|e| io_error(&shown, e))?.len();
        check_size(&shown, on_disk, size)?;
        let part_size = part_size_for(self.part_size, size);
        if size <= part_size as u64 {
            let (_, bytes) = read_part(reader, usize::try_from(size).unwrap_or(part_size))
                .await
                .map_err(|e| io_error(&shown, e))?;
            check_size(&shown, bytes.len() as u64, size)?;
            let committed = self.put_blob_once(key, PutPayload::from(bytes), size, digest).await?;
            remove_spool_file(file).await;
            return Ok(committed);
        }
        let committed = self
            .upload_in_parts(
                key,
                digest,
                size,
                part_size,
                &spool_shard(file)?,
                PartSource::File {
                    reader: Some(reader),
                    shown,
                },
            )
            .await?;
        remove_spool_file(file).await;
        Ok(committed)
    }

    /// Uploads `size` bytes from `source` as a multipart upload straight to the blob's key.
    /// The store makes it visible only on completion; a concurrent run uploading the same
    /// digest writes the same bytes, so whichever completes last changes nothing. On S3 an
    /// intent record under the shard's prefix says the upload is under way until it has
    /// completed or been aborted, so that the next run of the shard aborts it if this process
    /// dies first (see the `multipart` module).
    async fn upload_in_parts(
        &self,
        key: String,
        digest: &Sha256Digest,
        size: u64,
        part_size: usize,
        shard: &ShardId,
        mut source: PartSource,
    ) -> Result<BlobCommit, StoreError> {
        let location = path(&key);
        let intent = self.record_upload_intent(shard, digest, size).await?;
        // If starting the upload fails, the record stays: the request may have reached the store.
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(|e| StoreError::from_backend(&key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        // From a file, one part at a time: the next is read from the spool file only once the
        // last has been sent. Reading a part from a local file (usually still in the page
        // cache) takes milliseconds where sending it takes far longer, so a part read ahead
        // would save little time and cost a part size of memory per upload (measured at
        // concurrency 8 on Azurite, peak RSS: five parts in flight 305-327 MiB, one in flight
        // plus one read ahead 120-128 MiB, one 104 MiB). From memory the bytes are held
        // already: the configured number of parts in flight.
        let in_flight = match source {
            PartSource::File { .. } => 0,
            PartSource::Memory(_) => self.part_concurrency.saturating_sub(1),
        };
        let mut sent = 0u64;
        let failure = loop {
            if let Err(e) = writer.wait_for_capacity(in_flight).await {
                break StoreError::from_backend(&key, e);
            }
            if sent == size {
                match writer.finish().await {
                    Ok(_) => {
                        self.forget_upload_intent(intent).await;
                        tracing::debug!(key = %key, size, "blob uploaded in parts");
                        return Ok(BlobCommit { key, created: true });
                    }
                    Err(e) => {
                        // `finish` aborts the upload itself, but whether that worked is not
                        // told: the record stays for the shard's next cleanup. A concurrent
                        // upload of the same digest may have completed first: on Azure its
                        // commit discards our uncommitted blocks (InvalidBlockList). The bytes
                        // are the same either way, so a blob of the right size there now is
                        // this commit done.
                        if let Some(existing) = self.head(&key).await? {
                            return self.existing_blob(key, existing.size, size);
                        }
                        return Err(StoreError::from_backend(&key, e));
                    }
                }
            }
            // Exactly what is left, up to a part: the last part's buffer is no larger than
            // the part, and no buffer is allocated only to find the end of the file.
            let want = usize::try_from(size - sent).map_or(part_size, |left| left.min(part_size));
            match source.next(want, sent, size).await {
                Ok(bytes) => {
                    sent += bytes.len() as u64;
                    writer.put(bytes);
                }
                Err(e) => break e,
            }
        };
        match writer.abort().await {
            Ok(()) => self.forget_upload_intent(intent).await,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "cannot abort a failed multipart upload; the next run of the shard will");
            }
        }
        Err(failure)
    }

    /// Uploads a body the spool held in memory as the blob `digest` unless it exists: in one
    /// put where the backend takes the digest with it (S3) or the body fits one part, else in
    /// parts (a put of any size would have to finish within the store's limit on a request's
    /// time).
    pub(crate) async fn commit_in_memory(
        &self,
        shard: &ShardId,
        chunks: Vec<Bytes>,
        size: u64,
        digest: &Sha256Digest,
    ) -> Result<BlobCommit, StoreError> {
        let key = layout::blob_key(digest);
        if let Some(existing) = self.head(&key).await? {
            return self.existing_blob(key, existing.size, size);
        }
        let part_size = part_size_for(self.part_size, size);
        if self.extensions.takes_digest_with_put() || size <= part_size as u64 {
            return self
                .put_blob_once(key, chunks.into_iter().collect(), size, digest)
                .await;
        }
        let source = PartSource::Memory(chunks.into_iter());
        self.upload_in_parts(key, digest, size, part_size, shard, source).await
    }

    /// One create-only put of a whole blob: atomic, and never over an existing blob (one of
    /// the same name is checked for its size instead). Where the backend can hand the store
    /// the `digest` to check the bytes against (S3), it does, and no byte is hashed again.
    async fn put_blob_once(
        &self,
        key: String,
        payload: PutPayload,
        size: u64,
        digest: &Sha256Digest,
    ) -> Result<BlobCommit, StoreError> {
        let created = match self.extensions.put_with_digest(&key, payload.clone(), digest) {
            Some(put) => put.await?,
            None => match self.store.put_opts(&path(&key), payload, PutMode::Create.into()).await {
                Ok(_) => true,
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => false,
                Err(e) => return Err(StoreError::from_backend(&key, e)),
            },
        };
        if created {
            tracing::debug!(key = %key, size, "blob uploaded in one put");
            return Ok(BlobCommit { key, created: true });
        }
        let existing = self.head(&key).await?.map_or(size, |m| m.size);
        self.existing_blob(key, existing, size)
    }

    /// A blob of that name exists: fine if its size is `size`.
    pub(crate) fn existing_blob(&self, key: String, existing: u64, size: u64) -> Result<BlobCommit, StoreError> {
        if existing != size {
            return Err(StoreError::corrupt(
                key,
                format!(
                    "blob is {existing} bytes but its content is {size} bytes; verify it with hash_blob and delete it so a later run stores it again"
                ),
            ));
        }
        Ok(BlobCommit { key, created: false })
    }
}

fn check_size(file: &str, read: u64, expected: u64) -> Result<(), StoreError> {
    if read == expected {
        Ok(())
    } else {
        Err(size_error(file, read, expected))
    }
}

fn size_error(file: &str, read: u64, expected: u64) -> StoreError {
    StoreError::corrupt(
        file,
        format!("spool file holds {read} bytes, {expected} were written to it"),
    )
}

/// The shard a spool file belongs to: the name of its directory (see [`shard_dir`]).
fn spool_shard(file: &Path) -> Result<ShardId, StoreError> {
    file.parent()
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .and_then(|name| ShardId::parse(name).ok())
        .ok_or_else(|| {
            StoreError::corrupt(
                file.display().to_string(),
                "not a spool file: its directory is not named after a shard",
            )
        })
}

/// Where the parts of a multipart upload come from.
enum PartSource {
    /// A spool file, read one part at a time.
    File {
        /// `None` only while a part is being read.
        reader: Option<std::fs::File>,
        /// The file, for messages.
        shown: String,
    },
    /// A body held in memory, in the batches it was held in.
    Memory(std::vec::IntoIter<Bytes>),
}

impl PartSource {
    /// The next bytes: from a file exactly `want` (at `sent` of `size`), from memory the next
    /// batch (the upload cuts parts from them without copying).
    async fn next(&mut self, want: usize, sent: u64, size: u64) -> Result<Bytes, StoreError> {
        match self {
            PartSource::File { reader, shown } => {
                let file = reader
                    .take()
                    .ok_or_else(|| StoreError::corrupt(shown.as_str(), "a part read failed before"))?;
                let (file, part) = read_part(file, want).await.map_err(|e| io_error(shown.as_str(), e))?;
                *reader = Some(file);
                if part.len() < want {
                    return Err(size_error(shown, sent + part.len() as u64, size));
                }
                Ok(Bytes::from(part))
            }
            PartSource::Memory(chunks) => chunks
                .next()
                .ok_or_else(|| StoreError::corrupt("memory", format!("held {sent} bytes, {size} were counted"))),
        }
    }
}

/// Removes a spool file; a failure only leaves it for [`Archive::clean_staging`].
pub(crate) async fn remove_spool_file(file: &Path) {
    if let Err(e) = tokio::fs::remove_file(file).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(file = %file.display(), error = %e, "cannot remove a spool file; the next run of the shard will");
        }
    }
}

/// Removes every spool file of `shard` under `root`; returns how many.
pub(crate) async fn clean(root: &Path, shard: &ShardId) -> Result<usize, StoreError> {
    let dir = shard_dir(root, shard);
    let mut entries = match tokio::fs::read_dir(&dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error(dir.display().to_string(), e)),
    };
    let mut removed = 0;
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| io_error(dir.display().to_string(), e))?
    {
        match tokio::fs::remove_file(entry.path()).await {
            Ok(()) => {
                tracing::info!(file = %entry.path().display(), "removed a spool file of an interrupted run");
                removed += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(entry.path().display().to_string(), e)),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_only_past_the_part_limit() {
        const MIB: u64 = 1 << 20;
        let five = 5 * 1024 * 1024;
        assert_eq!(part_size_for(five, 0), five);
        assert_eq!(part_size_for(five, 32 * MIB), five);
        // 10 000 parts of 5 MiB hold 48.8 GiB; one byte more needs larger parts.
        assert_eq!(part_size_for(five, MAX_PARTS * 5 * MIB), five);
        assert_eq!(part_size_for(five, MAX_PARTS * 5 * MIB + 1), five + 1);
        for size in [100 * 1024 * MIB, 5 * 1024 * 1024 * MIB, u64::MAX / 2] {
            let part = part_size_for(five, size) as u64;
            assert!(part >= five as u64);
            assert!(size.div_ceil(part) <= MAX_PARTS, "{size} bytes in parts of {part}");
        }
    }

    #[tokio::test]
    async fn spooled_bytes_are_hashed_as_written_and_read_back_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shard = ShardId::parse("0-of-1").expect("shard");
        // Chunks of uneven sizes spanning several write batches.
        let chunks: Vec<Bytes> = (0..40u8)
            .map(|i| Bytes::from(vec![i; 70_001 + usize::from(i) * 313]))
            .collect();
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let body = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let (spooled, size, digest) = spool(dir.path(), &shard, body, Durability::Sync, None)
            .await
            .expect("spooled");
        let Spooled::File(file) = spooled else {
            panic!("without a budget a body goes to a file")
        };
        assert_eq!(size, all.len() as u64);
        assert_eq!(digest, Sha256Digest::from_bytes(Sha256::digest(&all).into()));
        assert_eq!(std::fs::read(&file).expect("spool file"), all);
        // Read back in parts of any size: exactly the bytes, the last part short.
        let mut reader = std::fs::File::open(&file).expect("open");
        let mut back = Vec::new();
        loop {
            let (next, part) = read_part(reader, 1_000_003).await.expect("read");
            reader = next;
            if part.is_empty() {
                break;
            }
            assert!(part.len() <= 1_000_003);
            back.extend_from_slice(&part);
        }
        assert_eq!(back, all);
    }

    #[tokio::test]
    async fn a_failing_body_leaves_no_spool_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shard = ShardId::parse("0-of-1").expect("shard");
        let body = futures::stream::iter(
            (0..3)
                .map(|_| Ok(Bytes::from(vec![7u8; 600_000])))
                .chain([Err(std::io::Error::other("connection reset"))]),
        );
        let failed = spool(dir.path(), &shard, body, Durability::Scratch, None).await;
        assert!(matches!(failed, Err(StageError::Body(_))));
        let left: Vec<_> = std::fs::read_dir(shard_dir(dir.path(), &shard))
            .expect("shard dir")
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    /// Chunks of uneven sizes, `total` bytes in all, and the bytes.
    fn uneven(total: usize) -> (Vec<Bytes>, Vec<u8>) {
        let all: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let mut chunks = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < total {
            let len = (50_001 + i * 7_919).min(total - at);
            chunks.push(Bytes::copy_from_slice(&all[at..at + len]));
            at += len;
            i += 1;
        }
        (chunks, all)
    }

    fn files_in(dir: &Path) -> Vec<PathBuf> {
        walk(dir)
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                found.extend(walk(&entry.path()));
            } else {
                found.push(entry.path());
            }
        }
        found
    }

    /// Spools `total` bytes in uneven chunks under `dir` with `budget`; returns what `spool`
    /// returned and the bytes.
    async fn spool_uneven(
        dir: &Path,
        budget: &Arc<MemoryBudget>,
        total: usize,
    ) -> (Spooled, u64, Sha256Digest, Vec<u8>) {
        let shard = ShardId::parse("0-of-1").expect("shard");
        let (chunks, all) = uneven(total);
        let body = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let (spooled, size, digest) = spool(dir, &shard, body, Durability::Scratch, Some(budget))
            .await
            .expect("spooled");
        (spooled, size, digest, all)
    }

    #[tokio::test]
    async fn a_body_within_the_budget_stays_in_memory_and_gives_its_share_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let budget = MemoryBudget::new(4 << 20);
        let (spooled, size, digest, all) = spool_uneven(dir.path(), &budget, 3 * WRITE_BATCH + 12_345).await;
        assert_eq!(size, all.len() as u64);
        assert_eq!(digest, Sha256Digest::of(&all));
        assert!(files_in(dir.path()).is_empty(), "no spool file");
        let Spooled::Memory { chunks, budget: share } = spooled else {
            panic!("the body fits the budget")
        };
        let held: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(held, all);
        assert_eq!(budget.bytes.available_permits(), (4 << 20) - all.len());
        drop(chunks);
        drop(share);
        assert_eq!(budget.bytes.available_permits(), 4 << 20);
        // The buffers are kept for the next body, and it is held exactly too.
        let kept = budget.buffers.lock().expect("lock").len();
        assert!(kept >= 3, "{kept} buffers kept");
        let (spooled, _, digest, again) = spool_uneven(dir.path(), &budget, WRITE_BATCH / 2).await;
        assert_eq!(digest, Sha256Digest::of(&again));
        let Spooled::Memory { chunks, .. } = spooled else {
            panic!("fits")
        };
        assert_eq!(
            chunks.iter().flat_map(|c| c.iter().copied()).collect::<Vec<u8>>(),
            again
        );
        assert_eq!(
            budget.buffers.lock().expect("lock").len(),
            kept - 1,
            "a kept buffer was reused"
        );
    }

    #[tokio::test]
    async fn a_body_that_outgrows_the_budget_goes_to_its_file_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let budget = MemoryBudget::new(2 * WRITE_BATCH);
        // Another body holds part of the budget meanwhile.
        let other = budget.try_take(WRITE_BATCH / 2).expect("room");
        let (spooled, size, digest, all) = spool_uneven(dir.path(), &budget, 5 * WRITE_BATCH + 777).await;
        assert_eq!(size, all.len() as u64);
        assert_eq!(digest, Sha256Digest::of(&all));
        let Spooled::File(file) = spooled else {
            panic!("the body outgrew the budget")
        };
        assert_eq!(
            std::fs::read(&file).expect("spool file"),
            all,
            "what was in memory, then the rest"
        );
        assert_eq!(files_in(dir.path()), vec![file]);
        // Its share went back when it spilled; the other body's is still taken.
        assert_eq!(budget.bytes.available_permits(), 2 * WRITE_BATCH - WRITE_BATCH / 2);
        drop(other);
    }

    #[tokio::test]
    async fn a_failing_body_leaves_no_file_and_no_budget_taken_in_memory_or_after_a_spill() {
        for (budget_bytes, spills) in [(8 * WRITE_BATCH, false), (WRITE_BATCH + WRITE_BATCH / 2, true)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let shard = ShardId::parse("0-of-1").expect("shard");
            let budget = MemoryBudget::new(budget_bytes);
            let (chunks, _) = uneven(3 * WRITE_BATCH);
            let body = futures::stream::iter(
                chunks
                    .into_iter()
                    .map(Ok)
                    .chain([Err(std::io::Error::other("connection reset"))]),
            );
            let failed = spool(dir.path(), &shard, body, Durability::Scratch, Some(&budget)).await;
            assert!(matches!(failed, Err(StageError::Body(_))), "spills: {spills}");
            assert!(
                files_in(dir.path()).is_empty(),
                "spills: {spills}: {:?}",
                files_in(dir.path())
            );
            assert_eq!(budget.bytes.available_permits(), budget_bytes, "spills: {spills}");
        }
    }
}
