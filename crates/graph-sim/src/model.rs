//! The simulator's shared state: tenant data, issued tokens, faults and stats.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use chrono::{DateTime, TimeZone as _, Utc};

use crate::assertion::IdentityState;
use crate::body::{Meter, Source};
use crate::config::SimConfig;
use crate::directory::{Directory, MemberRound, UserQuery};
use crate::faults::{
    CredentialRejection, FaultFlags, FaultState, MailboxFault, RedirectStyle, RetryAfter, SyncLocation, Target,
    take_one,
};
use crate::http::ApiVersion;
use crate::http::{encode_segment, encode_token};
use crate::rng::{Rng, domain, hex, mix64};
use crate::stats::{Origin, RequestRecord, StatsData};
use crate::vtt;
use crate::{ContactFolderInfo, RecordingInfo, TranscriptInfo};

/// Locks `m`, ignoring poisoning (no code path panics while holding a lock, and
/// the state stays consistent even if one did).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything the servers and the [`crate::GraphSim`] handle share.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) graph_origin: String,
    pub(crate) download_origin: String,
    pub(crate) data: Mutex<Data>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) stats: Mutex<StatsData>,
    /// Registered certificates and federated tokens, and the `jti`s seen.
    pub(crate) identity: Mutex<IdentityState>,
    /// Content bytes handed to the HTTP layer (both origins), and whether
    /// shutdown has started: what every content body reports to and watches.
    pub(crate) meter: Arc<Meter>,
    request_counter: AtomicU64,
}

impl Shared {
    pub(crate) fn new(config: SimConfig, graph_origin: String, download_origin: String) -> Shared {
        Shared {
            config,
            graph_origin,
            download_origin,
            data: Mutex::new(Data::default()),
            faults: Mutex::new(FaultState::default()),
            stats: Mutex::new(StatsData::default()),
            identity: Mutex::new(IdentityState::default()),
            meter: Arc::new(Meter::default()),
            request_counter: AtomicU64::new(0),
        }
    }

    /// The API base for `version` (`beta` or `v1.0`).
    pub(crate) fn base(&self, version: ApiVersion) -> String {
        format!("{}/{}", self.graph_origin, version.as_str())
    }

    /// A fresh GUID for request / trace ids.
    pub(crate) fn request_guid(&self) -> String {
        let n = self.request_counter.fetch_add(1, Ordering::Relaxed);
        Rng::derive(self.config.seed, domain::REQUEST_ID, n).guid()
    }

    /// Records a finished request in the stats.
    pub(crate) fn record_request(
        &self,
        at: Instant,
        origin: Origin,
        method: String,
        path_and_query: String,
        status: u16,
        authorization: bool,
    ) {
        lock(&self.stats).requests.push(RequestRecord {
            at,
            origin,
            method,
            path_and_query,
            status,
            authorization,
        });
    }

    /// Runs `f` on the stats.
    pub(crate) fn stat(&self, f: impl FnOnce(&mut StatsData)) {
        f(&mut lock(&self.stats));
    }

    /// Consumes one pending throttle for `target`, if any: `(status, retry_after)`.
    pub(crate) fn take_throttle(&self, target: Target) -> Option<(u16, RetryAfter)> {
        let mut f = lock(&self.faults);
        let slot = &mut f.throttle[target.index()];
        let t = slot.as_mut()?;
        if t.remaining == 0 {
            *slot = None;
            return None;
        }
        t.remaining -= 1;
        let out = (t.status, t.retry_after);
        if t.remaining == 0 {
            *slot = None;
        }
        Some(out)
    }

    /// The content rate limit, if any.
    pub(crate) fn content_rate(&self) -> Option<u64> {
        lock(&self.faults).content_rate
    }

    /// Consumes one pending `drop_mid_body` fault, if any.
    pub(crate) fn take_drop_mid_body(&self) -> bool {
        take_one(&mut lock(&self.faults).drop_mid_body)
    }

    /// Consumes one pending `cut_delta_pages` fault, if any.
    pub(crate) fn take_cut_page(&self) -> bool {
        take_one(&mut lock(&self.faults).cut_pages)
    }

