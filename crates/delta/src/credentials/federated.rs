//! [`FederatedToken`]: a projected service-account token file (AKS workload identity) read as
//! the client assertion for every token request.

use std::path::PathBuf;

use super::proof::{AssertionSource, KeyMaterialError, bad};
use crate::token::{AuthError, Secret};

/// A federated token file (AKS workload identity): its content is the client assertion, read
/// for every token request.
#[derive(Debug, Clone)]
pub struct FederatedToken {
    file: PathBuf,
}

impl FederatedToken {
    /// Checks the file is readable and not empty now.
    pub fn new(file: impl Into<PathBuf>) -> Result<Self, KeyMaterialError> {
        let token = FederatedToken { file: file.into() };
        token.read()?;
        Ok(token)
    }

    fn read(&self) -> Result<Secret, KeyMaterialError> {
        let text = std::fs::read_to_string(&self.file)
            .map_err(|e| bad(&self.file, format!("cannot read it ({})", e.kind())))?;
        let text = text.trim();
        if text.is_empty() {
            return Err(bad(&self.file, "is empty"));
        }
        Ok(Secret::new(text))
    }
}

impl AssertionSource for FederatedToken {
    fn assertion(&self, _client_id: &str, _audience: &str) -> Result<Secret, AuthError> {
        self.read().map_err(|e| AuthError::Assertion { reason: e.to_string() })
    }
}
