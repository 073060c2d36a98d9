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

use bytes::Bytes;
use chrono::Utc;
use futures::{Stream, StreamExt};
use object_store::{ObjectStoreExt as _, PutMode, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

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

/// The spool file and the hash of what was written to it, moved between the async side
/// and the blocking pool.
struct Sink {
    file: std::fs::File,
    hasher: Sha256,
}

impl Sink {
    /// Hashes and writes one batch (on a blocking-pool thread: hashing is most of the CPU
    /// a download costs, and there it runs beside the runtime's workers).
    fn write(&mut self, batch: &[Bytes]) -> std::io::Result<()> {
        for chunk in batch {
            self.hasher.update(chunk);
            self.file.write_all(chunk)?;
        }
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

/// Writes `body` to a fresh file under `<root>/<shard>/`, hashing it; the file is removed
/// again on any failure. With [`Durability::Sync`] the file is fsynced before this returns.
pub(crate) async fn spool<S, E>(
    root: &Path,
    shard: &ShardId,
    mut body: S,
    durability: Durability,
) -> Result<(PathBuf, u64, Sha256Digest), StageError<E>>
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
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| failed(&dir.display().to_string(), e))?;
    let file_path = dir.join(format!(
        "{}-{:032x}.part",
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        fastrand::u128(..)
    ));
    let shown = file_path.display().to_string();
    let file = tokio::fs::File::create(&file_path)
        .await
        .map_err(|e| failed(&shown, e))?
        .into_std()
        .await;
    let mut writer = Writer::Idle(Sink {
        file,
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
            writer = Writer::Busy(tokio::task::spawn_blocking(move || sink.write(&batch).map(|()| sink)));
            if ended {
                return writer.ready().await.map_err(|e| failed(&shown, e).into());
            }
        }
    }
    .await;
    let result = match (result, durability) {
        (Ok(sink), Durability::Sync) => {
            Writer::Busy(tokio::task::spawn_blocking(move || sink.file.sync_all().map(|()| sink)))
                .ready()
                .await
                .map_err(|e| failed(&shown, e).into())
        }
        (result, _) => result,
    };
    match result {
        Ok(sink) => Ok((file_path, size, Sha256Digest::from_bytes(sink.hasher.finalize().into()))),
        Err(e) => {
            let _ = tokio::fs::remove_file(&file_path).await;
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
        let location = path(&key);
        let shown = file.display().to_string();
        let reader = std::fs::File::open(file).map_err(|e| io_error(&shown, e))?;
        let on_disk = reader.metadata().map_err(|e| io_error(&shown, e))?.len();
        check_size(&shown, on_disk, size)?;
        let part_size = part_size_for(self.part_size, size);
        if size <= part_size as u64 {
            // One part: a create-only put, atomic, and never over an existing blob.
            let (_, bytes) = read_part(reader, usize::try_from(size).unwrap_or(part_size))
                .await
                .map_err(|e| io_error(&shown, e))?;
            check_size(&shown, bytes.len() as u64, size)?;
            let put = self
                .store
                .put_opts(&location, PutPayload::from(bytes), PutMode::Create.into())
                .await;
            return match put {
                Ok(_) => {
                    remove_spool_file(file).await;
                    Ok(BlobCommit { key, created: true })
                }
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    remove_spool_file(file).await;
                    let existing = self.head(&key).await?.map_or(size, |m| m.size);
                    self.existing_blob(key, existing, size)
                }
                Err(e) => Err(StoreError::from_backend(&key, e)),
            };
        }
        // Several parts: a multipart upload straight to the final name. The store makes it
        // visible only on completion; a concurrent run uploading the same digest writes the
        // same bytes, so whichever completes last changes nothing. On S3 an intent record under
        // the shard's prefix says the upload is under way until it has completed or been
        // aborted, so that the next run of the shard aborts it if this process dies first (see
        // the `multipart` module).
        let shard = spool_shard(file)?;
        let intent = self.record_upload_intent(&shard, digest, size).await?;
        // If starting the upload fails, the record stays: the request may have reached the store.
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(|e| StoreError::from_backend(&key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        let mut reader = reader;
        let mut sent = 0u64;
        let failure = loop {
            // One part at a time: the next is read from the spool file only once the last
            // has been sent. Reading a part from a local file (usually still in the page
            // cache) takes milliseconds where sending it takes far longer, so a part read
            // ahead would save little time and cost a part size of memory per upload
            // (measured at concurrency 8 on Azurite, peak RSS: five parts in flight 305-327
            // MiB, one in flight plus one read ahead 120-128 MiB, one 104 MiB).
            if let Err(e) = writer.wait_for_capacity(0).await {
                break StoreError::from_backend(&key, e);
            }
            if sent == size {
                match writer.finish().await {
                    Ok(_) => {
                        self.forget_upload_intent(intent).await;
                        remove_spool_file(file).await;
                        tracing::debug!(key = %key, size, "blob uploaded from the spool");
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
                            remove_spool_file(file).await;
                            return self.existing_blob(key, existing.size, size);
                        }
                        return Err(StoreError::from_backend(&key, e));
                    }
                }
            }
            // Exactly what is left, up to a part: the last part's buffer is no larger than
            // the part, and no buffer is allocated only to find the end of the file.
            let want = usize::try_from(size - sent).map_or(part_size, |left| left.min(part_size));
            let (file_back, part) = match read_part(reader, want).await {
                Ok(read) => read,
                Err(e) => break io_error(&shown, e),
            };
            reader = file_back;
            if part.len() < want {
                break size_error(&shown, sent + part.len() as u64, size);
            }
            sent += want as u64;
            writer.put(Bytes::from(part));
        };
        match writer.abort().await {
            Ok(()) => self.forget_upload_intent(intent).await,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "cannot abort a failed multipart upload; the next run of the shard will");
            }
        }
        Err(failure)
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
        let (file, size, digest) = spool(dir.path(), &shard, body, Durability::Sync)
            .await
            .expect("spooled");
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
        let failed = spool(dir.path(), &shard, body, Durability::Scratch).await;
        assert!(matches!(failed, Err(StageError::Body(_))));
        let left: Vec<_> = std::fs::read_dir(shard_dir(dir.path(), &shard))
            .expect("shard dir")
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
