//! The meeting and call indexes: `meetings/<organizerId>/<hex SHA-256 of meetingId>.json`
//! lists the manifests of one meeting's recordings and transcripts, and pairs each transcript
//! with its recording by `contentCorrelationId`, so an auditor finds everything about a
//! meeting with one GET. `calls/<userId>/<hex SHA-256 of callId>.json` does the same for an ad
//! hoc call (1:1, group or PSTN) the user started ([`Container`]).
//!
//! Entries are only ever added. An update reads the index, adds the entry if it is missing and
//! writes it back conditionally on the version read (create-only when new), retrying when
//! another writer got there first; on stores without conditional updates (local disk) the
//! in-process lock serialises the writers, and the shard lease keeps other processes away from
//! this organizer's meetings. An item counts as archived only once its entry is in the index,
//! so a run killed in between adds it when the item comes round again.

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::layout::Container;
use crate::{Archive, OrganizerId, StoreError};

/// Indexes read at once by [`Archive::indexes`].
const INDEX_READS: usize = 8;

/// Schema tag of meeting index documents.
pub const MEETING_SCHEMA: &str = "recarch.meeting.v1";

/// Schema tag of call index documents.
pub const CALL_SCHEMA: &str = "recarch.call.v1";

/// One meeting's or call's index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MeetingIndex {
    /// [`MEETING_SCHEMA`] or [`CALL_SCHEMA`].
    pub schema: String,
    /// The organizer (for a call, the user it was listed for).
    pub organizer_id: String,
    /// The meeting id, verbatim (meeting indexes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub meeting_id: String,
    /// The call id, verbatim (call indexes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub call_id: String,
    /// The meeting's subject, when it could be read (see [`IndexNames`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When the meeting was scheduled to start, as Graph wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date_time: Option<String>,
    /// When the meeting was scheduled to end, as Graph wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date_time: Option<String>,
    /// The organizer's display name, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer_name: Option<String>,
    /// The organizer's user principal name, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer_upn: Option<String>,
    /// Every archived item of the meeting or call.
    pub entries: Vec<MeetingEntry>,
    /// Each transcript with the recording it belongs to (same `contentCorrelationId`).
    pub pairs: Vec<MeetingPair>,
}

/// What an index records besides its entries: the names a search goes by (all optional; an
/// index written before them, or while Graph would not say, has none). Set by
/// [`Archive::add_to_index`] when the item brings them and later by
/// [`Archive::set_index_names`]; a name once recorded is never removed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IndexNames {
    /// The meeting's subject.
    pub subject: Option<String>,
    /// When the meeting was scheduled to start.
    pub start_date_time: Option<String>,
    /// When the meeting was scheduled to end.
    pub end_date_time: Option<String>,
    /// The organizer's display name.
    pub organizer_name: Option<String>,
    /// The organizer's user principal name.
    pub organizer_upn: Option<String>,
}

impl IndexNames {
    /// Whether there is no name at all.
    pub fn is_empty(&self) -> bool {
        *self == IndexNames::default()
    }
}

/// One archived item of a meeting.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MeetingEntry {
    /// The manifest's `kind` (`callRecording`, `callTranscript`).
    pub kind: String,
    /// The Graph id.
    pub id: String,
    /// The manifest's key.
    pub manifest: String,
    /// Graph's `contentCorrelationId`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_correlation_id: Option<String>,
}

/// A transcript and its recording.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MeetingPair {
    /// The shared `contentCorrelationId`.
    pub content_correlation_id: String,
    /// The recording's manifest.
    pub recording: String,
    /// The transcript's manifest.
    pub transcript: String,
}

