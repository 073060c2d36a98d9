//! Walking a delta round page by page.

use futures::Stream;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use url::Url;

use crate::body::{BodyError, read_capped};
use crate::error::DeltaError;
use crate::http::{Auth, GraphHttp, host_of};
use crate::page::{Continuation, Page, Paging, parse_page_as};
use crate::resources::DeltaRequest;

/// The largest delta page read. Real pages are well under 1 MiB; the cap keeps a broken or
/// hostile server from exhausting memory.
pub const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Where to fetch a page from.
#[derive(Debug, Clone)]
pub enum PageRequest {
    /// The first request of a full round.
    First(DeltaRequest),
    /// A nextLink or deltaLink saved from an earlier page, followed verbatim.
    Link(String),
}

/// A delta-query client, generic over the resource: the item type is chosen per call.
#[derive(Debug, Clone)]
pub struct DeltaClient {
    /// Authenticated, retried HTTP to the Graph origin.
    http: GraphHttp,
}

impl DeltaClient {
    /// A client sending its requests through `http`.
    pub fn new(http: GraphHttp) -> Self {
        DeltaClient { http }
    }

    /// The HTTP layer, shared with content downloads.
    pub fn http(&self) -> &GraphHttp {
        &self.http
    }

    /// Fetches one page. Links are parsed as URLs but otherwise sent exactly as Graph wrote
    /// them; a link off the Graph origin is refused ([`DeltaError::OffOrigin`]).
    pub async fn page<T: DeserializeOwned>(&self, request: &PageRequest) -> Result<Page<T>, DeltaError> {
        self.page_as(request, Paging::Delta).await
    }

    /// [`DeltaClient::page`] of a collection paged as `paging` says.
    pub async fn page_as<T: DeserializeOwned>(
        &self,
        request: &PageRequest,
        paging: Paging,
    ) -> Result<Page<T>, DeltaError> {
        let (url, headers) = match request {
            PageRequest::First(first) => (first.url.clone(), first.headers.clone()),
            PageRequest::Link(link) => (parse_link(link)?, HeaderMap::new()),
        };
        let body = self.get_body(&url, &headers).await?;
        parse_page_as(&body, paging).map_err(|reason| DeltaError::Protocol {
            host: host_of(&url),
            reason,
        })
    }

    /// GETs `url` with the token and returns the whole body of a successful answer (at most
    /// [`MAX_PAGE_BYTES`]); error statuses become [`DeltaError`]s. A body cut off mid-way (the
    /// connection closed or timed out while it was read) is asked for again within the retry
    /// policy, like a failed request: a page is parsed only when it arrived whole.
    pub(crate) async fn get_body(&self, url: &Url, headers: &HeaderMap) -> Result<Vec<u8>, DeltaError> {
        let host = host_of(url);
        let policy = self.http.policy();
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let response = self.http.get(url, headers, Auth::Bearer).await?;
            let response = GraphHttp::check_status(response).await?;
            if !response.status().is_success() {
                return Err(DeltaError::Protocol {
                    host,
                    reason: format!("unexpected status {}", response.status()),
                });
            }
            match read_capped(response, MAX_PAGE_BYTES).await {
                Ok(body) => return Ok(body),
                Err(BodyError::Cut(source)) => {
                    let retried = policy
                        .wait_before_retry(attempt, started.elapsed(), None, |_| {
                            tracing::warn!(%host, attempt, error = %source, "a page's body was cut off, asking again");
                        })
                        .await;
                    if !retried {
                        return Err(DeltaError::Transport {
                            host,
                            attempts: attempt,
                            source,
                        });
                    }
                }
                Err(too_large @ BodyError::TooLarge { .. }) => {
                    return Err(DeltaError::Protocol {
                        host,
                        reason: too_large.to_string(),
                    });
                }
            }
        }
    }

    /// GETs `url` with the token and parses the whole body of a successful answer as JSON (a
    /// user, a folder, a collection page), with [`DeltaClient::get_body`]'s retries and cap.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<T, DeltaError> {
        let body = self.get_body(url, &HeaderMap::new()).await?;
        serde_json::from_slice(&body).map_err(|e| DeltaError::Protocol {
            host: host_of(url),
            reason: format!("unexpected answer: {e}"),
        })
    }

    /// The pages of one round from `start`, ending after the page that carries the deltaLink
    /// (or at the first error). Each page's [`Continuation`] is the checkpoint to save once its
    /// items are safe; resuming from it continues the round.
    pub fn pages<T: DeserializeOwned>(
        &self,
        start: PageRequest,
    ) -> impl Stream<Item = Result<Page<T>, DeltaError>> + '_ {
        self.pages_as(start, Paging::Delta)
    }

    /// [`DeltaClient::pages`] of a collection paged as `paging` says: a [`Paging::List`] ends
    /// after the page without a link.
    pub fn pages_as<T: DeserializeOwned>(
        &self,
        start: PageRequest,
        paging: Paging,
    ) -> impl Stream<Item = Result<Page<T>, DeltaError>> + '_ {
        futures::stream::unfold(Some(start), move |next| async move {
            let request = next?;
            match self.page_as::<T>(&request, paging).await {
                Ok(page) => {
                    let next = match &page.continuation {
                        Continuation::Next(link) => Some(PageRequest::Link(link.0.clone())),
                        _ => None,
                    };
                    Some((Ok(page), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}

fn parse_link(link: &str) -> Result<Url, DeltaError> {
    let url = Url::parse(link).map_err(|e| DeltaError::InvalidLink { reason: e.to_string() })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(DeltaError::InvalidLink {
            reason: format!("scheme {} is not http(s)", url.scheme()),
        });
    }
    Ok(url)
}
