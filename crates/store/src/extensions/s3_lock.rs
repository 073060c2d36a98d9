//! S3 Object Lock through the [`S3Extensions`]: `GetObjectLockConfiguration` (is the bucket
//! set up for it), `PutObjectRetention` and `PutObjectLegalHold` on an object version, the
//! lock headers of `HeadObject`, and deleting every version of a key for disposition
//! (`ListObjectVersions`, then `DeleteObject` with each `versionId`).
//!
//! `object_store` sends none of these. Each is presigned with the store's own signer (its
//! credentials, region and endpoint), with `Content-MD5` among the signed headers where S3
//! demands an integrity header (`PutObjectRetention`, `PutObjectLegalHold`: S3 accepts
//! `Content-MD5` or an SDK checksum there, and moto only the former), and sent through the
//! store's own HTTP client. Signed URLs are never logged or put in an error.

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use md5::Digest as _;
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use recarch_failure::status_class;
use serde::Deserialize;

use super::s3::{LIST_URL_TTL, S3Extensions, generic, list_retry, status_error};
use crate::StoreError;
use crate::probe::error_chain;
use crate::worm::{LockMode, LockState, ObjectLock, WormSupport};

/// Versions of one key deleted at most (a bound on a misbehaving server).
const MAX_VERSIONS: usize = 10_000;

