//! Authenticated, retried GETs against the Graph origin, shared by delta paging and content
//! downloads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use tokio::time::Instant;
use url::Url;

use recarch_failure::{FailureClass, status_class};

use crate::body::read_capped;
use crate::error::{DeltaError, GraphErrorBody};
use crate::retry::{RetryPolicy, retry_after};
use crate::token::TokenProvider;

/// The largest error body read from Graph; error bodies are small, anything bigger is cut.
const ERROR_BODY_CAP: usize = 64 * 1024;

/// Whether a request carries the bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Send `Authorization: Bearer …`; only ever to the Graph origin.
    Bearer,
    /// Send no credentials (pre-authenticated download URLs on other hosts).
    None,
}

/// A Graph HTTP client: bearer tokens for the Graph origin only, one token refresh on 401,
/// bounded retries of throttling and dropped connections.
///
/// Cheap to clone; clones share the token provider and the throttling pause.
#[derive(Debug, Clone)]
pub struct GraphHttp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The HTTP client; redirects must be disabled on it so that no redirect can carry the
    /// token to another origin behind our back (callers follow redirects themselves).
    http: reqwest::Client,
    /// Where bearer tokens come from.
    tokens: Arc<dyn TokenProvider>,
    /// The one origin that may see the bearer token.
    origin: url::Origin,
    /// How persistently to retry.
    policy: RetryPolicy,
    /// When Graph last asked us (with `Retry-After`) to hold off, every request waits until
    /// then: throttling is per application, so backing off one request alone is not enough.
    paused_until: Mutex<Option<Instant>>,
    /// How many throttling answers (429, 503) arrived so far, across clones: the fetcher
    /// watches it to back its concurrency off while Graph throttles.
    throttle_events: AtomicU64,
    /// Requests sent (every attempt), across clones, for the run's metrics.
    requests_sent: AtomicU64,
}

impl GraphHttp {
    /// A client for the Graph service at `base_url`. `http` should have redirects disabled
    /// (`reqwest::redirect::Policy::none()`).
    pub fn new(http: reqwest::Client, tokens: Arc<dyn TokenProvider>, base_url: &Url, policy: RetryPolicy) -> Self {
        GraphHttp {
            inner: Arc::new(Inner {
                http,
                tokens,
                origin: base_url.origin(),
                policy,
                paused_until: Mutex::new(None),
                throttle_events: AtomicU64::new(0),
                requests_sent: AtomicU64::new(0),
            }),
        }
    }

    /// The retry policy in force.
    pub fn policy(&self) -> &RetryPolicy {
        &self.inner.policy
    }

    /// How many throttling answers (429, 503) this client and its clones have received so far.
    /// A caller that sees it grow backs off its own concurrency (see `recarch_fetch`).
    pub fn throttle_events(&self) -> u64 {
        self.inner.throttle_events.load(Ordering::Relaxed)
    }

