//! `recarch run`: one archive pass over the organizers of a shard.
//!
//! Flow: open and probe the store → take the shard's lease → fetch a token (fails fast on bad
//! credentials) → per organizer, concurrently: retry the queue, then walk the delta round from
//! the saved checkpoint, downloading items with bounded concurrency while the next page is
//! fetched, and saving each page's link only once every item of it (and of every page before
//! it) is archived or queued → write the run report → release the lease.

use std::collections::{HashSet, VecDeque};
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use recarch_delta::auth::{ClientCredentials, ClientCredentialsConfig, TokenProvider, scope_for};
use recarch_delta::retry::RetryPolicy;
use recarch_delta::{
    CallRecording, Continuation, DeltaClient, DeltaError, DeltaItem, GraphHttp, PageRequest, resources,
};
use recarch_fetch::Fetcher;
use recarch_store::{Archive, Checkpoint, LinkKind, OrganizerId, OrganizerState, QueuedItem, ShardId, StoreError};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::archive::{ItemContext, ItemOutcome, archive_recording, error_chain};
use crate::config::{Config, read_secret};
use crate::exit::{Exit, ExitError};

/// How long a lease lasts without renewal; renewed every third of it.
const LEASE_TTL: Duration = Duration::from_secs(120);
/// How long in-flight downloads may run on after SIGTERM/SIGINT before they are abandoned.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
/// Full rounds restarted after 410 Gone within one run, per organizer, before giving up.
const MAX_RESYNCS: u32 = 3;
/// Pages fetched ahead of the oldest unfinished one.
const PAGES_AHEAD: usize = 3;
/// Items of one organizer in progress at once per download slot (`[fetch].concurrency`). An
/// item holds its download slot only while its body streams; the rest of it (finishing the
/// staged upload, committing the blob, writing the manifest) overlaps the next item's
/// download instead of leaving the slot idle. How many uploads may be staged at once (and
/// hold buffers) is the store's call: `Archive::staged_uploads_per_download`. Measured on
/// local disk: 2 is 15-20 % faster than 1; 3 and 4 are no faster than 2.
const ITEMS_PER_DOWNLOAD_SLOT: usize = 2;

/// Which part of the organizers this run covers.
#[derive(Debug, Clone, Copy)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// The shard's id in the store (`0-of-1`).
    pub fn id(&self) -> ShardId {
        ShardId::new(self.index, self.count)
    }

    /// Whether `organizer` belongs to this shard (stable: by SHA-256 of the id).
    pub fn owns(&self, organizer: &OrganizerId) -> bool {
        use sha2::Digest;
        let h = sha2::Sha256::digest(organizer.as_str().as_bytes());
        let n = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        n % u64::from(self.count) == u64::from(self.index)
    }
}

/// Counts of a run (and of each organizer).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Items seen in delta pages and the retry queue (after de-duplication within the run).
    pub discovered: u64,
    /// Archived by this run.
    pub archived: u64,
    /// Already archived earlier (manifest present): nothing downloaded.
    pub already_archived: u64,
    /// Repeated within this run's pages and skipped.
    pub duplicates: u64,
    /// `@removed` markers (recordings are kept: an archive does not forget).
    pub removed: u64,
    /// Failed and queued for the next run.
    pub failed: u64,
    /// Bytes downloaded and stored.
    pub bytes: u64,
    /// New blobs (the rest had identical bytes already).
    pub new_blobs: u64,
    /// Delta pages read.
    pub pages: u64,
    /// Full rounds restarted after 410 Gone.
    pub resyncs: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.discovered += o.discovered;
        self.archived += o.archived;
        self.already_archived += o.already_archived;
        self.duplicates += o.duplicates;
        self.removed += o.removed;
        self.failed += o.failed;
        self.bytes += o.bytes;
        self.new_blobs += o.new_blobs;
        self.pages += o.pages;
        self.resyncs += o.resyncs;
    }
}

/// One failed item, for the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The organizer.
    pub organizer_id: String,
    /// The Graph id (empty when the item had none).
    pub id: String,
    /// Why.
    pub reason: String,
}

