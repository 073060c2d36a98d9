//! [`GraphSim`]'s test API for ad hoc calls (1:1, group and PSTN calls):
//! calls, their recordings and transcripts, and the first requests that list
//! them.

use chrono::{DateTime, Utc};

use crate::data::adhoc::{AdhocCallKind, CallInfo, NewItem};
use crate::data::artifact::{Artifact, ArtifactKind, RecordingInfo, TranscriptInfo};
use crate::http::{ApiVersion, encode_segment, window_params};
use crate::sim::GraphSim;
use crate::state::lock;

impl GraphSim {
    /// Starts an ad hoc call of `kind` by `user` (any case; registered as an
    /// organizer and a directory user if unknown) and returns it. Calls start
    /// ten minutes apart (with a few minutes of jitter) from the simulated
    /// epoch, 2024-01-01T08:00:00Z; the call has no artifacts yet.
    pub fn add_adhoc_call(&self, user: &str, kind: AdhocCallKind) -> CallInfo {
        let shared = self.shared();
        lock(&shared.data).add_adhoc_call(shared.config.seed, user, kind)
    }

    /// Adds a recording of `size` bytes of `call`, listed for `user` (any
    /// case; normally `call.user`) by `adhocCalls/getAllRecordings` and
    /// served at `…/users/{user}/adhocCalls/{callId}/recordings/{id}/content`
    /// like a meeting's (see [`crate::ContentMode`]). `created` is its
    /// `createdDateTime`, which decides the windows that list it: give a
    /// time in the past to model a recording that arrives late, after a
    /// window covering it was listed. Without it, the recording is created
    /// a minute or two after the call started (half an hour later for each
    /// earlier artifact of the call).
    pub fn add_adhoc_recording(
        &self,
        user: &str,
        call: &CallInfo,
        size: u64,
        created: Option<DateTime<Utc>>,
    ) -> RecordingInfo {
        let shared = self.shared();
        let base = shared.base(ApiVersion::Beta);
        let new = NewItem {
            kind: ArtifactKind::Recording,
            user,
            call,
            recording: None,
            size,
            created,
        };
        lock(&shared.data)
            .add_adhoc_item(shared.config.seed, &base, new)
            .recording_info()
    }

    /// Adds a transcript of about `size` bytes of WebVTT of `call`, listed
    /// for `user` like [`GraphSim::add_adhoc_recording`] and served at
    /// `…/adhocCalls/{callId}/transcripts/{id}/content` (`$format=text/vtt`
    /// optional) and `…/metadataContent`. With `recording` (of the same call), it
    /// transcribes it: the same `contentCorrelationId` and `endDateTime`,
    /// created a minute or two after it. `created` sets its
    /// `createdDateTime` as for recordings.
    pub fn add_adhoc_transcript(
        &self,
        user: &str,
        call: &CallInfo,
        recording: Option<&RecordingInfo>,
        size: u64,
        created: Option<DateTime<Utc>>,
    ) -> TranscriptInfo {
        let shared = self.shared();
        let base = shared.base(ApiVersion::Beta);
        let new = NewItem {
            kind: ArtifactKind::Transcript,
            user,
            call,
            recording: recording.map(|r| r.id.as_str()),
            size,
            created,
        };
        lock(&shared.data)
            .add_adhoc_item(shared.config.seed, &base, new)
            .transcript_info()
    }

    /// The ad hoc calls `user` started, in order of creation.
    pub fn adhoc_calls(&self, user: &str) -> Vec<CallInfo> {
        lock(&self.shared().data).adhoc.calls_of(user)
    }

    /// The ad hoc call recordings listed for `user`, by `createdDateTime`
    /// (then order of creation): as a window covering them all lists them.
    pub fn adhoc_recordings(&self, user: &str) -> Vec<RecordingInfo> {
        let data = lock(&self.shared().data);
        let recordings = data.adhoc.artifacts_of(ArtifactKind::Recording, user);
        recordings.map(Artifact::recording_info).collect()
    }

    /// The ad hoc call transcripts listed for `user`, in the order of
    /// [`GraphSim::adhoc_recordings`].
    pub fn adhoc_transcripts(&self, user: &str) -> Vec<TranscriptInfo> {
        let data = lock(&self.shared().data);
        let transcripts = data.adhoc.artifacts_of(ArtifactKind::Transcript, user);
        transcripts.map(Artifact::transcript_info).collect()
    }

    /// The first request listing `user`'s ad hoc call recordings created in
    /// `[start, end)`:
    /// `{base}/users/{u}/adhocCalls/getAllRecordings(userId='{u}',startDateTime={start},endDateTime={end})`
    /// (a bound left out when `None`).
    pub fn adhoc_recordings_url(&self, user: &str, start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
        self.adhoc_url("getAllRecordings", user, start, end)
    }

    /// Like [`GraphSim::adhoc_recordings_url`], for transcripts
    /// (`…/adhocCalls/getAllTranscripts(…)`).
    pub fn adhoc_transcripts_url(
        &self,
        user: &str,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> String {
        self.adhoc_url("getAllTranscripts", user, start, end)
    }

    fn adhoc_url(
        &self,
        function: &str,
        user: &str,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> String {
        let user = encode_segment(&user.to_ascii_lowercase());
        let window = window_params(start.as_ref(), end.as_ref());
        format!(
            "{}/users/{user}/adhocCalls/{function}(userId='{user}'{window})",
            self.base_url()
        )
    }
}
