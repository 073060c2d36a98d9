//! The HTTP front: request routing for the graph origin (Graph API + token
//! endpoint) and the download origin. Paths are matched by hand on the raw
//! request target, because Graph paths such as `users('x')` or
//! `getAllRecordings(meetingOrganizerUserId='x')` are not router-friendly.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    ACCEPT_RANGES, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderName, HeaderValue,
    LOCATION, PRAGMA, WWW_AUTHENTICATE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::assertion::AssertionRejection;
use crate::assertion::{self, Accepted, Refusal};
use crate::body::{ByteRange, ContentStream, parse_range};
use crate::config::ContentMode;
use crate::conn::ConnKill;
use crate::data::artifact::{ArtifactKind, Served, TRANSCRIPT_TAG};
use crate::data::meetings::Transcript;
use crate::faults::{CredentialRejection, RedirectStyle, RetryAfter, TRANSCRIPTS_DISABLED_MESSAGE, Target};
use crate::http::{
    ApiVersion, RequestIds, bad_request, decode, decode_query_value, error_status, graph_error, graph_error_code,
    json_response, method_not_allowed, query_option, raw_query_pairs, retry_after_value, set_header, strip_prefix_ci,
    throttled_error, unquote,
};
use crate::state::{Shared, lock};
use crate::stats::Origin;
use crate::test_keys::JWT_BEARER;
use crate::{delta, directory, folders};

/// Largest accepted token-request body.
const MAX_FORM_BODY: usize = 64 * 1024;

/// Longest [`RedirectStyle::Chain`].
const MAX_CHAIN: u32 = 32;

static REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
static CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");

/// Entry point of the graph origin.
pub(crate) async fn graph_entry(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let at = Instant::now();
    let method = req.method().to_string();
    let path_and_query = raw_target(&req);
    let authorization = req.headers().contains_key(AUTHORIZATION);
    // Always there (both servers run with connect info); a default switch would
    // only fail to kill anything.
    let kill = req
        .extensions()
        .get::<ConnectInfo<ConnKill>>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    let request_id = shared.request_guid();
    let client_request_id = req
        .headers()
        .get(&CLIENT_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| request_id.clone(), str::to_owned);
    let ids = RequestIds {
        request_id,
        client_request_id,
    };
    let mut resp = route_graph(&shared, &ids, &kill, req).await;
    if resp.status() == StatusCode::OK && is_delta_target(&path_and_query) && shared.take_cut_page() {
        resp = cut_mid_body(resp).await;
    }
    set_header(resp.headers_mut(), REQUEST_ID.clone(), &ids.request_id);
    set_header(resp.headers_mut(), CLIENT_REQUEST_ID.clone(), &ids.client_request_id);
    let status = if kill.is_killed() { 0 } else { resp.status().as_u16() };
    shared.record_request(at, Origin::Graph, method, path_and_query, status, authorization);
    resp
}

/// Entry point of the download origin.
pub(crate) async fn download_entry(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let at = Instant::now();
    let method = req.method().to_string();
    let path_and_query = raw_target(&req);
    let authorization = req.headers().contains_key(AUTHORIZATION);
    let resp = download(&shared, &req);
    shared.record_request(
        at,
        Origin::Download,
        method,
        path_and_query,
        resp.status().as_u16(),
        authorization,
    );
    resp
}

/// Whether a request target is a delta query (its path ends in a `delta` segment).
fn is_delta_target(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or_default();
    path.rsplit('/').next().is_some_and(is_delta)
}

/// `resp` with its full `Content-Length` announced but only about half of its body sent before
/// the connection is aborted.
async fn cut_mid_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let half = bytes.slice(..bytes.len() / 2);
    set_header(&mut parts.headers, CONTENT_LENGTH, &bytes.len().to_string());
    let head = futures::stream::once(async move { Ok::<_, io::Error>(half) });
    let abort = futures::stream::once(async {
        // Let the first half reach the client before the connection goes.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "delta page cut off (fault)",
        ))
    });
    Response::from_parts(parts, Body::from_stream(futures::StreamExt::chain(head, abort)))
}

fn raw_target(req: &Request) -> String {
    req.uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned())
}

