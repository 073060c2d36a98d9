//! One organizer's pass for one kind: the retry queue first, then the delta round from the
//! saved checkpoint.
//!
//! Pages are fetched a few ahead while their items are archived; a page's continuation
//! (nextLink or deltaLink) is saved only once every item on it, and on every page before it,
//! is settled — archived, already archived, queued or dead-lettered. A failing item never
//! stops the round: it costs its own attempt and the round goes on. 410 Gone restarts a full
//! round (archived items are skipped by their manifests), following Graph's `Location` only
//! when it keeps every configured query option.

use std::collections::{HashMap, HashSet, VecDeque};

pub mod pages;

use pages::PageBook;
use std::pin::pin;

use chrono::Utc;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use recarch_delta::{Continuation, DeltaClient, DeltaError, DeltaItem, PageRequest, Paging};
use recarch_failure::FailureClass;
use recarch_store::ledger::{LedgerEvent, LedgerIntent};
use recarch_store::{Checkpoint, Kind, LinkKind, OrganizerId, OrganizerState, QueuedItem};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::environment::EnvironmentFault;
use crate::environment::Verdict;
use crate::kinds::{Admit, ItemKind, Removed, RoundStart, Seen, Window};
use crate::pipeline::{Archived, ItemContext, ItemOutcome};
use crate::queue::{Deferred, ItemQueue, QueuePolicy, Settled, record_failure, settle};
use crate::report::{Counts, Failure};
use recarch_failure::error_chain;

/// Full rounds restarted after 410 Gone within one run, per organizer, before giving up.
const MAX_RESYNCS: u32 = 3;
/// Pages fetched ahead of the oldest unfinished one.
const PAGES_AHEAD: usize = 3;
/// Items of one organizer in progress at once per download slot (`[fetch].concurrency`). An
/// item holds its download slot only while its body streams; the rest of it (finishing the
/// staged upload, committing the blob, writing the manifest) overlaps the next item's
/// download instead of leaving the slot idle. Measured on local disk: 2 is 15-20 % faster
/// than 1; 3 and 4 are no faster than 2.
pub const ITEMS_PER_DOWNLOAD_SLOT: usize = 2;

/// Everything an organizer's pass needs, shared by all organizers of a run.
pub struct RoundContext<'a> {
    /// The item pipeline's context.
    pub items: &'a ItemContext,
    /// Delta paging.
    pub delta: &'a DeltaClient,
    /// The configuration.
    pub config: &'a Config,
    /// When items are given up on.
    pub policy: QueuePolicy,
    /// Cancelled on SIGTERM/SIGINT: no new organizer, page or item starts.
    pub shutdown: &'a CancellationToken,
}

impl RoundContext<'_> {
    /// Where items of kind `K` of `org` are settled.
    fn queue<'q, K: ItemKind>(&'q self, org: &'q OrganizerId) -> ItemQueue<'q> {
        ItemQueue {
            ctx: self.items,
            policy: self.policy,
            kind: K::KIND,
            organizer: org,
        }
    }
}

/// What one organizer's pass produced.
#[derive(Default)]
pub struct OrganizerResult {
    /// The kind of the pass.
    pub kind: Option<Kind>,
    /// Counts.
    pub counts: Counts,
    /// Failures of this run (items and the round itself).
    pub failures: Vec<Failure>,
    /// Set when the whole run must stop (credentials, billing).
    pub fatal: Option<anyhow::Error>,
}

impl OrganizerResult {
    fn round_failure<K: ItemKind>(&mut self, org: &OrganizerId, class: FailureClass, reason: String) {
        tracing::error!(organizer = %org, kind = %K::KIND, %reason, "organizer stopped for this run");
        self.failures.push(Failure {
            organizer_id: org.to_string(),
            kind: K::KIND.to_string(),
            id: String::new(),
            class,
            reason,
            attempts: 0,
            dead_lettered: false,
        });
    }

    /// Counts a settled item; `false` when it is not finished (its page must stay open).
    fn record<K: ItemKind>(&mut self, org: &OrganizerId, id: &str, settled: Settled) -> bool {
        match settled {
            Settled::Archived(Archived::Now { bytes, new_blob }) => {
                self.counts.archived += 1;
                self.counts.bytes += bytes;
                self.counts.new_blobs += u64::from(new_blob);
                true
            }
            Settled::Archived(Archived::Already) => {
                self.counts.already_archived += 1;
                true
            }
            Settled::Failed {
                class,
                reason,
                attempts,
                dead_lettered,
            } => {
                self.counts.failed += 1;
                self.counts.dead_lettered += u64::from(dead_lettered);
                self.failures.push(Failure {
                    organizer_id: org.to_string(),
                    kind: K::KIND.to_string(),
                    id: id.to_owned(),
                    class,
                    reason,
                    attempts,
                    dead_lettered,
                });
                true
            }
            // Only the retry queue defers, and it keeps those itself.
            Settled::Unfinished | Settled::Deferred(_) => false,
            Settled::Fatal(e) => {
                self.fatal.get_or_insert(e);
                false
            }
            Settled::Unrecorded(reason) => {
                self.round_failure::<K>(org, FailureClass::Transient, reason);
                false
            }
        }
    }
}

