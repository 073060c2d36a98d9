//! The catalog: what `recarch ls` reads instead of every manifest. `catalog/` holds add-only
//! segments, `catalog/<YYYYMMDDTHHMMSS.mmmZ>-<shard>-<64 random bits>.jsonl`, each a batch of
//! [`CatalogEntry`] lines (one per manifest written: an item, or one version of a contact)
//! written create-only, never rewritten, so the catalog can live on WORM storage.
//!
//! Runs write a segment for the items a page archived before they save that page's
//! checkpoint; a rebuild (`recarch catalog rebuild`, and the first `ls` of an archive made
//! before the catalog) writes segments for every manifest. Segments may overlap (a rebuild
//! beside runs' segments, a version listed twice, names a later run filled in): readers keep
//! one entry per `(manifest, sha256)` ([`CatalogEntry::identity`]), its `extra` members the
//! union of those entries' (a member absent from one is taken from another).
//!
//! Disposal (`recarch dispose`) adds the other kind of line, a [`DisposalMarker`]:
//! `{"disposed": {"manifest", "sha256", "disposedAt", "record"}}`, one per `(manifest, sha256)`
//! deleted. A marker hides the entries of its identity listed in segments whose key sorts
//! before its own segment's (segment keys begin with their UTC write time): what was
//! cataloged before the disposal. An entry written later (the item archived again, or
//! `catalog rebuild` from a manifest whose deletion failed) is listed again. So the catalog
//! stays add-only, and readers honour disposals without reading any manifest.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::layout;
use crate::model::VERSIONS;
use crate::{Archive, Kind, Manifest, ShardId, StoreError};

/// Segments read at once by [`Archive::catalog_entries`].
const SEGMENT_READS: usize = 8;

/// One archived item (for a contact: one version) as the catalog lists it: what a search
/// filters on and what a listing shows, without reading the manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    /// The kind (its directory name: `recordings`, …).
    pub kind: Kind,
    /// The organizer (the user, for contacts and calls).
    pub organizer_id: String,
    /// The Graph id.
    pub id: String,
    /// The meeting, for a meeting's recordings and transcripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_id: Option<String>,
    /// The call, for an ad hoc call's recordings and transcripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Graph's `createdDateTime`, verbatim (absent for contacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
    /// When the item (this version) was archived.
    pub archived_at: DateTime<Utc>,
    /// Bytes of its content blob.
    pub size: u64,
    /// Its content blob's SHA-256 (lowercase hex).
    pub sha256: String,
    /// The manifest's key.
    pub manifest: String,
    /// What else the manifest says that a search shows: `subject`, `organizerName`,
    /// `contentCorrelationId`, a contact's `displayName` or `removed`.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The catalog entry member naming a transcript's metadata blob (its manifest's
/// `metadata.sha256`), when it has one.
pub const CATALOG_METADATA_SHA256: &str = "metadataSha256";

/// Manifest members copied into a catalog entry when present.
const SHOWN: &[&str] = &[
    "contentCorrelationId",
    "subject",
    "startDateTime",
    "endDateTime",
    "organizerName",
    "organizerUpn",
];

impl CatalogEntry {
    /// What identifies an entry across segments: the manifest and the content it names.
    pub fn identity(&self) -> (&str, &str) {
        (&self.manifest, &self.sha256)
    }

    /// The time a search window applies to: `createdDateTime`, or for contacts (which have
    /// none) the version's `archivedAt`.
    pub fn searched_time(&self) -> Option<DateTime<Utc>> {
        match &self.created_date_time {
            Some(created) => DateTime::parse_from_rfc3339(created)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            None => Some(self.archived_at),
        }
    }

