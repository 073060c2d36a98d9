//! The Azure [`Extensions`]: version-level immutability (WORM) and legal holds on blob
//! versions, whether a container supports them, and deleting every version of a blob for
//! disposition. `object_store` sends none of these requests.
//!
//! - `worm_support`: Get Container Properties (`GET <container>?restype=container`), whose
//!   `x-ms-immutable-storage-with-versioning-enabled: true` says the container has
//!   version-level immutability support;
//! - `set_retention`: Set Blob Immutability Policy (`PUT <blob>?comp=immutabilityPolicies`,
//!   with `versionid` for a given version), `x-ms-immutability-policy-until-date` in RFC 1123
//!   form and `x-ms-immutability-policy-mode` `Unlocked` (governance) or `Locked`
//!   (compliance);
//! - `set_legal_hold`: Set Blob Legal Hold (`PUT <blob>?comp=legalhold`, `x-ms-legal-hold`);
//! - `lock_state`: the same headers of Get Blob Properties (`HEAD <blob>`), and
//!   `x-ms-legal-hold`;
//! - `delete_versions`: List Blobs with `include=versions` under the blob's name, then Delete
//!   Blob on the blob and with `versionid=` on each version. The service refuses a version
//!   under an unexpired policy or a legal hold; that refusal is the error.
//!
//! Each request is authorized by `object_store`'s own [`AzureAuthorizer`] with the credential
//! of the store's own provider ([`MicrosoftAzure::credentials`]): Shared Key for an account
//! key (what Azurite takes), a Microsoft Entra bearer token for client secrets, workload or
//! managed identities and the Azure CLI, or the query parameters of a configured SAS token;
//! nothing is signed with `azure_skip_signature`. It goes through the store's own HTTP client
//! (same TLS, proxy and timeout options). A request URL can carry a SAS token and the headers
//! a signature: neither is ever logged or put in an error, nor is any credential.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use http::header::{DATE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use object_store::azure::{AzureAuthorizer, AzureConfigKey, AzureCredential, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody};
use object_store::path::Path;
use recarch_failure::{RetryPolicy, status_class};
use serde::Deserialize;
use url::Url;

use super::Extensions;
use crate::StoreError;
use crate::probe::error_chain;
use crate::worm::{LockMode, LockState, ObjectLock, WormSupport};

/// The service version of every request: Set Blob Immutability Policy needs 2020-06-12 or
/// later, List Blobs `include=versions` 2019-12-12; this is the one `object_store` 0.14 sends.
const SERVICE_VERSION: &str = "2023-11-03";
/// The store's name in errors.
const STORE: &str = "MicrosoftAzure";
/// Pages of one version listing at most (5000 blobs each): a bound on a misbehaving server.
const MAX_LIST_PAGES: usize = 100;
/// `x-ms-version`.
static VERSION: HeaderName = HeaderName::from_static("x-ms-version");
/// Set Blob Immutability Policy's until-date, and Get Blob Properties'.
static POLICY_UNTIL: HeaderName = HeaderName::from_static("x-ms-immutability-policy-until-date");
/// Set Blob Immutability Policy's mode, and Get Blob Properties'.
static POLICY_MODE: HeaderName = HeaderName::from_static("x-ms-immutability-policy-mode");
/// Set Blob Legal Hold's, and Get Blob Properties'.
static LEGAL_HOLD: HeaderName = HeaderName::from_static("x-ms-legal-hold");
/// Get Container Properties': the container supports version-level immutability.
static VERSION_LEVEL_WORM: HeaderName = HeaderName::from_static("x-ms-immutable-storage-with-versioning-enabled");
/// The error code of a failed request, also on answers without a body (HEAD).
static ERROR_CODE: HeaderName = HeaderName::from_static("x-ms-error-code");
/// Error codes of a write or delete the service refuses because of a policy or legal hold.
const IMMUTABLE_CODES: [&str; 3] = [
    "BlobImmutableDueToPolicy",
    "BlobImmutableDueToLegalHold",
    "BlobImmutableDueToContainerPolicy",
];

/// How a request is retried when it fails on the way or the status is transient
/// (`recarch_failure::status_class`): three attempts, about 0.4 and 0.8 s apart. Every
/// request here is idempotent.
fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(400),
        max_delay: Duration::from_secs(2),
        max_total: Duration::from_secs(30),
    }
}

/// Builds the Azure store and returns it with its HTTP client.
pub(crate) fn build_azure(builder: MicrosoftAzureBuilder) -> object_store::Result<(MicrosoftAzure, HttpClient)> {
    super::KeepLastClient::build(|connector| builder.with_http_connector(connector).build())
}

