//! Ad hoc calls (1:1, group and PSTN calls) and their recordings and
//! transcripts: what `adhocCalls/getAllRecordings(…)` and
//! `…/getAllTranscripts(…)` list for a user, and what their content URLs
//! serve.
//!
//! An item is listed for the user it was added for, by its
//! `createdDateTime`, which a test may set in the past to model an item that
//! arrives late (after a window that covers it was already listed).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone as _, Utc};

use crate::body::Source;
use crate::data::artifact::{ADHOC_TAG, ArtifactKind, Place, RecordingInfo, Served, TRANSCRIPT_TAG, TranscriptInfo};
use crate::data::common::{EPOCH_SECS, graph_time, meeting_organizer};
use crate::http::encode_segment;
use crate::rng::{Rng, domain, mix64};
use crate::vtt;

/// What kind of ad hoc call (see [`GraphSim::add_adhoc_call`](crate::GraphSim::add_adhoc_call)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdhocCallKind {
    /// A 1:1 call between two Teams users.
    OneToOne,
    /// A group call.
    Group,
    /// A call to or from a phone number (PSTN): its artifacts have no
    /// `meetingOrganizer` (`null`).
    Pstn,
}

/// An ad hoc call as created in the simulator (see
/// [`GraphSim::add_adhoc_call`](crate::GraphSim::add_adhoc_call)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// The call id (a lowercase GUID): `callId` of its artifacts, and the
    /// `{callId}` of their URLs.
    pub id: String,
    /// The user who started it (lowercase).
    pub user: String,
    /// What kind of call it is.
    pub kind: AdhocCallKind,
    /// When it started; its artifacts are created after, unless added with
    /// an explicit time.
    pub start: DateTime<Utc>,
}

/// One recording or transcript of an ad hoc call.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) kind: ArtifactKind,
    /// The serial within its kind.
    pub(crate) serial: u64,
    pub(crate) id: String,
    pub(crate) call_id: String,
    pub(crate) call_kind: AdhocCallKind,
    /// The user it is listed for (lowercase).
    pub(crate) user: String,
    pub(crate) content_correlation_id: String,
    pub(crate) created: DateTime<Utc>,
    pub(crate) created_str: String,
    pub(crate) end_str: String,
    pub(crate) content_url: String,
    pub(crate) content_key: u64,
    /// Content length (the VTT body's for a transcript).
    pub(crate) size: u64,
    /// Cues in a transcript's VTT body (see [`vtt::measure`]).
    pub(crate) cues: usize,
}

impl Item {
    /// `…/users/{user}/adhocCalls/{callId}/{recordings|transcripts}/{id}`.
    fn prefix(&self, base: &str) -> String {
        let collection = match self.kind {
            ArtifactKind::Recording => "recordings",
            ArtifactKind::Transcript => "transcripts",
        };
        format!(
            "{base}/users/{}/adhocCalls/{}/{collection}/{}",
            encode_segment(&self.user),
            encode_segment(&self.call_id),
            encode_segment(&self.id)
        )
    }

    /// The callRecording or callTranscript JSON object.
    pub(crate) fn to_json(&self, tenant: &str) -> serde_json::Value {
        let url = match self.kind {
            ArtifactKind::Recording => "recordingContentUrl",
            ArtifactKind::Transcript => "transcriptContentUrl",
        };
        let organizer = match self.call_kind {
            AdhocCallKind::Pstn => serde_json::Value::Null,
            AdhocCallKind::OneToOne | AdhocCallKind::Group => meeting_organizer(&self.user, tenant),
        };
        serde_json::json!({
            "@odata.type": format!("#microsoft.graph.{}", self.kind.type_name()),
            "id": self.id,
            "meetingId": null,
            "callId": self.call_id,
            "contentCorrelationId": self.content_correlation_id,
            "createdDateTime": self.created_str,
            "endDateTime": self.end_str,
            url: self.content_url,
            "meetingOrganizer": organizer,
        })
    }

    /// A recording's info.
    pub(crate) fn recording_info(&self) -> RecordingInfo {
        RecordingInfo {
            id: self.id.clone(),
            meeting_id: String::new(),
            call_id: self.call_id.clone(),
            organizer: self.user.clone(),
            created: self.created_str.clone(),
            size: self.size,
            content_url: self.content_url.clone(),
            media_type: "video/mp4".to_owned(),
            content_correlation_id: self.content_correlation_id.clone(),
        }
    }

    /// A transcript's info.
    pub(crate) fn transcript_info(&self) -> TranscriptInfo {
        TranscriptInfo {
            id: self.id.clone(),
            meeting_id: String::new(),
            call_id: self.call_id.clone(),
            organizer: self.user.clone(),
            created: self.created_str.clone(),
            content_correlation_id: self.content_correlation_id.clone(),
            transcript_content_url: self.content_url.clone(),
            metadata_content_url: self.metadata_url(),
            size: self.size,
        }
    }

    /// `…/transcripts/{id}/metadataContent`, beside the content.
    fn metadata_url(&self) -> String {
        let content = self.content_url.strip_suffix("/content").unwrap_or(&self.content_url);
        format!("{content}/metadataContent")
    }

