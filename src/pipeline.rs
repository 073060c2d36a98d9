//! The item pipeline every kind shares: download a content URL while the store hashes and
//! stages it, commit the blob under its digest, then the kind writes its manifest.
//!
//! The order is the "nothing lost" guarantee: a manifest is written only after its blob is
//! committed, and the round checkpoints a page only after every item on it has come back
//! settled (archived, queued or dead-lettered).
//!
//! # Error policy
//!
//! Every failure is classified once, where it is understood (`class()` of the delta, fetch
//! and store errors, all reading `recarch_failure`): transient failures are retried here up
//! to `[fetch].max_attempts` times with backoff; a permanent one is not retried; a body that
//! failed its checks on every attempt counts as permanent. What still fails comes back as
//! [`ItemOutcome::Failed`] with its class, for the queue to record; only failures that stop
//! everything (refused credentials, 402) are [`ItemOutcome::Fatal`].

use recarch_delta::retry::RetryPolicy;
use recarch_failure::{FailureClass, error_chain};
use recarch_fetch::{FetchError, Fetcher};
use recarch_store::{
    Archive, BlobCommit, Container, Manifest, ManifestWrite, Sha256Digest, ShardId, StageError, StoreError,
};
use std::sync::Arc;

use crate::environment::{Environment, EnvironmentFault, InPipeline, Service, Verdict};
use tokio::sync::Semaphore;

/// Everything an item needs, shared by all items of a run.
#[derive(Clone)]
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
    /// Progress shown on a terminal (nothing otherwise).
    pub progress: Arc<dyn crate::progress::Progress>,
    /// Whether the items archived through this context come from the retry queue (their
    /// failures are judged once the organizer's new items were tried: see
    /// [`ItemOutcome::Deferred`]).
    pub retried: bool,
    /// Whether the environment (disk, store, content service, token endpoint) is failing
    /// rather than the items; the first fault stops new work (see `crate::environment`).
    pub environment: Arc<Environment>,
    /// The catalog entries of the manifests written, until the round writes them.
    pub catalog: Arc<crate::catalog::CatalogWriter>,
    /// Logs what is written, as the round's pages are settled.
    pub ledger: Arc<crate::ledger::Ledger>,
    /// The run's lookups of meeting subjects and organizer names (one per meeting and per
    /// organizer), and what items were archived without.
    pub names: Arc<crate::enrich::Names>,
    /// `[retention]`: what each manifest records of how long it is kept.
    pub retention: crate::config::RetentionConfig,
    /// The active legal holds, set on the store's objects of items archived that they
    /// cover (where the store keeps legal holds).
    pub holds: Arc<crate::holds::StoreHolds>,
}

impl ItemContext {
    /// Adds the `retention` member (`{mode, retainUntil}`) to a manifest about to be written,
    /// when retention is configured for its kind.
    pub fn with_retention(&self, manifest: &mut Manifest) {
        let Some(kind) = manifest.archive_kind() else {
            return;
        };
        if let Some(member) = self.retention.manifest_member(kind, manifest.archived_at) {
            manifest.extra.insert("retention".into(), member);
        }
    }

    /// The outcome of a store error on one item's objects: a full disk halts the run, a
    /// fatal error stops it, the rest is the item's failure (decided by `StoreFailure`).
    pub fn store_failed(&self, e: StoreError, what: &str) -> ItemOutcome {
        match StoreFailure::of(self, e, what, None) {
            StoreFailure::Stop(e) => ItemOutcome::Fatal(e),
            StoreFailure::Failed { class, reason, .. } => ItemOutcome::failed(class, reason),
        }
    }
}

/// What a store error on one item's objects means, decided in one place for every write of
/// the pipeline: a full disk halts the run (no attempt charged) and a fatal error stops it;
/// the rest is the item's failure, which counts towards a store outage when the store is down
/// or refuses writes as such (not when it refuses this one object: corrupt, mismatching).
enum StoreFailure {
    /// The run stops.
    Stop(anyhow::Error),
    /// The item failed.
    Failed {
        class: FailureClass,
        reason: String,
        /// Whether an outage of the store would explain it.
        outage_like: bool,
    },
}

