//! What recordings and transcripts have in common, of meetings and ad hoc
//! calls alike: their kind, where they live, how they are generated and
//! shown, and what their content URLs serve.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::body::Source;
use crate::data::common::{graph_time, meeting_organizer};
use crate::http::encode_segment;
use crate::rng::{Rng, domain, mix64};
use crate::vtt;

/// Set in the serial of a transcript's pre-authenticated URLs, so that they
/// never name a recording.
pub(crate) const TRANSCRIPT_TAG: u64 = 1 << 62;

/// Set in the serial of an ad hoc call artifact's pre-authenticated URLs, so
/// that they never name a meeting's.
pub(crate) const ADHOC_TAG: u64 = 1 << 61;

/// A recording as created in the simulator: a meeting's
/// ([`GraphSim::add_recording`](crate::GraphSim::add_recording)) or an ad
/// hoc call's ([`GraphSim::add_adhoc_recording`](crate::GraphSim::add_adhoc_recording)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInfo {
    /// The callRecording id (standard base64 with `+`, `/` and `=` padding).
    pub id: String,
    /// The meeting id; empty for an ad hoc call's recording (its
    /// `meetingId` is `null`).
    pub meeting_id: String,
    /// `callId`: the meeting's call, or the ad hoc call.
    pub call_id: String,
    /// The user id (lowercase) in its URLs: the meeting's organizer, or the
    /// user the ad hoc call's artifacts are listed for.
    pub organizer: String,
    /// `createdDateTime` exactly as sent (e.g. `2024-01-01T08:03:17.1234567Z`).
    pub created: String,
    /// Content size in bytes.
    pub size: u64,
    /// `recordingContentUrl` exactly as sent.
    pub content_url: String,
    /// The content media type (`video/mp4`).
    pub media_type: String,
    /// `contentCorrelationId`: shared with the transcripts of the same
    /// meeting or call (see [`GraphSim::add_transcript`](crate::GraphSim::add_transcript)).
    pub content_correlation_id: String,
}

/// A transcript as created in the simulator: a meeting's
/// ([`GraphSim::add_transcript`](crate::GraphSim::add_transcript)) or an ad
/// hoc call's ([`GraphSim::add_adhoc_transcript`](crate::GraphSim::add_adhoc_transcript)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptInfo {
    /// The callTranscript id (standard base64 with `+`, `/` and `=` padding).
    pub id: String,
    /// The meeting id (the recording's, when made for one); empty for an ad
    /// hoc call's transcript (its `meetingId` is `null`).
    pub meeting_id: String,
    /// `callId`: the meeting's call (the recording's, when made for one), or
    /// the ad hoc call.
    pub call_id: String,
    /// The user id (lowercase) in its URLs: the meeting's organizer, or the
    /// user the ad hoc call's artifacts are listed for.
    pub organizer: String,
    /// `createdDateTime` exactly as sent (e.g. `2024-01-01T08:04:02.1234567Z`).
    pub created: String,
    /// `contentCorrelationId` (the recording's, when made for one).
    pub content_correlation_id: String,
    /// `transcriptContentUrl` exactly as sent
    /// (`…/users/{o}/onlineMeetings/{meetingId}/transcripts/{id}/content`, or
    /// `…/users/{u}/adhocCalls/{callId}/transcripts/{id}/content`).
    pub transcript_content_url: String,
    /// Where its metadata is served: `…/transcripts/{id}/metadataContent`, beside the
    /// content. Like Graph's callTranscript, the item names no URL for it.
    pub metadata_content_url: String,
    /// Length in bytes of the WebVTT body: the size asked for, rounded up to
    /// the end of a cue (at most a couple of hundred bytes more).
    pub size: u64,
}

/// Where an artifact lives, and so the path of its URLs:
/// `users/{user}/onlineMeetings/{meetingId}/…` or
/// `users/{user}/adhocCalls/{callId}/…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// An online meeting's (`onlineMeetings/{meetingId}`).
    Meeting,
    /// An ad hoc call's (`adhocCalls/{callId}`): 1:1, group and PSTN calls.
    AdhocCall,
}