/// One organizer's pass for `kind`: its queue, then its delta round.
pub async fn archive_organizer<K: ItemKind>(rc: &RoundContext<'_>, kind: &K, org: OrganizerId) -> OrganizerResult {
    let result = organizer_pass(rc, kind, &org).await;
    // Nothing writes this state again in this run without loading it first: drop the version
    // kept for its conditional writes (1.5-2 MB at 10 000 organizers otherwise).
    rc.items.archive.forget_state(K::KIND, &org);
    result
}

async fn organizer_pass<K: ItemKind>(rc: &RoundContext<'_>, kind: &K, org: &OrganizerId) -> OrganizerResult {
    let org = org.clone();
    let mut result = OrganizerResult {
        kind: Some(K::KIND),
        ..OrganizerResult::default()
    };
    // No new organizer starts after SIGTERM/SIGINT.
    if rc.shutdown.is_cancelled() {
        return result;
    }
    let archive = &rc.items.archive;
    let mut state = match archive.load_state(K::KIND, &org).await {
        Ok(Some(state)) => state,
        Ok(None) => OrganizerState::new(K::KIND, org.clone()),
        Err(e) => {
            let reason = format!("cannot read its state: {}", error_chain(&e));
            result.round_failure::<K>(&org, e.class(), reason);
            return result;
        }
    };
    // Versions before per-item queue entries kept the queue inside the state document.
    if !state.queue.is_empty() {
        for q in std::mem::take(&mut state.queue) {
            if let Err(e) = archive.put_queued(K::KIND, &org, &q).await {
                result.round_failure::<K>(
                    &org,
                    e.class(),
                    format!("cannot migrate its queue: {}", error_chain(&e)),
                );
                return result;
            }
        }
        if let Err(reason) = save_state(rc.items, &mut state).await {
            result.round_failure::<K>(&org, FailureClass::Transient, reason);
            return result;
        }
    }
    let (queued, dead) = match (
        archive.list_queued(K::KIND, &org).await,
        archive.dead_letter_keys(K::KIND, &org).await,
    ) {
        (Ok(queued), Ok(dead)) => (queued, dead),
        (Err(e), _) | (_, Err(e)) => {
            let reason = format!("cannot read its queue: {}", error_chain(&e));
            result.round_failure::<K>(&org, e.class(), reason);
            return result;
        }
    };
    let mut entries = Vec::new();
    for entry in queued {
        match entry {
            Ok(q) => entries.push(q),
            // Left in place for an operator; it blocks nothing.
            Err(e) => tracing::error!(organizer = %org, error = %error_chain(&e), "unreadable queue entry skipped"),
        }
    }
    let queued_ids: HashSet<String> = entries.iter().map(|q| q.id.clone()).collect();

    // 0. Names earlier runs could not read (see `crate::enrich`): once per run, before this
    //    pass's items, whose lookups then share the answers.
    if !state.names_pending.is_empty() {
        let mut pending = std::mem::take(&mut state.names_pending);
        let filled = crate::enrich::fill_in(rc.items, K::KIND, &org, &mut pending).await;
        state.names_pending = pending;
        match filled {
            Ok(()) => {
                if let Err(reason) = save_state(rc.items, &mut state).await {
                    result.round_failure::<K>(&org, FailureClass::Transient, reason);
                    return result;
                }
            }
            Err(reason) => {
                tracing::warn!(organizer = %org, kind = %K::KIND, %reason, "names not filled in; the next run tries again")
            }
        }
    }

    // 1. The retry queue first.
    let (tried, deferred) = retry_queue(rc, kind, &org, entries, &mut result).await;
    if result.fatal.is_some() || rc.shutdown.is_cancelled() {
        return result;
    }

    // 2. The delta round of each source (one for most kinds, a contact folder each for
    //    contacts), from its checkpoint; again from the start after 410 Gone.
    let sources = match kind.sources(rc.delta, rc.config, &org).await {
        Ok(sources) => sources,
        Err(e) if e.class() == FailureClass::Fatal => {
            result.fatal.get_or_insert(anyhow::Error::new(e));
            return result;
        }
        Err(e) => {
            if let Some(fault) = EnvironmentFault::from_delta(&e) {
                result.fatal.get_or_insert(rc.items.environment.halt(fault));
                return result;
            }
            let mut reason = format!("cannot list what to enumerate: {}", error_chain(&e));
            if matches!(e, DeltaError::Forbidden { .. }) {
                reason.push_str("; ");
                reason.push_str(kind.forbidden_hint());
            }
            result.round_failure::<K>(&org, e.class(), reason);
            return result;
        }
    };
    let seen = Known {
        tried: &tried,
        queued: &queued_ids,
        dead: &dead,
    };
    // Sources of their own (contact folders; maybe none at all), as opposed to the
    // organizer's one delta query.
    let several = !matches!(sources.as_slice(), [None]);
    let mut all_done = true;
    let mut live = None;
    for source in &sources {
        if rc.shutdown.is_cancelled() || result.fatal.is_some() {
            all_done = false;
            break;
        }
        let scope = Scope {
            org: &org,
            source: source.as_deref(),
        };
        all_done &= walk_source(rc, kind, scope, &mut state, &seen, &mut live, &mut result).await;
    }
    // 3. Queued items whose failures waited for the new items' evidence.
    if !deferred.is_empty() && result.fatal.is_none() {
        record_deferred::<K>(rc, &org, deferred, &mut result).await;
    }
    if several && all_done {
        // Every source reached its delta link in this pass.
        state.pass_completed(Utc::now());
        if let Err(reason) = save_state(rc.items, &mut state).await {
            result.round_failure::<K>(&org, FailureClass::Transient, reason);
        }
    } else if rc.items.names.has_missing(K::KIND, &org) {
        // Items settled after the last checkpoint (queued ones, a last page) lacked names:
        // remember them for the next run.
        if let Err(reason) = save_state(rc.items, &mut state).await {
            result.round_failure::<K>(&org, FailureClass::Transient, reason);
        }
    }
    result
}

