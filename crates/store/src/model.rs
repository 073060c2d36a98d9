//! The JSON documents kept in the archive: manifests and per-organizer state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use recarch_failure::FailureClass;

use crate::{Kind, OrganizerId, Sha256Digest};

/// Schema tag of [`Manifest`] documents.
pub const MANIFEST_SCHEMA: &str = "recarch.manifest.v1";

/// Schema tag of [`OrganizerState`] documents.
pub const STATE_SCHEMA: &str = "recarch.state.v1";

/// Schema tag of [`DirectoryState`] documents.
pub const DIRECTORY_SCHEMA: &str = "recarch.directory.v1";

/// Schema tag of queue entries (`state/<kind>/<organizer>/queue/<key>.json`).
pub const QUEUED_SCHEMA: &str = "recarch.queued.v1";

/// Schema tag of dead letters (`state/<kind>/<organizer>/dead/<key>.json`).
pub const DEAD_LETTER_SCHEMA: &str = "recarch.deadletter.v1";

/// The `kind` of a manifest describing a call recording.
pub const KIND_CALL_RECORDING: &str = "callRecording";

/// One archived recording: `manifests/recordings/<organizerId>/<key>.json`.
///
/// The fields below are what the store understands and checks; anything else the caller
/// wants to keep (meeting id, creation time, the source item verbatim, …) goes into
/// [`Manifest::extra`] and is stored as top-level members of the JSON object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always [`MANIFEST_SCHEMA`].
    pub schema: String,
    /// What was archived, e.g. [`KIND_CALL_RECORDING`].
    pub kind: String,
    /// The source id of the recording, verbatim; its SHA-256 names the manifest.
    pub id: String,
    /// The organizer whose recording this is (`organizerId`).
    pub organizer_id: OrganizerId,
    /// The recording bytes.
    pub content: ContentRef,
    /// When the recording was archived (RFC 3339, UTC).
    pub archived_at: DateTime<Utc>,
    /// Caller-owned members, stored verbatim next to the ones above. Must not reuse the
    /// names of the fields above.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// Names of the members [`Manifest`] owns; [`Manifest::extra`] must not use them.
pub(crate) const MANIFEST_RESERVED: [&str; 6] = ["schema", "kind", "id", "organizerId", "content", "archivedAt"];

/// The member of a versioned item's manifest listing its versions, oldest first (see
/// [`crate::Archive::append_version`]).
pub const VERSIONS: &str = "versions";

impl Manifest {
    /// A manifest for `content` of recording `id`, archived now, with no extra members.
    pub fn new(kind: impl Into<String>, id: impl Into<String>, organizer_id: OrganizerId, content: ContentRef) -> Self {
        Self {
            schema: MANIFEST_SCHEMA.to_owned(),
            kind: kind.into(),
            id: id.into(),
            organizer_id,
            content,
            archived_at: Utc::now(),
            extra: serde_json::Map::new(),
        }
    }

    /// Its `source` member ([`crate::MANIFEST_SOURCE`]: `adhocCall` for an ad hoc call's
    /// artifacts), if any.
    pub fn source(&self) -> Option<&str> {
        self.extra.get(crate::MANIFEST_SOURCE).and_then(Value::as_str)
    }

    /// The archive's kind it is filed under (by its `kind` and `source`); `None` for one the
    /// archive does not know.
    pub fn archive_kind(&self) -> Option<Kind> {
        Kind::of_manifest(&self.kind, self.source())
    }

    /// Its key in the archive (`manifests/<kind>/<organizer>/<hex SHA-256 of id>.json`);
    /// `None` for a kind the archive does not know.
    pub fn key(&self) -> Option<String> {
        let kind = self.archive_kind()?;
        Some(crate::layout::manifest_key_of(kind, &self.organizer_id, &self.id))
    }
}

/// Reference from a manifest to its blob.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContentRef {
    /// SHA-256 of the bytes.
    pub sha256: Sha256Digest,
    /// Length of the bytes.
    pub size: u64,
    /// Media type, e.g. `video/mp4`.
    pub media_type: String,
    /// Blob key, always `blobs/sha256/<hex of sha256>`.
    pub blob: String,
}

impl ContentRef {
    /// A reference to the blob named `sha256`, filling in [`ContentRef::blob`].
    pub fn new(sha256: Sha256Digest, size: u64, media_type: impl Into<String>) -> Self {
        Self {
            sha256,
            size,
            media_type: media_type.into(),
            blob: crate::layout::blob_key(&sha256),
        }
    }
}

