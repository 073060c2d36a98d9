//! The one error type of this crate.

use std::time::Duration;

use reqwest::StatusCode;

use crate::auth::AuthError;

/// The `error` object of a Graph error response (`{"error": {"code": .., "message": ..}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphErrorBody {
    /// Graph's error code, e.g. `SyncStateNotFound` or `InvalidAuthenticationToken`.
    pub code: String,
    /// Graph's human-readable message.
    pub message: String,
}

impl GraphErrorBody {
    /// Parses a Graph error body; anything unparsable yields empty fields rather than an error,
    /// because the status code alone still says what happened.
    pub fn parse(body: &[u8]) -> GraphErrorBody {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let error = &value["error"];
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        GraphErrorBody {
            code: text(&error["code"]),
            message: text(&error["message"]),
        }
    }
}

impl std::fmt::Display for GraphErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code.is_empty(), self.message.is_empty()) {
            (true, true) => f.write_str("no error details"),
            (false, true) => f.write_str(&self.code),
            (true, false) => f.write_str(&self.message),
            (false, false) => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

/// What can go wrong talking to Graph. Each variant says what the caller can do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// The delta or skip token is no longer valid (410 Gone): start a full round again, from
    /// `location` when Graph gave one, else from the first request.
    #[error("graph discarded the sync state of {host} (410 {code}): a full round is needed")]
    SyncReset {
        /// The host that answered.
        host: String,
        /// Graph's error code (`SyncStateNotFound`, `syncStateNotFound`, `resyncRequired`).
        code: String,
        /// A fresh query to start the new round from (`Location` header), if given.
        location: Option<String>,
    },
    /// Graph answered 402 Payment Required: the recording APIs are metered and the tenant has
    /// no billing set up for this application. Fatal for the run.
    #[error(
        "graph refused with 402 payment required ({body}): the recording APIs are metered; set up billing for this application in Azure (metered APIs) and run again"
    )]
    PaymentRequired {
        /// Graph's error details.
        body: GraphErrorBody,
    },
    /// Still throttled (429/503/504) after every allowed attempt or the total time budget.
    #[error("graph kept throttling {host} ({status}) after {attempts} attempts; retry later")]
    Throttled {
        /// The host that throttled.
        host: String,
        /// The last status seen.
        status: StatusCode,
        /// How many attempts were made.
        attempts: u32,
        /// The last `Retry-After` Graph sent, if any.
        retry_after: Option<Duration>,
    },
    /// Graph rejected the token even after a fresh one was fetched (401 twice).
    #[error("graph rejected the access token for {host} ({body}); check the app registration's permissions")]
    Unauthorized {
        /// The host that refused.
        host: String,
        /// Graph's error details.
        body: GraphErrorBody,
    },
    /// Graph answered with another error status.
    #[error("graph answered {status} for {what} ({body})")]
    Status {
        /// What was being fetched, without query string.
        what: String,
        /// The status.
        status: StatusCode,
        /// Graph's error details.
        body: GraphErrorBody,
    },
    /// A link or URL points away from the Graph origin; following it would send the bearer
    /// token elsewhere, so it is refused.
    #[error("refusing to send the graph token to {origin}: not the graph origin {graph_origin}")]
    OffOrigin {
        /// The origin of the refused URL.
        origin: String,
        /// The configured Graph origin.
        graph_origin: String,
    },
    /// A link is not a valid absolute URL.
    #[error("invalid link from graph ({reason})")]
    InvalidLink {
        /// Why it was rejected.
        reason: String,
    },
    /// The connection failed, even after retries.
    #[error("cannot reach {host} after {attempts} attempts")]
    Transport {
        /// The host.
        host: String,
        /// Attempts made.
        attempts: u32,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// A page was not valid JSON of the expected shape, or was larger than the cap.
    #[error("malformed delta page from {host}: {reason}")]
    Protocol {
        /// The host.
        host: String,
        /// What was wrong.
        reason: String,
    },
    /// The token provider failed (e.g. the token endpoint refused the credentials).
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl DeltaError {
    /// Whether the whole run should stop (credentials, billing), as opposed to this organizer
    /// or item only.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            DeltaError::PaymentRequired { .. } | DeltaError::Auth(_) | DeltaError::Unauthorized { .. }
        )
    }
}
