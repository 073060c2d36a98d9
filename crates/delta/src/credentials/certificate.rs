//! [`CertificateAssertion`]: PS256 client assertions signed with a certificate's private key,
//! loaded from PEM or PKCS#12, checked, and reloaded when the files change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::proof::{AssertionSource, KeyMaterialError, bad};
use crate::token::{AuthError, Secret};

/// How long a client assertion is valid. Entra accepts up to ten minutes for this purpose.
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// A certificate credential: its files, and what was loaded from them.
#[derive(Debug)]
pub struct CertificateAssertion {
    /// The certificate (PEM, possibly with the key; or PKCS#12).
    certificate_file: PathBuf,
    /// The key, when in a file of its own (PEM).
    key_file: Option<PathBuf>,
    /// The PKCS#12 password, if any.
    password: Option<Secret>,
    /// What was loaded, and the files' stamps when it was.
    loaded: Mutex<Loaded>,
}

#[derive(Clone)]
struct Loaded {
    stamps: Vec<Option<(u64, SystemTime)>>,
    key: Arc<EncodingKey>,
    x5t_s256: String,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("x5t_s256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    aud: String,
    iss: String,
    sub: String,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

impl CertificateAssertion {
    /// Loads and checks the key material: readable files, a certificate with an RSA private key
    /// that matches it, not expired (nor not yet valid). Errors name the file and the problem.
    pub fn new(
        certificate_file: impl Into<PathBuf>,
        key_file: Option<PathBuf>,
        password: Option<Secret>,
    ) -> Result<Self, KeyMaterialError> {
        let certificate_file = certificate_file.into();
        let loaded = load(&certificate_file, key_file.as_deref(), password.as_ref())?;
        Ok(CertificateAssertion {
            certificate_file,
            key_file,
            password,
            loaded: Mutex::new(loaded),
        })
    }

    /// The certificate's `x5t#S256` thumbprint (base64url SHA-256 of its DER).
    pub fn thumbprint(&self) -> String {
        self.loaded.lock().map(|l| l.x5t_s256.clone()).unwrap_or_default()
    }

    fn current(&self) -> Result<Loaded, KeyMaterialError> {
        let stamps = stamps(&self.certificate_file, self.key_file.as_deref());
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| bad(&self.certificate_file, "internal lock poisoned"))?;
        if loaded.stamps != stamps {
            // Rotated: load the new material; keep using the old one if the new one is not
            // usable yet (a rotation writes the files one after the other).
            match load(&self.certificate_file, self.key_file.as_deref(), self.password.as_ref()) {
                Ok(new) => {
                    tracing::info!(file = %self.certificate_file.display(), thumbprint = %new.x5t_s256, "certificate reloaded");
                    *loaded = new;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "certificate files changed but cannot be used yet; keeping the previous ones")
                }
            }
        }
        Ok(loaded.clone())
    }
}

impl AssertionSource for CertificateAssertion {
    fn assertion(&self, client_id: &str, audience: &str) -> Result<Secret, AuthError> {
        let loaded = self
            .current()
            .map_err(|e| AuthError::Assertion { reason: e.to_string() })?;
        let now = chrono::Utc::now().timestamp();
        let mut header = Header::new(Algorithm::PS256);
        header.x5t_s256 = Some(loaded.x5t_s256.clone());
        let claims = Claims {
            aud: audience.to_owned(),
            iss: client_id.to_owned(),
            sub: client_id.to_owned(),
            jti: format!("{:032x}", fastrand::u128(..)),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        let jwt = jsonwebtoken::encode(&header, &claims, &loaded.key).map_err(|e| AuthError::Assertion {
            reason: format!("cannot sign the client assertion: {e}"),
        })?;
        Ok(Secret::new(jwt))
    }
}

fn stamps(certificate: &Path, key: Option<&Path>) -> Vec<Option<(u64, SystemTime)>> {
    std::iter::once(certificate)
        .chain(key)
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        })
        .collect()
}

fn read(file: &Path) -> Result<Vec<u8>, KeyMaterialError> {
    std::fs::read(file).map_err(|e| bad(file, format!("cannot read it ({})", e.kind())))
}