/// The outcome of a run: what the report holds and what the summary prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// `recarch.run.v1`.
    pub schema: &'static str,
    /// The shard.
    pub shard: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Seconds.
    pub duration_secs: f64,
    /// Organizers of this shard.
    pub organizers: usize,
    /// Totals.
    #[serde(flatten)]
    pub counts: Counts,
    /// Bytes per second over the whole run.
    pub throughput_bytes_per_sec: f64,
    /// Items that failed (and are queued), or organizers that could not be walked.
    pub failures: Vec<Failure>,
    /// Whether SIGTERM/SIGINT cut the run short.
    pub interrupted: bool,
    /// The process exit code.
    pub exit_code: u8,
}

/// Runs one archive pass. Returns the report (its `exit_code` is 0 or 1), or an error carrying
/// exit code 2, 3 or 4.
pub async fn run(config: &Config, shard: Shard, shutdown: CancellationToken) -> Result<RunReport, ExitError> {
    let started_at = Utc::now();
    let started = Instant::now();
    let shard_id = shard.id();

    // Configuration first (exit 2), before touching anything.
    let secret = read_secret(&config.graph.secret_source).map_err(|e| ExitError::new(Exit::Config, e))?;
    let organizers: Vec<OrganizerId> = config
        .source
        .organizers
        .iter()
        .filter(|o| shard.owns(o))
        .cloned()
        .collect();

    let archive = open_archive(config)?;
    let unusable = |e: StoreError| {
        ExitError::new(
            Exit::Fatal,
            anyhow::Error::new(e)
                .context("the store is not usable; check [store].url, [store.options] and credentials"),
        )
    };
    let owner = format!("{}:{}:{:08x}", hostname(), std::process::id(), fastrand::u32(..));
    let mut lease = match archive.acquire_lease(&shard_id, &owner, LEASE_TTL).await {
        Ok(lease) => lease,
        Err(e @ StoreError::LeaseHeld { .. }) => return Err(ExitError::new(Exit::LeaseHeld, e)),
        Err(e) => {
            // Unreachable endpoint, wrong key, missing bucket: the probe names the URL, the
            // step and the server's own error more plainly than the lease write did.
            if let Err(probe) = archive.probe().await {
                return Err(unusable(probe));
            }
            return Err(ExitError::new(
                Exit::Fatal,
                anyhow::Error::new(e).context("cannot take the shard lease"),
            ));
        }
    };
    // Reachable and writable, and which guarantees the backend keeps; probe objects live in
    // this shard's staging area, so a run killed mid-probe leaves debris only where the next
    // run of the shard cleans up.
    match archive.probe_in(&shard_id).await {
        Ok(report) => {
            if report.leases_are_advisory() {
                tracing::warn!(store = archive.display_url(), %report, "the store ignores create-only writes: leases are advisory, so do not run the same shard twice at once");
            }
        }
        Err(e) => {
            let _ = archive.release_lease(lease).await;
            return Err(unusable(e));
        }
    }
    tracing::info!(shard = %shard_id, organizers = organizers.len(), store = archive.display_url(), "lease taken, starting run");

    let work = async {
        let reclaimed = archive
            .reclaim(&shard_id, &organizers)
            .await
            .map_err(|e| ExitError::new(Exit::Fatal, anyhow::Error::new(e).context("cannot clean staging")))?;
        if reclaimed > 0 {
            tracing::info!(reclaimed, "removed debris of an interrupted earlier run");
        }
        let graph = graph_clients(config, secret)?;
        // Fail fast, before any work, when the credentials are refused.
        graph.tokens.token().await.map_err(|e| ExitError::new(Exit::Fatal, e))?;
        let ctx = ItemContext {
            archive: archive.clone(),
            fetcher: graph.fetcher.clone(),
            shard: shard_id.clone(),
            retry: graph.delta.http().policy().clone(),
            staging_slots: Arc::new(tokio::sync::Semaphore::new(
                config.fetch.concurrency * archive.staged_uploads_per_download(),
            )),
        };
        let org_parallel = organizers.len().clamp(1, config.fetch.concurrency.max(2));
        let organizers_done = futures::stream::iter(organizers.iter().cloned())
            .map(|org| {
                let ctx = &ctx;
                let delta = &graph.delta;
                let shutdown = &shutdown;
                async move { archive_organizer(ctx, delta, config, org, shutdown).await }
            })
            .buffer_unordered(org_parallel)
            .collect::<Vec<OrganizerResult>>();
        // After SIGTERM/SIGINT no new download starts: items still waiting for a slot come
        // back `Interrupted` (their pages stay unfinished); open downloads stream on.
        let stop_new_downloads = async {
            shutdown.cancelled().await;
            ctx.fetcher.close();
            ctx.staging_slots.close();
        };
        tokio::pin!(organizers_done);
        let results = tokio::select! {
            results = &mut organizers_done => results,
            () = stop_new_downloads => organizers_done.await,
        };
        Ok::<_, ExitError>(results)
    };

    // The lease is renewed alongside the work; losing it stops the run.
    let renew = async {
        loop {
            tokio::time::sleep(LEASE_TTL / 3).await;
            if let Err(e) = archive.renew_lease(&mut lease).await {
                return e;
            }
        }
    };
    // After SIGTERM/SIGINT, in-flight downloads get a grace period, then are abandoned (their
    // pages were never checkpointed, so the next run does them again).
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let results = tokio::select! {
        results = work => results,
        lost = renew => {
            shutdown.cancel();
            return Err(ExitError::new(Exit::LeaseHeld, anyhow::Error::new(lost).context("lost the shard lease mid-run; another run took over")));
        }
        () = grace => {
            tracing::warn!(grace_secs = SHUTDOWN_GRACE.as_secs(), "in-flight downloads did not finish in time; abandoned, they run again next time");
            Ok(Vec::new())
        }
    };
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            let _ = archive.release_lease(lease).await;
            return Err(e);
        }
    };

    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let mut fatal: Option<anyhow::Error> = None;
    for r in results {
        counts.add(&r.counts);
        failures.extend(r.failures);
        if fatal.is_none() {
            fatal = r.fatal;
        }
    }
    // Debris of abandoned downloads (after a shutdown) goes now, not next run.
    if let Err(e) = archive.clean_staging(&shard_id).await {
        tracing::warn!(error = %e, "cannot clean staging at the end of the run");
    }
    let interrupted = shutdown.is_cancelled();
    let exit_code = if failures.is_empty() && !interrupted { 0 } else { 1 };
    let duration = started.elapsed().as_secs_f64();
    let report = RunReport {
        schema: "recarch.run.v1",
        shard: shard_id.as_str().to_owned(),
        started_at,
        finished_at: Utc::now(),
        duration_secs: duration,
        organizers: organizers.len(),
        throughput_bytes_per_sec: if duration > 0.0 {
            counts.bytes as f64 / duration
        } else {
            0.0
        },
        counts,
        failures,
        interrupted,
        exit_code: if fatal.is_some() { 4 } else { exit_code },
    };
    let report_json = serde_json::to_value(&report).unwrap_or(Value::Null);
    if let Err(e) = archive.put_run_report(&shard_id, started_at, &report_json).await {
        tracing::warn!(error = %e, "cannot write the run report");
    }
    if let Err(e) = archive.release_lease(lease).await {
        tracing::warn!(error = %e, "cannot release the lease; it expires by itself");
    }
    if let Some(fatal) = fatal {
        return Err(ExitError::new(Exit::Fatal, fatal));
    }
    Ok(report)
}

