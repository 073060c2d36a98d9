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
//!   against the Microsoft identity platform, with a proof from [`credentials`] (a secret, a
//!   certificate's assertion or a federated token file), caches the token and renews it before
//!   it expires.
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
//! # Modules
//!
//! The modules depend in one direction: each imports only modules of the layers before its own
//! (its tests may import anything), so no two of them import each other, directly or round a
//! circle. `tests::modules_depend_in_one_direction` holds this order; a new module takes its
//! place in it.
//!
//! 1. Nothing of the crate: `token` (the types every token provider shares: [`auth::Secret`],
//!    [`auth::AccessToken`], [`auth::AuthError`], the [`auth::TokenProvider`] trait and
//!    [`auth::StaticToken`], re-exported from [`auth`]), `body` ([`read_capped`]), [`retry`]
//!    (`Retry-After`, [`retry::RetryPolicy`] and the one wait between two attempts),
//!    [`resources`] (first requests and item types) and `page` ([`parse_page`]).
//! 2. On `token`: [`credentials`] (the proofs: a secret, a certificate's assertion, a federated
//!    token file) and `error` ([`DeltaError`], [`GraphErrorBody`]).
//! 3. On the layers above, not on each other: [`auth`] (the client-credentials provider: the
//!    token request, the cache, the single refresh, the retries) and `http` ([`GraphHttp`]: the
//!    bearer token on the Graph origin only, one new token on 401, retries and the shared
//!    throttling pause).
//! 4. `client` ([`DeltaClient`]: a delta round page by page, and whole JSON documents).
//! 5. On `client`: [`directory`] (users and groups), [`folders`] (a mailbox's contact
//!    folders) and [`names`] (a meeting's subject and times, a user's names).
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
pub mod names;
mod page;
pub mod resources;
pub mod retry;
mod token;

pub use body::{BodyError, read_capped};
pub use client::{DeltaClient, PageRequest};
pub use error::{DeltaError, GraphErrorBody};
pub use folders::ContactFolder;
pub use http::{Auth, GraphHttp, host_of};
pub use names::{MeetingNames, UserNames};
pub use page::{Continuation, DeltaItem, DeltaLink, NextLink, Page, Paging, RemovedReason, parse_page, parse_page_as};
pub use recarch_failure::FailureClass;
pub use resources::{AdhocArtifacts, CallItem, CallRecording, CallTranscript, Contact, DeltaRequest};

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// The module dependency order of the crate docs, lowest layer first: a module imports only
    /// modules of earlier layers (its tests may import anything).
    const LAYERS: &[&[&str]] = &[
        &["token", "body", "retry", "resources", "page"],
        &["credentials", "error"],
        &["auth", "http"],
        &["client"],
        &["directory", "folders", "names"],
    ];

    fn layer(module: &str) -> Option<usize> {
        LAYERS.iter().position(|layer| layer.contains(&module))
    }

    /// Every `.rs` file under `dir`, with the top-level module it belongs to (`lib.rs`, the
    /// facade, left out).
    fn modules(dir: &Path, module: Option<&str>, out: &mut Vec<(String, PathBuf)>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("src is readable").path();
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            if path.is_dir() {
                modules(&path, Some(module.unwrap_or(&name)), out);
            } else if path.extension().is_some_and(|e| e == "rs") && !(module.is_none() && name == "lib") {
                out.push((module.unwrap_or(&name).to_owned(), path));
            }
        }
    }

    /// What `code` names as `crate::<name>`, comments and the tests at the end left out.
    fn imports(code: &str) -> Vec<String> {
        let code = code.split("#[cfg(test)]").next().unwrap_or_default();
        code.lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .flat_map(|line| line.split("crate::").skip(1))
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '{'))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn modules_depend_in_one_direction() {
        let mut files = Vec::new();
        modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), None, &mut files);
        assert!(files.len() > LAYERS.concat().len(), "{files:?}");
        for (module, file) in files {
            let Some(own) = layer(&module) else {
                panic!("module {module} is in no layer: add it to the crate docs' dependency order and LAYERS");
            };
            let code = std::fs::read_to_string(&file).expect("src is readable");
            for imported in imports(&code) {
                let Some(theirs) = layer(&imported) else {
                    panic!(
                        "{}: crate::{imported}: import each item from the module that defines it",
                        file.display()
                    );
                };
                assert!(
                    theirs < own,
                    "{} imports crate::{imported}, which is not below {module} in the dependency order",
                    file.display()
                );
            }
        }
    }
}
