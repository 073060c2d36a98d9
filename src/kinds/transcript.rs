//! Meeting transcripts: `getAllTranscripts(...)/delta` per organizer; for each callTranscript
//! its WebVTT content (`$format=text/vtt`: without it the service does not answer VTT) and its
//! `metadataContent`, as two blobs; a `callTranscript` manifest whose `content` and `metadata`
//! entries are shaped like a recording's `content`. Ad hoc calls' transcripts
//! (`adhoc_transcript`) are archived by the same code.

use std::future::Future;

use chrono::Utc;
use recarch_delta::{CallTranscript, DeltaRequest, resources};
use recarch_failure::FailureClass;
use recarch_store::{Archive, ContentRef, Kind, MANIFEST_SCHEMA, Manifest, OrganizerId};
use serde_json::Value;

use super::{ItemKind, RoundStart, Surface};
use crate::config::Config;
use crate::pipeline::{Archived, IndexRef, ItemContext, ItemOutcome, indexed, put_manifest, store_content};

/// The `kind` of a transcript manifest.
pub const KIND_CALL_TRANSCRIPT: &str = "callTranscript";

/// The transcripts kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Transcripts;

impl ItemKind for Transcripts {
    type Item = CallTranscript;
    const KIND: Kind = Kind::Transcripts;
    const NOUN: &'static str = "transcript";

    fn id(item: &CallTranscript) -> &str {
        &item.id
    }

    fn first_request(&self, config: &Config, start: &RoundStart<'_>) -> DeltaRequest {
        resources::transcripts_request(
            &config.graph.base_url,
            start.organizer.as_str(),
            config.source.start_date_time.as_deref(),
        )
    }

    fn writes(&self, organizer: &OrganizerId, item: &CallTranscript) -> Vec<String> {
        Surface::OnlineMeeting.writes(Self::KIND, organizer, &item.id, item.meeting_id.as_deref())
    }

    fn archive<'a>(
        &'a self,
        ctx: &'a ItemContext,
        organizer: &'a OrganizerId,
        item: &'a CallTranscript,
        raw: &'a Value,
    ) -> impl Future<Output = ItemOutcome> + Send + 'a {
        archive_transcript(ctx, Surface::OnlineMeeting, organizer, item, raw)
    }

    fn forbidden_hint(&self) -> &'static str {
        "transcript access is turned off or not granted: a Teams administrator must allow transcription in the meeting policy (AllowTranscription) and the app needs the OnlineMeetingTranscript.Read.All application permission with admin consent; recordings are archived regardless"
    }
}

/// `url` with `$format=text/vtt` added to its query (kept verbatim otherwise).
fn vtt_url(url: &str) -> String {
    if url.contains("$format=") || url.contains("%24format=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}$format=text/vtt")
}

/// `…/transcripts/{id}/metadataContent`, the transcript's metadata: Graph's callTranscript
/// names no URL for it, so it is the `transcriptContentUrl` (`…/transcripts/{id}/content`) with
/// its last segment replaced (and without its query). `None` if that URL does not end in
/// `/content`.
fn metadata_url(content_url: &str) -> Option<String> {
    let cut = content_url.find(['?', '#']).unwrap_or(content_url.len());
    let path = content_url[..cut].strip_suffix('/').unwrap_or(&content_url[..cut]);
    let stem = path.strip_suffix("/content")?;
    (!stem.is_empty()).then(|| format!("{stem}/metadataContent"))
}