impl Place {
    /// The path segment of its collection.
    pub(crate) fn segment(self) -> &'static str {
        match self {
            Place::Meeting => "onlineMeetings",
            Place::AdhocCall => "adhocCalls",
        }
    }
}

/// The two kinds of artifact (of meetings and ad hoc calls alike) served
/// through the same listing, content and redirect machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArtifactKind {
    /// `callRecording`, `getAllRecordings`.
    Recording,
    /// `callTranscript`, `getAllTranscripts`.
    Transcript,
}

impl ArtifactKind {
    /// Both kinds.
    pub(crate) const ALL: [ArtifactKind; 2] = [ArtifactKind::Recording, ArtifactKind::Transcript];

    /// The listing function's name.
    pub(crate) fn function(self) -> &'static str {
        match self {
            ArtifactKind::Recording => "getAllRecordings",
            ArtifactKind::Transcript => "getAllTranscripts",
        }
    }

    /// The resource type's name (`microsoft.graph.{type_name}`).
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            ArtifactKind::Recording => "callRecording",
            ArtifactKind::Transcript => "callTranscript",
        }
    }

    /// Its collection's path segment under a meeting or a call.
    pub(crate) fn collection(self) -> &'static str {
        match self {
            ArtifactKind::Recording => "recordings",
            ArtifactKind::Transcript => "transcripts",
        }
    }

    /// The property that holds its content URL.
    pub(crate) fn content_url_property(self) -> &'static str {
        match self {
            ArtifactKind::Recording => "recordingContentUrl",
            ArtifactKind::Transcript => "transcriptContentUrl",
        }
    }

    /// The properties `$select` may name, in the order of [`Artifact::to_json`].
    pub(crate) fn properties(self) -> [&'static str; 8] {
        [
            "id",
            "meetingId",
            "callId",
            "contentCorrelationId",
            "createdDateTime",
            "endDateTime",
            self.content_url_property(),
            "meetingOrganizer",
        ]
    }
}

/// Where an artifact is filed: its place, its kind and its serial within
/// both. It decides the random streams of the artifact's id and content,
/// and the serial its pre-authenticated URLs are signed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) place: Place,
    pub(crate) kind: ArtifactKind,
    pub(crate) serial: u64,
}

impl Slot {
    /// The random stream its id (and the rest of what is generated for it)
    /// starts with.
    pub(crate) fn rng(self, seed: u64) -> Rng {
        let domain = match (self.place, self.kind) {
            (Place::Meeting, ArtifactKind::Recording) => domain::RECORDING,
            (Place::Meeting, ArtifactKind::Transcript) => domain::TRANSCRIPT,
            (Place::AdhocCall, ArtifactKind::Recording) => domain::ADHOC_RECORDING,
            (Place::AdhocCall, ArtifactKind::Transcript) => domain::ADHOC_TRANSCRIPT,
        };
        Rng::derive(seed, domain, self.serial)
    }

    /// The key its content is generated from.
    fn content_key(self, seed: u64) -> u64 {
        let domain = match (self.place, self.kind) {
            (Place::Meeting, ArtifactKind::Recording) => domain::CONTENT,
            (Place::Meeting, ArtifactKind::Transcript) => domain::TRANSCRIPT_CONTENT,
            (Place::AdhocCall, ArtifactKind::Recording) => domain::ADHOC_CONTENT,
            (Place::AdhocCall, ArtifactKind::Transcript) => domain::ADHOC_TRANSCRIPT_CONTENT,
        };
        mix64(seed ^ mix64(domain ^ mix64(self.serial)))
    }

