//! The ledger's checks: the chain of records (every `prev`, every root recomputed from the
//! leaves, every signature when a public key is given), then the objects against the leaves:
//! each key's newest leaf must match the object's bytes (modified), each leaf's object must
//! exist unless a `dispose` record removed it (deleted), and every object under the logged
//! prefixes must have a leaf (inserted).
//!
//! Constant memory: the checker keeps the frontier and the previous digest; the leaves
//! (key, record, digest) and the objects (key, digest) go through the external sort and are
//! merge-joined by key.

use std::io::{self, BufRead, BufReader, BufWriter, Seek as _, Write};

use futures::StreamExt;
use recarch_store::ledger::{Frontier, LedgerChecker, LedgerEvent, LedgerVerifier, TreeHead, ledger_record_key};
use recarch_store::{Archive, Sha256Digest, is_catalog_segment};
use sha2::{Digest as _, Sha256};

use super::catalog::CatalogCheck;
use super::sort::{Entry, Spill};
use super::{Limits, VerifyReport, spill_failed};
use crate::exit::ExitError;
use recarch_failure::error_chain;

/// A leaf as logged: sorted by key, then record, then place in the record (the order
/// written: the last is the newest).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct LeafEntry {
    key: String,
    seq: u64,
    index: u64,
    digest: Sha256Digest,
    /// Whether a `dispose` record logged it (the object is meant to be gone).
    disposed: bool,
}

/// An object as stored: sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ObjectEntry {
    key: String,
    digest: Sha256Digest,
}

fn write_key(out: &mut impl Write, key: &str) -> io::Result<()> {
    let len = u32::try_from(key.len()).map_err(io::Error::other)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(key.as_bytes())
}

fn read_key(input: &mut impl BufRead) -> io::Result<Option<String>> {
    if input.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut key)?;
    String::from_utf8(key)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn read_digest(input: &mut impl BufRead) -> io::Result<Sha256Digest> {
    let mut digest = [0u8; 32];
    input.read_exact(&mut digest)?;
    Ok(Sha256Digest::from_bytes(digest))
}

impl Entry for LeafEntry {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        write_key(out, &self.key)?;
        out.write_all(&self.seq.to_le_bytes())?;
        out.write_all(&self.index.to_le_bytes())?;
        out.write_all(self.digest.as_bytes())?;
        out.write_all(&[u8::from(self.disposed)])
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        let Some(key) = read_key(input)? else { return Ok(None) };
        let mut seq = [0u8; 8];
        input.read_exact(&mut seq)?;
        let mut index = [0u8; 8];
        input.read_exact(&mut index)?;
        let digest = read_digest(input)?;
        let mut disposed = [0u8; 1];
        input.read_exact(&mut disposed)?;
        Ok(Some(LeafEntry {
            key,
            seq: u64::from_le_bytes(seq),
            index: u64::from_le_bytes(index),
            digest,
            disposed: disposed[0] != 0,
        }))
    }
}

impl Entry for ObjectEntry {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        write_key(out, &self.key)?;
        out.write_all(self.digest.as_bytes())
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        let Some(key) = read_key(input)? else { return Ok(None) };
        Ok(Some(ObjectEntry {
            key,
            digest: read_digest(input)?,
        }))
    }
}

/// The keys a `dispose` record logged as their newest leaf and that are gone (disposed of as
/// intended), in key order, in a temporary file: the meeting and call index check excuses the
/// entries naming them.
#[derive(Debug, Default)]
pub(super) struct DisposedKeys {
    reader: Option<BufReader<std::fs::File>>,
}

impl DisposedKeys {
    /// The next key, in key order; `None` at the end.
    pub(super) fn next(&mut self) -> io::Result<Option<String>> {
        match &mut self.reader {
            Some(reader) => read_key(reader),
            None => Ok(None),
        }
    }
}

/// A checkpoint kept elsewhere (`verify --checkpoint FILE`): the tree head it states, and
/// where it was read from.
#[derive(Debug, Clone)]
pub struct KeptCheckpoint {
    /// The file, for messages.
    pub source: String,
    /// What it states.
    pub head: TreeHead,
}

impl KeptCheckpoint {
    /// Reads a checkpoint from `text`: a signed note (its signature checked with `verifier`
    /// when given), or the bare body (`<origin>\n<size>\n<base64 root>\n`).
    ///
    /// # Errors
    /// A message naming `source` when it is neither, or its signature does not verify.
    pub fn parse(source: &str, text: &str, verifier: Option<&LedgerVerifier>) -> Result<Self, String> {
        let head = if text.contains("\n\n") {
            match verifier {
                Some(v) => v.verify_checkpoint(text),
                None => recarch_store::ledger::read_checkpoint(text),
            }
            .map_err(|e| format!("{source}: not a checkpoint signed by the key given: {e}"))?
        } else {
            TreeHead::parse(text).map_err(|e| format!("{source}: not a checkpoint: {e}"))?
        };
        Ok(KeptCheckpoint {
            source: source.to_owned(),
            head,
        })
    }
}

