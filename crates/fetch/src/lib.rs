//! Streaming downloads of Graph content: a global concurrency bound, the token kept on the
//! Graph origin, SHA-256 computed while the bytes stream, and bodies checked against their
//! `Content-Length`.
//!
//! [`Fetcher::open`] returns a [`Download`]: a `Stream` of `Bytes` chunks that hashes and
//! counts every chunk as it passes, fails if the body ends short of (or runs past) the length
//! the server announced, and — once drained — yields the digest from [`Download::finish`]. The
//! consumer (the store) never needs the whole body in memory.
//!
//! Security rules, enforced here and tested:
//!
//! - a content URL off the Graph origin is refused before any request ([`FetchError::OffOrigin`]);
//! - redirects are followed by hand, at most five hops, each `Location` resolved against the
//!   hop that sent it: the token goes along only while the chain stays on the Graph origin —
//!   once a hop has left it, no later hop gets the token, even one back on the Graph origin —
//!   and a hop from https to plain http is refused;
//! - while Graph throttles (429/503), the number of downloads in flight backs off (halved at
//!   each new throttling answer, grown back by one per `limit` clean bodies).
//!
//! Every [`FetchError`] has a [`FailureClass`] ([`FetchError::class`]).
//!
//! # Example
//!
//! ```no_run
//! # async fn demo(http: recarch_delta::GraphHttp) -> Result<(), recarch_fetch::FetchError> {
//! use futures::TryStreamExt;
//! let fetcher = recarch_fetch::Fetcher::new(http, reqwest::Client::new(), 8);
//! let mut download = fetcher.open("https://graph.microsoft.com/beta/users/u/onlineMeetings/m/recordings/r/content").await?;
//! while let Some(chunk) = download.try_next().await? {
//!     // write `chunk` somewhere
//! #   let _ = chunk;
//! }
//! let fetched = download.finish()?;
//! println!("{} bytes, sha256 {:?}", fetched.size, fetched.sha256.map(hex::encode));
//! # Ok(()) }
//! ```

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use recarch_delta::{Auth, DeltaError, GraphHttp, host_of};
pub use recarch_failure::FailureClass;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

/// How many redirects one download may follow.
const MAX_REDIRECTS: usize = 5;

