//! Access tokens for Graph: the client-credentials grant, cached and renewed before expiry.
//!
//! Tokens and secrets live in [`AccessToken`] and [`Secret`], whose `Debug` and `Display` print
//! `[redacted]`, so neither can reach a log line or an error message by accident.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use recarch_failure::{FailureClass, status_class};

use crate::body::read_capped;
use crate::credentials::ClientProof;
use crate::retry::{RetryPolicy, retry_after};

/// A secret string (client secret). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Arc::from(value.into()))
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A bearer token. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// Wraps a token.
    pub fn new(value: impl Into<String>) -> AccessToken {
        AccessToken(Arc::from(value.into()))
    }
    /// The token itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// Getting a token failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token endpoint refused the request: wrong tenant, client id, secret or scope. Fatal.
    #[error(
        "token endpoint {endpoint} refused the credentials: {code} ({description}); check [graph].tenant_id, [graph].client_id and the client secret"
    )]
    Rejected {
        /// The token endpoint, without query.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The OAuth error code (`invalid_client`, `unauthorized_client`, ...).
        code: String,
        /// The first line of the server's description.
        description: String,
    },
    /// The token endpoint could not be reached.
    #[error("cannot reach token endpoint {endpoint}; check [graph].authority_url and the network")]
    Unreachable {
        /// The token endpoint.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The token endpoint kept answering a transient error (429, 5xx) after every allowed
    /// attempt; the next run tries again.
    #[error(
        "token endpoint {endpoint} is unavailable: it answered {status} ({code}) after {attempts} attempts; try again later"
    )]
    Unavailable {
        /// The token endpoint.
        endpoint: String,
        /// The last HTTP status.
        status: u16,
        /// The OAuth error code, or `http <status>`.
        code: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A client assertion could not be made (a certificate or federated token file unreadable
    /// or unusable after the start of the run); the next attempt reads the files again.
    #[error("cannot make the client assertion: {reason}")]
    Assertion {
        /// What is wrong (file and problem, never key material).
        reason: String,
    },
    /// The token endpoint answered something that is not a token response.
    #[error("token endpoint {endpoint} sent an unexpected response: {reason}")]
    Malformed {
        /// The token endpoint.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
}

impl AuthError {
    /// The failure class: only an answer that refuses the request itself (wrong tenant, client
    /// id, secret, assertion or scope: `invalid_client`, `unauthorized_client`, AADSTS7000215,
    /// 700016, 90002, ...) is fatal; an endpoint that cannot be reached or answers 429/5xx is
    /// transient.
    pub fn class(&self) -> FailureClass {
        match self {
            AuthError::Rejected { .. } => FailureClass::Fatal,
            AuthError::Unreachable { .. }
            | AuthError::Unavailable { .. }
            | AuthError::Malformed { .. }
            | AuthError::Assertion { .. } => FailureClass::Transient,
        }
    }
}

/// Something that hands out bearer tokens for Graph.
pub trait TokenProvider: Send + Sync + std::fmt::Debug {
    /// A token valid for at least a little while longer.
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>>;
    /// Graph refused `rejected` (401): forget it so the next [`token`](Self::token) fetches a
    /// new one.
    fn invalidate(&self, rejected: &AccessToken);
}

/// A fixed token, for tests and for tokens minted elsewhere.
#[derive(Debug, Clone)]
pub struct StaticToken(AccessToken);

impl StaticToken {
    /// A provider that always returns `token`.
    pub fn new(token: impl Into<String>) -> StaticToken {
        StaticToken(AccessToken::new(token))
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }
    fn invalidate(&self, _rejected: &AccessToken) {}
}

/// Settings of the client-credentials grant.
#[derive(Debug, Clone)]
pub struct ClientCredentialsConfig {
    /// e.g. `https://login.microsoftonline.com` (national clouds differ).
    pub authority_url: Url,
    /// The directory (tenant) id.
    pub tenant_id: String,
    /// The application (client) id.
    pub client_id: String,
    /// How the application proves its identity: a secret, or a client assertion.
    pub proof: crate::credentials::ClientProof,
    /// e.g. `https://graph.microsoft.com/.default`: see [`scope_for`].
    pub scope: String,
    /// Renew this long before `expires_in` runs out.
    pub refresh_margin: Duration,
    /// Retries of transient answers (429, 5xx, connection failures), the same policy as Graph
    /// requests.
    pub retry: RetryPolicy,
}

/// The `.default` scope of the Graph origin that `base_url` belongs to.
pub fn scope_for(base_url: &Url) -> String {
    format!("{}/.default", base_url.origin().ascii_serialization())
}

/// The OAuth 2.0 client-credentials grant against `{authority}/{tenant}/oauth2/v2.0/token`.
///
/// One token is cached and shared by every request; concurrent callers wait for a single
/// refresh instead of each asking the endpoint.
#[derive(Debug)]
pub struct ClientCredentials {
    /// The client used for the token endpoint only.
    http: reqwest::Client,
    /// The grant's settings.
    config: ClientCredentialsConfig,
    /// The token endpoint URL, derived once from the authority and tenant.
    endpoint: Url,
    /// The cached token and when to stop using it; the lock also serialises refreshes.
    cache: Mutex<Option<(AccessToken, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The largest token response read.
const TOKEN_BODY_CAP: usize = 256 * 1024;
/// The longest token lifetime believed: an `expires_in` beyond it (or one that does not fit a
/// clock) is read as this. Entra issues tokens for 60-90 minutes.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// One token request's failure, and whether another attempt may help.
enum TokenAttempt {
    /// Retry within the policy, after `retry_after` if the endpoint asked.
    Transient {
        error: AuthError,
        retry_after: Option<Duration>,
    },
    /// The endpoint refused the request itself.
    Fatal(AuthError),
}

impl ClientCredentials {
    /// A provider for `config`, using `http` to reach the token endpoint.
    pub fn new(http: reqwest::Client, config: ClientCredentialsConfig) -> Result<Self, AuthError> {
        let endpoint = token_endpoint(&config.authority_url, &config.tenant_id)?;
        Ok(ClientCredentials {
            http,
            config,
            endpoint,
            cache: Mutex::new(None),
        })
    }

    /// The token endpoint this provider posts to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Requests a token, retrying transient failures (connection errors, 429, 5xx) within the
    /// retry policy and honouring `Retry-After`.
    async fn fetch(&self) -> Result<(AccessToken, Instant), AuthError> {
        let policy = &self.config.retry;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.fetch_once(attempt).await {
                Ok(token) => return Ok(token),
                Err(TokenAttempt::Fatal(error)) => return Err(error),
                Err(TokenAttempt::Transient { error, retry_after }) => {
                    let wait = policy.delay(attempt, retry_after);
                    if !policy.allows(attempt, started.elapsed(), wait) {
                        return Err(error);
                    }
                    tracing::warn!(endpoint = %self.endpoint, attempt, wait_ms = wait.as_millis() as u64, error = %error, "token request failed, retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn fetch_once(&self, attempt: u32) -> Result<(AccessToken, Instant), TokenAttempt> {
        let endpoint = self.endpoint.to_string();
        let transient = |error: AuthError| TokenAttempt::Transient {
            error,
            retry_after: None,
        };
        let proof = match &self.config.proof {
            ClientProof::Secret(secret) => secret.clone(),
            // A fresh assertion for every request (a new jti; a rotated file re-read).
            ClientProof::Assertion(source) => {
                source
                    .assertion(&self.config.client_id, &endpoint)
                    .map_err(|error| TokenAttempt::Transient {
                        error,
                        retry_after: None,
                    })?
            }
        };
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.config.client_id.as_str()),
            ("scope", self.config.scope.as_str()),
        ];
        match &self.config.proof {
            ClientProof::Secret(_) => form.push(("client_secret", proof.expose())),
            ClientProof::Assertion(_) => {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                form.push(("client_assertion", proof.expose()));
            }
        }
        let started = Instant::now();
        let response = self
            .http
            .post(self.endpoint.clone())
            .form(&form)
            .send()
            .await
            .map_err(|source| {
                transient(AuthError::Unreachable {
                    endpoint: endpoint.clone(),
                    source: source.without_url(),
                })
            })?;
        let status = response.status();
        let asked = retry_after(response.headers());
        let body = read_capped(response, TOKEN_BODY_CAP).await.map_err(|e| {
            transient(AuthError::Malformed {
                endpoint: endpoint.clone(),
                reason: e.to_string(),
            })
        })?;
        if !status.is_success() {
            let err: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
            let code = if err.error.is_empty() {
                format!("http {}", status.as_u16())
            } else {
                err.error
            };
            // The one status table, read for the token endpoint: 429 and 5xx pass; a 401
            // here is the endpoint refusing the client itself (`invalid_client`), and any
            // other refusal of the request will not pass by asking again.
            let class = match status.as_u16() {
                401 => FailureClass::Fatal,
                s => match status_class(s) {
                    FailureClass::Transient => FailureClass::Transient,
                    _ => FailureClass::Fatal,
                },
            };
            if class == FailureClass::Transient {
                return Err(TokenAttempt::Transient {
                    error: AuthError::Unavailable {
                        endpoint,
                        status: status.as_u16(),
                        code,
                        attempts: attempt,
                    },
                    retry_after: asked,
                });
            }
            let description = err
                .error_description
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            return Err(TokenAttempt::Fatal(AuthError::Rejected {
                endpoint,
                status: status.as_u16(),
                code,
                description,
            }));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            transient(AuthError::Malformed {
                endpoint: endpoint.clone(),
                reason: format!("not a token response ({e})"),
            })
        })?;
        Ok((
            AccessToken::new(parsed.access_token),
            renew_at(started, parsed.expires_in.as_ref(), self.config.refresh_margin),
        ))
    }
}

/// When to renew a token fetched at `fetched_at` with this `expires_in`: `refresh_margin`
/// early, but never before half its lifetime. `expires_in` is a number in v2 responses and a
/// string in some older ones; a missing or unreadable one reads as 3599 s, a huge one as
/// [`MAX_TOKEN_LIFETIME`], so no answer can overflow the clock.
fn renew_at(fetched_at: Instant, expires_in: Option<&serde_json::Value>, refresh_margin: Duration) -> Instant {
    let secs = expires_in
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())))
        .unwrap_or(3599);
    let lifetime = Duration::from_secs(secs).min(MAX_TOKEN_LIFETIME);
    let usable = lifetime.saturating_sub(refresh_margin).max(lifetime / 2);
    tracing::debug!(expires_in = secs, "fetched access token");
    fetched_at.checked_add(usable).unwrap_or(fetched_at)
}

impl TokenProvider for ClientCredentials {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(async move {
            let mut cache = self.cache.lock().await;
            if let Some((token, renew_at)) = cache.as_ref() {
                if Instant::now() < *renew_at {
                    return Ok(token.clone());
                }
            }
            let (token, renew_at) = self.fetch().await?;
            *cache = Some((token.clone(), renew_at));
            Ok(token)
        })
    }

    fn invalidate(&self, rejected: &AccessToken) {
        // A refresh may be under way holding the lock; then the cache is being replaced anyway.
        if let Ok(mut cache) = self.cache.try_lock() {
            if cache.as_ref().is_some_and(|(t, _)| t == rejected) {
                *cache = None;
            }
        }
    }
}