async fn route_graph(shared: &Arc<Shared>, ids: &RequestIds, kill: &ConnKill, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    match segs.as_slice() {
        [tenant, oauth, ver, token] if *oauth == "oauth2" && *ver == "v2.0" && token.eq_ignore_ascii_case("token") => {
            let tenant = decode(tenant).into_owned();
            token_endpoint(shared, ids, kill, &tenant, &parts, body).await
        }
        ["hops", rest @ ..] => hop(shared, ids, rest, &parts).unwrap_or_else(|| not_found(ids, &path)),
        [version, rest @ ..] => {
            let version = match *version {
                "beta" => ApiVersion::Beta,
                "v1.0" => ApiVersion::V1,
                _ => return not_found(ids, &path),
            };
            graph_api(shared, ids, version, rest, &parts).unwrap_or_else(|| not_found(ids, &path))
        }
        [] => not_found(ids, &path),
    }
}

fn not_found(ids: &RequestIds, path: &str) -> Response {
    graph_error(
        ids,
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("Resource not found for the segment path '{}'.", path.escape_default()),
    )
}

/// Routes a Graph API path (after the version segment); `None` if unknown.
fn graph_api(
    shared: &Arc<Shared>,
    ids: &RequestIds,
    version: ApiVersion,
    rest: &[&str],
    parts: &Parts,
) -> Option<Response> {
    if decode(rest.first()?).eq_ignore_ascii_case("groups") {
        let tail: Vec<String> = rest.iter().skip(1).map(|s| decode(s).into_owned()).collect();
        return directory::group_members(shared, ids, version, &tail, parts);
    }
    let (user, rest) = parse_user(rest)?;
    if rest.is_empty() {
        return Some(if is_delta(&user) {
            directory::users_delta(shared, ids, version, parts)
        } else {
            directory::user(shared, ids, version, &user, parts)
        });
    }
    let seg = |i: usize| rest.get(i).map(|s| decode(s));
    let is = |i: usize, name: &str| seg(i).is_some_and(|s| s.eq_ignore_ascii_case(name));
    // `…/onlineMeetings/{meetingId}/{recordings|transcripts}/{id}/…`.
    let kind = || {
        if is(2, "recordings") {
            Some(ArtifactKind::Recording)
        } else if is(2, "transcripts") {
            Some(ArtifactKind::Transcript)
        } else {
            None
        }
    };
    match rest.len() {
        3 if is(0, "onlineMeetings") && is_delta(&seg(2)?) => {
            let func = seg(1)?;
            let (kind, params) = parse_function(&func, "getAllRecordings")
                .map(|p| (ArtifactKind::Recording, p))
                .or_else(|| parse_function(&func, "getAllTranscripts").map(|p| (ArtifactKind::Transcript, p)))?;
            Some(delta::artifacts(shared, ids, version, kind, &user, &params, parts))
        }
        5 if is(0, "onlineMeetings") && is(4, "content") => {
            let kind = kind()?;
            Some(content(shared, ids, kind, &user, &seg(1)?, &seg(3)?, parts))
        }
        5 if is(0, "onlineMeetings") && is(4, "stream") => {
            let kind = kind()?;
            relative_hop(shared, ids, kind, &user, &seg(1)?, &seg(3)?, parts)
        }
        5 if is(0, "onlineMeetings") && is(2, "transcripts") && is(4, "metadataContent") => {
            Some(metadata(shared, ids, &user, &seg(1)?, &seg(3)?, parts))
        }
        1 if is(0, "contactFolders") => Some(folders::list(shared, ids, version, &user, None, parts)),
        2 if is(0, "contactFolders") => Some(folders::get(shared, ids, version, &user, &seg(1)?, parts)),
        3 if is(0, "contactFolders") && is(2, "childFolders") => {
            Some(folders::list(shared, ids, version, &user, Some(&seg(1)?), parts))
        }
        4 if is(0, "contactFolders") && is(2, "contacts") && is_delta(&seg(3)?) => {
            let folder = seg(1)?;
            Some(delta::contacts(shared, ids, version, &user, &folder, parts))
        }
        _ => None,
    }
}

fn is_delta(s: &str) -> bool {
    ["delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"]
        .iter()
        .any(|d| s.eq_ignore_ascii_case(d))
}

/// Splits `users/{id}/...` or `users('{id}')/...` into the user and the rest.
fn parse_user<'a, 'b>(rest: &'a [&'b str]) -> Option<(String, &'a [&'b str])> {
    let first = decode(rest.first()?);
    if first.eq_ignore_ascii_case("users") {
        let user = decode(rest.get(1)?).into_owned();
        if user.is_empty() {
            return None;
        }
        return Some((user, rest.get(2..).unwrap_or(&[])));
    }
    let inner = strip_prefix_ci(&first, "users(")?.strip_suffix(')')?;
    let user = unquote(inner.trim()).to_owned();
    if user.is_empty() {
        return None;
    }
    Some((user, rest.get(1..).unwrap_or(&[])))
}

