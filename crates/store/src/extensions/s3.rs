//! The S3 [`Extensions`]: listing incomplete multipart uploads (`ListMultipartUploads`, which
//! `object_store` lacks) and aborting them.
//!
//! The listing is `GET /?uploads&prefix=…`, presigned with the store's own credential
//! provider through [`Signer::signed_url_opts`] and sent through the store's own HTTP client
//! (same TLS, proxy and timeout options), its XML answer parsed here; aborting goes through
//! `object_store`'s [`MultipartStore::abort_multipart`]. Signed URLs carry a signature (and
//! with temporary credentials a session token): they are never logged or put in an error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use recarch_failure::{RetryPolicy, status_class};
use serde::Deserialize;

use super::{Encryption, Extensions, IncompleteUpload};
use crate::StoreError;
use crate::probe::error_chain;
use crate::worm::{LockState, ObjectLock, WormSupport};

/// How long a signed listing URL is valid.
pub(super) const LIST_URL_TTL: Duration = Duration::from_secs(300);
/// How a listing page is retried when the request fails on the way or the status is transient
/// (`recarch_failure::status_class`): three attempts, about 0.4 and 0.8 s apart.
pub(super) fn list_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(400),
        max_delay: Duration::from_secs(2),
        max_total: Duration::from_secs(30),
    }
}
/// Pages of one listing at most (1000 uploads each): a bound on a misbehaving server.
const MAX_LIST_PAGES: usize = 100;
/// The store's name in errors.
const STORE: &str = "S3";

/// Builds the S3 store and returns it with its HTTP client, and a client like it without the
/// store's limit on a request's whole time (30 s unless `timeout` is set), for blobs sent in
/// one put, whose time limit grows with their size (see the `s3_put` module).
pub(crate) fn build_s3(builder: AmazonS3Builder) -> object_store::Result<(AmazonS3, HttpClient, HttpClient)> {
    use object_store::client::HttpConnector as _;
    let (store, client, options) =
        super::KeepLastClient::build_with_options(|connector| builder.with_http_connector(connector).build())?;
    let untimed = object_store::client::ReqwestConnector::default().connect(&options.with_timeout_disabled())?;
    Ok((store, client, untimed))
}

/// The S3 [`Extensions`]: the store rooted at the bucket (for its signer and
/// `AbortMultipartUpload`), its HTTP client, and the archive's prefix in the bucket.
#[derive(Debug)]
pub(crate) struct S3Extensions {
    pub(super) s3: Arc<AmazonS3>,
    pub(super) http: HttpClient,
    pub(super) prefix: Path,
    /// The bucket's name, for messages.
    pub(super) bucket: String,
    /// How blobs are put with the digest the spool computed (`None`: by `object_store`).
    pub(super) put: Option<super::PutConfig>,
    /// The client those puts go through: the store's options without its whole-request time
    /// limit, which each put sets by its size instead.
    pub(super) untimed: HttpClient,
}

impl Extensions for S3Extensions {
    fn keeps_incomplete_uploads(&self) -> bool {
        true
    }

    fn incomplete_uploads<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IncompleteUpload>>, StoreError>> {
        Box::pin(async move {
            let listed = self.list(&self.bucket_prefix(prefix)).await?;
            Ok(Some(
                listed
                    .into_iter()
                    .filter_map(|u| {
                        Some(IncompleteUpload {
                            key: self.archive_key(&u.key)?.to_owned(),
                            ..u
                        })
                    })
                    .collect(),
            ))
        })
    }

