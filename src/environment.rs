//! The environment's faults: what fails because the machine or a shared service fails, not
//! because of an item.
//!
//! | fault | how it is recognised | where |
//! | --- | --- | --- |
//! | a full disk or quota (spool, local archive) | `ENOSPC`/`EDQUOT` on a write ([`StoreError::StorageFull`]) | at once, no retry |
//! | the token endpoint | a token could not be had after the token POST's own retries ([`recarch_delta::auth::AuthError`] other than a refusal of the credentials, which is fatal anyway) | at once: no item has a token of its own |
//! | the content service | nothing succeeded since the item's first attempt, and at least one other item is failing the same way ([`Outage`]) | when an item has used up its attempts |
//! | the store | likewise, for writes of items' blobs | likewise |
//!
//! Each is an [`EnvironmentFault`]. The first one [`halts`](Environment::halt) the run: no new
//! organizer, page or download starts, items still waiting come back unfinished, items in
//! their retries stop retrying, and **no attempt is charged to any item**: an item whose
//! failure is the environment's is neither queued with one more attempt nor dead-lettered; it
//! stays as it was (queued, or on a page that is not checkpointed) for the next run. The run
//! then ends with exit 4 and a run report that names the cause. An outage that ends before
//! any item runs out of attempts is just retries: the run goes on.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use recarch_delta::DeltaError;
use recarch_fetch::FetchError;
use recarch_store::{StoreError, human_bytes};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// A fault of the environment, not of an item; ends the run with exit 4.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EnvironmentFault {
    /// The disk (or quota) under `path` is full.
    #[error("no space left on {path} ({}{}); free space there, then run again: every item stays queued", free.map_or_else(|| "free space unknown".to_owned(), |f| format!("{} free", human_bytes(f))), needed.map(|n| format!(", {} needed", human_bytes(n))).unwrap_or_default())]
    DiskFull {
        /// The directory (spool or local archive) or key.
        path: String,
        /// Bytes free there, when known.
        free: Option<u64>,
        /// Bytes the item being written needed, when known.
        needed: Option<u64>,
    },
    /// The token endpoint gave no token after every retry.
    #[error("{reason}; every item stays queued for the next run")]
    TokenEndpoint {
        /// The token error, naming the endpoint.
        reason: String,
    },
    /// Every content download failed for a while.
    #[error(
        "the content service is failing every request: {failures} attempts in a row across items failed, the last: {last}; every item stays queued for the next run"
    )]
    ContentOutage {
        /// Failed attempts in a row, across items.
        failures: u64,
        /// The last failure, naming the host.
        last: String,
    },
    /// Every write to the store failed for a while.
    #[error(
        "the store {store} refuses every write: {failures} attempts in a row across items failed, the last: {last}; every item stays queued for the next run"
    )]
    StoreUnavailable {
        /// The store, without credentials.
        store: String,
        /// Failed attempts in a row, across items.
        failures: u64,
        /// The last failure.
        last: String,
    },
}

impl EnvironmentFault {
    /// A short name of the cause, for run reports and metrics: `diskFull`, `tokenEndpoint`,
    /// `contentOutage`, `storeUnavailable`.
    pub fn cause(&self) -> &'static str {
        match self {
            EnvironmentFault::DiskFull { .. } => "diskFull",
            EnvironmentFault::TokenEndpoint { .. } => "tokenEndpoint",
            EnvironmentFault::ContentOutage { .. } => "contentOutage",
            EnvironmentFault::StoreUnavailable { .. } => "storeUnavailable",
        }
    }

    /// A full disk, when `e` says so; `needed` is the size of what was being written. A
    /// local archive's document writes name only their key: the fault names the archive's
    /// directory and the space free there instead.
    pub fn from_store(
        e: &StoreError,
        needed: Option<u64>,
        archive: &recarch_store::Archive,
    ) -> Option<EnvironmentFault> {
        let (path, free) = e.storage_full()?;
        let (path, free) = match archive.local_root() {
            Some(root) if !std::path::Path::new(path).is_absolute() => {
                (root.display().to_string(), recarch_store::free_space(root))
            }
            _ => (path.to_owned(), free),
        };
        Some(EnvironmentFault::DiskFull { path, free, needed })
    }

    /// The token endpoint's failure, when `e` is one: any token error but a refusal of the
    /// credentials (which is fatal on its own) is the environment's.
    pub fn from_delta(e: &DeltaError) -> Option<EnvironmentFault> {
        match e {
            DeltaError::Auth(auth) => Self::from_auth(auth),
            _ => None,
        }
    }

    /// [`EnvironmentFault::from_delta`] for the token provider's own error.
    pub fn from_auth(e: &recarch_delta::auth::AuthError) -> Option<EnvironmentFault> {
        (e.class() != recarch_failure::FailureClass::Fatal).then(|| EnvironmentFault::TokenEndpoint {
            reason: recarch_failure::error_chain(e),
        })
    }

    /// [`EnvironmentFault::from_delta`] for a download's error.
    pub fn from_fetch(e: &FetchError) -> Option<EnvironmentFault> {
        match e {
            FetchError::Graph(e) => Self::from_delta(e),
            _ => None,
        }
    }
}