/// Where the container is: its account, its name and its URL, as `object_store` resolves
/// them from the same configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    account: String,
    container: String,
    /// `https://<account>.blob.core.windows.net/<container>`, or under the configured endpoint
    /// (`http://127.0.0.1:10000/devstoreaccount1/<container>`).
    container_url: Url,
}

impl Target {
    /// The account and container of `store` (from its `Display`, the only place
    /// `object_store` shows them), and the container's URL resolved as `object_store` 0.14
    /// does: the emulator's (`AZURITE_BLOB_STORAGE_URL`, path-style with the account), the
    /// configured endpoint, or the account's public one (Fabric's when configured so).
    fn resolve(store: &MicrosoftAzure, builder: &MicrosoftAzureBuilder, url: &Url) -> Result<Target, String> {
        let shown = store.to_string();
        let (account, container) = shown
            .strip_prefix("MicrosoftAzure { account: ")
            .and_then(|rest| rest.strip_suffix(" }"))
            .and_then(|rest| rest.rsplit_once(", container: "))
            .ok_or("cannot tell the store's account and container")?;
        let flag = |key: AzureConfigKey| {
            builder
                .get_config_value(&key)
                .is_some_and(|v| super::option_flag(&v) == Some(true))
        };
        let parse = |text: &str| Url::parse(text).map_err(|e| format!("the blob endpoint is not a URL: {e}"));
        let mut container_url = if flag(AzureConfigKey::UseEmulator) {
            let base = std::env::var("AZURITE_BLOB_STORAGE_URL").unwrap_or_else(|_| "http://127.0.0.1:10000".into());
            let mut base = parse(&base)?;
            base.path_segments_mut()
                .map_err(|()| "the emulator URL cannot take a path")?
                .push(account);
            base
        } else if let Some(endpoint) = builder.get_config_value(&AzureConfigKey::Endpoint) {
            parse(&endpoint)?
        } else if flag(AzureConfigKey::UseFabricEndpoint)
            || url.host_str().is_some_and(|h| h.ends_with(".fabric.microsoft.com"))
        {
            parse(&format!("https://{account}.blob.fabric.microsoft.com"))?
        } else {
            parse(&format!("https://{account}.blob.core.windows.net"))?
        };
        container_url
            .path_segments_mut()
            .map_err(|()| "the blob endpoint cannot take a path")?
            .push(container);
        Ok(Target {
            account: account.to_owned(),
            container: container.to_owned(),
            container_url,
        })
    }
}

/// The Azure [`Extensions`]: the store (for its credential provider), its HTTP client, where
/// the container is, and the archive's prefix in it.
pub(crate) struct AzureExtensions {
    azure: Arc<MicrosoftAzure>,
    http: HttpClient,
    target: Target,
    prefix: Path,
    /// `false` with `azure_skip_signature`: requests go unauthenticated, as the store's do.
    sign: bool,
}

impl std::fmt::Debug for AzureExtensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the store's own Debug: its credential provider holds the key.
        f.debug_struct("AzureExtensions")
            .field("account", &self.target.account)
            .field("container", &self.target.container)
            .field("prefix", &self.prefix.as_ref())
            .finish_non_exhaustive()
    }
}

