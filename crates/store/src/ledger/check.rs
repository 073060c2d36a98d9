//! Checking the chain record by record, in constant memory: [`LedgerChecker`].

use std::fmt;

use super::merkle::{Frontier, MerkleHash};
use super::note::{LedgerVerifier, read_checkpoint};
use super::read::{LedgerItem, StoredRecord};
use super::record::{LedgerRecord, check_leaf_key};
use crate::layout;
use crate::{Sha256Digest, StoreError};

/// Something wrong with the ledger, naming the record (or object) concerned.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerFinding {
    /// The record could not be read, or is not a ledger record.
    Unreadable {
        /// The record's key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Records are missing from the chain.
    Missing {
        /// Key of the first missing record.
        first: String,
        /// Key of the last missing record.
        last: String,
    },
    /// The record's `seq` is not the number its key names.
    Misplaced {
        /// The record's key.
        key: String,
        /// Its `seq`.
        seq: u64,
    },
    /// The record's `prev` is not the SHA-256 of the previous record's bytes: a record
    /// before it was changed, or this one was.
    BrokenChain {
        /// The record's key.
        key: String,
        /// The digest of the previous record's bytes (`None` for record 0: null).
        expected: Option<Sha256Digest>,
        /// The record's `prev`.
        found: Option<Sha256Digest>,
    },
    /// The record's `treeSize` is not the number of leaves of the records so far.
    TreeSizeMismatch {
        /// The record's key.
        key: String,
        /// Leaves counted.
        expected: u64,
        /// The record's `treeSize`.
        found: u64,
    },
    /// The record's `root` is not the root over the leaves of the records so far: a leaf
    /// was changed, added or removed.
    RootMismatch {
        /// The record's key.
        key: String,
        /// The root recomputed from the leaves.
        expected: MerkleHash,
        /// The record's `root`.
        found: MerkleHash,
    },
    /// The record's `frontier` is not the tree it states: the next record would extend a
    /// tree other than the one its leaves make.
    FrontierMismatch {
        /// The record's key.
        key: String,
    },
    /// A leaf's key is outside the logged prefixes or not a plain key.
    BadLeafKey {
        /// The record's key.
        key: String,
        /// The leaf's key.
        leaf: String,
    },
    /// The record's signed checkpoint does not verify with the public key given.
    BadSignature {
        /// The record's key.
        key: String,
        /// Why ([`NoteError`](super::NoteError)'s message).
        reason: String,
    },
    /// A public key was given, and the record has no checkpoint.
    Unsigned {
        /// The record's key.
        key: String,
    },
    /// The record's checkpoint states another tree size or root than the record, or is not
    /// a checkpoint.
    CheckpointMismatch {
        /// The record's key.
        key: String,
        /// What differs.
        reason: String,
    },
    /// An object under `ledger/` that is not a record.
    Stray {
        /// Its key.
        key: String,
    },
}

impl LedgerFinding {
    /// The key of the record (or object) the finding is about; for missing records, the
    /// first one's.
    pub fn key(&self) -> &str {
        match self {
            LedgerFinding::Missing { first: key, .. }
            | LedgerFinding::Unreadable { key, .. }
            | LedgerFinding::Misplaced { key, .. }
            | LedgerFinding::BrokenChain { key, .. }
            | LedgerFinding::TreeSizeMismatch { key, .. }
            | LedgerFinding::RootMismatch { key, .. }
            | LedgerFinding::FrontierMismatch { key }
            | LedgerFinding::BadLeafKey { key, .. }
            | LedgerFinding::BadSignature { key, .. }
            | LedgerFinding::Unsigned { key }
            | LedgerFinding::CheckpointMismatch { key, .. }
            | LedgerFinding::Stray { key } => key,
        }
    }
}

/// `null` or the hex digest.
fn or_null(digest: Option<&Sha256Digest>) -> String {
    digest.map_or_else(|| "null".to_owned(), Sha256Digest::to_hex)
}