impl StoreFailure {
    /// `what` says what was being written; `needed` is the item's size, when known (for a
    /// full disk's message).
    fn of(ctx: &ItemContext, e: StoreError, what: &str, needed: Option<u64>) -> StoreFailure {
        if let Some(fault) = EnvironmentFault::from_store(&e, needed, &ctx.archive) {
            return StoreFailure::Stop(ctx.environment.halt(fault));
        }
        match e.class() {
            FailureClass::Fatal => StoreFailure::Stop(anyhow::Error::new(e).context(what.to_owned())),
            class => StoreFailure::Failed {
                outage_like: class == FailureClass::Transient || matches!(e, StoreError::PermissionDenied { .. }),
                reason: format!("{what}: {}", error_chain(&e)),
                class,
            },
        }
    }
}

/// An item whose manifest is in the archive: the success of [`ItemOutcome`] and
/// [`crate::queue::Settled`] alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archived {
    /// Archived now.
    Now {
        /// Bytes downloaded.
        bytes: u64,
        /// Whether a new blob was written (false: identical bytes were already archived).
        new_blob: bool,
    },
    /// A manifest for this id already existed: nothing downloaded.
    Already,
}

/// What became of one item.
#[derive(Debug)]
pub enum ItemOutcome {
    /// Archived, now or before.
    Archived(Archived),
    /// Failed; the queue records it (retried next run, or dead-lettered).
    Failed {
        /// Transient or permanent (never fatal: that is [`ItemOutcome::Fatal`]).
        class: FailureClass,
        /// Why, naming the host or value (never a token).
        reason: String,
    },
    /// An item from the retry queue failed as an outage of `service` would make it fail,
    /// before anything else succeeded: not recorded yet; the organizer's pass records it or
    /// not once its new items were tried (`crate::environment::Outage::resolve_deferred`).
    Deferred {
        /// The class it is recorded with, if it is.
        class: FailureClass,
        /// Why.
        reason: String,
        /// The service it failed at.
        service: Service,
        /// When it began (`crate::environment::InPipeline::began`).
        began: u64,
    },
    /// Failed in a way that stops the whole run (credentials, billing, store).
    Fatal(anyhow::Error),
    /// Not downloaded because the run is stopping (its download and staging slots were
    /// closed before it got one). Neither archived nor failed: its page stays unfinished, so
    /// the checkpoint never passes it and the next run does it.
    Interrupted,
}

impl ItemOutcome {
    /// The outcome of a failure of class `class`: fatal ones stop the run, the rest is
    /// recorded for the queue.
    pub fn failed(class: FailureClass, reason: impl Into<String>) -> ItemOutcome {
        match class {
            FailureClass::Fatal => ItemOutcome::Fatal(anyhow::anyhow!(reason.into())),
            class => ItemOutcome::Failed {
                class,
                reason: reason.into(),
            },
        }
    }
}

/// A blob stored for an item.
#[derive(Debug, Clone)]
pub struct StoredBlob {
    /// SHA-256 of the bytes.
    pub digest: Sha256Digest,
    /// Number of bytes.
    pub size: u64,
    /// The media type the server announced (or `application/octet-stream`).
    pub media_type: String,
    /// The blob's key and whether this call created it.
    pub commit: BlobCommit,
}

/// The media type to record for content whose type the kind knows (`video/mp4` for a
/// recording): the server's, unless it said nothing specific (no `Content-Type`, or an
/// octet-stream, as the storage host behind a redirect often answers), then `known`.
pub fn media_type_or(served: &str, known: &str) -> String {
    let essence = served.split(';').next().unwrap_or_default().trim();
    if essence.is_empty()
        || essence.eq_ignore_ascii_case("application/octet-stream")
        || essence.eq_ignore_ascii_case("binary/octet-stream")
    {
        known.to_owned()
    } else {
        served.to_owned()
    }
}