/// One request: what it is called in errors, and its method, URL and headers.
#[derive(Debug)]
struct Call {
    op: &'static str,
    method: Method,
    url: Url,
    headers: Vec<(&'static HeaderName, HeaderValue)>,
}

/// The answer to a [`Call`].
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl AzureExtensions {
    /// The extensions of `azure`, built by [`build_azure`] from `builder` for the archive
    /// `url` (with `prefix`, the archive's path in the container). `Err` says why the
    /// container cannot be located.
    pub(crate) fn new(
        azure: Arc<MicrosoftAzure>,
        http: HttpClient,
        builder: &MicrosoftAzureBuilder,
        url: &Url,
        prefix: Path,
    ) -> Result<Self, String> {
        let target = Target::resolve(&azure, builder, url)?;
        let sign = builder
            .get_config_value(&AzureConfigKey::SkipSignature)
            .is_none_or(|v| super::option_flag(&v) != Some(true));
        Ok(Self {
            azure,
            http,
            target,
            prefix,
            sign,
        })
    }

    /// The blob's name in the container: the archive's prefix, then `key`.
    fn blob_name(&self, key: &str) -> Result<Path, StoreError> {
        let archive_key = Path::parse(key).map_err(|e| StoreError::corrupt(key, e.to_string()))?;
        Ok(self.prefix.parts().chain(archive_key.parts()).collect())
    }

    /// The blob's URL, its path encoded as `object_store` encodes it.
    fn blob_url(&self, key: &str) -> Result<Url, StoreError> {
        let name = self.blob_name(key)?;
        let mut url = self.target.container_url.clone();
        url.path_segments_mut()
            .map_err(|()| StoreError::from_backend(key, generic("the container URL cannot take a path".into())))?
            .extend(name.parts());
        Ok(url)
    }

    /// Set Blob Immutability Policy on `version` (`None`: the current one) of `key`.
    fn retention_call(&self, key: &str, version: Option<&str>, lock: &ObjectLock) -> Result<Call, StoreError> {
        let mut url = self.blob_url(key)?;
        url.query_pairs_mut().append_pair("comp", "immutabilityPolicies");
        if let Some(version) = version {
            url.query_pairs_mut().append_pair("versionid", version);
        }
        let until = header_value(key, &rfc1123(lock.retain_until))?;
        Ok(Call {
            op: "Set Blob Immutability Policy",
            method: Method::PUT,
            url,
            headers: vec![
                (&POLICY_UNTIL, until),
                (&POLICY_MODE, HeaderValue::from_static(lock.mode.azure_name())),
            ],
        })
    }

    /// Set Blob Legal Hold on `version` (`None`: the current one) of `key`.
    fn legal_hold_call(&self, key: &str, version: Option<&str>, on: bool) -> Result<Call, StoreError> {
        let mut url = self.blob_url(key)?;
        url.query_pairs_mut().append_pair("comp", "legalhold");
        if let Some(version) = version {
            url.query_pairs_mut().append_pair("versionid", version);
        }
        Ok(Call {
            op: "Set Blob Legal Hold",
            method: Method::PUT,
            url,
            headers: vec![(&LEGAL_HOLD, HeaderValue::from_static(if on { "true" } else { "false" }))],
        })
    }

    /// Delete Blob: `version`, or the blob itself (its current version).
    fn delete_call(&self, key: &str, version: Option<&str>) -> Result<Call, StoreError> {
        let mut url = self.blob_url(key)?;
        if let Some(version) = version {
            url.query_pairs_mut().append_pair("versionid", version);
        }
        Ok(Call {
            op: "Delete Blob",
            method: Method::DELETE,
            url,
            headers: Vec::new(),
        })
    }

    /// One page of List Blobs with `include=versions` under `name`.
    fn list_versions_call(&self, name: &str, marker: Option<&str>) -> Call {
        let mut url = self.target.container_url.clone();
        url.query_pairs_mut()
            .append_pair("restype", "container")
            .append_pair("comp", "list")
            .append_pair("include", "versions")
            .append_pair("prefix", name);
        if let Some(marker) = marker {
            url.query_pairs_mut().append_pair("marker", marker);
        }
        Call {
            op: "List Blobs",
            method: Method::GET,
            url,
            headers: Vec::new(),
        }
    }

    /// Sends `call`, retried within [`retry_policy`] on transport errors and transient
    /// statuses; any other answer is returned for the caller to judge. Errors name `what`.
    async fn send(&self, what: &str, call: &Call) -> Result<Answer, StoreError> {
        let policy = retry_policy();
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (error, retryable) = match self.try_send(call).await {
                Ok(answer) if !status_class(answer.status.as_u16()).is_retryable() => return Ok(answer),
                Ok(answer) => {
                    let error = status_error(call.op, answer.status, &answer.headers, &answer.body);
                    (StoreError::from_backend(what, error), true)
                }
                Err((error, retryable)) => (StoreError::from_backend(what, error), retryable),
            };
            let log = |_| tracing::debug!(op = call.op, error = %error_chain(&error), attempt, "Azure request failed; retrying");
            if !retryable || !policy.wait_before_retry(attempt, started.elapsed(), None, log).await {
                return Err(error);
            }
        }
    }

