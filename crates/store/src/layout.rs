//! Object keys of the archive layout. Every key is built here, only from validated or
//! hashed values, so nothing a remote party controls can steer a key.

use chrono::{DateTime, Utc};
use object_store::path::Path;
use sha2::{Digest, Sha256};

use crate::{OrganizerId, Sha256Digest, ShardId};

/// Prefix of blobs.
pub(crate) const BLOBS: &str = "blobs/sha256";
/// Prefix of every kind's manifests.
pub(crate) const MANIFEST_ROOT: &str = "manifests";
/// Prefix of manifests of recordings.
pub(crate) const MANIFESTS: &str = "manifests/recordings";
/// Prefix of organizer states (of recordings; see [`Kind`] for the others).
pub(crate) const STATES: &str = "state/recordings";
/// Prefix of every kind's state.
pub(crate) const STATE_ROOT: &str = "state";
/// Prefix of the meeting indexes (`meetings/<organizer>/<hash>.json`).
pub(crate) const MEETINGS: &str = "meetings";
/// Prefix of the call indexes (`calls/<user>/<hash>.json`).
pub(crate) const CALLS: &str = "calls";
/// Prefix of the catalog's segments (`catalog/<timestamp>-<shard>-<random>.jsonl`).
pub(crate) const CATALOG: &str = "catalog";
/// Prefix of run reports.
pub(crate) const RUNS: &str = "runs";
/// Prefix of leases.
pub(crate) const LOCKS: &str = "locks";
/// Prefix of staging areas; never part of a finished archive.
pub(crate) const STAGING: &str = "staging";
/// Staging area of [`crate::Archive::probe`]; not a valid shard name, so never collides.
pub(crate) const PROBE: &str = "staging/_probe";

/// `blobs/sha256/<64 lowercase hex>`: the key of the blob named `digest`.
pub fn blob_key(digest: &Sha256Digest) -> String {
    format!("{BLOBS}/{}", digest.to_hex())
}

pub(crate) fn manifest_key(organizer: &OrganizerId, recording_id: &str) -> String {
    manifest_key_of(Kind::Recordings, organizer, recording_id)
}

/// `manifests/<kind>/<organizer>/<hex SHA-256 of id>.json`.
pub(crate) fn manifest_key_of(kind: Kind, organizer: &OrganizerId, id: &str) -> String {
    manifest_key_in(kind.dirname(), organizer, id)
}

/// `manifests/<kind directory>/<organizer>/<hex SHA-256 of id>.json`: the one format of a
/// manifest key.
fn manifest_key_in(kind_dir: &str, organizer: &OrganizerId, id: &str) -> String {
    format!("{MANIFEST_ROOT}/{kind_dir}/{organizer}/{}.json", item_key(id))
}

/// Where a manifest of `organizer` and `id` belongs in the kind directory of `found`, the key
/// it was found at: `manifests/<that directory>/<organizer>/<hex SHA-256 of id>.json`
/// (`recordings` for a key directly under `manifests/`). A manifest stored anywhere else is
/// misplaced, whatever its kind directory is called.
pub(crate) fn manifest_key_beside(found: &str, organizer: &OrganizerId, id: &str) -> String {
    let kind_dir = found
        .strip_prefix(MANIFEST_ROOT)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split_once('/'))
        .map_or(Kind::Recordings.dirname(), |(kind_dir, _)| kind_dir);
    manifest_key_in(kind_dir, organizer, id)
}

/// Whether `key` is a manifest's in the layout: `manifests/<kind>/<organizer>/<64 lowercase
/// hex>.json`.
pub(crate) fn is_manifest_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(MANIFEST_ROOT).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(organizer), Some(name), None) => {
            Kind::from_dirname(kind).is_some()
                && OrganizerId::parse(organizer).is_ok()
                && name.strip_suffix(".json").is_some_and(is_hex_name)
        }
        _ => false,
    }
}

/// 64 lowercase hex digits: an item key, a digest.
fn is_hex_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What groups a meeting's or a call's items: the index an item is listed in (see the
/// `meetings` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// An online meeting: `meetings/<organizer>/<hex SHA-256 of meetingId>.json`.
    Meeting,
    /// An ad hoc call: `calls/<user>/<hex SHA-256 of callId>.json`.
    Call,
}

impl Container {
    /// Both, in layout order.
    pub const ALL: [Container; 2] = [Container::Meeting, Container::Call];

