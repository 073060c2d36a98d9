//! The ledger record, `ledger/<20-digit seq>.json`, and its parts.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::merkle::MerkleHash;
use crate::layout;
use crate::{Sha256Digest, StoreError};

/// Schema tag of ledger records.
pub const LEDGER_SCHEMA: &str = "recarch.ledger.v1";

/// Longest leaf key accepted (S3's and Azure's limit on an object name is 1024 bytes).
const MAX_LEAF_KEY: usize = 1024;

/// `ledger/<seq, 20 digits zero-padded>.json`: the key of ledger record `seq`.
pub fn ledger_record_key(seq: u64) -> String {
    layout::ledger_key(seq)
}

/// What a ledger record records. Serialized as `run`, `recover`, `export`, `hold.place`,
/// `hold.release`, `dispose`, `retry`.
///
/// Deliberately exhaustive: a checker must know every event, and a new one is a new schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LedgerEvent {
    /// A run archived what the record's leaves name (at least once per page and at its end).
    #[serde(rename = "run")]
    Run,
    /// A run logged what an earlier, killed run of its shard wrote and did not log.
    #[serde(rename = "recover")]
    Recover,
    /// A production was exported; `details` carry its custody file's digest.
    #[serde(rename = "export")]
    Export,
    /// A legal hold was placed.
    #[serde(rename = "hold.place")]
    HoldPlace,
    /// A legal hold was released.
    #[serde(rename = "hold.release")]
    HoldRelease,
    /// Items were disposed of; logged before anything is deleted.
    #[serde(rename = "dispose")]
    Dispose,
    /// Dead-lettered items were put back in the queue by a person.
    #[serde(rename = "retry")]
    Retry,
}

impl LedgerEvent {
    /// Every event.
    pub const ALL: [LedgerEvent; 7] = [
        LedgerEvent::Run,
        LedgerEvent::Recover,
        LedgerEvent::Export,
        LedgerEvent::HoldPlace,
        LedgerEvent::HoldRelease,
        LedgerEvent::Dispose,
        LedgerEvent::Retry,
    ];

    /// The name as stored: `run`, `recover`, `export`, `hold.place`, `hold.release`,
    /// `dispose`, `retry`.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerEvent::Run => "run",
            LedgerEvent::Recover => "recover",
            LedgerEvent::Export => "export",
            LedgerEvent::HoldPlace => "hold.place",
            LedgerEvent::HoldRelease => "hold.release",
            LedgerEvent::Dispose => "dispose",
            LedgerEvent::Retry => "retry",
        }
    }
}

impl fmt::Display for LedgerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who appended a record: the audit trail's "who", "where" and "with what".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Actor {
    /// The operating-system user (or the service account) the process ran as.
    pub user: String,
    /// The host (in Kubernetes, the pod) it ran on.
    pub host: String,
    /// The shard it worked on (`0-of-1`); empty for commands that work on no shard.
    pub shard: String,
    /// The program and its version, e.g. `recarch 0.1.0`.
    pub version: String,
}

/// An object written under one of the logged prefixes, as written: its key and the SHA-256
/// of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Leaf {
    /// The object's key (relative to the archive root), under `manifests/`, `meetings/`,
    /// `calls/`, `catalog/` or `holds/`.
    pub key: String,
    /// The SHA-256 of the object's bytes as written.
    pub sha256: Sha256Digest,
}

impl Leaf {
    /// A leaf for `key`, checked with [`check_leaf_key`].
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a key outside the logged prefixes or not a plain key.
    pub fn new(key: impl Into<String>, sha256: Sha256Digest) -> Result<Self, StoreError> {
        let key = key.into();
        check_leaf_key(&key)?;
        Ok(Self { key, sha256 })
    }

    /// The leaf of the object at `key` whose bytes are `bytes`.
    ///
    /// # Errors
    /// As [`Leaf::new`].
    pub fn of_bytes(key: impl Into<String>, bytes: &[u8]) -> Result<Self, StoreError> {
        Self::new(key, Sha256Digest::of(bytes))
    }