    /// One attempt at `call`: the error, and whether another attempt may pass.
    async fn try_send(&self, call: &Call) -> Result<Answer, (object_store::Error, bool)> {
        let cannot_build = |e: http::Error| (generic(format!("cannot build the {} request: {e}", call.op)), false);
        let mut request: HttpRequest = http::Request::builder()
            .method(call.method.clone())
            .uri(call.url.as_str())
            .body(HttpRequestBody::empty())
            .map_err(cannot_build)?;
        let headers = request.headers_mut();
        headers.insert(VERSION.clone(), HeaderValue::from_static(SERVICE_VERSION));
        for (name, value) in &call.headers {
            headers.insert((*name).clone(), value.clone());
        }
        // Authorized afresh for each attempt (a new date, a refreshed token).
        self.authorize(&mut request).await.map_err(|e| (e, false))?;
        let response = self.http.execute(request).await.map_err(|e| {
            (
                generic(format!("{} request failed: {}", call.op, error_chain(&e))),
                true,
            )
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().bytes().await.map_err(|e| {
            (
                generic(format!("reading the {} answer failed: {}", call.op, error_chain(&e))),
                true,
            )
        })?;
        Ok(Answer { status, headers, body })
    }

    /// Adds the date and the store's credential to `request`: a Shared Key `Authorization`,
    /// a bearer token, or the SAS token's query parameters.
    async fn authorize(&self, request: &mut HttpRequest) -> object_store::Result<()> {
        if !self.sign {
            let date = header_value("", &rfc1123(Utc::now())).map_err(|_| generic("cannot date the request".into()))?;
            request.headers_mut().insert(DATE, date);
            return Ok(());
        }
        let credential = self.azure.credentials().get_credential().await?;
        // `AzureAuthorizer` would panic on a token that is no header value; refuse it instead.
        if let AzureCredential::BearerToken(token) = credential.as_ref()
            && HeaderValue::from_str(&format!("Bearer {token}")).is_err()
        {
            return Err(generic("the bearer token has characters a header cannot carry".into()));
        }
        AzureAuthorizer::new(&credential, &self.target.account).try_authorize(request)
    }

    /// Every version of the blob `name` (and the blob itself when versioning is off), as
    /// List Blobs shows them.
    async fn list_versions(&self, key: &str, name: &str) -> Result<Vec<ListedBlob>, StoreError> {
        let mut found = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let call = self.list_versions_call(name, marker.as_deref());
            let answer = self.send(key, &call).await?;
            if !answer.status.is_success() {
                let error = status_error(call.op, answer.status, &answer.headers, &answer.body);
                return Err(StoreError::from_backend(key, error));
            }
            let page = parse_list(&answer.body).map_err(|e| StoreError::corrupt(key, e))?;
            // Filtered here: the prefix also lists `<name>x`, and a server may ignore it.
            found.extend(page.blobs.blob.into_iter().filter(|b| b.name == name));
            match page.next_marker.filter(|m| !m.is_empty()) {
                Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
                _ => return Ok(found),
            }
        }
        Ok(found)
    }

    /// Deletes the blob (`version: None`) or one version; `false` if it was already gone.
    async fn delete(&self, key: &str, version: Option<&str>) -> Result<bool, StoreError> {
        let call = self.delete_call(key, version)?;
        let answer = self.send(key, &call).await?;
        match answer.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            status => Err(StoreError::from_backend(
                key,
                status_error(call.op, status, &answer.headers, &answer.body),
            )),
        }
    }
}

impl Extensions for AzureExtensions {
    fn keeps_incomplete_uploads(&self) -> bool {
        // Uncommitted blocks go away by themselves after seven days.
        false
    }

