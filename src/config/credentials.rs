//! The credentials the configuration names: the client secret, certificate and key, or the
//! federated token file, read and checked before any request. Errors name the key and file,
//! never key material.

use std::path::{Path, PathBuf};

use recarch_delta::auth::Secret;

use super::{ConfigError, CredentialSource, SecretSource, err};

/// The proof of identity the configuration names, loaded and checked before any request:
/// the secret read, the certificate and key read and checked (readable, matching, not
/// expired), the federated token file readable. Errors name the key and file, and what is
/// wrong, never key material.
pub fn client_proof(source: &CredentialSource) -> Result<recarch_delta::credentials::ClientProof, ConfigError> {
    use recarch_delta::credentials::{CertificateAssertion, ClientProof, FederatedToken};
    use std::sync::Arc;
    Ok(match source {
        CredentialSource::Secret(secret) => ClientProof::Secret(read_secret(secret)?),
        CredentialSource::Certificate {
            certificate_file,
            key_file,
            password_env,
        } => {
            let password = match password_env {
                None => None,
                Some(name) => match std::env::var(name) {
                    Ok(v) => Some(Secret::new(v)),
                    Err(std::env::VarError::NotPresent) => {
                        return Err(err(format!(
                            "[graph].client_certificate_password_env: environment variable {name} is not set"
                        )));
                    }
                    Err(std::env::VarError::NotUnicode(_)) => {
                        return Err(err(format!(
                            "[graph].client_certificate_password_env: environment variable {name} is not valid UTF-8"
                        )));
                    }
                },
            };
            let key = if key_file.is_some() {
                "[graph].client_private_key_file or client_certificate_file"
            } else {
                "[graph].client_certificate_file"
            };
            let assertion = CertificateAssertion::new(certificate_file, key_file.clone(), password)
                .map_err(|e| err(format!("{key}: {e}")))?;
            tracing::info!(thumbprint = %assertion.thumbprint(), "signing in with a certificate");
            ClientProof::Assertion(Arc::new(assertion))
        }
        CredentialSource::WorkloadIdentity { token_file } => ClientProof::Assertion(Arc::new(
            FederatedToken::new(token_file).map_err(|e| err(format!("[graph].federated_token_file: {e}")))?,
        )),
    })
}

/// Reads the client secret from its source. Errors name the variable or file, never the value.
pub fn read_secret(source: &SecretSource) -> Result<Secret, ConfigError> {
    let value = match source {
        SecretSource::Env(name) => match std::env::var(name) {
            Ok(v) => v,
            Err(std::env::VarError::NotPresent) => {
                return Err(err(format!(
                    "[graph].client_secret_env: environment variable {name} is not set; export the client secret in it or set [graph].client_secret_file"
                )));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(err(format!(
                    "[graph].client_secret_env: environment variable {name} is not valid UTF-8"
                )));
            }
        },
        SecretSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
            err(format!(
                "[graph].client_secret_file: cannot read {}: {}",
                path.display(),
                e.kind()
            ))
        })?,
    };
    let value = value.trim();
    if value.is_empty() {
        let from = match source {
            SecretSource::Env(name) => format!("[graph].client_secret_env: environment variable {name}"),
            SecretSource::File(path) => format!("[graph].client_secret_file: {}", path.display()),
        };
        return Err(err(format!("{from} is empty")));
    }
    Ok(Secret::new(value))
}

/// `[graph].client_secret_env` / `client_secret_file`: one of them, default the variable
/// `RECARCH_CLIENT_SECRET`.
pub(super) fn secret_source(
    env: Option<String>,
    file: Option<PathBuf>,
    base_dir: &Path,
) -> Result<SecretSource, ConfigError> {
    match (env, file) {
        (Some(_), Some(_)) => Err(err(
            "[graph]: set either client_secret_env or client_secret_file, not both",
        )),
        (Some(name), None) => {
            if name.trim().is_empty() {
                return Err(err("[graph].client_secret_env: empty variable name"));
            }
            Ok(SecretSource::Env(name))
        }
        (None, Some(file)) => Ok(SecretSource::File(base_dir.join(file))),
        (None, None) => Ok(SecretSource::Env("RECARCH_CLIENT_SECRET".into())),
    }
}
