//! The client-credentials grant: one [`TokenProvider`] for Graph that posts to the Microsoft
//! identity platform's token endpoint with a pluggable proof ([`ClientProof`]), caches the
//! token, renews it before it expires (one refresh, however many callers wait) and retries
//! transient answers within the same [`RetryPolicy`] as Graph requests.
//!
//! The token types it hands out ([`AccessToken`], [`Secret`], [`AuthError`], [`TokenProvider`],
//! [`StaticToken`]) are shared with every other provider and with the Graph client, so they live
//! in a module of their own below this one and below the proofs; they are re-exported here, the
//! path callers import them from.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use recarch_failure::{FailureClass, status_class};

use crate::body::read_capped;
use crate::credentials::ClientProof;
use crate::retry::{RetryPolicy, retry_after};

pub use crate::token::{AccessToken, AuthError, Secret, StaticToken, TokenProvider};

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
    pub proof: ClientProof,
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
                    let retried = policy.wait_before_retry(attempt, started.elapsed(), retry_after, |wait| {
                        tracing::warn!(endpoint = %self.endpoint, attempt, wait_ms = wait.as_millis() as u64, error = %error, "token request failed, retrying");
                    })
                    .await;
                    if !retried {
                        return Err(error);
                    }
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
    fn scope_is_the_graph_origin() {
        let base = Url::parse("https://graph.microsoft.com/beta").expect("static url");
        assert_eq!(scope_for(&base), "https://graph.microsoft.com/.default");
    }
}