/// Checks the ledger and the objects it logs; findings go to `report`. Each of `kept` must be
/// a prefix of the ledger: the first `size` leaves must hash to its root (a consistency check
/// against a checkpoint kept elsewhere, which catches a history rewritten since). The catalog
/// segments read on the way go to `catalog`. Returns the keys disposed of (see
/// [`DisposedKeys`]).
pub(super) async fn check_ledger(
    archive: &Archive,
    (verifier, kept): (Option<LedgerVerifier>, &[KeptCheckpoint]),
    limits: Limits,
    catalog: &mut CatalogCheck,
    report: &mut VerifyReport,
    on_problem: &mut impl FnMut(&str),
) -> Result<DisposedKeys, ExitError> {
    // The tree over every leaf in order, to compare with the kept checkpoints at their sizes.
    let mut tree = Frontier::new();
    let mut waiting: Vec<&KeptCheckpoint> = kept.iter().collect();
    waiting.sort_by_key(|k| k.head.size);
    compare(&tree, &mut waiting, report, on_problem);
    // 1. The chain, record by record; the leaves into the sort.
    let mut checker = LedgerChecker::new(verifier);
    // Two lists of keys are sorted at once here, each entry about four times a blob's: runs
    // a quarter as long keep the memory where the blob join's was.
    let limits = limits.quartered();
    let mut leaves = Spill::<LeafEntry>::new(limits);
    let mut records = archive.read_ledger(0);
    let mut complete = true;
    while let Some(item) = records.next().await {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                complete = false;
                report.found(format!("cannot read the ledger: {}", error_chain(&e)), on_problem);
                break;
            }
        };
        let checked = checker.check(item);
        for finding in &checked.findings {
            report.found(format!("ledger: {finding}"), on_problem);
        }
        if let Some((_, record)) = checked.record {
            let disposed = record.event == LedgerEvent::Dispose;
            for (index, leaf) in record.leaves.into_iter().enumerate() {
                tree.append(&leaf.key, &leaf.sha256);
                compare(&tree, &mut waiting, report, on_problem);
                let entry = LeafEntry {
                    key: leaf.key,
                    seq: record.seq,
                    index: index as u64,
                    digest: leaf.sha256,
                    disposed,
                };
                leaves.push(entry).await.map_err(spill_failed)?;
            }
        }
    }
    report.ledger_records = checker.records();
    report.ledger_leaves = leaves.len;
    for k in waiting {
        report.found(
            format!(
                "rewritten history: the checkpoint in {} states {} leaves, but the ledger has only {}: records were removed",
                k.source,
                k.head.size,
                tree.size()
            ),
            on_problem,
        );
    }
    // 2. The objects, hashed as read.
    let mut objects = Spill::<ObjectEntry>::new(limits);
    let mut listing = archive.ledgered_objects();
    while let Some(item) = listing.next().await {
        match item {
            Ok((key, Ok(bytes))) => {
                // The catalog's segments are read here anyway: their entries are checked
                // from the same bytes.
                if is_catalog_segment(&key) {
                    catalog.segment(&key, &bytes, report, on_problem).await?;
                }
                let digest = Sha256Digest::from_bytes(Sha256::digest(&bytes).into());
                objects.push(ObjectEntry { key, digest }).await.map_err(spill_failed)?;
            }
            Ok((key, Err(e))) => {
                if is_catalog_segment(&key) {
                    catalog.incomplete();
                }
                report.found(
                    format!("cannot read {key} to check it against the ledger: {}", error_chain(&e)),
                    on_problem,
                );
            }
            Err(e) => {
                complete = false;
                catalog.incomplete();
                report.found(
                    format!(
                        "cannot list the objects the ledger logs: {}; the rest were not checked against it",
                        error_chain(&e)
                    ),
                    on_problem,
                );
                break;
            }
        }
    }
    // An archive without any record: written before the ledger (its next run logs it), or
    // its ledger deleted. One finding, not one per object.
    if checker.records() == 0 && objects.len > 0 {
        report.found(
            format!(
                "no ledger: {} objects under manifests/, meetings/, calls/ and catalog/ are logged by no record (the next run logs those of an archive written before the ledger; otherwise the ledger was deleted)",
                objects.len
            ),
            on_problem,
        );
        return Ok(DisposedKeys::default());
    }
    // 3. The join, by key: the newest leaf of a key against its object.
    let findings = tokio::task::spawn_blocking(move || join(leaves, objects, complete))
        .await
        .map_err(|e| spill_failed(io::Error::other(e)))?
        .map_err(spill_failed)?;
    for finding in findings.shown {
        report.found(finding, on_problem);
    }
    if findings.hidden > 0 {
        report.found(
            format!(
                "{} more objects or leaves disagree with the ledger (not listed: a listing was incomplete)",
                findings.hidden
            ),
            on_problem,
        );
    }
    Ok(findings.disposed)
}

