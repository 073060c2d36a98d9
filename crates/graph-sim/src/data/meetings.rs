//! Meetings: their recordings and transcripts (what `getAllRecordings` and
//! `getAllTranscripts` list and their content URLs serve), and the organizers.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use bytes::Bytes;
use chrono::{DateTime, TimeZone as _, Utc};

use crate::body::Source;
use crate::data::artifact::{ArtifactKind, Place, RecordingInfo, Served, TRANSCRIPT_TAG, TranscriptInfo};
use crate::data::common::{EPOCH_SECS, graph_time, meeting_organizer};
use crate::http::encode_segment;
use crate::rng::{Rng, domain, mix64};
use crate::vtt;

/// A simulated recording.
#[derive(Debug, Clone)]
pub(crate) struct Recording {
    pub(crate) serial: u64,
    pub(crate) id: String,
    pub(crate) meeting_id: String,
    pub(crate) call_id: String,
    pub(crate) content_correlation_id: String,
    pub(crate) organizer: String,
    pub(crate) created: DateTime<Utc>,
    pub(crate) created_str: String,
    pub(crate) end_str: String,
    pub(crate) size: u64,
    pub(crate) content_url: String,
    pub(crate) content_key: u64,
}

impl Recording {
    pub(crate) fn generate(
        seed: u64,
        serial: u64,
        organizer: &str,
        size: u64,
        base: &str,
        url_override: Option<&str>,
    ) -> Recording {
        let mut r = Rng::derive(seed, domain::RECORDING, serial);
        // ~100 bytes of standard base64: 100 = 3*33 + 1, so the id ends in "==";
        // bytes 48..51 encode to "+/+/".
        let mut raw = r.bytes(100);
        raw[..4].copy_from_slice(b"V2##");
        raw[48..51].copy_from_slice(&[0xFB, 0xFF, 0xBF]);
        raw[88..96].copy_from_slice(&serial.to_be_bytes());
        let id = STANDARD.encode(&raw);

        let thread = STANDARD_NO_PAD.encode(r.bytes(27));
        let meeting_id = STANDARD.encode(format!("1*{organizer}*0**19:meeting_{thread}@thread.v2"));
        let call_id = r.guid();
        let content_correlation_id = r.guid();

        // Strictly increasing: 10 minutes apart, jitter < 9 minutes.
        let secs = EPOCH_SECS
            .saturating_add(i64::try_from(serial).unwrap_or(i64::MAX / 1200).saturating_mul(600))
            .saturating_add(i64::try_from(r.below(540)).unwrap_or(0));
        let ticks = r.below(10_000_000); // 100 ns ticks, 7 fractional digits
        let nanos = u32::try_from(ticks * 100).unwrap_or(0);
        let created = Utc.timestamp_opt(secs, nanos).single().unwrap_or_else(Utc::now);
        let duration = chrono::Duration::seconds(1800 + i64::try_from(r.below(3600)).unwrap_or(0));
        let end = created.checked_add_signed(duration).unwrap_or(created);
        let fmt = graph_time;
        let content_url = match url_override {
            Some(u) => u.to_owned(),
            None => format!(
                "{base}/users/{}/onlineMeetings/{}/recordings/{}/content",
                encode_segment(organizer),
                encode_segment(&meeting_id),
                encode_segment(&id)
            ),
        };
        Recording {
            serial,
            id,
            meeting_id,
            call_id,
            content_correlation_id,
            organizer: organizer.to_owned(),
            created,
            created_str: fmt(created),
            end_str: fmt(end),
            size,
            content_url,
            content_key: mix64(seed ^ mix64(domain::CONTENT ^ mix64(serial))),
        }
    }

    pub(crate) fn info(&self) -> RecordingInfo {
        RecordingInfo {
            id: self.id.clone(),
            meeting_id: self.meeting_id.clone(),
            organizer: self.organizer.clone(),
            created: self.created_str.clone(),
            size: self.size,
            content_url: self.content_url.clone(),
            media_type: "video/mp4".to_owned(),
            content_correlation_id: self.content_correlation_id.clone(),
            call_id: self.call_id.clone(),
        }
    }

    pub(crate) fn served(&self) -> Served {
        Served {
            kind: ArtifactKind::Recording,
            place: Place::Meeting,
            id: self.id.clone(),
            user: self.organizer.clone(),
            container: self.meeting_id.clone(),
            signed_serial: self.serial,
            serial: self.serial,
            source: Source::Generated(self.content_key),
            size: self.size,
            media_type: "video/mp4",
        }
    }