/// Downloads `content_url` into a blob: retried within the run while the failure is
/// transient; a body that fails its checks on every attempt is a permanent failure.
///
/// A failure that the environment explains (see `crate::environment`) is never charged to
/// the item: a full disk halts the run at once, without downloading the same bytes again;
/// and an item that used up its attempts while nothing else succeeded either (the content
/// service or the store failing for everyone) halts it too. Either way the item comes back
/// [`ItemOutcome::Fatal`] (the run ends with exit 4) or, once the run is halted,
/// [`ItemOutcome::Interrupted`]; neither is recorded against it.
pub async fn store_content(ctx: &ItemContext, content_url: &str) -> Result<StoredBlob, ItemOutcome> {
    // Refuse before any request: an off-origin URL must never be fetched at all.
    if let Err(e) = ctx.fetcher.check_url(content_url) {
        return Err(ItemOutcome::failed(e.class(), e.to_string()));
    }
    let env = &ctx.environment;
    let item = env.outage.enter(ctx.retried);
    let mut attempt = 0;
    let mut every_attempt_a_bad_body = true;
    loop {
        attempt += 1;
        match download_once(ctx, content_url, &item).await {
            Ok(blob) => return Ok(blob),
            Err(Attempt::Fatal(e)) => return Err(ItemOutcome::Fatal(e)),
            Err(Attempt::Interrupted) => return Err(ItemOutcome::Interrupted),
            Err(Attempt::Failed {
                reason,
                class,
                bad_body,
                service,
                outage_like,
            }) => {
                every_attempt_a_bad_body &= bad_body;
                // Another item found the environment failing: stop here, uncharged.
                if env.is_halted() {
                    return Err(ItemOutcome::Interrupted);
                }
                // Twice an item's attempts failing in a row, over several items, with nothing
                // succeeding: the service is down; stop now rather than after every item's
                // retries.
                let window = u64::from(ctx.retry.max_attempts) * 2;
                if outage_like && env.outage.failing_everywhere(service, window) {
                    return Err(ItemOutcome::Fatal(env.halt(env.outage_fault(service, reason))));
                }
                let (class, reason) = if class != FailureClass::Transient {
                    (class, reason)
                } else if attempt < ctx.retry.max_attempts {
                    let wait = ctx.retry.delay(attempt, None);
                    tracing::warn!(attempt, %reason, "download failed, retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                } else if every_attempt_a_bad_body {
                    (
                        FailureClass::Permanent,
                        format!("{reason} (the body failed its checks on every attempt, {attempt} attempts)"),
                    )
                } else {
                    (
                        FailureClass::Transient,
                        format!("{reason} (still failing, {attempt} attempts)"),
                    )
                };
                // Failing as an outage would make it fail: the item's own failure only if
                // something else succeeded meanwhile.
                if outage_like {
                    match env
                        .outage
                        .verdict(&item, service, ctx.retried, || env.is_halted())
                        .await
                    {
                        Verdict::Charge => {}
                        Verdict::Halted => return Err(ItemOutcome::Interrupted),
                        Verdict::Environment => {
                            return Err(ItemOutcome::Fatal(env.halt(env.outage_fault(service, reason))));
                        }
                        Verdict::Defer => {
                            return Err(ItemOutcome::Deferred {
                                class,
                                reason,
                                service,
                                began: item.began,
                            });
                        }
                    }
                }
                return Err(ItemOutcome::failed(class, reason));
            }
        }
    }
}

/// Stores `bytes` (an item's own JSON, not a download) as a blob, through the same staging
/// and commit as downloads (durable before any manifest names it).
pub async fn store_bytes(ctx: &ItemContext, bytes: bytes::Bytes, media_type: &str) -> Result<StoredBlob, ItemOutcome> {
    let size = bytes.len() as u64;
    let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
    let staged = match ctx.archive.stage(&ctx.shard, body).await {
        Ok(staged) => staged,
        Err(StageError::Store(e)) => return Err(ctx.store_failed(e, "cannot stage the item")),
        Err(StageError::Body(never)) => match never {},
    };
    let digest = staged.digest();
    match ctx.archive.commit_blob(staged, &digest).await {
        Ok(commit) => {
            ctx.environment.outage.success(Service::Store);
            Ok(StoredBlob {
                digest,
                size,
                media_type: media_type.to_owned(),
                commit,
            })
        }
        Err(e) => Err(ctx.store_failed(e, "cannot commit the blob")),
    }
}

/// An item's entry in its meeting's or call's index (see [`indexed`]).
pub struct IndexRef<'a> {
    /// The manifest's `kind`.
    pub kind: &'a str,
    /// The Graph id.
    pub id: &'a str,
    /// The manifest's key.
    pub manifest: String,
    /// The meeting or call, when the item names one.
    pub container_id: Option<&'a str>,
    /// Graph's `contentCorrelationId`, when the item has one.
    pub content_correlation_id: Option<&'a str>,
    /// The names to record on the index, where it lacks them (see `crate::enrich`).
    pub names: recarch_store::IndexNames,
}