    /// Its id, from the first bytes of [`Slot::rng`]: standard base64 like
    /// Graph's (`"VjIjI…"`, `"MSMjMCMj…"`), with `+/+/` inside and `==` at
    /// the end so that a client must escape it, and the serial inside so
    /// that it is unique.
    pub(crate) fn id(self, r: &mut Rng) -> String {
        // (bytes, magic prefix, where the bytes that encode to "+/+/" go, where the serial goes);
        // bytes = 3k + 1, so the id ends in "==".
        let (len, magic, escape_at, serial_at): (usize, &[u8], usize, usize) = match (self.place, self.kind) {
            (Place::Meeting, ArtifactKind::Recording) => (100, b"V2##", 48, 88),
            (Place::Meeting, ArtifactKind::Transcript) => (64, b"1##0##", 30, 54),
            (Place::AdhocCall, _) => (64, b"2##1##", 30, 54),
        };
        let mut raw = r.bytes(len);
        raw[..magic.len()].copy_from_slice(magic);
        raw[escape_at..escape_at + 3].copy_from_slice(&[0xFB, 0xFF, 0xBF]);
        raw[serial_at..serial_at + 8].copy_from_slice(&self.serial.to_be_bytes());
        STANDARD.encode(&raw)
    }

    /// The serial its pre-authenticated URLs are signed for: tagged for a
    /// transcript ([`TRANSCRIPT_TAG`]) and an ad hoc call's ([`ADHOC_TAG`]).
    fn signed_serial(self) -> u64 {
        let kind = match self.kind {
            ArtifactKind::Recording => 0,
            ArtifactKind::Transcript => TRANSCRIPT_TAG,
        };
        let place = match self.place {
            Place::Meeting => 0,
            Place::AdhocCall => ADHOC_TAG,
        };
        self.serial | kind | place
    }
}

/// Who and when an artifact belongs to: its meeting or call, the user in
/// its URLs, and its times.
#[derive(Debug, Clone)]
pub(crate) struct Occasion {
    /// The meeting id; empty for an ad hoc call's (`meetingId` is `null`).
    pub(crate) meeting_id: String,
    pub(crate) call_id: String,
    /// The user in its URLs (lowercase): the meeting's organizer, or the
    /// user an ad hoc call's artifacts are listed for.
    pub(crate) user: String,
    /// Whether `meetingOrganizer` names the user; a PSTN call's is `null`.
    pub(crate) organized: bool,
    pub(crate) content_correlation_id: String,
    pub(crate) created: DateTime<Utc>,
    /// `endDateTime` as sent.
    pub(crate) end_str: String,
}

/// A simulated recording or transcript, of a meeting or of an ad hoc call.
#[derive(Debug, Clone)]
pub(crate) struct Artifact {
    pub(crate) slot: Slot,
    pub(crate) id: String,
    pub(crate) occasion: Occasion,
    /// `createdDateTime` as sent.
    pub(crate) created_str: String,
    pub(crate) content_url: String,
    pub(crate) content_key: u64,
    /// Content length (the VTT body's for a transcript).
    pub(crate) size: u64,
    /// Cues in a transcript's VTT body (see [`vtt::measure`]); none for a
    /// recording.
    pub(crate) cues: usize,
}

impl Artifact {
    /// The artifact of `slot` with `id` (from [`Slot::id`]) of `occasion`,
    /// of about `size` bytes (a transcript's rounded up to the end of a cue),
    /// its content URL under `base` (the API base).
    pub(crate) fn new(seed: u64, base: &str, slot: Slot, id: String, occasion: Occasion, size: u64) -> Artifact {
        let content_key = slot.content_key(seed);
        let (cues, size) = match slot.kind {
            ArtifactKind::Recording => (0, size),
            ArtifactKind::Transcript => vtt::measure(content_key, size),
        };
        let content_url = format!(
            "{base}/users/{}/{}/{}/{}/{}/content",
            encode_segment(&occasion.user),
            slot.place.segment(),
            encode_segment(container(slot.place, &occasion)),
            slot.kind.collection(),
            encode_segment(&id)
        );
        Artifact {
            slot,
            id,
            created_str: graph_time(occasion.created),
            occasion,
            content_url,
            content_key,
            size,
            cues,
        }
    }