/// Opens and probes the store named by the configuration.
pub fn open_archive(config: &Config) -> Result<Archive, ExitError> {
    Archive::open(&config.store.url, &config.store.options).map_err(|e| match e {
        StoreError::InvalidUrl { .. } => ExitError::new(Exit::Config, anyhow::Error::new(e).context("[store].url")),
        other => ExitError::new(Exit::Fatal, other),
    })
}

/// The HTTP side of a run: token provider, delta client, fetcher.
pub struct GraphClients {
    /// Tokens.
    pub tokens: Arc<dyn TokenProvider>,
    /// Delta paging.
    pub delta: DeltaClient,
    /// Downloads.
    pub fetcher: Fetcher,
}

fn graph_clients(config: &Config, secret: recarch_delta::auth::Secret) -> Result<GraphClients, ExitError> {
    let fatal = |e: reqwest::Error| {
        ExitError::new(
            Exit::Fatal,
            anyhow::Error::new(e).context("cannot build the HTTP client"),
        )
    };
    // No client follows redirects by itself: the fetcher decides, per hop, whether the token
    // may go along.
    let builder = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("recarch/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
    };
    let graph_http = builder().build().map_err(fatal)?;
    let plain_http = builder().build().map_err(fatal)?;
    let token_http = builder().timeout(Duration::from_secs(60)).build().map_err(fatal)?;
    let policy = RetryPolicy {
        max_attempts: config.fetch.max_attempts,
        ..RetryPolicy::default()
    };
    let tokens: Arc<dyn TokenProvider> = Arc::new(
        ClientCredentials::new(
            token_http,
            ClientCredentialsConfig {
                authority_url: config.graph.authority_url.clone(),
                tenant_id: config.graph.tenant_id.clone(),
                client_id: config.graph.client_id.clone(),
                client_secret: secret,
                scope: scope_for(&config.graph.base_url),
                refresh_margin: Duration::from_secs(300),
                retry: policy.clone(),
            },
        )
        .map_err(|e| ExitError::new(Exit::Config, e))?,
    );
    let http = GraphHttp::new(graph_http, Arc::clone(&tokens), &config.graph.base_url, policy);
    Ok(GraphClients {
        tokens,
        delta: DeltaClient::new(http.clone()),
        // Every byte is hashed once, by the store, which names the blob by what it staged.
        fetcher: Fetcher::new(http, plain_http, config.fetch.concurrency).hashing(false),
    })
}