    /// The top-level prefix of its indexes: `meetings`, `calls`.
    pub fn prefix(self) -> &'static str {
        match self {
            Container::Meeting => MEETINGS,
            Container::Call => CALLS,
        }
    }

    /// What one is called in messages: `meeting`, `call`.
    pub fn noun(self) -> &'static str {
        match self {
            Container::Meeting => "meeting",
            Container::Call => "call",
        }
    }
}

/// `meetings/<organizer>/<hex SHA-256 of meetingId>.json`.
pub(crate) fn meeting_key(organizer: &OrganizerId, meeting_id: &str) -> String {
    index_key(Container::Meeting, organizer, meeting_id)
}

/// `<meetings|calls>/<organizer>/<hex SHA-256 of the meeting or call id>.json`.
pub(crate) fn index_key(container: Container, organizer: &OrganizerId, id: &str) -> String {
    format!("{}/{organizer}/{}.json", container.prefix(), item_key(id))
}

/// `<meetings|calls>/<organizer>`: the organizer's meeting or call indexes.
pub(crate) fn index_prefix(container: Container, organizer: &OrganizerId) -> String {
    format!("{}/{organizer}", container.prefix())
}

/// `manifests/<kind>/<organizer>`: every manifest of one organizer and kind.
pub(crate) fn manifest_prefix(kind: Kind, organizer: &OrganizerId) -> String {
    format!("{MANIFEST_ROOT}/{kind}/{organizer}")
}

/// What is archived. Every layout key of per-organizer data names its kind, so a new kind is
/// a variant here, not a new code path. Deliberately exhaustive: every place that dispatches
/// on a kind must name each one, so that a new kind cannot fall into another's branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Meeting recordings (`callRecording`).
    Recordings,
    /// Meeting transcripts (`callTranscript`).
    Transcripts,
    /// Outlook contacts.
    Contacts,
    /// Recordings of ad hoc calls (1:1, group, PSTN): `callRecording` with `"source":
    /// "adhocCall"`.
    #[serde(rename = "adhoc_recordings")]
    AdhocRecordings,
    /// Transcripts of ad hoc calls: `callTranscript` with `"source": "adhocCall"`.
    #[serde(rename = "adhoc_transcripts")]
    AdhocTranscripts,
}

/// The manifest member naming where an item was listed, when not an online meeting.
pub const MANIFEST_SOURCE: &str = "source";

/// [`MANIFEST_SOURCE`] of the artifacts of ad hoc calls.
pub const SOURCE_ADHOC_CALL: &str = "adhocCall";

impl Kind {
    /// Every kind, in layout order.
    pub const ALL: [Kind; 5] = [
        Kind::Recordings,
        Kind::Transcripts,
        Kind::Contacts,
        Kind::AdhocRecordings,
        Kind::AdhocTranscripts,
    ];

    /// The directory name under `manifests/` and `state/`: `recordings`, `transcripts`,
    /// `contacts`, `adhoc_recordings`, `adhoc_transcripts`.
    pub fn dirname(self) -> &'static str {
        match self {
            Kind::Recordings => "recordings",
            Kind::Transcripts => "transcripts",
            Kind::Contacts => "contacts",
            Kind::AdhocRecordings => "adhoc_recordings",
            Kind::AdhocTranscripts => "adhoc_transcripts",
        }
    }

    /// The kind of a manifest, from its `kind` member (`callRecording`, `callTranscript`,
    /// `contact`) and its [`MANIFEST_SOURCE`] member (`source`: `adhocCall` for the
    /// artifacts of ad hoc calls, absent for online meetings').
    pub fn of_manifest(kind: &str, source: Option<&str>) -> Option<Kind> {
        match (kind, source) {
            ("callRecording", None) => Some(Kind::Recordings),
            ("callTranscript", None) => Some(Kind::Transcripts),
            ("contact", None) => Some(Kind::Contacts),
            ("callRecording", Some(SOURCE_ADHOC_CALL)) => Some(Kind::AdhocRecordings),
            ("callTranscript", Some(SOURCE_ADHOC_CALL)) => Some(Kind::AdhocTranscripts),
            _ => None,
        }
    }

    /// The index an item of this kind is listed in besides its manifest: its meeting's
    /// (`meetings/`) or its call's (`calls/`); `None` for contacts.
    pub fn container(self) -> Option<Container> {
        match self {
            Kind::Recordings | Kind::Transcripts => Some(Container::Meeting),
            Kind::AdhocRecordings | Kind::AdhocTranscripts => Some(Container::Call),
            Kind::Contacts => None,
        }
    }

    /// Parses a directory name (`recordings`, ...).
    pub fn from_dirname(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.dirname() == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.dirname())
    }
}