    /// The leaf's hash in the Merkle tree.
    pub fn hash(&self) -> MerkleHash {
        super::merkle::leaf_hash(&self.key, &self.sha256)
    }
}

/// Checks that `key` may be a leaf: a plain object key (no empty, `.` or `..` segment, no
/// leading or trailing `/`, no control character, at most 1024 bytes) under one of the
/// logged prefixes `manifests/`, `meetings/`, `calls/`, `catalog/`, `holds/`.
///
/// # Errors
/// [`StoreError::Rejected`] naming the key and what is wrong.
pub fn check_leaf_key(key: &str) -> Result<(), StoreError> {
    let rejected = |reason: String| StoreError::Rejected {
        key: truncated(key),
        reason,
    };
    if key.len() > MAX_LEAF_KEY {
        return Err(rejected(format!("a leaf key is at most {MAX_LEAF_KEY} bytes")));
    }
    if key.chars().any(char::is_control) {
        return Err(rejected("a leaf key has no control characters".into()));
    }
    if key.split('/').any(|segment| matches!(segment, "" | "." | "..")) {
        return Err(rejected(
            "a leaf key is a plain object key (no empty, \".\" or \"..\" segment)".into(),
        ));
    }
    let under = |prefix: &str| key.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'));
    if !layout::LEDGER_LOGGED.iter().any(|prefix| under(prefix)) {
        return Err(rejected(format!(
            "a leaf key is under one of {}",
            layout::LEDGER_LOGGED.map(|p| format!("{p}/")).join(", ")
        )));
    }
    Ok(())
}

/// A key for a message: at most 200 characters.
fn truncated(key: &str) -> String {
    const MAX: usize = 200;
    if key.chars().count() <= MAX {
        return key.to_owned();
    }
    let mut short: String = key.chars().take(MAX).collect();
    short.push('…');
    short
}

/// One ledger record: `ledger/<20-digit seq>.json`, written once, create-only.
///
/// ```json
/// {
///   "schema": "recarch.ledger.v1",
///   "seq": 12,
///   "prev": "<hex SHA-256 of the exact bytes of record 11; null for record 0>",
///   "time": "<RFC 3339 UTC>",
///   "event": "run",
///   "actor": { "user": "…", "host": "…", "shard": "0-of-1", "version": "recarch x.y.z" },
///   "leaves": [ { "key": "manifests/…json", "sha256": "<hex of the object's bytes>" } ],
///   "treeSize": 1234,
///   "root": "<hex RFC 6962 root over every leaf of records 0..=seq, in order>",
///   "frontier": [ "<hex>", "…" ],
///   "details": { },
///   "checkpoint": "<optional: a signed note over origin, treeSize and base64 root>"
/// }
/// ```
///
/// `frontier` is the tree's right edge after this record ([`Frontier`](super::Frontier)):
/// the next record extends the tree from it, so appending never reads history. It is
/// redundant with the leaves of every record so far, and a checker recomputes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerRecord {
    /// Always [`LEDGER_SCHEMA`].
    pub schema: String,
    /// The record's number; record 0 starts the chain.
    pub seq: u64,
    /// SHA-256 of the exact bytes of record `seq - 1`; `None` (null) for record 0.
    pub prev: Option<Sha256Digest>,
    /// When the record was made.
    pub time: DateTime<Utc>,
    /// What happened.
    pub event: LedgerEvent,
    /// Who did it.
    pub actor: Actor,
    /// The objects written, in the order written.
    pub leaves: Vec<Leaf>,
    /// Leaves of records `0..=seq`.
    pub tree_size: u64,
    /// The RFC 6962 root over the leaves of records `0..=seq`, in order.
    pub root: MerkleHash,
    /// The tree's frontier after this record: the perfect subtree roots, largest first.
    pub frontier: Vec<MerkleHash>,
    /// Event-specific facts: counts, filters, a custody file's digest.
    pub details: Map<String, Value>,
    /// A signed note over the record's tree head, when the ledger is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