    fn abort_upload<'a>(&'a self, upload: &'a IncompleteUpload) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = Path::parse(&upload.key).map_err(|e| StoreError::corrupt(&upload.key, e.to_string()))?;
            let bucket_key: Path = self.prefix.parts().chain(key.parts()).collect();
            self.abort(&bucket_key, &upload.upload_id).await
        })
    }

    fn encryption<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Encryption>, StoreError>> {
        Box::pin(async move {
            // Presigned like the listings: the URL carries a signature and is never logged.
            let bucket_key = self.bucket_key(key)?;
            let answer = self
                .send(http::Method::HEAD, &bucket_key, &[], &[], Bytes::new(), key)
                .await?;
            if !answer.status.is_success() {
                return Err(StoreError::from_backend(
                    key,
                    status_error(answer.status, &Bytes::new()),
                ));
            }
            let header = |name: &str| {
                answer
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            Ok(header("x-amz-server-side-encryption").map(|algorithm| Encryption {
                algorithm,
                kms_key_id: header("x-amz-server-side-encryption-aws-kms-key-id"),
            }))
        })
    }

    fn takes_digest_with_put(&self) -> bool {
        self.put.is_some()
    }

    fn put_with_digest<'a>(
        &'a self,
        key: &'a str,
        payload: object_store::PutPayload,
        digest: &'a crate::Sha256Digest,
    ) -> Option<BoxFuture<'a, Result<bool, StoreError>>> {
        let config = self.put.as_ref()?;
        Some(Box::pin(self.put_with_digest(config, key, payload, digest)))
    }

    fn worm_support(&self) -> BoxFuture<'_, Result<WormSupport, StoreError>> {
        Box::pin(self.object_lock_configuration())
    }

    fn lock_state<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<LockState>, StoreError>> {
        Box::pin(self.head_lock(key))
    }

    fn set_retention<'a>(
        &'a self,
        key: &'a str,
        version: Option<&'a str>,
        lock: &'a ObjectLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.put_retention(key, version, lock))
    }

    fn set_legal_hold<'a>(
        &'a self,
        key: &'a str,
        version: Option<&'a str>,
        on: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.put_legal_hold(key, version, on))
    }

    fn delete_versions<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move { self.delete_all_versions(key).await.map(Some) })
    }
}

impl S3Extensions {
    pub(crate) fn new(
        s3: Arc<AmazonS3>,
        http: HttpClient,
        prefix: Path,
        bucket: &str,
        put: Option<super::PutConfig>,
        untimed: HttpClient,
    ) -> Self {
        Self {
            s3,
            http,
            prefix,
            bucket: bucket.to_owned(),
            put,
            untimed,
        }
    }

    /// The bucket key prefix of an archive key prefix (`""`: the whole archive).
    fn bucket_prefix(&self, prefix: &str) -> String {
        if self.prefix.is_root() {
            prefix.to_owned()
        } else {
            format!("{}/{prefix}", self.prefix)
        }
    }