/// An index as [`Archive::indexes`] reads it: any JSON object, its members taken
/// for what they are. A member missing or of another shape reads as empty, an entry without a
/// `manifest` is left out (there is nothing to check of it), so an index damaged in part is
/// still checked entry by entry. The updates of [`Archive::add_to_index`] stay strict.
fn read_index(key: &str, bytes: &[u8]) -> Result<MeetingIndex, StoreError> {
    let noun = if key.starts_with(Container::Call.prefix()) {
        "call"
    } else {
        "meeting"
    };
    let corrupt = |reason: String| StoreError::corrupt(key, format!("not a {noun} index: {reason}"));
    let index: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let text = |value: Option<&serde_json::Value>| value.and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let entries = index
        .get("entries")
        .and_then(|e| e.as_array())
        .map(|entries| {
            entries
                .iter()
                .filter_map(|entry| {
                    Some(MeetingEntry {
                        kind: text(entry.get("kind")),
                        id: text(entry.get("id")),
                        manifest: entry.get("manifest")?.as_str()?.to_owned(),
                        content_correlation_id: entry
                            .get("contentCorrelationId")
                            .and_then(|c| c.as_str())
                            .map(str::to_owned),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let pairs = index
        .get("pairs")
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_default();
    Ok(MeetingIndex {
        schema: text(index.get("schema")),
        organizer_id: text(index.get("organizerId")),
        meeting_id: text(index.get("meetingId")),
        call_id: text(index.get("callId")),
        subject: optional(index.get("subject")),
        start_date_time: optional(index.get("startDateTime")),
        end_date_time: optional(index.get("endDateTime")),
        organizer_name: optional(index.get("organizerName")),
        organizer_upn: optional(index.get("organizerUpn")),
        entries,
        pairs,
    })
}

/// A member that is a string, else nothing.
fn optional(value: Option<&serde_json::Value>) -> Option<String> {
    value.and_then(|v| v.as_str()).map(str::to_owned)
}

/// `meetings/<organizer>/<hex SHA-256 of meetingId>.json`.
pub fn meeting_key(organizer: &OrganizerId, meeting_id: &str) -> String {
    crate::layout::meeting_key(organizer, meeting_id)
}

/// `<meetings|calls>/<organizer>/<hex SHA-256 of id>.json`: the index of a meeting or call.
pub fn index_key(container: Container, organizer: &OrganizerId, id: &str) -> String {
    crate::layout::index_key(container, organizer, id)
}

impl MeetingIndex {
    /// Its names.
    pub fn names(&self) -> IndexNames {
        IndexNames {
            subject: self.subject.clone(),
            start_date_time: self.start_date_time.clone(),
            end_date_time: self.end_date_time.clone(),
            organizer_name: self.organizer_name.clone(),
            organizer_upn: self.organizer_upn.clone(),
        }
    }

    /// Records each of `names` that it has not recorded yet; `true` when anything changed.
    /// A recorded name is kept: the index says what was read first, as the manifests do.
    fn fill_names(&mut self, names: &IndexNames) -> bool {
        let mut changed = false;
        let mut fill = |kept: &mut Option<String>, new: &Option<String>| {
            if kept.is_none() && new.is_some() {
                kept.clone_from(new);
                changed = true;
            }
        };
        fill(&mut self.subject, &names.subject);
        fill(&mut self.start_date_time, &names.start_date_time);
        fill(&mut self.end_date_time, &names.end_date_time);
        fill(&mut self.organizer_name, &names.organizer_name);
        fill(&mut self.organizer_upn, &names.organizer_upn);
        changed
    }

    fn recompute_pairs(&mut self) {
        let of = |kind: &str| -> Vec<(String, String)> {
            self.entries
                .iter()
                .filter(|e| e.kind == kind)
                .filter_map(|e| Some((e.content_correlation_id.clone()?, e.manifest.clone())))
                .collect()
        };
        let (transcripts, recordings) = (of("callTranscript"), of("callRecording"));
        let mut pairs = Vec::new();
        for (cid, transcript) in &transcripts {
            for (rcid, recording) in &recordings {
                if rcid == cid {
                    pairs.push(MeetingPair {
                        content_correlation_id: cid.clone(),
                        recording: recording.clone(),
                        transcript: transcript.clone(),
                    });
                }
            }
        }
        self.pairs = pairs;
    }
}

impl Archive {
    /// Every index of `container` (`meetings/` or `calls/`), in no particular order, as
    /// `(key, index)`. The outer error is a listing failure (which ends the stream); the inner
    /// one a failure to read that index, or [`StoreError::Corrupt`] for an object under the
    /// prefix that is not one. An index deleted since it was listed is left out (see the
    /// `listing` module). An index damaged in part still reads: a member missing or of another
    /// shape is empty, an entry without a `manifest` is left out.
    #[allow(clippy::type_complexity)] // as `list_manifests`: the pair is the contract
    pub fn indexes(
        &self,
        container: Container,
    ) -> BoxStream<'_, Result<(String, Result<MeetingIndex, StoreError>), StoreError>> {
        self.list_and_read(container.prefix(), |_| true, INDEX_READS)
            .map_ok(|(key, read)| {
                let index = read.and_then(|bytes| read_index(&key, &bytes));
                (key, index)
            })
            .boxed()
    }

    /// Reads the index of `container` and `id` for `organizer`; `None` when there is none.
    ///
    /// # Errors
    /// Store failures, or [`StoreError::Corrupt`] for an object that is not an index.
    pub async fn read_index(
        &self,
        container: Container,
        organizer: &OrganizerId,
        id: &str,
    ) -> Result<Option<MeetingIndex>, StoreError> {
        let key = index_key(container, organizer, id);
        match self.get_bytes(&key).await? {
            Some(bytes) => read_index(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Adds `entry` to the index of the meeting or call `id` unless it is there already.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an index that is not one; store failures, or
    /// [`StoreError::Precondition`] when other writers kept winning.
    pub async fn add_to_index(
        &self,
        container: Container,
        organizer: &OrganizerId,
        id: &str,
        entry: MeetingEntry,
    ) -> Result<(), StoreError> {
        self.add_to_index_named(container, organizer, id, entry, &IndexNames::default())
            .await
    }

    /// [`Archive::add_to_index`], also recording each of `names` the index lacks (in the same
    /// conditional write: an entry already there with its names there too writes nothing).
    ///
    /// # Errors
    /// As [`Archive::add_to_index`].
    pub async fn add_to_index_named(
        &self,
        container: Container,
        organizer: &OrganizerId,
        id: &str,
        entry: MeetingEntry,
        names: &IndexNames,
    ) -> Result<(), StoreError> {
        let key = index_key(container, organizer, id);
        let what = match container {
            Container::Meeting => "a meeting index",
            Container::Call => "a call index",
        };
        self.update_document(&key, what, |index: Option<MeetingIndex>| {
            let mut index = index.unwrap_or_else(|| {
                let mut index = MeetingIndex {
                    organizer_id: organizer.to_string(),
                    ..MeetingIndex::default()
                };
                match container {
                    Container::Meeting => {
                        index.schema = MEETING_SCHEMA.into();
                        index.meeting_id = id.to_owned();
                    }
                    Container::Call => {
                        index.schema = CALL_SCHEMA.into();
                        index.call_id = id.to_owned();
                    }
                }
                index
            });
            let named = index.fill_names(names);
            if index.entries.iter().any(|e| e.kind == entry.kind && e.id == entry.id) {
                return Ok(named.then_some(index));
            }
            index.entries.push(entry.clone());
            index.recompute_pairs();
            Ok(Some(index))
        })
        .await
        .map(|_| ())
    }

    /// Records `names` on the existing index of `container` and `id` (each name only where
    /// the index has none yet), through the same conditional read-modify-write as
    /// [`Archive::add_to_index`], so that the write is journaled for the ledger like any
    /// index version. Returns the index as it now is, or `None` when there is no such index
    /// (nothing is created: an index names at least one archived item).
    ///
    /// # Errors
    /// As [`Archive::add_to_index`].
    pub async fn set_index_names(
        &self,
        container: Container,
        organizer: &OrganizerId,
        id: &str,
        names: &IndexNames,
    ) -> Result<Option<MeetingIndex>, StoreError> {
        let key = index_key(container, organizer, id);
        let what = match container {
            Container::Meeting => "a meeting index",
            Container::Call => "a call index",
        };
        let mut now = None;
        self.update_document(&key, what, |index: Option<MeetingIndex>| {
            let Some(mut index) = index else {
                now = None;
                return Ok(None);
            };
            let changed = index.fill_names(names);
            now = Some(index.clone());
            Ok(changed.then_some(index))
        })
        .await?;
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::TryStreamExt;

    use super::*;

    fn entry(kind: &str, id: &str, cid: &str) -> MeetingEntry {
        MeetingEntry {
            kind: kind.into(),
            id: id.into(),
            manifest: format!("manifests/x/{id}.json"),
            content_correlation_id: Some(cid.into()),
        }
    }

    #[tokio::test]
    async fn a_call_index_lives_under_calls_and_pairs_like_a_meeting_index() {
        let a = Archive::open("memory://", &[]).unwrap();
        let org = OrganizerId::parse("8b081ef6-4792-4def-b2c9-c363a1bf41d5").unwrap();
        a.add_to_index(Container::Call, &org, "call-1", entry("callRecording", "r", "c"))
            .await
            .unwrap();
        a.add_to_index(Container::Call, &org, "call-1", entry("callTranscript", "t", "c"))
            .await
            .unwrap();
        // Added once only.
        a.add_to_index(Container::Call, &org, "call-1", entry("callTranscript", "t", "c"))
            .await
            .unwrap();
        a.add_to_index(Container::Meeting, &org, "m-1", entry("callRecording", "r2", "c2"))
            .await
            .unwrap();
        let index = a.read_index(Container::Call, &org, "call-1").await.unwrap().unwrap();
        assert_eq!(index.schema, CALL_SCHEMA);
        assert_eq!(index.call_id, "call-1");
        assert!(index.meeting_id.is_empty());
        assert_eq!(index.entries.len(), 2);
        assert_eq!(index.pairs.len(), 1);
        assert_eq!(index.pairs[0].recording, "manifests/x/r.json");
        let calls: Vec<_> = a.indexes(Container::Call).try_collect().await.unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].0, index_key(Container::Call, &org, "call-1"));
        assert!(calls[0].0.starts_with(&format!("calls/{org}/")));
        let meetings: Vec<_> = a.indexes(Container::Meeting).try_collect().await.unwrap();
        assert_eq!(meetings.len(), 1);
        assert_eq!(meetings[0].1.as_ref().unwrap().meeting_id, "m-1");
        assert!(a.read_index(Container::Call, &org, "m-1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn names_are_filled_in_once_and_never_removed() {
        let a = Archive::open("memory://", &[]).unwrap();
        let org = OrganizerId::parse("8b081ef6-4792-4def-b2c9-c363a1bf41d5").unwrap();
        let names = |subject: &str| IndexNames {
            subject: Some(subject.into()),
            organizer_upn: Some("ada@contoso.example".into()),
            ..IndexNames::default()
        };
        // No index: nothing is created.
        let none = a
            .set_index_names(Container::Meeting, &org, "m", &names("S"))
            .await
            .unwrap();
        assert!(none.is_none());
        a.add_to_index(Container::Meeting, &org, "m", entry("callRecording", "r", "c"))
            .await
            .unwrap();
        let key = index_key(Container::Meeting, &org, "m");
        let bare = a.get_bytes(&key).await.unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&bare).contains("subject"),
            "absent names are not written"
        );
        let index = a
            .set_index_names(Container::Meeting, &org, "m", &names("Quarterly review 3"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(index.subject.as_deref(), Some("Quarterly review 3"));
        assert_eq!(index.entries.len(), 1);
        // A name recorded is kept; a missing one is added beside it.
        a.add_to_index_named(
            Container::Meeting,
            &org,
            "m",
            entry("callTranscript", "t", "c"),
            &IndexNames {
                organizer_name: Some("Ada".into()),
                ..names("Other")
            },
        )
        .await
        .unwrap();
        let index = a.read_index(Container::Meeting, &org, "m").await.unwrap().unwrap();
        assert_eq!(index.subject.as_deref(), Some("Quarterly review 3"));
        assert_eq!(index.organizer_name.as_deref(), Some("Ada"));
        assert_eq!(index.entries.len(), 2);
        assert_eq!(index.pairs.len(), 1);
    }
}