    /// Consumes one pending `token_connection_reset`, if any.
    pub(crate) fn take_token_connection_reset(&self) -> bool {
        take_one(&mut lock(&self.faults).token_connection_reset)
    }

    /// The mailbox fault set for `user`, if any.
    pub(crate) fn mailbox_fault(&self, user: &str) -> Option<MailboxFault> {
        lock(&self.faults)
            .mailbox_faults
            .get(&user.to_ascii_lowercase())
            .copied()
    }

    /// Whether `transcripts_disabled` is on.
    pub(crate) fn transcripts_disabled(&self) -> bool {
        lock(&self.faults).transcripts_disabled
    }

    /// The `content_status` fault set for recording or transcript `id`, if any.
    pub(crate) fn content_status(&self, id: &str) -> Option<u16> {
        lock(&self.faults).content_status.get(id).copied()
    }

    /// Whether every body of recording or transcript `id` is cut short.
    pub(crate) fn always_truncated(&self, id: &str) -> bool {
        lock(&self.faults).truncated.contains(id)
    }

    /// The `reject_credentials` switch.
    pub(crate) fn credential_rejection(&self) -> Option<CredentialRejection> {
        lock(&self.faults).reject_credentials
    }

    /// Whether any of `organizers` is switched to `403` by `organizer_forbidden`.
    pub(crate) fn organizer_forbidden(&self, organizers: &[&str]) -> bool {
        let f = lock(&self.faults);
        organizers
            .iter()
            .any(|o| f.forbidden_organizers.contains(&o.to_ascii_lowercase()))
    }

    /// The current redirect style.
    pub(crate) fn redirect_style(&self) -> RedirectStyle {
        lock(&self.faults).redirect_style
    }

    /// A snapshot of the boolean fault switches.
    pub(crate) fn fault_flags(&self) -> FaultFlags {
        let f = lock(&self.faults);
        FaultFlags {
            payment_required: f.payment_required,
            empty_pages: f.empty_pages,
            duplicate_items: f.duplicate_items,
            top_drops_next_link: f.top_drops_next_link,
        }
    }

    /// Consumes the pending `replay_older` count.
    pub(crate) fn take_replay_older(&self) -> usize {
        std::mem::take(&mut lock(&self.faults).replay_older)
    }

    /// The signature of pre-authenticated URLs for the artifact with `serial`
    /// (a recording's serial, or a transcript's tagged with [`TRANSCRIPT_TAG`]).
    fn download_signature(&self, serial: u64) -> String {
        let mut r = Rng::derive(self.config.seed, domain::SIGNATURE, serial);
        hex(&r.bytes(16))
    }

    /// `{serial:016x}{signature}`: the signed part of every pre-authenticated
    /// URL (download origin and redirect hops) of the artifact with `serial`
    /// (tagged with [`TRANSCRIPT_TAG`] for a transcript).
    pub(crate) fn signed(&self, serial: u64) -> String {
        format!("{serial:016x}{}", self.download_signature(serial))
    }

    /// Parses a signed part: `None` if malformed, else `(serial, signature valid)`.
    pub(crate) fn parse_signed(&self, token: &str) -> Option<(u64, bool)> {
        if token.len() != 48 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let serial = u64::from_str_radix(token.get(..16)?, 16).ok()?;
        Some((serial, token.get(16..)? == self.download_signature(serial)))
    }

    /// What the pre-authenticated URLs of the artifact with (tagged) `serial` serve.
    pub(crate) fn served(&self, serial: u64) -> Option<Served> {
        let data = lock(&self.data);
        if serial & TRANSCRIPT_TAG != 0 {
            let t = data.transcripts.get(usize::try_from(serial & !TRANSCRIPT_TAG).ok()?)?;
            Some(t.served_content())
        } else {
            data.recordings
                .get(usize::try_from(serial).ok()?)
                .map(Recording::served)
        }
    }

