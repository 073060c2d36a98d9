//! What is archived: one module per kind says what to discover (the first delta request),
//! what to fetch and what manifest to write. Everything else — the round, paging,
//! checkpoints, the queue, dead letters, outcome accounting — is one shared pipeline
//! (`round`, `queue`, `pipeline`) generic over [`ItemKind`].

use std::future::Future;

use std::collections::HashSet;

use recarch_delta::{DeltaClient, DeltaError, DeltaRequest};
use recarch_store::{Kind, OrganizerId, item_key};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Config;
use crate::pipeline::{ItemContext, ItemOutcome};

pub mod contact;
pub mod recording;
pub mod transcript;

pub use contact::Contacts;
pub use recording::Recordings;
pub use transcript::Transcripts;

/// One kind of archived item.
pub trait ItemKind: Sync {
    /// The item as typed from a delta page (the raw JSON travels alongside).
    type Item: DeserializeOwned + Send + Sync;

    /// Where its manifests and state live.
    const KIND: Kind;

    /// What one item is called in messages (`recording`).
    const NOUN: &'static str;

    /// The item's Graph id.
    fn id(item: &Self::Item) -> &str;

    /// The delta queries an organizer's pass walks, each with its own checkpoint: `None` for
    /// the organizer's one query (the default), else a source id each (a contact folder).
    fn sources<'a>(
        &'a self,
        _delta: &'a DeltaClient,
        _config: &'a Config,
        _organizer: &'a OrganizerId,
    ) -> impl Future<Output = Result<Vec<Option<String>>, DeltaError>> + Send + 'a {
        std::future::ready(Ok(vec![None]))
    }

    /// The first request of a full round of `source` (see [`ItemKind::sources`]) for
    /// `organizer`.
    fn first_request(&self, config: &Config, organizer: &OrganizerId, source: Option<&str>) -> DeltaRequest;

    /// The query options configured for this kind, as they must appear (percent-decoded) in
    /// any link that continues or restarts a round: a `Location` after 410 Gone that lacks
    /// one of them would silently widen or narrow what is archived, so it is not followed.
    /// By default the meeting artifacts' `startDateTime`.
    fn configured_options(&self, config: &Config) -> Vec<String> {
        config
            .source
            .start_date_time
            .iter()
            .map(|t| format!("startDateTime={t}"))
            .collect()
    }

    /// Archives one item (`raw` is the item exactly as Graph sent it).
    fn archive<'a>(
        &'a self,
        ctx: &'a ItemContext,
        organizer: &'a OrganizerId,
        item: &'a Self::Item,
        raw: &'a Value,
    ) -> impl Future<Output = ItemOutcome> + Send + 'a;

    /// What the round does with a listed item it is about to start, given what it has seen.
    /// By default an id is archived once: listed again in this run (or tried from the queue
    /// already) it is a duplicate, and a dead letter listed again is not retried. Kinds whose
    /// ids come back with new content (a contact edited) archive every listing as a version,
    /// in the order listed.
    fn admit(&self, id: &str, seen: &Seen<'_>) -> Admit {
        if seen.tried.contains(id) || seen.in_flight.contains(id) {
            Admit::Duplicate
        } else if seen.dead.contains(&item_key(id)) {
            Admit::DeadLetter
        } else {
            Admit::Start
        }
    }

    /// What an `@removed` marker for `id` (`raw` as Graph sent it) becomes: by default the
    /// archive keeps the item and only drops it from the retry queue; a versioned kind
    /// archives it as a tombstone version.
    fn removed(&self, _id: &str, _raw: &Value) -> Removed<Self::Item> {
        Removed::Forget
    }

    /// Whether an archived version replaces an older one still queued (versioned kinds).
    fn supersedes_queued(&self) -> bool {
        false
    }

    /// Whether a full round must be reconciled with the archive (see
    /// [`ItemKind::unlisted_tombstone`]); the round then remembers every id it lists.
    fn reconciles(&self) -> bool {
        false
    }

    /// Reconciling kinds: every archived item of `organizer` whose newest version is live
    /// (not a tombstone), as `(source, id)`. A full round of a source that does not list one
    /// of them gets it a tombstone. Read at most once per organizer pass.
    fn live_ids<'a>(
        &'a self,
        _ctx: &'a ItemContext,
        _organizer: &'a OrganizerId,
    ) -> impl Future<Output = Result<Vec<(Option<String>, String)>, recarch_store::StoreError>> + Send + 'a {
        std::future::ready(Ok(Vec::new()))
    }

    /// Reconciling kinds: the marker archived for an item of `source` that is archived as
    /// live but that a full round did not list (it was removed while no delta could say so),
    /// as Graph would have sent its `@removed` marker.
    fn unlisted_tombstone(&self, id: &str, _source: Option<&str>) -> Value {
        tombstone_marker(id)
    }

    /// What to tell an operator when Graph answers 403 to this kind's delta query.
    fn forbidden_hint(&self) -> &'static str;
}

/// The `@removed.reason` of a tombstone the archiver writes itself (see
/// [`ItemKind::unlisted_tombstone`]).
pub const NOT_IN_FULL_ROUND: &str = "notListedInFullRound";

/// An `@removed` marker for `id` with reason [`NOT_IN_FULL_ROUND`].
pub fn tombstone_marker(id: &str) -> Value {
    serde_json::json!({"id": id, "@removed": {"reason": NOT_IN_FULL_ROUND}})
}

/// What the round knows when it is about to start an item.
pub struct Seen<'a> {
    /// Ids tried from the queue in this run.
    pub tried: &'a HashSet<String>,
    /// Ids that were queued when the run started.
    pub queued: &'a HashSet<String>,
    /// Item keys of dead letters (never retried automatically).
    pub dead: &'a HashSet<String>,
    /// Ids being archived right now.
    pub in_flight: &'a HashSet<String>,
}

/// What the round does with a listed item ([`ItemKind::admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Archive it now.
    Start,
    /// Archive it once the listing of the same id in flight is done (a later version).
    AfterInFlight,
    /// Already archived or tried in this run: settled as a duplicate.
    Duplicate,
    /// On the dead-letter list: settled without a retry.
    DeadLetter,
}

/// What an `@removed` marker becomes ([`ItemKind::removed`]).
#[derive(Debug)]
pub enum Removed<T> {
    /// The archive keeps the item; the marker only drops it from the retry queue.
    Forget,
    /// Archived like a listed item (a tombstone version).
    Archive(T),
}