/// Parses `name(k1=v1,k2='v2')` (name compared case-insensitively, optionally
/// namespace-qualified) into its `(key, value)` parameters, values unquoted.
fn parse_function(s: &str, name: &str) -> Option<Vec<(String, String)>> {
    let open = s.find('(')?;
    let fname = s.get(..open)?;
    let fname = strip_prefix_ci(fname, "microsoft.graph.").unwrap_or(fname);
    if !fname.eq_ignore_ascii_case(name) {
        return None;
    }
    let inner = s.get(open + 1..)?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.trim().to_owned(), unquote(v.trim()).to_owned())
            })
            .collect(),
    )
}

/// Checks `Authorization: Bearer <valid token>`.
pub(crate) fn authenticate(shared: &Shared, ids: &RequestIds, headers: &HeaderMap) -> Result<(), Response> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    let message = match token {
        None => "Access token is empty.",
        Some(t) => {
            if lock(&shared.data).access_tokens.is_valid(t, Instant::now()) {
                return Ok(());
            }
            "Access token has expired or is not yet valid."
        }
    };
    shared.stat(|s| s.unauthorized += 1);
    let mut resp = graph_error(ids, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message);
    set_header(
        resp.headers_mut(),
        WWW_AUTHENTICATE,
        &format!(
            "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
            shared.graph_origin
        ),
    );
    Err(resp)
}

/// Answers an injected throttle for `target`, if one is pending.
pub(crate) fn check_throttle(shared: &Shared, ids: &RequestIds, target: Target) -> Option<Response> {
    let (status, retry_after) = shared.take_throttle(target)?;
    shared.stat(|s| s.throttled += 1);
    Some(throttled_error(ids, status, retry_after))
}

/// The 402 answered while `payment_required` is on.
pub(crate) fn payment_required(ids: &RequestIds) -> Response {
    graph_error(
        ids,
        StatusCode::PAYMENT_REQUIRED,
        "PaymentRequired",
        "Evaluation mode capacity has been exceeded. This API is a metered API: use a valid billing model (model=A or model=B) and an Azure subscription linked to the application. See https://learn.microsoft.com/graph/teams-licenses for details.",
    )
}

// ---------------------------------------------------------------------------
// Token endpoint (Microsoft identity platform, client credentials grant)

/// An AAD-shaped error.
fn aad_error(
    shared: &Shared,
    ids: &RequestIds,
    status: StatusCode,
    error: &str,
    code: u32,
    description: &str,
) -> Response {
    let trace_id = shared.request_guid();
    let correlation_id = ids.client_request_id.clone();
    let timestamp = Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let body = serde_json::json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("{}/error?code={code}", shared.graph_origin),
    });
    let mut resp = json_response(status, "application/json; charset=utf-8", &body);
    no_store(resp.headers_mut());
    resp
}

fn no_store(h: &mut HeaderMap) {
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The AAD answer of a throttle fault on the token endpoint.
fn aad_throttled(shared: &Shared, ids: &RequestIds, status: u16, retry_after: RetryAfter) -> Response {
    let status = error_status(status, StatusCode::TOO_MANY_REQUESTS);
    let (error, code, description) = match status.as_u16() {
        429 | 503 | 504 => (
            "temporarily_unavailable",
            90_033,
            "A transient error has occurred. Please try again.",
        ),
        s if s >= 500 => (
            "server_error",
            50_000,
            "There was an error issuing a token or an issue with our sign-in service.",
        ),
        _ => ("invalid_request", 90_100, "The request is invalid."),
    };
    let mut resp = aad_error(shared, ids, status, error, code, description);
    if let Some(v) = retry_after_value(retry_after) {
        set_header(resp.headers_mut(), axum::http::header::RETRY_AFTER, &v);
    }
    resp
}

/// The AAD answer refusing the credentials: `tenant` and `client_id` as the
/// request named them.
fn credential_error(
    shared: &Shared,
    ids: &RequestIds,
    rejection: CredentialRejection,
    tenant: &str,
    client_id: &str,
) -> Response {
    let (status, error, code, description) = match rejection {
        CredentialRejection::InvalidSecret => (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        ),
        CredentialRejection::ExpiredSecret => (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_222,
            format!(
                "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
            ),
        ),
        CredentialRejection::UnknownClient => (
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        ),
        CredentialRejection::DisabledClient => (
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            7_000_112,
            format!("Application '{client_id}' is disabled."),
        ),
        CredentialRejection::UnknownTenant => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90_002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        ),
    };
    aad_error(shared, ids, status, error, code, &description)
}

