//! [`Extensions`]: what the archive asks of its backend beyond [`ObjectStore`], in requests
//! `object_store` cannot send.
//!
//! `object_store` covers objects. A few things the archive needs concern the bucket's other
//! state: S3 keeps incomplete multipart uploads (invisible in listings, billed for their parts)
//! until someone aborts them, and `object_store` can neither list them nor abort one it did not
//! start itself. Each backend that needs such requests implements [`Extensions`] with its own
//! protocol code ([`s3`]: requests presigned with `object_store`'s signer and sent through the
//! store's own HTTP client); every other backend gets [`NoExtensions`]. What the archive does
//! with them (which uploads to abort, the intent records that say so) stays backend-neutral, in
//! the modules that call the trait (`multipart`).
//!
//! This is the seam for later requests of the same nature (retention and legal holds, a
//! container's immutability policy): a method here, implemented per backend.
//!
//! [`ObjectStore`]: object_store::ObjectStore

pub(crate) mod s3;

use std::fmt;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::StoreError;

/// Requests an archive's backend answers beyond [`object_store::ObjectStore`] (see the module
/// docs). Keys are archive keys, relative to the archive's prefix; each implementation maps
/// them to its own.
pub(crate) trait Extensions: fmt::Debug + Send + Sync {
    /// Whether the backend keeps incomplete multipart uploads until they are aborted (S3): then
    /// the archive records each multipart upload before it starts, so that a killed run's
    /// uploads can be found and aborted. `false` where uncommitted parts go away by themselves
    /// (Azure, after seven days) or never exist (local disk, in memory).
    fn keeps_incomplete_uploads(&self) -> bool;

    /// The incomplete multipart uploads whose key starts with `prefix` (`""`: all of the
    /// archive's), or `None` when the backend has no such thing to list.
    fn incomplete_uploads<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IncompleteUpload>>, StoreError>>;

    /// Aborts one incomplete upload; `false` if it was already gone.
    fn abort_upload<'a>(&'a self, upload: &'a IncompleteUpload) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// How the object at `key` is encrypted at rest, as the backend reports it (S3: the
    /// `x-amz-server-side-encryption` headers of a HEAD), or `None` when the backend reports
    /// nothing of the kind.
    fn encryption<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<Encryption>, StoreError>> {
        Box::pin(async { Ok(None) })
    }
}

/// Encryption at rest of an object, as its store reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    /// The algorithm: `aws:kms`, `aws:kms:dsse` or `AES256` (S3-managed keys).
    pub algorithm: String,
    /// The KMS key, for `aws:kms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// The backends that need nothing beyond `object_store`: nothing to list, nothing to abort.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoExtensions;

impl Extensions for NoExtensions {
    fn keeps_incomplete_uploads(&self) -> bool {
        false
    }

    fn incomplete_uploads<'a>(
        &'a self,
        _prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IncompleteUpload>>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    fn abort_upload<'a>(&'a self, _upload: &'a IncompleteUpload) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Ok(false) })
    }
}

/// An incomplete multipart upload, as `ListMultipartUploads` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteUpload {
    /// Its key, relative to the archive's prefix.
    pub key: String,
    /// The upload's id.
    pub upload_id: String,
    /// When it was initiated (by the store's clock), if the store said so legibly.
    pub initiated: Option<DateTime<Utc>>,
}