/// Per-organizer progress of one kind: `state/<kind>/<organizerId>.json`.
///
/// One shape for every kind: each source an organizer's pass walks has its cursor in
/// [`OrganizerState::sources`] — the organizer's one delta query (recordings, transcripts)
/// under [`ORGANIZER_SOURCE`], a contact folder under its id. The counters at the top count
/// the organizer's passes that completed every source. Documents of earlier versions, which
/// kept the one query's checkpoint at the top (`checkpoint`), are read as this shape and
/// written back in it.
///
/// Failed items are not in this document: each has its own queue entry or dead letter beside
/// it (see [`QueuedItem`], [`DeadLetter`]), so saving a checkpoint costs the same whatever the
/// queue holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", from = "StateDocument")]
pub struct OrganizerState {
    /// Always [`STATE_SCHEMA`].
    pub schema: String,
    /// What this state tracks (absent in documents of older versions: recordings).
    pub kind: Kind,
    /// The organizer.
    pub organizer_id: OrganizerId,
    /// Items queued by versions that kept the queue inside this document. Read for migration
    /// only: the run moves them to queue entries and saves this empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue: Vec<QueuedItem>,
    /// How many passes completed a round of every source.
    pub rounds_completed: u64,
    /// When a pass last completed a round of every source (everything discovered until then
    /// is archived, queued or dead-lettered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_completed_at: Option<DateTime<Utc>>,
    /// Where each source stands, by source id ([`ORGANIZER_SOURCE`] for the organizer's one
    /// query).
    #[serde(default)]
    pub sources: std::collections::BTreeMap<String, SourceState>,
    /// Names that could not be read when items were archived, for a later pass to fill in.
    #[serde(default, skip_serializing_if = "NamesPending::is_empty")]
    pub names_pending: NamesPending,
    /// When this document was last written.
    pub updated_at: DateTime<Utc>,
}

/// The most meetings [`NamesPending`] keeps per organizer and kind: past that, a meeting whose
/// names could not be read is not tracked (its items are archived all the same; the names of
/// the meetings kept are filled in first, and new failures are tracked again once they are).
pub const NAMES_PENDING_MAX: usize = 1000;

/// Names missing from what was archived, because Graph would not give them when the items were
/// archived (403, 404, 5xx, a timeout, bad JSON): manifests are written once and keep lacking
/// them, so a later pass reads them again and records them where records may change (the
/// meeting's index and new catalog entries for the manifests). Bounded by
/// [`NAMES_PENDING_MAX`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamesPending {
    /// Meetings whose index lacks names: the meeting's subject and times, or the organizer's
    /// names, could not be read when one of its items was archived.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub meetings: std::collections::BTreeSet<String>,
    /// The organizer's names could not be read when one of its items was archived.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub organizer: bool,
}

impl NamesPending {
    /// Nothing to fill in.
    pub fn is_empty(&self) -> bool {
        self.meetings.is_empty() && !self.organizer
    }

    /// Adds what `other` lacks, keeping at most [`NAMES_PENDING_MAX`] meetings; returns how
    /// many meetings were left out.
    pub fn merge(&mut self, other: NamesPending) -> usize {
        self.organizer |= other.organizer;
        let mut left_out = 0;
        for meeting in other.meetings {
            if self.meetings.len() < NAMES_PENDING_MAX || self.meetings.contains(&meeting) {
                self.meetings.insert(meeting);
            } else {
                left_out += 1;
            }
        }
        left_out
    }
}

/// The source id of a kind's one delta query per organizer (recordings, transcripts) in
/// [`OrganizerState::sources`]; contact folders use their own ids.
pub const ORGANIZER_SOURCE: &str = "organizer";

/// An organizer state as stored, in this version's shape or an earlier one's.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateDocument {
    schema: String,
    #[serde(default = "recordings")]
    kind: Kind,
    organizer_id: OrganizerId,
    /// Earlier versions: the one query's checkpoint.
    #[serde(default)]
    checkpoint: Option<Checkpoint>,
    #[serde(default)]
    queue: Vec<QueuedItem>,
    #[serde(default)]
    rounds_completed: u64,
    #[serde(default)]
    last_completed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    sources: std::collections::BTreeMap<String, SourceState>,
    #[serde(default)]
    names_pending: NamesPending,
    updated_at: DateTime<Utc>,
}

