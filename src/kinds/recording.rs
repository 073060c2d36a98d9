//! Meeting recordings: `getAllRecordings(...)/delta` per organizer, the content at
//! `recordingContentUrl` as one blob, a `callRecording` manifest.

use std::future::Future;

use chrono::Utc;
use recarch_delta::{CallRecording, DeltaRequest, resources};
use recarch_failure::FailureClass;
use recarch_store::{
    Archive, ContentRef, KIND_CALL_RECORDING, Kind, MANIFEST_SCHEMA, Manifest, OrganizerId, Sha256Digest,
};
use serde_json::{Map, Value};

use super::ItemKind;
use crate::config::Config;
use crate::pipeline::{ItemContext, ItemOutcome, MeetingRef, indexed, media_type_or, put_manifest, store_content};

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

    fn first_request(&self, config: &Config, organizer: &OrganizerId, _source: Option<&str>) -> DeltaRequest {
        resources::recordings_request(
            &config.graph.base_url,
            organizer.as_str(),
            config.source.start_date_time.as_deref(),
        )
    }

    fn archive<'a>(
        &'a self,
        ctx: &'a ItemContext,
        organizer: &'a OrganizerId,
        item: &'a CallRecording,
        raw: &'a Value,
    ) -> impl Future<Output = ItemOutcome> + Send + 'a {
        archive_recording(ctx, organizer, item, raw)
    }

    fn forbidden_hint(&self) -> &'static str {
        "the app may not read this organizer's recordings: a Teams administrator must grant an application access policy covering this user (New-CsApplicationAccessPolicy, Grant-CsApplicationAccessPolicy), and the app needs the OnlineMeetingRecording.Read.All application permission with admin consent"
    }
}

async fn archive_recording(
    ctx: &ItemContext,
    organizer: &OrganizerId,
    recording: &CallRecording,
    raw: &Value,
) -> ItemOutcome {
    let outcome = archive_bytes(ctx, organizer, recording, raw).await;
    let meeting = MeetingRef {
        kind: KIND_CALL_RECORDING,
        id: &recording.id,
        manifest: Archive::manifest_key(organizer, &recording.id),
        meeting_id: recording.meeting_id.as_deref(),
        content_correlation_id: raw.get("contentCorrelationId").and_then(Value::as_str),
    };
    indexed(ctx, organizer, outcome, meeting).await
}

/// Blob and manifest of a recording.
async fn archive_bytes(
    ctx: &ItemContext,
    organizer: &OrganizerId,
    recording: &CallRecording,
    raw: &Value,
) -> ItemOutcome {
    match ctx.archive.manifest_exists(organizer, &recording.id).await {
        Ok(true) => return ItemOutcome::AlreadyArchived,
        Ok(false) => {}
        Err(e) => return ctx.store_failed(e, "cannot read the archive"),
    }
    let Some(content_url) = recording.recording_content_url.as_deref() else {
        return ItemOutcome::failed(FailureClass::Permanent, "item has no recordingContentUrl");
    };
    let blob = match store_content(ctx, content_url).await {
        Ok(blob) => blob,
        Err(outcome) => return outcome,
    };
    let manifest = build_manifest(
        organizer,
        recording,
        raw,
        blob.digest,
        blob.size,
        media_type_or(&blob.media_type, "video/mp4"),
        blob.commit.key,
    );
    put_manifest(ctx, &manifest, blob.size, blob.commit.created).await
}

/// The manifest the README documents ("The archive"): typed envelope, plus `meetingId`, `createdDateTime` and the item
/// exactly as Graph returned it under `graph`.
pub fn build_manifest(
    organizer: &OrganizerId,
    recording: &CallRecording,
    raw: &Value,
    digest: Sha256Digest,
    size: u64,
    media_type: String,
    blob: String,
) -> Manifest {
    let mut extra = Map::new();
    extra.insert(
        "meetingId".into(),
        recording.meeting_id.clone().map_or(Value::Null, Value::String),
    );
    extra.insert(
        "createdDateTime".into(),
        recording.created_date_time.clone().map_or(Value::Null, Value::String),
    );
    extra.insert("graph".into(), raw.clone());
    Manifest {
        schema: MANIFEST_SCHEMA.into(),
        kind: KIND_CALL_RECORDING.into(),
        id: recording.id.clone(),
        organizer_id: organizer.clone(),
        content: ContentRef {
            sha256: digest,
            size,
            media_type,
            blob,
        },
        archived_at: Utc::now(),
        extra,
    }
}
