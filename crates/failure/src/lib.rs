//! The one failure classification of `recarch`.
//!
//! Every failure is classified once, where it is first understood, into a [`FailureClass`]:
//!
//! | class | examples | what happens |
//! | --- | --- | --- |
//! | [`Transient`](FailureClass::Transient) | connection reset or timeout, a body cut mid-way, 408, 429, 500, 502, 503, 504, a 401 answered by a fresh token, a store backend error | retried within the run (bounded in count and time, honouring `Retry-After`); what still fails is queued and retried on later runs |
//! | [`Permanent`](FailureClass::Permanent) | 403, 404 and 410 on content, other 4xx, an off-origin or downgraded URL, a body that fails its checks on every attempt, a blob the store refuses | not retried within the run; queued, and dead-lettered when seen twice |
//! | [`Fatal`](FailureClass::Fatal) | the token endpoint refuses the credentials, 402 Payment Required, an unusable store | the run stops (exit 4) |
//!
//! HTTP statuses map through [`status_class`], the table that the Graph client and the token
//! endpoint client share. Errors of each crate expose `class()`, built on this table.
//!
//! ```
//! use recarch_failure::{FailureClass, status_class};
//! assert_eq!(status_class(503), FailureClass::Transient);
//! assert_eq!(status_class(404), FailureClass::Permanent);
//! assert_eq!(status_class(402), FailureClass::Fatal);
//! ```

use serde::{Deserialize, Serialize};

mod retry;
pub use retry::RetryPolicy;

/// What a failure means for the work that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    /// May pass by itself: retry within the run (bounded), then queue for the next run.
    Transient,
    /// Will not pass by retrying: do not retry within the run; queue, and dead-letter the item
    /// when seen twice.
    Permanent,
    /// Nothing else can succeed either (credentials, billing, the store as a whole): stop the
    /// run.
    Fatal,
}

impl FailureClass {
    /// Whether retrying the same request within this run may succeed.
    pub fn is_retryable(self) -> bool {
        self == FailureClass::Transient
    }

    /// `transient`, `permanent` or `fatal`, as in documents and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Permanent => "permanent",
            FailureClass::Fatal => "fatal",
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of an unsuccessful HTTP status, for every request recarch makes (Graph API,
/// content downloads, token endpoint).
///
/// - `401` is transient: the caller fetches a fresh token once and tries again; a 401 that a
///   fresh token does not cure is the caller's to escalate.
/// - `408`, `425`, `429`, `500`, `502`, `503`, `504` (and other 5xx except `501` and `505`)
///   are transient.
/// - `402` (Payment Required: the metered recording APIs without billing) is fatal.
/// - Every other 4xx (`400`, `403`, `404`, `410`, ...) and `501`/`505` are permanent. Callers
///   that give a status its own meaning first (410 on a delta query means "start a full
///   round") do so before consulting this table.
/// - Anything below 400 is not a failure; it maps to permanent so that a caller that got an
///   unexpected success-class status where it needed another does not retry forever.
pub fn status_class(status: u16) -> FailureClass {
    match status {
        401 | 408 | 425 | 429 => FailureClass::Transient,
        402 => FailureClass::Fatal,
        501 | 505 => FailureClass::Permanent,
        500..=599 => FailureClass::Transient,
        _ => FailureClass::Permanent,
    }
}

/// Longest error text [`error_chain`] keeps (a server's error body can be long).
const MAX_ERROR_CHARS: usize = 2000;

/// An error and each of its sources whose text is not already included, joined with `: ` on
/// one line (server error bodies are multi-line XML), at most 2000 characters: the one way
/// every crate and the binary print an error for a log line, a report or a message.
///
/// ```
/// let e = std::io::Error::other("connection refused");
/// assert_eq!(recarch_failure::error_chain(&e), "connection refused");
/// ```
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = inner.source();
    }
    let mut flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = flat.char_indices().nth(MAX_ERROR_CHARS) {
        flat.truncate(cut);
        flat.push('…');
    }
    flat
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_table() {
        use FailureClass::*;
        let table = [
            (401, Transient),
            (408, Transient),
            (429, Transient),
            (500, Transient),
            (502, Transient),
            (503, Transient),
            (504, Transient),
            (507, Transient),
            (402, Fatal),
            (400, Permanent),
            (403, Permanent),
            (404, Permanent),
            (410, Permanent),
            (413, Permanent),
            (501, Permanent),
            (505, Permanent),
            (302, Permanent),
        ];
        for (status, class) in table {
            assert_eq!(status_class(status), class, "status {status}");
        }
    }

    #[test]
    fn error_chain_is_one_bounded_line_with_the_sources() {
        use std::fmt;
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("request failed:\n  <Error>\n    <Code>NoSuchBucket</Code>\n  </Error>")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("Connection refused"));
        assert_eq!(
            error_chain(&e),
            "request failed: <Error> <Code>NoSuchBucket</Code> </Error>: Connection refused"
        );
        // A source whose text the line already holds is not repeated.
        let repeated = Outer(std::io::Error::other("NoSuchBucket"));
        assert!(!error_chain(&repeated).ends_with(": NoSuchBucket"));
        let long = std::io::Error::other("x".repeat(5000));
        let chain = error_chain(&long);
        assert_eq!(chain.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(chain.ends_with('…'));
    }

    #[test]
    fn classes_serialize_lowercase() {
        assert_eq!(
            serde_json::to_string(&FailureClass::Permanent).ok(),
            Some("\"permanent\"".to_owned())
        );
        assert!(FailureClass::Transient.is_retryable());
        assert!(!FailureClass::Permanent.is_retryable());
        assert_eq!(FailureClass::Fatal.to_string(), "fatal");
    }
}