/// Why a run ended with exit 4, as its report records it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cause {
    /// `diskFull`, `tokenEndpoint`, `contentOutage`, `storeUnavailable`, or `fatal` for the
    /// rest (credentials refused, billing, a store that cannot be used at all).
    pub kind: String,
    /// The message, as printed.
    pub message: String,
}

impl Cause {
    /// The cause of `error`: an [`EnvironmentFault`] anywhere in its chain names its kind.
    pub fn of(error: &anyhow::Error) -> Cause {
        let kind = error
            .chain()
            .find_map(|e| e.downcast_ref::<EnvironmentFault>())
            .map_or("fatal", EnvironmentFault::cause);
        Cause {
            kind: kind.to_owned(),
            message: recarch_failure::error_chain(error.as_ref()),
        }
    }
}

/// The run's view of its environment: one per run, shared by every item.
#[derive(Debug)]
pub struct Environment {
    /// What the content service and the store did, across items.
    pub outage: Outage,
    /// The store, for messages.
    store: String,
    /// Cancelled at the first fault (and on SIGTERM/SIGINT: it is a child of the shutdown
    /// token): no new organizer, page or download starts.
    halt: CancellationToken,
    /// The first fault.
    fault: OnceLock<EnvironmentFault>,
}

impl Environment {
    /// Watches a run on `store` (its URL without credentials) whose work stops when `halt`
    /// is cancelled.
    pub fn new(store: &str, halt: CancellationToken) -> Environment {
        Environment {
            store: store.to_owned(),
            outage: Outage::default(),
            halt,
            fault: OnceLock::new(),
        }
    }

    /// Records `fault` (the first one is kept) and stops new work; returns the error that
    /// ends the item that met it.
    pub fn halt(&self, fault: EnvironmentFault) -> anyhow::Error {
        if self.fault.set(fault.clone()).is_ok() {
            tracing::error!(cause = fault.cause(), error = %fault, "the environment is failing, not the items: stopping new work; no item is charged an attempt");
        }
        self.halt.cancel();
        anyhow::Error::new(fault)
    }

    /// The fault of `service` failing for every item (see [`Outage`]); `last` is the last
    /// failure.
    pub fn outage_fault(&self, service: Service, last: String) -> EnvironmentFault {
        let failures = self.outage.failures_since_success(service);
        match service {
            Service::Content => EnvironmentFault::ContentOutage { failures, last },
            Service::Store => EnvironmentFault::StoreUnavailable {
                store: self.store.clone(),
                failures,
                last,
            },
        }
    }

    /// Whether a fault has stopped new work.
    pub fn is_halted(&self) -> bool {
        self.fault.get().is_some()
    }
}

/// A shared service an item's attempt can fail at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The content download (Graph, or the host it redirected to).
    Content,
    /// Staging or committing the item's blob.
    Store,
}

impl Service {
    fn index(self) -> usize {
        match self {
            Service::Content => 0,
            Service::Store => 1,
        }
    }
}