/// Whose delta round: an organizer, and the source (contact folder) when the kind has several.
#[derive(Clone, Copy)]
struct Scope<'a> {
    org: &'a OrganizerId,
    source: Option<&'a str>,
}

/// Archived live items of a versioned kind, by source (read once per organizer pass, when a
/// full round first needs them).
type LiveItems = HashMap<Option<String>, HashSet<String>>;

/// The rounds of one source, from its checkpoint (again from the start after 410 Gone);
/// `true` when it ended at a saved delta link.
async fn walk_source<K: ItemKind>(
    rc: &RoundContext<'_>,
    kind: &K,
    scope: Scope<'_>,
    state: &mut OrganizerState,
    seen: &Known<'_>,
    live: &mut Option<LiveItems>,
    result: &mut OrganizerResult,
) -> bool {
    let Scope { org, source } = scope;
    // Kinds listed by time window: this walk's window, from the watermark to now.
    let window = Window {
        watermark: state.watermark_of(source),
        until: whole_seconds(Utc::now()),
    };
    let round_start = RoundStart {
        organizer: org,
        source,
        window,
    };
    let mut start = match state.checkpoint_of(source) {
        Some(cp) => PageRequest::Link(cp.link.clone()),
        None => PageRequest::First(kind.first_request(rc.config, &round_start)),
    };
    // A round resumed from a nextLink saved by an earlier run is that run's snapshot: what was
    // added since only shows in the round after it. Follow its deltaLink once more, so that a
    // run archives everything that existed when it started, interrupted predecessors or not.
    let mut catch_up = matches!(state.checkpoint_of(source), Some(cp) if cp.kind == LinkKind::Next);
    // Whether this walk lists the whole collection from its first page in this process.
    let mut full_round = state.checkpoint_of(source).is_none();
    let mut resyncs = 0;
    loop {
        if rc.shutdown.is_cancelled() {
            return false;
        }
        let (end, listed) = walk_round(rc, kind, scope, window, state, start, seen, result).await;
        match end {
            RoundEnd::Done => {
                if kind.reconciles() && full_round && !reconcile(rc, kind, org, source, &listed, live, result).await {
                    return false;
                }
                full_round = false;
                match (state.checkpoint_of(source), catch_up) {
                    (Some(cp), true) if cp.kind == LinkKind::Delta => {
                        catch_up = false;
                        start = PageRequest::Link(cp.link.clone());
                    }
                    _ => return true,
                }
            }
            RoundEnd::Reset { location } => {
                resyncs += 1;
                result.counts.resyncs += 1;
                if resyncs > MAX_RESYNCS {
                    let reason =
                        format!("graph reset the sync state {resyncs} times in one run; trying again next run");
                    result.round_failure::<K>(org, FailureClass::Transient, reason);
                    return false;
                }
                state.set_checkpoint(source, None);
                if let Err(reason) = save_state(rc.items, state).await {
                    result.round_failure::<K>(org, FailureClass::Transient, reason);
                    return false;
                }
                // A full round snapshots now: nothing to catch up after it.
                catch_up = false;
                full_round = true;
                start = restart_request(rc.config, kind, &round_start, location);
            }
            RoundEnd::Stopped => return false,
        }
    }
}

