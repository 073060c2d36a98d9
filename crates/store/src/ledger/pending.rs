//! Ledger intents and recovery: what a killed run wrote and did not log is logged by the
//! next run of its shard (see the `ledger` module's docs for the design).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore as _, ObjectStoreExt as _};
use serde::{Deserialize, Serialize};
use serde_json::Map;

use super::chain::AppendedRecord;
use super::note::LedgerSigner;
use super::record::{Actor, Leaf, LedgerEvent, LedgerRecord, check_leaf_key};
use crate::archive::to_json;
use crate::layout::{self, path};
use crate::worm::ObjectLock;
use crate::{Archive, Sha256Digest, ShardId, StoreError};

/// Schema tag of ledger intents.
pub const LEDGER_INTENT_SCHEMA: &str = "recarch.ledger-intent.v1";

/// Objects read at once when recovering.
const RECOVER_READS: usize = 8;
/// How long before its intent a record may have logged an object that the intent names and
/// that looks written after it. Stores keep modification times in whole seconds (S3's
/// `Last-Modified`), so an object written in the second before the intent can look written
/// after it; records of the few seconds before the oldest intent are read too, so that such
/// an object, already logged, is not logged again. (Logging it twice would be harmless, only
/// redundant: never is one lost.)
const RECENT: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// The document `state/ledger/<shard>/<time>-<random>.json`: keys a run is about to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntentDoc {
    /// Always [`LEDGER_INTENT_SCHEMA`].
    schema: String,
    /// The shard whose run wrote it.
    shard: ShardId,
    /// The next ledger record number when it was written: a record that logs these keys
    /// has this number or a higher one.
    ledger_next: u64,
    /// When it was written (for people; recovery uses the store's own time of the object).
    written_at: DateTime<Utc>,
    /// The keys about to be written, in the order they will be.
    keys: Vec<String>,
}

/// An intent written by [`Archive::ledger_intend`]: a promise that its keys will be logged.
/// Hand it back to [`Archive::ledger_settle`] once a record ([`Archive::append_ledger`]) logs
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an intent is settled by Archive::ledger_settle; otherwise the next run logs its keys as recovered"]
pub struct LedgerIntent {
    /// The intent document's key.
    key: String,
}

impl LedgerIntent {
    /// The intent document's key, `state/ledger/<shard>/<time>-<random>.json`.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// What [`Archive::recover_ledger`] found and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The `recover` record.
    pub record: AppendedRecord,
    /// Intent documents the killed runs left.
    pub intents: usize,
    /// Keys they named.
    pub intended: usize,
    /// Leaves logged: objects written after their intent and not logged since.
    pub recovered: usize,
    /// Their keys, in the order logged.
    pub keys: Vec<String>,
    /// Every key the intents named that was written after its intent, whether this record
    /// logs it or an earlier one did (a run may log an object and die before doing what
    /// follows from it, such as cataloging a manifest), in intent order.
    pub written: Vec<String>,
    /// The intents, still in place: settle them ([`Archive::ledger_settle`]) once what
    /// follows from `written` is done, so that a run killed before that finds them again
    /// (its recovery then logs nothing new, and hands back the same `written`).
    pub left: Vec<LedgerIntent>,
}

impl Archive {
    /// Records that the run of `shard` is about to write `keys` (in that order), before
    /// writing any of them: one small document, `state/ledger/<shard>/<time>-<random>.json`.
    /// Once they are written and a record logs them ([`Archive::append_ledger`]), settle the
    /// intent ([`Archive::ledger_settle`]); if the run dies first, [`Archive::recover_ledger`] logs those that were written.
    ///
    /// Name every key that may be written, whether or not it will be (a key not written is
    /// simply not recovered); a key left out is never recovered. Costs one PUT and no read
    /// once the ledger head is known.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a key outside the logged prefixes; store failures.
    pub async fn ledger_intend(&self, shard: &ShardId, keys: Vec<String>) -> Result<LedgerIntent, StoreError> {
        for key in &keys {
            check_leaf_key(key)?;
        }
        let now = Utc::now();
        let doc = IntentDoc {
            schema: LEDGER_INTENT_SCHEMA.into(),
            shard: shard.clone(),
            ledger_next: self.ledger_next_seq().await?,
            written_at: now,
            keys,
        };
        let key = layout::ledger_intent_key(shard, now);
        let body = to_json(&key, &doc)?;
        self.store
            .put(&path(&key), body)
            .await
            .map_err(|e| StoreError::from_backend(&key, e))?;
        Ok(LedgerIntent { key })
    }