/// What one organizer's pass produced.
struct OrganizerResult {
    counts: Counts,
    failures: Vec<Failure>,
    /// Set when the whole run must stop (credentials, billing, store).
    fatal: Option<anyhow::Error>,
}

/// One page whose items are not all finished yet.
struct OpenPage {
    /// Items of this page not yet finished.
    remaining: usize,
    /// The link to save once this page and all before it are finished.
    continuation: Continuation,
    /// Items of this page that failed, to queue.
    failed: Vec<QueuedItem>,
}

/// An item waiting for a download slot: which page it belongs to, and the item.
struct PendingItem {
    page: u64,
    recording: CallRecording,
    raw: Value,
}

async fn archive_organizer(
    ctx: &ItemContext,
    delta: &DeltaClient,
    config: &Config,
    org: OrganizerId,
    shutdown: &CancellationToken,
) -> OrganizerResult {
    let mut result = OrganizerResult {
        counts: Counts::default(),
        failures: Vec::new(),
        fatal: None,
    };
    let mut state = match ctx.archive.load_state(&org).await {
        Ok(Some(state)) => state,
        Ok(None) => OrganizerState::new(org.clone()),
        Err(e) => {
            result.fatal = Some(anyhow::Error::new(e).context(format!("cannot read the state of organizer {org}")));
            return result;
        }
    };

    // 1. The retry queue first.
    let queued = std::mem::take(&mut state.queue);
    if !queued.is_empty() {
        tracing::info!(organizer = %org, items = queued.len(), "retrying queued items");
        let limit = config.fetch.concurrency * ITEMS_PER_DOWNLOAD_SLOT;
        let org = &org;
        let outcomes: Vec<(QueuedItem, ItemOutcome)> = futures::stream::iter(queued)
            .map(|q| async move {
                let outcome = if shutdown.is_cancelled() {
                    ItemOutcome::Interrupted
                } else {
                    match serde_json::from_value::<CallRecording>(q.item.clone()) {
                        Ok(rec) => archive_recording(ctx, org, &rec, &q.item).await,
                        Err(e) => ItemOutcome::Failed {
                            reason: format!("malformed item: {e}"),
                        },
                    }
                };
                (q, outcome)
            })
            .buffer_unordered(limit)
            .collect()
            .await;
        for (mut q, outcome) in outcomes {
            result.counts.discovered += u64::from(!matches!(outcome, ItemOutcome::Interrupted));
            match outcome {
                ItemOutcome::Archived { bytes, new_blob } => {
                    result.counts.archived += 1;
                    result.counts.bytes += bytes;
                    result.counts.new_blobs += u64::from(new_blob);
                }
                ItemOutcome::AlreadyArchived => result.counts.already_archived += 1,
                ItemOutcome::Failed { reason } => {
                    q.attempts += 1;
                    q.last_error = reason.clone();
                    q.last_failed_at = Utc::now();
                    result.counts.failed += 1;
                    result.failures.push(Failure {
                        organizer_id: org.to_string(),
                        id: q.id.clone(),
                        reason,
                    });
                    state.queue.push(q);
                }
                ItemOutcome::Fatal(e) => {
                    result.fatal.get_or_insert(e);
                    state.queue.push(q);
                }
                // Not tried: stays queued as it was.
                ItemOutcome::Interrupted => state.queue.push(q),
            }
        }
        if let Err(e) = save_state(ctx, &mut state).await {
            result.fatal.get_or_insert(e);
        }
        if result.fatal.is_some() {
            return result;
        }
    }

    // 2. The delta round, from the checkpoint; again from the start after 410 Gone.
    let mut start = match &state.checkpoint {
        Some(cp) => PageRequest::Link(cp.link.clone()),
        None => first_request(config, &org),
    };
    // A round resumed from a nextLink saved by an earlier run is that run's snapshot: what was
    // added since only shows in the round after it. Follow its deltaLink once more, so that a
    // run archives everything that existed when it started, interrupted predecessors or not.
    let mut catch_up = matches!(&state.checkpoint, Some(cp) if cp.kind == LinkKind::Next);
    let mut resyncs = 0;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        match walk_round(ctx, delta, config, &org, &mut state, start, shutdown, &mut result).await {
            RoundEnd::Done => match (&state.checkpoint, catch_up) {
                (Some(cp), true) if cp.kind == LinkKind::Delta => {
                    catch_up = false;
                    start = PageRequest::Link(cp.link.clone());
                }
                _ => break,
            },
            RoundEnd::Reset { location } => {
                resyncs += 1;
                result.counts.resyncs += 1;
                if resyncs > MAX_RESYNCS {
                    let reason =
                        format!("graph reset the sync state {resyncs} times in one run; trying again next run");
                    result.failures.push(Failure {
                        organizer_id: org.to_string(),
                        id: String::new(),
                        reason,
                    });
                    break;
                }
                tracing::warn!(organizer = %org, "sync state expired (410): starting a full round; archived recordings are not downloaded again");
                state.checkpoint = None;
                if let Err(e) = save_state(ctx, &mut state).await {
                    result.fatal.get_or_insert(e);
                    break;
                }
                // A full round snapshots now: nothing to catch up after it.
                catch_up = false;
                start = match location {
                    Some(link) => PageRequest::Link(link),
                    None => first_request(config, &org),
                };
            }
            RoundEnd::Stopped => break,
        }
    }
    result
}

