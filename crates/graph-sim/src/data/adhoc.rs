//! Ad hoc calls (1:1, group and PSTN calls) and their recordings and
//! transcripts: what `adhocCalls/getAllRecordings(…)` and
//! `…/getAllTranscripts(…)` list for a user, and what their content URLs
//! serve.
//!
//! An item is listed for the user it was added for, by its
//! `createdDateTime`, which a test may set in the past to model an item that
//! arrives late (after a window that covers it was already listed).

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone as _, Utc};

use crate::data::artifact::{Artifact, ArtifactKind, Artifacts, Occasion, Place};
use crate::data::common::{EPOCH_SECS, graph_time};
use crate::rng::{Rng, domain};

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

/// Every ad hoc call, and their recordings and transcripts.
#[derive(Debug, Default)]
pub(crate) struct AdhocCalls {
    calls: Vec<CallInfo>,
    /// Every recording and transcript.
    pub(crate) artifacts: Artifacts,
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
    /// The serials of `user`'s (lowercase) items of `kind` created in
    /// `[start, end)` (either bound open when `None`), oldest first.
    pub(crate) fn listed(
        &self,
        kind: ArtifactKind,
        user: &str,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Vec<usize> {
        let mut items: Vec<&Artifact> = self
            .artifacts
            .of(kind)
            .iter()
            .filter(|a| a.occasion.user == user)
            .filter(|a| {
                let created = a.occasion.created;
                start.is_none_or(|s| created >= s) && end.is_none_or(|e| created < e)
            })
            .collect();
        items.sort_by_key(|a| (a.occasion.created, a.slot.serial));
        items
            .into_iter()
            .filter_map(|a| usize::try_from(a.slot.serial).ok())
            .collect()
    }

    /// The calls started by `user` (any case), in order of creation.
    pub(crate) fn calls_of(&self, user: &str) -> Vec<CallInfo> {
        let user = user.to_ascii_lowercase();
        self.calls.iter().filter(|c| c.user == user).cloned().collect()
    }

    /// `user`'s (any case) items of `kind`, oldest first.
    pub(crate) fn artifacts_of(&self, kind: ArtifactKind, user: &str) -> impl Iterator<Item = &Artifact> {
        self.listed(kind, &user.to_ascii_lowercase(), None, None)
            .into_iter()
            .filter_map(move |s| self.artifacts.by_serial(kind, s))
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
    pub(crate) fn add_item(&mut self, seed: u64, base: &str, new: NewItem<'_>) -> &Artifact {
        let slot = self.artifacts.next_slot(Place::AdhocCall, new.kind);
        let mut r = slot.rng(seed);
        let id = slot.id(&mut r);
        let earlier = self.items_per_call.entry(new.call.id.clone()).or_insert(0);
        let nth = *earlier;
        *earlier += 1;
        let recording = new
            .recording
            .and_then(|id| self.artifacts.get(ArtifactKind::Recording, id))
            .map(|rec| &rec.occasion)
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
        let occasion = Occasion {
            meeting_id: String::new(),
            call_id: new.call.id.clone(),
            user: new.user.to_owned(),
            organized: new.call.kind != AdhocCallKind::Pstn,
            content_correlation_id,
            created,
            end_str,
        };
        self.artifacts
            .push(Artifact::new(seed, base, slot, id, occasion, new.size))
    }
}
