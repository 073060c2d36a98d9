//! What recordings and transcripts have in common, of meetings and ad hoc
//! calls alike: their kind, where they live, and what their content URLs
//! serve.

use crate::body::Source;

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

    /// The properties `$select` may name.
    pub(crate) fn properties(self) -> &'static [&'static str] {
        match self {
            ArtifactKind::Recording => &[
                "id",
                "meetingId",
                "callId",
                "contentCorrelationId",
                "createdDateTime",
                "endDateTime",
                "recordingContentUrl",
                "meetingOrganizer",
            ],
            ArtifactKind::Transcript => &[
                "id",
                "meetingId",
                "callId",
                "contentCorrelationId",
                "createdDateTime",
                "endDateTime",
                "transcriptContentUrl",
                "meetingOrganizer",
            ],
        }
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
