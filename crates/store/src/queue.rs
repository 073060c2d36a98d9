//! Retry queues and dead letters: one small document per failed item.
//!
//! ```text
//! state/<kind>/<organizer>.json                      checkpoint (OrganizerState)
//! state/<kind>/<organizer>/queue/<hex sha256 id>.json   one QueuedItem: retried first next run
//! state/<kind>/<organizer>/dead/<hex sha256 id>.json    one DeadLetter: never retried automatically
//! ```
//!
//! Why one document per item: the id's hash names the document, so an item is queued at most
//! once by construction; queueing, updating or removing an item writes or deletes that one
//! document, so a page of changes costs O(changed items), never O(queue); and every write is a
//! single atomic put or delete, so a run killed at any instant leaves each entry either as it
//! was or as it became — never a half-written queue. Moves between the lists write the new
//! document first and delete the old one second: a kill in between leaves the item on both
//! lists, and [`Archive::list_queued`] drops (and deletes) a queue entry whose dead letter
//! exists, so the dead letter wins.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt as _, PutPayload};

use crate::archive::to_json;
use crate::layout::{self, ItemList, path};
use crate::{Archive, DEAD_LETTER_SCHEMA, DeadLetter, Kind, OrganizerId, QUEUED_SCHEMA, QueuedItem, StoreError};

/// How many queue or dead-letter documents are read at once.
const READ_CONCURRENCY: usize = 16;

/// What one listing of `state/<kind>/` says about an organizer, without reading documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateOverview {
    /// Whether a checkpoint document exists.
    pub has_checkpoint: bool,
    /// Queue entries.
    pub queued: usize,
    /// Dead letters.
    pub dead: usize,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueuedDoc<T> {
    schema: String,
    kind: Kind,
    organizer_id: OrganizerId,
    #[serde(flatten)]
    entry: T,
}

impl Archive {
    /// Queues `item` for `organizer` (or replaces its entry): one atomic put.
    ///
    /// # Errors
    /// Store failures.
    pub async fn put_queued(&self, kind: Kind, organizer: &OrganizerId, item: &QueuedItem) -> Result<(), StoreError> {
        let key = layout::item_list_key(kind, organizer, ItemList::Queue, &item.id);
        self.put_doc(&key, QUEUED_SCHEMA, kind, organizer, item).await
    }

    /// Removes `id` from `organizer`'s queue; absent is fine.
    ///
    /// # Errors
    /// Store failures.
    pub async fn remove_queued(&self, kind: Kind, organizer: &OrganizerId, id: &str) -> Result<(), StoreError> {
        self.delete_quietly(&layout::item_list_key(kind, organizer, ItemList::Queue, id))
            .await
    }