/// `state/<kind>/<organizer>.json`: the organizer's checkpoint.
pub(crate) fn state_key(kind: Kind, organizer: &OrganizerId) -> String {
    format!("{STATE_ROOT}/{kind}/{organizer}.json")
}

/// `state/shards/<shard>.json`: what a shard's runs leave for the next one.
pub(crate) fn shard_status_key(shard: &ShardId) -> String {
    format!("{STATE_ROOT}/shards/{shard}.json")
}

/// Prefix of multipart upload intents (S3), per shard: see the `multipart` module.
pub(crate) const UPLOADS: &str = "state/uploads";

/// `state/uploads/<shard>`: the intent records of a shard's multipart uploads in progress.
pub(crate) fn upload_intent_prefix(shard: &ShardId) -> String {
    format!("{UPLOADS}/{shard}")
}

/// `state/uploads/<shard>/<hex digest>-<64 random bits>.json`: a fresh intent record for a
/// multipart upload of the blob `digest` (unique, so that two uploads of one digest at once
/// each have their own).
pub(crate) fn upload_intent_key(shard: &ShardId, digest: &Sha256Digest) -> String {
    format!(
        "{}/{}-{:016x}.json",
        upload_intent_prefix(shard),
        digest.to_hex(),
        fastrand::u64(..)
    )
}

/// The blob digest an intent record under `state/uploads/<shard>/` is for.
pub(crate) fn digest_of_upload_intent(shard: &ShardId, key: &str) -> Option<Sha256Digest> {
    let name = key
        .strip_prefix(&upload_intent_prefix(shard))?
        .strip_prefix('/')?
        .strip_suffix(".json")?;
    let (hex, token) = name.split_once('-')?;
    if token.len() != 16 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Sha256Digest::from_hex(hex).ok()
}

/// `state/directory/<shard>/users.json`: a shard's copy of the directory.
pub(crate) fn directory_key(shard: &ShardId) -> String {
    format!("{STATE_ROOT}/directory/{shard}/users.json")
}

/// `state/<kind>/`: every checkpoint, queue and dead letter of a kind.
pub(crate) fn state_prefix(kind: Kind) -> String {
    format!("{STATE_ROOT}/{kind}")
}

/// Which per-item list of an organizer a document is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemList {
    /// Items to retry (`queue/`).
    Queue,
    /// Items never retried automatically (`dead/`).
    Dead,
}

impl ItemList {
    pub(crate) fn dirname(self) -> &'static str {
        match self {
            ItemList::Queue => "queue",
            ItemList::Dead => "dead",
        }
    }
}

/// Lowercase hex SHA-256 of a source item id: the name of its manifest, queue entry and dead
/// letter, whatever the id contains.
pub fn item_key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// `state/<kind>/<organizer>/<queue|dead>/`.
pub(crate) fn item_list_prefix(kind: Kind, organizer: &OrganizerId, list: ItemList) -> String {
    format!("{STATE_ROOT}/{kind}/{organizer}/{}", list.dirname())
}

/// `state/<kind>/<organizer>/<queue|dead>/<hex SHA-256 of id>.json`.
pub(crate) fn item_list_key(kind: Kind, organizer: &OrganizerId, list: ItemList, id: &str) -> String {
    format!("{}/{}.json", item_list_prefix(kind, organizer, list), item_key(id))
}