impl From<StateDocument> for OrganizerState {
    fn from(d: StateDocument) -> Self {
        let mut sources = d.sources;
        // An earlier version's one-query document: its checkpoint and counters become the
        // organizer source's.
        let one_query = d.checkpoint.is_some() || (sources.is_empty() && d.rounds_completed > 0);
        if one_query && !sources.contains_key(ORGANIZER_SOURCE) {
            sources.insert(
                ORGANIZER_SOURCE.to_owned(),
                SourceState {
                    checkpoint: d.checkpoint,
                    rounds_completed: d.rounds_completed,
                    last_completed_at: d.last_completed_at,
                    watermark: None,
                },
            );
        }
        OrganizerState {
            schema: d.schema,
            kind: d.kind,
            organizer_id: d.organizer_id,
            queue: d.queue,
            rounds_completed: d.rounds_completed,
            last_completed_at: d.last_completed_at,
            sources,
            names_pending: d.names_pending,
            updated_at: d.updated_at,
        }
    }
}

/// Where one source of an organizer (its one delta query, one contact folder, or a time
/// window listing) stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SourceState {
    /// Where to resume; `None` starts a full round from the first request.
    pub checkpoint: Option<Checkpoint>,
    /// How many full rounds (reaching a delta link, or the end of a window) have completed.
    pub rounds_completed: u64,
    /// When a round last reached its delta link (or the end of its window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_completed_at: Option<DateTime<Utc>>,
    /// Sources listed by time window (no delta query): the end of the last window walked to
    /// its end, every item of it settled. The next window starts there (less an overlap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<DateTime<Utc>>,
}

fn recordings() -> Kind {
    Kind::Recordings
}

impl OrganizerState {
    /// Fresh state: no checkpoint, empty queue, no rounds.
    pub fn new(kind: Kind, organizer: OrganizerId) -> Self {
        Self {
            schema: STATE_SCHEMA.to_owned(),
            kind,
            organizer_id: organizer,
            queue: Vec::new(),
            rounds_completed: 0,
            last_completed_at: None,
            sources: std::collections::BTreeMap::new(),
            names_pending: NamesPending::default(),
            updated_at: Utc::now(),
        }
    }

    /// The checkpoint of `source` (`None`: the organizer's one delta query).
    pub fn checkpoint_of(&self, source: Option<&str>) -> Option<&Checkpoint> {
        self.sources
            .get(source.unwrap_or(ORGANIZER_SOURCE))
            .and_then(|s| s.checkpoint.as_ref())
    }

    /// Sets (or clears) the checkpoint of `source`.
    pub fn set_checkpoint(&mut self, source: Option<&str>, checkpoint: Option<Checkpoint>) {
        self.sources
            .entry(source.unwrap_or(ORGANIZER_SOURCE).to_owned())
            .or_default()
            .checkpoint = checkpoint;
    }

    /// Counts a round of `source` that reached its delta link at `at`; for the organizer's one
    /// query (`None`) that is also a pass that completed every source. Passes over several
    /// sources count theirs with [`OrganizerState::pass_completed`].
    pub fn round_completed(&mut self, source: Option<&str>, at: DateTime<Utc>) {
        let s = self
            .sources
            .entry(source.unwrap_or(ORGANIZER_SOURCE).to_owned())
            .or_default();
        s.rounds_completed += 1;
        s.last_completed_at = Some(at);
        if source.is_none() {
            self.pass_completed(at);
        }
    }

    /// The watermark of `source` (see [`SourceState::watermark`]).
    pub fn watermark_of(&self, source: Option<&str>) -> Option<DateTime<Utc>> {
        self.sources
            .get(source.unwrap_or(ORGANIZER_SOURCE))
            .and_then(|s| s.watermark)
    }

    /// Counts a window of `source` walked to its end, every item of it settled: the
    /// watermark moves to `until` (never back) and the round counts as completed at `at`.
    pub fn window_walked(&mut self, source: Option<&str>, until: DateTime<Utc>, at: DateTime<Utc>) {
        let s = self
            .sources
            .entry(source.unwrap_or(ORGANIZER_SOURCE).to_owned())
            .or_default();
        s.watermark = Some(s.watermark.map_or(until, |w| w.max(until)));
        self.round_completed(source, at);
    }

    /// Counts a pass that completed a round of every source at `at`.
    pub fn pass_completed(&mut self, at: DateTime<Utc>) {
        self.rounds_completed += 1;
        self.last_completed_at = Some(at);
    }
}

/// What a shard's runs leave for the next one to report: `state/shards/<shard>.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// When a run of the shard last ended with everything archived (exit 0).
    pub last_success_at: Option<DateTime<Utc>>,
}