/// An S3 answer: status, headers, body.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl S3Extensions {
    /// The bucket key of an archive key.
    pub(super) fn bucket_key(&self, key: &str) -> Result<Path, StoreError> {
        let archive_key = Path::parse(key).map_err(|e| StoreError::corrupt(key, e.to_string()))?;
        Ok(self.prefix.parts().chain(archive_key.parts()).collect())
    }

    /// One request, presigned with `headers` among the signed ones, retried within
    /// [`list_retry`] on transport errors and transient statuses. Any other status is the
    /// caller's to read.
    pub(super) async fn send(
        &self,
        method: Method,
        bucket_key: &Path,
        query: &[(&str, &str)],
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        what: &str,
    ) -> Result<Answer, StoreError> {
        let policy = list_retry();
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut options = SignedUrlOptions::default().with_query(query.iter().copied());
            for (name, value) in headers {
                options = options.with_signed_header(name.clone(), value.clone());
            }
            // Signed afresh for each attempt; the URL is never logged.
            let url = self
                .s3
                .signed_url_opts(method.clone(), bucket_key, LIST_URL_TTL, &options)
                .await
                .map_err(|e| StoreError::from_backend(what, e))?;
            let mut builder = http::Request::builder().method(method.clone()).uri(url.as_str());
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            let request: HttpRequest = builder
                .body(HttpRequestBody::from(body.clone()))
                .map_err(|e| StoreError::from_backend(what, generic(format!("cannot build the request: {e}"))))?;
            let failed = match self.http.execute(request).await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.into_body().bytes().await {
                        Ok(body) if !status_class(status.as_u16()).is_retryable() || status.is_success() => {
                            return Ok(Answer { status, headers, body });
                        }
                        Ok(body) => StoreError::from_backend(what, status_error(status, &body)),
                        Err(e) => StoreError::from_backend(
                            what,
                            generic(format!("reading the answer failed: {}", error_chain(&e))),
                        ),
                    }
                }
                Err(e) => StoreError::from_backend(what, generic(format!("request failed: {}", error_chain(&e)))),
            };
            let log = |_| tracing::debug!(error = %error_chain(&failed), attempt, "an S3 request failed; retrying");
            if !policy.wait_before_retry(attempt, started.elapsed(), None, log).await {
                return Err(failed);
            }
        }
    }

    /// `GetObjectLockConfiguration` on the bucket.
    pub(super) async fn object_lock_configuration(&self) -> Result<WormSupport, StoreError> {
        let what = format!("the Object Lock configuration of bucket {}", self.bucket);
        let answer = self
            .send(
                Method::GET,
                &Path::default(),
                &[("object-lock", "")],
                &[],
                Bytes::new(),
                &what,
            )
            .await?;
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct Configuration {
            object_lock_enabled: String,
        }
        let not_enabled = || {
            Ok(WormSupport::NotEnabled(format!(
                "bucket {} has no S3 Object Lock: create a bucket with Object Lock enabled \
                 (aws s3api create-bucket --bucket NAME --object-lock-enabled-for-bucket) and archive there",
                self.bucket
            )))
        };
        if answer.status == StatusCode::NOT_FOUND && error_code(&answer.body) != "NoSuchBucket" {
            // ObjectLockConfigurationNotFoundError: never enabled.
            return not_enabled();
        }
        if !answer.status.is_success() {
            return Err(StoreError::from_backend(
                what,
                status_error(answer.status, &answer.body),
            ));
        }
        let parsed: Configuration = std::str::from_utf8(&answer.body)
            .ok()
            .and_then(|t| quick_xml::de::from_str(t).ok())
            .ok_or_else(|| StoreError::corrupt(&what, "not an ObjectLockConfiguration"))?;
        if parsed.object_lock_enabled == "Enabled" {
            Ok(WormSupport::Enforced)
        } else {
            not_enabled()
        }
    }

    /// `PutObjectRetention` on `version` of `key` (`None`: the current one).
    pub(super) async fn put_retention(
        &self,
        key: &str,
        version: Option<&str>,
        lock: &ObjectLock,
    ) -> Result<(), StoreError> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            lock.mode.s3_name(),
            lock.until_rfc3339()
        );
        self.put_subresource(key, version, "retention", body, "cannot lock")
            .await
    }

    /// `PutObjectLegalHold` on `version` of `key` (`None`: the current one).
    pub(super) async fn put_legal_hold(&self, key: &str, version: Option<&str>, on: bool) -> Result<(), StoreError> {
        let body = format!(
            "<LegalHold xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>{}</Status></LegalHold>",
            if on { "ON" } else { "OFF" }
        );
        let what = if on {
            "cannot place a legal hold on"
        } else {
            "cannot release the legal hold on"
        };
        self.put_subresource(key, version, "legal-hold", body, what).await
    }

    async fn put_subresource(
        &self,
        key: &str,
        version: Option<&str>,
        subresource: &str,
        body: String,
        what: &str,
    ) -> Result<(), StoreError> {
        let bucket_key = self.bucket_key(key)?;
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()));
        let headers = [(
            HeaderName::from_static("content-md5"),
            HeaderValue::from_str(&md5).map_err(|e| StoreError::corrupt(key, e.to_string()))?,
        )];
        let mut query = vec![(subresource, "")];
        if let Some(version) = version {
            query.push(("versionId", version));
        }
        let answer = self
            .send(Method::PUT, &bucket_key, &query, &headers, Bytes::from(body), key)
            .await?;
        if answer.status.is_success() {
            return Ok(());
        }
        Err(StoreError::from_backend(
            key,
            generic_status(what, key, answer.status, &answer.body),
        ))
    }

    /// The lock headers of `HeadObject` on `key`; `None` when it is absent.
    pub(super) async fn head_lock(&self, key: &str) -> Result<Option<LockState>, StoreError> {
        let bucket_key = self.bucket_key(key)?;
        let answer = self
            .send(Method::HEAD, &bucket_key, &[], &[], Bytes::new(), key)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(StoreError::from_backend(
                key,
                status_error(answer.status, &Bytes::new()),
            ));
        }
        Ok(Some(lock_state_of(&answer.headers)))
    }

    /// Deletes every version (and delete marker) of exactly `key`; how many there were.
    pub(super) async fn delete_all_versions(&self, key: &str) -> Result<u64, StoreError> {
        let bucket_key = self.bucket_key(key)?;
        let prefix = bucket_key.to_string();
        let listed = self
            .send(
                Method::GET,
                &Path::default(),
                &[("versions", ""), ("prefix", &prefix), ("max-keys", "1000")],
                &[],
                Bytes::new(),
                key,
            )
            .await?;
        if !listed.status.is_success() {
            return Err(StoreError::from_backend(
                key,
                generic_status("cannot list the versions of", key, listed.status, &listed.body),
            ));
        }
        let versions = parse_versions(&listed.body).map_err(|e| StoreError::corrupt(key, e))?;
        let mut deleted = 0;
        for version in versions.iter().filter(|v| v.key == prefix).take(MAX_VERSIONS) {
            let answer = self
                .send(
                    Method::DELETE,
                    &bucket_key,
                    &[("versionId", &version.version_id)],
                    &[],
                    Bytes::new(),
                    key,
                )
                .await?;
            if !(answer.status.is_success() || answer.status == StatusCode::NOT_FOUND) {
                return Err(StoreError::from_backend(
                    key,
                    generic_status("cannot delete a version of", key, answer.status, &answer.body),
                ));
            }
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// The lock of an object as `HeadObject` reports it.
fn lock_state_of(headers: &HeaderMap) -> LockState {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mode = match header("x-amz-object-lock-mode") {
        Some(m) if m.eq_ignore_ascii_case("COMPLIANCE") => Some(LockMode::Compliance),
        Some(m) if m.eq_ignore_ascii_case("GOVERNANCE") => Some(LockMode::Governance),
        _ => None,
    };
    let until = header("x-amz-object-lock-retain-until-date")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    LockState {
        retention: mode
            .zip(until)
            .map(|(mode, retain_until)| ObjectLock { mode, retain_until }),
        legal_hold: header("x-amz-object-lock-legal-hold").is_some_and(|s| s.eq_ignore_ascii_case("ON")),
    }
}

/// One entry of a `ListVersionsResult` (a version or a delete marker).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedVersion {
    key: String,
    version_id: String,
}

fn parse_versions(body: &[u8]) -> Result<Vec<ListedVersion>, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Listing {
        #[serde(default, rename = "Version")]
        versions: Vec<ListedVersion>,
        #[serde(default, rename = "DeleteMarker")]
        markers: Vec<ListedVersion>,
    }
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let listing: Listing = quick_xml::de::from_str(text).map_err(|e| format!("not a ListVersionsResult: {e}"))?;
    let mut all = listing.versions;
    all.extend(listing.markers);
    Ok(all)
}

