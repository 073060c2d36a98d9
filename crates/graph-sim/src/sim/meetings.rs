//! [`GraphSim`]'s test API for meetings: recordings and transcripts, their
//! content, and the first request of their delta rounds.

use sha2::{Digest as _, Sha256};

use crate::data::artifact::{Artifact, ArtifactKind, RecordingInfo, TranscriptInfo};
use crate::data::meetings::NewArtifact;
use crate::http::{ApiVersion, encode_segment};
use crate::rng::{content_piece, fill_content, hex};
use crate::sim::GraphSim;
use crate::state::lock;

impl GraphSim {
    /// The initial recordings delta URL for `organizer` (no `startDateTime`).
    pub fn recordings_delta_url(&self, organizer: &str) -> String {
        let org = encode_segment(&organizer.to_ascii_lowercase());
        format!(
            "{}/users/{org}/onlineMeetings/getAllRecordings(meetingOrganizerUserId='{org}')/delta",
            self.base_url()
        )
    }

    /// The initial transcripts delta URL for `organizer` (no `startDateTime`):
    /// `{base}/users/{o}/onlineMeetings/getAllTranscripts(meetingOrganizerUserId='{o}')/delta`.
    pub fn transcripts_delta_url(&self, organizer: &str) -> String {
        let org = encode_segment(&organizer.to_ascii_lowercase());
        format!(
            "{}/users/{org}/onlineMeetings/getAllTranscripts(meetingOrganizerUserId='{org}')/delta",
            self.base_url()
        )
    }

    /// Appends a recording of `size` bytes to `organizer` (registered if unknown;
    /// ids are matched case-insensitively and stored lowercase).
    pub fn add_recording(&self, organizer: &str, size: u64) -> RecordingInfo {
        self.add_recording_to(organizer, size, None)
    }

    /// Like [`GraphSim::add_recording`] but advertises `url` as its
    /// `recordingContentUrl` (e.g. an off-origin URL a client must refuse).
    /// The regular content path keeps working.
    pub fn add_recording_with_content_url(&self, organizer: &str, size: u64, url: &str) -> RecordingInfo {
        self.add_recording_to(organizer, size, Some(url))
    }

    /// The subject `GET /users/{organizer}/onlineMeetings/{meetingId}` answers
    /// for the meeting `meeting_id` of `organizer`, or `None` when no recording
    /// or transcript of that organizer names the meeting (the endpoint answers
    /// `404`). By default a topic and the serial of the meeting's first
    /// artifact (`Quarterly review 1`, `Weekly sync 2`, …); see
    /// [`GraphSim::set_meeting_subject`].
    pub fn meeting_subject(&self, organizer: &str, meeting_id: &str) -> Option<String> {
        let data = lock(&self.shared().data);
        data.meetings.online_meeting(organizer, meeting_id).map(|m| m.subject)
    }

    /// Gives the meeting `meeting_id` the subject `subject` from now on.
    pub fn set_meeting_subject(&self, meeting_id: &str, subject: &str) {
        lock(&self.shared().data).meetings.set_subject(meeting_id, subject);
    }

    /// The recordings of `organizer`, oldest first.
    pub fn recordings(&self, organizer: &str) -> Vec<RecordingInfo> {
        let data = lock(&self.shared().data);
        let recordings = data.meetings.artifacts_of(ArtifactKind::Recording, organizer);
        recordings.map(Artifact::recording_info).collect()
    }

    fn add_recording_to(&self, organizer: &str, size: u64, url: Option<&str>) -> RecordingInfo {
        let shared = self.shared();
        let base = shared.base(ApiVersion::Beta);
        let new = NewArtifact {
            kind: ArtifactKind::Recording,
            organizer,
            recording: None,
            size,
            url_override: url,
        };
        lock(&shared.data)
            .add_meeting_artifact(shared.config.seed, &base, new)
            .recording_info()
    }

    fn content_key(&self, recording_id: &str) -> Option<(u64, u64)> {
        let data = lock(&self.shared().data);
        let r = data.artifact(ArtifactKind::Recording, recording_id)?;
        Some((r.content_key, r.size))
    }

    /// Lowercase hex SHA-256 of a recording's content (a meeting's or an ad
    /// hoc call's), computed by hashing the whole stream (CPU-bound: about
    /// half a second per GiB in release builds).
    pub fn content_sha256(&self, recording_id: &str) -> Option<String> {
        let (key, size) = self.content_key(recording_id)?;
        let mut hasher = Sha256::new();
        let mut pos = 0u64;
        while pos < size {
            let piece = content_piece(key, pos, size);
            hasher.update(&piece);
            pos += piece.len() as u64;
        }
        Some(hex(&hasher.finalize()))
    }

    /// The whole content of a recording, a meeting's or an ad hoc call's (for
    /// tests with small sizes).
    pub fn content_bytes(&self, recording_id: &str) -> Option<Vec<u8>> {
        let (key, size) = self.content_key(recording_id)?;
        let mut v = vec![0u8; usize::try_from(size).ok()?];
        fill_content(key, 0, &mut v);
        Some(v)
    }

    /// Adds a transcript of about `size` bytes of WebVTT (see
    /// [`TranscriptInfo::size`](crate::TranscriptInfo::size)) to `organizer` (registered if unknown, like
    /// [`GraphSim::add_recording`]) and returns its info. With `recording`,
    /// it is a transcript of that recording's meeting: the same `meetingId`,
    /// `callId` and `contentCorrelationId`, created a minute or two after the
    /// recording (a recording the simulator does not know is ignored);
    /// without, of a fresh meeting.
    pub fn add_transcript(&self, organizer: &str, recording: Option<&RecordingInfo>, size: u64) -> TranscriptInfo {
        let shared = self.shared();
        let base = shared.base(ApiVersion::Beta);
        let new = NewArtifact {
            kind: ArtifactKind::Transcript,
            organizer,
            recording: recording.map(|r| r.id.as_str()),
            size,
            url_override: None,
        };
        lock(&shared.data)
            .add_meeting_artifact(shared.config.seed, &base, new)
            .transcript_info()
    }

    /// The transcripts of `organizer`, oldest first.
    pub fn transcripts(&self, organizer: &str) -> Vec<TranscriptInfo> {
        let data = lock(&self.shared().data);
        let transcripts = data.meetings.artifacts_of(ArtifactKind::Transcript, organizer);
        transcripts.map(Artifact::transcript_info).collect()
    }

    /// The WebVTT body of transcript `id` (a meeting's or an ad hoc call's),
    /// as its content URL serves it.
    pub fn transcript_content(&self, id: &str) -> Option<Vec<u8>> {
        lock(&self.shared().data)
            .artifact(ArtifactKind::Transcript, id)
            .map(Artifact::vtt)
    }

    /// The metadata body of transcript `id` (a meeting's or an ad hoc
    /// call's), as its metadata URL serves it
    /// (`application/json`): an array with one entry per cue of the VTT body
    /// (`id`, `startOffset`, `endOffset`, `speakerName`, `speakerId`,
    /// `spokenLanguage`, `spokenText`). The shape is the simulator's own, not
    /// Graph's: clients should keep it as opaque bytes.
    pub fn transcript_metadata(&self, id: &str) -> Option<Vec<u8>> {
        lock(&self.shared().data)
            .artifact(ArtifactKind::Transcript, id)
            .map(Artifact::metadata)
    }
}