    /// The callRecording JSON object.
    pub(crate) fn to_json(&self, tenant: &str) -> serde_json::Value {
        serde_json::json!({
            "@odata.type": "#microsoft.graph.callRecording",
            "id": self.id,
            "meetingId": self.meeting_id,
            "callId": self.call_id,
            "contentCorrelationId": self.content_correlation_id,
            "createdDateTime": self.created_str,
            "endDateTime": self.end_str,
            "recordingContentUrl": self.content_url,
            "meetingOrganizer": meeting_organizer(&self.organizer, tenant),
        })
    }
}

/// A simulated transcript.
#[derive(Debug, Clone)]
pub(crate) struct Transcript {
    pub(crate) serial: u64,
    pub(crate) id: String,
    pub(crate) meeting_id: String,
    pub(crate) call_id: String,
    pub(crate) content_correlation_id: String,
    pub(crate) organizer: String,
    pub(crate) created: DateTime<Utc>,
    pub(crate) created_str: String,
    pub(crate) end_str: String,
    pub(crate) content_url: String,
    pub(crate) metadata_url: String,
    pub(crate) content_key: u64,
    /// Cues in the VTT body (see [`vtt::measure`]).
    pub(crate) cues: usize,
    /// Length of the VTT body.
    pub(crate) size: u64,
}

impl Transcript {
    /// Transcript `serial` of `organizer`; of `recording`'s meeting (same
    /// `meetingId`, `callId` and `contentCorrelationId`, created a minute or
    /// so after the recording) when given, else of a fresh meeting.
    pub(crate) fn generate(
        seed: u64,
        serial: u64,
        organizer: &str,
        requested_size: u64,
        base: &str,
        recording: Option<&Recording>,
    ) -> Transcript {
        let mut r = Rng::derive(seed, domain::TRANSCRIPT, serial);
        // Standard base64 like real transcript ids ("MSMjMCMj…"), with "+/+/"
        // and "==" so that a client must escape it: 64 = 3*21 + 1.
        let mut raw = r.bytes(64);
        raw[..6].copy_from_slice(b"1##0##");
        raw[30..33].copy_from_slice(&[0xFB, 0xFF, 0xBF]);
        raw[54..62].copy_from_slice(&serial.to_be_bytes());
        let id = STANDARD.encode(&raw);
        let (meeting_id, call_id, content_correlation_id, created, end_str) = match recording {
            Some(rec) => {
                let lag = chrono::Duration::seconds(30 + i64::try_from(r.below(90)).unwrap_or(0));
                let created = rec.created.checked_add_signed(lag).unwrap_or(rec.created);
                (
                    rec.meeting_id.clone(),
                    rec.call_id.clone(),
                    rec.content_correlation_id.clone(),
                    created,
                    rec.end_str.clone(),
                )
            }
            None => {
                let thread = STANDARD_NO_PAD.encode(r.bytes(27));
                let meeting_id = STANDARD.encode(format!("1*{organizer}*0**19:meeting_{thread}@thread.v2"));
                let call_id = r.guid();
                let correlation = r.guid();
                // 10 minutes apart like recordings, 5 minutes later, jitter < 4 minutes.
                let secs = EPOCH_SECS
                    .saturating_add(300)
                    .saturating_add(i64::try_from(serial).unwrap_or(i64::MAX / 1200).saturating_mul(600))
                    .saturating_add(i64::try_from(r.below(240)).unwrap_or(0));
                let nanos = u32::try_from(r.below(10_000_000) * 100).unwrap_or(0);
                let created = Utc.timestamp_opt(secs, nanos).single().unwrap_or_else(Utc::now);
                let duration = chrono::Duration::seconds(1800 + i64::try_from(r.below(3600)).unwrap_or(0));
                let end = created.checked_add_signed(duration).unwrap_or(created);
                (meeting_id, call_id, correlation, created, graph_time(end))
            }
        };
        let prefix = format!(
            "{base}/users/{}/onlineMeetings/{}/transcripts/{}",
            encode_segment(organizer),
            encode_segment(&meeting_id),
            encode_segment(&id)
        );
        let content_key = mix64(seed ^ mix64(domain::TRANSCRIPT_CONTENT ^ mix64(serial)));
        let (cues, size) = vtt::measure(content_key, requested_size);
        Transcript {
            serial,
            id,
            meeting_id,
            call_id,
            content_correlation_id,
            organizer: organizer.to_owned(),
            created,
            created_str: graph_time(created),
            end_str,
            content_url: format!("{prefix}/content"),
            metadata_url: format!("{prefix}/metadataContent"),
            content_key,
            cues,
            size,
        }
    }