    /// The entries of a manifest as stored at `key`: one, or one per version of a versioned
    /// (contact) manifest, oldest first.
    pub fn of_manifest(key: &str, manifest: &Manifest) -> Vec<CatalogEntry> {
        let Some(kind) = manifest.archive_kind() else {
            return Vec::new();
        };
        let text = |name: &str| manifest.extra.get(name).and_then(Value::as_str).map(str::to_owned);
        let mut extra = Map::new();
        for name in SHOWN {
            if let Some(value) = manifest.extra.get(*name).filter(|v| !v.is_null()) {
                extra.insert((*name).to_owned(), value.clone());
            }
        }
        // A transcript's metadata blob, so that a search by content finds its item.
        if let Some(sha) = manifest
            .extra
            .get("metadata")
            .and_then(|m| m.get("sha256"))
            .filter(|v| v.is_string())
        {
            extra.insert(CATALOG_METADATA_SHA256.into(), sha.clone());
        }
        let graph = manifest.extra.get("graph");
        if let Some(name) = graph.and_then(|g| g.get("displayName")).filter(|v| v.is_string()) {
            extra.insert("displayName".into(), name.clone());
        }
        let base = CatalogEntry {
            kind,
            organizer_id: manifest.organizer_id.to_string(),
            id: manifest.id.clone(),
            meeting_id: text("meetingId"),
            call_id: text("callId"),
            created_date_time: text("createdDateTime"),
            archived_at: manifest.archived_at,
            size: manifest.content.size,
            sha256: manifest.content.sha256.to_hex(),
            manifest: key.to_owned(),
            extra,
        };
        let Some(Value::Array(versions)) = manifest.extra.get(VERSIONS) else {
            return vec![base];
        };
        versions
            .iter()
            .filter_map(|v| {
                let mut entry = base.clone();
                entry.sha256 = v.get("sha256")?.as_str()?.to_owned();
                entry.size = v.get("size")?.as_u64()?;
                entry.archived_at = v
                    .get("archivedAt")
                    .and_then(Value::as_str)
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map_or(manifest.archived_at, |t| t.with_timezone(&Utc));
                entry.add_version_members(v.as_object()?);
                Some(entry)
            })
            .collect()
    }

    /// The entry of a version just appended ([`crate::Archive::append_version`]): `manifest`
    /// as its writer holds it (`content` is the version, without the `versions` member the
    /// store adds) and `version`'s own members, as [`CatalogEntry::of_manifest`] reads them
    /// back from the stored manifest.
    pub fn of_appended_version(key: &str, manifest: &Manifest, version: &Map<String, Value>) -> Vec<CatalogEntry> {
        let mut entries = CatalogEntry::of_manifest(key, manifest);
        for entry in &mut entries {
            entry.add_version_members(version);
        }
        entries
    }

    /// What a version says that its entry shows: a deletion's `removed` (Graph's `@removed`).
    fn add_version_members(&mut self, version: &Map<String, Value>) {
        if let Some(removed) = version.get("removed") {
            self.extra.insert("removed".into(), removed.clone());
        }
    }
}

/// A disposal marker: the manifest `manifest` with content `sha256` (for a contact, one
/// version) was disposed of; a line `{"disposed": {…}}` of a segment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DisposalMarker {
    /// The manifest's key.
    pub manifest: String,
    /// The content blob's SHA-256 (lowercase hex) of the entry it hides.
    pub sha256: String,
    /// When it was disposed of.
    pub disposed_at: DateTime<Utc>,
    /// The `dispose` ledger record that logged the disposal (`ledger/<seq>.json`).
    pub record: String,
}

impl DisposalMarker {
    /// What it hides: the entries of this `(manifest, sha256)`.
    pub fn identity(&self) -> (&str, &str) {
        (&self.manifest, &self.sha256)
    }
}

/// One line of a catalog segment: an entry, or a disposal marker.
#[derive(Clone, Debug, PartialEq)]
pub enum CatalogLine {
    /// An item (or a contact's version) archived.
    Entry(CatalogEntry),
    /// An item (or version) disposed of.
    Disposed(DisposalMarker),
}

/// The serialized shape of a marker line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkerLine {
    disposed: DisposalMarker,
}