/// Loads and checks a certificate and its key.
fn load(
    certificate_file: &Path,
    key_file: Option<&Path>,
    password: Option<&Secret>,
) -> Result<Loaded, KeyMaterialError> {
    let stamps = stamps(certificate_file, key_file);
    let bytes = read(certificate_file)?;
    let (cert_der, key_pem, key_from) = if looks_like_pem(&bytes) {
        let blocks = pem::parse_many(&bytes).map_err(|e| bad(certificate_file, format!("not valid PEM ({e})")))?;
        let cert = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or_else(|| bad(certificate_file, "holds no CERTIFICATE block"))?
            .contents()
            .to_vec();
        let (key_pem, key_from) = match key_file {
            Some(key_file) => {
                let key_bytes = read(key_file)?;
                (pem_private_key(key_file, &key_bytes)?, key_file.to_owned())
            }
            None => (pem_private_key(certificate_file, &bytes).map_err(|e| {
                if e.problem.contains("no private key") {
                    bad(certificate_file, "holds a certificate but no private key; add the key to it or set [graph].client_private_key_file")
                } else {
                    e
                }
            })?, certificate_file.to_owned()),
        };
        (cert, key_pem, key_from)
    } else {
        // PKCS#12 (.pfx).
        let password = password.map(Secret::expose).unwrap_or("");
        let store = p12_keystore::KeyStore::from_pkcs12(&bytes, password, p12_keystore::Pkcs12ImportPolicy::default())
            .map_err(|e| {
                bad(
                    certificate_file,
                    format!("not a readable PKCS#12 file: wrong password, or not PKCS#12/PEM ({e})"),
                )
            })?;
        let chain = store
            .entries()
            .find_map(|(_, entry)| match entry {
                p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => Some(chain.clone()),
                _ => None,
            })
            .ok_or_else(|| bad(certificate_file, "holds no private key with its certificate"))?;
        let cert = chain
            .certs()
            .first()
            .ok_or_else(|| bad(certificate_file, "holds a private key but no certificate"))?
            .as_der()
            .to_vec();
        let key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", chain.key().as_der().to_vec()));
        (cert, key_pem.into_bytes(), certificate_file.to_owned())
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| bad(certificate_file, format!("not a valid X.509 certificate ({e})")))?;
    let now = chrono::Utc::now().timestamp();
    let validity = cert.validity();
    if validity.not_after.timestamp() < now {
        return Err(bad(
            certificate_file,
            format!(
                "the certificate expired on {}; upload and mount a new one",
                validity.not_after
            ),
        ));
    }
    if validity.not_before.timestamp() > now + 300 {
        return Err(bad(
            certificate_file,
            format!("the certificate is not valid before {}", validity.not_before),
        ));
    }
    let key = EncodingKey::from_rsa_pem(&key_pem)
        .map_err(|e| bad(&key_from, format!("not a usable RSA private key ({e})")))?;
    // The key must be the certificate's: sign a probe, verify it with the certificate's key.
    let public = cert.public_key().subject_public_key.data.to_vec();
    let probe = jsonwebtoken::encode(&Header::new(Algorithm::PS256), &serde_json::json!({"probe": 1}), &key)
        .map_err(|e| bad(&key_from, format!("cannot sign with this key ({e})")))?;
    let mut validation = Validation::new(Algorithm::PS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    if jsonwebtoken::decode::<serde_json::Value>(&probe, &DecodingKey::from_rsa_der(&public), &validation).is_err() {
        return Err(bad(
            &key_from,
            format!(
                "the private key does not match the certificate in {}",
                certificate_file.display()
            ),
        ));
    }
    let x5t_s256 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&cert_der));
    Ok(Loaded {
        stamps,
        key: Arc::new(key),
        x5t_s256,
    })
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// The private key of a PEM file, as PEM (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
fn pem_private_key(file: &Path, bytes: &[u8]) -> Result<Vec<u8>, KeyMaterialError> {
    let blocks = pem::parse_many(bytes).map_err(|e| bad(file, format!("not valid PEM ({e})")))?;
    if blocks.iter().any(|b| b.tag() == "ENCRYPTED PRIVATE KEY") {
        return Err(bad(
            file,
            "holds an encrypted PEM key; use an unencrypted key file (a mounted Secret) or a PKCS#12 file with [graph].client_certificate_password_env",
        ));
    }
    let key = blocks
        .into_iter()
        .find(|b| matches!(b.tag(), "PRIVATE KEY" | "RSA PRIVATE KEY"))
        .ok_or_else(|| bad(file, "holds no private key (PRIVATE KEY or RSA PRIVATE KEY block)"))?;
    Ok(pem::encode(&key).into_bytes())
}
