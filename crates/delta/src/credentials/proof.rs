//! What a proof is: [`ClientProof`], the [`AssertionSource`] trait every assertion credential
//! implements, and [`KeyMaterialError`], the one way they say their files are unusable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::token::{AuthError, Secret};

/// What the token request carries as proof.
#[derive(Debug, Clone)]
pub enum ClientProof {
    /// `client_secret`.
    Secret(Secret),
    /// `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and a
    /// fresh `client_assertion` for every request.
    Assertion(Arc<dyn AssertionSource>),
}

/// Makes client assertions.
pub trait AssertionSource: Send + Sync + std::fmt::Debug {
    /// A client assertion for a token request of `client_id` to `audience` (the token
    /// endpoint URL).
    fn assertion(&self, client_id: &str, audience: &str) -> Result<Secret, AuthError>;
}

/// Key material that cannot be used: the file and what is wrong, never its content.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", file.display())]
pub struct KeyMaterialError {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

/// A [`KeyMaterialError`] for `file`.
pub(super) fn bad(file: &Path, problem: impl Into<String>) -> KeyMaterialError {
    KeyMaterialError {
        file: file.to_owned(),
        problem: problem.into(),
    }
}