impl CatalogLine {
    /// Parses one line; `Err` with serde's message when it is neither an entry nor a marker.
    fn parse(line: &[u8]) -> Result<CatalogLine, String> {
        // Markers first: an entry has no `disposed` member, so the two never overlap.
        if let Ok(marker) = serde_json::from_slice::<MarkerLine>(line) {
            return Ok(CatalogLine::Disposed(marker.disposed));
        }
        serde_json::from_slice(line)
            .map(CatalogLine::Entry)
            .map_err(|e| e.to_string())
    }
}

impl Archive {
    /// Writes `entries` as a new catalog segment (create-only) and returns its key; nothing
    /// for no entries.
    ///
    /// # Errors
    /// Store failures.
    pub async fn put_catalog_segment(
        &self,
        shard: &ShardId,
        entries: &[CatalogEntry],
    ) -> Result<Option<String>, StoreError> {
        self.put_catalog_segment_at(&Archive::catalog_segment_key(shard), entries)
            .await
    }

    /// A fresh key for a segment of `shard` (to name it, in a ledger intent, before it is
    /// written with [`Archive::put_catalog_segment_at`]).
    pub fn catalog_segment_key(shard: &ShardId) -> String {
        layout::catalog_segment_key(shard)
    }

    /// [`Archive::put_catalog_segment`] at `key` (from [`Archive::catalog_segment_key`]).
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a key that is not a segment's; store failures.
    pub async fn put_catalog_segment_at(
        &self,
        key: &str,
        entries: &[CatalogEntry],
    ) -> Result<Option<String>, StoreError> {
        self.put_segment_lines(key, entries, "a catalog entry").await
    }

    /// Writes `markers` as a new catalog segment at `key` (from
    /// [`Archive::catalog_segment_key`], named in a ledger intent first), create-only; nothing
    /// for no markers. Written by disposal, after its `dispose` ledger record.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a key that is not a segment's; store failures.
    pub async fn put_disposal_markers_at(
        &self,
        key: &str,
        markers: &[DisposalMarker],
    ) -> Result<Option<String>, StoreError> {
        let lines: Vec<serde_json::Value> = markers.iter().map(|m| serde_json::json!({ "disposed": m })).collect();
        self.put_segment_lines(key, &lines, "a disposal marker").await
    }

    /// Writes `lines` (JSON, one a line) as a new catalog segment at `key`, create-only and
    /// logged; nothing for no lines.
    async fn put_segment_lines<T: serde::Serialize>(
        &self,
        key: &str,
        lines: &[T],
        what: &str,
    ) -> Result<Option<String>, StoreError> {
        if lines.is_empty() {
            return Ok(None);
        }
        if !layout::is_catalog_segment_key(key) {
            return Err(StoreError::Rejected {
                key: key.to_owned(),
                reason: "not a catalog segment's key".into(),
            });
        }
        let key = key.to_owned();
        let mut body = Vec::with_capacity(lines.len() * 320);
        for line in lines {
            serde_json::to_writer(&mut body, line).map_err(|e| StoreError::Rejected {
                key: key.clone(),
                reason: format!("cannot encode {what}: {e}"),
            })?;
            body.push(b'\n');
        }
        self.put_new_logged(&key, body).await?;
        Ok(Some(key))
    }

