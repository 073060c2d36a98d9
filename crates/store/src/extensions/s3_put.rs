//! A blob's one-request upload on S3, carrying the SHA-256 the spool already computed.
//!
//! A blob's name is the SHA-256 of its bytes, computed while they streamed through the spool.
//! `object_store`'s put would hash the body again: SigV4's signed payload is that same SHA-256
//! (computed a second time), and over https recarch sends `UNSIGNED-PAYLOAD` with a CRC64NVME
//! instead (computed over every byte too). This request signs the digest already known:
//!
//! - `x-amz-content-sha256` is the digest in hex: a signed payload, on http and https alike, at
//!   no hashing cost;
//! - `x-amz-checksum-sha256` is the same digest in base64, where the store is configured with
//!   checksums (over https by default): servers that check flexible checksums (AWS, SeaweedFS)
//!   refuse a body that does not hash to it (`BadDigest`);
//! - `If-None-Match: *` keeps the put create-only, as every blob write is;
//! - the server-side encryption headers `[store.options]` configure (SSE-S3, SSE-KMS,
//!   DSSE-KMS), as `object_store` would send them.
//!
//! So the store itself checks that the bytes it keeps hash to the blob's name. The time
//! such a put may take grows with its size ([`put_time_limit`]), where the store's own
//! requests have a fixed limit. The request is
//! authorized with `object_store`'s own [`AwsAuthorizer`] and the store's credential provider,
//! and sent through the store's HTTP client; the object's URL is the store's own (a presigned
//! URL without its query). A configuration this does not reproduce (SSE-C, anonymous access)
//! leaves the put to `object_store`.

use base64::Engine as _;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, IF_NONE_MATCH};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use object_store::PutPayload;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::signer::{SignedUrlOptions, Signer};

use super::s3::{LIST_URL_TTL, S3Extensions, generic, list_retry, status_error};
use crate::probe::error_chain;
use crate::{Sha256Digest, StoreError};

const CHECKSUM_SHA256: HeaderName = HeaderName::from_static("x-amz-checksum-sha256");

/// How long one put of `length` bytes may take, answer included: 30 s (the store's default
/// limit for any request) and one more second per MiB, so that a blob of any size fails
/// for time only below about 8 Mbit/s. The store's own limit is for requests of a fixed
/// size; a blob held in memory can be as large as `[store].spool_memory_mib`.
fn put_time_limit(length: usize) -> std::time::Duration {
    std::time::Duration::from_secs(30 + (length as u64).div_ceil(1 << 20))
}

/// What a put carries beyond the body, read from the store's configuration once.
#[derive(Debug, Clone)]
pub(crate) struct PutConfig {
    region: String,
    request_payer: bool,
    /// Whether `x-amz-checksum-sha256` is sent (the store is configured with checksums).
    checksum: bool,
    /// The server-side encryption headers.
    encryption: HeaderMap,
}

impl PutConfig {
    /// The put's settings from the store's builder, or `None` when this request would not
    /// do what `object_store`'s put does (SSE-C keys, anonymous access, an encryption setting
    /// that is not a valid header).
    pub(crate) fn from_builder(builder: &AmazonS3Builder) -> Option<Self> {
        let value = |key: AmazonS3ConfigKey| builder.get_config_value(&key);
        let flag = |key: AmazonS3ConfigKey| value(key).is_some_and(|v| super::option_flag(&v) == Some(true));
        // `object_store` does not export the encryption keys' type: they are named by their
        // option names.
        let sse = |name: &str| name.parse::<AmazonS3ConfigKey>().ok().and_then(&value);
        if flag(AmazonS3ConfigKey::SkipSignature) || sse("aws_sse_customer_key_base64").is_some() {
            return None;
        }
        let mut encryption = HeaderMap::new();
        if let Some(algorithm) = sse("aws_server_side_encryption") {
            if algorithm.eq_ignore_ascii_case("sse-c") {
                return None;
            }
            encryption.insert("x-amz-server-side-encryption", HeaderValue::from_str(&algorithm).ok()?);
            if let Some(key_id) = sse("aws_sse_kms_key_id") {
                encryption.insert(
                    "x-amz-server-side-encryption-aws-kms-key-id",
                    HeaderValue::from_str(&key_id).ok()?,
                );
            }
            if let Some(enabled) = sse("aws_sse_bucket_key_enabled") {
                let enabled = super::option_flag(&enabled) == Some(true);
                encryption.insert(
                    "x-amz-server-side-encryption-bucket-key-enabled",
                    HeaderValue::from_static(if enabled { "true" } else { "false" }),
                );
            }
        }
        Some(Self {
            region: value(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".to_owned()),
            request_payer: flag(AmazonS3ConfigKey::RequestPayer),
            checksum: value(AmazonS3ConfigKey::Checksum).is_some(),
            encryption,
        })
    }
}

impl S3Extensions {
    /// Puts `payload` at the archive key `key`, create-only, signed with its SHA-256 `digest`
    /// (see the module docs). `Ok(true)`: created; `Ok(false)`: the key exists (or a
    /// concurrent put of it is completing): the caller looks at what is there.
    pub(super) async fn put_with_digest(
        &self,
        config: &PutConfig,
        key: &str,
        payload: PutPayload,
        digest: &Sha256Digest,
    ) -> Result<bool, StoreError> {
        let bucket_key = self.bucket_key(key)?;
        let body = HttpRequestBody::from(payload);
        let length = body.content_length();
        let policy = list_retry();
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failed = match self
                .try_put(config, &bucket_key, key, body.clone(), length, digest)
                .await
            {
                Ok(created) => return Ok(created),
                Err((error, false)) => return Err(error),
                Err((error, true)) => error,
            };
            let log = |_| tracing::debug!(key, error = %error_chain(&failed), attempt, "a blob put failed; retrying");
            if !policy.wait_before_retry(attempt, started.elapsed(), None, log).await {
                return Err(failed);
            }
        }
    }