    /// The meeting id or call id in its URLs.
    fn container(&self) -> &str {
        container(self.slot.place, &self.occasion)
    }

    /// The callRecording or callTranscript JSON object.
    pub(crate) fn to_json(&self, tenant: &str) -> serde_json::Value {
        let o = &self.occasion;
        let meeting_id = match self.slot.place {
            Place::Meeting => serde_json::Value::from(o.meeting_id.as_str()),
            Place::AdhocCall => serde_json::Value::Null,
        };
        let organizer = if o.organized {
            meeting_organizer(&o.user, tenant)
        } else {
            serde_json::Value::Null
        };
        let url = self.slot.kind.content_url_property();
        serde_json::json!({
            "@odata.type": format!("#microsoft.graph.{}", self.slot.kind.type_name()),
            "id": self.id,
            "meetingId": meeting_id,
            "callId": o.call_id,
            "contentCorrelationId": o.content_correlation_id,
            "createdDateTime": self.created_str,
            "endDateTime": o.end_str,
            url: self.content_url,
            "meetingOrganizer": organizer,
        })
    }

    /// A recording's info.
    pub(crate) fn recording_info(&self) -> RecordingInfo {
        let o = &self.occasion;
        RecordingInfo {
            id: self.id.clone(),
            meeting_id: o.meeting_id.clone(),
            call_id: o.call_id.clone(),
            organizer: o.user.clone(),
            created: self.created_str.clone(),
            size: self.size,
            content_url: self.content_url.clone(),
            media_type: "video/mp4".to_owned(),
            content_correlation_id: o.content_correlation_id.clone(),
        }
    }

    /// A transcript's info.
    pub(crate) fn transcript_info(&self) -> TranscriptInfo {
        let o = &self.occasion;
        TranscriptInfo {
            id: self.id.clone(),
            meeting_id: o.meeting_id.clone(),
            call_id: o.call_id.clone(),
            organizer: o.user.clone(),
            created: self.created_str.clone(),
            content_correlation_id: o.content_correlation_id.clone(),
            transcript_content_url: self.content_url.clone(),
            metadata_content_url: self.metadata_url(),
            size: self.size,
        }
    }

    /// `…/transcripts/{id}/metadataContent`, beside the content.
    fn metadata_url(&self) -> String {
        let content = self.content_url.strip_suffix("/content").unwrap_or(&self.content_url);
        format!("{content}/metadataContent")
    }

    /// A transcript's WebVTT body.
    pub(crate) fn vtt(&self) -> Vec<u8> {
        vtt::vtt(self.content_key, self.cues)
    }

    /// A transcript's metadata body (JSON).
    pub(crate) fn metadata(&self) -> Vec<u8> {
        vtt::metadata(self.content_key, self.cues)
    }

    fn served(&self, source: Source, size: u64, media_type: &'static str) -> Served {
        Served {
            kind: self.slot.kind,
            place: self.slot.place,
            id: self.id.clone(),
            user: self.occasion.user.clone(),
            container: self.container().to_owned(),
            signed_serial: self.slot.signed_serial(),
            serial: self.slot.serial,
            source,
            size,
            media_type,
        }
    }

    /// What its content URL serves: a recording's video, a transcript's VTT.
    pub(crate) fn served_content(&self) -> Served {
        match self.slot.kind {
            ArtifactKind::Recording => self.served(Source::Generated(self.content_key), self.size, "video/mp4"),
            ArtifactKind::Transcript => self.served(Source::Buffer(Bytes::from(self.vtt())), self.size, "text/vtt"),
        }
    }

    /// What a transcript's metadata URL serves.
    pub(crate) fn served_metadata(&self) -> Served {
        let body = self.metadata();
        let size = body.len() as u64;
        self.served(Source::Buffer(Bytes::from(body)), size, "application/json")
    }
}

