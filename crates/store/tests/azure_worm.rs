//! Azure version-level immutability, legal holds and version deletes, checked against the
//! documented REST API with a recording proxy in front of Azurite.
//!
//! Azurite implements none of Set Blob Immutability Policy, Set Blob Legal Hold, the
//! container's `x-ms-immutable-storage-with-versioning-enabled` or blob versions
//! (Azure/Azurite#2648). So the archive talks to a loopback proxy that records every request
//! (method, path, query, headers), checks its Shared Key signature with the account key
//! (its own implementation of Microsoft's algorithm, itself checked below against the
//! documented examples and against Azurite), answers those requests itself the way the
//! service documents it, and forwards everything else to Azurite, which checks the
//! signature again. This shows the requests are the documented ones and authenticated; it
//! does not show that a real service enforces them.
//!
//! Needs the loopback Azurite of `scripts/emulators.sh` (the `RECARCH_TEST_AZURE_*`
//! variables); skipped without it, unless `RECARCH_REQUIRE_EMULATORS=1`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use http::{HeaderMap, Method, StatusCode};
use object_store::ObjectStoreExt;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::client::{ClientOptions, HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::path::Path;
use recarch_store::{Archive, LockMode, LockState, ObjectLock, StoreError, WormPolicy, WormSupport};
use sha2::{Digest, Sha256};

// ------------------------------------------------------------------ Shared Key, independently

/// HMAC-SHA256 (RFC 2104), written out here so that the proxy's check shares nothing with
/// `object_store`'s signing.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(Sha256::digest(key).as_slice());
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    let outer = Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(outer.as_slice());
    out
}

/// `%xx` decoding (and nothing else: `+` stays, as in a URL path).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: u8| (b as char).to_digit(16);
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request as the proxy sees it: method, raw (encoded) path, decoded query pairs in
/// order, and headers with lowercase names.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    /// The query as sent (`None`: made here, serialized from `query`).
    raw_query: Option<String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `/path?query` as sent.
    fn request_target(&self) -> String {
        if let Some(raw) = &self.raw_query {
            return format!("{}?{raw}", self.path);
        }
        if self.query.is_empty() {
            return self.path.clone();
        }
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.query)
            .finish();
        format!("{}?{query}", self.path)
    }
}

/// The Shared Key string-to-sign of Microsoft's "Authorize with Shared Key" (version
/// 2015-02-21 and later: a zero Content-Length is an empty line).
fn string_to_sign(account: &str, seen: &Seen) -> String {
    let standard = |name: &str| {
        let values: Vec<&str> = seen
            .headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        let value = values.join(",");
        if name == "content-length" && value == "0" {
            String::new()
        } else {
            value
        }
    };
    let mut out = seen.method.clone();
    for name in [
        "content-encoding",
        "content-language",
        "content-length",
        "content-md5",
        "content-type",
        "date",
        "if-modified-since",
        "if-match",
        "if-none-match",
        "if-unmodified-since",
        "range",
    ] {
        out.push('\n');
        out.push_str(&standard(name));
    }
    out.push('\n');
    // CanonicalizedHeaders: every x-ms- header, lowercase, sorted, one `name:value` a line.
    let mut ms: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in &seen.headers {
        if name.starts_with("x-ms-") {
            ms.entry(name).or_default().push(value.trim());
        }
    }
    for (name, values) in ms {
        out.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    // CanonicalizedResource: /account, the encoded path, then each query name (lowercase,
    // sorted) with its decoded values sorted and joined by commas.
    out.push_str(&format!("/{account}{}", seen.path));
    let mut params: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, value) in &seen.query {
        params.entry(name.to_lowercase()).or_default().push(value);
    }
    for (name, mut values) in params {
        values.sort_unstable();
        out.push_str(&format!("\n{name}:{}", values.join(",")));
    }
    out
}

/// `SharedKey <account>:<signature>` for `seen` with `key`.
fn shared_key(account: &str, key: &[u8], seen: &Seen) -> String {
    let signature = BASE64.encode(hmac_sha256(key, string_to_sign(account, seen).as_bytes()));
    format!("SharedKey {account}:{signature}")
}

/// Whether `seen` carries the right Shared Key signature.
fn verify(account: &str, key: &[u8], seen: &Seen) -> Result<(), String> {
    let given = seen.header("authorization").ok_or("no Authorization header")?;
    if !given.starts_with("SharedKey ") {
        return Err("not a SharedKey Authorization".into());
    }
    if given == shared_key(account, key, seen) {
        Ok(())
    } else {
        Err(format!(
            "wrong signature; expected string to sign {:?}",
            string_to_sign(account, seen)
        ))
    }
}

