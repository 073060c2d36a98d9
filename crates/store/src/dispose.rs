//! What disposal (`recarch dispose`) needs of the store beyond [`Archive::dispose_object`]:
//! handing the leaves of the manifests about to be deleted to the next ledger record (the
//! `dispose` record, written before anything is deleted), and a small summary of every
//! disposal so far for `status` to read in one request.
//!
//! The summary is mutable state (`state/dispose.json`, rewritten by each disposal), like the
//! checkpoints beside it, never under a logged prefix: the ledger's `dispose` records are the
//! evidence, the summary only saves `status` from reading the whole ledger.

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt as _, PutPayload};
use serde::{Deserialize, Serialize};

use crate::ledger::Leaf;
use crate::{Archive, Sha256Digest, StoreError};

/// `schema` of the disposal summary.
pub const DISPOSAL_SCHEMA: &str = "recarch.disposal.v1";

/// The summary's key (built in `layout`, with every other).
const SUMMARY_KEY: &str = crate::layout::DISPOSAL_SUMMARY;

/// Every disposal so far, as `status` shows it: totals, and the newest disposal.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DisposalSummary {
    /// Always [`DISPOSAL_SCHEMA`].
    pub schema: String,
    /// Items disposed of (manifests deleted), in every disposal.
    pub items: u64,
    /// Blobs deleted.
    pub blobs: u64,
    /// Bytes of the blobs deleted.
    pub bytes: u64,
    /// The newest disposal that deleted anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<LastDisposal>,
}

/// One disposal, as the summary keeps the newest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastDisposal {
    /// When it ended.
    pub time: DateTime<Utc>,
    /// Its (first) `dispose` ledger record.
    pub record: String,
    /// Items it disposed of.
    pub items: u64,
    /// Blobs it deleted.
    pub blobs: u64,
    /// Bytes of those blobs.
    pub bytes: u64,
    /// Who ran it.
    pub user: String,
}

impl Archive {
    /// Hands the leaves of the manifests about to be disposed of (each key with the SHA-256
    /// of its bytes as they are now) to the next ledger record, in front of anything written
    /// since the last one: the caller appends the `dispose` record right after, before it
    /// deletes anything. `verify` takes a key whose newest leaf a `dispose` record holds to be
    /// gone on purpose.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a key that is not under `manifests/` (nothing is handed
    /// over then).
    pub fn journal_disposal(&self, manifests: &[(String, Sha256Digest)]) -> Result<(), StoreError> {
        let mut leaves = Vec::with_capacity(manifests.len());
        for (key, digest) in manifests {
            if !key.starts_with("manifests/") {
                return Err(StoreError::Rejected {
                    key: key.clone(),
                    reason: "only manifests are disposed of by key".into(),
                });
            }
            leaves.push(Leaf::new(key.clone(), *digest)?);
        }
        self.return_leaves(leaves);
        Ok(())
    }

    /// The disposal summary; `None` before the first disposal.
    ///
    /// # Errors
    /// Store failures; [`StoreError::Corrupt`] for a document that is not a summary.
    pub async fn disposal_summary(&self) -> Result<Option<DisposalSummary>, StoreError> {
        let Some(bytes) = self.get_bytes(SUMMARY_KEY).await? else {
            return Ok(None);
        };
        let summary: DisposalSummary = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::corrupt(SUMMARY_KEY, format!("not a disposal summary: {e}")))?;
        if summary.schema != DISPOSAL_SCHEMA {
            return Err(StoreError::corrupt(
                SUMMARY_KEY,
                format!("unsupported schema {:?}", summary.schema),
            ));
        }
        Ok(Some(summary))
    }

    /// Adds `last` to the disposal summary (read, add, write back: one disposal runs at a
    /// time).
    ///
    /// # Errors
    /// Store failures. An unreadable summary is started anew (it is a convenience: the
    /// ledger's `dispose` records are the evidence).
    pub async fn record_disposal(&self, last: LastDisposal) -> Result<DisposalSummary, StoreError> {
        let mut summary = match self.disposal_summary().await {
            Ok(Some(summary)) => summary,
            Ok(None) | Err(StoreError::Corrupt { .. }) => DisposalSummary {
                schema: DISPOSAL_SCHEMA.into(),
                ..DisposalSummary::default()
            },
            Err(e) => return Err(e),
        };
        summary.items += last.items;
        summary.blobs += last.blobs;
        summary.bytes += last.bytes;
        summary.last = Some(last);
        let mut body = serde_json::to_vec_pretty(&summary).map_err(|e| StoreError::Rejected {
            key: SUMMARY_KEY.into(),
            reason: format!("cannot encode the summary: {e}"),
        })?;
        body.push(b'\n');
        self.store
            .put(&crate::layout::path(SUMMARY_KEY), PutPayload::from(body))
            .await
            .map_err(|e| StoreError::from_backend(SUMMARY_KEY, e))?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn disposal_leaves_go_to_the_next_record_and_the_summary_adds_up() {
        let a = Archive::open("memory://", &[]).unwrap();
        let d = Sha256Digest::of(b"m");
        assert!(a.journal_disposal(&[("blobs/sha256/x".into(), d)]).is_err());
        assert!(a.take_leaves().is_empty(), "nothing handed over on error");
        a.journal_disposal(&[("manifests/recordings/o/k.json".into(), d)])
            .unwrap();
        let leaves = a.take_leaves();
        assert_eq!(leaves.len(), 1);
        assert_eq!(leaves[0].key, "manifests/recordings/o/k.json");

        assert_eq!(a.disposal_summary().await.unwrap(), None);
        let last = |items| LastDisposal {
            time: Utc::now(),
            record: "ledger/00000000000000000003.json".into(),
            items,
            blobs: 1,
            bytes: 10,
            user: "u".into(),
        };
        a.record_disposal(last(2)).await.unwrap();
        let summary = a.record_disposal(last(3)).await.unwrap();
        assert_eq!((summary.items, summary.blobs, summary.bytes), (5, 2, 20));
        assert_eq!(a.disposal_summary().await.unwrap(), Some(summary));
        // Not under a logged prefix: nothing for the ledger.
        assert!(a.take_leaves().is_empty());
    }
}