async fn token_endpoint(
    shared: &Arc<Shared>,
    ids: &RequestIds,
    kill: &ConnKill,
    tenant: &str,
    parts: &Parts,
    body: Body,
) -> Response {
    shared.stat(|s| s.token_requests += 1);
    if shared.take_token_connection_reset() {
        // Read the whole request first, so the client has sent it all and is
        // waiting for an answer when the connection goes.
        let _ = axum::body::to_bytes(body, MAX_FORM_BODY).await;
        kill.kill();
        shared.stat(|s| s.token_connections_reset += 1);
        // Never written: the connection refuses every write from now on.
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let cfg = &shared.config;
    if parts.method != Method::POST {
        return aad_error(
            shared,
            ids,
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            900_561,
            &format!(
                "The endpoint only accepts POST requests. Received a {} request.",
                parts.method
            ),
        );
    }
    if let Some((status, retry_after)) = shared.take_throttle(Target::Token) {
        shared.stat(|s| s.throttled += 1);
        return aad_throttled(shared, ids, status, retry_after);
    }
    if let Some(rejection) = shared.credential_rejection() {
        return credential_error(shared, ids, rejection, tenant, &cfg.client_id);
    }
    if !tenant.eq_ignore_ascii_case(&cfg.tenant_id) {
        return credential_error(shared, ids, CredentialRejection::UnknownTenant, tenant, &cfg.client_id);
    }
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| strip_prefix_ci(v.trim(), "application/x-www-form-urlencoded").is_some());
    let bytes = match axum::body::to_bytes(body, MAX_FORM_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return aad_error(
                shared,
                ids,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900_144,
                "The request body could not be read or is too large.",
            );
        }
    };
    let mut params: Vec<(String, String)> = Vec::new();
    if is_form {
        for (k, v) in url::form_urlencoded::parse(&bytes) {
            if !params.iter().any(|(pk, _)| *pk == k) {
                params.push((k.into_owned(), v.into_owned()));
            }
        }
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let missing = |name: &str| {
        aad_error(
            shared,
            ids,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            &format!("The request body must contain the following parameter: '{name}'."),
        )
    };
    let Some(grant_type) = param("grant_type") else {
        return missing("grant_type");
    };
    if grant_type != "client_credentials" {
        return aad_error(
            shared,
            ids,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70_003,
            &format!("The app requested an unsupported grant type '{grant_type}'."),
        );
    }
    let Some(client_id) = param("client_id") else {
        return missing("client_id");
    };
    if !client_id.eq_ignore_ascii_case(&cfg.client_id) {
        return credential_error(
            shared,
            ids,
            CredentialRejection::UnknownClient,
            &cfg.tenant_id,
            client_id,
        );
    }
    match (param("client_secret"), param("client_assertion")) {
        (None, None) => {
            return aad_error(
                shared,
                ids,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7_000_218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            );
        }
        (Some(_), Some(_)) => {
            return aad_error(
                shared,
                ids,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90_023,
                "Only one of 'client_assertion' and 'client_secret' may be presented.",
            );
        }
        (Some(secret), None) => {
            // An empty configured secret accepts none: the parameter is never empty here.
            if secret != cfg.client_secret {
                return credential_error(
                    shared,
                    ids,
                    CredentialRejection::InvalidSecret,
                    &cfg.tenant_id,
                    &cfg.client_id,
                );
            }
            shared.stat(|s| s.client_secrets_accepted += 1);
        }
        (None, Some(assertion)) => {
            let Some(kind) = param("client_assertion_type") else {
                return missing("client_assertion_type");
            };
            if let Err(resp) = client_assertion(shared, ids, kind, assertion) {
                return resp;
            }
        }
    }
    let Some(scope) = param("scope") else {
        return missing("scope");
    };
    let expected = format!("{}/.default", shared.graph_origin);
    if scope.trim() != expected {
        let (code, description) = if scope.trim_end().ends_with("/.default") {
            (
                70_011,
                format!(
                    "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
                ),
            )
        } else {
            (
                1_002_012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            )
        };
        return aad_error(
            shared,
            ids,
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            code,
            &description,
        );
    }
    let lifetime = cfg.token_lifetime;
    let access_token = shared.issue_access_token();
    let secs = lifetime.as_secs();
    let body = serde_json::json!({
        "token_type": "Bearer",
        "expires_in": secs,
        "ext_expires_in": secs,
        "access_token": access_token,
    });
    let mut resp = json_response(StatusCode::OK, "application/json; charset=utf-8", &body);
    no_store(resp.headers_mut());
    resp
}