    pub(crate) fn info(&self) -> TranscriptInfo {
        TranscriptInfo {
            id: self.id.clone(),
            meeting_id: self.meeting_id.clone(),
            organizer: self.organizer.clone(),
            created: self.created_str.clone(),
            content_correlation_id: self.content_correlation_id.clone(),
            transcript_content_url: self.content_url.clone(),
            metadata_content_url: self.metadata_url.clone(),
            size: self.size,
            call_id: self.call_id.clone(),
        }
    }

    /// The WebVTT body.
    pub(crate) fn vtt(&self) -> Vec<u8> {
        vtt::vtt(self.content_key, self.cues)
    }

    /// The metadata body (JSON).
    pub(crate) fn metadata(&self) -> Vec<u8> {
        vtt::metadata(self.content_key, self.cues)
    }

    fn served(&self, source: Source, size: u64, media_type: &'static str) -> Served {
        Served {
            kind: ArtifactKind::Transcript,
            place: Place::Meeting,
            id: self.id.clone(),
            user: self.organizer.clone(),
            container: self.meeting_id.clone(),
            signed_serial: self.serial | TRANSCRIPT_TAG,
            serial: self.serial,
            source,
            size,
            media_type,
        }
    }

    /// What its content URL serves: the VTT body.
    pub(crate) fn served_content(&self) -> Served {
        self.served(Source::Buffer(Bytes::from(self.vtt())), self.size, "text/vtt")
    }

    /// What its metadata URL serves.
    pub(crate) fn served_metadata(&self) -> Served {
        let body = self.metadata();
        let size = body.len() as u64;
        self.served(Source::Buffer(Bytes::from(body)), size, "application/json")
    }

    /// The callTranscript JSON object.
    pub(crate) fn to_json(&self, tenant: &str) -> serde_json::Value {
        serde_json::json!({
            "@odata.type": "#microsoft.graph.callTranscript",
            "id": self.id,
            "meetingId": self.meeting_id,
            "callId": self.call_id,
            "contentCorrelationId": self.content_correlation_id,
            "createdDateTime": self.created_str,
            "endDateTime": self.end_str,
            "transcriptContentUrl": self.content_url,
            "meetingOrganizer": meeting_organizer(&self.organizer, tenant),
        })
    }
}

/// The meetings' recordings and transcripts, and the organizers.
#[derive(Debug, Default)]
pub(crate) struct Meetings {
    /// Every recording, by serial.
    pub(crate) recordings: Vec<Recording>,
    /// Recording id → serial.
    pub(crate) by_id: HashMap<String, usize>,
    /// Every organizer (lowercase), with the serials of its recordings.
    pub(crate) organizers: BTreeMap<String, Vec<usize>>,
    /// Every transcript, by serial.
    pub(crate) transcripts: Vec<Transcript>,
    /// Transcript id → serial.
    pub(crate) transcript_by_id: HashMap<String, usize>,
    /// Organizer (lowercase) → the serials of its transcripts.
    pub(crate) organizer_transcripts: HashMap<String, Vec<usize>>,
    organizer_counter: u64,
    /// Link-shape alternation counters (nextLinks, deltaLinks).
    pub(crate) next_shape: u64,
    pub(crate) delta_shape: u64,
}

impl Meetings {
    /// The serials of `organizer`'s items of `kind`, oldest first.
    pub(crate) fn artifact_serials(&self, kind: ArtifactKind, organizer: &str) -> &[usize] {
        match kind {
            ArtifactKind::Recording => self.organizers.get(organizer).map_or(&[], Vec::as_slice),
            ArtifactKind::Transcript => self.organizer_transcripts.get(organizer).map_or(&[], Vec::as_slice),
        }
    }

    /// How many items of `kind` exist (the next serial).
    pub(crate) fn artifact_count(&self, kind: ArtifactKind) -> usize {
        match kind {
            ArtifactKind::Recording => self.recordings.len(),
            ArtifactKind::Transcript => self.transcripts.len(),
        }
    }

    /// When item `serial` of `kind` was created.
    pub(crate) fn artifact_created(&self, kind: ArtifactKind, serial: usize) -> Option<DateTime<Utc>> {
        match kind {
            ArtifactKind::Recording => self.recordings.get(serial).map(|r| r.created),
            ArtifactKind::Transcript => self.transcripts.get(serial).map(|t| t.created),
        }
    }