    /// Whether the archive has a catalog at all (any segment under `catalog/`).
    ///
    /// # Errors
    /// Store failures while listing.
    pub async fn has_catalog(&self) -> Result<bool, StoreError> {
        let mut keys = self.listed_keys(layout::CATALOG, layout::is_catalog_segment_key);
        match keys.next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(e),
        }
    }

    /// Every line of every segment, with its segment's key (markers hide what segments
    /// before theirs list), segments read a few at a time in no particular order. The outer
    /// error ends the stream (a listing failure); an item's error is a segment that cannot be
    /// read, or [`StoreError::Corrupt`] for a line that is neither an entry nor a marker
    /// (naming the segment and line); reading goes on after both.
    #[allow(clippy::type_complexity)] // the pair is the contract, as in `ledgered_objects`
    pub fn catalog_entries(&self) -> BoxStream<'_, Result<Result<(String, CatalogLine), StoreError>, StoreError>> {
        self.list_and_read(layout::CATALOG, layout::is_catalog_segment_key, SEGMENT_READS)
            .map(|item| {
                item.map(|(key, read)| -> Vec<Result<(String, CatalogLine), StoreError>> {
                    match read {
                        Err(e) => vec![Err(e)],
                        Ok(bytes) => parse_segment(&key, &bytes)
                            .into_iter()
                            .map(|line| line.map(|line| (key.clone(), line)))
                            .collect(),
                    }
                })
            })
            .flat_map(|item| match item {
                Ok(entries) => futures::stream::iter(entries.into_iter().map(Ok).collect::<Vec<_>>()),
                Err(e) => futures::stream::iter(vec![Err(e)]),
            })
            .boxed()
    }
}

/// The lines of a segment, one per non-empty line.
fn parse_segment(key: &str, bytes: &[u8]) -> Vec<Result<CatalogLine, StoreError>> {
    catalog_segment_lines(key, bytes).map(|(_, entry)| entry).collect()
}

/// Whether `key` names a catalog segment (`catalog/<name>.jsonl`): the objects
/// [`Archive::catalog_entries`] reads, for a reader that lists `catalog/` itself.
pub fn is_catalog_segment(key: &str) -> bool {
    layout::is_catalog_segment_key(key)
}