/// A shard's copy of the directory, for discovering organizers among all users:
/// `state/directory/<shard>/users.json`. Kept per shard so that shards running side by side
/// never write the same document; each follows the directory's changes on its own.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryState {
    /// Always [`DIRECTORY_SCHEMA`].
    pub schema: String,
    /// The link that continues from this copy (a delta link once a round completed).
    pub checkpoint: Option<Checkpoint>,
    /// Every user known, by id.
    pub users: std::collections::BTreeMap<String, DirectoryEntry>,
    /// When this document was last written.
    pub updated_at: Option<DateTime<Utc>>,
}

/// What discovery needs to know of a user.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    /// Sign-in enabled.
    pub enabled: bool,
    /// A member of the tenant (not a guest).
    pub member: bool,
}

/// Where a delta enumeration stopped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// Whether `link` continues a round or starts the next one.
    pub kind: LinkKind,
    /// The opaque link, verbatim.
    pub link: String,
}

/// The two kinds of resumption links.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// A next-page link: the current round is not finished (`"next"`).
    Next,
    /// A delta link: the round is finished; following it yields changes (`"delta"`).
    Delta,
}

/// An item whose archiving failed and is to be retried: one queue entry,
/// `state/<kind>/<organizer>/queue/<hex SHA-256 of id>.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueuedItem {
    /// Source id of the item.
    pub id: String,
    /// The source item, verbatim.
    pub item: Value,
    /// In how many runs it failed so far.
    pub attempts: u32,
    /// In how many runs it failed permanently (a dead letter at the second).
    #[serde(default)]
    pub permanent_failures: u32,
    /// The class of the last failure.
    #[serde(default = "transient")]
    pub last_class: FailureClass,
    /// The last failure, for operators (must not contain secrets).
    pub last_error: String,
    /// When it first failed.
    pub first_failed_at: DateTime<Utc>,
    /// When it last failed.
    pub last_failed_at: DateTime<Utc>,
}

fn transient() -> FailureClass {
    FailureClass::Transient
}

impl QueuedItem {
    /// A first failure of `id` (with `item`, the source item verbatim), now.
    pub fn first_failure(id: impl Into<String>, item: Value, class: FailureClass, reason: impl Into<String>) -> Self {
        let now = Utc::now();
        QueuedItem {
            id: id.into(),
            item,
            attempts: 1,
            permanent_failures: u32::from(class == FailureClass::Permanent),
            last_class: class,
            last_error: reason.into(),
            first_failed_at: now,
            last_failed_at: now,
        }
    }

    /// Records one more failed run.
    pub fn failed_again(&mut self, class: FailureClass, reason: impl Into<String>) {
        self.attempts = self.attempts.saturating_add(1);
        if class == FailureClass::Permanent {
            self.permanent_failures = self.permanent_failures.saturating_add(1);
        }
        self.last_class = class;
        self.last_error = reason.into();
        self.last_failed_at = Utc::now();
    }
}

