//! What every token provider shares: the bearer token and secrets it handles, the
//! [`TokenProvider`] trait the Graph client asks for tokens, and [`AuthError`], why no token
//! could be had.
//!
//! Tokens and secrets live in [`AccessToken`] and [`Secret`], whose `Debug` prints `[redacted]`
//! and which have no `Display`, so neither can reach a log line or an error message by accident.
//!
//! This module depends on nothing else of the crate: the proofs (`credentials`), the
//! client-credentials provider (`auth`) and the Graph client (`http`) all build on it.

use std::sync::Arc;

use futures::future::BoxFuture;

use recarch_failure::FailureClass;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret([redacted])");
        assert!(!format!("{:?}", AccessToken::new("eyJ0")).contains("eyJ0"));
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
}