    /// Adds a recording to `organizer` (created if unknown) and returns its info.
    pub(crate) fn add_recording(&self, organizer: &str, size: u64, url_override: Option<&str>) -> RecordingInfo {
        let base = self.base(ApiVersion::Beta);
        let mut data = lock(&self.data);
        let org_key = organizer.to_ascii_lowercase();
        let serial = data.recordings.len() as u64;
        let rec = Recording::generate(self.config.seed, serial, &org_key, size, &base, url_override);
        let info = rec.info();
        let index = data.recordings.len();
        data.by_id.insert(rec.id.clone(), index);
        data.recordings.push(rec);
        data.ensure_user(&org_key);
        data.organizers.entry(org_key).or_default().push(serial as usize);
        info
    }

    /// Adds a transcript to `organizer` (created if unknown), of the meeting of
    /// the recording with id `recording` if it is known, and returns its info.
    pub(crate) fn add_transcript(&self, organizer: &str, recording: Option<&str>, size: u64) -> TranscriptInfo {
        let base = self.base(ApiVersion::Beta);
        let mut data = lock(&self.data);
        let org_key = organizer.to_ascii_lowercase();
        let serial = data.transcripts.len();
        let rec = recording
            .and_then(|id| data.by_id.get(id))
            .and_then(|&i| data.recordings.get(i));
        let t = Transcript::generate(self.config.seed, serial as u64, &org_key, size, &base, rec);
        let info = t.info();
        data.transcript_by_id.insert(t.id.clone(), serial);
        data.transcripts.push(t);
        data.ensure_user(&org_key);
        data.organizers.entry(org_key.clone()).or_default();
        data.organizer_transcripts.entry(org_key).or_default().push(serial);
        info
    }
}

/// Set in the serial of a transcript's pre-authenticated URLs, so that they
/// never name a recording.
pub(crate) const TRANSCRIPT_TAG: u64 = 1 << 62;

/// The two kinds of meeting artifact served through the same delta, content
/// and redirect machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArtifactKind {
    /// `callRecording`, `getAllRecordings`.
    Recording,
    /// `callTranscript`, `getAllTranscripts`.
    Transcript,
}

impl ArtifactKind {
    /// The delta function's name.
    pub(crate) fn function(self) -> &'static str {
        match self {
            ArtifactKind::Recording => "getAllRecordings",
            ArtifactKind::Transcript => "getAllTranscripts",
        }
    }

    /// The resource type's name (`microsoft.graph.{type_name}`).
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            ArtifactKind::Recording => "callRecording",
            ArtifactKind::Transcript => "callTranscript",
        }
    }

    /// The properties `$select` may name.
    pub(crate) fn properties(self) -> &'static [&'static str] {
        match self {
            ArtifactKind::Recording => &[
                "id",
                "meetingId",
                "callId",
                "contentCorrelationId",
                "createdDateTime",
                "endDateTime",
                "recordingContentUrl",
                "meetingOrganizer",
            ],
            ArtifactKind::Transcript => &[
                "id",
                "meetingId",
                "callId",
                "contentCorrelationId",
                "createdDateTime",
                "endDateTime",
                "transcriptContentUrl",
                "meetingOrganizer",
            ],
        }
    }
}

/// What a content URL (or one of its pre-authenticated hops) serves.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub(crate) kind: ArtifactKind,
    pub(crate) id: String,
    pub(crate) organizer: String,
    pub(crate) meeting_id: String,
    /// The serial its pre-authenticated URLs are signed for (tagged for a transcript).
    pub(crate) signed_serial: u64,
    /// The serial within its kind (for [`crate::ContentMode::Alternate`]).
    pub(crate) serial: u64,
    pub(crate) source: Source,
    pub(crate) size: u64,
    pub(crate) media_type: &'static str,
}

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

/// `2024-01-01T08:00:00Z`, the creation time of the first recording.
const EPOCH_SECS: i64 = 1_704_096_000;

/// A date-time as Graph writes it, with 100 ns ticks
/// (`2024-01-01T08:03:17.1234567Z`). chrono has no 7-digit fraction
/// specifier, hence by hand.
fn graph_time(t: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.timestamp_subsec_nanos() / 100
    )
}

