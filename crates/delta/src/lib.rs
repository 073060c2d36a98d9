//! A generic Microsoft Graph delta-query client.
//!
//! Graph's delta queries hand out change sets in *rounds*: the first request returns pages linked
//! by opaque `@odata.nextLink`s and ends with an `@odata.deltaLink`; calling that deltaLink later
//! returns only what changed since. This crate knows how to walk those pages for any resource
//! (`getAllRecordings` of an organizer, a contact folder, ...) and nothing about where the results
//! go: the caller gets one typed [`Page`] at a time together with the link to save as its
//! checkpoint, and decides when that checkpoint is safe to persist.
//!
//! What it handles for every resource:
//!
//! - **Tokens**: [`auth::ClientCredentials`] implements the OAuth 2.0 client-credentials grant
//!   against the Microsoft identity platform, caches the token and renews it before it expires.
//! - **Links are opaque**: they are followed verbatim, never rebuilt or re-encoded; a link that
//!   leaves the Graph origin is refused so the bearer token never goes elsewhere.
//! - **Faults**: every error has a [`FailureClass`] ([`DeltaError::class`]) read from the one
//!   status table of `recarch_failure`. 401 fetches a new token and retries once; transient
//!   answers (429, 500, 502, 503, 504) wait for `Retry-After` — exactly as long as asked,
//!   seconds or HTTP-date — or a jittered exponential backoff, within bounds
//!   ([`retry::RetryPolicy`]); 410 Gone becomes [`DeltaError::SyncReset`] so the caller can
//!   start a full round again; 403 is [`DeltaError::Forbidden`]; 402 is
//!   [`DeltaError::PaymentRequired`]. The token endpoint gets the same transient retries.
//! - **Removed items**: `{"id": .., "@removed": {"reason": ..}}` entries become
//!   [`DeltaItem::Removed`], whatever the resource.
//!
//! # Error policy
//!
//! Errors name the host, status and Graph error code involved, never a token or a secret, and
//! each variant of [`DeltaError`] says what the caller can do about it.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use futures::TryStreamExt;
//! use recarch_delta::{auth::StaticToken, resources, CallRecording, DeltaClient, GraphHttp, PageRequest};
//! use recarch_delta::retry::RetryPolicy;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let base = url::Url::parse("https://graph.microsoft.com/beta")?;
//! let http = GraphHttp::new(reqwest::Client::new(), Arc::new(StaticToken::new("t")), &base, RetryPolicy::default());
//! let client = DeltaClient::new(http);
//! let first = resources::recordings_request(&base, "8b081ef6-4792-4def-b2c9-c363a1bf41d5", None);
//! let mut pages = std::pin::pin!(client.pages::<CallRecording>(PageRequest::First(first)));
//! while let Some(page) = pages.try_next().await? {
//!     println!("{} items, checkpoint {:?}", page.items.len(), page.continuation);
//! }
//! # Ok(()) }
//! ```

pub mod auth;
mod body;
mod client;
pub mod credentials;
pub mod directory;
mod error;
pub mod folders;
mod http;
mod page;
pub mod resources;
pub mod retry;
mod token;

pub use body::{BodyError, read_capped};
pub use client::{DeltaClient, PageRequest};
pub use error::{DeltaError, GraphErrorBody};
pub use folders::ContactFolder;
pub use http::{Auth, GraphHttp, host_of};
pub use page::{Continuation, DeltaItem, DeltaLink, NextLink, Page, RemovedReason, parse_page};
pub use recarch_failure::FailureClass;
pub use resources::{CallRecording, CallTranscript, Contact, DeltaRequest};
