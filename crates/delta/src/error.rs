//! The one error type of this crate.

use std::time::Duration;

use reqwest::StatusCode;

use recarch_failure::{FailureClass, status_class};

use crate::token::AuthError;

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
    /// Still throttled or unavailable (429, 500, 502, 503, 504, ...) after every allowed attempt
    /// or the total time budget, or Graph asked (`Retry-After`) for a longer wait than the
    /// budget has left: the item or organizer waits for the next run.
    #[error("graph kept answering {status} for {host} after {attempts} attempts{}; retry later", asked_wait(.retry_after))]
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
    /// Graph answered 403 Forbidden: the application may not read this resource. For an
    /// organizer's meetings that usually means no Teams application access policy covers the
    /// organizer, or the application permission was not granted (admin consent). Permanent for
    /// the item or organizer; other organizers are not affected.
    #[error("graph answered 403 forbidden for {what} ({body})")]
    Forbidden {
        /// What was being fetched, without query string.
        what: String,
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

/// ` (it asked to wait 300 s, more than the retry budget left)`-style note for messages.
fn asked_wait(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!(" (it last asked to wait {} s)", wait.as_secs()),
        None => String::new(),
    }
}

impl DeltaError {
    /// The failure class (see `recarch_failure`): what the caller should do with the item or
    /// organizer that met this error. [`DeltaError::SyncReset`] is transient: the caller
    /// starts a full round.
    pub fn class(&self) -> FailureClass {
        match self {
            DeltaError::SyncReset { .. } | DeltaError::Throttled { .. } | DeltaError::Transport { .. } => {
                FailureClass::Transient
            }
            // A page that is not valid JSON of the expected shape is most often a response cut
            // short or mangled on the way; the next attempt (or run) reads it again.
            DeltaError::Protocol { .. } => FailureClass::Transient,
            DeltaError::PaymentRequired { .. } | DeltaError::Unauthorized { .. } => FailureClass::Fatal,
            DeltaError::Forbidden { .. } | DeltaError::OffOrigin { .. } | DeltaError::InvalidLink { .. } => {
                FailureClass::Permanent
            }
            DeltaError::Status { status, .. } => status_class(status.as_u16()),
            DeltaError::Auth(e) => e.class(),
        }
    }

    /// Whether the whole run should stop (credentials, billing), as opposed to this organizer
    /// or item only: [`DeltaError::class`] is [`FailureClass::Fatal`].
    pub fn is_fatal(&self) -> bool {
        self.class() == FailureClass::Fatal
    }

    /// The HTTP status Graph answered, where one is known.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            DeltaError::SyncReset { .. } => Some(StatusCode::GONE),
            DeltaError::PaymentRequired { .. } => Some(StatusCode::PAYMENT_REQUIRED),
            DeltaError::Throttled { status, .. } | DeltaError::Status { status, .. } => Some(*status),
            DeltaError::Unauthorized { .. } => Some(StatusCode::UNAUTHORIZED),
            DeltaError::Forbidden { .. } => Some(StatusCode::FORBIDDEN),
            _ => None,
        }
    }

    /// How long Graph asked to wait (`Retry-After`), when it throttled.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeltaError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
