//! Appending to the chain: find the head once, extend it from its frontier, write `seq + 1`
//! create-only, and on losing that race catch up with the records written since and try
//! again.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use object_store::{PutMode, PutPayload};
use recarch_failure::RetryPolicy;
use serde_json::{Map, Value};

use super::merkle::{Frontier, MerkleHash};
use super::note::LedgerSigner;
use super::record::{Actor, LEDGER_SCHEMA, Leaf, LedgerEvent, LedgerRecord, check_leaf_key};
use crate::layout::{self, path};
use crate::{Archive, Sha256Digest, StoreError};

/// How an append that lost the race for its sequence number is tried again: up to 64
/// attempts (each loss means another writer's record went in, so the chain moves on), with
/// short jittered waits that spread the contenders out.
fn append_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 64,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(250),
        max_total: Duration::from_secs(120),
    }
}

/// What the next record extends: its sequence number, the digest of the record before it,
/// and the tree so far. Kept in the [`Archive`] (shared by clones) once read.
#[derive(Debug, Clone)]
pub(crate) struct Tip {
    /// The next record's `seq`.
    next: u64,
    /// SHA-256 of the bytes of record `next - 1`; `None` when `next` is 0.
    prev: Option<Sha256Digest>,
    /// The tree over every leaf of records `0..next`.
    frontier: Frontier,
}

impl Tip {
    fn empty() -> Self {
        Self {
            next: 0,
            prev: None,
            frontier: Frontier::new(),
        }
    }

    /// The tip after the record `bytes` stored under `key`, which must be a record whose
    /// stored frontier agrees with its `treeSize` and `root`: it is what the next record
    /// extends, and one that does not add up cannot be extended.
    fn after(key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        let unusable = |reason: String| {
            StoreError::corrupt(
                key,
                format!("{reason}; the ledger cannot be extended past it: check it with `recarch verify`"),
            )
        };
        let record = LedgerRecord::parse(key, bytes).map_err(|e| match e {
            StoreError::Corrupt { reason, .. } => unusable(reason),
            other => other,
        })?;
        if Some(record.seq) != layout::seq_of_ledger_key(key) {
            return Err(unusable(format!("it says it is record {}", record.seq)));
        }
        let frontier = Frontier::from_parts(key, record.tree_size, record.frontier).map_err(|e| match e {
            StoreError::Rejected { reason, .. } => unusable(reason),
            other => other,
        })?;
        if frontier.root() != record.root {
            return Err(unusable("its frontier does not hash to its root".into()));
        }
        let next = record
            .seq
            .checked_add(1)
            .ok_or_else(|| unusable("no record can follow the last number there is".into()))?;
        Ok(Self {
            next,
            prev: Some(Sha256Digest::of(bytes)),
            frontier,
        })
    }
}

/// A record [`Archive::append_ledger`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Its key, `ledger/<seq>.json`.
    pub key: String,
    /// SHA-256 of its bytes (the next record's `prev`).
    pub sha256: Sha256Digest,
    /// Leaves of every record up to and including it.
    pub tree_size: u64,
    /// The root over them.
    pub root: MerkleHash,
    /// How many writes it took (more than 1 when other writers took the numbers tried).
    pub attempts: u32,
}

/// The newest record, as [`Archive::ledger_head`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerHead {
    /// Its sequence number.
    pub seq: u64,
    /// SHA-256 of its bytes.
    pub sha256: Sha256Digest,
    /// Leaves of every record so far.
    pub tree_size: u64,
    /// The root over them.
    pub root: MerkleHash,
}