/// What to do with an item that has used up its attempts, failing as an outage would make
/// it fail (see [`Outage::verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Something else succeeded meanwhile: the failure is the item's own; record it.
    Charge,
    /// Nothing succeeded while at least one other item failed the same way: the environment
    /// is failing; halt the run, charge nothing.
    Environment,
    /// Unproven either way (an item from the retry queue, tried before the organizer's new
    /// items): record nothing now; the organizer's pass decides once its new items were
    /// tried ([`Outage::resolve_deferred`]).
    Defer,
    /// The run was halted meanwhile: charge nothing.
    Halted,
}

/// Tells an outage of a shared service from an item's own failure.
///
/// Every attempt at a shared service reports its end here ([`success`](Outage::success),
/// [`failure`](Outage::failure)), and every item in the pipeline is counted while it is
/// ([`Outage::enter`]). When an item has used up its attempts, it asks for a
/// [`verdict`](Outage::verdict):
///
/// - if an attempt of that service **succeeded after the item's first attempt began**, the
///   failure is the item's own: [`Verdict::Charge`];
/// - otherwise the item waits, its slot freed, while the rest of the run goes on: the first
///   success makes it [`Verdict::Charge`]; a second item used up all its attempts at the same
///   service with nothing succeeding since either began makes both [`Verdict::Environment`];
///   and when every item still in the pipeline is waiting and it is alone, it is charged (a
///   single failing item proves nothing about the service);
/// - an item from the retry queue does not wait for the organizer's new items, which are
///   tried only after the queue: it is [`Verdict::Defer`]red, and
///   [`resolve_deferred`](Outage::resolve_deferred) decides at the end of the pass.
///
/// Besides, [`failing_everywhere`](Outage::failing_everywhere) sees an outage while items are
/// still retrying: twice an item's attempts failing in a row, spread over two items or more
/// that saw nothing succeed since they began.
///
/// So one bad item among working ones is charged at once, a tenant-wide outage is never
/// charged to anyone, and no item ever waits for a success that cannot come.
#[derive(Debug, Default)]
pub struct Outage {
    state: Mutex<OutageState>,
}

#[derive(Debug, Default)]
struct OutageState {
    /// Counts every attempt's end, so that "after the item began" can be told.
    clock: u64,
    /// Per service: the clock of the last success.
    last_success: [Option<u64>; 2],
    /// Per service: failures since that success.
    failures_since_success: [u64; 2],
    /// Per service: failures since that success of items that began after it (nothing
    /// succeeded in their whole lifetime), and up to two distinct such items.
    unexplained: [u64; 2],
    failing: [[Option<u64>; 2]; 2],
    /// Items that ever entered the pipeline (names them).
    entered: u64,
    /// Items in the pipeline now (waiting or not).
    active: usize,
    /// Of those, items waiting for a verdict, per service.
    waiting: [usize; 2],
}

/// An item's presence in the pipeline ([`Outage::enter`]); leaving is dropping it.
#[derive(Debug)]
pub struct InPipeline<'a> {
    outage: &'a Outage,
    /// The clock when the item began.
    pub began: u64,
    /// Tells the item apart from the others.
    id: u64,
    /// From the retry queue: its failures prove nothing about the service until the
    /// organizer's new items were tried (see [`Verdict::Defer`]).
    retried: bool,
}

impl Drop for InPipeline<'_> {
    fn drop(&mut self) {
        self.outage.lock().active -= 1;
    }
}

/// An item waiting for a verdict on service `.1`, counted until dropped (also when the run
/// abandons it mid-wait).
struct Waiting<'a>(&'a Outage, usize);

impl<'a> Waiting<'a> {
    fn new(outage: &'a Outage, service: usize) -> Self {
        outage.lock().waiting[service] += 1;
        Waiting(outage, service)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting[self.1] -= 1;
    }
}

/// How often a waiting item looks again, and how many looks in a row must find the pipeline
/// idle before it is believed (an item between two others is not idleness).
const WAIT_POLL: Duration = Duration::from_millis(200);
const IDLE_LOOKS: u32 = 5;