/// The S3 error code of an answer's body (`""` if none).
fn error_code(body: &[u8]) -> String {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct S3Error {
        code: String,
    }
    std::str::from_utf8(body)
        .ok()
        .and_then(|t| quick_xml::de::from_str::<S3Error>(t).ok())
        .unwrap_or_default()
        .code
}

/// An error saying what could not be done to `key`, with the status and S3's code and
/// message (a refusal by the lock: `AccessDenied`, says so).
fn generic_status(what: &str, key: &str, status: StatusCode, body: &Bytes) -> object_store::Error {
    let inner = status_error(status, body);
    let source: Box<dyn std::error::Error + Send + Sync> = format!("{what} {key}: {inner}").into();
    match status.as_u16() {
        401 | 403 => object_store::Error::PermissionDenied {
            path: key.to_owned(),
            source,
        },
        _ => object_store::Error::Generic { store: "S3", source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_lock_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-object-lock-mode", HeaderValue::from_static("COMPLIANCE"));
        headers.insert(
            "x-amz-object-lock-retain-until-date",
            HeaderValue::from_static("2027-01-02T03:04:05.000Z"),
        );
        headers.insert("x-amz-object-lock-legal-hold", HeaderValue::from_static("ON"));
        let state = lock_state_of(&headers);
        let lock = state.retention.expect("a retention");
        assert_eq!(lock.mode, LockMode::Compliance);
        assert_eq!(lock.until_rfc3339(), "2027-01-02T03:04:05Z");
        assert!(state.legal_hold);
        assert_eq!(lock_state_of(&HeaderMap::new()), LockState::default());
    }

    #[test]
    fn parses_versions_and_markers() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>
<Version><Key>a/m.json</Key><VersionId>v2</VersionId><IsLatest>true</IsLatest></Version>
<Version><Key>a/m.json</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest></Version>
<DeleteMarker><Key>a/m.json.x</Key><VersionId>d1</VersionId></DeleteMarker>
</ListVersionsResult>"#;
        let versions = parse_versions(body).expect("parses");
        let ids: Vec<_> = versions
            .iter()
            .map(|v| (v.key.as_str(), v.version_id.as_str()))
            .collect();
        assert_eq!(ids, [("a/m.json", "v2"), ("a/m.json", "v1"), ("a/m.json.x", "d1")]);
        assert!(parse_versions(b"\xff").is_err());
        assert_eq!(error_code(b"<Error><Code>NoSuchBucket</Code></Error>"), "NoSuchBucket");
        assert_eq!(error_code(b"junk"), "");
    }
}