    /// A transcript's WebVTT body.
    pub(crate) fn vtt(&self) -> Vec<u8> {
        vtt::vtt(self.content_key, self.cues)
    }

    /// A transcript's metadata body (JSON).
    pub(crate) fn metadata(&self) -> Vec<u8> {
        vtt::metadata(self.content_key, self.cues)
    }

    fn served(&self, source: Source, size: u64, media_type: &'static str) -> Served {
        let tag = match self.kind {
            ArtifactKind::Recording => ADHOC_TAG,
            ArtifactKind::Transcript => ADHOC_TAG | TRANSCRIPT_TAG,
        };
        Served {
            kind: self.kind,
            place: Place::AdhocCall,
            id: self.id.clone(),
            user: self.user.clone(),
            container: self.call_id.clone(),
            signed_serial: self.serial | tag,
            serial: self.serial,
            source,
            size,
            media_type,
        }
    }

    /// What its content URL serves: a recording's video, a transcript's VTT.
    pub(crate) fn served_content(&self) -> Served {
        match self.kind {
            ArtifactKind::Recording => self.served(Source::Generated(self.content_key), self.size, "video/mp4"),
            ArtifactKind::Transcript => self.served(Source::Buffer(Bytes::from(self.vtt())), self.size, "text/vtt"),
        }
    }

    /// What a transcript's metadata URL serves.
    pub(crate) fn served_metadata(&self) -> Served {
        let body = self.metadata();
        let size = body.len() as u64;
        self.served(Source::Buffer(Bytes::from(body)), size, "application/json")
    }
}

/// Every ad hoc call, and their recordings and transcripts.
#[derive(Debug, Default)]
pub(crate) struct AdhocCalls {
    calls: Vec<CallInfo>,
    recordings: Vec<Item>,
    recording_by_id: HashMap<String, usize>,
    transcripts: Vec<Item>,
    transcript_by_id: HashMap<String, usize>,
    /// How many items each call has, for the default creation times.
    items_per_call: HashMap<String, u64>,
}

/// What to add (see [`AdhocCalls::add_item`]).
pub(crate) struct NewItem<'a> {
    pub(crate) kind: ArtifactKind,
    /// The user it is listed for (lowercase, but for [`crate::data::Data::add_adhoc_item`]).
    pub(crate) user: &'a str,
    pub(crate) call: &'a CallInfo,
    /// For a transcript: the id of the recording it transcribes, if any.
    pub(crate) recording: Option<&'a str>,
    /// The content size asked for (a transcript's is rounded up to a cue).
    pub(crate) size: u64,
    pub(crate) created: Option<DateTime<Utc>>,
}

impl AdhocCalls {
    fn items(&self, kind: ArtifactKind) -> &[Item] {
        match kind {
            ArtifactKind::Recording => &self.recordings,
            ArtifactKind::Transcript => &self.transcripts,
        }
    }

    /// The item of `kind` with `id`.
    pub(crate) fn item(&self, kind: ArtifactKind, id: &str) -> Option<&Item> {
        let by_id = match kind {
            ArtifactKind::Recording => &self.recording_by_id,
            ArtifactKind::Transcript => &self.transcript_by_id,
        };
        self.items(kind).get(*by_id.get(id)?)
    }

    /// The item of `kind` with serial `serial`.
    pub(crate) fn by_serial(&self, kind: ArtifactKind, serial: usize) -> Option<&Item> {
        self.items(kind).get(serial)
    }