    /// Settles `intents` (deletes their documents) once a record ([`Archive::append_ledger`])
    /// logs what their pages wrote, the usual way a run logs a page, or without a record when
    /// their pages wrote nothing (every item was there already). When the append fails, do
    /// not settle: the intents are left for recovery. A document that cannot be deleted is
    /// only read again by the next run's recovery, and is reported as a warning.
    pub async fn ledger_settle(&self, intents: Vec<LedgerIntent>) {
        for intent in intents {
            if let Err(e) = self.delete_quietly(&intent.key).await {
                tracing::warn!(key = %intent.key, error = %e, "cannot delete a settled ledger intent; the next run of the shard will read it");
            }
        }
    }

    /// Logs what killed runs of `shard` wrote and did not log: call it first thing, holding
    /// the shard's lease, before anything else is written. `Ok(None)` when they left no
    /// intent (the usual case: one listing of an empty prefix).
    ///
    /// For each intent left, each key it names is read: an object written after the intent
    /// (by the store's clock) whose digest no record since the intent logs under that key
    /// becomes a leaf of one `recover` record by `actor`, in intent order. The intents are
    /// left in place for the caller to settle once it has done what follows from the keys
    /// written ([`Recovery::written`]). The record is appended even with no leaf, as the trail of the run that
    /// died. Reads the intents, the records appended since the oldest of them (and those of
    /// the few seconds before it: stores that keep modification times in whole seconds make
    /// an object written just before an intent look written after it), and the objects
    /// named; never the whole ledger.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an intent that is not one (it is left in place: inspect
    /// it); as [`Archive::append_ledger`]; store failures.
    pub async fn recover_ledger(
        &self,
        shard: &ShardId,
        actor: &Actor,
        signer: Option<&LedgerSigner>,
    ) -> Result<Option<Recovery>, StoreError> {
        let prefix = layout::ledger_intent_prefix(shard);
        let mut listed: Vec<ObjectMeta> = self
            .store
            .list(Some(&path(&prefix)))
            .try_collect()
            .await
            .map_err(|e| StoreError::from_backend(&prefix, e))?;
        if listed.is_empty() {
            return Ok(None);
        }
        // Names start with the time written: this is the order the intents were written in.
        listed.sort_by(|a, b| a.location.cmp(&b.location));

        let mut intents = Vec::new();
        for meta in &listed {
            let key = meta.location.to_string();
            let Some((bytes, stored)) = self.get_with_meta(&key).await? else {
                continue; // Deleted since listed: settled by a run that was logging it after all.
            };
            let doc: IntentDoc = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::corrupt(&key, format!("not a ledger intent: {e}")))?;
            if doc.schema != LEDGER_INTENT_SCHEMA || &doc.shard != shard {
                return Err(StoreError::corrupt(
                    &key,
                    format!("not a ledger intent of shard {shard} ({LEDGER_INTENT_SCHEMA})"),
                ));
            }
            intents.push((key, stored.last_modified, doc));
        }

        // Each key once, at its first intent, with the time of that intent.
        let mut seen = HashSet::new();
        let mut wanted: Vec<(String, DateTime<Utc>)> = Vec::new();
        for (_, written, doc) in &intents {
            for key in &doc.keys {
                if seen.insert(key.clone()) {
                    wanted.push((key.clone(), *written));
                }
            }
        }
        let intended = wanted.len();
        let since = intents.iter().map(|(_, _, doc)| doc.ledger_next).min().unwrap_or(0);
        let first_written = intents
            .iter()
            .map(|(_, _, doc)| doc.written_at)
            .min()
            .unwrap_or_else(Utc::now);
        let logged = self.logged_around(since, first_written - RECENT, &seen).await?;
        drop(seen);

