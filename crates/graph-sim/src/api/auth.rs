//! The Microsoft identity platform's token endpoint
//! (`POST /{tenant}/oauth2/v2.0/token`, client-credentials grant): a client
//! secret, a certificate-signed client assertion (checked in
//! [`crate::assertion`]) or a federated token; AAD-shaped errors.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, PRAGMA};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::assertion::{self, Accepted, AssertionRejection, Refusal};
use crate::conn::ConnKill;
use crate::faults::{CredentialRejection, RetryAfter, Target};
use crate::http::{RequestIds, error_status, json_response, retry_after_value, set_header, strip_prefix_ci};
use crate::state::{Shared, lock};
use crate::test_keys::JWT_BEARER;

/// Largest accepted token-request body.
const MAX_FORM_BODY: usize = 64 * 1024;

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

pub(crate) async fn token_endpoint(
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
