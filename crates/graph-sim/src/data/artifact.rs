//! What recordings and transcripts have in common: their kind, and what
//! their content URLs serve.

use crate::body::Source;

/// Set in the serial of a transcript's pre-authenticated URLs, so that they
/// never name a recording.
pub(crate) const TRANSCRIPT_TAG: u64 = 1 << 62;

/// The two kinds of meeting artifact served through the same delta, content
/// and redirect machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArtifactKind {
    /// `callRecording`, `getAllRecordings`.
    Recording,
    /// `callTranscript`, `getAllTranscripts`.
    Transcript,
}

impl ArtifactKind {
    /// The delta function's name.
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
    pub(crate) id: String,
    pub(crate) organizer: String,
    pub(crate) meeting_id: String,
    /// The serial its pre-authenticated URLs are signed for (tagged for a transcript).
    pub(crate) signed_serial: u64,
    /// The serial within its kind (for [`crate::ContentMode::Alternate`]).
    pub(crate) serial: u64,
    pub(crate) source: Source,
    pub(crate) size: u64,
    pub(crate) media_type: &'static str,
}
