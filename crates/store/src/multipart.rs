//! Incomplete S3 multipart uploads: recorded before they start, aborted by the next run of the
//! shard when a killed run left them.
//!
//! On S3 a blob bigger than one part is uploaded with a multipart upload straight to its final
//! name `blobs/sha256/<hex>` (see the `spool` module). A process killed during that upload
//! leaves an incomplete upload: invisible in object listings, billed for its parts, and kept
//! by S3 until someone aborts it. Blob names are content addressed, not per shard, so a run
//! cannot tell its shard's leftovers from another shard's live upload by the name alone. Hence:
//!
//! 1. before starting a multipart upload the store writes an **intent record**,
//!    `state/uploads/<shard>/<hex digest>-<random>.json`, under the shard's own prefix, and
//!    deletes it once the upload has completed or been aborted;
//! 2. at the start (and end) of a run, holding the shard's lease,
//!    [`Archive::abort_interrupted_uploads`] lists, for each record of the shard, the
//!    incomplete uploads of exactly that blob key, aborts those initiated after the record was
//!    written and before the run started, and then deletes the record. Uploads of the shard's
//!    staging prefix (`staging/<shard>/`, the probe's create-only copy) are aborted the same
//!    way.
//!
//! A record whose upload's end could not be confirmed (the completion failed, or its abort
//! did) stays for the next cleanup. Local disk has no multipart uploads to leave (its
//! temporaries are swept by `clean_staging`); Azure discards uncommitted blocks after seven
//! days by itself, so neither writes records.
//!
//! Listing and aborting are requests `object_store` cannot send: this module asks the
//! archive's [`Extensions`](crate::extensions::Extensions) for them (on S3,
//! `ListMultipartUploads` presigned with the store's own credential provider), and keeps only
//! the decisions: which uploads are a killed run's, and when a record may go.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStoreExt, PutPayload};
use serde::Serialize;

use crate::extensions::IncompleteUpload;
use crate::layout::{self, path};
use crate::{Archive, Sha256Digest, ShardId, StoreError};

/// Schema of an intent record.
const INTENT_SCHEMA: &str = "recarch.upload.v1";
/// Uploads initiated this long before their intent record was written are not the record's:
/// room for clock differences between the store's own servers.
const RECORD_CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The content of an intent record (for people reading the bucket; the cleanup needs only its
/// name and time).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct UploadIntent<'a> {
    schema: &'static str,
    blob: &'a str,
    shard: &'a str,
    size: u64,
    started_at: DateTime<Utc>,
}

impl Archive {
    /// Writes the intent record of a multipart upload of the blob `digest` where the backend
    /// keeps incomplete uploads (S3 archives opened from a URL); `None` elsewhere, where
    /// nothing is left to clean up.
    pub(crate) async fn record_upload_intent(
        &self,
        shard: &ShardId,
        digest: &Sha256Digest,
        size: u64,
    ) -> Result<Option<String>, StoreError> {
        if !self.extensions.keeps_incomplete_uploads() {
            return Ok(None);
        }
        let key = layout::upload_intent_key(shard, digest);
        let blob = layout::blob_key(digest);
        let record = UploadIntent {
            schema: INTENT_SCHEMA,
            blob: &blob,
            shard: shard.as_str(),
            size,
            started_at: Utc::now(),
        };
        let body: PutPayload = crate::archive::to_json(&key, &record)?;
        self.store
            .put(&path(&key), body)
            .await
            .map_err(|e| StoreError::from_backend(&key, e))?;
        Ok(Some(key))
    }

    /// Deletes an intent record once its upload has completed or been aborted; a failure only
    /// leaves it for the next cleanup.
    pub(crate) async fn forget_upload_intent(&self, key: Option<String>) {
        let Some(key) = key else { return };
        if let Err(e) = self.delete_quietly(&key).await {
            tracing::warn!(key = %key, error = %e, "cannot delete an upload intent record; the next run of the shard will");
        }
    }

