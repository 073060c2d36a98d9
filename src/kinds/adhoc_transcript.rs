//! Transcripts of ad hoc calls: `adhocCalls/getAllTranscripts(userId=…,startDateTime=…,endDateTime=…)`
//! per user, listed by time window like [`super::AdhocRecordings`], archived as the meetings'
//! transcripts are (the WebVTT content; the ad hoc surface documents no `metadataContent`),
//! under `manifests/adhoc_transcripts/`, with `"source": "adhocCall"` and `callId`, paired with
//! their call's recordings in the call's index.

use recarch_delta::{AdhocArtifacts, CallTranscript, DeltaRequest, Paging};
use recarch_store::{Kind, OrganizerId};
use serde_json::Value;

use super::transcript::archive_transcript;
use super::{ItemKind, RoundStart, Surface, adhoc_content_url, window_request};
use crate::config::Config;
use crate::pipeline::{ItemContext, ItemOutcome};

/// The ad hoc call transcripts kind.
#[derive(Debug, Clone)]
pub struct AdhocTranscripts {
    /// `[graph].base_url`: where content is, for an item that does not say.
    base_url: url::Url,
}

impl AdhocTranscripts {
    /// The kind, reading content from `base_url` when an item names no URL of its own.
    pub fn new(base_url: &url::Url) -> Self {
        AdhocTranscripts {
            base_url: base_url.clone(),
        }
    }
}

impl ItemKind for AdhocTranscripts {
    type Item = CallTranscript;
    const KIND: Kind = Kind::AdhocTranscripts;
    const NOUN: &'static str = "call transcript";
    const PAGING: Paging = Paging::List;

    fn id(item: &CallTranscript) -> &str {
        &item.id
    }

    fn first_request(&self, config: &Config, start: &RoundStart<'_>) -> DeltaRequest {
        window_request(config, start, AdhocArtifacts::Transcripts)
    }

    /// No query option lives in the links: the window is rebuilt from the watermark.
    fn configured_options(&self, _config: &Config) -> Vec<String> {
        Vec::new()
    }

    async fn archive(
        &self,
        ctx: &ItemContext,
        organizer: &OrganizerId,
        item: &CallTranscript,
        raw: &Value,
    ) -> ItemOutcome {
        match (&item.transcript_content_url, &item.call_id) {
            (None, Some(call)) => {
                let url = adhoc_content_url(&self.base_url, organizer, call, "transcripts", &item.id);
                let item = CallTranscript {
                    transcript_content_url: Some(url),
                    ..item.clone()
                };
                archive_transcript(ctx, Surface::AdhocCall, organizer, &item, raw).await
            }
            _ => archive_transcript(ctx, Surface::AdhocCall, organizer, item, raw).await,
        }
    }

    fn forbidden_hint(&self) -> &'static str {
        "the app may not read this user's call transcripts: it needs the CallTranscripts.Read.All application permission with admin consent, a Teams administrator must grant an application access policy covering this user, and transcription must be allowed in the calling policy; call recordings are archived regardless"
    }
}