/// The artifacts of one place: each kind's by serial (in order of
/// creation), and by id.
#[derive(Debug, Default)]
pub(crate) struct Artifacts {
    recordings: Vec<Artifact>,
    transcripts: Vec<Artifact>,
    recording_ids: HashMap<String, usize>,
    transcript_ids: HashMap<String, usize>,
}

impl Artifacts {
    /// Every artifact of `kind`, by serial.
    pub(crate) fn of(&self, kind: ArtifactKind) -> &[Artifact] {
        match kind {
            ArtifactKind::Recording => &self.recordings,
            ArtifactKind::Transcript => &self.transcripts,
        }
    }

    /// The artifact of `kind` with `id`.
    pub(crate) fn get(&self, kind: ArtifactKind, id: &str) -> Option<&Artifact> {
        let ids = match kind {
            ArtifactKind::Recording => &self.recording_ids,
            ArtifactKind::Transcript => &self.transcript_ids,
        };
        self.of(kind).get(*ids.get(id)?)
    }

    /// The artifact of `kind` with serial `serial`.
    pub(crate) fn by_serial(&self, kind: ArtifactKind, serial: usize) -> Option<&Artifact> {
        self.of(kind).get(serial)
    }

    /// The slot of the next artifact of `kind`, which lives in `place`.
    pub(crate) fn next_slot(&self, place: Place, kind: ArtifactKind) -> Slot {
        Slot {
            place,
            kind,
            serial: self.of(kind).len() as u64,
        }
    }

    /// Files `artifact` (made for [`Artifacts::next_slot`]) and returns it.
    pub(crate) fn push(&mut self, artifact: Artifact) -> &Artifact {
        let (items, ids) = match artifact.slot.kind {
            ArtifactKind::Recording => (&mut self.recordings, &mut self.recording_ids),
            ArtifactKind::Transcript => (&mut self.transcripts, &mut self.transcript_ids),
        };
        ids.insert(artifact.id.clone(), items.len());
        items.push(artifact);
        &items[items.len() - 1]
    }

    /// What the pre-authenticated URLs signed for `serial` (without its
    /// place's tag) serve: a recording's, or a transcript's tagged with
    /// [`TRANSCRIPT_TAG`].
    pub(crate) fn served(&self, serial: u64) -> Option<Served> {
        let (kind, serial) = if serial & TRANSCRIPT_TAG != 0 {
            (ArtifactKind::Transcript, serial & !TRANSCRIPT_TAG)
        } else {
            (ArtifactKind::Recording, serial)
        };
        Some(self.by_serial(kind, usize::try_from(serial).ok()?)?.served_content())
    }
}

/// The meeting id or call id in the URLs of an artifact of `place`.
fn container(place: Place, occasion: &Occasion) -> &str {
    match place {
        Place::Meeting => &occasion.meeting_id,
        Place::AdhocCall => &occasion.call_id,
    }
}

/// What a content URL (or one of its pre-authenticated hops) serves.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub(crate) kind: ArtifactKind,
    pub(crate) place: Place,
    pub(crate) id: String,
    /// The user in its URLs: a meeting's organizer, an ad hoc call's user.
    pub(crate) user: String,
    /// The meeting id or call id in its URLs.
    pub(crate) container: String,
    /// The serial its pre-authenticated URLs are signed for (tagged for a
    /// transcript, and for an ad hoc call's artifact).
    pub(crate) signed_serial: u64,
    /// The serial within its place and kind (for
    /// [`crate::ContentMode::Alternate`]).
    pub(crate) serial: u64,
    pub(crate) source: Source,
    pub(crate) size: u64,
    pub(crate) media_type: &'static str,
}

impl Served {
    /// Whether it is what the URL path `users/{user}/{place}/{container}/…`
    /// names (the user compared case-insensitively).
    pub(crate) fn is_at(&self, place: Place, user: &str, container: &str) -> bool {
        self.place == place && self.user.eq_ignore_ascii_case(user) && self.container == container
    }
}
