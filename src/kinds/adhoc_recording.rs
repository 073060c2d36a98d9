//! Recordings of ad hoc calls (1:1, group and PSTN calls), which live on no online meeting:
//! `adhocCalls/getAllRecordings(userId=…,startDateTime=…,endDateTime=…)` per user, a plain
//! listing of a time window (see [`super::adhoc`]), archived as the meetings' recordings are,
//! under `manifests/adhoc_recordings/`, with `"source": "adhocCall"` and `callId`, and an entry
//! in the call's index `calls/<userId>/…`.

use std::future::Future;

use recarch_delta::{AdhocArtifacts, CallRecording};
use recarch_store::{Kind, OrganizerId};
use serde_json::Value;

use super::Surface;
use super::adhoc::{Adhoc, CallArtifact};
use super::recording::archive_recording;
use crate::pipeline::{ItemContext, ItemOutcome};

/// The ad hoc call recordings kind.
pub type AdhocRecordings = Adhoc<CallRecording>;

impl CallArtifact for CallRecording {
    const KIND: Kind = Kind::AdhocRecordings;
    const NOUN: &'static str = "call recording";
    const ARTIFACTS: AdhocArtifacts = AdhocArtifacts::Recordings;
    const COLLECTION: &'static str = "recordings";
    const FORBIDDEN_HINT: &'static str = "the app may not read this user's call recordings: it needs the CallRecordings.Read.All application permission with admin consent, and a Teams administrator must grant an application access policy covering this user (New-CsApplicationAccessPolicy, Grant-CsApplicationAccessPolicy)";

    fn archive<'a>(
        ctx: &'a ItemContext,
        organizer: &'a OrganizerId,
        item: &'a Self,
        raw: &'a Value,
    ) -> impl Future<Output = ItemOutcome> + Send + 'a {
        archive_recording(ctx, Surface::AdhocCall, organizer, item, raw)
    }
}