impl LedgerRecord {
    /// The key this record is stored under: [`ledger_record_key`] of its `seq`.
    pub fn key(&self) -> String {
        ledger_record_key(self.seq)
    }

    /// Parses a record as stored under `key`.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] naming `key` when the bytes are not a record of
    /// [`LEDGER_SCHEMA`].
    pub fn parse(key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        let record: LedgerRecord =
            serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(key, format!("not a ledger record: {e}")))?;
        if record.schema != LEDGER_SCHEMA {
            return Err(StoreError::corrupt(
                key,
                format!(
                    "unsupported schema {:?} (this version reads {LEDGER_SCHEMA:?})",
                    record.schema
                ),
            ));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_their_names() {
        for event in LedgerEvent::ALL {
            let json = serde_json::to_string(&event).expect("json");
            assert_eq!(json, format!("\"{}\"", event.as_str()));
            assert_eq!(serde_json::from_str::<LedgerEvent>(&json).expect("back"), event);
        }
        assert!(serde_json::from_str::<LedgerEvent>("\"hold\"").is_err());
    }

    #[test]
    fn leaf_keys_are_checked() {
        let d = Sha256Digest::of(b"x");
        for good in [
            "manifests/recordings/o/k.json",
            "meetings/o/k.json",
            "calls/u/k.json",
            "catalog/2026/12/seg-1.jsonl",
            "holds/matter-a.json",
        ] {
            assert!(Leaf::new(good, d).is_ok(), "{good}");
        }
        for bad in [
            "",
            "manifests",
            "manifests/",
            "/manifests/x.json",
            "manifestsx/y.json",
            "blobs/sha256/x",
            "state/recordings/x.json",
            "ledger/00000000000000000000.json",
            "manifests/../blobs/x",
            "manifests/./x",
            "manifests//x",
            "manifests/x/",
            "manifests/a\0b",
            "manifests/a\nb",
        ] {
            let err = Leaf::new(bad, d).expect_err(bad);
            assert!(matches!(err, StoreError::Rejected { .. }), "{bad}: {err}");
        }
        let long = format!("manifests/{}", "a".repeat(2000));
        let err = Leaf::new(long, d).expect_err("too long");
        assert!(err.to_string().len() < 400, "{err}");
    }

    #[test]
    fn record_round_trips_with_null_prev() {
        let record = LedgerRecord {
            schema: LEDGER_SCHEMA.into(),
            seq: 0,
            prev: None,
            time: DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
                .expect("time")
                .with_timezone(&Utc),
            event: LedgerEvent::HoldPlace,
            actor: Actor {
                user: "u".into(),
                host: "h".into(),
                shard: String::new(),
                version: "recarch 0.1.0".into(),
            },
            leaves: vec![Leaf::of_bytes("holds/m.json", b"{}").expect("leaf")],
            tree_size: 1,
            root: super::super::merkle::empty_root(),
            frontier: vec![super::super::merkle::empty_root()],
            details: Map::new(),
            checkpoint: None,
        };
        let json = serde_json::to_value(&record).expect("json");
        assert_eq!(json["prev"], Value::Null);
        assert_eq!(json["event"], "hold.place");
        assert_eq!(json["time"], "2026-12-01T10:00:00Z");
        assert!(json.get("treeSize").is_some() && json.get("checkpoint").is_none());
        let bytes = serde_json::to_vec(&record).expect("bytes");
        assert_eq!(LedgerRecord::parse("k", &bytes).expect("parse"), record);
        let mut other = json.clone();
        other["schema"] = "recarch.ledger.v0".into();
        let err = LedgerRecord::parse("ledger/x.json", other.to_string().as_bytes()).expect_err("schema");
        assert!(
            matches!(err, StoreError::Corrupt { ref key, .. } if key == "ledger/x.json"),
            "{err}"
        );
    }
}