/// After a full round of a versioned kind walked in this process: an item whose newest
/// archived version is live but that the round did not list was removed while no delta
/// could say so (before a 410 Gone reset, or before the first round completed). It gets a
/// tombstone version (`ItemKind::unlisted_tombstone`). `false` when the organizer must
/// stop (a failure that could not be recorded, or a fatal one).
async fn reconcile<K: ItemKind>(
    rc: &RoundContext<'_>,
    kind: &K,
    org: &OrganizerId,
    source: Option<&str>,
    listed: &HashSet<String>,
    live: &mut Option<LiveItems>,
    result: &mut OrganizerResult,
) -> bool {
    if live.is_none() {
        match kind.live_ids(rc.items, org).await {
            Ok(items) => {
                let mut by_source = LiveItems::new();
                for (source, id) in items {
                    by_source.entry(source).or_default().insert(id);
                }
                *live = Some(by_source);
            }
            Err(e) => {
                let reason = format!(
                    "cannot read its archived items to reconcile a full round: {}",
                    error_chain(&e)
                );
                result.round_failure::<K>(org, e.class(), reason);
                return false;
            }
        }
    }
    let missing: Vec<String> = live
        .as_ref()
        .and_then(|l| l.get(&source.map(str::to_owned)))
        .map(|ids| ids.iter().filter(|id| !listed.contains(*id)).cloned().collect())
        .unwrap_or_default();
    let keys: Vec<String> = missing
        .iter()
        .map(|id| recarch_store::Archive::manifest_key_of(K::KIND, org, id))
        .collect();
    let intent = match rc.items.ledger.intend(keys).await {
        Ok(intent) => intent,
        Err(e) => {
            let reason = format!("cannot write its ledger intent: {}", error_chain(&e));
            result.round_failure::<K>(org, e.class(), reason);
            return false;
        }
    };
    for id in missing {
        let raw = kind.unlisted_tombstone(&id, source);
        tracing::info!(organizer = %org, kind = %K::KIND, %id, "archived as live but not listed by a full round: archiving a tombstone version");
        result.counts.removed += 1;
        result.counts.discovered += 1;
        let outcome = archive_raw(rc.items, kind, org, &raw).await;
        let settled = settle(rc.queue::<K>(org), &id, &raw, None, outcome).await;
        if !result.record::<K>(org, &id, settled) {
            return false;
        }
    }
    log_writes_or_warn(rc.items, intent).await;
    true
}

/// Where a full round restarts after 410 Gone: Graph's `Location` if it keeps every
/// configured query option, else the initial query (which carries them).
fn restart_request<K: ItemKind>(
    config: &Config,
    kind: &K,
    start: &RoundStart<'_>,
    location: Option<String>,
) -> PageRequest {
    let org = start.organizer;
    let options = kind.configured_options(config);
    match location {
        Some(link) if keeps_options(&link, &options) => {
            tracing::warn!(organizer = %org, kind = %K::KIND, "sync state expired (410): starting a full round from graph's Location; archived items are not downloaded again");
            PageRequest::Link(link)
        }
        other => {
            if other.is_some() {
                tracing::warn!(organizer = %org, kind = %K::KIND, ?options, "sync state expired (410): graph's Location drops a configured query option, starting from the initial query instead");
            } else {
                tracing::warn!(organizer = %org, kind = %K::KIND, "sync state expired (410): starting a full round; archived items are not downloaded again");
            }
            PageRequest::First(kind.first_request(config, start))
        }
    }
}

/// `t` without its fraction of a second: windows are sent, and watermarks kept, to the second.
fn whole_seconds(t: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    use chrono::SubsecRound as _;
    t.trunc_subsecs(0)
}

/// Whether `link` (percent-decoded) carries every one of `options`.
pub fn keeps_options(link: &str, options: &[String]) -> bool {
    let decoded = percent_encoding::percent_decode_str(link).decode_utf8_lossy();
    options.iter().all(|o| decoded.contains(o.as_str()))
}

/// Archives an item kept as raw JSON (a queue entry, a tombstone the archiver writes itself):
/// one that no longer parses as the kind's item is a permanent failure.
async fn archive_raw<K: ItemKind>(items: &ItemContext, kind: &K, org: &OrganizerId, raw: &Value) -> ItemOutcome {
    match serde_json::from_value::<K::Item>(raw.clone()) {
        Ok(item) => kind.archive(items, org, &item, raw).await,
        Err(e) => ItemOutcome::failed(FailureClass::Permanent, format!("malformed item: {e}")),
    }
}