/// Completes an archived (or already archived) item by adding it to its meeting's or call's
/// index; any other outcome passes through. An item is archived only once it is in the
/// index, so a run killed in between adds it when the item comes round again.
pub async fn indexed(
    ctx: &ItemContext,
    organizer: &recarch_store::OrganizerId,
    outcome: ItemOutcome,
    container: Container,
    entry: IndexRef<'_>,
) -> ItemOutcome {
    if !matches!(outcome, ItemOutcome::Archived(_)) {
        return outcome;
    }
    let Some(id) = entry.container_id.filter(|m| !m.is_empty()) else {
        return outcome;
    };
    let index_entry = recarch_store::MeetingEntry {
        kind: entry.kind.to_owned(),
        id: entry.id.to_owned(),
        manifest: entry.manifest,
        content_correlation_id: entry.content_correlation_id.map(str::to_owned),
    };
    match ctx
        .archive
        .add_to_index_named(container, organizer, id, index_entry, &entry.names)
        .await
    {
        Ok(()) => outcome,
        Err(e) => ctx.store_failed(e, &format!("cannot add it to its {}'s index", container.noun())),
    }
}

/// Writes `manifest` (create-only, with its `retention` member when configured) after its
/// blobs: [`Archived::Now`] for a new manifest, [`Archived::Already`] when another run (or a
/// duplicate) got there first.
pub async fn put_manifest(ctx: &ItemContext, mut manifest: Manifest, bytes: u64, new_blob: bool) -> ItemOutcome {
    ctx.with_retention(&mut manifest);
    let manifest = &manifest;
    match ctx.archive.put_manifest(manifest).await {
        Ok(ManifestWrite::Created) => {
            if let Err(e) = ctx.holds.hold_new(&ctx.archive, manifest).await {
                return ctx.store_failed(e, "cannot set the legal hold of an active matter");
            }
            ctx.catalog.record(manifest);
            tracing::info!(organizer = %manifest.organizer_id, id = %manifest.id, kind = %manifest.kind, sha256 = %manifest.content.sha256, size = manifest.content.size, new_blob, "archived");
            ItemOutcome::Archived(Archived::Now { bytes, new_blob })
        }
        Ok(ManifestWrite::AlreadyExists) => ItemOutcome::Archived(Archived::Already),
        Err(e) => ctx.store_failed(e, "cannot write the manifest"),
    }
}

/// Aborts the staging task if the item is dropped (run shutting down past its grace).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Attempt {
    Failed {
        reason: String,
        class: FailureClass,
        /// The body failed its checks (cut short, too long, dropped).
        bad_body: bool,
        /// Where it failed.
        service: Service,
        /// Whether an outage of `service` would explain it (a transient failure, a store that
        /// refuses writes); only such failures count towards one.
        outage_like: bool,
    },
    Fatal(anyhow::Error),
    /// The run is stopping: no slot is handed out any more.
    Interrupted,
}