/// The lines of the segment `key` holding `bytes` (entries and disposal markers), each with
/// its line number (from 1), parsed lazily (for a reader that must say where an entry is, and
/// hold one at a time); blank lines are skipped. A line that is neither is
/// [`StoreError::Corrupt`] naming the segment and line.
pub fn catalog_segment_lines<'a>(
    key: &'a str,
    bytes: &'a [u8],
) -> impl Iterator<Item = (u64, Result<CatalogLine, StoreError>)> + 'a {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(move |(n, line)| {
            let number = n as u64 + 1;
            let entry = CatalogLine::parse(line)
                .map_err(|e| StoreError::corrupt(key, format!("line {number}: not a catalog entry: {e}")));
            (number, entry)
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::TryStreamExt;
    use object_store::ObjectStoreExt as _;

    use super::*;
    use crate::layout::path;
    use crate::{ContentRef, OrganizerId, Sha256Digest};
    use object_store::PutPayload;

    #[tokio::test]
    async fn segments_are_written_once_and_read_back_entry_by_entry() {
        let a = Archive::open("memory://", &[]).unwrap();
        let org = OrganizerId::parse("8b081ef6-4792-4def-b2c9-c363a1bf41d5").unwrap();
        let mut m = Manifest::new(
            "callRecording",
            "r/1",
            org.clone(),
            ContentRef::new(Sha256Digest::of(b"x"), 1, "video/mp4"),
        );
        m.extra.insert("meetingId".into(), "m-1".into());
        m.extra
            .insert("createdDateTime".into(), "2026-01-02T03:04:05.1234567Z".into());
        let key = Archive::manifest_key(&org, "r/1");
        let entries = CatalogEntry::of_manifest(&key, &m);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].kind, Kind::Recordings);
        assert_eq!(entries[0].meeting_id.as_deref(), Some("m-1"));
        assert_eq!(
            entries[0].searched_time().unwrap().to_rfc3339(),
            "2026-01-02T03:04:05.123456700+00:00"
        );
        assert!(!a.has_catalog().await.unwrap());
        let shard = ShardId::new(0, 1);
        assert_eq!(a.put_catalog_segment(&shard, &[]).await.unwrap(), None);
        let segment = a.put_catalog_segment(&shard, &entries).await.unwrap().unwrap();
        assert!(
            segment.starts_with("catalog/") && segment.ends_with(".jsonl"),
            "{segment}"
        );
        assert!(a.has_catalog().await.unwrap());
        // A damaged line is reported; the rest of the segment still reads.
        a.object_store()
            .put(
                &path("catalog/20260101T000000.000Z-0-of-1-00000000000000aa.jsonl"),
                PutPayload::from_static(b"{\"kind\":1}\n\n"),
            )
            .await
            .unwrap();
        let read: Vec<_> = a.catalog_entries().try_collect().await.unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read.iter().filter(|r| r.is_ok()).count(), 1);
        let bad = read.iter().find_map(|r| r.as_ref().err()).unwrap().to_string();
        assert!(bad.contains("line 1"), "{bad}");
        let (in_segment, line) = read.iter().find_map(|r| r.as_ref().ok()).unwrap();
        assert_eq!(in_segment, &segment);
        assert_eq!(line, &CatalogLine::Entry(entries[0].clone()));

        // Disposal markers are lines of their own kind, read back as such.
        let marker = DisposalMarker {
            manifest: key.clone(),
            sha256: entries[0].sha256.clone(),
            disposed_at: Utc::now(),
            record: "ledger/00000000000000000007.json".into(),
        };
        assert_eq!(a.put_disposal_markers_at(&segment, &[]).await.unwrap(), None);
        let bad_key = a
            .put_disposal_markers_at("catalog/x.json", std::slice::from_ref(&marker))
            .await;
        assert!(matches!(bad_key, Err(StoreError::Rejected { .. })), "{bad_key:?}");
        let markers = Archive::catalog_segment_key(&shard);
        a.put_disposal_markers_at(&markers, std::slice::from_ref(&marker))
            .await
            .unwrap();
        let read: Vec<_> = a.catalog_entries().try_collect().await.unwrap();
        assert_eq!(read.len(), 3);
        let found: Vec<_> = read
            .iter()
            .filter_map(|r| match r {
                Ok((k, CatalogLine::Disposed(m))) => Some((k.clone(), m.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(found, [(markers.clone(), marker.clone())]);
        let bytes = a.get_bytes(&markers).await.unwrap().unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.starts_with("{\"disposed\":{\"manifest\":"), "{text}");
        // A marker with a member it does not know is not one (nor an entry).
        let odd = b"{\"disposed\":{\"manifest\":\"m\",\"sha256\":\"s\",\"disposedAt\":\"2026-01-01T00:00:00Z\",\"record\":\"r\"},\"x\":1}";
        assert!(catalog_segment_lines("k", odd).all(|(_, l)| l.is_err()));
    }

    #[test]
    fn a_versioned_manifest_is_one_entry_per_version() {
        let org = OrganizerId::parse("8b081ef6-4792-4def-b2c9-c363a1bf41d5").unwrap();
        let mut m = Manifest::new(
            "contact",
            "c",
            org,
            ContentRef::new(Sha256Digest::of(b"v2"), 2, "application/json"),
        );
        m.extra
            .insert("graph".into(), serde_json::json!({"displayName": "Ada"}));
        m.extra.insert(
            VERSIONS.into(),
            serde_json::json!([
                {"sha256": Sha256Digest::of(b"v1").to_hex(), "size": 1, "archivedAt": "2026-01-01T00:00:00Z"},
                {"sha256": Sha256Digest::of(b"v2").to_hex(), "size": 2, "archivedAt": "2026-02-01T00:00:00Z", "removed": {"reason": "deleted"}}
            ]),
        );
        let entries = CatalogEntry::of_manifest("manifests/contacts/x/y.json", &m);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].size, 1);
        assert_eq!(entries[1].extra["removed"]["reason"], "deleted");
        assert_eq!(entries[1].extra["displayName"], "Ada");
        assert_eq!(
            entries[1].searched_time().unwrap().to_rfc3339(),
            "2026-02-01T00:00:00+00:00"
        );
    }
}