/// Retries the queued items; returns the ids tried (the round skips them if listed again) and
/// the failures not recorded yet ([`Settled::Deferred`]: for [`record_deferred`], once the
/// organizer's new items were tried).
async fn retry_queue<K: ItemKind>(
    rc: &RoundContext<'_>,
    kind: &K,
    org: &OrganizerId,
    entries: Vec<QueuedItem>,
    result: &mut OrganizerResult,
) -> (HashSet<String>, Vec<Deferred>) {
    let tried: HashSet<String> = entries.iter().map(|q| q.id.clone()).collect();
    let mut deferred = Vec::new();
    if entries.is_empty() {
        return (tried, deferred);
    }
    // What the queued items may write, named before any of them starts.
    let keys: Vec<String> = entries
        .iter()
        .filter_map(|q| serde_json::from_value::<K::Item>(q.item.clone()).ok())
        .flat_map(|item| kind.writes(org, &item))
        .collect();
    let intent = match rc.items.ledger.intend(keys).await {
        Ok(intent) => intent,
        Err(e) => {
            let reason = format!("cannot write its ledger intent, the queue waits: {}", error_chain(&e));
            result.round_failure::<K>(org, e.class(), reason);
            return (HashSet::new(), deferred);
        }
    };
    tracing::info!(organizer = %org, kind = %K::KIND, items = entries.len(), "retrying queued items");
    rc.items.progress.discovered(entries.len() as u64);
    let limit = rc.config.fetch.concurrency * ITEMS_PER_DOWNLOAD_SLOT;
    let items = ItemContext {
        retried: true,
        ..rc.items.clone()
    };
    let items = &items;
    let mut settled = futures::stream::iter(entries)
        .map(|q| async move {
            let id = q.id.clone();
            let raw = q.item.clone();
            let outcome = if rc.shutdown.is_cancelled() {
                ItemOutcome::Interrupted
            } else {
                archive_raw(items, kind, org, &raw).await
            };
            let settled = settle(
                ItemQueue {
                    ctx: items,
                    ..rc.queue::<K>(org)
                },
                &id,
                &raw,
                Some(q),
                outcome,
            )
            .await;
            (id, settled)
        })
        .buffer_unordered(limit);
    while let Some((id, settled)) = settled.next().await {
        if let Settled::Deferred(d) = settled {
            deferred.push(d);
            continue;
        }
        if !matches!(settled, Settled::Unfinished) {
            result.counts.discovered += 1;
        }
        if result.record::<K>(org, &id, settled) {
            rc.items.progress.settled();
        }
    }
    log_writes_or_warn(rc.items, intent).await;
    (tried, deferred)
}

/// Writes the catalog segment and then the ledger record of what was archived since the last
/// record, settling `intents` with it: after settled pages (before their checkpoint), queued
/// items and reconciled tombstones. On failure the entries and leaves wait for the next record
/// (or the end of the run), and the intents for recovery.
pub(crate) async fn log_writes(items: &ItemContext, mut intents: Vec<LedgerIntent>) -> Result<(), String> {
    let segment = items
        .catalog
        .flush(&items.ledger)
        .await
        .map_err(|e| format!("cannot write the catalog: {}", error_chain(&e)))?;
    intents.extend(segment);
    items
        .ledger
        .log(intents, LedgerEvent::Run, Map::new())
        .await
        .map_err(|e| format!("cannot write the ledger: {}", error_chain(&e)))?;
    Ok(())
}

/// [`log_writes`] outside a page: a failure is only reported, as the next record logs it.
async fn log_writes_or_warn(items: &ItemContext, intent: Option<LedgerIntent>) {
    if let Err(reason) = log_writes(items, intent.into_iter().collect()).await {
        tracing::warn!(%reason, "cannot log what was archived yet; the next record logs it");
    }
}

/// Records the queued items whose failures were deferred, now that the organizer's new
/// items were tried: each is charged if something succeeded since it began (or if it is the
/// only one); if nothing did while several failed, the environment is failing: the run is
/// halted and none is charged.
async fn record_deferred<K: ItemKind>(
    rc: &RoundContext<'_>,
    org: &OrganizerId,
    deferred: Vec<Deferred>,
    result: &mut OrganizerResult,
) {
    let env = &rc.items.environment;
    let count = deferred.len();
    for d in deferred {
        if env.is_halted() {
            return;
        }
        match env.outage.resolve_deferred(d.service, d.began, count) {
            Verdict::Environment => {
                let fault = env.outage_fault(d.service, d.reason);
                result.fatal.get_or_insert(env.halt(fault));
                return;
            }
            _ => {
                let id = d.entry.id.clone();
                let raw = d.entry.item.clone();
                let settled = record_failure(rc.queue::<K>(org), &id, &raw, Some(d.entry), d.class, d.reason).await;
                result.counts.discovered += 1;
                if result.record::<K>(org, &id, settled) {
                    rc.items.progress.settled();
                }
            }
        }
    }
}