/// `meetingOrganizer` as Graph sends it on recordings and transcripts.
fn meeting_organizer(organizer: &str, tenant: &str) -> serde_json::Value {
    serde_json::json!({
        "application": null,
        "device": null,
        "user": {
            "@odata.type": "#microsoft.graph.teamworkUserIdentity",
            "id": organizer,
            "displayName": null,
            "userIdentityType": "aadUser",
            "tenantId": tenant,
        }
    })
}

impl Recording {
    fn generate(
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
        }
    }

    pub(crate) fn served(&self) -> Served {
        Served {
            kind: ArtifactKind::Recording,
            id: self.id.clone(),
            organizer: self.organizer.clone(),
            meeting_id: self.meeting_id.clone(),
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
    fn generate(
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
            id: self.id.clone(),
            organizer: self.organizer.clone(),
            meeting_id: self.meeting_id.clone(),
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

/// Why a contact left the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Permanently deleted (`@removed.reason == "deleted"`).
    Deleted,
    /// Soft-deleted (`@removed.reason == "changed"`).
    Changed,
}

impl Removal {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Removal::Deleted => "deleted",
            Removal::Changed => "changed",
        }
    }
}

/// A simulated Outlook contact.
#[derive(Debug, Clone)]
pub(crate) struct Contact {
    pub(crate) id: String,
    pub(crate) display_name: String,
    pub(crate) created: String,
    pub(crate) modified: String,
    pub(crate) company: String,
    pub(crate) business_phone: String,
    /// Global contact change sequence number of the last change.
    pub(crate) change_seq: u64,
    pub(crate) removed: Option<Removal>,
}

/// The companies simulated contacts work for.
const COMPANIES: &[&str] = &[
    "Contoso",
    "Fabrikam",
    "Northwind Traders",
    "Tailspin Toys",
    "Litware",
    "Adventure Works",
    "Woodgrove Bank",
];

/// Contact properties `$select` may name.
pub(crate) const CONTACT_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "givenName",
    "surname",
    "emailAddresses",
    "parentFolderId",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "businessPhones",
    "companyName",
];

impl Contact {
    fn change_key(&self) -> String {
        let mut b = b"EQAAABYAAAD".to_vec();
        b.extend_from_slice(&self.change_seq.to_be_bytes());
        STANDARD.encode(b)
    }

    fn given_and_surname(&self) -> (String, String) {
        let mut parts = self.display_name.split_whitespace();
        let given = parts.next().unwrap_or_default().to_owned();
        let surname = parts.collect::<Vec<_>>().join(" ");
        (given, surname)
    }

    fn email(&self) -> String {
        let local: Vec<String> = self
            .display_name
            .split_whitespace()
            .map(|w| {
                w.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect::<String>()
                    .to_ascii_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect();
        if local.is_empty() {
            format!("contact{}@contoso.com", self.change_seq)
        } else {
            format!("{}@contoso.com", local.join("."))
        }
    }

    /// The contact JSON object, restricted to `select` when given.
    pub(crate) fn to_json(&self, folder: &str, select: Option<&[String]>) -> serde_json::Value {
        if let Some(reason) = self.removed {
            return serde_json::json!({
                "@odata.type": "#microsoft.graph.contact",
                "id": self.id,
                "@removed": { "reason": reason.reason() },
            });
        }
        let ck = self.change_key();
        let mut m = serde_json::Map::new();
        m.insert("@odata.type".into(), "#microsoft.graph.contact".into());
        m.insert("@odata.etag".into(), format!("W/\"{ck}\"").into());
        m.insert("id".into(), self.id.clone().into());
        let (given, surname) = self.given_and_surname();
        let fields: [(&str, serde_json::Value); 11] = [
            ("createdDateTime", self.created.clone().into()),
            ("lastModifiedDateTime", self.modified.clone().into()),
            ("changeKey", ck.into()),
            ("categories", serde_json::Value::Array(Vec::new())),
            ("parentFolderId", folder.to_owned().into()),
            ("displayName", self.display_name.clone().into()),
            ("givenName", given.into()),
            ("surname", surname.into()),
            (
                "emailAddresses",
                serde_json::json!([{ "name": self.display_name, "address": self.email() }]),
            ),
            ("businessPhones", serde_json::json!([self.business_phone])),
            ("companyName", self.company.clone().into()),
        ];
        for (name, value) in fields {
            let wanted = select.is_none_or(|s| s.iter().any(|f| f.eq_ignore_ascii_case(name)));
            if wanted {
                m.insert(name.to_owned(), value);
            }
        }
        serde_json::Value::Object(m)
    }
}

/// One user's contact folder.
#[derive(Debug, Default)]
pub(crate) struct ContactFolder {
    /// Its id.
    pub(crate) folder: String,
    pub(crate) display_name: String,
    /// The id of its parent: the default folder for a top-level folder, the
    /// mailbox root for the default folder.
    pub(crate) parent_id: String,
    /// Creation order among all folders.
    pub(crate) seq: u64,
    pub(crate) contacts: Vec<Contact>,
    pub(crate) by_id: HashMap<String, usize>,
}

impl ContactFolder {
    /// The contactFolder JSON object.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.folder,
            "displayName": self.display_name,
            "parentFolderId": self.parent_id,
        })
    }

    pub(crate) fn info(&self) -> ContactFolderInfo {
        ContactFolderInfo {
            id: self.folder.clone(),
            display_name: self.display_name.clone(),
            parent_folder_id: self.parent_id.clone(),
        }
    }
}

