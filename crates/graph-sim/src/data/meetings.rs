//! Meetings: their recordings and transcripts (what `getAllRecordings` and
//! `getAllTranscripts` list and their content URLs serve), and the organizers.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use chrono::{DateTime, TimeZone as _, Utc};

use crate::data::artifact::{Artifact, ArtifactKind, Artifacts, Occasion, Place};
use crate::data::common::{EPOCH_SECS, graph_time};
use crate::rng::{Rng, domain};

/// What to add to a meeting (see [`Meetings::add`]).
pub(crate) struct NewArtifact<'a> {
    pub(crate) kind: ArtifactKind,
    /// The meeting's organizer (lowercase, but for
    /// [`crate::data::Data::add_meeting_artifact`]).
    pub(crate) organizer: &'a str,
    /// For a transcript: the id of the recording of its meeting, if any.
    pub(crate) recording: Option<&'a str>,
    /// The content size asked for (a transcript's is rounded up to a cue).
    pub(crate) size: u64,
    /// For a recording: its `recordingContentUrl`, instead of the
    /// simulator's own content URL.
    pub(crate) url_override: Option<&'a str>,
}

/// A fresh meeting of `organizer` for the artifact with serial `serial`
/// (its random stream `r` past the id): its ids, when the artifact was
/// created (ten minutes apart by serial, `offset` seconds in, with a jitter
/// below `jitter` seconds) and when the meeting ended (half an hour to an
/// hour and a half later).
fn fresh_meeting(r: &mut Rng, organizer: &str, serial: u64, offset: i64, jitter: u64) -> Occasion {
    let thread = STANDARD_NO_PAD.encode(r.bytes(27));
    let meeting_id = STANDARD.encode(format!("1*{organizer}*0**19:meeting_{thread}@thread.v2"));
    let call_id = r.guid();
    let content_correlation_id = r.guid();
    let secs = EPOCH_SECS
        .saturating_add(offset)
        .saturating_add(i64::try_from(serial).unwrap_or(i64::MAX / 1200).saturating_mul(600))
        .saturating_add(i64::try_from(r.below(jitter)).unwrap_or(0));
    let ticks = r.below(10_000_000); // 100 ns ticks, 7 fractional digits
    let nanos = u32::try_from(ticks * 100).unwrap_or(0);
    let created = Utc.timestamp_opt(secs, nanos).single().unwrap_or_else(Utc::now);
    let duration = chrono::Duration::seconds(1800 + i64::try_from(r.below(3600)).unwrap_or(0));
    let end = created.checked_add_signed(duration).unwrap_or(created);
    Occasion {
        meeting_id,
        call_id,
        user: organizer.to_owned(),
        organized: true,
        content_correlation_id,
        created,
        end_str: graph_time(end),
    }
}

/// The meetings' recordings and transcripts, and the organizers.
#[derive(Debug, Default)]
pub(crate) struct Meetings {
    /// Every recording and transcript.
    pub(crate) artifacts: Artifacts,
    /// Every organizer (lowercase), with the serials of its recordings.
    pub(crate) organizers: BTreeMap<String, Vec<usize>>,
    /// Organizer (lowercase) → the serials of its transcripts.
    organizer_transcripts: HashMap<String, Vec<usize>>,
    organizer_counter: u64,
    /// Link-shape alternation counters (nextLinks, deltaLinks).
    pub(crate) next_shape: u64,
    pub(crate) delta_shape: u64,
    /// Meeting id → the subject a test gave it ([`Meetings::set_subject`]).
    subjects: HashMap<String, String>,
}

/// What `GET /users/{o}/onlineMeetings/{meetingId}` says of a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OnlineMeeting {
    pub(crate) id: String,
    pub(crate) subject: String,
    /// `startDateTime` and `endDateTime` as sent.
    pub(crate) start: String,
    pub(crate) end: String,
}

