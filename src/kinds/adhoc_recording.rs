//! Recordings of ad hoc calls (1:1, group and PSTN calls), which live on no online meeting:
//! `adhocCalls/getAllRecordings(userId=…,startDateTime=…,endDateTime=…)` per user, a plain
//! listing of a time window (see [`super::adhoc`]), archived as the meetings' recordings are,
//! under `manifests/adhoc_recordings/`, with `"source": "adhocCall"` and `callId`, and an entry
//! in the call's index `calls/<userId>/…`.

use recarch_delta::{AdhocArtifacts, CallRecording};
use recarch_store::Kind;

use super::adhoc::{Adhoc, call_artifact};
use super::recording::archive_recording;

/// The ad hoc call recordings kind.
pub type AdhocRecordings = Adhoc<CallRecording>;

call_artifact!(CallRecording { Kind::AdhocRecordings, "call recording", AdhocArtifacts::Recordings, "recordings", "the app may not read this user's call recordings: it needs the CallRecordings.Read.All application permission with admin consent, and a Teams administrator must grant an application access policy covering this user (New-CsApplicationAccessPolicy, Grant-CsApplicationAccessPolicy)" } by archive_recording);