impl Archive {
    /// Appends a record of `event` by `actor` with `leaves` (in the order their objects were
    /// written) and `details`, signed by `signer` when given, and returns what was written.
    ///
    /// The record extends the newest one: its `prev` is that record's digest, and its tree
    /// extends that record's `frontier` by `leaves`, so nothing older is read. The head is
    /// found once per process ([`Archive::ledger_head`]) and remembered, with clones sharing
    /// it; appends from one process take turns. The record is written create-only as
    /// `ledger/<head + 1>.json`; when another writer (another shard, another process) took that
    /// number, the records written since are read, and the append is tried again on top of
    /// the newest, so concurrent appenders form one chain and lose no leaf.
    ///
    /// A write whose outcome is unknown (a timeout) is an error; the next append catches up
    /// with the chain whether or not it went in, so calling again may log `leaves` twice,
    /// never lose them.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a leaf key outside the logged prefixes;
    /// [`StoreError::Corrupt`] when the newest record cannot be extended (it does not parse,
    /// or its frontier does not add up); [`StoreError::Precondition`] when other writers
    /// kept taking the next number; store failures ([`StoreError::Unsupported`] on a store
    /// without create-only writes).
    pub async fn append_ledger(
        &self,
        event: LedgerEvent,
        actor: &Actor,
        leaves: Vec<Leaf>,
        details: Map<String, Value>,
        signer: Option<&LedgerSigner>,
    ) -> Result<AppendedRecord, StoreError> {
        for leaf in &leaves {
            check_leaf_key(&leaf.key)?;
        }
        let hashes: Vec<MerkleHash> = leaves.iter().map(Leaf::hash).collect();
        let mut record = LedgerRecord {
            schema: LEDGER_SCHEMA.into(),
            seq: 0,
            prev: None,
            time: Utc::now(),
            event,
            actor: actor.clone(),
            leaves,
            tree_size: 0,
            root: super::merkle::empty_root(),
            frontier: Vec::new(),
            details,
            checkpoint: None,
        };

        let mut cached = self.ledger_tip.lock().await;
        let policy = append_retry();
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tip = match cached.take() {
                Some(tip) => tip,
                None => self.find_tip().await?,
            };
            let mut frontier = tip.frontier.clone();
            for hash in &hashes {
                frontier.push(*hash);
            }
            record.seq = tip.next;
            record.prev = tip.prev;
            record.time = Utc::now();
            record.tree_size = frontier.size();
            record.root = frontier.root();
            record.frontier = frontier.hashes().to_vec();
            record.checkpoint = signer.map(|s| s.sign_tree_head(record.tree_size, &record.root));

            let key = layout::ledger_key(record.seq);
            let body = record_bytes(&key, &record)?;
            let sha256 = Sha256Digest::of(&body);
            let written = self
                .store
                .put_opts(&path(&key), PutPayload::from(body.clone()), PutMode::Create.into())
                .await;
            let written = match written {
                // Another error may still mean the number was taken (on local disk, a sweep of
                // interrupted writes by another process may remove this write's temporary
                // once the record it was for exists), or that this very write went in (a
                // response lost after the object was stored): what is there tells.
                Err(e)
                    if !matches!(
                        e,
                        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
                    ) =>
                {
                    match self.get_bytes(&key).await {
                        Ok(Some(there)) if there.as_ref() == body.as_slice() => Ok(None),
                        Ok(Some(_)) => Err(object_store::Error::AlreadyExists {
                            path: key.clone(),
                            source: Box::new(e),
                        }),
                        _ => Err(e),
                    }
                }
                other => other.map(|w| w.version),
            };
            match written {
                Ok(version) => {
                    *cached = Some(Tip {
                        // At the last number there is, the next append fails on it.
                        next: record.seq.saturating_add(1),
                        prev: Some(sha256),
                        frontier,
                    });
                    // Locked with everything else (see the `worm` module): appended, but not
                    // done until it is.
                    if let Some(policy) = self.worm {
                        self.lock_new(&key, version.as_deref(), policy.lock_from(record.time))
                            .await?;
                    }
                    return Ok(AppendedRecord {
                        seq: record.seq,
                        key,
                        sha256,
                        tree_size: record.tree_size,
                        root: record.root,
                        attempts: attempt,
                    });
                }
                // Azure may refuse a create-only write onto an existing blob with 412.
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    tracing::debug!(key = %key, attempt, "ledger record number taken by another writer; catching up");
                    // On failure the tip stays unknown, and the next append finds it afresh.
                    *cached = Some(self.catch_up(tip).await?);
                    if !policy.wait_before_retry(attempt, started.elapsed(), None, |_| ()).await {
                        return Err(StoreError::Precondition { key });
                    }
                }
                Err(e) => {
                    *cached = Some(tip);
                    return Err(StoreError::from_backend(&key, e));
                }
            }
        }
    }

    /// The newest ledger record, or `None` for an empty ledger. Reads the records written
    /// since this process last looked (the first call finds the head in O(log n) requests:
    /// see the `ledger` module), and remembers the head for [`Archive::append_ledger`].
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the newest record cannot be extended; store failures.
    pub async fn ledger_head(&self) -> Result<Option<LedgerHead>, StoreError> {
        let mut cached = self.ledger_tip.lock().await;
        let tip = match cached.take() {
            Some(tip) => self.catch_up(tip).await?,
            None => self.find_tip().await?,
        };
        let head = tip.prev.map(|sha256| LedgerHead {
            seq: tip.next - 1,
            sha256,
            tree_size: tip.frontier.size(),
            root: tip.frontier.root(),
        });
        *cached = Some(tip);
        Ok(head)
    }

    /// The sequence number the next record would get, as this process last saw the ledger
    /// (finding the head first when it has not looked yet). Cheap: no request once known.
    pub(crate) async fn ledger_next_seq(&self) -> Result<u64, StoreError> {
        let mut cached = self.ledger_tip.lock().await;
        let tip = match cached.take() {
            Some(tip) => tip,
            None => self.find_tip().await?,
        };
        let next = tip.next;
        *cached = Some(tip);
        Ok(next)
    }

    /// Reads the records after `tip`, one by one until the first absent number, and returns
    /// the tip after the last one.
    pub(crate) async fn catch_up(&self, mut tip: Tip) -> Result<Tip, StoreError> {
        loop {
            let key = layout::ledger_key(tip.next);
            match self.get_bytes(&key).await? {
                Some(bytes) => tip = Tip::after(&key, &bytes)?,
                None => return Ok(tip),
            }
        }
    }

    /// Finds the newest record and the tip after it.
    async fn find_tip(&self) -> Result<Tip, StoreError> {
        let tip = match self.find_head_seq().await? {
            None => Tip::empty(),
            Some(head) => {
                let key = layout::ledger_key(head);
                match self.get_bytes(&key).await? {
                    Some(bytes) => Tip::after(&key, &bytes)?,
                    // Listed, then gone: only a deletion does that; start over.
                    None => return Err(StoreError::corrupt(&key, "listed, then gone when read")),
                }
            }
        };
        // Records appended since the head was found.
        self.catch_up(tip).await
    }

    /// The highest record number in `ledger/`, in O(log n) requests: HEAD requests double
    /// the number until one is absent and bisect between the last present and the first
    /// absent, then one listing of the keys after the number found (a single request on S3
    /// and Azure, which list from an offset) catches any record beyond a hole in the chain.
    async fn find_head_seq(&self) -> Result<Option<u64>, StoreError> {
        let exists = |seq: u64| async move {
            let key = layout::ledger_key(seq);
            Ok::<_, StoreError>(self.head(&key).await?.is_some())
        };
        let mut found = None;
        if exists(0).await? {
            // Invariant: `low` exists, `high` does not (or is past every u64 probed).
            let (mut low, mut high) = (0u64, 1u64);
            while exists(high).await? {
                low = high;
                match high.checked_mul(2) {
                    Some(next) => high = next,
                    None => break,
                }
            }
            while high - low > 1 {
                let mid = low + (high - low) / 2;
                if exists(mid).await? {
                    low = mid;
                } else {
                    high = mid;
                }
            }
            found = Some(low);
        }
        let prefix = path(layout::LEDGER);
        let mut listed = match found {
            Some(seq) => self
                .store
                .list_with_offset(Some(&prefix), &path(&layout::ledger_key(seq))),
            None => self.store.list(Some(&prefix)),
        };
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(|e| StoreError::from_backend(layout::LEDGER, e))?;
            if let Some(seq) = layout::seq_of_ledger_key(meta.location.as_ref()) {
                found = found.max(Some(seq));
            }
        }
        Ok(found)
    }
}

/// A record as stored: pretty JSON and a newline, like every document of the archive.
fn record_bytes(key: &str, record: &LedgerRecord) -> Result<Vec<u8>, StoreError> {
    let mut body = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Rejected {
        key: key.to_owned(),
        reason: format!("cannot serialize: {e}"),
    })?;
    body.push(b'\n');
    Ok(body)
}