#[test]
fn hmac_matches_rfc_4231() {
    // RFC 4231, test cases 2 and 6 (a key longer than the block).
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex::encode(hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

fn seen(method: &str, path: &str, query: &[(&str, &str)], headers: &[(&str, &str)]) -> Seen {
    Seen {
        method: method.into(),
        path: path.into(),
        raw_query: None,
        query: query.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        headers: headers.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
    }
}

/// The worked examples of Microsoft's "Authorize with Shared Key": the string to sign of a
/// Get Container Metadata request, of a Create Container (zero Content-Length: an empty
/// line), and the canonicalized resource of a listing with a repeated parameter.
#[test]
fn string_to_sign_matches_the_documented_examples() {
    let date = ("x-ms-date", "Fri, 26 Jun 2015 23:39:12 GMT");
    let version = ("x-ms-version", "2015-02-21");
    assert_eq!(
        string_to_sign(
            "myaccount",
            &seen(
                "GET",
                "/mycontainer",
                &[("restype", "container"), ("comp", "metadata"), ("timeout", "20")],
                &[date, version],
            ),
        ),
        "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n\
         /myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20"
    );
    assert_eq!(
        string_to_sign(
            "myaccount",
            &seen(
                "PUT",
                "/mycontainer",
                &[("restype", "container"), ("timeout", "30")],
                &[date, version, ("content-length", "0")],
            ),
        ),
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n\
         /myaccount/mycontainer\nrestype:container\ntimeout:30"
    );
    let listing = string_to_sign(
        "myaccount",
        &seen(
            "GET",
            "/mycontainer",
            &[
                ("restype", "container"),
                ("comp", "list"),
                ("include", "snapshots"),
                ("include", "metadata"),
                ("include", "uncommittedblobs"),
            ],
            &[],
        ),
    );
    assert!(
        listing.ends_with(
            "/myaccount/mycontainer\ncomp:list\ninclude:metadata,snapshots,uncommittedblobs\nrestype:container"
        ),
        "{listing}"
    );
}

// ------------------------------------------------------------------ the recording proxy

/// One request the proxy saw, whether its signature was right, and who answered.
#[derive(Debug, Clone)]
struct Recorded {
    seen: Seen,
    auth: Result<(), String>,
    by_proxy: bool,
    status: u16,
}

/// An immutability policy as the proxy keeps it.
#[derive(Debug, Clone, Copy)]
struct Policy {
    until: DateTime<Utc>,
    locked: bool,
}

/// The proxy: Azurite's address, the account and its key, which containers have
/// version-level immutability, and what the documented service would keep.
struct Proxy {
    upstream: String,
    account: String,
    key: Vec<u8>,
    worm_containers: HashSet<String>,
    client: HttpClient,
    log: Mutex<Vec<Recorded>>,
    /// By (encoded blob path, version id; `None`: the current version).
    policies: Mutex<HashMap<(String, Option<String>), Policy>>,
    holds: Mutex<HashMap<(String, Option<String>), bool>>,
    /// Blob versions by (decoded) blob name, oldest first; the last is the current one.
    versions: Mutex<BTreeMap<String, Vec<String>>>,
}

/// How many blob versions one List Blobs page of the proxy holds: small, so that the
/// extension has to follow `NextMarker`.
const PAGE: usize = 2;

fn xml_error(status: StatusCode, code: &str, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header("x-ms-error-code", code)
        .header("content-type", "application/xml")
        .body(Body::from(format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\n\
             RequestId:00000000-0000-0000-0000-000000000000\nTime:2026-01-01T00:00:00.0000000Z</Message></Error>"
        )))
        .unwrap()
}

/// A `%a, %d %b %Y %H:%M:%S GMT` date, strictly.
fn parse_rfc1123(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%a, %d %b %Y %H:%M:%S GMT")
        .ok()
        .map(|t| t.and_utc())
        .filter(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string() == text)
}

impl Proxy {
    /// The (encoded) blob path and the version of a request.
    fn target(seen: &Seen) -> (String, Option<String>) {
        (seen.path.clone(), seen.query("versionid").map(str::to_owned))
    }

    /// `/account/container/name` → `name`, decoded.
    fn blob_name(&self, path: &str) -> String {
        let mut parts = path.trim_start_matches('/').splitn(3, '/');
        let _account = parts.next();
        let _container = parts.next();
        percent_decode(parts.next().unwrap_or_default())
    }

    fn container(path: &str) -> String {
        path.trim_start_matches('/')
            .split('/')
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }

    fn ok(headers: &[(&str, String)], status: StatusCode) -> Response {
        let mut response = Response::builder()
            .status(status)
            .header("x-ms-request-id", "00000000-0000-0000-0000-000000000001")
            .header("x-ms-version", "2023-11-03")
            .header("date", Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string());
        for (k, v) in headers {
            response = response.header(*k, v.as_str());
        }
        response.body(Body::empty()).unwrap()
    }

    /// Set Blob Immutability Policy, as documented: a future RFC 1123 until-date, mode
    /// `Unlocked` or `Locked`, version 2020-06-12 or later; a locked policy is only extended.
    fn set_policy(&self, seen: &Seen) -> Response {
        if seen.header("x-ms-version").is_none_or(|v| v < "2020-06-12") {
            return xml_error(StatusCode::BAD_REQUEST, "InvalidHeaderValue", "x-ms-version");
        }
        let Some(until) = seen
            .header("x-ms-immutability-policy-until-date")
            .and_then(parse_rfc1123)
            .filter(|t| *t > Utc::now())
        else {
            return xml_error(
                StatusCode::BAD_REQUEST,
                "InvalidHeaderValue",
                "x-ms-immutability-policy-until-date",
            );
        };
        let locked = match seen.header("x-ms-immutability-policy-mode") {
            Some("Unlocked") => false,
            Some("Locked") => true,
            _ => {
                return xml_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidHeaderValue",
                    "x-ms-immutability-policy-mode",
                );
            }
        };
        let mut policies = self.policies.lock().unwrap();
        let target = Self::target(seen);
        if let Some(old) = policies.get(&target)
            && old.locked
            && (until < old.until || !locked)
        {
            return xml_error(
                StatusCode::CONFLICT,
                "ImmutabilityPolicyCannotBeShortened",
                "A locked policy can only be extended.",
            );
        }
        policies.insert(target, Policy { until, locked });
        Self::ok(
            &[
                (
                    "x-ms-immutability-policy-until-date",
                    until.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
                ),
                (
                    "x-ms-immutability-policy-mode",
                    if locked { "locked" } else { "unlocked" }.into(),
                ),
            ],
            StatusCode::OK,
        )
    }

    /// Set Blob Legal Hold: `x-ms-legal-hold` `true` or `false`.
    fn set_hold(&self, seen: &Seen) -> Response {
        let on = match seen.header("x-ms-legal-hold") {
            Some("true") => true,
            Some("false") => false,
            _ => return xml_error(StatusCode::BAD_REQUEST, "InvalidHeaderValue", "x-ms-legal-hold"),
        };
        self.holds.lock().unwrap().insert(Self::target(seen), on);
        Self::ok(&[("x-ms-legal-hold", on.to_string())], StatusCode::OK)
    }

    /// Whether the version `target` is under an unexpired policy or a legal hold.
    fn refusal(&self, target: &(String, Option<String>)) -> Option<Response> {
        if self.holds.lock().unwrap().get(target) == Some(&true) {
            return Some(xml_error(
                StatusCode::CONFLICT,
                "BlobImmutableDueToLegalHold",
                "This operation is not permitted as the blob is immutable due to a legal hold.",
            ));
        }
        match self.policies.lock().unwrap().get(target) {
            Some(policy) if policy.until > Utc::now() => Some(xml_error(
                StatusCode::CONFLICT,
                "BlobImmutableDueToPolicy",
                "This operation is not permitted as the blob is immutable due to a policy.",
            )),
            _ => None,
        }
    }

    /// List Blobs with `include=versions`, `PAGE` versions a page.
    fn list_versions(&self, seen: &Seen) -> Response {
        let prefix = seen.query("prefix").unwrap_or_default();
        let start: usize = seen.query("marker").and_then(|m| m.parse().ok()).unwrap_or(0);
        let versions = self.versions.lock().unwrap();
        let all: Vec<(String, String, bool)> = versions
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .flat_map(|(name, ids)| {
                ids.iter()
                    .enumerate()
                    .map(move |(i, id)| (name.clone(), id.clone(), i + 1 == ids.len()))
            })
            .collect();
        let page: String = all
            .iter()
            .skip(start)
            .take(PAGE)
            .map(|(name, id, current)| {
                let current = if *current {
                    "<IsCurrentVersion>true</IsCurrentVersion>"
                } else {
                    ""
                };
                format!(
                    "<Blob><Name>{name}</Name><VersionId>{id}</VersionId>{current}\
                     <Properties><Content-Length>1</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob>"
                )
            })
            .collect();
        let next = if start + PAGE < all.len() {
            format!("<NextMarker>{}</NextMarker>", start + PAGE)
        } else {
            "<NextMarker/>".into()
        };
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/xml")
            .body(Body::from(format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"http://127.0.0.1/\" \
                 ContainerName=\"c\"><Prefix>{prefix}</Prefix><Blobs>{page}</Blobs>{next}</EnumerationResults>"
            )))
            .unwrap()
    }

    /// Delete Blob with `versionid`: refused under a policy or hold, else gone.
    fn delete_version(&self, seen: &Seen) -> Response {
        let target = Self::target(seen);
        if let Some(refused) = self.refusal(&target) {
            return refused;
        }
        let name = self.blob_name(&seen.path);
        let id = target.1.unwrap_or_default();
        let mut versions = self.versions.lock().unwrap();
        let Some(ids) = versions.get_mut(&name).filter(|ids| ids.contains(&id)) else {
            return xml_error(
                StatusCode::NOT_FOUND,
                "BlobNotFound",
                "The specified blob does not exist.",
            );
        };
        ids.retain(|v| *v != id);
        if ids.is_empty() {
            versions.remove(&name);
        }
        Self::ok(&[], StatusCode::ACCEPTED)
    }

    /// Everything else goes to Azurite, as it came (the Host aside).
    async fn forward(&self, seen: &Seen, headers: &HeaderMap, body: Bytes) -> Response {
        let mut request = http::Request::builder().method(seen.method.as_str()).uri(format!(
            "{}{}",
            self.upstream,
            seen.request_target()
        ));
        for (name, value) in headers {
            if !matches!(
                name.as_str(),
                "host" | "content-length" | "transfer-encoding" | "connection"
            ) {
                request = request.header(name, value);
            }
        }
        let request = request.body(HttpRequestBody::from(body)).unwrap();
        let response = match self.client.execute(request).await {
            Ok(response) => response,
            Err(e) => return xml_error(StatusCode::BAD_GATEWAY, "ProxyError", &e.to_string()),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().bytes().await.unwrap_or_default();
        let mut out = Response::builder().status(status);
        for (name, value) in &headers {
            if !matches!(name.as_str(), "transfer-encoding" | "connection") {
                out = out.header(name, value);
            }
        }
        out.body(Body::from(body)).unwrap()
    }

    async fn handle(self: Arc<Self>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
        let seen = Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            raw_query: parts.uri.query().map(str::to_owned),
            query: url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        };
        let auth = verify(&self.account, &self.key, &seen);
        let method = parts.method.clone();
        let restype = seen.query("restype");
        let comp = seen.query("comp");
        let versions_listing = seen.query.iter().any(|(k, v)| k == "include" && v.contains("versions"));
        type Own = fn(&Proxy, &Seen) -> Response;
        let own: Option<Own> = match (&method, restype, comp) {
            (&Method::PUT, None, Some("immutabilityPolicies")) => Some(Proxy::set_policy as Own),
            (&Method::PUT, None, Some("legalhold")) => Some(Proxy::set_hold as Own),
            (&Method::GET, Some("container"), Some("list")) if versions_listing => Some(Proxy::list_versions as Own),
            (&Method::DELETE, None, None) if seen.query("versionid").is_some() => Some(Proxy::delete_version as Own),
            _ => None,
        };
        let by_proxy = own.is_some();
        let response = match own {
            Some(_) if auth.is_err() => xml_error(
                StatusCode::FORBIDDEN,
                "AuthenticationFailed",
                "Server failed to authenticate the request.",
            ),
            Some(answer) => answer(self.as_ref(), &seen),
            None => {
                let current = Self::target(&seen);
                match self.refusal(&current).filter(|_| method == Method::DELETE) {
                    // The current version is protected too.
                    Some(refused) => refused,
                    None => {
                        let mut response = self.forward(&seen, &parts.headers, body).await;
                        self.decorate(&method, &seen, &mut response);
                        response
                    }
                }
            }
        };
        self.log.lock().unwrap().push(Recorded {
            seen,
            auth,
            by_proxy,
            status: response.status().as_u16(),
        });
        response
    }

    /// Adds what Azurite leaves out: the container's version-level immutability, and the
    /// current version's policy and legal hold on Get Blob Properties.
    fn decorate(&self, method: &Method, seen: &Seen, response: &mut Response) {
        if !response.status().is_success() {
            return;
        }
        let headers = response.headers_mut();
        if seen.query("restype") == Some("container") && seen.query("comp").is_none() {
            headers.remove("x-ms-immutable-storage-with-versioning-enabled");
            if self.worm_containers.contains(&Self::container(&seen.path)) {
                headers.insert(
                    "x-ms-immutable-storage-with-versioning-enabled",
                    "true".parse().unwrap(),
                );
            }
        } else if *method == Method::HEAD && seen.query.is_empty() {
            let target = Self::target(seen);
            if let Some(policy) = self.policies.lock().unwrap().get(&target) {
                let until = policy.until.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                headers.insert("x-ms-immutability-policy-until-date", until.parse().unwrap());
                let mode = if policy.locked { "locked" } else { "unlocked" };
                headers.insert("x-ms-immutability-policy-mode", mode.parse().unwrap());
            }
            let hold = self.holds.lock().unwrap().get(&target).copied().unwrap_or(false);
            headers.insert("x-ms-legal-hold", hold.to_string().parse().unwrap());
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

/// Azurite's settings: endpoint, account, key, container.
struct Azurite {
    endpoint: String,
    account: String,
    key: String,
    container: String,
}

fn azurite() -> Option<Azurite> {
    let var = |name: &str| std::env::var(format!("RECARCH_TEST_AZURE_{name}")).ok();
    let Some(endpoint) = var("ENDPOINT") else {
        let required = std::env::var("RECARCH_REQUIRE_EMULATORS").is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "RECARCH_TEST_AZURE_ENDPOINT is not set but RECARCH_REQUIRE_EMULATORS is"
        );
        eprintln!("SKIPPED: no Azurite (run with scripts/emulators.sh run cargo test -p recarch-store)");
        return None;
    };
    Some(Azurite {
        endpoint,
        account: var("ACCOUNT").unwrap(),
        key: var("ACCESS_KEY").unwrap(),
        container: var("CONTAINER").unwrap(),
    })
}

/// A proxy in front of `azurite`, marking `worm_containers` as having version-level
/// immutability; returns it and the endpoint to give the store.
async fn start_proxy(azurite: &Azurite, worm_containers: &[&str]) -> (Arc<Proxy>, String) {
    let upstream = url::Url::parse(&azurite.endpoint).unwrap();
    let proxy = Arc::new(Proxy {
        upstream: upstream.origin().ascii_serialization(),
        account: azurite.account.clone(),
        key: BASE64.decode(&azurite.key).unwrap(),
        worm_containers: worm_containers.iter().map(|c| (*c).to_owned()).collect(),
        client: ReqwestConnector::default()
            .connect(&ClientOptions::new().with_allow_http(true))
            .unwrap(),
        log: Mutex::default(),
        policies: Mutex::default(),
        holds: Mutex::default(),
        versions: Mutex::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(|State(proxy): State<Arc<Proxy>>, request: Request| proxy.handle(request))
        .with_state(Arc::clone(&proxy));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (proxy, format!("http://{addr}/{}", azurite.account))
}

fn options(azurite: &Azurite, endpoint: &str, key: &str) -> Vec<(String, String)> {
    [
        ("azure_storage_account_name", azurite.account.as_str()),
        ("azure_storage_account_key", key),
        ("azure_storage_endpoint", endpoint),
        ("azure_allow_http", "true"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

fn unique(case: &str) -> String {
    format!("t/{case}-{:016x}", fastrand::u64(..))
}

/// Writes `name` (the full blob name) through `endpoint` with `object_store`.
async fn plant(azurite: &Azurite, endpoint: &str, container: &str, name: &str) {
    direct(azurite, endpoint, container)
        .put(&Path::from(name), Bytes::from_static(b"x").into())
        .await
        .unwrap();
}

/// `container` at `endpoint`, reached with the account's key, past the archive.
fn direct(azurite: &Azurite, endpoint: &str, container: &str) -> object_store::azure::MicrosoftAzure {
    MicrosoftAzureBuilder::new()
        .with_account(&azurite.account)
        .with_access_key(&azurite.key)
        .with_container_name(container)
        .with_endpoint(endpoint.to_owned())
        .with_allow_http(true)
        .build()
        .unwrap()
}

/// Creates `container` in Azurite directly, signed with this file's Shared Key: Azurite
/// accepting it checks the proxy's signing code against a server's.
async fn create_container(azurite: &Azurite, container: &str) {
    let upstream = url::Url::parse(&azurite.endpoint).unwrap();
    let path = format!("{}/{container}", upstream.path());
    let date = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let mut request = seen(
        "PUT",
        &path,
        &[("restype", "container")],
        &[("x-ms-date", &date), ("x-ms-version", "2023-11-03")],
    );
    let key = BASE64.decode(&azurite.key).unwrap();
    let authorization = shared_key(&azurite.account, &key, &request);
    request.headers.push(("authorization".into(), authorization));
    let client = ReqwestConnector::default()
        .connect(&ClientOptions::new().with_allow_http(true))
        .unwrap();
    let mut http = http::Request::builder().method("PUT").uri(format!(
        "{}{}",
        upstream.origin().ascii_serialization(),
        request.request_target()
    ));
    for (k, v) in &request.headers {
        http = http.header(k, v);
    }
    let response = client
        .execute(http.body(HttpRequestBody::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    assert!(
        status == StatusCode::CREATED || status == StatusCode::CONFLICT,
        "Azurite refused the test's own Shared Key: {status}"
    );
}

/// Every request was signed right, and none failed on the way.
fn assert_all_authenticated(proxy: &Proxy) {
    for r in proxy.requests() {
        assert!(
            r.auth.is_ok(),
            "{} {}: {:?}",
            r.seen.method,
            r.seen.request_target(),
            r.auth
        );
        assert!(r.seen.header("x-ms-version").is_some(), "{r:?}");
    }
}

// ------------------------------------------------------------------ the cases

#[tokio::test]
async fn worm_support_reads_the_containers_version_level_immutability() {
    let Some(azurite) = azurite() else { return };
    let plain = "recarch-plain";
    create_container(&azurite, plain).await;
    let (proxy, endpoint) = start_proxy(&azurite, &[&azurite.container]).await;
    let opts = options(&azurite, &endpoint, &azurite.key);

    let worm = Archive::open(&format!("az://{}/{}", azurite.container, unique("worm")), &opts).unwrap();
    assert_eq!(worm.worm_support().await.unwrap(), WormSupport::Enforced);
    let requests = proxy.requests();
    let [get] = &requests[..] else { panic!("{requests:?}") };
    assert_eq!(get.seen.method, "GET");
    assert_eq!(
        get.seen.request_target(),
        format!("/{}/{}?restype=container", azurite.account, azurite.container)
    );
    assert!(!get.by_proxy && get.status == 200, "{get:?}");
    assert!(get.seen.header("x-ms-version").unwrap() >= "2020-06-12");

    let other = Archive::open(&format!("az://{plain}/{}", unique("plain")), &opts).unwrap();
    let WormSupport::NotEnabled(reason) = other.worm_support().await.unwrap() else {
        panic!("{plain} reported enforced")
    };
    assert!(
        reason.starts_with(&format!(
            "container {plain} in storage account {} has no version-level immutability: ",
            azurite.account
        )),
        "{reason}"
    );
    assert!(
        reason.contains(&format!(
            "az storage container-rm create --storage-account {} --name {plain} --enable-vlw",
            azurite.account
        )),
        "{reason}"
    );

    let missing = Archive::open("az://recarch-no-such-container/p", &opts).unwrap();
    let err = missing.worm_support().await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { ref key } if key == "recarch-no-such-container"),
        "{err:?}"
    );
    assert_all_authenticated(&proxy);
}

#[tokio::test]
async fn retention_and_legal_holds_send_the_documented_requests() {
    let Some(azurite) = azurite() else { return };
    let (proxy, endpoint) = start_proxy(&azurite, &[&azurite.container]).await;
    let opts = options(&azurite, &endpoint, &azurite.key);
    let prefix = unique("retention");
    let key = "manifests/a b+c.json";
    plant(&azurite, &endpoint, &azurite.container, &format!("{prefix}/{key}")).await;
    let blob_path = format!(
        "/{}/{}/{prefix}/manifests/a%20b+c.json",
        azurite.account, azurite.container
    );
    let policy = |mode| WormPolicy {
        mode,
        longest: TimeDelta::days(3650),
    };
    let archive = Archive::open(&format!("az://{}/{prefix}", azurite.container), &opts)
        .unwrap()
        .with_worm(policy(LockMode::Governance));
    let until = DateTime::parse_from_rfc3339("2033-12-05T09:30:00Z")
        .unwrap()
        .with_timezone(&Utc);

    assert_eq!(archive.lock_state(key).await.unwrap(), Some(LockState::default()));
    let before = proxy.requests().len();
    archive
        .lock_at_least(key, ObjectLock::until(LockMode::Governance, until))
        .await
        .unwrap();
    let sent = proxy.requests()[before..].to_vec();
    // Get Blob Properties (forwarded), then Set Blob Immutability Policy (answered).
    let [head, put] = &sent[..] else { panic!("{sent:?}") };
    assert_eq!(
        (head.seen.method.as_str(), head.seen.path.as_str()),
        ("HEAD", blob_path.as_str())
    );
    assert_eq!(put.seen.method, "PUT");
    assert_eq!(
        put.seen.request_target(),
        format!("{blob_path}?comp=immutabilityPolicies")
    );
    assert_eq!(
        put.seen.header("x-ms-immutability-policy-until-date"),
        Some("Mon, 05 Dec 2033 09:30:00 GMT")
    );
    assert_eq!(put.seen.header("x-ms-immutability-policy-mode"), Some("Unlocked"));
    assert!(put.seen.header("x-ms-version").unwrap() >= "2020-06-12");
    assert!(
        put.seen
            .header("authorization")
            .unwrap()
            .starts_with("SharedKey devstoreaccount1:")
    );
    assert!(put.by_proxy && put.status == 200, "{put:?}");

    let state = archive.lock_state(key).await.unwrap().unwrap();
    assert_eq!(state.retention, Some(ObjectLock::until(LockMode::Governance, until)));
    assert!(!state.legal_hold);

    // Already long enough: nothing set. Longer: set again.
    let before = proxy.requests().len();
    archive
        .lock_at_least(key, ObjectLock::until(LockMode::Governance, until - TimeDelta::days(1)))
        .await
        .unwrap();
    assert!(proxy.requests()[before..].iter().all(|r| r.seen.method == "HEAD"));

    let compliance = Archive::open(&format!("az://{}/{prefix}", azurite.container), &opts)
        .unwrap()
        .with_worm(policy(LockMode::Compliance));
    let later = until + TimeDelta::days(1);
    compliance
        .lock_at_least(key, ObjectLock::until(LockMode::Compliance, later))
        .await
        .unwrap();
    let put = proxy.requests().last().cloned().unwrap();
    assert_eq!(put.seen.header("x-ms-immutability-policy-mode"), Some("Locked"));
    assert_eq!(
        put.seen.header("x-ms-immutability-policy-until-date"),
        Some("Tue, 06 Dec 2033 09:30:00 GMT")
    );
    let state = archive.lock_state(key).await.unwrap().unwrap();
    assert_eq!(state.retention, Some(ObjectLock::until(LockMode::Compliance, later)));

    for on in [true, false] {
        archive.set_legal_hold(key, on).await.unwrap();
        let put = proxy.requests().last().cloned().unwrap();
        assert_eq!(put.seen.method, "PUT");
        assert_eq!(put.seen.request_target(), format!("{blob_path}?comp=legalhold"));
        assert_eq!(
            put.seen.header("x-ms-legal-hold"),
            Some(if on { "true" } else { "false" })
        );
        assert!(put.by_proxy && put.status == 200, "{put:?}");
        assert_eq!(archive.lock_state(key).await.unwrap().unwrap().legal_hold, on);
    }

    assert_eq!(archive.lock_state("manifests/absent.json").await.unwrap(), None);
    assert_all_authenticated(&proxy);
}

#[tokio::test]
async fn dispose_deletes_every_version_and_surfaces_the_refusal() {
    let Some(azurite) = azurite() else { return };
    let (proxy, endpoint) = start_proxy(&azurite, &[&azurite.container]).await;
    let opts = options(&azurite, &endpoint, &azurite.key);
    let prefix = unique("dispose");
    let (key, decoy) = ("blobs/sha256/aa", "blobs/sha256/aab");
    let name = format!("{prefix}/{key}");
    let decoy_name = format!("{prefix}/{decoy}");
    plant(&azurite, &endpoint, &azurite.container, &name).await;
    plant(&azurite, &endpoint, &azurite.container, &decoy_name).await;
    let ids: Vec<String> = (1..=3).map(|i| format!("2026-12-0{i}T10:00:00.0000000Z")).collect();
    proxy.versions.lock().unwrap().insert(name.clone(), ids.clone());
    proxy
        .versions
        .lock()
        .unwrap()
        .insert(decoy_name.clone(), vec!["2026-12-01T11:00:00.0000000Z".into()]);
    let blob_path = format!("/{}/{}/{name}", azurite.account, azurite.container);
    // The oldest version is under a policy, the middle one under a legal hold.
    let protected = (blob_path.clone(), Some(ids[0].clone()));
    proxy.policies.lock().unwrap().insert(
        protected.clone(),
        Policy {
            until: Utc::now() + TimeDelta::days(1),
            locked: true,
        },
    );
    let held = (blob_path.clone(), Some(ids[1].clone()));
    proxy.holds.lock().unwrap().insert(held.clone(), true);
    let archive = Archive::open(&format!("az://{}/{prefix}", azurite.container), &opts).unwrap();

    // Lists (two pages: the decoy's version is listed too, and filtered out), deletes the blob,
    // then is refused the oldest version.
    let deletes = |sent: &[Recorded]| -> Vec<(Option<String>, u16)> {
        sent.iter()
            .filter(|r| r.seen.method == "DELETE")
            .map(|r| {
                assert_eq!(r.seen.path, blob_path);
                (r.seen.query("versionid").map(str::to_owned), r.status)
            })
            .collect()
    };
    let version = |i: usize| Some(ids[i].clone());
    let before = proxy.requests().len();
    let err = archive.dispose_object(key).await.unwrap_err();
    assert!(
        matches!(err, StoreError::PermissionDenied { key: ref k, .. } if k == key),
        "{err:?}"
    );
    let chain = recarch_failure::error_chain(&err);
    assert!(chain.contains("BlobImmutableDueToPolicy"), "{chain}");
    let sent = proxy.requests()[before..].to_vec();
    let lists: Vec<_> = sent.iter().filter(|r| r.seen.method == "GET").collect();
    assert_eq!(lists.len(), 2, "{sent:?}");
    assert_eq!(
        lists[0].seen.request_target(),
        format!(
            "/{}/{}?restype=container&comp=list&include=versions&prefix={}",
            azurite.account,
            azurite.container,
            name.replace('/', "%2F")
        )
    );
    assert_eq!(lists[1].seen.query("marker"), Some("2"));
    assert_eq!(deletes(&sent), [(None, 202), (version(0), 409)]);

    // The policy expires; the legal hold on the next version is still on.
    proxy.policies.lock().unwrap().remove(&protected);
    let before = proxy.requests().len();
    let err = archive.dispose_object(key).await.unwrap_err();
    assert!(
        recarch_failure::error_chain(&err).contains("BlobImmutableDueToLegalHold"),
        "{err:?}"
    );
    // The blob is already gone from Azurite: its 404 is fine.
    assert_eq!(
        deletes(&proxy.requests()[before..]),
        [(None, 404), (version(0), 202), (version(1), 409)]
    );

    proxy.holds.lock().unwrap().insert(held, false);
    let before = proxy.requests().len();
    archive.dispose_object(key).await.unwrap();
    assert_eq!(
        deletes(&proxy.requests()[before..]),
        [(None, 404), (version(1), 202), (version(2), 202)]
    );
    assert!(!proxy.versions.lock().unwrap().contains_key(&name));
    assert!(proxy.versions.lock().unwrap().contains_key(&decoy_name));

    let direct = direct(&azurite, &azurite.endpoint, &azurite.container);
    assert!(matches!(
        direct.head(&Path::from(name.as_str())).await,
        Err(object_store::Error::NotFound { .. })
    ));
    direct.head(&Path::from(decoy_name.as_str())).await.unwrap();

    // Nothing left: fine.
    archive.dispose_object(key).await.unwrap();
    assert_all_authenticated(&proxy);
}

/// Straight on Azurite, which keeps no versions: List Blobs with `include=versions` lists the
/// blob without a version id, and disposing of it is deleting it (and its neighbour stays).
#[tokio::test]
async fn dispose_on_a_store_without_versions_deletes_the_blob() {
    let Some(azurite) = azurite() else { return };
    let opts = options(&azurite, &azurite.endpoint, &azurite.key);
    let prefix = unique("plain-dispose");
    let (name, neighbour) = (format!("{prefix}/blobs/x"), format!("{prefix}/blobs/xy"));
    plant(&azurite, &azurite.endpoint, &azurite.container, &name).await;
    plant(&azurite, &azurite.endpoint, &azurite.container, &neighbour).await;
    let archive = Archive::open(&format!("az://{}/{prefix}", azurite.container), &opts).unwrap();
    archive.dispose_object("blobs/x").await.unwrap();
    let direct = direct(&azurite, &azurite.endpoint, &azurite.container);
    assert!(matches!(
        direct.head(&Path::from(name.as_str())).await,
        Err(object_store::Error::NotFound { .. })
    ));
    direct.head(&Path::from(neighbour.as_str())).await.unwrap();
    archive.dispose_object("blobs/x").await.unwrap();
}

/// The proxy's check can fail: a request signed with another key is refused, and the
/// archive reports it as a permission error.
#[tokio::test]
async fn a_wrong_signature_is_refused() {
    let Some(azurite) = azurite() else { return };
    let (proxy, endpoint) = start_proxy(&azurite, &[&azurite.container]).await;
    let wrong = BASE64.encode([7u8; 64]);
    let opts = options(&azurite, &endpoint, &wrong);
    let archive = Archive::open(&format!("az://{}/{}", azurite.container, unique("wrong")), &opts).unwrap();
    let err = archive.set_legal_hold("k", true).await.unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied { .. }), "{err:?}");
    let shown = recarch_failure::error_chain(&err);
    assert!(
        shown.contains("AuthenticationFailed") && !shown.contains(&wrong),
        "{shown}"
    );
    let requests = proxy.requests();
    assert!(
        !requests.is_empty() && requests.iter().all(|r| r.auth.is_err()),
        "{requests:?}"
    );
    // Azurite refuses it as well.
    assert!(matches!(
        archive.worm_support().await.unwrap_err(),
        StoreError::PermissionDenied { .. }
    ));
}