fn first_request(config: &Config, org: &OrganizerId) -> PageRequest {
    PageRequest::First(resources::recordings_request(
        &config.graph.base_url,
        org.as_str(),
        config.source.start_date_time.as_deref(),
    ))
}

enum RoundEnd {
    /// The round reached its deltaLink (saved).
    Done,
    /// 410 Gone: start again.
    Reset { location: Option<String> },
    /// Stopped early: an error (recorded in the result) or shutdown.
    Stopped,
}

/// Walks one round: pages are fetched a few ahead while items download; a page's
/// continuation is saved only when it and every earlier page are finished.
#[allow(clippy::too_many_arguments)]
async fn walk_round(
    ctx: &ItemContext,
    delta: &DeltaClient,
    config: &Config,
    org: &OrganizerId,
    state: &mut OrganizerState,
    start: PageRequest,
    shutdown: &CancellationToken,
    result: &mut OrganizerResult,
) -> RoundEnd {
    let limit = config.fetch.concurrency * ITEMS_PER_DOWNLOAD_SLOT;
    let mut pages = pin!(delta.pages::<CallRecording>(start));
    let mut pages_done = false;
    let mut end = RoundEnd::Done;
    // Pages in order, the oldest unfinished first; `first_seq` is the sequence number of
    // `open.front()`.
    let mut open: VecDeque<OpenPage> = VecDeque::new();
    let mut first_seq: u64 = 0;
    let mut next_seq: u64 = 0;
    let mut pending: VecDeque<PendingItem> = VecDeque::new();
    // Ids being processed right now: a duplicate of one of them is skipped, which is safe
    // because the original belongs to this page or an earlier one, whose outcome is saved no
    // later than this page's checkpoint.
    let mut in_flight_ids: HashSet<String> = HashSet::new();
    let mut in_flight = FuturesUnordered::new();
    let mut stopping = false;

    loop {
        while !stopping && in_flight.len() < limit {
            let Some(item) = pending.pop_front() else { break };
            if !in_flight_ids.insert(item.recording.id.clone()) {
                result.counts.duplicates += 1;
                finish_item(&mut open, first_seq, item.page, None);
                continue;
            }
            in_flight.push(
                async move {
                    let outcome = archive_recording(ctx, org, &item.recording, &item.raw).await;
                    (item, outcome)
                }
                .boxed(),
            );
        }
        // Empty or duplicate-only pages may be complete already.
        if let Err(e) = commit_ready(ctx, state, &mut open, &mut first_seq).await {
            result.fatal.get_or_insert(e);
            stopping = true;
            end = RoundEnd::Stopped;
        }
        let want_page = !pages_done && !stopping && pending.len() < limit && open.len() < PAGES_AHEAD;
        if in_flight.is_empty() && !want_page && (pending.is_empty() || stopping) {
            break;
        }
        tokio::select! {
            Some((item, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                in_flight_ids.remove(&item.recording.id);
                if matches!(outcome, ItemOutcome::Interrupted) {
                    // Not finished: its page stays open, so the checkpoint never passes it.
                    continue;
                }
                let failed = record_outcome(org, &item, outcome, result);
                if result.fatal.is_some() && !stopping {
                    stopping = true;
                    end = RoundEnd::Stopped;
                }
                finish_item(&mut open, first_seq, item.page, failed);
            }
            page = pages.next(), if want_page => match page {
                None => pages_done = true,
                Some(Ok(page)) => {
                    result.counts.pages += 1;
                    let seq = next_seq;
                    next_seq += 1;
                    let mut count = 0;
                    let mut malformed = Vec::new();
                    for entry in page.items {
                        match entry {
                            DeltaItem::Present { item, raw } => {
                                result.counts.discovered += 1;
                                count += 1;
                                pending.push_back(PendingItem { page: seq, recording: item, raw });
                            }
                            DeltaItem::Removed { id, reason } => {
                                result.counts.removed += 1;
                                tracing::info!(organizer = %org, %id, ?reason, "graph reports a recording removed; the archive keeps it");
                            }
                            DeltaItem::Malformed { raw, error } => {
                                result.counts.discovered += 1;
                                result.counts.failed += 1;
                                let id = raw.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                                let reason = format!("malformed item: {error}");
                                result.failures.push(Failure { organizer_id: org.to_string(), id: id.clone(), reason: reason.clone() });
                                malformed.push(queued_item(id, raw, reason));
                            }
                        }
                    }
                    if matches!(page.continuation, Continuation::Delta(_)) {
                        pages_done = true;
                    }
                    open.push_back(OpenPage { remaining: count, continuation: page.continuation, failed: malformed });
                }
                Some(Err(DeltaError::SyncReset { location, .. })) => {
                    pages_done = true;
                    end = RoundEnd::Reset { location };
                }
                Some(Err(e)) => {
                    pages_done = true;
                    if e.is_fatal() {
                        result.fatal.get_or_insert(anyhow::Error::new(e));
                        stopping = true;
                    } else {
                        tracing::error!(organizer = %org, error = %error_chain(&e), "cannot read delta page; resuming from the last checkpoint next run");
                        result.failures.push(Failure { organizer_id: org.to_string(), id: String::new(), reason: error_chain(&e) });
                    }
                    end = RoundEnd::Stopped;
                }
            },
            () = shutdown.cancelled(), if !stopping => {
                tracing::warn!(organizer = %org, in_flight = in_flight.len(), "shutting down: finishing in-flight downloads, taking no new work");
                stopping = true;
                end = RoundEnd::Stopped;
            }
            // Unreachable by the break above; without it select! would panic if it were not.
            else => break,
        }
    }
    end
}

fn queued_item(id: String, raw: Value, reason: String) -> QueuedItem {
    let now = Utc::now();
    QueuedItem {
        id,
        item: raw,
        attempts: 1,
        last_error: reason,
        first_failed_at: now,
        last_failed_at: now,
    }
}

/// Counts an item's outcome; returns the queue entry when it failed.
fn record_outcome(
    org: &OrganizerId,
    item: &PendingItem,
    outcome: ItemOutcome,
    result: &mut OrganizerResult,
) -> Option<QueuedItem> {
    match outcome {
        ItemOutcome::Archived { bytes, new_blob } => {
            result.counts.archived += 1;
            result.counts.bytes += bytes;
            result.counts.new_blobs += u64::from(new_blob);
            None
        }
        ItemOutcome::AlreadyArchived => {
            result.counts.already_archived += 1;
            None
        }
        ItemOutcome::Failed { reason } => {
            tracing::warn!(organizer = %org, id = %item.recording.id, %reason, "recording failed; queued for the next run");
            result.counts.failed += 1;
            result.failures.push(Failure {
                organizer_id: org.to_string(),
                id: item.recording.id.clone(),
                reason: reason.clone(),
            });
            Some(queued_item(item.recording.id.clone(), item.raw.clone(), reason))
        }
        ItemOutcome::Fatal(e) => {
            let reason = error_chain(e.as_ref());
            result.fatal.get_or_insert(e);
            // Queued too, so that nothing is lost if the state can still be written.
            Some(queued_item(item.recording.id.clone(), item.raw.clone(), reason))
        }
        // Nothing to record; `walk_round` also keeps the item's page unfinished.
        ItemOutcome::Interrupted => None,
    }
}

fn finish_item(open: &mut VecDeque<OpenPage>, first_seq: u64, page: u64, failed: Option<QueuedItem>) {
    let index = usize::try_from(page - first_seq).unwrap_or(usize::MAX);
    if let Some(p) = open.get_mut(index) {
        p.remaining = p.remaining.saturating_sub(1);
        p.failed.extend(failed);
    }
}

/// Saves the checkpoint of every finished page at the front, in order.
async fn commit_ready(
    ctx: &ItemContext,
    state: &mut OrganizerState,
    open: &mut VecDeque<OpenPage>,
    first_seq: &mut u64,
) -> anyhow::Result<()> {
    let mut changed = false;
    while open.front().is_some_and(|p| p.remaining == 0) {
        let Some(page) = open.pop_front() else { break };
        *first_seq += 1;
        state.queue.extend(page.failed);
        let kind = match page.continuation {
            Continuation::Next(_) => LinkKind::Next,
            Continuation::Delta(_) => {
                state.rounds_completed += 1;
                LinkKind::Delta
            }
        };
        state.checkpoint = Some(Checkpoint {
            kind,
            link: page.continuation.link().to_owned(),
        });
        changed = true;
    }
    if changed {
        save_state(ctx, state).await?;
    }
    Ok(())
}

async fn save_state(ctx: &ItemContext, state: &mut OrganizerState) -> anyhow::Result<()> {
    state.updated_at = Utc::now();
    ctx.archive
        .save_state(state)
        .await
        .with_context(|| format!("cannot save the checkpoint of organizer {}", state.organizer_id))
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown-host".into())
}

/// The end-of-run summary on stdout.
pub fn print_summary(report: &RunReport) {
    let c = &report.counts;
    let mib = c.bytes as f64 / (1024.0 * 1024.0);
    let rate = report.throughput_bytes_per_sec / (1024.0 * 1024.0);
    println!(
        "run {shard}: {archived} archived ({mib:.1} MiB, {rate:.1} MiB/s), {already} already archived, {failed} failed, {removed} removed in graph, {pages} pages, {dur:.1}s{int}",
        shard = report.shard,
        archived = c.archived,
        already = c.already_archived,
        failed = c.failed,
        removed = c.removed,
        pages = c.pages,
        dur = report.duration_secs,
        int = if report.interrupted { " (interrupted)" } else { "" },
    );
    for f in report.failures.iter().take(20) {
        if f.id.is_empty() {
            println!("  failed: organizer {}: {}", f.organizer_id, f.reason);
        } else {
            println!(
                "  failed: organizer {} recording {}: {}",
                f.organizer_id, f.id, f.reason
            );
        }
    }
    if report.failures.len() > 20 {
        println!("  … and {} more (see the run report)", report.failures.len() - 20);
    }
}