/// Checks a `client_assertion` (see [`crate::assertion`]) and records the
/// outcome in the stats; `Err` is the AAD answer refusing it.
fn client_assertion(shared: &Shared, ids: &RequestIds, kind: &str, assertion: &str) -> Result<(), Response> {
    let verdict = if kind == JWT_BEARER {
        let now = Utc::now().timestamp();
        let token_url = format!("{}/{}/oauth2/v2.0/token", shared.graph_origin, shared.config.tenant_id);
        let mut identity = lock(&shared.identity);
        assertion::check(&mut identity, assertion, &shared.config.client_id, &token_url, now)
    } else {
        Err(Refusal {
            reason: AssertionRejection::UnsupportedAssertionType,
            description: format!(
                "The client_assertion_type '{}' is not supported: use '{JWT_BEARER}'.",
                kind.escape_default()
            ),
        })
    };
    match verdict {
        Ok(Accepted::Certificate(decoded)) => {
            shared.stat(|s| {
                s.client_assertions_accepted += 1;
                s.last_client_assertion = Some(decoded);
            });
            Ok(())
        }
        Ok(Accepted::Federated) => {
            shared.stat(|s| {
                s.federated_assertions_accepted += 1;
                s.last_federated_assertion = Some(assertion.to_owned());
            });
            Ok(())
        }
        Err(Refusal { reason, description }) => {
            shared.stat(|s| *s.assertions_rejected.entry(reason).or_insert(0) += 1);
            let status = StatusCode::from_u16(reason.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            Err(aad_error(
                shared,
                ids,
                status,
                reason.error(),
                reason.code(),
                &description,
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// Content

/// `GET …/onlineMeetings/{meetingId}/{recordings|transcripts}/{id}/content`:
/// the bytes (`ContentMode::Direct`, or `Alternate` for an even serial) or a
/// redirect to them. A transcript's needs `$format=text/vtt` (see
/// [`vtt_format`]).
fn content(
    shared: &Arc<Shared>,
    ids: &RequestIds,
    kind: ArtifactKind,
    user: &str,
    meeting_id: &str,
    id: &str,
    parts: &Parts,
) -> Response {
    if kind == ArtifactKind::Recording {
        shared.stat(|s| s.content_requests += 1);
    }
    if parts.method != Method::GET {
        return method_not_allowed(ids, "GET");
    }
    if let Err(resp) = authenticate(shared, ids, &parts.headers) {
        return resp;
    }
    if let Some(resp) = check_throttle(shared, ids, Target::Content) {
        return resp;
    }
    if kind == ArtifactKind::Transcript && shared.transcripts_disabled() {
        return delta::transcripts_disabled(shared, ids);
    }
    if shared.fault_flags().payment_required {
        return payment_required(ids);
    }
    if kind == ArtifactKind::Transcript {
        if let Err(resp) = vtt_format(ids, parts) {
            return resp;
        }
    }
    let served = lock(&shared.data).meetings.served_content(kind, user, meeting_id, id);
    let Some(served) = served else {
        return artifact_not_found(ids, kind);
    };
    if let Some((status, code, message)) = refused(shared, &served) {
        return graph_error(ids, status, code, message);
    }
    let direct = match shared.config.content_mode {
        ContentMode::Direct => true,
        ContentMode::Redirect => false,
        ContentMode::Alternate => served.serial % 2 == 0,
    };
    if direct {
        let resp = serve_payload(shared, &served, &parts.headers);
        if resp.status().is_success() {
            count_content(shared, &served);
        }
        resp
    } else {
        count_content(shared, &served);
        let signed = shared.signed(served.signed_serial);
        let location = match shared.redirect_style() {
            RedirectStyle::Absolute => download_url(shared, &signed),
            RedirectStyle::Chain(n) => chain_url(shared, &signed, n.clamp(1, MAX_CHAIN)),
            // Relative to this very URL: `…/{recordings|transcripts}/{id}/stream?sig=…`.
            RedirectStyle::Relative => format!("stream?sig={signed}"),
            RedirectStyle::Bounce => format!("{}/bounce/{signed}", shared.download_origin),
        };
        found(&location)
    }
}

fn artifact_not_found(ids: &RequestIds, kind: ArtifactKind) -> Response {
    let what = match kind {
        ArtifactKind::Recording => "recording",
        ArtifactKind::Transcript => "transcript",
    };
    graph_error(
        ids,
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("The requested {what} was not found."),
    )
}

/// Checks the `$format` query option of a transcript content request: the
/// reference documents `$format=text/vtt` for WebVTT, and the simulator
/// serves nothing else, so that a client which leaves the option out fails
/// visibly. Without it (an `Accept: text/vtt` header is not enough) the
/// answer is `406 NotAcceptable`; with another value, `400 BadRequest`.
fn vtt_format(ids: &RequestIds, parts: &Parts) -> Result<(), Response> {
    let pairs = raw_query_pairs(parts.uri.query());
    match query_option(&pairs, "format") {
        None => Err(graph_error(
            ids,
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            "The transcript content format must be given with the $format query option: $format=text/vtt.",
        )),
        Some(raw) if decode_query_value(raw).trim().eq_ignore_ascii_case("text/vtt") => Ok(()),
        Some(raw) => Err(bad_request(
            ids,
            &format!(
                "Invalid value '{}' for query option $format: the supported value is 'text/vtt'.",
                decode_query_value(raw).escape_default()
            ),
        )),
    }
}

/// `GET …/onlineMeetings/{meetingId}/transcripts/{id}/metadataContent`:
/// always served directly, as `application/json`.
fn metadata(shared: &Arc<Shared>, ids: &RequestIds, user: &str, meeting_id: &str, id: &str, parts: &Parts) -> Response {
    if parts.method != Method::GET {
        return method_not_allowed(ids, "GET");
    }
    if let Err(resp) = authenticate(shared, ids, &parts.headers) {
        return resp;
    }
    if let Some(resp) = check_throttle(shared, ids, Target::Content) {
        return resp;
    }
    if shared.transcripts_disabled() {
        return delta::transcripts_disabled(shared, ids);
    }
    if shared.fault_flags().payment_required {
        return payment_required(ids);
    }
    let served = {
        let data = lock(&shared.data);
        data.meetings
            .transcript(id)
            .filter(|t| t.organizer.eq_ignore_ascii_case(user) && t.meeting_id == meeting_id)
            .map(Transcript::served_metadata)
    };
    let Some(served) = served else {
        return artifact_not_found(ids, ArtifactKind::Transcript);
    };
    if let Some((status, code, message)) = refused(shared, &served) {
        return graph_error(ids, status, code, message);
    }
    let resp = serve_payload(shared, &served, &parts.headers);
    if resp.status().is_success() {
        shared.stat(|s| *s.transcript_metadata_requests_by_id.entry(served.id).or_insert(0) += 1);
    }
    resp
}

/// Counts a logical download of `served`'s content.
fn count_content(shared: &Shared, served: &Served) {
    let id = served.id.clone();
    shared.stat(|s| {
        let by_id = match served.kind {
            ArtifactKind::Recording => &mut s.content_requests_by_id,
            ArtifactKind::Transcript => &mut s.transcript_content_requests_by_id,
        };
        *by_id.entry(id).or_insert(0) += 1;
    });
}

/// A `302 Found` to `location`.
fn found(location: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    set_header(resp.headers_mut(), LOCATION, location);
    resp
}

/// The pre-authenticated URL on the download origin that serves the bytes.
fn download_url(shared: &Shared, signed: &str) -> String {
    format!("{}/download/{signed}", shared.download_origin)
}

/// Where a [`RedirectStyle::Chain`] hop with `remaining` redirects still to
/// come (its own included) sends the client: the next graph hop, or the
/// download origin for the last one.
fn chain_url(shared: &Shared, signed: &str, remaining: u32) -> String {
    if remaining <= 1 {
        download_url(shared, signed)
    } else {
        format!("{}/hops/{signed}/chain/{}", shared.graph_origin, remaining - 1)
    }
}

/// The status, code and message every request for `served` is refused with,
/// if any (and counts it): `transcripts_disabled` for a transcript, then a
/// `content_status` fault.
fn refused(shared: &Shared, served: &Served) -> Option<(StatusCode, &'static str, &'static str)> {
    if served.kind == ArtifactKind::Transcript && shared.transcripts_disabled() {
        shared.stat(|s| s.transcript_forbidden += 1);
        return Some((StatusCode::FORBIDDEN, "Forbidden", TRANSCRIPTS_DISABLED_MESSAGE));
    }
    let status = error_status(shared.content_status(&served.id)?, StatusCode::INTERNAL_SERVER_ERROR);
    shared.stat(|s| *s.content_refused_by_id.entry(served.id.clone()).or_insert(0) += 1);
    let (code, message) = graph_error_code(status);
    Some((status, code, message))
}

/// `GET …/{recordings|transcripts}/{id}/stream?sig=…` on the graph origin:
/// the target of the first, path-relative redirect of
/// [`RedirectStyle::Relative`]. The path must name the signed recording or
/// transcript exactly, so only a client that resolved the reference against
/// the content URL gets here; it answers the second, absolute-path redirect.
/// `None` (404) for anything that does not fit.
fn relative_hop(
    shared: &Arc<Shared>,
    ids: &RequestIds,
    kind: ArtifactKind,
    user: &str,
    meeting_id: &str,
    id: &str,
    parts: &Parts,
) -> Option<Response> {
    shared.stat(|s| s.redirect_hops += 1);
    if parts.method != Method::GET {
        return Some(method_not_allowed(ids, "GET"));
    }
    let pairs = raw_query_pairs(parts.uri.query());
    let signed = query_option(&pairs, "sig")?;
    let (serial, true) = shared.parse_signed(signed)? else {
        return None;
    };
    let served = shared.served(serial)?;
    let matches = served.kind == kind
        && served.id == id
        && served.organizer.eq_ignore_ascii_case(user)
        && served.meeting_id == meeting_id;
    if !matches {
        return None;
    }
    if let Some((status, code, message)) = refused(shared, &served) {
        return Some(graph_error(ids, status, code, message));
    }
    Some(found(&format!("/hops/{signed}/bytes")))
}

/// `GET /hops/{signed}/…` on the graph origin: the pre-authenticated redirect
/// hops of [`RedirectStyle`] (`chain/{remaining}`, `bytes`, `bounced`). No
/// bearer token is needed. `None` (404) for anything that does not fit.
fn hop(shared: &Arc<Shared>, ids: &RequestIds, rest: &[&str], parts: &Parts) -> Option<Response> {
    shared.stat(|s| s.redirect_hops += 1);
    let (signed, kind) = rest.split_first()?;
    let (serial, true) = shared.parse_signed(signed)? else {
        return None;
    };
    let served = shared.served(serial)?;
    if parts.method != Method::GET {
        return Some(method_not_allowed(ids, "GET"));
    }
    if let Some((status, code, message)) = refused(shared, &served) {
        return Some(graph_error(ids, status, code, message));
    }
    match kind {
        ["chain", remaining] => {
            let remaining = remaining.parse::<u32>().ok().filter(|r| (1..MAX_CHAIN).contains(r))?;
            Some(found(&chain_url(shared, signed, remaining)))
        }
        ["bytes"] => Some(serve_payload(shared, &served, &parts.headers)),
        ["bounced"] => {
            // This chain went through the download origin: a correct client
            // sends no token any more, even back on the graph origin.
            if parts.headers.contains_key(AUTHORIZATION) {
                shared.stat(|s| s.auth_header_after_leaving_graph += 1);
            }
            Some(serve_payload(shared, &served, &parts.headers))
        }
        _ => None,
    }
}

/// The download origin: pre-authenticated, signed URLs; no `Authorization`.
/// `/download/{signed}` serves the bytes; `/bounce/{signed}` sends a
/// [`RedirectStyle::Bounce`] chain back to the graph origin.
fn download(shared: &Arc<Shared>, req: &Request) -> Response {
    shared.stat(|s| s.download_requests += 1);
    let ids = RequestIds {
        request_id: shared.request_guid(),
        client_request_id: String::new(),
    };
    if req.headers().contains_key(AUTHORIZATION) {
        shared.stat(|s| s.auth_header_on_download_origin += 1);
        return download_error(
            StatusCode::BAD_REQUEST,
            "invalidRequest",
            "Pre-authenticated download URLs must not be sent an Authorization header.",
        );
    }
    if let Some((status, retry_after)) = shared.take_throttle(Target::Download) {
        shared.stat(|s| s.throttled += 1);
        return throttled_error(&ids, status, retry_after);
    }
    let path = req.uri().path();
    if let Some(name) = path.strip_prefix("/files/") {
        return file_index(shared, name, req);
    }
    let (bounce, signed) = if let Some(t) = path.strip_prefix("/download/") {
        (false, t)
    } else if let Some(t) = path.strip_prefix("/bounce/") {
        (true, t)
    } else {
        return download_error(StatusCode::NOT_FOUND, "itemNotFound", "Not found.");
    };
    let Some((serial, valid)) = shared.parse_signed(signed) else {
        return download_error(StatusCode::NOT_FOUND, "itemNotFound", "Not found.");
    };
    if !valid {
        return download_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "The pre-authenticated URL signature is invalid.",
        );
    }
    if req.method() != Method::GET {
        return download_error(StatusCode::METHOD_NOT_ALLOWED, "notSupported", "Only GET is supported.");
    }
    let Some(served) = shared.served(serial) else {
        return download_error(StatusCode::NOT_FOUND, "itemNotFound", "Not found.");
    };
    if let Some((status, code, message)) = refused(shared, &served) {
        return download_error(status, code, message);
    }
    if bounce {
        return found(&format!("{}/hops/{signed}/bounced", shared.graph_origin));
    }
    serve_payload(shared, &served, req.headers())
}

/// A plain web-server view of every recording on the download origin (`/files/` lists
/// `rec-<serial>.mp4` links; each serves the same bytes as the recording), so that generic
/// tools such as `rclone copy --http-url` can copy the very same content for comparison.
fn file_index(shared: &Arc<Shared>, name: &str, req: &Request) -> Response {
    if name.is_empty() {
        let data = lock(&shared.data);
        let mut html = String::from("<!DOCTYPE html>\n<html><body><pre>\n");
        for (serial, r) in data.meetings.recordings.iter().enumerate() {
            html.push_str(&format!(
                "<a href=\"rec-{serial:06}.mp4\">rec-{serial:06}.mp4</a> {}\n",
                r.size
            ));
        }
        html.push_str("</pre></body></html>\n");
        let mut resp = Response::new(Body::from(html));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        return resp;
    }
    let known = name
        .strip_prefix("rec-")
        .and_then(|n| n.strip_suffix(".mp4"))
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|serial| serial & TRANSCRIPT_TAG == 0)
        .and_then(|serial| shared.served(serial));
    let Some(served) = known else {
        return download_error(StatusCode::NOT_FOUND, "itemNotFound", "Not found.");
    };
    if req.method() == Method::HEAD {
        let mut resp = Response::new(Body::empty());
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(served.size));
        return resp;
    }
    serve_payload(shared, &served, req.headers())
}

/// An error of the download origin: `{"error":{"code","message"}}`.
fn download_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        "application/json",
        &serde_json::json!({ "error": { "code": code, "message": message } }),
    )
}

/// Streams what `served` names (or the requested range of it) with its media
/// type.
fn serve_payload(shared: &Arc<Shared>, served: &Served, headers: &HeaderMap) -> Response {
    let size = served.size;
    let (status, start, end) = match parse_range(headers, size) {
        ByteRange::Full => (StatusCode::OK, 0, size),
        ByteRange::Partial(first, last) => (StatusCode::PARTIAL_CONTENT, first, last + 1),
        ByteRange::Unsatisfiable => {
            let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            set_header(resp.headers_mut(), CONTENT_RANGE, &format!("bytes */{size}"));
            return resp;
        }
    };
    let len = end - start;
    let body = if len == 0 {
        Body::empty()
    } else {
        // A permanently truncated body does not use up a pending drop.
        let cut = shared.always_truncated(&served.id) || shared.take_drop_mid_body();
        let abort_at = cut.then(|| start + len / 2);
        let stream = ContentStream::new(Arc::clone(&shared.meter), served.source.clone(), start, end, abort_at);
        match shared.content_rate() {
            None => Body::from_stream(stream),
            // A slow network: each chunk is held back as long as the rate says it takes.
            Some(rate) => Body::from_stream(futures::StreamExt::then(stream, move |chunk| async move {
                let len = chunk.as_ref().map_or(0, |c| c.len() as u64);
                tokio::time::sleep(std::time::Duration::from_secs_f64(len as f64 / rate.max(1) as f64)).await;
                chunk
            })),
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(served.media_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        set_header(h, CONTENT_RANGE, &format!("bytes {start}-{}/{size}", end - 1));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions() {
        let p = parse_function(
            "getAllRecordings(meetingOrganizerUserId='abc',startDateTime=2024-01-01T00:00:00Z)",
            "getAllRecordings",
        )
        .expect("parses");
        assert_eq!(
            p,
            vec![
                ("meetingOrganizerUserId".to_owned(), "abc".to_owned()),
                ("startDateTime".to_owned(), "2024-01-01T00:00:00Z".to_owned())
            ]
        );
        assert_eq!(parse_function("getAllRecordings()", "getAllRecordings"), Some(vec![]));
        assert_eq!(parse_function("getAllRecordings(", "getAllRecordings"), None);
        assert_eq!(parse_function("other()", "getAllRecordings"), None);
        assert_eq!(parse_function("é(", "getAllRecordings"), None);
    }

    #[test]
    fn users() {
        let segs = ["users('x%40y')", "a"];
        let (u, rest) = parse_user(&segs).expect("parses");
        assert_eq!(u, "x@y");
        assert_eq!(rest, ["a"]);
        let segs = ["users", "abc"];
        let (u, rest) = parse_user(&segs).expect("parses");
        assert_eq!(u, "abc");
        assert!(rest.is_empty());
        assert!(parse_user(&["users"]).is_none());
        assert!(parse_user(&["users()"]).is_none());
        assert!(parse_user(&["groups", "x"]).is_none());
    }
}