    /// One attempt; an error comes with whether another attempt may succeed.
    async fn try_put(
        &self,
        config: &PutConfig,
        bucket_key: &object_store::path::Path,
        key: &str,
        body: HttpRequestBody,
        length: usize,
        digest: &Sha256Digest,
    ) -> Result<bool, (StoreError, bool)> {
        let fail = |e: object_store::Error, retry: bool| (StoreError::from_backend(key, e), retry);
        // The object's URL as the store addresses it (endpoint, path or virtual-hosted
        // style): a presigned URL without its query, which held the signature.
        let mut url = self
            .s3
            .signed_url_opts(Method::PUT, bucket_key, LIST_URL_TTL, &SignedUrlOptions::default())
            .await
            .map_err(|e| fail(e, false))?;
        url.set_query(None);
        let mut request: HttpRequest = http::Request::builder()
            .method(Method::PUT)
            .uri(url.as_str())
            .body(body)
            .map_err(|e| fail(generic(format!("cannot build the request: {e}")), false))?;
        let headers = request.headers_mut();
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        if config.checksum {
            let encoded = base64::engine::general_purpose::STANDARD.encode(digest.as_bytes());
            headers.insert(
                CHECKSUM_SHA256,
                HeaderValue::from_str(&encoded).map_err(|e| fail(generic(e.to_string()), false))?,
            );
        }
        headers.extend(config.encryption.clone());
        let credential = self
            .s3
            .credentials()
            .get_credential()
            .await
            .map_err(|e| fail(e, true))?;
        AwsAuthorizer::new(&credential, "s3", &config.region)
            .with_request_payer(config.request_payer)
            .try_authorize(&mut request, Some(digest.as_bytes()))
            .map_err(|e| fail(e, false))?;
        let limit = put_time_limit(length);
        let response = match tokio::time::timeout(limit, self.untimed.execute(request)).await {
            Ok(answer) => answer.map_err(|e| fail(generic(format!("request failed: {}", error_chain(&e))), true))?,
            Err(_) => {
                return Err(fail(
                    generic(format!(
                        "no answer within {} s (30 s and 1 s per MiB sent)",
                        limit.as_secs()
                    )),
                    true,
                ));
            }
        };
        let status = response.status();
        // Read to its end, so that the connection goes back to the pool.
        let answer = response.into_body().bytes().await;
        if status.is_success() {
            return Ok(true);
        }
        // 412: the blob exists. 409: a concurrent create-only put of the same name is
        // completing (S3's ConditionalRequestConflict): the same bytes, as the name says.
        if matches!(status.as_u16(), 409 | 412) {
            return Ok(false);
        }
        let body = answer.unwrap_or_else(|_| Bytes::new());
        let retry = recarch_failure::status_class(status.as_u16()).is_retryable();
        Err(fail(status_error(status, &body), retry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(options: &[(&str, &str)]) -> Option<PutConfig> {
        let mut builder = AmazonS3Builder::new().with_bucket_name("b");
        for (key, value) in options {
            builder = builder.with_config(key.parse().expect("an S3 option"), *value);
        }
        PutConfig::from_builder(&builder)
    }

    #[test]
    fn puts_carry_the_encryption_and_checksum_the_store_is_configured_with() {
        let plain = config(&[]).expect("a plain store");
        assert_eq!(plain.region, "us-east-1");
        assert!(!plain.checksum && !plain.request_payer && plain.encryption.is_empty());

        let kms = config(&[
            ("aws_region", "eu-west-1"),
            ("aws_checksum_algorithm", "crc64nvme"),
            ("aws_server_side_encryption", "aws:kms"),
            ("aws_sse_kms_key_id", "arn:aws:kms:eu-west-1:1:key/k"),
            ("aws_sse_bucket_key_enabled", "true"),
            ("aws_request_payer", "true"),
        ])
        .expect("SSE-KMS is sent as object_store sends it");
        assert_eq!(kms.region, "eu-west-1");
        assert!(kms.checksum && kms.request_payer);
        let header = |name: &str| kms.encryption.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header("x-amz-server-side-encryption"), Some("aws:kms"));
        assert_eq!(
            header("x-amz-server-side-encryption-aws-kms-key-id"),
            Some("arn:aws:kms:eu-west-1:1:key/k")
        );
        assert_eq!(header("x-amz-server-side-encryption-bucket-key-enabled"), Some("true"));
    }

    #[test]
    fn what_the_put_cannot_reproduce_is_left_to_object_store() {
        assert!(config(&[("aws_skip_signature", "true")]).is_none(), "anonymous");
        assert!(
            config(&[
                ("aws_server_side_encryption", "sse-c"),
                (
                    "aws_sse_customer_key_base64",
                    "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
                ),
            ])
            .is_none(),
            "SSE-C"
        );
    }
}
