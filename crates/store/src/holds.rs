//! Legal holds: `holds/<hex SHA-256 of the matter>/<YYYYMMDDTHHMMSS.mmmZ>-<64 random bits>.json`,
//! one record per action (a hold placed, or released), written create-only and never
//! rewritten, so the history of every matter stays in the archive (and, since `holds/` is a
//! logged prefix, in the ledger). What a record covers is its `filters`, as the binary states
//! them; the store keeps them verbatim. A matter is active when its newest record places it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::layout::path;
use crate::{Archive, StoreError};

/// `schema` of a hold record.
pub const HOLD_SCHEMA: &str = "recarch.hold.v1";
/// The prefix of hold records.
const HOLDS: &str = "holds";
/// Records read at once.
const READS: usize = 8;

/// What a hold record does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HoldAction {
    /// The matter holds what its filters select (added to what earlier `place` records of
    /// the matter selected, if it is still active).
    Place,
    /// The matter holds nothing any more.
    Release,
}

/// One action on a matter's legal hold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HoldRecord {
    /// Always [`HOLD_SCHEMA`].
    pub schema: String,
    /// The matter's name, as given.
    pub matter: String,
    /// Placed or released.
    pub action: HoldAction,
    /// When.
    pub time: DateTime<Utc>,
    /// Who (user, host, tool version).
    pub actor: Value,
    /// Why, as the person said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What a `place` covers: the filters, as the binary states them.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub filters: Value,
    /// How many items the filters selected when the record was written.
    #[serde(default)]
    pub items: u64,
}

/// A record as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredHold {
    /// Its key.
    pub key: String,
    /// The record.
    pub record: HoldRecord,
}

/// A matter's state: its records, oldest first, and whether it holds anything now.
#[derive(Clone, Debug, PartialEq)]
pub struct Matter {
    /// The matter's name.
    pub name: String,
    /// Every record of the matter, oldest first.
    pub records: Vec<StoredHold>,
}

impl Matter {
    /// Whether the newest record places the hold.
    pub fn is_active(&self) -> bool {
        self.records
            .last()
            .is_some_and(|r| r.record.action == HoldAction::Place)
    }

    /// The `place` records since the last release: what the matter holds now (nothing when
    /// it is released).
    pub fn active_places(&self) -> &[StoredHold] {
        let since = self
            .records
            .iter()
            .rposition(|r| r.record.action == HoldAction::Release)
            .map_or(0, |i| i + 1);
        &self.records[since..]
    }
}

/// The folder of a matter's records: `holds/<hex SHA-256 of the name>`.
pub fn matter_prefix(matter: &str) -> String {
    format!("{HOLDS}/{}", hex::encode(Sha256::digest(matter.as_bytes())))
}

impl Archive {
    /// A fresh key for `record`: `holds/<hex SHA-256 of the matter>/<its time>-<random>.json`
    /// (to name it in a ledger intent before [`Archive::put_hold`] writes it).
    pub fn hold_key(record: &HoldRecord) -> String {
        format!(
            "{}/{}-{:016x}.json",
            matter_prefix(&record.matter),
            record.time.format("%Y%m%dT%H%M%S%.3fZ"),
            fastrand::u64(..)
        )
    }

