//! Meeting recordings: `getAllRecordings(...)/delta` per organizer, the content at
//! `recordingContentUrl` as one blob, a `callRecording` manifest, an entry in the meeting's
//! index. Ad hoc calls' recordings (`adhoc_recording`) are archived by the same code.

use std::future::Future;

use chrono::Utc;
use recarch_delta::{CallRecording, DeltaRequest, resources};
use recarch_failure::FailureClass;
use recarch_store::{Archive, ContentRef, KIND_CALL_RECORDING, Kind, MANIFEST_SCHEMA, Manifest, OrganizerId};
use serde_json::Value;

use super::{ItemKind, RoundStart, Surface};
use crate::config::Config;
use crate::pipeline::{
    Archived, IndexRef, ItemContext, ItemOutcome, indexed, media_type_or, put_manifest, store_content,
};

/// The recordings kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recordings;

impl ItemKind for Recordings {
    type Item = CallRecording;
    const KIND: Kind = Kind::Recordings;
    const NOUN: &'static str = "recording";

    fn id(item: &CallRecording) -> &str {
        &item.id
    }

    fn first_request(&self, config: &Config, start: &RoundStart<'_>) -> DeltaRequest {
        resources::recordings_request(
            &config.graph.base_url,
            start.organizer.as_str(),
            config.source.start_date_time.as_deref(),
        )
    }

    fn writes(&self, organizer: &OrganizerId, item: &CallRecording) -> Vec<String> {
        Surface::OnlineMeeting.writes(Self::KIND, organizer, &item.id, item.meeting_id.as_deref())
    }

    fn archive<'a>(
        &'a self,
        ctx: &'a ItemContext,
        organizer: &'a OrganizerId,
        item: &'a CallRecording,
        raw: &'a Value,
    ) -> impl Future<Output = ItemOutcome> + Send + 'a {
        archive_recording(ctx, Surface::OnlineMeeting, organizer, item, raw)
    }

    fn forbidden_hint(&self) -> &'static str {
        "the app may not read this organizer's recordings: a Teams administrator must grant an application access policy covering this user (New-CsApplicationAccessPolicy, Grant-CsApplicationAccessPolicy), and the app needs the OnlineMeetingRecording.Read.All application permission with admin consent"
    }
}

/// Archives a recording listed on `surface`: its bytes, its manifest, and its entry in its
/// meeting's or call's index.
pub(super) async fn archive_recording(
    ctx: &ItemContext,
    surface: Surface,
    organizer: &OrganizerId,
    recording: &CallRecording,
    raw: &Value,
) -> ItemOutcome {
    // Blob and manifest of a recording, and the names found for it.
    let meeting = surface.named_meeting(recording.meeting_id.as_deref());
    let (outcome, names) = async {
        let kind = surface.recordings();
        match ctx.archive.manifest_exists_of(kind, organizer, &recording.id).await {
            Ok(true) => return (ItemOutcome::Archived(Archived::Already), None),
            Ok(false) => {}
            Err(e) => return (ctx.store_failed(e, "cannot read the archive"), None),
        }
        let Some(content_url) = recording.recording_content_url.as_deref() else {
            return (
                ItemOutcome::failed(FailureClass::Permanent, "item has no recordingContentUrl"),
                None,
            );
        };
        // The names are looked up while the content downloads (once per meeting and
        // organizer per run; a failure only leaves them out).
        let (blob, names) = tokio::join!(store_content(ctx, content_url), ctx.names.of(organizer, meeting));
        let blob = match blob {
            Ok(blob) => blob,
            Err(outcome) => return (outcome, None),
        };
        let mut extra = surface.manifest_members(recording.meeting_id.as_deref(), recording.call_id.as_deref());
        extra.extend(names.manifest_members());
        extra.insert(
            "createdDateTime".into(),
            recording.created_date_time.clone().map_or(Value::Null, Value::String),
        );
        extra.insert("graph".into(), raw.clone());
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA.into(),
            kind: KIND_CALL_RECORDING.into(),
            id: recording.id.clone(),
            organizer_id: organizer.clone(),
            content: ContentRef {
                sha256: blob.digest,
                size: blob.size,
                media_type: media_type_or(&blob.media_type, "video/mp4"),
                blob: blob.commit.key,
            },
            archived_at: Utc::now(),
            extra,
        };
        let outcome = put_manifest(ctx, manifest, blob.size, blob.commit.created).await;
        if matches!(outcome, ItemOutcome::Archived(Archived::Now { .. })) {
            ctx.names.missed(kind, organizer, meeting, &names);
        }
        (outcome, Some(names))
    }
    .await;
    let entry = IndexRef {
        kind: KIND_CALL_RECORDING,
        id: &recording.id,
        manifest: Archive::manifest_key_of(surface.recordings(), organizer, &recording.id),
        container_id: surface.container_id(recording.meeting_id.as_deref(), recording.call_id.as_deref()),
        content_correlation_id: recording.content_correlation_id.as_deref(),
        names: names.map(|n| n.index_names()).unwrap_or_default(),
    };
    indexed(ctx, organizer, outcome, surface.container(), entry).await
}