/// What the round knows of an organizer's items before its rounds start.
struct Known<'a> {
    /// Ids tried from the queue in this run.
    tried: &'a HashSet<String>,
    /// Ids that were queued when the run started (`@removed` ones leave the queue).
    queued: &'a HashSet<String>,
    /// Item keys of dead letters (never retried automatically).
    dead: &'a HashSet<String>,
}

enum RoundEnd {
    /// The round reached its deltaLink (saved).
    Done,
    /// 410 Gone: start again.
    Reset { location: Option<String> },
    /// Stopped early: an error (recorded in the result) or shutdown.
    Stopped,
}

/// An item waiting for a download slot: which page it belongs to, and the item.
struct PendingItem<T> {
    page: u64,
    id: String,
    item: T,
    raw: Value,
}

/// Walks one round: pages are fetched a few ahead while items are archived; a page's
/// continuation is saved only when it and every earlier page are settled.
#[allow(clippy::too_many_arguments)] // the round's parts, each passed once
async fn walk_round<K: ItemKind>(
    rc: &RoundContext<'_>,
    kind: &K,
    scope: Scope<'_>,
    window: Window,
    state: &mut OrganizerState,
    start: PageRequest,
    seen: &Known<'_>,
    result: &mut OrganizerResult,
) -> (RoundEnd, HashSet<String>) {
    let Scope { org, source } = scope;
    let limit = rc.config.fetch.concurrency * ITEMS_PER_DOWNLOAD_SLOT;
    let mut pages = pin!(rc.delta.pages_as::<K::Item>(start, K::PAGING));
    let mut pages_done = false;
    let mut end = RoundEnd::Done;
    // Reconciling kinds: every id this round listed (see `reconcile`).
    let mut listed: HashSet<String> = HashSet::new();
    // Pages in order, the oldest unsettled first.
    let mut book: PageBook<(Continuation, Option<LedgerIntent>)> = PageBook::default();
    let mut pending: VecDeque<PendingItem<K::Item>> = VecDeque::new();
    // Ids being processed right now: a duplicate of one of them is skipped, which is safe
    // because the original belongs to this page or an earlier one, whose outcome is saved no
    // later than this page's checkpoint.
    let mut in_flight_ids: HashSet<String> = HashSet::new();
    // Later listings of an item in flight that the kind archives after it (`Admit::AfterInFlight`:
    // versions, appended in the order listed).
    let mut waiting: VecDeque<PendingItem<K::Item>> = VecDeque::new();
    let mut in_flight = FuturesUnordered::new();
    let mut stopping = false;

    loop {
        while !stopping && in_flight.len() < limit {
            let Some(item) = pending.pop_front() else { break };
            let known = Seen {
                tried: seen.tried,
                queued: seen.queued,
                dead: seen.dead,
                in_flight: &in_flight_ids,
            };
            match kind.admit(&item.id, &known) {
                Admit::Start => {}
                Admit::AfterInFlight => {
                    waiting.push_back(item);
                    continue;
                }
                Admit::Duplicate => {
                    result.counts.duplicates += 1;
                    rc.items.progress.settled();
                    book.settle(item.page);
                    continue;
                }
                Admit::DeadLetter => {
                    result.counts.skipped_dead_letters += 1;
                    rc.items.progress.settled();
                    tracing::debug!(organizer = %org, id = %item.id, "listed again but dead-lettered: not retried");
                    book.settle(item.page);
                    continue;
                }
            }
            in_flight_ids.insert(item.id.clone());
            in_flight.push(
                async move {
                    let outcome = kind.archive(rc.items, org, &item.item, &item.raw).await;
                    let archived = matches!(outcome, ItemOutcome::Archived(_));
                    let settled = settle(rc.queue::<K>(org), &item.id, &item.raw, None, outcome).await;
                    if kind.supersedes_queued() && archived && seen.queued.contains(&item.id) {
                        // An older version still queued is superseded by this one.
                        if let Err(e) = rc.items.archive.remove_queued(K::KIND, org, &item.id).await {
                            tracing::warn!(organizer = %org, id = %item.id, error = %error_chain(&e), "cannot drop a superseded version from the queue");
                        }
                    }
                    (item.page, item.id, settled)
                }
                .boxed(),
            );
        }
        // Empty or duplicate-only pages may be complete already.
        if let Err(reason) = commit_ready(rc.items, state, source, (K::PAGING, window), &mut book).await {
            result.round_failure::<K>(org, FailureClass::Transient, reason);
            stopping = true;
            end = RoundEnd::Stopped;
        }
        let want_page = !pages_done && !stopping && pending.len() < limit && book.len() < PAGES_AHEAD;
        if in_flight.is_empty() && !want_page && ((pending.is_empty() && waiting.is_empty()) || stopping) {
            break;
        }
        tokio::select! {
            Some((page, id, settled)) = in_flight.next(), if !in_flight.is_empty() => {
                in_flight_ids.remove(&id);
                // The next version of this item, if one waits, goes first.
                if let Some(at) = waiting.iter().position(|w| w.id == id) {
                    if let Some(next) = waiting.remove(at) {
                        pending.push_front(next);
                    }
                }
                let stop = matches!(settled, Settled::Fatal(_) | Settled::Unrecorded(_));
                if result.record::<K>(org, &id, settled) {
                    rc.items.progress.settled();
                    book.settle(page);
                }
                if (stop || result.fatal.is_some()) && !stopping {
                    stopping = true;
                    end = RoundEnd::Stopped;
                }
            }
            page = pages.next(), if want_page => match page {
                None => pages_done = true,
                Some(Ok(page)) => {
                    result.counts.pages += 1;
                    // What the page's items may write, named before any of them starts.
                    let keys: Vec<String> = page
                        .items
                        .iter()
                        .flat_map(|entry| match entry {
                            DeltaItem::Present { item, .. } => kind.writes(org, item),
                            DeltaItem::Removed { id, raw, .. } => match kind.removed(id, raw) {
                                Removed::Archive(item) => kind.writes(org, &item),
                                Removed::Forget => Vec::new(),
                            },
                            DeltaItem::Malformed { .. } => Vec::new(),
                        })
                        .collect();
                    let intent = match rc.items.ledger.intend(keys).await {
                        Ok(intent) => intent,
                        Err(e) => {
                            pages_done = true;
                            result.round_failure::<K>(org, e.class(), format!("cannot write its ledger intent: {}", error_chain(&e)));
                            stopping = true;
                            end = RoundEnd::Stopped;
                            continue;
                        }
                    };
                    let seq = book.next_seq();
                    let mut count = 0;
                    for entry in page.items {
                        match entry {
                            DeltaItem::Present { item, raw } => {
                                result.counts.discovered += 1;
                                count += 1;
                                if kind.reconciles() {
                                    listed.insert(K::id(&item).to_owned());
                                }
                                pending.push_back(PendingItem { page: seq, id: K::id(&item).to_owned(), item, raw });
                            }
                            DeltaItem::Removed { id, reason, raw } => {
                                result.counts.removed += 1;
                                if kind.reconciles() {
                                    listed.insert(id.clone());
                                }
                                match kind.removed(&id, &raw) {
                                    Removed::Archive(item) => {
                                        tracing::info!(organizer = %org, kind = %K::KIND, %id, ?reason, "graph reports an item removed; archiving a tombstone version");
                                        result.counts.discovered += 1;
                                        count += 1;
                                        pending.push_back(PendingItem { page: seq, id, item, raw });
                                    }
                                    Removed::Forget => {
                                        tracing::info!(organizer = %org, kind = %K::KIND, %id, ?reason, "graph reports an item removed; the archive keeps it");
                                        if seen.queued.contains(&id) {
                                            if let Err(e) = rc.items.archive.remove_queued(K::KIND, org, &id).await {
                                                tracing::warn!(organizer = %org, %id, error = %error_chain(&e), "cannot drop a removed item from the queue");
                                            }
                                        }
                                    }
                                }
                            }
                            DeltaItem::Malformed { raw, error } => {
                                // Settled like any failed item: queued (and dead-lettered when it
                                // keeps coming back malformed), so it never blocks the round.
                                result.counts.discovered += 1;
                                let id = raw.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                                let outcome = ItemOutcome::failed(FailureClass::Permanent, format!("malformed item: {error}"));
                                let settled = settle(rc.queue::<K>(org), &id, &raw, None, outcome).await;
                                if !result.record::<K>(org, &id, settled) {
                                    // Not recorded: keep the page open so the checkpoint never passes it.
                                    count += 1;
                                    stopping = true;
                                    end = RoundEnd::Stopped;
                                }
                            }
                        }
                    }
                    rc.items.progress.discovered(count as u64);
                    if page.continuation.is_last() {
                        pages_done = true;
                    }
                    book.push(count, (page.continuation, intent));
                }
                Some(Err(DeltaError::SyncReset { location, .. })) => {
                    pages_done = true;
                    end = RoundEnd::Reset { location };
                }
                Some(Err(e)) => {
                    pages_done = true;
                    let class = e.class();
                    if class == FailureClass::Fatal {
                        result.fatal.get_or_insert(anyhow::Error::new(e));
                        stopping = true;
                    } else if let Some(fault) = EnvironmentFault::from_delta(&e) {
                        // No token: nothing else can be fetched either.
                        result.fatal.get_or_insert(rc.items.environment.halt(fault));
                        stopping = true;
                    } else {
                        let mut reason = format!("cannot read its delta page: {}", error_chain(&e));
                        if matches!(e, DeltaError::Forbidden { .. }) {
                            reason.push_str("; ");
                            reason.push_str(kind.forbidden_hint());
                        } else {
                            reason.push_str("; resuming from the last checkpoint next run");
                        }
                        result.round_failure::<K>(org, class, reason);
                    }
                    end = RoundEnd::Stopped;
                }
            },
            () = rc.shutdown.cancelled(), if !stopping => {
                tracing::warn!(organizer = %org, in_flight = in_flight.len(), "stopping (a signal, or a fault of the environment): finishing in-flight downloads, taking no new work");
                stopping = true;
                end = RoundEnd::Stopped;
            }
            // Unreachable by the break above; without it select! would panic if it were not.
            else => break,
        }
    }
    (end, listed)
}