/// What can go wrong fetching content. Messages name the host, never a query string (download
/// URLs carry signatures) or a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The content URL is not on the Graph origin: fetching it would hand the token to a
    /// stranger. Refused without any request; not retryable.
    #[error("refusing content url on {origin}: only the graph origin {graph_origin} may receive the token")]
    OffOrigin {
        /// The refused origin.
        origin: String,
        /// The Graph origin.
        graph_origin: String,
    },
    /// The content URL is not a valid http(s) URL.
    #[error("invalid content url ({reason})")]
    InvalidUrl {
        /// Why.
        reason: String,
    },
    /// Graph or the download host answered an error (after the HTTP layer's retries).
    #[error(transparent)]
    Graph(#[from] DeltaError),
    /// Too many redirects, or a redirect without a usable `Location`.
    #[error("bad redirect from {host}: {reason}")]
    Redirect {
        /// The host that redirected.
        host: String,
        /// What was wrong.
        reason: String,
    },
    /// The body ended before `Content-Length` bytes arrived. Retryable; never stored.
    #[error("body from {host} ended after {received} of {expected} bytes")]
    Truncated {
        /// The host.
        host: String,
        /// Announced length.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// The body ran past `Content-Length`. Never stored.
    #[error("body from {host} is longer than its content-length {expected}")]
    TooLong {
        /// The host.
        host: String,
        /// Announced length.
        expected: u64,
    },
    /// The connection failed mid-body. Retryable; never stored.
    #[error("body from {host} failed after {received} bytes")]
    Body {
        /// The host.
        host: String,
        /// Bytes received before the failure.
        received: u64,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// [`Download::finish`] was called before the stream was drained.
    #[error("download from {host} was not read to the end")]
    Unfinished {
        /// The host.
        host: String,
    },
    /// [`Fetcher::close`] was called (the run is stopping): no new download starts. Not
    /// retryable within this run.
    #[error("not started: downloads are closed")]
    Closed,
}

impl FetchError {
    /// The failure class: what the caller should do with the item. A body cut short or too
    /// long is transient (the caller decides that a body failing on *every* attempt is
    /// permanent); an off-origin URL, a bad redirect chain and 403/404/410 are permanent.
    pub fn class(&self) -> FailureClass {
        match self {
            FetchError::Truncated { .. }
            | FetchError::Body { .. }
            | FetchError::TooLong { .. }
            | FetchError::Unfinished { .. }
            | FetchError::Closed => FailureClass::Transient,
            FetchError::OffOrigin { .. } | FetchError::InvalidUrl { .. } | FetchError::Redirect { .. } => {
                FailureClass::Permanent
            }
            FetchError::Graph(e) => e.class(),
        }
    }

    /// Whether trying the same download again may succeed ([`FetchError::class`] is
    /// transient).
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable() && !matches!(self, FetchError::Closed)
    }

    /// Whether the body itself failed its checks (cut short, too long, dropped mid-way), as
    /// opposed to the request.
    pub fn is_body_failure(&self) -> bool {
        matches!(
            self,
            FetchError::Truncated { .. } | FetchError::TooLong { .. } | FetchError::Body { .. }
        )
    }
}

/// Downloads content with at most `concurrency` bodies open at once, across every caller.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// Authenticated HTTP for the Graph origin (redirects disabled).
    graph: GraphHttp,
    /// A plain client for pre-authenticated URLs on other origins; it never holds credentials.
    /// Redirects must be disabled on it too.
    plain: reqwest::Client,
    /// The global bound, backed off while Graph throttles. A permit is taken before a request
    /// is sent and travels inside the [`Download`]; the end of its body (clean or failed), or
    /// dropping it, returns it.
    limiter: Arc<Limiter>,
    /// Whether downloads compute SHA-256 themselves (see [`Fetcher::hashing`]).
    hashing: bool,
}

/// The digest and size of a fully received body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// SHA-256 of the bytes; `None` when the fetcher was built with `hashing(false)`.
    pub sha256: Option<[u8; 32]>,
    /// Number of bytes.
    pub size: u64,
}

impl Fetcher {
    /// A fetcher that sends Graph requests through `graph`, other-origin requests through
    /// `plain`, and keeps at most `concurrency` downloads open (at least one).
    pub fn new(graph: GraphHttp, plain: reqwest::Client, concurrency: usize) -> Self {
        Fetcher {
            graph,
            plain,
            limiter: Arc::new(Limiter::new(concurrency)),
            hashing: true,
        }
    }

    /// Whether downloads hash what they stream (default `true`). A caller whose sink hashes
    /// the same bytes anyway (the archive's staging names blobs by the SHA-256 of what it
    /// wrote) turns this off to hash every byte once instead of twice; lengths are checked
    /// against `Content-Length` either way.
    pub fn hashing(mut self, on: bool) -> Self {
        self.hashing = on;
        self
    }

    /// Stops new downloads: [`Fetcher::open`] calls waiting for a slot, and later ones, fail
    /// with [`FetchError::Closed`] at once; downloads already open stream on to their end.
    /// For a run that is shutting down. Clones of this fetcher share the closing.
    pub fn close(&self) {
        self.limiter.permits.close();
    }

    /// Download slots free right now (for tests and progress displays).
    pub fn available_permits(&self) -> usize {
        self.limiter.permits.available_permits()
    }

    /// How many downloads may be in flight now: the configured concurrency, or less while
    /// Graph throttles.
    pub fn current_limit(&self) -> usize {
        self.limiter.limit.load(Ordering::Relaxed)
    }

