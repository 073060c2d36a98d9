//! Archiving one recording: download while hashing, stage, commit the blob, then the manifest.
//!
//! The order is the "nothing lost" guarantee: the manifest is written only after its blob is
//! committed, and the caller checkpoints a page only after every item on it has come back from
//! [`archive_recording`].

use chrono::Utc;
use recarch_delta::CallRecording;
use recarch_delta::retry::RetryPolicy;
use recarch_fetch::{FetchError, Fetcher};
use recarch_store::{
    Archive, ContentRef, MANIFEST_SCHEMA, Manifest, ManifestWrite, OrganizerId, Sha256Digest, ShardId, StageError,
};
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Everything an item needs, shared by all items of a run.
#[derive(Debug, Clone)]
pub struct ItemContext {
    /// The archive.
    pub archive: Archive,
    /// Downloads (global concurrency bound inside).
    pub fetcher: Fetcher,
    /// This run's shard, for staging.
    pub shard: ShardId,
    /// Attempts and backoff per recording, for body failures (the same policy the fetcher's
    /// request-level retries use).
    pub retry: RetryPolicy,
    /// Uploads being staged at once, across all organizers. A download's slot in the fetcher
    /// is returned as soon as its body has arrived, so that the next download streams while
    /// this upload is flushed (fsync, multipart completion); these slots
    /// (`Archive::staged_uploads_per_download` per download slot) still bound how many
    /// uploads hold buffered parts at once, and so the memory. Closed, like the fetcher, when
    /// the run is stopping.
    pub staging_slots: Arc<Semaphore>,
}

/// What became of one item.
#[derive(Debug)]
pub enum ItemOutcome {
    /// Archived now.
    Archived {
        /// Bytes downloaded.
        bytes: u64,
        /// Whether a new blob was written (false: identical bytes were already archived).
        new_blob: bool,
    },
    /// A manifest for this id already existed: nothing downloaded.
    AlreadyArchived,
    /// Failed; stays queued for the next run.
    Failed {
        /// Why, naming the host or value (never a token).
        reason: String,
    },
    /// Failed in a way that stops the whole run (credentials, billing, store).
    Fatal(anyhow::Error),
    /// Not downloaded because the run is stopping (its download and staging slots were
    /// closed before it got one). Neither archived nor failed: its page stays unfinished, so
    /// the checkpoint never passes it and the next run does it.
    Interrupted,
}

/// Archives `recording` (with `raw`, the item exactly as Graph sent it) for `organizer`.
pub async fn archive_recording(
    ctx: &ItemContext,
    organizer: &OrganizerId,
    recording: &CallRecording,
    raw: &Value,
) -> ItemOutcome {
    match ctx.archive.manifest_exists(organizer, &recording.id).await {
        Ok(true) => return ItemOutcome::AlreadyArchived,
        Ok(false) => {}
        Err(e) => return ItemOutcome::Fatal(anyhow::Error::new(e).context("cannot read the archive")),
    }
    let Some(content_url) = recording.recording_content_url.as_deref() else {
        return ItemOutcome::Failed {
            reason: "item has no recordingContentUrl".into(),
        };
    };
    // Refuse before any request: an off-origin URL must never be fetched at all.
    if let Err(e) = ctx.fetcher.check_url(content_url) {
        return ItemOutcome::Failed { reason: e.to_string() };
    }

    let mut attempt = 0;
    let (digest, size, media_type, staged) = loop {
        attempt += 1;
        match download_once(ctx, content_url).await {
            Ok(done) => break done,
            Err(Attempt::Fatal(e)) => return ItemOutcome::Fatal(e),
            Err(Attempt::Interrupted) => return ItemOutcome::Interrupted,
            Err(Attempt::Failed { reason, retryable }) => {
                if !retryable || attempt >= ctx.retry.max_attempts {
                    return ItemOutcome::Failed {
                        reason: format!("{reason} (after {attempt} attempts)"),
                    };
                }
                let wait = ctx.retry.delay(attempt, None);
                tracing::warn!(organizer = %organizer, id = %recording.id, attempt, %reason, "download failed, retrying");
                tokio::time::sleep(wait).await;
            }
        }
    };

    let commit = match ctx.archive.commit_blob(staged, &digest).await {
        Ok(c) => c,
        Err(e) => return ItemOutcome::Fatal(anyhow::Error::new(e).context("cannot commit blob")),
    };
    let manifest = build_manifest(organizer, recording, raw, digest, size, media_type, commit.key.clone());
    match ctx.archive.put_manifest(&manifest).await {
        Ok(ManifestWrite::Created) => {
            tracing::info!(organizer = %organizer, id = %recording.id, sha256 = %digest, size, new_blob = commit.created, "archived");
            ItemOutcome::Archived {
                bytes: size,
                new_blob: commit.created,
            }
        }
        // Another run (or a duplicate in this one) got there first: the same recording is
        // archived once, and the blob is shared by content.
        Ok(ManifestWrite::AlreadyExists) => ItemOutcome::AlreadyArchived,
        Err(e) => ItemOutcome::Fatal(anyhow::Error::new(e).context("cannot write manifest")),
    }
}