    fn worm_support(&self) -> BoxFuture<'_, Result<WormSupport, StoreError>> {
        Box::pin(async move {
            let Target { account, container, .. } = &self.target;
            let mut url = self.target.container_url.clone();
            url.query_pairs_mut().append_pair("restype", "container");
            let call = Call {
                op: "Get Container Properties",
                method: Method::GET,
                url,
                headers: Vec::new(),
            };
            let answer = self.send(container, &call).await?;
            if !answer.status.is_success() {
                let error = status_error(call.op, answer.status, &answer.headers, &answer.body);
                return Err(StoreError::from_backend(container.as_str(), error));
            }
            let enabled = answer
                .headers
                .get(&VERSION_LEVEL_WORM)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            Ok(if enabled {
                WormSupport::Enforced
            } else {
                WormSupport::NotEnabled(format!(
                    "container {container} in storage account {account} has no version-level immutability: \
                     enable blob versioning on the account (az storage account blob-service-properties update \
                     --account-name {account} --enable-versioning true), then create the container with \
                     version-level immutability support (az storage container-rm create --storage-account \
                     {account} --name {container} --enable-vlw) or migrate this one (az storage container-rm \
                     migrate-vlw --storage-account {account} --name {container})"
                ))
            })
        })
    }

    fn lock_state<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<LockState>, StoreError>> {
        Box::pin(async move {
            let call = Call {
                op: "Get Blob Properties",
                method: Method::HEAD,
                url: self.blob_url(key)?,
                headers: Vec::new(),
            };
            let answer = self.send(key, &call).await?;
            match answer.status {
                s if s.is_success() => parse_lock_state(&answer.headers)
                    .map(Some)
                    .map_err(|e| StoreError::corrupt(key, e)),
                StatusCode::NOT_FOUND => Ok(None),
                status => Err(StoreError::from_backend(
                    key,
                    status_error(call.op, status, &answer.headers, &answer.body),
                )),
            }
        })
    }

    fn set_retention<'a>(
        &'a self,
        key: &'a str,
        version: Option<&'a str>,
        lock: &'a ObjectLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let call = self.retention_call(key, version, lock)?;
            self.expect_success(key, &call).await
        })
    }

    fn set_legal_hold<'a>(
        &'a self,
        key: &'a str,
        version: Option<&'a str>,
        on: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let call = self.legal_hold_call(key, version, on)?;
            self.expect_success(key, &call).await
        })
    }

    fn delete_versions<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move {
            let name = self.blob_name(key)?;
            let listed = self.list_versions(key, name.as_ref()).await?;
            if listed.is_empty() {
                return Ok(Some(0));
            }
            // The blob first: with versioning on, its current version becomes a previous
            // version (same id) that the loop below deletes; with it off, that is all.
            self.delete(key, None).await?;
            for version in listed.iter().filter_map(|b| b.version_id.as_deref()) {
                self.delete(key, Some(version)).await?;
            }
            Ok(Some(listed.len() as u64))
        })
    }
}

impl AzureExtensions {
    /// Sends `call` and wants a 2xx.
    async fn expect_success(&self, key: &str, call: &Call) -> Result<(), StoreError> {
        let answer = self.send(key, call).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(StoreError::from_backend(
                key,
                status_error(call.op, answer.status, &answer.headers, &answer.body),
            ))
        }
    }
}

/// `Sun, 06 Dec 2026 15:00:00 GMT`: RFC 1123, as Azure's date headers take it.
fn rfc1123(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn header_value(key: &str, text: &str) -> Result<HeaderValue, StoreError> {
    HeaderValue::from_str(text).map_err(|e| StoreError::from_backend(key, generic(format!("not a header value: {e}"))))
}

/// The retention and legal hold in Get Blob Properties' headers.
fn parse_lock_state(headers: &HeaderMap) -> Result<LockState, String> {
    let text = |name: &HeaderName| -> Result<Option<&str>, String> {
        headers
            .get(name)
            .map(|v| v.to_str().map(str::trim).map_err(|_| format!("{name} is not text")))
            .transpose()
    };
    let retention = match text(&POLICY_UNTIL)? {
        None | Some("") => None,
        Some(until) => {
            let retain_until = DateTime::parse_from_rfc2822(until)
                .or_else(|_| DateTime::parse_from_rfc3339(until))
                .map_err(|e| format!("{POLICY_UNTIL} {until:?} is not a date: {e}"))?
                .with_timezone(&Utc);
            let mode = match text(&POLICY_MODE)?.map(str::to_ascii_lowercase).as_deref() {
                Some("locked") => LockMode::Compliance,
                // `mutable`: an unlocked policy too (it can be shortened or removed).
                Some("unlocked" | "mutable") | None => LockMode::Governance,
                Some(other) => return Err(format!("{POLICY_MODE} {other:?} is neither unlocked nor locked")),
            };
            Some(ObjectLock::until(mode, retain_until))
        }
    };
    let legal_hold = text(&LEGAL_HOLD)?.is_some_and(|v| v.eq_ignore_ascii_case("true"));
    Ok(LockState { retention, legal_hold })
}

/// One page of a List Blobs answer (`EnumerationResults`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPage {
    #[serde(default)]
    blobs: ListedBlobs,
    #[serde(default)]
    next_marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ListedBlobs {
    #[serde(default, rename = "Blob")]
    blob: Vec<ListedBlob>,
}

/// A blob or blob version in a listing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedBlob {
    name: String,
    /// Absent when versioning is off.
    #[serde(default)]
    version_id: Option<String>,
}

fn parse_list(body: &[u8]) -> Result<ListPage, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("List Blobs answer not UTF-8: {e}"))?;
    quick_xml::de::from_str(text).map_err(|e| format!("not a List Blobs answer: {e}"))
}

