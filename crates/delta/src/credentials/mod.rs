//! How the application proves who it is in the client-credentials grant: a client secret, a
//! JWT client assertion signed with a certificate's private key, or a federated token (AKS
//! workload identity).
//!
//! One token provider ([`crate::auth::ClientCredentials`]: the POST, the cache, the single
//! refresh, the retries) takes a pluggable proof ([`ClientProof`]), as azure_identity's
//! `ClientAssertionCredential` does; a new credential type is a new [`AssertionSource`], not a
//! copy of the token request.
//!
//! Key material never reaches a message: errors name the file and what is wrong with it.
//!
//! - [`CertificateAssertion`]: a fresh PS256 JWT for every token request (header `x5t#S256` =
//!   base64url SHA-256 of the certificate's DER; claims `aud` = the token endpoint, `iss` =
//!   `sub` = the client id, a fresh `jti`, `nbf` = `iat` = now, `exp` = now + 10 minutes), from
//!   PEM (certificate and RSA key in one file or two) or PKCS#12 (`.pfx`, optional password).
//!   The files are re-read when their size or modification time changes (rotation by
//!   cert-manager or the Key Vault CSI driver, without a restart).
//! - [`FederatedToken`]: the content of a file (the projected service-account token the
//!   workload-identity webhook mounts), read for every token request, as the kubelet rotates
//!   it.

mod certificate;
mod federated;
mod proof;

pub use certificate::CertificateAssertion;
pub use federated::FederatedToken;
pub use proof::{AssertionSource, ClientProof, KeyMaterialError};