        // What the killed runs wrote: present and written after the intent; logged since or
        // not (only the latter become leaves).
        // With a lock policy, the locks each one (and a manifest's blob) should have, from the
        // bytes read here.
        let written: Vec<(Leaf, Vec<(String, ObjectLock)>)> = futures::stream::iter(wanted)
            .map(|(key, intended_at)| async move {
                let Some((bytes, meta)) = self.get_with_meta(&key).await? else {
                    return Ok(None);
                };
                if meta.last_modified < intended_at {
                    return Ok(None); // There before the intent: not the killed run's.
                }
                let sha256 = Sha256Digest::of(&bytes);
                let locks = self.locks_of_written(&key, &bytes);
                Ok::<_, StoreError>(Some((Leaf { key, sha256 }, locks)))
            })
            .buffered(RECOVER_READS)
            .try_filter_map(|leaf| futures::future::ready(Ok(leaf)))
            .try_collect()
            .await?;
        let written_keys: Vec<String> = written.iter().map(|(l, _)| l.key.clone()).collect();
        // A killed run may have written them and died before locking them: locked at least as
        // long as they would have been, never shorter than they are.
        for (key, lock) in written.iter().flat_map(|(_, locks)| locks) {
            self.lock_at_least(key, *lock).await?;
        }
        let leaves: Vec<Leaf> = written
            .into_iter()
            .map(|(leaf, _)| leaf)
            .filter(|leaf| !logged.contains(&(leaf.key.clone(), leaf.sha256)))
            .collect();

        let recovered = leaves.len();
        let keys: Vec<String> = leaves.iter().map(|l| l.key.clone()).collect();
        let mut details = Map::new();
        details.insert("shard".into(), shard.as_str().into());
        details.insert("intents".into(), intents.len().into());
        details.insert("intended".into(), intended.into());
        details.insert("recovered".into(), recovered.into());
        details.insert("since".into(), since.into());
        let record = self
            .append_ledger(LedgerEvent::Recover, actor, leaves, details, signer)
            .await?;
        Ok(Some(Recovery {
            record,
            intents: intents.len(),
            intended,
            recovered,
            keys,
            written: written_keys,
            left: intents.into_iter().map(|(key, _, _)| LedgerIntent { key }).collect(),
        }))
    }

    /// With a lock policy, the locks the object written as `bytes` at `key` should have: its
    /// own (see `lock_of`), and a manifest's blob the same.
    fn locks_of_written(&self, key: &str, bytes: &bytes::Bytes) -> Vec<(String, ObjectLock)> {
        let Some(lock) = self.lock_of(key, &object_store::PutPayload::from(bytes.clone())) else {
            return Vec::new();
        };
        let mut locks = vec![(key.to_owned(), lock)];
        if key.starts_with(layout::MANIFEST_ROOT)
            && let Ok(manifest) = serde_json::from_slice::<crate::Manifest>(bytes)
        {
            locks.push((layout::blob_key(&manifest.content.sha256), lock));
        }
        locks
    }

    /// The `(key, digest)` leaves among `keys` that records `since..` log (read in order
    /// until the first absent one), and those that the records just before `since` made at
    /// or after `not_before` log (read backwards until an older one).
    async fn logged_around(
        &self,
        since: u64,
        not_before: DateTime<Utc>,
        keys: &HashSet<String>,
    ) -> Result<HashSet<(String, Sha256Digest)>, StoreError> {
        let mut logged = HashSet::new();
        let mut add = |record: LedgerRecord| {
            logged.extend(
                record
                    .leaves
                    .into_iter()
                    .filter(|leaf| keys.contains(&leaf.key))
                    .map(|leaf| (leaf.key, leaf.sha256)),
            );
        };
        for seq in (0..since).rev() {
            let key = layout::ledger_key(seq);
            let Some(bytes) = self.get_bytes(&key).await? else {
                break;
            };
            let record = LedgerRecord::parse(&key, &bytes)?;
            if record.time < not_before {
                break;
            }
            add(record);
        }
        for seq in since.. {
            let key = layout::ledger_key(seq);
            let Some(bytes) = self.get_bytes(&key).await? else {
                break;
            };
            add(LedgerRecord::parse(&key, &bytes)?);
        }
        Ok(logged)
    }
}
