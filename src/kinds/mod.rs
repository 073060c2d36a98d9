//! What is archived: one module per kind says what to discover (the first delta request),
//! what to fetch and what manifest to write. Everything else — the round, paging,
//! checkpoints, the queue, dead letters, outcome accounting — is one shared pipeline
//! (`round`, `queue`, `pipeline`) generic over [`ItemKind`].

use std::future::Future;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use recarch_delta::{DeltaClient, DeltaError, DeltaRequest, Paging};
use recarch_store::{Container, Kind, MANIFEST_SOURCE, OrganizerId, SOURCE_ADHOC_CALL, item_key};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::pipeline::{ItemContext, ItemOutcome};

pub mod adhoc;
pub mod adhoc_recording;
pub mod adhoc_transcript;
pub mod contact;
pub mod recording;
pub mod transcript;

pub use adhoc_recording::AdhocRecordings;
pub use adhoc_transcript::AdhocTranscripts;
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

    /// How its source is paged: a delta query (the default: the round resumes from the
    /// saved link) or a plain listing of a time window ([`Paging::List`]: the round walks
    /// [`RoundStart::window`] from its first page each time, and moves the source's
    /// watermark to the window's end once every item of it is settled).
    const PAGING: Paging = Paging::Delta;

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

    /// The first request of a full round of `start.source` (see [`ItemKind::sources`]) for
    /// `start.organizer`.
    fn first_request(&self, config: &Config, start: &RoundStart<'_>) -> DeltaRequest;

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

    /// The keys archiving `item` may write under the prefixes the ledger logs: named in an
    /// intent before the page's items start, so that a run killed mid-page loses no leaf. By
    /// default its manifest.
    fn writes(&self, organizer: &OrganizerId, item: &Self::Item) -> Vec<String> {
        vec![recarch_store::Archive::manifest_key_of(
            Self::KIND,
            organizer,
            Self::id(item),
        )]
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

/// Where a full round starts.
#[derive(Debug, Clone, Copy)]
pub struct RoundStart<'a> {
    /// Whose items.
    pub organizer: &'a OrganizerId,
    /// The source (a contact folder) when the kind has several.
    pub source: Option<&'a str>,
    /// Kinds listed by time window ([`Paging::List`]): the window this round lists.
    pub window: Window,
}

/// A time window a listing covers: from the source's watermark (`None` before its first
/// complete window) to when the round started, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The end of the last window walked to its end.
    pub watermark: Option<DateTime<Utc>>,
    /// The end of this window.
    pub until: DateTime<Utc>,
}

/// Where recordings and transcripts are listed: on online meetings (delta queries per
/// organizer) or on ad hoc calls (time windows per user). Their items are archived alike; the
/// surface says which kinds, manifest members and index they get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `onlineMeetings/getAllRecordings(…)/delta`, `getAllTranscripts(…)/delta`.
    OnlineMeeting,
    /// `adhocCalls/getAllRecordings(…)`, `getAllTranscripts(…)`.
    AdhocCall,
}

impl Surface {
    /// The kind of its recordings.
    pub fn recordings(self) -> Kind {
        match self {
            Surface::OnlineMeeting => Kind::Recordings,
            Surface::AdhocCall => Kind::AdhocRecordings,
        }
    }

    /// The kind of its transcripts.
    pub fn transcripts(self) -> Kind {
        match self {
            Surface::OnlineMeeting => Kind::Transcripts,
            Surface::AdhocCall => Kind::AdhocTranscripts,
        }
    }

    /// The index its items are listed in.
    pub fn container(self) -> Container {
        match self {
            Surface::OnlineMeeting => Container::Meeting,
            Surface::AdhocCall => Container::Call,
        }
    }

    /// The id of an item's meeting or call, whichever this surface groups by.
    pub fn container_id<'a>(self, meeting_id: Option<&'a str>, call_id: Option<&'a str>) -> Option<&'a str> {
        match self {
            Surface::OnlineMeeting => meeting_id,
            Surface::AdhocCall => call_id,
        }
    }

    /// The meeting whose subject and times an item listed on this surface is named by: its
    /// `meetingId` for a meeting's, none for an ad hoc call's (a call has no subject).
    pub fn named_meeting(self, meeting_id: Option<&str>) -> Option<&str> {
        match self {
            Surface::OnlineMeeting => meeting_id.filter(|m| !m.is_empty()),
            Surface::AdhocCall => None,
        }
    }

    /// The keys archiving an item of `kind` listed on this surface may write: its manifest and
    /// its meeting's or call's index.
    pub fn writes(self, kind: Kind, organizer: &OrganizerId, id: &str, container_id: Option<&str>) -> Vec<String> {
        let mut keys = vec![recarch_store::Archive::manifest_key_of(kind, organizer, id)];
        if let Some(container) = container_id.filter(|c| !c.is_empty()) {
            keys.push(recarch_store::index_key(self.container(), organizer, container));
        }
        keys
    }

    /// The manifest members that say where an item was listed: `meetingId` for a meeting's;
    /// `"source": "adhocCall"` and `callId` for a call's.
    pub fn manifest_members(self, meeting_id: Option<&str>, call_id: Option<&str>) -> Map<String, Value> {
        let text = |v: Option<&str>| v.map_or(Value::Null, |v| Value::String(v.to_owned()));
        let mut members = Map::new();
        match self {
            Surface::OnlineMeeting => {
                members.insert("meetingId".into(), text(meeting_id));
            }
            Surface::AdhocCall => {
                members.insert(MANIFEST_SOURCE.into(), Value::String(SOURCE_ADHOC_CALL.into()));
                members.insert("callId".into(), text(call_id));
            }
        }
        members
    }
}

/// The first request of an ad hoc call kind's window: from the watermark less
/// `[source].adhoc_overlap` (before the first complete window: from `[source].start_date_time`,
/// or all history) to [`Window::until`].
pub fn window_request(
    config: &Config,
    start: &RoundStart<'_>,
    artifacts: recarch_delta::AdhocArtifacts,
) -> DeltaRequest {
    let since = match start.window.watermark {
        Some(watermark) => Some(
            chrono::Duration::from_std(config.source.adhoc_overlap)
                .ok()
                .and_then(|overlap| watermark.checked_sub_signed(overlap))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        ),
        None => config
            .source
            .start_date_time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
    };
    recarch_delta::resources::adhoc_request(
        &config.graph.base_url,
        start.organizer.as_str(),
        artifacts,
        since,
        start.window.until,
    )
}

/// `{base}/users/{user}/adhocCalls/{callId}/{recordings|transcripts}/{id}/content`: where the
/// ad hoc call surface serves an artifact's content, for an item that does not name its
/// content URL (Graph's items do; this keeps an item without one archivable).
pub fn adhoc_content_url(base: &url::Url, user: &OrganizerId, call_id: &str, collection: &str, id: &str) -> String {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty()
            .extend(["users", user.as_str(), "adhocCalls", call_id, collection, id, "content"]);
    }
    url.to_string()
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