    /// The JSON object of item `serial` of `kind`.
    pub(crate) fn artifact_json(&self, kind: ArtifactKind, serial: usize, tenant: &str) -> Option<serde_json::Value> {
        match kind {
            ArtifactKind::Recording => self.recordings.get(serial).map(|r| r.to_json(tenant)),
            ArtifactKind::Transcript => self.transcripts.get(serial).map(|t| t.to_json(tenant)),
        }
    }

    /// What the content URL of the item of `kind` with `id` serves.
    pub(crate) fn served_content(&self, kind: ArtifactKind, id: &str) -> Option<Served> {
        Some(match kind {
            ArtifactKind::Recording => self.recording(id)?.served(),
            ArtifactKind::Transcript => self.transcript(id)?.served_content(),
        })
    }

    /// What the pre-authenticated URLs signed for `signed_serial` serve (a
    /// recording's serial, or a transcript's tagged with [`TRANSCRIPT_TAG`]).
    pub(crate) fn served(&self, signed_serial: u64) -> Option<Served> {
        if signed_serial & TRANSCRIPT_TAG != 0 {
            let t = self
                .transcripts
                .get(usize::try_from(signed_serial & !TRANSCRIPT_TAG).ok()?)?;
            Some(t.served_content())
        } else {
            self.recordings
                .get(usize::try_from(signed_serial).ok()?)
                .map(Recording::served)
        }
    }

    /// The recording with `id`.
    pub(crate) fn recording(&self, id: &str) -> Option<&Recording> {
        self.recordings.get(*self.by_id.get(id)?)
    }

    /// The transcript with `id`.
    pub(crate) fn transcript(&self, id: &str) -> Option<&Transcript> {
        self.transcripts.get(*self.transcript_by_id.get(id)?)
    }

    /// The recordings of `organizer` (any case), oldest first.
    pub(crate) fn recordings_of(&self, organizer: &str) -> Vec<RecordingInfo> {
        self.artifact_serials(ArtifactKind::Recording, &organizer.to_ascii_lowercase())
            .iter()
            .filter_map(|&s| self.recordings.get(s))
            .map(Recording::info)
            .collect()
    }

    /// The transcripts of `organizer` (any case), oldest first.
    pub(crate) fn transcripts_of(&self, organizer: &str) -> Vec<TranscriptInfo> {
        self.artifact_serials(ArtifactKind::Transcript, &organizer.to_ascii_lowercase())
            .iter()
            .filter_map(|&s| self.transcripts.get(s))
            .map(Transcript::info)
            .collect()
    }

    /// Registers `organizer` (lowercase) if unknown.
    pub(crate) fn register(&mut self, organizer: &str) {
        self.organizers.entry(organizer.to_owned()).or_default();
    }

    /// A new organizer GUID (registered, with no recordings yet).
    pub(crate) fn new_organizer(&mut self, seed: u64) -> String {
        loop {
            let n = self.organizer_counter;
            self.organizer_counter += 1;
            let g = Rng::derive(seed, domain::ORGANIZER, n).guid();
            if !self.organizers.contains_key(&g) {
                self.organizers.insert(g.clone(), Vec::new());
                return g;
            }
        }
    }

    /// Adds a recording to `organizer` (lowercase; registered if unknown)
    /// and returns its info.
    pub(crate) fn add_recording(
        &mut self,
        seed: u64,
        base: &str,
        organizer: &str,
        size: u64,
        url_override: Option<&str>,
    ) -> RecordingInfo {
        let serial = self.recordings.len() as u64;
        let rec = Recording::generate(seed, serial, organizer, size, base, url_override);
        let info = rec.info();
        let index = self.recordings.len();
        self.by_id.insert(rec.id.clone(), index);
        self.recordings.push(rec);
        self.organizers
            .entry(organizer.to_owned())
            .or_default()
            .push(serial as usize);
        info
    }

    /// Adds a transcript to `organizer` (lowercase; registered if unknown),
    /// of the meeting of the recording with id `recording` if it is known,
    /// and returns its info.
    pub(crate) fn add_transcript(
        &mut self,
        seed: u64,
        base: &str,
        organizer: &str,
        recording: Option<&str>,
        size: u64,
    ) -> TranscriptInfo {
        let serial = self.transcripts.len();
        let rec = recording.and_then(|id| self.recording(id));
        let t = Transcript::generate(seed, serial as u64, organizer, size, base, rec);
        let info = t.info();
        self.transcript_by_id.insert(t.id.clone(), serial);
        self.transcripts.push(t);
        self.register(organizer);
        self.organizer_transcripts
            .entry(organizer.to_owned())
            .or_default()
            .push(serial);
        info
    }
}