/// A user's mailbox, as far as contacts go.
#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    /// The default `Contacts` folder (whose parent, the mailbox root, is
    /// never listed).
    pub(crate) default_id: String,
}

/// The well-known name of the default contacts folder.
pub(crate) const DEFAULT_FOLDER_ALIAS: &str = "contacts";

/// The display name of the default contacts folder.
pub(crate) const DEFAULT_FOLDER_NAME: &str = "Contacts";

/// The parameters of a recordings or transcripts delta round, carried inside
/// its tokens.
#[derive(Debug)]
pub(crate) struct ArtifactQuery {
    pub(crate) kind: ArtifactKind,
    pub(crate) version: ApiVersion,
    pub(crate) organizer: String,
    pub(crate) start: Option<DateTime<Utc>>,
    pub(crate) end: Option<DateTime<Utc>>,
    pub(crate) top: Option<usize>,
    /// `$select`, as given (property names in the order given).
    pub(crate) select: Option<Vec<String>>,
}

impl ArtifactQuery {
    /// Whether an item created at `created` is in the round's range.
    pub(crate) fn matches(&self, created: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| created >= s) && self.end.is_none_or(|e| created <= e)
    }
}

/// The parameters of a contacts delta round, carried inside its tokens.
#[derive(Debug)]
pub(crate) struct ContactQuery {
    pub(crate) version: ApiVersion,
    pub(crate) user: String,
    pub(crate) folder: String,
    pub(crate) select: Option<Vec<String>>,
    pub(crate) page_size: Option<usize>,
}

/// A snapshot of the items of one round.
#[derive(Debug)]
pub(crate) struct Round<Q, I> {
    pub(crate) query: Arc<Q>,
    pub(crate) items: Vec<I>,
    /// The high-water mark the round's deltaLink continues from.
    pub(crate) high_water: u64,
}

/// What an issued skip / delta token stands for.
#[derive(Debug, Clone)]
pub(crate) enum SyncState {
    ArtifactSkip {
        round: Arc<Round<ArtifactQuery, usize>>,
        offset: usize,
        empty_page: bool,
    },
    ArtifactDelta {
        query: Arc<ArtifactQuery>,
        high_water: u64,
    },
    ContactSkip {
        round: Arc<Round<ContactQuery, serde_json::Value>>,
        offset: usize,
        empty_page: bool,
    },
    ContactDelta {
        query: Arc<ContactQuery>,
        high_water: u64,
    },
    UserSkip {
        round: Arc<Round<UserQuery, serde_json::Value>>,
        offset: usize,
        empty_page: bool,
    },
    UserDelta {
        query: Arc<UserQuery>,
        high_water: u64,
    },
    /// A page of a group's transitive members (not a delta: never expired
    /// by `expire_sync_state`).
    MemberSkip {
        round: Arc<MemberRound>,
        offset: usize,
    },
}