/// An item that is never retried automatically: `state/<kind>/<organizer>/dead/<key>.json`.
/// `recarch retry` moves it back to the queue.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The queue entry as it was when the item was given up on.
    #[serde(flatten)]
    pub item: QueuedItem,
    /// When it was dead-lettered.
    pub dead_lettered_at: DateTime<Utc>,
    /// Why it was given up on (attempts exhausted, or a permanent failure seen twice).
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrganizerId {
        OrganizerId::parse("11111111-2222-3333-4444-555555555555").expect("valid")
    }

    #[test]
    fn manifest_json_shape() {
        let digest = Sha256Digest::of(b"x");
        let mut m = Manifest::new(
            KIND_CALL_RECORDING,
            "rec/1+2=",
            org(),
            ContentRef::new(digest, 1, "video/mp4"),
        );
        m.extra.insert("meetingId".into(), Value::from("m1"));
        m.extra
            .insert("graph".into(), serde_json::json!({"id": "rec/1+2=", "x": [1]}));
        let v = serde_json::to_value(&m).expect("serialize");
        assert_eq!(v["schema"], MANIFEST_SCHEMA);
        assert_eq!(v["organizerId"], org().as_str());
        assert_eq!(v["content"]["sha256"], digest.to_hex());
        assert_eq!(v["content"]["mediaType"], "video/mp4");
        assert_eq!(v["content"]["blob"], format!("blobs/sha256/{}", digest.to_hex()));
        assert_eq!(v["meetingId"], "m1");
        assert_eq!(v["graph"]["x"][0], 1);
        let back: Manifest = serde_json::from_value(v).expect("deserialize");
        assert_eq!(back, m);
    }

    #[test]
    fn failures_count_runs_and_permanent_ones() {
        let mut q = QueuedItem::first_failure("a", Value::Null, FailureClass::Permanent, "404");
        assert_eq!((q.attempts, q.permanent_failures), (1, 1));
        q.failed_again(FailureClass::Transient, "503");
        q.failed_again(FailureClass::Permanent, "404");
        assert_eq!((q.attempts, q.permanent_failures), (3, 2));
        assert_eq!(q.last_error, "404");
        let d = DeadLetter {
            item: q,
            dead_lettered_at: Utc::now(),
            reason: "r".into(),
        };
        let v = serde_json::to_value(&d).expect("serialize");
        assert_eq!(v["id"], "a");
        assert_eq!(v["lastClass"], "permanent");
        assert_eq!(v["reason"], "r");
        assert_eq!(serde_json::from_value::<DeadLetter>(v).expect("back"), d);
    }

    #[test]
    fn state_json_shape() {
        let mut s = OrganizerState::new(Kind::Recordings, org());
        s.set_checkpoint(
            None,
            Some(Checkpoint {
                kind: LinkKind::Delta,
                link: "https://example.invalid/delta?token=x".into(),
            }),
        );
        let v = serde_json::to_value(&s).expect("serialize");
        assert_eq!(v["sources"][ORGANIZER_SOURCE]["checkpoint"]["kind"], "delta");
        assert!(v.get("checkpoint").is_none(), "one shape for every kind: {v}");
        assert_eq!(v["roundsCompleted"], 0);
        assert!(v.get("queue").is_none(), "no queue inside the state: {v}");
        let back: OrganizerState = serde_json::from_value(v).expect("deserialize");
        assert_eq!(back, s);
        // Documents of older versions: no kind, the queue inside, no class in queued items.
        let old = serde_json::json!({
            "schema": STATE_SCHEMA, "organizerId": org().as_str(), "checkpoint": null,
            "queue": [{"id": "a", "item": {"id": "a"}, "attempts": 2, "lastError": "x",
                       "firstFailedAt": "2024-01-01T00:00:00Z", "lastFailedAt": "2024-01-02T00:00:00Z"}],
            "roundsCompleted": 3, "updatedAt": "2024-01-02T00:00:00Z"
        });
        let old: OrganizerState = serde_json::from_value(old).expect("older document");
        assert_eq!(old.kind, Kind::Recordings);
        assert_eq!(old.queue[0].last_class, FailureClass::Transient);
        assert_eq!(old.queue[0].permanent_failures, 0);
    }

    #[test]
    fn an_earlier_one_query_document_reads_as_the_organizer_source() {
        let old = serde_json::json!({
            "schema": STATE_SCHEMA,
            "organizerId": org().as_str(),
            "checkpoint": {"kind": "delta", "link": "https://g/delta?$deltatoken=a"},
            "roundsCompleted": 4,
            "lastCompletedAt": "2026-01-02T03:04:05Z",
            "updatedAt": "2026-01-02T03:04:05Z"
        });
        let state: OrganizerState = serde_json::from_value(old).expect("reads");
        assert_eq!(state.kind, Kind::Recordings);
        let cp = state.checkpoint_of(None).expect("migrated");
        assert_eq!(
            (cp.kind, cp.link.as_str()),
            (LinkKind::Delta, "https://g/delta?$deltatoken=a")
        );
        assert_eq!(state.sources[ORGANIZER_SOURCE].rounds_completed, 4);
        assert_eq!(state.rounds_completed, 4);
        // Written back in this version's shape, and read back the same.
        let written = serde_json::to_value(&state).expect("writes");
        assert!(written.get("checkpoint").is_none(), "{written}");
        assert_eq!(written["sources"][ORGANIZER_SOURCE]["checkpoint"]["kind"], "delta");
        let again: OrganizerState = serde_json::from_value(written).expect("reads again");
        assert_eq!(again, state);
    }

    #[test]
    fn sources_keep_their_own_cursors_and_passes_count_apart() {
        let mut state = OrganizerState::new(Kind::Contacts, org());
        let at = Utc::now();
        let next = Checkpoint {
            kind: LinkKind::Next,
            link: "n".into(),
        };
        state.set_checkpoint(Some("folder-a"), Some(next));
        state.round_completed(Some("folder-b"), at);
        assert_eq!(
            state.checkpoint_of(Some("folder-a")).map(|c| c.kind),
            Some(LinkKind::Next)
        );
        assert_eq!(state.checkpoint_of(None), None);
        assert_eq!(state.rounds_completed, 0, "a folder's round is not a pass");
        state.pass_completed(at);
        assert_eq!(
            (state.rounds_completed, state.sources["folder-b"].rounds_completed),
            (1, 1)
        );
    }
}