/// Splits a key under `state/<kind>/` into the organizer and what it is: the checkpoint
/// (`None`) or an entry of a list with its hex name.
pub(crate) fn parse_state_key(kind: Kind, key: &str) -> Option<(OrganizerId, Option<(ItemList, String)>)> {
    let rest = key.strip_prefix(&state_prefix(kind))?.strip_prefix('/')?;
    if let Some(org) = rest.strip_suffix(".json").filter(|r| !r.contains('/')) {
        return Some((OrganizerId::parse(org).ok()?, None));
    }
    let mut parts = rest.split('/');
    let (org, list, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let list = match list {
        "queue" => ItemList::Queue,
        "dead" => ItemList::Dead,
        _ => return None,
    };
    let name = name.strip_suffix(".json")?;
    if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((OrganizerId::parse(org).ok()?, Some((list, name.to_owned()))))
}

/// Prefix of the ledger's records.
pub(crate) const LEDGER: &str = "ledger";
/// Prefixes whose every object (each version of a rewritten one) is a leaf of the ledger.
pub(crate) const LEDGER_LOGGED: [&str; 5] = [MANIFEST_ROOT, MEETINGS, CALLS, CATALOG, "holds"];
/// Prefix of the ledger intents of each shard: see the ledger module.
pub(crate) const LEDGER_INTENTS: &str = "state/ledger";
/// The summary of every disposal so far (rewritten by each): see the dispose module.
pub(crate) const DISPOSAL_SUMMARY: &str = "state/dispose.json";

/// `ledger/<seq, 20 digits zero-padded>.json`: the ledger record `seq`. Twenty digits hold
/// every `u64`, so keys sort as their numbers do.
pub(crate) fn ledger_key(seq: u64) -> String {
    format!("{LEDGER}/{seq:020}.json")
}

/// The sequence number of a ledger record's key; `None` for any other key, including one
/// whose number is not written with exactly 20 digits.
pub(crate) fn seq_of_ledger_key(key: &str) -> Option<u64> {
    let digits = key.strip_prefix(LEDGER)?.strip_prefix('/')?.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `state/ledger/<shard>`: the shard's ledger intents.
pub(crate) fn ledger_intent_prefix(shard: &ShardId) -> String {
    format!("{LEDGER_INTENTS}/{shard}")
}

/// `state/ledger/<shard>/<UTC timestamp>-<64 random bits>.json`: a fresh ledger intent, named
/// so that a shard's intents sort in the order they were written.
pub(crate) fn ledger_intent_key(shard: &ShardId, at: DateTime<Utc>) -> String {
    format!(
        "{}/{}-{:016x}.json",
        ledger_intent_prefix(shard),
        at.format("%Y%m%dT%H%M%S%.3fZ"),
        fastrand::u64(..)
    )
}

/// `locks/<shard>.json`: the shard's lease.
pub(crate) fn lease_key(shard: &ShardId) -> String {
    format!("{LOCKS}/{shard}.json")
}

/// The shard whose lease `key` is, if it is one (`locks/<shard>.json`).
pub(crate) fn shard_of_lease_key(key: &str) -> Option<ShardId> {
    let name = key.strip_prefix(LOCKS)?.strip_prefix('/')?.strip_suffix(".json")?;
    ShardId::parse(name).ok()
}

/// `staging/<shard>`: the shard's staging area.
pub(crate) fn staging_prefix(shard: &ShardId) -> String {
    format!("{STAGING}/{shard}")
}

/// `staging/<shard>/`: the listing prefix of the shard's staging area (the trailing `/` keeps
/// `staging/0-of-10/` out of `staging/0-of-1`'s).
pub(crate) fn staging_dir(shard: &ShardId) -> String {
    format!("{}/", staging_prefix(shard))
}

/// `staging/<shard>/<name>`: the key of a file written into the shard's staging area on local
/// disk.
pub(crate) fn staging_file_key(shard: &ShardId, name: &str) -> String {
    format!("{}/{name}", staging_prefix(shard))
}

/// `staging/<shard>/probe-<128 random bits>`: a probe object in the shard's staging area.
pub(crate) fn shard_probe_key(shard: &ShardId) -> String {
    format!("{}/probe-{:032x}", staging_prefix(shard), fastrand::u128(..))
}

/// A fresh, unique staging key: `staging/<shard>/<UTC timestamp>-<128 random bits>`.
pub(crate) fn staging_key(shard: &ShardId) -> String {
    format!(
        "{STAGING}/{shard}/{}-{:032x}",
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        fastrand::u128(..)
    )
}

/// A fresh catalog segment key: `catalog/<YYYYMMDDTHHMMSS.mmmZ>-<shard>-<64 random bits>.jsonl`
/// (names sort in the order written).
pub(crate) fn catalog_segment_key(shard: &ShardId) -> String {
    format!(
        "{CATALOG}/{}-{shard}-{:016x}.jsonl",
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        fastrand::u64(..)
    )
}

/// Whether `key` is a catalog segment's: `catalog/<name>.jsonl`, one level down.
pub(crate) fn is_catalog_segment_key(key: &str) -> bool {
    key.strip_prefix(CATALOG)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|name| !name.contains('/') && name.ends_with(".jsonl"))
}

pub(crate) fn probe_key() -> String {
    format!("{PROBE}/{:032x}", fastrand::u128(..))
}

/// `runs/<YYYYMMDDTHHMMSS.mmmZ>-<shard>.json`: a fixed-width UTC timestamp, so that names
/// sort in the order the runs started; `attempt` > 0 adds a counter (`-<shard>-2.json`) so
/// that runs of a shard started in the same millisecond do not collide.
pub(crate) fn run_report_key(started: DateTime<Utc>, shard: &ShardId, attempt: u32) -> String {
    let at = started.format("%Y%m%dT%H%M%S%.3fZ");
    match attempt {
        0 => format!("{RUNS}/{at}-{shard}.json"),
        n => format!("{RUNS}/{at}-{shard}-{n}.json"),
    }
}

/// When a run started, its shard and its counter, from a run report's key: the names above,
/// and those of earlier versions (`20240506T070809Z-…`, whole seconds). `None` for anything
/// else under `runs/`.
pub(crate) fn parse_run_report_key(key: &str) -> Option<(DateTime<Utc>, ShardId, u32)> {
    let stem = key.strip_prefix(RUNS)?.strip_prefix('/')?.strip_suffix(".json")?;
    let (at, rest) = stem.split_once("Z-")?;
    let started = chrono::NaiveDateTime::parse_from_str(at, "%Y%m%dT%H%M%S%.f")
        .ok()?
        .and_utc();
    // `<i>-of-<n>` or `<i>-of-<n>-<counter>`.
    let mut parts = rest.splitn(4, '-');
    let (index, of, count) = (parts.next()?, parts.next()?, parts.next()?);
    if of != "of" {
        return None;
    }
    let shard = ShardId::parse(&format!("{index}-of-{count}")).ok()?;
    let counter = match parts.next() {
        Some(n) => n.parse().ok()?,
        None => 0,
    };
    Some((started, shard, counter))
}

/// The `object_store` path of a key built above. Keys contain only `[a-z0-9._/-]` and
/// a `T`/`Z`, so this never percent-encodes anything.
pub(crate) fn path(key: &str) -> Path {
    Path::from(key)
}

/// Parses `<64 hex>` as found after `blobs/sha256/`.
pub(crate) fn digest_of_blob_key(key: &str) -> Option<Sha256Digest> {
    let name = key.strip_prefix(BLOBS)?.strip_prefix('/')?;
    Sha256Digest::from_hex(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let org = OrganizerId::parse("11111111-2222-3333-4444-555555555555").expect("valid");
        let shard = ShardId::new(2, 8);
        let d = Sha256Digest::of(b"");
        assert_eq!(
            blob_key(&d),
            "blobs/sha256/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            manifest_key(&org, ""),
            "manifests/recordings/11111111-2222-3333-4444-555555555555/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.json"
        );
        assert_eq!(
            state_key(Kind::Recordings, &org),
            "state/recordings/11111111-2222-3333-4444-555555555555.json"
        );
        let q = item_list_key(Kind::Transcripts, &org, ItemList::Queue, "");
        assert_eq!(
            q,
            "state/transcripts/11111111-2222-3333-4444-555555555555/queue/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.json"
        );
        assert_eq!(
            parse_state_key(Kind::Transcripts, &q),
            Some((org.clone(), Some((ItemList::Queue, item_key("")))))
        );
        assert_eq!(
            parse_state_key(Kind::Recordings, &state_key(Kind::Recordings, &org)),
            Some((org.clone(), None))
        );
        assert_eq!(parse_state_key(Kind::Recordings, &q), None);
        assert_eq!(
            parse_state_key(Kind::Transcripts, "state/transcripts/x/queue/y.json"),
            None
        );
        assert_eq!(Kind::from_dirname("contacts"), Some(Kind::Contacts));
        assert_eq!(lease_key(&shard), "locks/2-of-8.json");
        assert!(staging_key(&shard).starts_with("staging/2-of-8/"));
        assert_ne!(staging_key(&shard), staging_key(&shard));
        let t = DateTime::parse_from_rfc3339("2024-05-06T07:08:09.123Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(run_report_key(t, &shard, 0), "runs/20240506T070809.123Z-2-of-8.json");
        assert_eq!(run_report_key(t, &shard, 3), "runs/20240506T070809.123Z-2-of-8-3.json");
        // Every key parses back; so do the whole-second names of earlier versions, which
        // sort after their own millisecond names but are older.
        assert_eq!(
            parse_run_report_key(&run_report_key(t, &shard, 3)),
            Some((t, shard.clone(), 3))
        );
        let old = parse_run_report_key("runs/20240506T070809Z-2-of-8.json").expect("old name");
        assert!(old.0 < t);
        assert_eq!(parse_run_report_key("runs/notes.txt"), None);
        assert_eq!(parse_run_report_key("runs/20240506T070809Z-2-by-8.json"), None);
        // Fixed width: names sort as the runs started.
        let later = t + chrono::Duration::milliseconds(877);
        assert!(run_report_key(t, &shard, 0) < run_report_key(later, &shard, 0));
        for key in [blob_key(&d), manifest_key(&org, "a/../b"), staging_key(&shard)] {
            assert_eq!(path(&key).as_ref(), key);
        }
        assert_eq!(digest_of_blob_key(&blob_key(&d)), Some(d));
        let intent = upload_intent_key(&shard, &d);
        assert!(
            intent
                .starts_with("state/uploads/2-of-8/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855-")
        );
        assert_ne!(intent, upload_intent_key(&shard, &d));
        assert_eq!(path(&intent).as_ref(), intent);
        assert_eq!(digest_of_upload_intent(&shard, &intent), Some(d));
        assert_eq!(digest_of_upload_intent(&ShardId::new(0, 1), &intent), None);
        for bad in [
            "state/uploads/2-of-8/x-0123456789abcdef.json",
            "state/uploads/2-of-8/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.json",
            "state/uploads/2-of-8/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855-xyz.json",
        ] {
            assert_eq!(digest_of_upload_intent(&shard, bad), None, "{bad}");
        }
        assert_eq!(digest_of_blob_key("blobs/sha256/x"), None);

        assert_eq!(ledger_key(12), "ledger/00000000000000000012.json");
        assert_eq!(ledger_key(u64::MAX), "ledger/18446744073709551615.json");
        assert!(ledger_key(9) < ledger_key(10));
        for seq in [0, 1, 12, u64::MAX] {
            assert_eq!(seq_of_ledger_key(&ledger_key(seq)), Some(seq));
        }
        for bad in [
            "ledger/12.json",
            "ledger/0000000000000000001x.json",
            "ledger/00000000000000000012.json.tmp",
            "ledger/99999999999999999999.json",
            "state/00000000000000000012.json",
        ] {
            assert_eq!(seq_of_ledger_key(bad), None, "{bad}");
        }
        let intent = ledger_intent_key(&shard, t);
        assert!(
            intent.starts_with("state/ledger/2-of-8/20240506T070809.123Z-"),
            "{intent}"
        );
        assert_eq!(path(&intent).as_ref(), intent);

        assert_eq!(shard_of_lease_key(&lease_key(&shard)), Some(shard.clone()));
        assert_eq!(shard_of_lease_key("locks/notes.txt"), None);
        assert_eq!(shard_of_lease_key("locks/a/b.json"), None);
        assert_eq!(
            meeting_key(&org, ""),
            "meetings/11111111-2222-3333-4444-555555555555/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.json"
        );
        for kind in Kind::ALL {
            let key = manifest_key_of(kind, &org, "a/../b");
            assert!(is_manifest_key(&key), "{key}");
            assert!(key.starts_with(&format!("{}/", manifest_prefix(kind, &org))));
            assert_eq!(manifest_key_beside(&key, &org, "a/../b"), key);
        }
        let other = OrganizerId::parse("99999999-2222-3333-4444-555555555555").expect("valid");
        let key = manifest_key_of(Kind::Contacts, &org, "c");
        assert_ne!(manifest_key_beside(&key, &other, "c"), key);
        // Wherever it was found, a manifest belongs in its organizer's directory of that kind.
        assert_eq!(
            manifest_key_beside("manifests/newkind/x.json", &org, ""),
            format!("manifests/newkind/{org}/{}.json", item_key(""))
        );
        assert_eq!(
            manifest_key_beside("manifests/loose.json", &org, ""),
            manifest_key(&org, "")
        );
        for bad in [
            "manifests/loose.json",
            "manifests/recordings/x/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.json",
            "manifests/newkind/11111111-2222-3333-4444-555555555555/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.json",
            "manifests/recordings/11111111-2222-3333-4444-555555555555/E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855.json",
            "manifests/recordings/11111111-2222-3333-4444-555555555555/x/y.json",
            "meetings/x.json",
        ] {
            assert!(!is_manifest_key(bad), "{bad}");
        }
    }
}