    /// How many requests (every attempt) this client and its clones have sent so far.
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests_sent.load(Ordering::Relaxed)
    }

    /// The underlying HTTP client.
    pub fn client(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The Graph origin, e.g. `https://graph.microsoft.com`.
    pub fn origin(&self) -> String {
        self.inner.origin.ascii_serialization()
    }

    /// Whether `url` is on the Graph origin (and so may receive the token).
    pub fn is_graph_origin(&self, url: &Url) -> bool {
        url.origin() == self.inner.origin
    }

    /// Refuses `url` unless it is on the Graph origin.
    pub fn check_origin(&self, url: &Url) -> Result<(), DeltaError> {
        if self.is_graph_origin(url) {
            Ok(())
        } else {
            Err(DeltaError::OffOrigin {
                origin: url.origin().ascii_serialization(),
                graph_origin: self.origin(),
            })
        }
    }

    /// GETs `url`, retrying transient answers (429, 500, 502, 503, 504, ... per
    /// `recarch_failure::status_class`, honouring `Retry-After`) and connection failures within
    /// the policy, and fetching a new token once on 401. Any other status is returned for the
    /// caller to interpret (see [`GraphHttp::check_status`]).
    pub async fn get(&self, url: &Url, headers: &HeaderMap, auth: Auth) -> Result<Response, DeltaError> {
        self.send(&self.inner.http, url, headers, auth).await
    }

    /// GETs `url` with `client` and no credentials at all (pre-authenticated download URLs on
    /// other origins), with the same retries and throttling pause as [`GraphHttp::get`].
    pub async fn get_unauthenticated(
        &self,
        client: &reqwest::Client,
        url: &Url,
        headers: &HeaderMap,
    ) -> Result<Response, DeltaError> {
        self.send(client, url, headers, Auth::None).await
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        url: &Url,
        headers: &HeaderMap,
        auth: Auth,
    ) -> Result<Response, DeltaError> {
        if auth == Auth::Bearer {
            self.check_origin(url)?;
        }
        let host = host_of(url);
        let policy = &self.inner.policy;
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            attempt += 1;
            self.wait_while_paused().await;
            let mut request = client.get(url.clone()).headers(headers.clone());
            let token = match auth {
                Auth::Bearer => {
                    let token = self.inner.tokens.token().await?;
                    request = request.bearer_auth(token.expose());
                    Some(token)
                }
                Auth::None => None,
            };
            self.inner.requests_sent.fetch_add(1, Ordering::Relaxed);
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    let error = error.without_url();
                    let retried = policy
                        .wait_before_retry(attempt, started.elapsed(), None, |_| {
                            tracing::warn!(%host, attempt, error = %error, "request failed, retrying");
                        })
                        .await;
                    if retried {
                        continue;
                    }
                    return Err(DeltaError::Transport {
                        host,
                        attempts: attempt,
                        source: error,
                    });
                }
            };
            let status = response.status();
            match status {
                StatusCode::UNAUTHORIZED if !refreshed => {
                    if let Some(token) = &token {
                        // The token expired early or was revoked: one new token, one retry,
                        // not counted against the throttling budget.
                        self.inner.tokens.invalidate(token);
                        refreshed = true;
                        attempt -= 1;
                        tracing::info!(%host, "graph refused the token (401), fetching a new one");
                        continue;
                    }
                    return Ok(response);
                }
                StatusCode::UNAUTHORIZED if token.is_some() => {
                    let body = error_body(response).await;
                    return Err(DeltaError::Unauthorized { host, body });
                }
                status
                    if status != StatusCode::UNAUTHORIZED
                        && status_class(status.as_u16()) == FailureClass::Transient =>
                {
                    let asked = retry_after(response.headers());
                    if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
                        self.inner.throttle_events.fetch_add(1, Ordering::Relaxed);
                    }
                    let retried = policy.wait_before_retry(attempt, started.elapsed(), asked, |wait| {
                        if asked.is_some() {
                            // Throttling is per application: every request holds off, not
                            // just this one. (A wait longer than the budget is not shared:
                            // it stops only the work that met it, for this run.)
                            self.pause_for(wait);
                        }
                        tracing::warn!(%host, %status, attempt, wait_ms = wait.as_millis() as u64, "graph answered a transient error, waiting");
                        // Let go of the response (and its connection) before the wait.
                        drop(response);
                    })
                    .await;
                    if retried {
                        continue;
                    }
                    return Err(DeltaError::Throttled {
                        host,
                        status,
                        attempts: attempt,
                        retry_after: asked,
                    });
                }
                _ => return Ok(response),
            }
        }
    }

    /// Maps error statuses to [`DeltaError`]s: 402 → `PaymentRequired`, 403 → `Forbidden`,
    /// 410 → `SyncReset`,
    /// anything else unsuccessful → `Status`; successes and redirects pass through.
    pub async fn check_status(response: Response) -> Result<Response, DeltaError> {
        let status = response.status();
        if status.is_success() || status.is_redirection() {
            return Ok(response);
        }
        let url = response.url().clone();
        // An absolute `Location` is kept verbatim (links are opaque); a relative one is
        // resolved against the URL that answered, as for any redirect.
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| match Url::parse(l) {
                Ok(_) => Some(l.to_owned()),
                Err(_) => url.join(l).ok().map(String::from),
            });
        let body = error_body(response).await;
        Err(match status {
            StatusCode::PAYMENT_REQUIRED => DeltaError::PaymentRequired { body },
            StatusCode::FORBIDDEN => DeltaError::Forbidden {
                what: format!("{}{}", host_of(&url), url.path()),
                body,
            },
            StatusCode::GONE => DeltaError::SyncReset {
                host: host_of(&url),
                code: body.code,
                location,
            },
            _ => DeltaError::Status {
                what: format!("{}{}", host_of(&url), url.path()),
                status,
                body,
            },
        })
    }

    fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        if let Ok(mut paused) = self.inner.paused_until.lock() {
            if paused.is_none_or(|p| p < until) {
                *paused = Some(until);
            }
        }
    }

    async fn wait_while_paused(&self) {
        let until = self.inner.paused_until.lock().ok().and_then(|p| *p);
        if let Some(until) = until {
            if until > Instant::now() {
                tokio::time::sleep_until(until).await;
            }
        }
    }
}

/// `host[:port]` of a URL, for messages (never the query, which may hold signatures).
pub fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => url.scheme().to_owned(),
    }
}

async fn error_body(response: Response) -> GraphErrorBody {
    match read_capped(response, ERROR_BODY_CAP).await {
        Ok(body) => GraphErrorBody::parse(&body),
        Err(_) => GraphErrorBody::default(),
    }
}