/// `{authority}/{tenant}/oauth2/v2.0/token`, with the tenant checked to be one path segment.
fn token_endpoint(authority: &Url, tenant: &str) -> Result<Url, AuthError> {
    let bad = |reason: &str| AuthError::Malformed {
        endpoint: authority.to_string(),
        reason: reason.to_owned(),
    };
    if tenant.is_empty()
        || !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(bad("tenant id must be a GUID or a domain name"));
    }
    let mut url = authority.clone();
    url.path_segments_mut()
        .map_err(|()| bad("authority url cannot be a base"))?
        .pop_if_empty()
        .extend([tenant, "oauth2", "v2.0", "token"]);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret([redacted])");
        assert!(!format!("{:?}", AccessToken::new("eyJ0")).contains("eyJ0"));
    }

    #[test]
    fn token_endpoint_joins_authority_and_tenant() {
        let authority = Url::parse("https://login.microsoftonline.us/").expect("static url");
        let url = token_endpoint(&authority, "contoso.onmicrosoft.com").expect("valid tenant");
        assert_eq!(
            url.as_str(),
            "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert!(token_endpoint(&authority, "a/b").is_err());
        assert!(token_endpoint(&authority, "").is_err());
    }

    #[test]
    fn absurd_lifetimes_never_overflow() {
        let now = Instant::now();
        let margin = Duration::from_secs(300);
        let at = |v: serde_json::Value| renew_at(now, Some(&v), margin).duration_since(now);
        assert_eq!(at(serde_json::json!(3600)), Duration::from_secs(3300));
        assert_eq!(at(serde_json::json!("3600")), Duration::from_secs(3300));
        assert_eq!(at(serde_json::json!(u64::MAX)), MAX_TOKEN_LIFETIME - margin);
        assert_eq!(
            at(serde_json::json!("999999999999999999999999")),
            Duration::from_secs(3299)
        );
        assert_eq!(at(serde_json::json!(-5)), Duration::from_secs(3299));
        assert_eq!(at(serde_json::json!(1e300)), Duration::from_secs(3299));
        assert_eq!(at(serde_json::json!(100)), Duration::from_secs(50));
        assert_eq!(
            renew_at(now, None, margin).duration_since(now),
            Duration::from_secs(3299)
        );
    }

    #[test]
    fn only_refusals_are_fatal() {
        let rejected = AuthError::Rejected {
            endpoint: "e".into(),
            status: 401,
            code: "invalid_client".into(),
            description: String::new(),
        };
        assert_eq!(rejected.class(), FailureClass::Fatal);
        let unavailable = AuthError::Unavailable {
            endpoint: "e".into(),
            status: 503,
            code: "temporarily_unavailable".into(),
            attempts: 6,
        };
        assert_eq!(unavailable.class(), FailureClass::Transient);
    }

    #[test]
    fn scope_is_the_graph_origin() {
        let base = Url::parse("https://graph.microsoft.com/beta").expect("static url");
        assert_eq!(scope_for(&base), "https://graph.microsoft.com/.default");
    }
}