    /// Every queue entry of `organizer`. An entry that cannot be read as a queue entry of
    /// this organizer is an inner [`StoreError::Corrupt`] (the rest is still returned); an
    /// entry whose item is dead-lettered too (a move interrupted by a kill) is deleted and not
    /// returned.
    ///
    /// # Errors
    /// Listing failures.
    pub async fn list_queued(
        &self,
        kind: Kind,
        organizer: &OrganizerId,
    ) -> Result<Vec<Result<QueuedItem, StoreError>>, StoreError> {
        let dead = self.dead_letter_keys(kind, organizer).await?;
        let entries: Vec<Result<QueuedItem, StoreError>> =
            self.read_list(kind, organizer, ItemList::Queue, QUEUED_SCHEMA).await?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            match entry {
                Ok(item) if dead.contains(&layout::item_key(&item.id)) => {
                    self.remove_queued(kind, organizer, &item.id).await?;
                }
                other => out.push(other),
            }
        }
        Ok(out)
    }

    /// The hex keys ([`layout::item_key`](crate::item_key)) of `organizer`'s dead letters, from
    /// one listing.
    ///
    /// # Errors
    /// Listing failures.
    pub async fn dead_letter_keys(&self, kind: Kind, organizer: &OrganizerId) -> Result<HashSet<String>, StoreError> {
        let prefix = layout::item_list_prefix(kind, organizer, ItemList::Dead);
        self.store
            .list(Some(&path(&prefix)))
            .map_err(|e| StoreError::from_backend(&prefix, e))
            .try_filter_map(|meta| {
                let key = meta.location.to_string();
                let name = match layout::parse_state_key(kind, &key) {
                    Some((_, Some((ItemList::Dead, name)))) => Some(name),
                    _ => None,
                };
                futures::future::ready(Ok(name))
            })
            .try_collect()
            .await
    }

    /// Moves `item` to `organizer`'s dead letters with `reason`: the dead letter is written
    /// first, then the queue entry removed.
    ///
    /// # Errors
    /// Store failures.
    pub async fn dead_letter(
        &self,
        kind: Kind,
        organizer: &OrganizerId,
        item: QueuedItem,
        reason: &str,
    ) -> Result<DeadLetter, StoreError> {
        let id = item.id.clone();
        let letter = DeadLetter {
            item,
            dead_lettered_at: Utc::now(),
            reason: reason.to_owned(),
        };
        let key = layout::item_list_key(kind, organizer, ItemList::Dead, &id);
        self.put_doc(&key, DEAD_LETTER_SCHEMA, kind, organizer, &letter).await?;
        self.remove_queued(kind, organizer, &id).await?;
        Ok(letter)
    }

    /// Every dead letter of `organizer` (unreadable ones as inner errors).
    ///
    /// # Errors
    /// Listing failures.
    pub async fn list_dead_letters(
        &self,
        kind: Kind,
        organizer: &OrganizerId,
    ) -> Result<Vec<Result<DeadLetter, StoreError>>, StoreError> {
        self.read_list(kind, organizer, ItemList::Dead, DEAD_LETTER_SCHEMA)
            .await
    }

    /// Moves a dead letter back to the queue with fresh attempt counts (its first failure
    /// time and last error are kept): the queue entry is written first, then the dead letter
    /// removed. Returns the revived entry.
    ///
    /// # Errors
    /// Store failures.
    pub async fn revive_dead_letter(
        &self,
        kind: Kind,
        organizer: &OrganizerId,
        letter: DeadLetter,
    ) -> Result<QueuedItem, StoreError> {
        let mut item = letter.item;
        item.attempts = 0;
        item.permanent_failures = 0;
        self.put_queued(kind, organizer, &item).await?;
        self.delete_quietly(&layout::item_list_key(kind, organizer, ItemList::Dead, &item.id))
            .await?;
        Ok(item)
    }

    /// One listing of `state/<kind>/`: how many queue entries and dead letters the organizers
    /// that `counted` accepts have, in all. Holds nothing per organizer (unlike
    /// [`Archive::state_overview`]), so its memory does not grow with the organizers.
    ///
    /// # Errors
    /// Listing failures.
    pub async fn queue_totals(
        &self,
        kind: Kind,
        counted: impl Fn(&OrganizerId) -> bool,
    ) -> Result<(u64, u64), StoreError> {
        let prefix = layout::state_prefix(kind);
        let (mut queued, mut dead) = (0, 0);
        let mut listing = self.store.list(Some(&path(&prefix)));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| StoreError::from_backend(&prefix, e))?;
            match layout::parse_state_key(kind, meta.location.as_ref()) {
                Some((org, Some((ItemList::Queue, _)))) if counted(&org) => queued += 1,
                Some((org, Some((ItemList::Dead, _)))) if counted(&org) => dead += 1,
                _ => {}
            }
        }
        Ok((queued, dead))
    }

    /// One listing of `state/<kind>/`: per organizer, whether it has a checkpoint and how many
    /// queue entries and dead letters. Reads no document, so it answers quickly for many
    /// thousands of organizers.
    ///
    /// # Errors
    /// Listing failures.
    pub async fn state_overview(&self, kind: Kind) -> Result<BTreeMap<OrganizerId, StateOverview>, StoreError> {
        let prefix = layout::state_prefix(kind);
        let mut out: BTreeMap<OrganizerId, StateOverview> = BTreeMap::new();
        let mut listing = self.store.list(Some(&path(&prefix)));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| StoreError::from_backend(&prefix, e))?;
            let Some((org, what)) = layout::parse_state_key(kind, meta.location.as_ref()) else {
                continue;
            };
            let entry = out.entry(org).or_default();
            match what {
                None => entry.has_checkpoint = true,
                Some((ItemList::Queue, _)) => entry.queued += 1,
                Some((ItemList::Dead, _)) => entry.dead += 1,
            }
        }
        Ok(out)
    }

    /// What the shard's earlier runs left (the last success), if anything.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a document that is not one; store failures.
    pub async fn load_shard_status(&self, shard: &crate::ShardId) -> Result<crate::ShardStatus, StoreError> {
        let key = layout::shard_status_key(shard);
        match self.get_bytes(&key).await? {
            None => Ok(crate::ShardStatus::default()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::corrupt(&key, format!("not a shard status document: {e}"))),
        }
    }

    /// Replaces the shard's status document (one atomic put, under the shard's lease).
    ///
    /// # Errors
    /// Store failures.
    pub async fn save_shard_status(
        &self,
        shard: &crate::ShardId,
        status: &crate::ShardStatus,
    ) -> Result<(), StoreError> {
        self.put_json(&layout::shard_status_key(shard), status).await
    }

    /// The shard's copy of the directory, if any.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a document that is not one; store failures.
    pub async fn load_directory(&self, shard: &crate::ShardId) -> Result<Option<crate::DirectoryState>, StoreError> {
        let key = layout::directory_key(shard);
        let Some(bytes) = self.get_bytes(&key).await? else {
            return Ok(None);
        };
        let state: crate::DirectoryState = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::corrupt(&key, format!("not a directory document: {e}")))?;
        if state.schema != crate::DIRECTORY_SCHEMA {
            return Err(StoreError::corrupt(
                &key,
                format!("unsupported schema {:?}", state.schema),
            ));
        }
        Ok(Some(state))
    }

    /// Replaces the shard's copy of the directory (one atomic put; the shard's lease keeps
    /// writers apart).
    ///
    /// # Errors
    /// Store failures.
    pub async fn save_directory(
        &self,
        shard: &crate::ShardId,
        state: &crate::DirectoryState,
    ) -> Result<(), StoreError> {
        let key = layout::directory_key(shard);
        let mut state = state.clone();
        state.schema = crate::DIRECTORY_SCHEMA.to_owned();
        state.updated_at = Some(Utc::now());
        self.put_json(&key, &state).await
    }

    /// Replaces `key` with `value` as JSON: one atomic put.
    async fn put_json<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let body: PutPayload = to_json(key, value)?;
        self.store
            .put(&path(key), body)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::from_backend(key, e))
    }

    async fn put_doc<T: serde::Serialize>(
        &self,
        key: &str,
        schema: &str,
        kind: Kind,
        organizer: &OrganizerId,
        entry: &T,
    ) -> Result<(), StoreError> {
        let doc = QueuedDoc {
            schema: schema.to_owned(),
            kind,
            organizer_id: organizer.clone(),
            entry,
        };
        self.put_json(key, &doc).await
    }

    async fn read_list<T: serde::de::DeserializeOwned + HasId>(
        &self,
        kind: Kind,
        organizer: &OrganizerId,
        list: ItemList,
        schema: &'static str,
    ) -> Result<Vec<Result<T, StoreError>>, StoreError> {
        let prefix = layout::item_list_prefix(kind, organizer, list);
        self.list_and_read(&prefix, |_| true, READ_CONCURRENCY)
            .map_ok(|(key, read)| read.and_then(|bytes| parse_doc::<T>(&key, &bytes, schema, kind, organizer, list)))
            .try_collect()
            .await
    }
}

/// Entries whose id names their document.
trait HasId {
    fn id(&self) -> &str;
}

impl HasId for QueuedItem {
    fn id(&self) -> &str {
        &self.id
    }
}

impl HasId for DeadLetter {
    fn id(&self) -> &str {
        &self.item.id
    }
}

fn parse_doc<T: serde::de::DeserializeOwned + HasId>(
    key: &str,
    bytes: &[u8],
    schema: &str,
    kind: Kind,
    organizer: &OrganizerId,
    list: ItemList,
) -> Result<T, StoreError> {
    let doc: QueuedDoc<T> =
        serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(key, format!("not a {schema} document: {e}")))?;
    if doc.schema != schema {
        return Err(StoreError::corrupt(
            key,
            format!("unsupported schema {:?} (this version reads {schema:?})", doc.schema),
        ));
    }
    let expected = layout::item_list_key(doc.kind, &doc.organizer_id, list, doc.entry.id());
    if expected != key || doc.kind != kind || &doc.organizer_id != organizer {
        return Err(StoreError::corrupt(
            key,
            format!("its kind, organizer and id belong at {expected}"),
        ));
    }
    Ok(doc.entry)
}