    /// Writes `record` at `key` (from [`Archive::hold_key`]), create-only.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a record that is not a hold record or a key that is not
    /// its matter's; store failures.
    pub async fn put_hold(&self, key: &str, record: &HoldRecord) -> Result<(), StoreError> {
        let key = key.to_owned();
        let in_folder = key
            .strip_prefix(&format!("{}/", matter_prefix(&record.matter)))
            .is_some_and(|name| !name.contains('/') && name.ends_with(".json"));
        if record.schema != HOLD_SCHEMA || record.matter.trim().is_empty() || !in_folder {
            return Err(StoreError::Rejected {
                key,
                reason: "not a hold record (schema, matter) at its matter's key".into(),
            });
        }
        let mut body = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Rejected {
            key: key.clone(),
            reason: format!("cannot encode a hold record: {e}"),
        })?;
        body.push(b'\n');
        self.put_new_logged(&key, body).await
    }

    /// Every matter with its records, by name. A record that cannot be read or parsed is an
    /// error naming it: holds decide what may be deleted, so none is skipped.
    ///
    /// # Errors
    /// Store failures; [`StoreError::Corrupt`] for a record that is not one.
    pub async fn matters(&self) -> Result<BTreeMap<String, Matter>, StoreError> {
        let keys: Vec<String> = self
            .store
            .list(Some(&path(HOLDS)))
            .map(|meta| meta.map(|m| m.location.to_string()))
            .try_collect()
            .await
            .map_err(|e| StoreError::from_backend(HOLDS, e))?;
        let stored: Vec<StoredHold> =
            futures::stream::iter(keys.into_iter().filter(|k| k.ends_with(".json")).map(|key| async move {
                let bytes = self
                    .get_bytes(&key)
                    .await?
                    .ok_or_else(|| StoreError::corrupt(key.clone(), "listed, then gone"))?;
                let record: HoldRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::corrupt(key.clone(), format!("not a hold record: {e}")))?;
                if !key.starts_with(&format!("{}/", matter_prefix(&record.matter))) {
                    return Err(StoreError::corrupt(
                        key.clone(),
                        format!(
                            "a record of matter {:?} stored under another matter's folder",
                            record.matter
                        ),
                    ));
                }
                Ok(StoredHold { key, record })
            }))
            .buffer_unordered(READS)
            .try_collect()
            .await?;
        let mut matters: BTreeMap<String, Matter> = BTreeMap::new();
        for hold in stored {
            matters
                .entry(hold.record.matter.clone())
                .or_insert_with(|| Matter {
                    name: hold.record.matter.clone(),
                    records: Vec::new(),
                })
                .records
                .push(hold);
        }
        for matter in matters.values_mut() {
            // Keys begin with the record's time at a fixed width: their order is the order
            // the actions were taken.
            matter.records.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Ok(matters)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::layout::path;
    use object_store::ObjectStoreExt as _;
    use object_store::PutPayload;

    fn record(matter: &str, action: HoldAction, secs: i64) -> HoldRecord {
        HoldRecord {
            schema: HOLD_SCHEMA.into(),
            matter: matter.into(),
            action,
            time: DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap(),
            actor: serde_json::json!({"user": "officer"}),
            reason: Some("SEC inquiry".into()),
            filters: serde_json::json!({"organizers": ["5ba1bfd8-a580-4fc2-a16f-77bec5dd988a"]}),
            items: 3,
        }
    }

    async fn put(archive: &Archive, record: HoldRecord) {
        archive.put_hold(&Archive::hold_key(&record), &record).await.unwrap();
    }

    #[tokio::test]
    async fn records_make_matters_and_a_release_ends_a_hold() {
        let archive = Archive::from_store(std::sync::Arc::new(object_store::memory::InMemory::new()), "memory://");
        assert!(archive.matters().await.unwrap().is_empty());
        put(&archive, record("Acme v. Us", HoldAction::Place, 0)).await;
        put(&archive, record("Acme v. Us", HoldAction::Place, 5)).await;
        put(&archive, record("SEC 2026-17", HoldAction::Place, 1)).await;
        put(&archive, record("SEC 2026-17", HoldAction::Release, 9)).await;
        let matters = archive.matters().await.unwrap();
        assert_eq!(matters.len(), 2);
        let acme = &matters["Acme v. Us"];
        assert!(acme.is_active());
        assert_eq!(acme.active_places().len(), 2);
        let sec = &matters["SEC 2026-17"];
        assert!(!sec.is_active());
        assert!(sec.active_places().is_empty());
        assert!(sec.records[0].key.starts_with(&matter_prefix("SEC 2026-17")));
        // Placed again after the release: only the new place counts.
        put(&archive, record("SEC 2026-17", HoldAction::Place, 20)).await;
        let sec = &archive.matters().await.unwrap()["SEC 2026-17"];
        assert_eq!(sec.active_places().len(), 1);
        assert_eq!(sec.records.len(), 3);
        // Every record went to the ledger's journal.
        assert_eq!(archive.take_leaves().len(), 5);
        // A record that is not one stops the reading, naming it.
        archive
            .object_store()
            .put(&path("holds/x/bad.json"), PutPayload::from_static(b"{}"))
            .await
            .unwrap();
        let e = archive.matters().await.unwrap_err();
        assert!(e.to_string().contains("holds/x/bad.json"), "{e}");
    }
}