enum Attempt {
    Failed {
        reason: String,
        retryable: bool,
    },
    Fatal(anyhow::Error),
    /// The run is stopping: no slot is handed out any more.
    Interrupted,
}

/// One download into staging; on success the staged object, its digest, size and media type.
async fn download_once(
    ctx: &ItemContext,
    url: &str,
) -> Result<(Sha256Digest, u64, String, recarch_store::Staged), Attempt> {
    // Held until the upload is staged (flushed and complete), after the download's own slot.
    // Acquiring fails only once the slots are closed: the run is stopping.
    let Ok(_staging) = ctx.staging_slots.acquire().await else {
        return Err(Attempt::Interrupted);
    };
    let mut download = ctx.fetcher.open(url).await.map_err(classify)?;
    let media_type = download.media_type().unwrap_or("application/octet-stream").to_owned();
    let staged = match ctx.archive.stage(&ctx.shard, &mut download).await {
        Ok(staged) => staged,
        Err(StageError::Body(e)) => return Err(classify(e)),
        Err(StageError::Store(e)) => {
            return Err(Attempt::Fatal(
                anyhow::Error::new(e).context("cannot write to the archive"),
            ));
        }
    };
    match download.finish() {
        Ok(fetched) => {
            if fetched.size != staged.size() {
                let staged_size = staged.size();
                let _ = ctx.archive.discard(staged).await;
                return Err(Attempt::Failed {
                    reason: format!("staged {staged_size} bytes but received {}", fetched.size),
                    retryable: true,
                });
            }
            // The store hashed the bytes it staged while they streamed through: that digest
            // names the blob. Where the fetcher hashed too (a second, independent hash of the
            // same bytes), the two must agree; they can only differ through a bug.
            let digest = staged.digest();
            if let Some(wire) = fetched.sha256.map(Sha256Digest::from_bytes) {
                if wire != digest {
                    let _ = ctx.archive.discard(staged).await;
                    return Err(Attempt::Fatal(anyhow::anyhow!(
                        "internal error: downloaded bytes hash to {wire} but staged bytes to {digest}"
                    )));
                }
            }
            Ok((digest, fetched.size, media_type, staged))
        }
        Err(e) => {
            let _ = ctx.archive.discard(staged).await;
            Err(classify(e))
        }
    }
}

fn classify(e: FetchError) -> Attempt {
    if matches!(e, FetchError::Closed) {
        return Attempt::Interrupted;
    }
    if let FetchError::Graph(inner) = &e {
        if inner.is_fatal() {
            return Attempt::Fatal(anyhow::Error::new(e));
        }
    }
    Attempt::Failed {
        retryable: e.is_retryable(),
        reason: error_chain(&e),
    }
}

/// An error and its sources on one line, `a: b: c`, skipping a source whose text the line
/// already holds (backend errors often repeat their source in their own message).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The manifest of SPEC.md: typed envelope, plus `meetingId`, `createdDateTime` and the item
/// exactly as Graph returned it under `graph`.
pub fn build_manifest(
    organizer: &OrganizerId,
    recording: &CallRecording,
    raw: &Value,
    digest: Sha256Digest,
    size: u64,
    media_type: String,
    blob: String,
) -> Manifest {
    let mut extra = Map::new();
    extra.insert(
        "meetingId".into(),
        recording.meeting_id.clone().map_or(Value::Null, Value::String),
    );
    extra.insert(
        "createdDateTime".into(),
        recording.created_date_time.clone().map_or(Value::Null, Value::String),
    );
    extra.insert("graph".into(), raw.clone());
    Manifest {
        schema: MANIFEST_SCHEMA.into(),
        kind: "callRecording".into(),
        id: recording.id.clone(),
        organizer_id: organizer.clone(),
        content: ContentRef {
            sha256: digest,
            size,
            media_type,
            blob,
        },
        archived_at: Utc::now(),
        extra,
    }
}