/// Archives a transcript listed on `surface`: its blobs, its manifest, and its entry in its
/// meeting's or call's index.
pub(super) async fn archive_transcript(
    ctx: &ItemContext,
    surface: Surface,
    organizer: &OrganizerId,
    item: &CallTranscript,
    raw: &Value,
) -> ItemOutcome {
    // Blobs and manifest of a transcript: its WebVTT content and, for a meeting's, its
    // `metadataContent` (the ad hoc call surface documents no metadata).
    let meeting = surface.named_meeting(item.meeting_id.as_deref());
    let (outcome, names) = async {
        let kind = surface.transcripts();
        match ctx.archive.manifest_exists_of(kind, organizer, &item.id).await {
            Ok(true) => return (ItemOutcome::Archived(Archived::Already), None),
            Ok(false) => {}
            Err(e) => return (ctx.store_failed(e, "cannot read the archive"), None),
        }
        let Some(content_url) = &item.transcript_content_url else {
            return (
                ItemOutcome::failed(FailureClass::Permanent, "item has no transcriptContentUrl"),
                None,
            );
        };
        let metadata_url = match surface {
            Surface::AdhocCall => None,
            Surface::OnlineMeeting => match metadata_url(content_url) {
                Some(url) => Some(url),
                None => {
                    let reason =
                        "transcriptContentUrl does not end in /content, so its metadataContent cannot be found";
                    return (ItemOutcome::failed(FailureClass::Permanent, reason), None);
                }
            },
        };
        // The names are looked up while the content downloads (see `crate::enrich`).
        let vtt = vtt_url(content_url);
        let (content, names) = tokio::join!(store_content(ctx, &vtt), ctx.names.of(organizer, meeting));
        let content = match content {
            Ok(blob) => blob,
            Err(outcome) => return (outcome, None),
        };
        let mut extra = surface.manifest_members(item.meeting_id.as_deref(), item.call_id.as_deref());
        extra.extend(names.manifest_members());
        let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        extra.insert("createdDateTime".into(), text(&item.created_date_time));
        extra.insert("contentCorrelationId".into(), text(&item.content_correlation_id));
        let (mut bytes, mut new_blob) = (content.size, content.commit.created);
        if let Some(metadata_url) = metadata_url {
            let metadata = match store_content(ctx, &metadata_url).await {
                Ok(blob) => blob,
                Err(outcome) => return (outcome, None),
            };
            bytes += metadata.size;
            new_blob |= metadata.commit.created;
            let metadata_ref = ContentRef {
                sha256: metadata.digest,
                size: metadata.size,
                media_type: metadata.media_type,
                blob: metadata.commit.key,
            };
            extra.insert(
                "metadata".into(),
                serde_json::to_value(&metadata_ref).unwrap_or(Value::Null),
            );
        }
        extra.insert("graph".into(), raw.clone());
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA.into(),
            kind: KIND_CALL_TRANSCRIPT.into(),
            id: item.id.clone(),
            organizer_id: organizer.clone(),
            content: ContentRef {
                sha256: content.digest,
                size: content.size,
                // Asked for with `$format=text/vtt`, whatever a download host calls it.
                media_type: "text/vtt".to_owned(),
                blob: content.commit.key,
            },
            archived_at: Utc::now(),
            extra,
        };
        let outcome = put_manifest(ctx, manifest, bytes, new_blob).await;
        if matches!(outcome, ItemOutcome::Archived(Archived::Now { .. })) {
            ctx.names.missed(kind, organizer, meeting, &names);
        }
        (outcome, Some(names))
    }
    .await;
    let entry = IndexRef {
        kind: KIND_CALL_TRANSCRIPT,
        id: &item.id,
        manifest: Archive::manifest_key_of(surface.transcripts(), organizer, &item.id),
        container_id: surface.container_id(item.meeting_id.as_deref(), item.call_id.as_deref()),
        content_correlation_id: item.content_correlation_id.as_deref(),
        names: names.map(|n| n.index_names()).unwrap_or_default(),
    };
    indexed(ctx, organizer, outcome, surface.container(), entry).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn metadata_is_beside_the_content() {
        use super::metadata_url;
        let content = "https://graph.microsoft.com/v1.0/users/ba321e0d-79ee-478d-8e28-85a19507f456/onlineMeetings/MSo1N2Y5ZGFj/transcripts/MSMjMCMjNzU3%2BODc2/content";
        assert_eq!(
            metadata_url(content).as_deref(),
            Some(
                "https://graph.microsoft.com/v1.0/users/ba321e0d-79ee-478d-8e28-85a19507f456/onlineMeetings/MSo1N2Y5ZGFj/transcripts/MSMjMCMjNzU3%2BODc2/metadataContent"
            )
        );
        assert_eq!(
            metadata_url("https://g/t/1/content?$format=text/vtt").as_deref(),
            Some("https://g/t/1/metadataContent")
        );
        assert_eq!(
            metadata_url("https://g/t/1/content/").as_deref(),
            Some("https://g/t/1/metadataContent")
        );
        assert_eq!(metadata_url("https://g/t/1/stream"), None);
        assert_eq!(metadata_url("https://g/t/1/contents"), None);
    }

    #[test]
    fn vtt_is_asked_for_once() {
        use super::vtt_url;
        assert_eq!(
            vtt_url("https://g/t/1/content"),
            "https://g/t/1/content?$format=text/vtt"
        );
        assert_eq!(
            vtt_url("https://g/t/1/content?a=b"),
            "https://g/t/1/content?a=b&$format=text/vtt"
        );
        assert_eq!(
            vtt_url("https://g/t/1/content?$format=text/vtt"),
            "https://g/t/1/content?$format=text/vtt"
        );
    }
}