/// Saves the checkpoint of every settled page at the front, in order (one write for all). A
/// listing's nextLink is no checkpoint (its window is walked again from the start by a later
/// run); its end moves the watermark to the end of `window`.
async fn commit_ready(
    ctx: &ItemContext,
    state: &mut OrganizerState,
    source: Option<&str>,
    (paging, window): (Paging, Window),
    book: &mut PageBook<(Continuation, Option<LedgerIntent>)>,
) -> Result<(), String> {
    let (mut changed, mut popped) = (false, false);
    let mut intents = Vec::new();
    while let Some((continuation, intent)) = book.pop_ready() {
        intents.extend(intent);
        popped = true;
        let kind = match &continuation {
            // Walked again from its first page next time, however far this run got.
            Continuation::Next(_) if paging == Paging::List => continue,
            Continuation::Next(_) => LinkKind::Next,
            Continuation::Delta(_) => {
                state.round_completed(source, Utc::now());
                LinkKind::Delta
            }
            Continuation::End => {
                state.window_walked(source, window.until, Utc::now());
                changed = true;
                continue;
            }
        };
        state.set_checkpoint(
            source,
            continuation.link().map(|link| Checkpoint {
                kind,
                link: link.to_owned(),
            }),
        );
        changed = true;
    }
    if popped {
        // The catalog entries of what these pages archived, then the ledger record of what
        // they wrote, go first: a run killed in between lists the pages again, and their
        // items come round again (and the next run recovers the leaves from the intents).
        log_writes(ctx, intents).await?;
    }
    if changed {
        save_state(ctx, state).await?;
    }
    Ok(())
}

