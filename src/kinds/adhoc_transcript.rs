//! Transcripts of ad hoc calls: `adhocCalls/getAllTranscripts(userId=…,startDateTime=…,endDateTime=…)`
//! per user, listed by time window like [`super::AdhocRecordings`], archived as the meetings'
//! transcripts are (the WebVTT content; the ad hoc surface documents no `metadataContent`),
//! under `manifests/adhoc_transcripts/`, with `"source": "adhocCall"` and `callId`, paired with
//! their call's recordings in the call's index.

use std::future::Future;

use recarch_delta::{AdhocArtifacts, CallTranscript};
use recarch_store::{Kind, OrganizerId};
use serde_json::Value;

use super::Surface;
use super::adhoc::{Adhoc, CallArtifact};
use super::transcript::archive_transcript;
use crate::pipeline::{ItemContext, ItemOutcome};

/// The ad hoc call transcripts kind.
pub type AdhocTranscripts = Adhoc<CallTranscript>;

impl CallArtifact for CallTranscript {
    const KIND: Kind = Kind::AdhocTranscripts;
    const NOUN: &'static str = "call transcript";
    const ARTIFACTS: AdhocArtifacts = AdhocArtifacts::Transcripts;
    const COLLECTION: &'static str = "transcripts";
    const FORBIDDEN_HINT: &'static str = "the app may not read this user's call transcripts: it needs the CallTranscripts.Read.All application permission with admin consent, a Teams administrator must grant an application access policy covering this user, and transcription must be allowed in the calling policy; call recordings are archived regardless";

    fn archive<'a>(
        ctx: &'a ItemContext,
        organizer: &'a OrganizerId,
        item: &'a Self,
        raw: &'a Value,
    ) -> impl Future<Output = ItemOutcome> + Send + 'a {
        archive_transcript(ctx, Surface::AdhocCall, organizer, item, raw)
    }
}