impl SyncState {
    pub(crate) fn is_skip(&self) -> bool {
        matches!(
            self,
            SyncState::ArtifactSkip { .. }
                | SyncState::ContactSkip { .. }
                | SyncState::UserSkip { .. }
                | SyncState::MemberSkip { .. }
        )
    }
}

/// An issued skip / delta token.
#[derive(Debug)]
pub(crate) struct SyncToken {
    pub(crate) state: SyncState,
    /// Set by `expire_sync_state_with`: `(code, location)`.
    pub(crate) expired: Option<(String, SyncLocation)>,
}

/// An issued access token.
#[derive(Debug)]
pub(crate) struct AccessToken {
    /// `None`: never expires (lifetime beyond what `Instant` can represent).
    pub(crate) expires_at: Option<Instant>,
    pub(crate) revoked: bool,
}

impl AccessToken {
    /// Not revoked and not expired at `now`.
    pub(crate) fn is_valid(&self, now: Instant) -> bool {
        !self.revoked && self.expires_at.is_none_or(|e| now < e)
    }
}

/// The tenant data and every issued token.
#[derive(Debug, Default)]
pub(crate) struct Data {
    pub(crate) recordings: Vec<Recording>,
    pub(crate) by_id: HashMap<String, usize>,
    /// Every organizer (lowercase), with the serials of its recordings.
    pub(crate) organizers: BTreeMap<String, Vec<usize>>,
    pub(crate) transcripts: Vec<Transcript>,
    pub(crate) transcript_by_id: HashMap<String, usize>,
    /// Organizer (lowercase) → the serials of its transcripts.
    pub(crate) organizer_transcripts: HashMap<String, Vec<usize>>,
    organizer_counter: u64,
    pub(crate) access_tokens: HashMap<String, AccessToken>,
    access_counter: u64,
    pub(crate) sync_tokens: HashMap<String, SyncToken>,
    sync_counter: u64,
    /// Link-shape alternation counters (nextLinks, deltaLinks).
    pub(crate) next_shape: u64,
    pub(crate) delta_shape: u64,
    /// (lowercased user, folder id) → folder.
    pub(crate) contact_folders: HashMap<(String, String), ContactFolder>,
    /// Lowercased user → the ids of its default folder and of the root above it.
    pub(crate) mailboxes: HashMap<String, Mailbox>,
    pub(crate) contact_seq: u64,
    contact_counter: u64,
    /// Contact folders (and mailbox roots) created so far, for their ids and order.
    folder_counter: u64,
    /// Users (every organizer is one), groups and devices.
    pub(crate) directory: Directory,
}

impl Data {
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

