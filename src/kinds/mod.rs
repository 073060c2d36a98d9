//! What is archived: one module per kind says what to discover (the first delta request),
//! what to fetch and what manifest to write. Everything else — the round, paging,
//! checkpoints, the queue, dead letters, outcome accounting — is one shared pipeline
//! (`round`, `queue`, `pipeline`) generic over [`ItemKind`].

use std::future::Future;

use recarch_delta::{DeltaClient, DeltaError, DeltaRequest};
use recarch_store::{Kind, OrganizerId};
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

    /// Whether an item id comes back with new content (a contact edited): every version is
    /// archived, in the order listed, and `@removed` markers are archived as tombstone
    /// versions. Otherwise (recordings, transcripts) an id is archived once and later
    /// listings of it are duplicates.
    const VERSIONED: bool = false;

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

    /// Versioned kinds: every archived item of `organizer` whose newest version is live (not
    /// a tombstone), as `(source, id)`. A full round of a source that does not list one of its
    /// items gets it a tombstone. Read at most once per organizer pass.
    fn live_ids<'a>(
        &'a self,
        _ctx: &'a ItemContext,
        _organizer: &'a OrganizerId,
    ) -> impl Future<Output = Result<Vec<(Option<String>, String)>, recarch_store::StoreError>> + Send + 'a {
        std::future::ready(Ok(Vec::new()))
    }

    /// What to tell an operator when Graph answers 403 to this kind's delta query.
    fn forbidden_hint(&self) -> &'static str;
}