    /// The archive key of a bucket key, if it is under the archive's prefix.
    fn archive_key<'a>(&self, bucket_key: &'a str) -> Option<&'a str> {
        if self.prefix.is_root() {
            return Some(bucket_key);
        }
        bucket_key.strip_prefix(self.prefix.as_ref())?.strip_prefix('/')
    }

    /// Every incomplete upload whose bucket key starts with `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<IncompleteUpload>, StoreError> {
        let mut uploads = Vec::new();
        let mut markers: Option<(String, String)> = None;
        for _ in 0..MAX_LIST_PAGES {
            let page = self.list_page(prefix, markers.as_ref()).await?;
            uploads.extend(
                page.uploads
                    .into_iter()
                    // Filtered here too: a server that ignores `prefix` lists the whole bucket.
                    .filter(|u| u.key.starts_with(prefix))
                    .map(|u| IncompleteUpload {
                        initiated: u
                            .initiated
                            .as_deref()
                            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                            .map(|t| t.with_timezone(&Utc)),
                        key: u.key,
                        upload_id: u.upload_id,
                    }),
            );
            match (page.is_truncated, page.next_key_marker, page.next_upload_id_marker) {
                (true, Some(key), Some(id)) if !key.is_empty() => {
                    let next = Some((key, id));
                    if next == markers {
                        break; // no progress: stop rather than loop
                    }
                    markers = next;
                }
                _ => return Ok(uploads),
            }
        }
        Ok(uploads)
    }

    /// One page of `GET /?uploads&prefix=…`, retried within [`list_retry`] on transport errors
    /// and transient statuses (5xx, 429, …).
    async fn list_page(&self, prefix: &str, markers: Option<&(String, String)>) -> Result<ListPage, StoreError> {
        let mut query: Vec<(&str, &str)> = vec![("uploads", ""), ("prefix", prefix)];
        if let Some((key, id)) = markers {
            query.push(("key-marker", key));
            query.push(("upload-id-marker", id));
        }
        let what = format!("incomplete multipart uploads under {prefix}");
        let policy = list_retry();
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.try_list_page(&query, &what).await {
                Ok(page) => return Ok(page),
                Err(failure) => failure,
            };
            let log = |_| tracing::debug!(error = %error_chain(&failure.error), attempt, "listing incomplete uploads failed; retrying");
            if !failure.retryable || !policy.wait_before_retry(attempt, started.elapsed(), None, log).await {
                return Err(failure.error);
            }
        }
    }

    /// One attempt at a listing page.
    async fn try_list_page(&self, query: &[(&str, &str)], what: &str) -> Result<ListPage, ListFailure> {
        // Signed afresh for each attempt. The URL carries a signature (and a session token
        // with temporary credentials): it is never logged or put in an error.
        let url = self
            .s3
            .signed_url_opts(
                http::Method::GET,
                &Path::default(),
                LIST_URL_TTL,
                &SignedUrlOptions::default().with_query(query.iter().copied()),
            )
            .await
            .map_err(|e| ListFailure::last(StoreError::from_backend(what, e)))?;
        let request: HttpRequest = http::Request::builder()
            .method(http::Method::GET)
            .uri(url.as_str())
            .body(HttpRequestBody::empty())
            .map_err(|e| {
                ListFailure::last(StoreError::from_backend(
                    what,
                    generic(format!("cannot build the request: {e}")),
                ))
            })?;
        let response = self.http.execute(request).await.map_err(|e| {
            ListFailure::transient(StoreError::from_backend(
                what,
                generic(format!("request failed: {}", error_chain(&e))),
            ))
        })?;
        let status = response.status();
        let body = response.into_body().bytes().await.map_err(|e| {
            ListFailure::transient(StoreError::from_backend(
                what,
                generic(format!("reading the answer failed: {}", error_chain(&e))),
            ))
        })?;
        if status.is_success() {
            return parse_list(&body).map_err(|e| ListFailure::last(StoreError::corrupt(what, e)));
        }
        Err(ListFailure {
            retryable: status_class(status.as_u16()).is_retryable(),
            error: StoreError::from_backend(what, status_error(status, &body)),
        })
    }

    /// Aborts one upload; `false` if it was already gone.
    async fn abort(&self, bucket_key: &Path, upload_id: &str) -> Result<bool, StoreError> {
        match self.s3.abort_multipart(bucket_key, &upload_id.to_owned()).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(StoreError::from_backend(bucket_key.as_ref(), e)),
        }
    }
}

/// One page of a `ListMultipartUploadsResult`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPage {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
    #[serde(default, rename = "Upload")]
    uploads: Vec<ListedUpload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedUpload {
    key: String,
    upload_id: String,
    #[serde(default)]
    initiated: Option<String>,
}

fn parse_list(body: &[u8]) -> Result<ListPage, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    quick_xml::de::from_str(text).map_err(|e| format!("not a ListMultipartUploadsResult: {e}"))
}

/// An error naming the status and the S3 error code and message of the answer.
pub(super) fn status_error(status: http::StatusCode, body: &Bytes) -> object_store::Error {
    let parsed = super::ServiceError::parse(body);
    let reason = format!("S3 answered {status}: {} {}", parsed.code, parsed.message);
    let source: Box<dyn std::error::Error + Send + Sync> = reason.trim_end().into();
    match status.as_u16() {
        401 | 403 => object_store::Error::PermissionDenied {
            path: String::new(),
            source,
        },
        405 | 501 => object_store::Error::NotSupported { source },
        _ => object_store::Error::Generic { store: STORE, source },
    }
}

pub(super) fn generic(reason: String) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: reason.into(),
    }
}

/// A listing attempt that failed, and whether another may succeed.
struct ListFailure {
    retryable: bool,
    error: StoreError,
}

impl ListFailure {
    /// Failed on the way (connection, a body cut): another attempt may pass.
    fn transient(error: StoreError) -> Self {
        Self { retryable: true, error }
    }