    /// Every incomplete multipart upload under the archive's prefix, or `None` when the
    /// backend has no such thing to list (local disk, Azure, in memory, or an S3 store
    /// wrapped with [`Archive::from_store`]).
    ///
    /// # Errors
    /// Store failures, and stores that do not implement `ListMultipartUploads`.
    pub async fn incomplete_uploads(&self) -> Result<Option<Vec<IncompleteUpload>>, StoreError> {
        self.extensions.incomplete_uploads("").await
    }

    /// Aborts the multipart uploads that interrupted runs of `shard` left incomplete, and
    /// deletes their intent records (see the `multipart` module). Returns how many uploads it
    /// aborted. Nothing to do on local disk, Azure or in memory.
    ///
    /// Only uploads initiated before `initiated_before` are aborted (pass the time the run
    /// started, or now when none of this shard's uploads is in flight), so that an upload of
    /// the same blob that another shard started since goes on. Call it while holding the
    /// shard's lease.
    ///
    /// A record is deleted only once every upload of its blob in its window is aborted; the
    /// first failure is returned after every record was tried, and the records concerned stay
    /// for the next run.
    ///
    /// # Errors
    /// Store failures, and stores that do not implement `ListMultipartUploads`.
    pub async fn abort_interrupted_uploads(
        &self,
        shard: &ShardId,
        initiated_before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        if !self.extensions.keeps_incomplete_uploads() {
            return Ok(0);
        }
        let mut aborted = 0;
        let mut first_error: Option<StoreError> = None;

        // The probe's create-only copy (UploadPartCopy) runs under the shard's staging prefix.
        let staging = layout::staging_dir(shard);
        match self.abort_listed(&staging, |_| true, |t| t < initiated_before).await {
            Ok(n) => aborted += n,
            Err(e) => first_error = first_error.or(Some(e)),
        }

        let prefix = layout::upload_intent_prefix(shard);
        let records: Vec<ObjectMeta> = self
            .store
            .list(Some(&path(&prefix)))
            .try_collect()
            .await
            .map_err(|e| StoreError::from_backend(&prefix, e))?;
        for record in records {
            let key = record.location.to_string();
            let Some(digest) = layout::digest_of_upload_intent(shard, &key) else {
                tracing::warn!(key = %key, "removing an object that is not an upload intent record from the shard's records");
                if let Err(e) = self.delete_quietly(&key).await {
                    first_error = first_error.or(Some(e));
                }
                continue;
            };
            let blob = layout::blob_key(&digest);
            let since = record.last_modified - RECORD_CLOCK_SLACK;
            match self
                .abort_listed(&blob, |k| k == blob, |t| since <= t && t < initiated_before)
                .await
            {
                Ok(n) => {
                    aborted += n;
                    if let Err(e) = self.delete_quietly(&key).await {
                        first_error = first_error.or(Some(e));
                    }
                }
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(aborted),
        }
    }

    /// Lists the incomplete uploads under `prefix`, and aborts those whose key passes `key_ok`
    /// and whose initiation time passes `when_ok`. An upload whose time is unknown is left
    /// alone, and makes this fail (so its record is kept).
    async fn abort_listed(
        &self,
        prefix: &str,
        key_ok: impl Fn(&str) -> bool,
        when_ok: impl Fn(DateTime<Utc>) -> bool,
    ) -> Result<usize, StoreError> {
        let mut aborted = 0;
        let listed = self.extensions.incomplete_uploads(prefix).await?.unwrap_or_default();
        for upload in listed {
            if !key_ok(&upload.key) {
                continue;
            }
            let Some(initiated) = upload.initiated else {
                return Err(StoreError::corrupt(
                    &upload.key,
                    "the store lists an incomplete upload without a legible Initiated time; abort it by hand",
                ));
            };
            if !when_ok(initiated) {
                continue;
            }
            if self.extensions.abort_upload(&upload).await? {
                tracing::info!(key = %upload.key, %initiated, "aborted an incomplete multipart upload of an interrupted run");
                aborted += 1;
            }
        }
        Ok(aborted)
    }
}