    /// Checks a content URL without fetching it: a valid http(s) URL on the Graph origin.
    pub fn check_url(&self, content_url: &str) -> Result<Url, FetchError> {
        let url = Url::parse(content_url).map_err(|e| FetchError::InvalidUrl { reason: e.to_string() })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::InvalidUrl {
                reason: format!("scheme {} is not http(s)", url.scheme()),
            });
        }
        if !self.graph.is_graph_origin(&url) {
            return Err(FetchError::OffOrigin {
                origin: url.origin().ascii_serialization(),
                graph_origin: self.graph.origin(),
            });
        }
        Ok(url)
    }

    /// Opens a download of `content_url`, waiting for a concurrency permit first. The
    /// response's status and headers have arrived; the body streams from the returned
    /// [`Download`].
    ///
    /// # Errors
    /// [`FetchError::Closed`] once [`Fetcher::close`] was called; the others describe the
    /// URL, the server's answer or the redirects.
    pub async fn open(&self, content_url: &str) -> Result<Download, FetchError> {
        let mut url = self.check_url(content_url)?;
        self.limiter.observe_throttling(self.graph.throttle_events());
        // Fails only when the semaphore was closed by `close`.
        let permit = Arc::clone(&self.limiter.permits)
            .acquire_owned()
            .await
            .map_err(|_| FetchError::Closed)?;
        let permit = Permit {
            inner: Some(permit),
            limiter: Arc::clone(&self.limiter),
        };
        let mut auth = Auth::Bearer;
        for _ in 0..=MAX_REDIRECTS {
            let response = match auth {
                Auth::Bearer => self.graph.get(&url, &HeaderMap::new(), Auth::Bearer).await?,
                Auth::None => {
                    self.graph
                        .get_unauthenticated(&self.plain, &url, &HeaderMap::new())
                        .await?
                }
            };
            let response = GraphHttp::check_status(response).await.map_err(content_gone)?;
            if response.status().is_redirection() {
                let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok());
                let (next, next_auth) = next_hop(&url, response.status(), location, auth, |u| {
                    self.graph.is_graph_origin(u)
                })?;
                tracing::debug!(from = %host_of(&url), to = %host_of(&next), with_token = next_auth == Auth::Bearer, "following redirect");
                url = next;
                auth = next_auth;
                continue;
            }
            if response.status() != StatusCode::OK {
                return Err(FetchError::Redirect {
                    host: host_of(&url),
                    reason: format!("unexpected status {}", response.status()),
                });
            }
            let content_length = response.content_length();
            let media_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
                .filter(|v| !v.is_empty());
            let host = host_of(&url);
            return Ok(Download {
                content_length,
                media_type,
                host,
                body: Box::pin(response.bytes_stream()),
                hasher: self.hashing.then(Sha256::new),
                received: 0,
                state: State::Streaming,
                permit: Some(permit),
            });
        }
        Err(FetchError::Redirect {
            host: host_of(&url),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }
}

/// On content, 410 Gone is the recording gone (permanent), not a delta query's expired sync
/// state.
fn content_gone(e: DeltaError) -> DeltaError {
    match e {
        DeltaError::SyncReset { host, code, .. } => DeltaError::Status {
            what: host,
            status: StatusCode::GONE,
            body: recarch_delta::GraphErrorBody {
                code,
                message: "the content is gone".into(),
            },
        },
        other => other,
    }
}

/// Where a redirect leads, and whether the token may go along: the `Location` resolved
/// against the hop that sent it; http(s) only; never from https down to http; the token only
/// while every hop so far, and the next one, is on the Graph origin (`auth` is what the
/// current hop carried: once `None`, it stays `None`).
fn next_hop(
    current: &Url,
    status: StatusCode,
    location: Option<&str>,
    auth: Auth,
    is_graph_origin: impl Fn(&Url) -> bool,
) -> Result<(Url, Auth), FetchError> {
    let host = host_of(current);
    let bad = |reason: String| FetchError::Redirect {
        host: host.clone(),
        reason,
    };
    let location = location.ok_or_else(|| bad(format!("{status} without a location")))?;
    let next = current
        .join(location)
        .map_err(|e| bad(format!("invalid location ({e})")))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(bad(format!("location scheme {} is not http(s)", next.scheme())));
    }
    if current.scheme() == "https" && next.scheme() == "http" {
        return Err(bad(format!(
            "refusing a redirect from https down to plain http ({})",
            host_of(&next)
        )));
    }
    let auth = if auth == Auth::Bearer && is_graph_origin(&next) {
        Auth::Bearer
    } else {
        Auth::None
    };
    Ok((next, auth))
}