async fn save_state(ctx: &ItemContext, state: &mut OrganizerState) -> Result<(), String> {
    // What the items settled since the last save were archived without goes with it.
    let missed = ctx.names.take_missing(state.kind, &state.organizer_id);
    let left_out = state.names_pending.merge(missed);
    if left_out > 0 {
        tracing::warn!(organizer = %state.organizer_id, kind = %state.kind, meetings = left_out, limit = recarch_store::NAMES_PENDING_MAX, "too many meetings without names to track; these are not filled in by a later run");
    }
    state.updated_at = Utc::now();
    ctx.archive
        .save_state(state)
        .await
        .map_err(|e| format!("cannot save its checkpoint: {}", error_chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_must_keep_the_configured_options() {
        let opts = vec!["startDateTime=2024-01-01T00:00:00Z".to_owned()];
        assert!(keeps_options(
            "https://g/v1.0/users/u/onlineMeetings/getAllRecordings(meetingOrganizerUserId='u',startDateTime=2024-01-01T00:00:00Z)/delta",
            &opts
        ));
        assert!(keeps_options(
            "https://g/v1.0/users/u/onlineMeetings/getAllRecordings(meetingOrganizerUserId='u',startDateTime%3D2024-01-01T00%3A00%3A00Z)/delta",
            &opts
        ));
        assert!(!keeps_options(
            "https://g/v1.0/users/u/onlineMeetings/getAllRecordings(meetingOrganizerUserId='u')/delta",
            &opts
        ));
        assert!(keeps_options("https://g/anything", &[]));
    }
}