    /// The serials of `user`'s (lowercase) items of `kind` created in
    /// `[start, end)` (either bound open when `None`), oldest first.
    pub(crate) fn listed(
        &self,
        kind: ArtifactKind,
        user: &str,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Vec<usize> {
        let mut items: Vec<&Item> = self
            .items(kind)
            .iter()
            .filter(|i| i.user == user)
            .filter(|i| start.is_none_or(|s| i.created >= s) && end.is_none_or(|e| i.created < e))
            .collect();
        items.sort_by_key(|i| (i.created, i.serial));
        items
            .into_iter()
            .filter_map(|i| usize::try_from(i.serial).ok())
            .collect()
    }

    /// What the pre-authenticated URLs signed for `serial` (without
    /// [`ADHOC_TAG`]) serve.
    pub(crate) fn served(&self, serial: u64) -> Option<Served> {
        let (kind, serial) = if serial & TRANSCRIPT_TAG != 0 {
            (ArtifactKind::Transcript, serial & !TRANSCRIPT_TAG)
        } else {
            (ArtifactKind::Recording, serial)
        };
        Some(self.by_serial(kind, usize::try_from(serial).ok()?)?.served_content())
    }

    /// The calls started by `user` (any case), in order of creation.
    pub(crate) fn calls_of(&self, user: &str) -> Vec<CallInfo> {
        let user = user.to_ascii_lowercase();
        self.calls.iter().filter(|c| c.user == user).cloned().collect()
    }

    /// `user`'s (any case) recordings, oldest first.
    pub(crate) fn recordings_of(&self, user: &str) -> Vec<RecordingInfo> {
        let user = user.to_ascii_lowercase();
        self.listed(ArtifactKind::Recording, &user, None, None)
            .into_iter()
            .filter_map(|s| self.recordings.get(s))
            .map(Item::recording_info)
            .collect()
    }

    /// `user`'s (any case) transcripts, oldest first.
    pub(crate) fn transcripts_of(&self, user: &str) -> Vec<TranscriptInfo> {
        let user = user.to_ascii_lowercase();
        self.listed(ArtifactKind::Transcript, &user, None, None)
            .into_iter()
            .filter_map(|s| self.transcripts.get(s))
            .map(Item::transcript_info)
            .collect()
    }

    /// A new call of `kind` started by `user` (lowercase): 10 minutes after
    /// the previous one (a few minutes of jitter), from the simulated epoch.
    pub(crate) fn add_call(&mut self, seed: u64, user: &str, kind: AdhocCallKind) -> CallInfo {
        let n = self.calls.len() as u64;
        let mut r = Rng::derive(seed, domain::ADHOC_CALL, n);
        let secs = EPOCH_SECS
            .saturating_add(120)
            .saturating_add(i64::try_from(n).unwrap_or(i64::MAX / 1200).saturating_mul(600))
            .saturating_add(i64::try_from(r.below(300)).unwrap_or(0));
        let call = CallInfo {
            id: r.guid(),
            user: user.to_owned(),
            kind,
            start: Utc.timestamp_opt(secs, 0).single().unwrap_or_else(Utc::now),
        };
        self.calls.push(call.clone());
        call
    }

    /// Adds a recording or transcript (`base`: the API base of its URLs).
    /// Created at `new.created`, else: a transcript of a known recording a
    /// minute or two after it; otherwise after the call started, half an
    /// hour after the call's previous item.
    pub(crate) fn add_item(&mut self, seed: u64, base: &str, new: NewItem<'_>) -> Item {
        let (domain_id, domain_content) = match new.kind {
            ArtifactKind::Recording => (domain::ADHOC_RECORDING, domain::ADHOC_CONTENT),
            ArtifactKind::Transcript => (domain::ADHOC_TRANSCRIPT, domain::ADHOC_TRANSCRIPT_CONTENT),
        };
        let serial = self.items(new.kind).len() as u64;
        let mut r = Rng::derive(seed, domain_id, serial);
        // Standard base64 like the meetings' ids, with "+/+/" and "==": 64 = 3*21 + 1.
        let mut raw = r.bytes(64);
        raw[..6].copy_from_slice(b"2##1##");
        raw[30..33].copy_from_slice(&[0xFB, 0xFF, 0xBF]);
        raw[54..62].copy_from_slice(&serial.to_be_bytes());
        let id = STANDARD.encode(&raw);
        let earlier = self.items_per_call.entry(new.call.id.clone()).or_insert(0);
        let nth = *earlier;
        *earlier += 1;
        let recording = new
            .recording
            .and_then(|id| self.item(ArtifactKind::Recording, id))
            .filter(|rec| rec.call_id == new.call.id);
        let created = match (new.created, recording) {
            (Some(t), _) => t,
            (None, Some(rec)) => rec.created + Duration::seconds(30 + i64::try_from(r.below(90)).unwrap_or(0)),
            (None, None) => {
                let after = 60 + i64::try_from(r.below(120)).unwrap_or(0);
                let nth = i64::try_from(nth).unwrap_or(0).saturating_mul(1800);
                let nanos = u32::try_from(r.below(10_000_000) * 100).unwrap_or(0);
                new.call.start + Duration::seconds(after.saturating_add(nth)) + Duration::nanoseconds(nanos.into())
            }
        };
        let (content_correlation_id, end_str) = match recording {
            Some(rec) => (rec.content_correlation_id.clone(), rec.end_str.clone()),
            None => {
                let duration = Duration::seconds(300 + i64::try_from(r.below(3600)).unwrap_or(0));
                (r.guid(), graph_time(created + duration))
            }
        };
        let content_key = mix64(seed ^ mix64(domain_content ^ mix64(serial)));
        let (cues, size) = match new.kind {
            ArtifactKind::Recording => (0, new.size),
            ArtifactKind::Transcript => vtt::measure(content_key, new.size),
        };
        let mut item = Item {
            kind: new.kind,
            serial,
            id,
            call_id: new.call.id.clone(),
            call_kind: new.call.kind,
            user: new.user.to_owned(),
            content_correlation_id,
            created,
            created_str: graph_time(created),
            end_str,
            content_url: String::new(),
            content_key,
            size,
            cues,
        };
        item.content_url = format!("{}/content", item.prefix(base));
        let index = usize::try_from(serial).unwrap_or(usize::MAX);
        match new.kind {
            ArtifactKind::Recording => {
                self.recording_by_id.insert(item.id.clone(), index);
                self.recordings.push(item.clone());
            }
            ArtifactKind::Transcript => {
                self.transcript_by_id.insert(item.id.clone(), index);
                self.transcripts.push(item.clone());
            }
        }
        item
    }
}