/// The download concurrency bound, backed off while Graph throttles: each new throttling
/// answer (seen through [`GraphHttp::throttle_events`]) halves the limit (at least 1); every
/// `limit` bodies that end cleanly grow it by one, up to the configured concurrency.
/// Lowering the limit withholds permits: a permit returned while some are owed is forgotten
/// instead of going back.
#[derive(Debug)]
struct Limiter {
    /// The permits; at most `max` exist, fewer while some are withheld.
    permits: Arc<Semaphore>,
    /// The configured concurrency.
    max: usize,
    /// The limit in force.
    limit: AtomicUsize,
    /// Permits still to withhold (forget as they come back).
    owed: AtomicUsize,
    /// The throttle count last acted on.
    seen_throttles: AtomicU64,
    /// Clean bodies since the limit last changed.
    clean: AtomicUsize,
}

impl Limiter {
    fn new(concurrency: usize) -> Self {
        let max = concurrency.max(1);
        Limiter {
            permits: Arc::new(Semaphore::new(max)),
            max,
            limit: AtomicUsize::new(max),
            owed: AtomicUsize::new(0),
            seen_throttles: AtomicU64::new(0),
            clean: AtomicUsize::new(0),
        }
    }

    /// Halves the limit if `throttle_events` grew since last seen.
    fn observe_throttling(&self, throttle_events: u64) {
        let seen = self.seen_throttles.swap(throttle_events, Ordering::AcqRel);
        if throttle_events <= seen {
            return;
        }
        let limit = self.limit.load(Ordering::Acquire);
        let lower = (limit / 2).max(1);
        if lower < limit
            && self
                .limit
                .compare_exchange(limit, lower, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.clean.store(0, Ordering::Relaxed);
            let mut withhold = limit - lower;
            // Take free permits out of circulation now; owe the rest.
            while withhold > 0 {
                match self.permits.try_acquire() {
                    Ok(p) => {
                        p.forget();
                        withhold -= 1;
                    }
                    Err(_) => break,
                }
            }
            self.owed.fetch_add(withhold, Ordering::AcqRel);
            tracing::info!(limit = lower, "graph is throttling: fewer downloads at once");
        }
    }

    /// A body ended cleanly: grow the limit by one every `limit` of them.
    fn clean_body(&self) {
        let limit = self.limit.load(Ordering::Acquire);
        if limit >= self.max {
            return;
        }
        if self.clean.fetch_add(1, Ordering::AcqRel) + 1 >= limit
            && self
                .limit
                .compare_exchange(limit, limit + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.clean.store(0, Ordering::Relaxed);
            // Cancel a debt if there is one, else hand out one more permit.
            let repaid = self
                .owed
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |o| o.checked_sub(1))
                .is_ok();
            if !repaid {
                self.permits.add_permits(1);
            }
        }
    }

    /// A permit comes back: forgotten while permits are owed.
    fn give_back(&self, permit: OwnedSemaphorePermit) {
        if self
            .owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |o| o.checked_sub(1))
            .is_ok()
        {
            permit.forget();
        }
    }
}