impl fmt::Display for LedgerFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerFinding::Unreadable { key, reason } => write!(f, "{key}: unreadable: {reason}"),
            LedgerFinding::Missing { first, last } if first == last => write!(f, "{first}: missing"),
            LedgerFinding::Missing { first, last } => write!(f, "{first} to {last}: missing"),
            LedgerFinding::Misplaced { key, seq } => write!(f, "{key}: says it is record {seq}"),
            LedgerFinding::BrokenChain { key, expected, found } => write!(
                f,
                "{key}: broken chain: prev is {}, the previous record hashes to {}",
                or_null(found.as_ref()),
                or_null(expected.as_ref())
            ),
            LedgerFinding::TreeSizeMismatch { key, expected, found } => write!(
                f,
                "{key}: treeSize is {found}, the records so far have {expected} leaves"
            ),
            LedgerFinding::RootMismatch { key, expected, found } => {
                write!(f, "{key}: root is {found}, the leaves so far hash to {expected}")
            }
            LedgerFinding::FrontierMismatch { key } => {
                write!(f, "{key}: frontier does not match the tree of the leaves so far")
            }
            LedgerFinding::BadLeafKey { key, leaf } => {
                write!(f, "{key}: leaf {leaf:?} is not under a logged prefix")
            }
            LedgerFinding::BadSignature { key, reason } => write!(f, "{key}: bad signature: {reason}"),
            LedgerFinding::Unsigned { key } => write!(f, "{key}: not signed"),
            LedgerFinding::CheckpointMismatch { key, reason } => write!(f, "{key}: checkpoint {reason}"),
            LedgerFinding::Stray { key } => write!(f, "{key}: not a ledger record"),
        }
    }
}

/// What [`LedgerChecker::check`] made of one item.
#[derive(Debug, Default)]
pub struct Checked {
    /// The record, when it parsed, for the caller to check the objects its leaves name
    /// (and to read its event and details: a `dispose` record explains deleted objects).
    pub record: Option<(String, LedgerRecord)>,
    /// What is wrong with it; empty when nothing is.
    pub findings: Vec<LedgerFinding>,
}

/// What the checker expects of the next record.
#[derive(Debug, Clone)]
struct Expected {
    /// Its `seq`.
    seq: u64,
    /// Its `prev`, when known (not after a hole or an unreadable record).
    prev: Option<Option<Sha256Digest>>,
    /// The tree before it, when known.
    frontier: Option<Frontier>,
}

/// Checks the ledger one item of [`Archive::read_ledger`](crate::Archive::read_ledger) at a
/// time, in constant memory (the tree's frontier and the previous record's digest): every
/// `prev`, every `treeSize` and `root` recomputed from the leaves, each record's stored
/// frontier, leaf keys, holes in the numbering, and the signed checkpoint (against the
/// public key, when one is given; its tree size and root against the record's in any case).
///
/// After a record that cannot be checked against its predecessor (a hole, an unreadable
/// record), checking resumes from the next readable record's own frontier. After a record
/// whose root does not match its leaves, it resumes from that record's stored frontier when
/// that is consistent with its root, so one changed record is one finding (and a broken
/// chain at the next record, whose `prev` no longer matches), not a finding for every record
/// after it.
#[derive(Debug)]
pub struct LedgerChecker {
    /// The public key signatures are checked against, if any.
    verifier: Option<LedgerVerifier>,
    /// What the next record should be.
    expected: Expected,
    /// Records checked.
    records: u64,
}

impl LedgerChecker {
    /// A checker for a ledger read from record 0; `verifier` checks signed checkpoints, and
    /// makes an unsigned record a finding.
    pub fn new(verifier: Option<LedgerVerifier>) -> Self {
        Self {
            verifier,
            expected: Expected {
                seq: 0,
                prev: Some(None),
                frontier: Some(Frontier::new()),
            },
            records: 0,
        }
    }

    /// Records checked so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The tree after the last record checked, when known: its size and root.
    pub fn tree(&self) -> Option<(u64, MerkleHash)> {
        self.expected.frontier.as_ref().map(|f| (f.size(), f.root()))
    }

    /// Checks the next item of the ledger.
    pub fn check(&mut self, item: LedgerItem) -> Checked {
        match item {
            LedgerItem::Record(stored) => self.check_record(&stored),
            LedgerItem::Unreadable { key, seq, error } => {
                self.lose_track(seq.saturating_add(1));
                Checked {
                    record: None,
                    findings: vec![LedgerFinding::Unreadable {
                        key,
                        reason: error_chain(&error),
                    }],
                }
            }
            LedgerItem::Missing { from, to } => {
                self.lose_track(to.saturating_add(1));
                Checked {
                    record: None,
                    findings: vec![LedgerFinding::Missing {
                        first: layout::ledger_key(from),
                        last: layout::ledger_key(to),
                    }],
                }
            }
            LedgerItem::Stray { key } => Checked {
                record: None,
                findings: vec![LedgerFinding::Stray { key }],
            },
        }
    }

    /// The next record is `seq`, and nothing is known of what it extends.
    fn lose_track(&mut self, seq: u64) {
        self.expected = Expected {
            seq,
            prev: None,
            frontier: None,
        };
    }