/// An error naming the operation, the status, and the service's error code and message
/// (never the request: its URL may carry a SAS token).
fn status_error(op: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> object_store::Error {
    let parsed = super::ServiceError::parse(body);
    let code = headers
        .get(&ERROR_CODE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or(parsed.code);
    // The first line: the others are a request id and a time.
    let message: String = parsed
        .message
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    let immutable = IMMUTABLE_CODES.contains(&code.as_str());
    let mut reason = format!("{op} answered {status}: {code} {message}")
        .trim_end()
        .to_owned();
    if immutable {
        reason.push_str(" (the version is under an unexpired immutability policy or a legal hold)");
    }
    let source: Box<dyn std::error::Error + Send + Sync> = reason.into();
    match status.as_u16() {
        401 | 403 => object_store::Error::PermissionDenied {
            path: String::new(),
            source,
        },
        409 if immutable => object_store::Error::PermissionDenied {
            path: String::new(),
            source,
        },
        404 => object_store::Error::NotFound {
            path: String::new(),
            source,
        },
        405 | 501 => object_store::Error::NotSupported { source },
        _ => object_store::Error::Generic { store: STORE, source },
    }
}

fn generic(reason: String) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use object_store::signer::Signer;

    use super::*;

    /// Azurite's published development key (not a secret).
    const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn extensions(url: &str, options: &[(&str, &str)]) -> AzureExtensions {
        let url = Url::parse(url).expect("a URL");
        let mut builder = MicrosoftAzureBuilder::new().with_url(url.as_str());
        for (key, value) in options {
            builder = builder.with_config(key.parse().expect("an Azure option"), *value);
        }
        let (azure, http) = build_azure(builder.clone()).expect("builds offline");
        let prefix = object_store::ObjectStoreScheme::parse(&url).expect("an Azure URL").1;
        AzureExtensions::new(Arc::new(azure), http, &builder, &url, prefix).expect("locates the container")
    }

    /// The blob URLs built here are the ones `object_store` itself requests, for each way of
    /// naming the container and its endpoint (compared with its signed URLs, query dropped).
    #[tokio::test]
    async fn blob_urls_are_object_stores() {
        let cases: [(&str, &[(&str, &str)]); 5] = [
            (
                "az://recarch-test/p",
                &[
                    ("azure_storage_account_name", "devstoreaccount1"),
                    ("azure_storage_account_key", DEV_KEY),
                    ("azure_storage_endpoint", "http://127.0.0.1:10000/devstoreaccount1"),
                ],
            ),
            (
                "az://recordings/teams",
                &[
                    ("azure_storage_account_name", "contosoarchive"),
                    ("azure_storage_account_key", DEV_KEY),
                ],
            ),
            (
                "https://contosoarchive.blob.core.windows.net/recordings/teams",
                &[("azure_storage_account_key", DEV_KEY)],
            ),
            (
                "abfss://recordings@contosoarchive.dfs.core.windows.net/teams",
                &[("azure_storage_account_key", DEV_KEY)],
            ),
            ("az://recarch/archive", &[("azure_storage_use_emulator", "true")]),
        ];
        for (url, options) in cases {
            let ext = extensions(url, options);
            let key = "manifests/a b+c%d.json";
            let ours = ext.blob_url(key).expect("a valid key");
            let full = ext.blob_name(key).expect("a valid key");
            let mut theirs = ext
                .azure
                .signed_url(Method::GET, &full, Duration::from_secs(60))
                .await
                .expect("signs with an account key");
            theirs.set_query(None);
            assert_eq!(ours, theirs, "{url}");
        }
        let ext = extensions(
            "az://recordings/teams",
            &[
                ("azure_storage_account_name", "contosoarchive"),
                ("azure_storage_account_key", DEV_KEY),
            ],
        );
        assert_eq!(
            ext.blob_url("blobs/sha256/ab").expect("a valid key").as_str(),
            "https://contosoarchive.blob.core.windows.net/recordings/teams/blobs/sha256/ab"
        );
        assert_eq!(ext.target.account, "contosoarchive");
        assert_eq!(ext.target.container, "recordings");
    }

    fn headers(call: &Call) -> Vec<(String, String)> {
        call.headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().expect("text").to_owned()))
            .collect()
    }

    #[test]
    fn the_documented_requests() {
        let ext = extensions(
            "az://recordings/teams",
            &[
                ("azure_storage_account_name", "contosoarchive"),
                ("azure_storage_account_key", DEV_KEY),
            ],
        );
        let until = DateTime::parse_from_rfc3339("2033-12-05T09:30:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        let call = ext
            .retention_call(
                "manifests/x.json",
                Some("2026-12-06T15:00:00.1234567Z"),
                &ObjectLock::until(LockMode::Compliance, until),
            )
            .expect("a request");
        assert_eq!(call.method, Method::PUT);
        assert_eq!(
            call.url.as_str(),
            "https://contosoarchive.blob.core.windows.net/recordings/teams/manifests/x.json\
             ?comp=immutabilityPolicies&versionid=2026-12-06T15%3A00%3A00.1234567Z"
        );
        assert_eq!(
            headers(&call),
            [
                (
                    "x-ms-immutability-policy-until-date".into(),
                    "Mon, 05 Dec 2033 09:30:00 GMT".into()
                ),
                ("x-ms-immutability-policy-mode".into(), "Locked".into()),
            ]
        );
        let call = ext
            .retention_call("k", None, &ObjectLock::until(LockMode::Governance, until))
            .expect("a request");
        assert_eq!(call.url.query(), Some("comp=immutabilityPolicies"));
        assert_eq!(headers(&call)[1].1, "Unlocked");

        let call = ext.legal_hold_call("k", None, true).expect("a request");
        assert_eq!(
            call.url.as_str(),
            "https://contosoarchive.blob.core.windows.net/recordings/teams/k?comp=legalhold"
        );
        assert_eq!(headers(&call), [("x-ms-legal-hold".into(), "true".into())]);
        let call = ext.legal_hold_call("k", Some("v1"), false).expect("a request");
        assert_eq!(call.url.query(), Some("comp=legalhold&versionid=v1"));
        assert_eq!(headers(&call), [("x-ms-legal-hold".into(), "false".into())]);

        let call = ext.delete_call("k", Some("v1")).expect("a request");
        assert_eq!((call.method, call.url.query()), (Method::DELETE, Some("versionid=v1")));
        let call = ext.list_versions_call("teams/k", Some("m"));
        assert_eq!(
            call.url.as_str(),
            "https://contosoarchive.blob.core.windows.net/recordings\
             ?restype=container&comp=list&include=versions&prefix=teams%2Fk&marker=m"
        );
        assert!(ext.blob_url("../x").is_err() || ext.blob_url("a//b").is_err());
    }

    fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).expect("a header name"),
                    HeaderValue::from_str(v).expect("a header value"),
                )
            })
            .collect()
    }

    #[test]
    fn lock_state_from_blob_properties() {
        let state = parse_lock_state(&header_map(&[
            ("x-ms-immutability-policy-until-date", "Mon, 05 Dec 2033 09:30:00 GMT"),
            ("x-ms-immutability-policy-mode", "locked"),
            ("x-ms-legal-hold", "true"),
        ]))
        .expect("parses");
        let retention = state.retention.expect("a retention");
        assert_eq!(retention.mode, LockMode::Compliance);
        assert_eq!(retention.until_rfc3339(), "2033-12-05T09:30:00Z");
        assert!(state.legal_hold);

        let state = parse_lock_state(&header_map(&[
            ("x-ms-immutability-policy-until-date", "Mon, 05 Dec 2033 09:30:00 GMT"),
            ("x-ms-immutability-policy-mode", "Unlocked"),
            ("x-ms-legal-hold", "false"),
        ]))
        .expect("parses");
        assert_eq!(state.retention.expect("a retention").mode, LockMode::Governance);
        assert!(!state.legal_hold);

        assert_eq!(
            parse_lock_state(&HeaderMap::new()).expect("parses"),
            LockState::default()
        );
        for bad in [
            &[("x-ms-immutability-policy-until-date", "tomorrow")][..],
            &[
                ("x-ms-immutability-policy-until-date", "Mon, 05 Dec 2033 09:30:00 GMT"),
                ("x-ms-immutability-policy-mode", "sideways"),
            ],
        ] {
            assert!(parse_lock_state(&header_map(bad)).is_err(), "{bad:?}");
        }
        let mut odd = HeaderMap::new();
        odd.insert(
            &POLICY_UNTIL,
            HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes"),
        );
        assert!(parse_lock_state(&odd).is_err());
    }

    #[test]
    fn parses_a_version_listing() {
        let page = parse_list(
            br#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="https://a.blob.core.windows.net/" ContainerName="c">
  <Prefix>p/k</Prefix>
  <Blobs>
    <Blob><Name>p/k</Name><VersionId>2026-12-01T10:00:00.0000000Z</VersionId>
      <Properties><Content-Length>3</Content-Length></Properties></Blob>
    <Blob><Name>p/k</Name><VersionId>2026-12-02T10:00:00.0000000Z</VersionId>
      <IsCurrentVersion>true</IsCurrentVersion><Properties/></Blob>
    <Blob><Name>p/kx</Name><VersionId>2026-12-02T10:00:00.0000000Z</VersionId></Blob>
  </Blobs>
  <NextMarker>next</NextMarker>
</EnumerationResults>"#,
        )
        .expect("parses");
        assert_eq!(page.blobs.blob.len(), 3);
        assert_eq!(
            page.blobs.blob[1].version_id.as_deref(),
            Some("2026-12-02T10:00:00.0000000Z")
        );
        assert_eq!(page.next_marker.as_deref(), Some("next"));
        let empty = parse_list(b"<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>").expect("parses");
        assert!(empty.blobs.blob.is_empty());
        assert!(parse_list(b"<EnumerationResults><Blobs><Blob>").is_err());
        assert!(parse_list(&[0xff]).is_err());
    }

    #[test]
    fn errors_name_the_code_and_never_panic() {
        let e = status_error(
            "Delete Blob",
            StatusCode::CONFLICT,
            &header_map(&[("x-ms-error-code", "BlobImmutableDueToPolicy")]),
            b"<?xml version=\"1.0\"?><Error><Code>BlobImmutableDueToPolicy</Code>\
              <Message>This operation is not permitted as the blob is immutable due to a policy.\nRequestId:x\nTime:y</Message></Error>",
        );
        assert!(matches!(e, object_store::Error::PermissionDenied { .. }), "{e}");
        let shown = e.to_string();
        assert!(
            shown.contains("Delete Blob answered 409 Conflict: BlobImmutableDueToPolicy"),
            "{shown}"
        );
        assert!(
            shown.contains("immutability policy or a legal hold") && !shown.contains("RequestId"),
            "{shown}"
        );
        let e = status_error("Get Blob Properties", StatusCode::NOT_FOUND, &HeaderMap::new(), b"");
        assert!(matches!(e, object_store::Error::NotFound { .. }));
        let e = status_error("x", StatusCode::CONFLICT, &HeaderMap::new(), &[0xff, 0xfe]);
        assert!(matches!(e, object_store::Error::Generic { .. }));
        let e = status_error(
            "x",
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            b"<Error><Code>AuthorizationPermissionMismatch</Code></Error>",
        );
        assert!(matches!(e, object_store::Error::PermissionDenied { .. }));
        assert!(e.to_string().contains("AuthorizationPermissionMismatch"));
    }

    /// A request that cannot reach the store fails with a message that shows neither the
    /// SAS token of the URL, the account key nor a signature.
    #[tokio::test]
    async fn errors_show_no_credential_or_signed_url() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}/acct", closed.local_addr().expect("addr"));
        drop(closed);
        let sas = "sv=2023-11-03&ss=b&srt=co&sp=rwdlaci&se=2099-01-01T00:00:00Z&sig=THE-SAS-SIGNATURE";
        for credential in [("azure_storage_sas_key", sas), ("azure_storage_account_key", DEV_KEY)] {
            let ext = extensions(
                "az://c/p",
                &[
                    ("azure_storage_account_name", "acct"),
                    ("azure_storage_endpoint", endpoint.as_str()),
                    ("azure_allow_http", "true"),
                    credential,
                ],
            );
            let lock = ObjectLock::until(LockMode::Governance, Utc::now());
            let errors = [
                ext.set_retention("k", None, &lock)
                    .await
                    .expect_err("nothing listens there"),
                ext.worm_support().await.expect_err("nothing listens there"),
                ext.delete_versions("k").await.expect_err("nothing listens there"),
            ];
            for err in errors {
                let mut shown = format!("{err}\n{err:?}");
                let mut source = std::error::Error::source(&err);
                while let Some(e) = source {
                    shown.push_str(&format!("\n{e}\n{e:?}"));
                    source = e.source();
                }
                assert!(shown.to_ascii_lowercase().contains("connection refused"), "{shown}");
                for secret in ["THE-SAS-SIGNATURE", "sig=", DEV_KEY, "SharedKey", "http://"] {
                    assert!(!shown.contains(secret), "{secret} shown: {shown}");
                }
            }
            assert!(!format!("{ext:?}").contains("Eby8"));
        }
    }
}