/// A download slot: returned to the [`Limiter`] (or withheld by it) when dropped.
#[derive(Debug)]
struct Permit {
    inner: Option<OwnedSemaphorePermit>,
    limiter: Arc<Limiter>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(permit) = self.inner.take() {
            self.limiter.give_back(permit);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Streaming,
    Complete,
    Failed,
}

/// One body being received: a `Stream` of chunks, hashed and counted on the way through.
pub struct Download {
    /// `Content-Length` of the final response, when sent.
    content_length: Option<u64>,
    /// `Content-Type` of the final response without parameters, when sent.
    media_type: Option<String>,
    /// The host serving the bytes, for messages.
    host: String,
    /// The body.
    body: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    /// SHA-256 of everything yielded so far, when hashing.
    hasher: Option<Sha256>,
    /// Bytes yielded so far.
    received: u64,
    /// Whether the body ended cleanly (length checked) or failed.
    state: State,
    /// This download's share of the fetcher's concurrency bound, held while the body streams:
    /// returned as soon as the body has ended (cleanly or not), so that the next download
    /// starts while the caller is still flushing this one, or when the download is dropped.
    permit: Option<Permit>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("host", &self.host)
            .field("content_length", &self.content_length)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl Download {
    /// The announced length, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The media type (e.g. `video/mp4`), if announced.
    pub fn media_type(&self) -> Option<&str> {
        self.media_type.as_deref()
    }

    /// The digest and size, once the stream has ended cleanly.
    pub fn finish(self) -> Result<Fetched, FetchError> {
        if self.state != State::Complete {
            return Err(FetchError::Unfinished { host: self.host });
        }
        Ok(Fetched {
            sha256: self.hasher.map(|h| h.finalize().into()),
            size: self.received,
        })
    }
}

impl Stream for Download {
    type Item = Result<Bytes, FetchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.state != State::Streaming {
            return Poll::Ready(None);
        }
        let fail = |this: &mut Download, error: FetchError| {
            this.state = State::Failed;
            this.permit = None;
            Poll::Ready(Some(Err(error)))
        };
        match this.body.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                let received = this.received + chunk.len() as u64;
                if let Some(expected) = this.content_length {
                    if received > expected {
                        let host = this.host.clone();
                        return fail(this, FetchError::TooLong { host, expected });
                    }
                }
                if let Some(hasher) = &mut this.hasher {
                    hasher.update(&chunk);
                }
                this.received = received;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(source))) => {
                let (host, received) = (this.host.clone(), this.received);
                fail(
                    this,
                    FetchError::Body {
                        host,
                        received,
                        source: source.without_url(),
                    },
                )
            }
            Poll::Ready(None) => match this.content_length {
                Some(expected) if expected != this.received => {
                    let (host, received) = (this.host.clone(), this.received);
                    fail(
                        this,
                        FetchError::Truncated {
                            host,
                            expected,
                            received,
                        },
                    )
                }
                _ => {
                    this.state = State::Complete;
                    if let Some(permit) = this.permit.take() {
                        permit.limiter.clean_body();
                    }
                    Poll::Ready(None)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use proptest::prelude::*;

    fn download(chunks: Vec<Result<Bytes, reqwest::Error>>, content_length: Option<u64>) -> Download {
        Download {
            content_length,
            media_type: None,
            host: "h".into(),
            body: Box::pin(futures::stream::iter(chunks)),
            hasher: Some(Sha256::new()),
            received: 0,
            state: State::Streaming,
            permit: None,
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).expect("valid url")
    }

    #[test]
    fn redirect_hops() {
        let graph = |u: &Url| u.host_str() == Some("graph.example");
        let found = StatusCode::FOUND;
        let here = url("https://graph.example/v1.0/a/b/content");
        // Relative locations resolve against the hop; the token stays on the graph origin.
        let (next, auth) = next_hop(&here, found, Some("../c?x=1"), Auth::Bearer, graph).expect("relative");
        assert_eq!(next.as_str(), "https://graph.example/v1.0/a/c?x=1");
        assert_eq!(auth, Auth::Bearer);
        // Off the graph origin: no token.
        let (next, auth) =
            next_hop(&here, found, Some("https://dl.example/f?sig=s"), Auth::Bearer, graph).expect("absolute");
        assert_eq!((next.host_str(), auth), (Some("dl.example"), Auth::None));
        // Back on the graph origin after leaving it: still no token.
        let (_, auth) = next_hop(&next, found, Some("https://graph.example/x"), Auth::None, graph).expect("back");
        assert_eq!(auth, Auth::None);
        // https → http is refused, wherever it points.
        for to in ["http://dl.example/f", "http://graph.example/x"] {
            let e = next_hop(&here, found, Some(to), Auth::Bearer, graph).expect_err("downgrade");
            assert!(e.to_string().contains("https down to plain http"), "{e}");
            assert_eq!(e.class(), FailureClass::Permanent);
        }
        // http → http is fine (loopback simulators), other schemes and no location are not.
        let plain = url("http://127.0.0.1:1/x");
        assert!(next_hop(&plain, found, Some("http://127.0.0.1:2/y"), Auth::None, graph).is_ok());
        assert!(next_hop(&here, found, Some("ftp://x/y"), Auth::Bearer, graph).is_err());
        assert!(next_hop(&here, found, None, Auth::Bearer, graph).is_err());
    }

    #[test]
    fn concurrency_backs_off_while_throttled_and_recovers() {
        let l = Limiter::new(8);
        l.observe_throttling(0);
        assert_eq!(l.limit.load(Ordering::Relaxed), 8);
        // All 8 permits out (downloads in flight), then a throttle: limit 4, 4 owed.
        let held: Vec<_> = (0..8)
            .map(|_| Arc::clone(&l.permits).try_acquire_owned().expect("free"))
            .collect();
        l.observe_throttling(1);
        assert_eq!(l.limit.load(Ordering::Relaxed), 4);
        // The same count again changes nothing; a new throttle halves again.
        l.observe_throttling(1);
        assert_eq!(l.limit.load(Ordering::Relaxed), 4);
        l.observe_throttling(3);
        assert_eq!(l.limit.load(Ordering::Relaxed), 2);
        for p in held {
            l.give_back(p);
        }
        assert_eq!(l.permits.available_permits(), 2, "owed permits were withheld");
        // Clean bodies grow it back one step per `limit` bodies, up to the maximum.
        for _ in 0..100 {
            l.clean_body();
        }
        assert_eq!(l.limit.load(Ordering::Relaxed), 8);
        assert_eq!(l.permits.available_permits(), 8);
    }

    async fn drain(mut d: Download) -> Result<Fetched, FetchError> {
        while let Some(chunk) = d.next().await {
            chunk?;
        }
        d.finish()
    }

    #[tokio::test]
    async fn short_and_long_bodies_fail() {
        let chunks = || vec![Ok(Bytes::from_static(b"abc")), Ok(Bytes::from_static(b"de"))];
        assert!(matches!(
            drain(download(chunks(), Some(6))).await,
            Err(FetchError::Truncated {
                expected: 6,
                received: 5,
                ..
            })
        ));
        assert!(matches!(
            drain(download(chunks(), Some(4))).await,
            Err(FetchError::TooLong { expected: 4, .. })
        ));
        let ok = drain(download(chunks(), Some(5))).await.expect("exact length");
        assert_eq!(ok.size, 5);
        assert_eq!(ok.sha256.map(hex::encode), Some(hex::encode(Sha256::digest(b"abcde"))));
        assert!(drain(download(chunks(), None)).await.is_ok());
    }

    #[tokio::test]
    async fn finish_before_the_end_fails() {
        let d = download(vec![Ok(Bytes::from_static(b"abc"))], Some(3));
        assert!(matches!(d.finish(), Err(FetchError::Unfinished { .. })));
    }

    proptest! {
        #[test]
        fn streamed_hash_equals_one_shot(data in proptest::collection::vec(any::<u8>(), 0..4096), cuts in proptest::collection::vec(0usize..4096, 0..8)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.push(0);
            cuts.push(data.len());
            cuts.sort_unstable();
            let chunks = cuts.windows(2).map(|w| Ok(Bytes::copy_from_slice(&data[w[0]..w[1]]))).collect();
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let fetched = rt.block_on(drain(download(chunks, Some(data.len() as u64)))).expect("complete body");
            prop_assert_eq!(fetched.sha256, Some(<[u8; 32]>::from(Sha256::digest(&data))));
            prop_assert_eq!(fetched.size, data.len() as u64);
        }
    }
}