/// One download into staging, then the blob's commit. Every attempt tells the run's
/// [`Environment`] how the content service and the store fared.
async fn download_once(ctx: &ItemContext, url: &str, item: &InPipeline<'_>) -> Result<StoredBlob, Attempt> {
    let env = &ctx.environment;
    // Held until the blob is committed (the staged upload flushed and renamed, or the spooled
    // file uploaded), after the download's own slot has gone back.
    // Acquiring fails only once the slots are closed: the run is stopping.
    let Ok(_staging) = ctx.staging_slots.acquire().await else {
        return Err(Attempt::Interrupted);
    };
    let mut download = match ctx.fetcher.open(url).await {
        Ok(download) => download,
        Err(e) => return Err(content_failed(ctx, e, item)),
    };
    // The content service answered with the content: it works (a body cut later is this
    // download's failure, and a large body may stream for a long while).
    env.outage.success(Service::Content);
    let media_type = download.media_type().unwrap_or("application/octet-stream").to_owned();
    let needed = download.content_length();
    let shown = ctx.progress.download(needed);
    // Staging (hashing every byte, writing it) runs as a task of its own, so that the
    // downloads in flight hash on every core rather than all on the thread polling the round.
    let (archive, shard) = (ctx.archive.clone(), ctx.shard.clone());
    let staging = tokio::spawn(async move {
        let counted = futures::StreamExt::inspect(&mut download, |chunk| {
            if let Ok(chunk) = chunk {
                shown.advance(chunk.len() as u64);
            }
        });
        let staged = archive.stage(&shard, counted).await;
        (staged, download)
    });
    let abort = AbortOnDrop(staging.abort_handle());
    let (staged, download) = match staging.await {
        Ok(done) => done,
        Err(e) => return Err(Attempt::Fatal(anyhow::anyhow!("staging task failed: {e}"))),
    };
    drop(abort);
    let staged = match staged {
        Ok(staged) => staged,
        Err(StageError::Body(e)) => return Err(content_failed(ctx, e, item)),
        Err(StageError::Store(e)) => return Err(store_failed(ctx, e, "cannot stage the content", needed, item)),
    };
    match download.finish() {
        Ok(fetched) => {
            if fetched.size != staged.size() {
                let staged_size = staged.size();
                let _ = ctx.archive.discard(staged).await;
                return Err(Attempt::Failed {
                    reason: format!("staged {staged_size} bytes but received {}", fetched.size),
                    class: FailureClass::Transient,
                    bad_body: true,
                    service: Service::Content,
                    outage_like: false,
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
            // Committed while the staging slot is held: on S3 and Azure this is the upload
            // of the spooled file, whose buffered parts the slots bound.
            let commit = match ctx.archive.commit_blob(staged, &digest).await {
                Ok(commit) => commit,
                Err(e) => return Err(store_failed(ctx, e, "cannot commit the blob", Some(fetched.size), item)),
            };
            env.outage.success(Service::Store);
            Ok(StoredBlob {
                digest,
                size: fetched.size,
                media_type,
                commit,
            })
        }
        Err(e) => {
            let _ = ctx.archive.discard(staged).await;
            Err(content_failed(ctx, e, item))
        }
    }
}

/// A download that failed: the token endpoint failing halts the run (no item has a token of
/// its own); a transient failure counts towards a content outage.
fn content_failed(ctx: &ItemContext, e: FetchError, item: &InPipeline<'_>) -> Attempt {
    if matches!(e, FetchError::Closed) {
        return Attempt::Interrupted;
    }
    if let Some(fault) = EnvironmentFault::from_fetch(&e) {
        return Attempt::Fatal(ctx.environment.halt(fault));
    }
    match e.class() {
        FailureClass::Fatal => Attempt::Fatal(anyhow::Error::new(e)),
        class => {
            let outage_like = class == FailureClass::Transient;
            if outage_like {
                ctx.environment.outage.failure(Service::Content, item);
            }
            Attempt::Failed {
                bad_body: e.is_body_failure(),
                reason: error_chain(&e),
                class,
                service: Service::Content,
                outage_like,
            }
        }
    }
}

/// Staging or committing the blob failed (see [`StoreFailure`]; `needed`: the item's size,
/// when known).
fn store_failed(ctx: &ItemContext, e: StoreError, what: &str, needed: Option<u64>, item: &InPipeline<'_>) -> Attempt {
    match StoreFailure::of(ctx, e, what, needed) {
        StoreFailure::Stop(e) => Attempt::Fatal(e),
        StoreFailure::Failed {
            class,
            reason,
            outage_like,
        } => {
            if outage_like {
                ctx.environment.outage.failure(Service::Store, item);
            }
            Attempt::Failed {
                reason,
                class,
                bad_body: false,
                service: Service::Store,
                outage_like,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::media_type_or;

    #[test]
    fn a_known_media_type_stands_in_for_an_unspecific_one() {
        assert_eq!(media_type_or("video/mp4", "video/mp4"), "video/mp4");
        assert_eq!(media_type_or("video/webm", "video/mp4"), "video/webm");
        assert_eq!(media_type_or("application/octet-stream", "video/mp4"), "video/mp4");
        assert_eq!(media_type_or("Binary/Octet-Stream; x=1", "video/mp4"), "video/mp4");
        assert_eq!(media_type_or("", "video/mp4"), "video/mp4");
    }
}