/// What meetings are about, in turn (see [`Meetings::online_meeting`]).
const TOPICS: &[&str] = &[
    "Quarterly review",
    "Weekly sync",
    "Design review",
    "Customer call",
    "All hands",
];

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
        self.artifacts.of(kind).len()
    }

    /// When item `serial` of `kind` was created.
    pub(crate) fn artifact_created(&self, kind: ArtifactKind, serial: usize) -> Option<DateTime<Utc>> {
        self.artifacts.by_serial(kind, serial).map(|a| a.occasion.created)
    }

    /// The JSON object of item `serial` of `kind`.
    pub(crate) fn artifact_json(&self, kind: ArtifactKind, serial: usize, tenant: &str) -> Option<serde_json::Value> {
        self.artifacts.by_serial(kind, serial).map(|a| a.to_json(tenant))
    }

    /// The items of `kind` of `organizer` (any case), oldest first.
    pub(crate) fn artifacts_of(&self, kind: ArtifactKind, organizer: &str) -> impl Iterator<Item = &Artifact> {
        self.artifact_serials(kind, &organizer.to_ascii_lowercase())
            .iter()
            .filter_map(move |&s| self.artifacts.by_serial(kind, s))
    }

    /// The meeting `meeting_id` of `organizer` (any case), if one of its
    /// recordings or transcripts names it: its subject is the one set by
    /// [`Meetings::set_subject`], else a topic and the serial of its first
    /// artifact (`Quarterly review 1`, `Weekly sync 2`, …); it started five
    /// minutes before that artifact was created and ended when its artifacts
    /// say (`endDateTime`).
    pub(crate) fn online_meeting(&self, organizer: &str, meeting_id: &str) -> Option<OnlineMeeting> {
        let first = [ArtifactKind::Recording, ArtifactKind::Transcript]
            .into_iter()
            .flat_map(|kind| self.artifacts_of(kind, organizer))
            .filter(|a| a.occasion.meeting_id == meeting_id)
            .min_by_key(|a| a.occasion.created)?;
        let serial = usize::try_from(first.slot.serial).unwrap_or(0);
        let subject = self.subjects.get(meeting_id).cloned().unwrap_or_else(|| {
            let topic = TOPICS.get(serial % TOPICS.len()).copied().unwrap_or("Meeting");
            format!("{topic} {}", serial + 1)
        });
        let start = first
            .occasion
            .created
            .checked_sub_signed(chrono::Duration::minutes(5))
            .unwrap_or(first.occasion.created);
        Some(OnlineMeeting {
            id: meeting_id.to_owned(),
            subject,
            start: graph_time(start),
            end: first.occasion.end_str.clone(),
        })
    }

    /// Gives the meeting `meeting_id` the subject `subject`.
    pub(crate) fn set_subject(&mut self, meeting_id: &str, subject: &str) {
        self.subjects.insert(meeting_id.to_owned(), subject.to_owned());
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

    /// Adds a recording or transcript to `new.organizer` (lowercase;
    /// registered if unknown) and returns it (`base`: the API base of its
    /// URLs). A recording is of a fresh meeting, ten minutes after the
    /// previous recording; a transcript is of the meeting of the recording
    /// with id `new.recording` if it is known (the same `meetingId`, `callId`,
    /// `contentCorrelationId` and `endDateTime`, created a minute or so after
    /// the recording), else of a fresh meeting, five minutes after the
    /// previous recording's slot.
    pub(crate) fn add(&mut self, seed: u64, base: &str, new: NewArtifact<'_>) -> &Artifact {
        let slot = self.artifacts.next_slot(Place::Meeting, new.kind);
        let mut r = slot.rng(seed);
        let id = slot.id(&mut r);
        let recording = new
            .recording
            .and_then(|id| self.artifacts.get(ArtifactKind::Recording, id));
        let occasion = match (new.kind, recording) {
            (ArtifactKind::Recording, _) => fresh_meeting(&mut r, new.organizer, slot.serial, 0, 540),
            (ArtifactKind::Transcript, Some(rec)) => {
                let lag = chrono::Duration::seconds(30 + i64::try_from(r.below(90)).unwrap_or(0));
                let created = rec
                    .occasion
                    .created
                    .checked_add_signed(lag)
                    .unwrap_or(rec.occasion.created);
                Occasion {
                    user: new.organizer.to_owned(),
                    created,
                    ..rec.occasion.clone()
                }
            }
            (ArtifactKind::Transcript, None) => fresh_meeting(&mut r, new.organizer, slot.serial, 300, 240),
        };
        let mut artifact = Artifact::new(seed, base, slot, id, occasion, new.size);
        if let Some(url) = new.url_override {
            artifact.content_url = url.to_owned();
        }
        let serial = usize::try_from(slot.serial).unwrap_or(usize::MAX);
        let organizer = new.organizer.to_owned();
        match new.kind {
            ArtifactKind::Recording => self.organizers.entry(organizer).or_default().push(serial),
            ArtifactKind::Transcript => {
                self.register(&organizer);
                self.organizer_transcripts.entry(organizer).or_default().push(serial);
            }
        }
        self.artifacts.push(artifact)
    }
}