    /// What the content URL of the item of `kind` with `id` serves, if it
    /// belongs to `organizer`'s meeting `meeting_id` (`None` otherwise).
    pub(crate) fn served_content(
        &self,
        kind: ArtifactKind,
        organizer: &str,
        meeting_id: &str,
        id: &str,
    ) -> Option<Served> {
        let served = match kind {
            ArtifactKind::Recording => self.recordings.get(*self.by_id.get(id)?)?.served(),
            ArtifactKind::Transcript => self.transcripts.get(*self.transcript_by_id.get(id)?)?.served_content(),
        };
        (served.organizer.eq_ignore_ascii_case(organizer) && served.meeting_id == meeting_id).then_some(served)
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

    /// Issues a new opaque sync token (raw, percent-escaped as it appears in URLs).
    pub(crate) fn issue_sync_token(&mut self, seed: u64, state: SyncState) -> String {
        loop {
            let n = self.sync_counter;
            self.sync_counter += 1;
            let mut r = Rng::derive(seed, domain::SYNC_TOKEN, n);
            let mut raw = r.bytes(35); // 35 = 3*11 + 2 → one '=' of padding
            raw[..3].copy_from_slice(b"DSp");
            raw[6..9].copy_from_slice(&[0xFB, 0xFF, 0xBF]); // "+/+/"
            raw[12..20].copy_from_slice(&n.to_be_bytes());
            let token = encode_token(&STANDARD.encode(&raw));
            if !self.sync_tokens.contains_key(&token) {
                self.sync_tokens
                    .insert(token.clone(), SyncToken { state, expired: None });
                return token;
            }
        }
    }

    /// Issues a new access token valid until `expires_at`.
    pub(crate) fn issue_access_token(&mut self, seed: u64, expires_at: Option<Instant>) -> String {
        if self.access_tokens.len() > 4096 {
            let now = Instant::now();
            self.access_tokens.retain(|_, t| t.is_valid(now));
        }
        loop {
            let n = self.access_counter;
            self.access_counter += 1;
            let mut r = Rng::derive(seed, domain::ACCESS_TOKEN, n);
            let token = format!("sim.{}", URL_SAFE_NO_PAD.encode(r.bytes(48)));
            if !self.access_tokens.contains_key(&token) {
                self.access_tokens.insert(
                    token.clone(),
                    AccessToken {
                        expires_at,
                        revoked: false,
                    },
                );
                return token;
            }
        }
    }

    /// A new contact id, shaped like real ones (standard base64 with `+`, `/`, `=`),
    /// and the contact's number.
    fn new_contact_id(&mut self, seed: u64) -> (String, u64) {
        let n = self.contact_counter;
        self.contact_counter += 1;
        let mut r = Rng::derive(seed, domain::CONTACT, n);
        let mut raw = r.bytes(70); // 70 = 3*23 + 1 → "=="
        raw[..4].copy_from_slice(&[0x00, 0x03, 0x24, 0x00]); // "AAMkA"
        raw[30..33].copy_from_slice(&[0xFB, 0xFF, 0xBF]);
        raw[60..68].copy_from_slice(&n.to_be_bytes());
        (STANDARD.encode(raw), n)
    }

    /// A new folder id, shaped like real ones (`AAMkA…`, standard base64
    /// with `+`, `/` and one `=`), and its creation number.
    fn new_folder_id(&mut self, seed: u64) -> (String, u64) {
        let n = self.folder_counter;
        self.folder_counter += 1;
        let mut r = Rng::derive(seed, domain::CONTACT_FOLDER, n);
        let mut raw = r.bytes(47); // 47 = 3*15 + 2 → "="
        raw[..4].copy_from_slice(&[0x00, 0x03, 0x24, 0x00]); // "AAMkA"
        raw[12..15].copy_from_slice(&[0xFB, 0xFF, 0xBF]); // "+/+/"
        raw[30..38].copy_from_slice(&n.to_be_bytes());
        (STANDARD.encode(raw), n)
    }

    /// `user`'s mailbox (lowercased key), made with its default folder if it
    /// has none yet.
    pub(crate) fn ensure_mailbox(&mut self, seed: u64, user: &str) -> Mailbox {
        let key = user.to_ascii_lowercase();
        if let Some(m) = self.mailboxes.get(&key) {
            return m.clone();
        }
        let (root_id, _) = self.new_folder_id(seed);
        let (default_id, seq) = self.new_folder_id(seed);
        self.contact_folders.insert(
            (key.clone(), default_id.clone()),
            ContactFolder {
                folder: default_id.clone(),
                display_name: DEFAULT_FOLDER_NAME.to_owned(),
                parent_id: root_id.clone(),
                seq,
                ..ContactFolder::default()
            },
        );
        let m = Mailbox { default_id };
        self.mailboxes.insert(key, m.clone());
        m
    }

    /// The folder id `folder` names for `user`: the default folder's id for
    /// the well-known name `contacts` (any case) when the user has a mailbox,
    /// else `folder` itself.
    pub(crate) fn resolve_folder(&self, user: &str, folder: &str) -> String {
        if folder.eq_ignore_ascii_case(DEFAULT_FOLDER_ALIAS) {
            if let Some(m) = self.mailboxes.get(&user.to_ascii_lowercase()) {
                return m.default_id.clone();
            }
        }
        folder.to_owned()
    }

    /// Makes sure `user` has a folder `folder` (an id or the well-known
    /// `contacts`); an unknown one is created at the top level (under the
    /// default folder), named after its id. Returns its id.
    fn ensure_folder(&mut self, seed: u64, user: &str, folder: &str) -> String {
        let mailbox = self.ensure_mailbox(seed, user);
        let id = self.resolve_folder(user, folder);
        let key = (user.to_ascii_lowercase(), id.clone());
        if !self.contact_folders.contains_key(&key) {
            let seq = self.folder_counter;
            self.folder_counter += 1;
            self.contact_folders.insert(
                key,
                ContactFolder {
                    folder: id.clone(),
                    display_name: id.clone(),
                    parent_id: mailbox.default_id,
                    seq,
                    ..ContactFolder::default()
                },
            );
        }
        id
    }

    /// Adds a folder named `name` under `parent` (the top level when `None`;
    /// an unknown parent is created as by [`Data::ensure_folder`]) and
    /// returns its id.
    pub(crate) fn add_contact_folder(&mut self, seed: u64, user: &str, name: &str, parent: Option<&str>) -> String {
        let mailbox = self.ensure_mailbox(seed, user);
        let parent_id = match parent {
            Some(p) => self.ensure_folder(seed, user, p),
            None => mailbox.default_id,
        };
        let (id, seq) = self.new_folder_id(seed);
        self.contact_folders.insert(
            (user.to_ascii_lowercase(), id.clone()),
            ContactFolder {
                folder: id.clone(),
                display_name: name.to_owned(),
                parent_id,
                seq,
                ..ContactFolder::default()
            },
        );
        id
    }

    /// The direct child folders of `parent` in `user`'s mailbox, in order of creation.
    pub(crate) fn child_folders(&self, user: &str, parent: &str) -> Vec<&ContactFolder> {
        let key = user.to_ascii_lowercase();
        let mut v: Vec<&ContactFolder> = self
            .contact_folders
            .iter()
            .filter(|((u, _), f)| *u == key && f.parent_id == parent)
            .map(|(_, f)| f)
            .collect();
        v.sort_by_key(|f| f.seq);
        v
    }

    /// Every folder of `user`, the default one included, in order of creation.
    pub(crate) fn all_folders(&self, user: &str) -> Vec<&ContactFolder> {
        let key = user.to_ascii_lowercase();
        let mut v: Vec<&ContactFolder> = self
            .contact_folders
            .iter()
            .filter(|((u, _), _)| *u == key)
            .map(|(_, f)| f)
            .collect();
        v.sort_by_key(|f| f.seq);
        v
    }

    /// Adds a contact named `display_name` to `user`'s `folder` (made as by
    /// [`Data::ensure_folder`] if unknown) and returns its id.
    pub(crate) fn add_contact(&mut self, seed: u64, user: &str, folder: &str, display_name: &str) -> String {
        let folder = self.ensure_folder(seed, user, folder);
        let (id, n) = self.new_contact_id(seed);
        self.contact_seq += 1;
        let seq = self.contact_seq;
        let stamp = contact_stamp(seq);
        let slot = usize::try_from(n).unwrap_or(0);
        let contact = Contact {
            id: id.clone(),
            display_name: display_name.to_owned(),
            created: stamp.clone(),
            modified: stamp,
            company: COMPANIES[slot % COMPANIES.len()].to_owned(),
            business_phone: format!("+1 425 555 {:04}", 100 + n % 9900),
            change_seq: seq,
            removed: None,
        };
        if let Some(f) = self.contact_folders.get_mut(&(user.to_ascii_lowercase(), folder)) {
            f.by_id.insert(id.clone(), f.contacts.len());
            f.contacts.push(contact);
        }
        id
    }
}

/// A deterministic timestamp for contact change `seq`.
pub(crate) fn contact_stamp(seq: u64) -> String {
    let secs = EPOCH_SECS.saturating_add(i64::try_from(seq).unwrap_or(0).saturating_mul(60));
    DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