impl Outage {
    /// Counts an item in the pipeline until the returned guard is dropped; `retried` for an
    /// item from the retry queue.
    pub fn enter(&self, retried: bool) -> InPipeline<'_> {
        let mut s = self.lock();
        s.active += 1;
        s.entered += 1;
        InPipeline {
            outage: self,
            began: s.clock,
            id: s.entered,
            retried,
        }
    }

    /// An attempt at `service` succeeded (the content service answered, the store took a
    /// blob).
    pub fn success(&self, service: Service) {
        let mut s = self.lock();
        s.clock += 1;
        s.last_success[service.index()] = Some(s.clock);
        s.failures_since_success[service.index()] = 0;
        s.unexplained[service.index()] = 0;
        s.failing[service.index()] = [None, None];
    }

    /// An attempt of `item` at `service` failed as an outage would make it fail (a transport
    /// error, 5xx, 429, a store that refuses writes).
    pub fn failure(&self, service: Service, item: &InPipeline<'_>) {
        let mut s = self.lock();
        let i = service.index();
        s.clock += 1;
        s.failures_since_success[i] += 1;
        // Only a new item that saw nothing succeed since it began counts towards an outage:
        // one that began before the last success may be failing on its own, and queued items
        // (tried first, often the bad ones) are judged after the new ones.
        if item.retried || s.last_success[i].is_some_and(|at| item.began < at) {
            return;
        }
        s.unexplained[i] += 1;
        match s.failing[i] {
            [None, _] => s.failing[i][0] = Some(item.id),
            [Some(first), None] if first != item.id => s.failing[i][1] = Some(item.id),
            _ => {}
        }
    }

    /// Whether `service` has failed at least `attempts` attempts in a row, of two items or
    /// more that saw nothing succeed since they began: an outage, seen before any item has
    /// used up its attempts (which, with every request throttled and retried, can take long).
    pub fn failing_everywhere(&self, service: Service, attempts: u64) -> bool {
        let s = self.lock();
        let i = service.index();
        s.unexplained[i] >= attempts && s.failing[i][1].is_some()
    }

    /// Failed attempts at `service` since its last success.
    pub fn failures_since_success(&self, service: Service) -> u64 {
        self.lock().failures_since_success[service.index()]
    }

    /// Whether `service` succeeded after clock `began`.
    fn succeeded_since(&self, service: Service, began: u64) -> bool {
        self.lock().last_success[service.index()].is_some_and(|at| at > began)
    }

    /// The verdict on an item that began at `item.began` and used up its attempts at
    /// `service` (see the type's documentation); `retried` for an item from the retry queue,
    /// which never waits. Returns as soon as `halted()` says the run was halted.
    pub async fn verdict(
        &self,
        item: &InPipeline<'_>,
        service: Service,
        retried: bool,
        halted: impl Fn() -> bool,
    ) -> Verdict {
        if self.succeeded_since(service, item.began) {
            return Verdict::Charge;
        }
        if retried {
            return Verdict::Defer;
        }
        let i = service.index();
        let _waiting = Waiting::new(self, i);
        let mut idle_looks = 0;
        loop {
            if halted() {
                break Verdict::Halted;
            }
            if self.succeeded_since(service, item.began) {
                break Verdict::Charge;
            }
            let (idle, waiting_here) = {
                let s = self.lock();
                (s.waiting.iter().sum::<usize>() >= s.active, s.waiting[i])
            };
            // Another item used up every attempt too, and nothing succeeded since either began:
            // two items failing all their attempts back to back is the service, not them.
            // (Waiting for every item in flight would take as long as all of them retrying,
            // one after another once the throttled limiter is down to one download.)
            if waiting_here >= 2 {
                break Verdict::Environment;
            }
            idle_looks = if idle { idle_looks + 1 } else { 0 };
            if idle_looks >= IDLE_LOOKS {
                // Alone, with nothing left in flight to learn from: one item proves nothing
                // about the service.
                break Verdict::Charge;
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// At the end of an organizer's pass, for a retried item whose verdict was deferred: it
    /// is charged if `service` succeeded since it began (it was its own failure), or if it
    /// is the only such item (`deferred == 1`: one item proves nothing about the service);
    /// otherwise nothing succeeded while several failed: [`Verdict::Environment`].
    pub fn resolve_deferred(&self, service: Service, began: u64, deferred: usize) -> Verdict {
        if self.succeeded_since(service, began) || deferred < 2 {
            Verdict::Charge
        } else {
            Verdict::Environment
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutageState> {
        // A few counters, consistent after every statement: a panic elsewhere while the lock
        // was held leaves nothing half-updated.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