    /// Checks one stored record.
    pub fn check_record(&mut self, stored: &StoredRecord) -> Checked {
        let key = stored.key.clone();
        let mut findings = Vec::new();
        let record = match LedgerRecord::parse(&key, &stored.bytes) {
            Ok(record) => record,
            Err(e) => {
                self.lose_track(stored.seq.saturating_add(1));
                let reason = match e {
                    StoreError::Corrupt { reason, .. } => reason,
                    other => other.to_string(),
                };
                return Checked {
                    record: None,
                    findings: vec![LedgerFinding::Unreadable { key, reason }],
                };
            }
        };
        self.records += 1;

        if record.seq != stored.seq {
            findings.push(LedgerFinding::Misplaced {
                key: key.clone(),
                seq: record.seq,
            });
        }
        if stored.seq != self.expected.seq {
            // Fed out of order, or a hole the reader did not report: say so, and check this
            // record on its own.
            let (from, to) = (self.expected.seq.min(stored.seq), self.expected.seq.max(stored.seq));
            findings.push(LedgerFinding::Missing {
                first: layout::ledger_key(from),
                last: layout::ledger_key(to.saturating_sub(1)),
            });
            self.lose_track(stored.seq);
        }
        if let Some(prev) = self.expected.prev {
            if record.prev != prev {
                findings.push(LedgerFinding::BrokenChain {
                    key: key.clone(),
                    expected: prev,
                    found: record.prev,
                });
            }
        }
        for leaf in &record.leaves {
            if check_leaf_key(&leaf.key).is_err() {
                findings.push(LedgerFinding::BadLeafKey {
                    key: key.clone(),
                    leaf: leaf.key.clone(),
                });
            }
        }

        // The tree the record states, when its frontier is consistent with its size and root.
        let stated = Frontier::from_parts(&key, record.tree_size, record.frontier.clone())
            .ok()
            .filter(|f| f.root() == record.root);
        let recomputed = self.expected.frontier.take().map(|mut frontier| {
            for leaf in &record.leaves {
                frontier.push(leaf.hash());
            }
            frontier
        });
        match &recomputed {
            Some(tree) => {
                if tree.size() != record.tree_size {
                    findings.push(LedgerFinding::TreeSizeMismatch {
                        key: key.clone(),
                        expected: tree.size(),
                        found: record.tree_size,
                    });
                }
                if tree.root() != record.root {
                    findings.push(LedgerFinding::RootMismatch {
                        key: key.clone(),
                        expected: tree.root(),
                        found: record.root,
                    });
                } else if tree.hashes() != record.frontier.as_slice() {
                    findings.push(LedgerFinding::FrontierMismatch { key: key.clone() });
                }
            }
            None => {
                // Nothing to recompute from: the record must at least agree with itself.
                if stated.is_none() {
                    findings.push(LedgerFinding::FrontierMismatch { key: key.clone() });
                }
                if record.tree_size < record.leaves.len() as u64 {
                    findings.push(LedgerFinding::TreeSizeMismatch {
                        key: key.clone(),
                        expected: record.leaves.len() as u64,
                        found: record.tree_size,
                    });
                }
            }
        }

        findings.extend(self.check_checkpoint(&key, &record));

        // Resume from the tree the record states when it is consistent (so one changed record
        // is one finding), else from the recomputed one.
        self.expected = Expected {
            seq: stored.seq.saturating_add(1),
            prev: Some(Some(Sha256Digest::of(&stored.bytes))),
            frontier: stated.or(recomputed),
        };
        Checked {
            record: Some((key, record)),
            findings,
        }
    }

    /// The record's checkpoint against its tree head, and its signature when a key is given.
    fn check_checkpoint(&self, key: &str, record: &LedgerRecord) -> Option<LedgerFinding> {
        let Some(note) = &record.checkpoint else {
            return self
                .verifier
                .is_some()
                .then(|| LedgerFinding::Unsigned { key: key.to_owned() });
        };
        let head = match &self.verifier {
            Some(verifier) => verifier
                .verify_checkpoint(note)
                .map_err(|e| LedgerFinding::BadSignature {
                    key: key.to_owned(),
                    reason: e.to_string(),
                }),
            None => read_checkpoint(note).map_err(|e| LedgerFinding::CheckpointMismatch {
                key: key.to_owned(),
                reason: e.to_string(),
            }),
        };
        let head = match head {
            Ok(head) => head,
            Err(finding) => return Some(finding),
        };
        let differs = |reason: String| {
            Some(LedgerFinding::CheckpointMismatch {
                key: key.to_owned(),
                reason,
            })
        };
        if head.size != record.tree_size {
            return differs(format!(
                "states tree size {}, the record {}",
                head.size, record.tree_size
            ));
        }
        if head.root != record.root {
            return differs(format!("states root {}, the record {}", head.root, record.root));
        }
        None
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(error: &StoreError) -> String {
    recarch_failure::error_chain(error)
}