/// Compares the tree, at its size now, with the kept checkpoints of that size (the smallest
/// first in `waiting`), and drops them.
fn compare(
    tree: &Frontier,
    waiting: &mut Vec<&KeptCheckpoint>,
    report: &mut VerifyReport,
    on_problem: &mut impl FnMut(&str),
) {
    while let Some(k) = waiting.first().filter(|k| k.head.size == tree.size()) {
        if tree.root() != k.head.root {
            report.found(
                format!(
                    "rewritten history: the checkpoint in {} (tree size {}, root {}) is not a prefix of the ledger: its first {} leaves hash to {}",
                    k.source,
                    k.head.size,
                    k.head.root.to_hex(),
                    k.head.size,
                    tree.root().to_hex()
                ),
                on_problem,
            );
        }
        waiting.remove(0);
    }
}

/// What the join found.
struct Findings {
    shown: Vec<String>,
    /// Findings not listed because a listing was incomplete (they may be false).
    hidden: u64,
    /// The keys disposed of and gone.
    disposed: DisposedKeys,
}

/// At most this many join findings are kept to print (all are counted).
const JOIN_FINDINGS: usize = 10_000;

fn join(leaves: Spill<LeafEntry>, objects: Spill<ObjectEntry>, complete: bool) -> io::Result<Findings> {
    let mut leaves = leaves.into_sorted()?;
    let mut objects = objects.into_sorted()?;
    let mut found = Findings {
        shown: Vec::new(),
        hidden: 0,
        disposed: DisposedKeys::default(),
    };
    let mut disposed = BufWriter::new(tempfile::tempfile()?);
    let mut note = |finding: String, trusted: bool| {
        if trusted && found.shown.len() < JOIN_FINDINGS {
            found.shown.push(finding);
        } else {
            found.hidden += 1;
        }
    };
    // The next leaf not yet grouped, and the newest leaf of the current key.
    let mut pending = leaves.next()?;
    let mut newest = next_group(&mut leaves, &mut pending)?;
    let mut object = objects.next()?;
    loop {
        let (l, o) = (newest.as_ref(), object.as_ref());
        if l.is_none() && o.is_none() {
            break;
        }
        let same = matches!((l, o), (Some(l), Some(o)) if l.key == o.key);
        let leaf_first = matches!((l, o), (Some(l), Some(o)) if l.key < o.key) || (l.is_some() && o.is_none());
        if let (true, Some(l), Some(o)) = (same, l, o) {
            if l.disposed {
                let record = ledger_record_key(l.seq);
                note(
                    format!("inserted: {} exists again after {record} disposed of it", o.key),
                    true,
                );
            } else if l.digest != o.digest {
                note(
                    format!(
                        "modified: {} hashes to {}, but its newest leaf (in {}) is {}",
                        o.key,
                        o.digest,
                        ledger_record_key(l.seq),
                        l.digest
                    ),
                    true,
                );
            }
            newest = next_group(&mut leaves, &mut pending)?;
            object = objects.next()?;
        } else if let (true, Some(l)) = (leaf_first, l) {
            if l.disposed {
                write_key(&mut disposed, &l.key)?;
            } else {
                let record = ledger_record_key(l.seq);
                note(
                    format!("deleted: {} is logged in {record} but does not exist", l.key),
                    complete,
                );
            }
            newest = next_group(&mut leaves, &mut pending)?;
        } else if let Some(o) = o {
            note(
                format!("inserted: {} exists but no ledger record logs it", o.key),
                complete,
            );
            object = objects.next()?;
        }
    }
    let mut file = disposed.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.rewind()?;
    found.disposed = DisposedKeys {
        reader: Some(BufReader::new(file)),
    };
    Ok(found)
}

/// The newest leaf (highest record) of the key of `pending`, reading past that key's leaves.
fn next_group(
    leaves: &mut super::sort::Sorted<LeafEntry>,
    pending: &mut Option<LeafEntry>,
) -> io::Result<Option<LeafEntry>> {
    let Some(mut newest) = pending.take() else {
        return Ok(None);
    };
    loop {
        match leaves.next()? {
            Some(next) if next.key == newest.key => newest = next,
            other => {
                *pending = other;
                return Ok(Some(newest));
            }
        }
    }
}
