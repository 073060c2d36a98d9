//! Transcripts of ad hoc calls: `adhocCalls/getAllTranscripts(userId=…,startDateTime=…,endDateTime=…)`
//! per user, listed by time window like [`super::AdhocRecordings`], archived as the meetings'
//! transcripts are (the WebVTT content; the ad hoc surface documents no `metadataContent`),
//! under `manifests/adhoc_transcripts/`, with `"source": "adhocCall"` and `callId`, paired with
//! their call's recordings in the call's index.

use recarch_delta::{AdhocArtifacts, CallTranscript};
use recarch_store::Kind;

use super::adhoc::{Adhoc, call_artifact};
use super::transcript::archive_transcript;

/// The ad hoc call transcripts kind.
pub type AdhocTranscripts = Adhoc<CallTranscript>;

call_artifact!(CallTranscript { Kind::AdhocTranscripts, "call transcript", AdhocArtifacts::Transcripts, "transcripts", "the app may not read this user's call transcripts: it needs the CallTranscripts.Read.All application permission with admin consent, a Teams administrator must grant an application access policy covering this user, and transcription must be allowed in the calling policy; call recordings are archived regardless" } by archive_transcript);
