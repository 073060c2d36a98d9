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
//! Retention and legal holds (the `worm` module) are requests of the same nature: S3 Object
//! Lock's `PutObjectRetention`, `PutObjectLegalHold` and `GetObjectLockConfiguration`, and on
//! local disk making files read-only ([`local`]).
//!
//! [`ObjectStore`]: object_store::ObjectStore

pub(crate) mod azure;
pub(crate) mod local;
pub(crate) mod s3;
mod s3_lock;
mod s3_put;

pub(crate) use s3_put::PutConfig;

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use object_store::client::{ClientOptions, HttpClient, HttpConnector, ReqwestConnector};

use crate::worm::{LockState, ObjectLock, WormSupport};
use crate::{Sha256Digest, StoreError};

/// Requests an archive's backend answers beyond [`object_store::ObjectStore`] (see the module
/// docs). Keys are archive keys, relative to the archive's prefix; each implementation maps
/// them to its own.
pub(crate) trait Extensions: fmt::Debug + Send + Sync {
    /// Whether the backend keeps incomplete multipart uploads until they are aborted (S3): then
    /// the archive records each multipart upload before it starts, so that a killed run's
    /// uploads can be found and aborted. `false` where uncommitted parts go away by themselves
    /// (Azure, after seven days) or never exist (local disk, in memory).
    fn keeps_incomplete_uploads(&self) -> bool {
        false
    }

    /// The incomplete multipart uploads whose key starts with `prefix` (`""`: all of the
    /// archive's), or `None` when the backend has no such thing to list.
    fn incomplete_uploads<'a>(
        &'a self,
        _prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IncompleteUpload>>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    /// Aborts one incomplete upload; `false` if it was already gone.
    fn abort_upload<'a>(&'a self, _upload: &'a IncompleteUpload) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Ok(false) })
    }

    /// How the object at `key` is encrypted at rest, as the backend reports it (S3: the
    /// `x-amz-server-side-encryption` headers of a HEAD), or `None` when the backend reports
    /// nothing of the kind.
    fn encryption<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<Encryption>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    /// Puts `payload` at `key` create-only, in one request that hands the store the body's
    /// SHA-256 `digest` to check it against (S3: the signed payload hash and
    /// `x-amz-checksum-sha256`, see the `s3_put` module), so that no byte is hashed again.
    /// `None` where the backend has no such request: `object_store`'s put is used. Else
    /// `Ok(true)` when the object was created, `Ok(false)` when the key exists.
    /// Whether [`Extensions::put_with_digest`] is a request of the backend's (it then takes a
    /// blob of any size: its time limit grows with it).
    fn takes_digest_with_put(&self) -> bool {
        false
    }

    fn put_with_digest<'a>(
        &'a self,
        _key: &'a str,
        _payload: object_store::PutPayload,
        _digest: &'a Sha256Digest,
    ) -> Option<BoxFuture<'a, Result<bool, StoreError>>> {
        None
    }

    /// Whether the bucket or container keeps objects write-once (see [`WormSupport`]).
    fn worm_support(&self) -> BoxFuture<'_, Result<WormSupport, StoreError>> {
        Box::pin(async { Ok(WormSupport::None) })
    }

    /// The retention and legal hold of the current version of `key`; `None` where the
    /// backend has none (or the object is absent).
    fn lock_state<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<LockState>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    /// Sets the retention of `version` of `key` (`None`: the current version). The caller
    /// never asks for a shorter one than the object has.
    fn set_retention<'a>(
        &'a self,
        _key: &'a str,
        _version: Option<&'a str>,
        _lock: &'a ObjectLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// Sets or clears the legal hold on `version` of `key` (`None`: the current version).
    fn set_legal_hold<'a>(
        &'a self,
        _key: &'a str,
        _version: Option<&'a str>,
        _on: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// Deletes every version of `key` (disposition: a versioned bucket's plain delete only
    /// hides the object behind a delete marker) and returns how many there were, or `None`
    /// when the backend keeps no versions and a plain delete is the whole of it. A version
    /// still locked or held is refused by the store: an error.
    fn delete_versions<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async { Ok(None) })
    }
}

/// A boolean store option as `object_store` reads one: `Some(true)` for `1`, `true`, `on`,
/// `yes`, `y`, `Some(false)` for `0`, `false`, `off`, `no`, `n` (any case), else `None`.
pub(crate) fn option_flag(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" | "y" => Some(true),
        "0" | "false" | "off" | "no" | "n" => Some(false),
        _ => None,
    }
}

/// The error body S3 and Azure answer a failed request with
/// (`<Error><Code>…</Code><Message>…</Message></Error>`): empty fields where the body is not one.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct ServiceError {
    /// The service's error code (`BadDigest`, `BlobImmutableDueToPolicy`, …).
    pub(crate) code: String,
    /// Its message.
    pub(crate) message: String,
}

impl ServiceError {
    /// Reads an answer's body; never fails.
    pub(crate) fn parse(body: &[u8]) -> Self {
        std::str::from_utf8(body)
            .ok()
            .and_then(|t| quick_xml::de::from_str(t).ok())
            .unwrap_or_default()
    }
}

/// An [`HttpConnector`] that keeps the last client it made: the builders of `object_store`'s
/// S3 and Azure stores make the store's own client last (after those of credential
/// providers), so the requests of an extension go through the same client, with the same
/// TLS, proxy and timeout options as the store's.
#[derive(Debug, Default)]
pub(crate) struct KeepLastClient {
    inner: ReqwestConnector,
    last: Arc<Mutex<Option<(HttpClient, ClientOptions)>>>,
}

impl HttpConnector for KeepLastClient {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = self.inner.connect(options)?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some((client.clone(), options.clone()));
        }
        Ok(client)
    }
}

impl KeepLastClient {
    /// Builds a store with `build`, handing it the connector, and returns the store with
    /// its own HTTP client.
    pub(crate) fn build<S>(
        build: impl FnOnce(KeepLastClient) -> object_store::Result<S>,
    ) -> object_store::Result<(S, HttpClient)> {
        Self::build_with_options(build).map(|(store, client, _)| (store, client))
    }

    /// [`KeepLastClient::build`], also returning the options the store's client was made
    /// with (to make another like it).
    pub(crate) fn build_with_options<S>(
        build: impl FnOnce(KeepLastClient) -> object_store::Result<S>,
    ) -> object_store::Result<(S, HttpClient, ClientOptions)> {
        let connector = KeepLastClient::default();
        let last = Arc::clone(&connector.last);
        let store = build(connector)?;
        let kept = last.lock().ok().and_then(|mut c| c.take());
        match kept {
            Some((client, options)) => Ok((store, client, options)),
            // Not reached with object_store's builders; a client of default options will do.
            None => {
                let options = ClientOptions::default();
                let client = ReqwestConnector::default().connect(&options)?;
                Ok((store, client, options))
            }
        }
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

impl Extensions for NoExtensions {}

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