    /// Another attempt would fail alike.
    fn last(error: StoreError) -> Self {
        Self {
            retryable: false,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_listing() {
        let page = parse_list(
            br#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>p/blobs/sha256/ab</NextKeyMarker><NextUploadIdMarker>id-2</NextUploadIdMarker>
  <MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>p/blobs/sha256/aa</Key><UploadId>id-1</UploadId>
    <Initiator><ID>x</ID><DisplayName>x</DisplayName></Initiator>
    <StorageClass>STANDARD</StorageClass><Initiated>2026-12-01T20:33:54.000Z</Initiated></Upload>
  <Upload><Key>p/blobs/sha256/ab</Key><UploadId>id-2</UploadId><Initiated>2026-12-01T20:33:55Z</Initiated></Upload>
</ListMultipartUploadsResult>"#,
        )
        .expect("parses");
        assert!(page.is_truncated);
        assert_eq!(page.next_key_marker.as_deref(), Some("p/blobs/sha256/ab"));
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[1].upload_id, "id-2");
        assert_eq!(page.uploads[0].initiated.as_deref(), Some("2026-12-01T20:33:54.000Z"));

        let empty =
            parse_list(b"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>")
                .expect("parses");
        assert!(empty.uploads.is_empty() && !empty.is_truncated);
        assert!(parse_list(b"not xml at all <").is_err());
        assert!(parse_list(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn errors_name_the_code_and_never_panic() {
        let e = status_error(
            http::StatusCode::FORBIDDEN,
            &Bytes::from_static(b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>"),
        );
        assert!(matches!(e, object_store::Error::PermissionDenied { .. }));
        assert!(format!("{e}").contains("AccessDenied"), "{e}");
        let e = status_error(http::StatusCode::NOT_IMPLEMENTED, &Bytes::from_static(b"\xff"));
        assert!(matches!(e, object_store::Error::NotSupported { .. }), "{e}");
    }

    /// A listing that cannot reach the store fails with a message that shows neither the
    /// signed URL nor any credential.
    #[tokio::test]
    async fn listing_errors_show_no_signed_url_or_credential() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", closed.local_addr().expect("addr"));
        drop(closed);
        let (s3, http, untimed) = build_s3(
            AmazonS3Builder::new()
                .with_bucket_name("b")
                .with_region("us-east-1")
                .with_endpoint(endpoint)
                .with_allow_http(true)
                .with_access_key_id("AKIDVISIBLEKEY")
                .with_secret_access_key("the-secret-key-value")
                .with_token("the-session-token-value"),
        )
        .expect("builds offline");
        let uploads = S3Extensions::new(Arc::new(s3), http, Path::from("p"), "b", None, untimed);
        let err = uploads.list("p/blobs/").await.expect_err("nothing listens there");
        let mut shown = format!("{err}\n{err:?}");
        let mut source = std::error::Error::source(&err);
        while let Some(e) = source {
            shown.push_str(&format!("\n{e}\n{e:?}"));
            source = e.source();
        }
        assert!(shown.contains("incomplete multipart uploads under p/blobs/"), "{shown}");
        assert!(shown.to_ascii_lowercase().contains("connection refused"), "{shown}");
        for secret in [
            "X-Amz-Signature",
            "the-secret-key-value",
            "the-session-token-value",
            "Security-Token",
        ] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
    }

    #[test]
    fn keys_under_the_prefix() {
        let s3 = AmazonS3Builder::new()
            .with_bucket_name("b")
            .with_region("us-east-1")
            .with_access_key_id("k")
            .with_secret_access_key("s")
            .build()
            .expect("builds offline");
        let (_, http, untimed) = build_s3(
            AmazonS3Builder::new()
                .with_bucket_name("b")
                .with_access_key_id("k")
                .with_secret_access_key("s"),
        )
        .expect("builds offline");
        let uploads = S3Extensions::new(Arc::new(s3), http, Path::from("some/prefix"), "b", None, untimed);
        assert_eq!(uploads.bucket_prefix("blobs/sha256/aa"), "some/prefix/blobs/sha256/aa");
        assert_eq!(uploads.bucket_prefix("staging/0-of-1/"), "some/prefix/staging/0-of-1/");
        assert_eq!(uploads.bucket_prefix(""), "some/prefix/");
        assert_eq!(uploads.archive_key("some/prefix/blobs/x"), Some("blobs/x"));
        assert_eq!(uploads.archive_key("some/prefixed/x"), None);
        assert_eq!(uploads.archive_key("other/x"), None);
    }
}
