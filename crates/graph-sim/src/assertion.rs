//! Client credentials other than a secret, checked the way the Microsoft
//! identity platform checks them: JWT client assertions signed with the key of
//! a registered certificate, and federated (workload identity) tokens.
//!
//! The token endpoint hands every `client_assertion` to [`check`], which
//! decides which kind it is:
//!
//! 1. a registered federated token (exact match) is accepted as long as it has
//!    not expired (its `exp`, read without verification, when it is a JWT);
//! 2. a revoked federated token is refused as expired;
//! 3. a JWT whose header names a certificate (`x5t#S256` or `x5t`) goes through
//!    the certificate checks below;
//! 4. any other JWT is an unknown federated token; anything else is malformed.
//!
//! Certificate checks, in order: `alg` is `PS256` or `RS256`; the thumbprint
//! names a registered certificate; the signature verifies with its key; the
//! certificate is within its validity; `iss` = `sub` = the client id; `aud` =
//! the token endpoint URL; `exp` is in the future and at most 24 h ahead;
//! `nbf` and `iat` are not more than 5 minutes ahead; `jti` was never
//! accepted before.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::DateTime;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_cert::der::{Decode as _, DecodePem as _, Encode as _};

/// Clock skew allowed for `nbf` and `iat` (seconds).
const SKEW: i64 = 300;
/// The latest `exp` accepted, from now (seconds).
const MAX_AHEAD: i64 = 24 * 3600;
/// Seen `jti`s kept before expired ones are pruned.
const JTI_PRUNE_AT: usize = 4096;

/// Why a `client_assertion` was refused (see [`crate::SimStats::assertions_rejected`]).
///
/// Each answers like the Microsoft identity platform: [`status`](Self::status),
/// OAuth [`error`](Self::error) and the `AADSTS` [`code`](Self::code) in
/// `error_description` and `error_codes`:
///
/// | rejection | status | `error` | AADSTS |
/// | --- | --- | --- | --- |
/// | [`Malformed`](Self::Malformed) | 400 | `invalid_request` | 50027 |
/// | [`UnsupportedAssertionType`](Self::UnsupportedAssertionType) | 400 | `invalid_request` | 90023 |
/// | [`UnsupportedAlgorithm`](Self::UnsupportedAlgorithm) | 401 | `invalid_client` | 700027 |
/// | [`UnknownKey`](Self::UnknownKey) | 401 | `invalid_client` | 700027 |
/// | [`BadSignature`](Self::BadSignature) | 401 | `invalid_client` | 700027 |
/// | [`KeyExpired`](Self::KeyExpired) | 401 | `invalid_client` | 700027 |
/// | [`ClientIdMismatch`](Self::ClientIdMismatch) | 401 | `invalid_client` | 700021 |
/// | [`WrongAudience`](Self::WrongAudience) | 401 | `invalid_client` | 700023 |
/// | [`Expired`](Self::Expired) | 401 | `invalid_client` | 700024 |
/// | [`NotYetValid`](Self::NotYetValid) | 401 | `invalid_client` | 700024 |
/// | [`ExpiresTooLate`](Self::ExpiresTooLate) | 401 | `invalid_client` | 700024 |
/// | [`ReplayedJti`](Self::ReplayedJti) | 401 | `invalid_client` | 50013 |
/// | [`UnknownFederatedToken`](Self::UnknownFederatedToken) | 400 | `invalid_request` | 70021 |
/// | [`RevokedFederatedToken`](Self::RevokedFederatedToken) | 401 | `invalid_client` | 700024 |
///
/// Entra documents no code for a replayed `jti`; the simulator uses 50013
/// ("assertion is invalid"), which no other rejection here uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AssertionRejection {
    /// Not a JWT (three base64url parts, JSON header and claims), or a
    /// required claim (`iss`, `sub`, `aud`, `exp`, `jti`) is missing or of
    /// the wrong type.
    Malformed,
    /// `client_assertion_type` is not
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    UnsupportedAssertionType,
    /// The header's `alg` is neither `PS256` nor `RS256`.
    UnsupportedAlgorithm,
    /// The `x5t#S256` (or legacy `x5t`) thumbprint names no registered
    /// certificate: "The key was not found."
    UnknownKey,
    /// The signature does not verify with the named certificate's key
    /// (another key signed it, or it was altered).
    BadSignature,
    /// The named certificate is outside its validity period: "The key used
    /// is expired."
    KeyExpired,
    /// `iss` or `sub` is not the request's client id.
    ClientIdMismatch,
    /// `aud` is not the token endpoint URL, `{authority}/{tenant}/oauth2/v2.0/token`.
    WrongAudience,
    /// `exp` is not in the future (a registered federated token's too).
    Expired,
    /// `nbf` or `iat` is more than 5 minutes in the future.
    NotYetValid,
    /// `exp` is more than 24 hours in the future.
    ExpiresTooLate,
    /// An assertion with this `jti` was accepted before.
    ReplayedJti,
    /// A JWT without a certificate thumbprint that is not a registered
    /// federated token: "No matching federated identity record found for
    /// presented assertion."
    UnknownFederatedToken,
    /// A federated token that was revoked
    /// ([`crate::GraphSim::revoke_federated_token`]): refused as expired, like
    /// a projected service-account token the kubelet has rotated away from.
    RevokedFederatedToken,
}

impl AssertionRejection {
    /// The HTTP status of the answer.
    pub fn status(self) -> u16 {
        match self {
            AssertionRejection::Malformed
            | AssertionRejection::UnsupportedAssertionType
            | AssertionRejection::UnknownFederatedToken => 400,
            _ => 401,
        }
    }

    /// The OAuth `error` of the answer.
    pub fn error(self) -> &'static str {
        if self.status() == 400 {
            "invalid_request"
        } else {
            "invalid_client"
        }
    }

    /// The `AADSTS` code of the answer.
    pub fn code(self) -> u32 {
        match self {
            AssertionRejection::Malformed => 50_027,
            AssertionRejection::UnsupportedAssertionType => 90_023,
            AssertionRejection::UnsupportedAlgorithm
            | AssertionRejection::UnknownKey
            | AssertionRejection::BadSignature
            | AssertionRejection::KeyExpired => 700_027,
            AssertionRejection::ClientIdMismatch => 700_021,
            AssertionRejection::WrongAudience => 700_023,
            AssertionRejection::Expired
            | AssertionRejection::NotYetValid
            | AssertionRejection::ExpiresTooLate
            | AssertionRejection::RevokedFederatedToken => 700_024,
            AssertionRejection::ReplayedJti => 50_013,
            AssertionRejection::UnknownFederatedToken => 70_021,
        }
    }
}

/// Why [`crate::GraphSim::register_certificate`] refused its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// Neither a DER X.509 certificate nor PEM with a `CERTIFICATE` block.
    #[error("not an X.509 certificate (DER, or PEM with a CERTIFICATE block): {reason}")]
    NotACertificate {
        /// What the parser said.
        reason: String,
    },
    /// The certificate's key is not an RSA key.
    #[error("the certificate's public key is not an RSA key")]
    NotRsa,
}

/// A certificate registered for the client.
pub(crate) struct RegisteredCert {
    der: Vec<u8>,
    /// SHA-256 of the DER (`x5t#S256`).
    s256: Vec<u8>,
    /// SHA-1 of the DER (`x5t`).
    sha1: Vec<u8>,
    key: rsa::PublicKey,
    /// Validity, Unix seconds.
    not_before: i64,
    not_after: i64,
}

impl RegisteredCert {
    /// Parses DER, or the first `CERTIFICATE` block of PEM.
    pub(crate) fn parse(input: &[u8]) -> Result<RegisteredCert, CertificateError> {
        let invalid = |e: &dyn std::fmt::Display| CertificateError::NotACertificate { reason: e.to_string() };
        let cert = match first_pem_certificate(input) {
            Some(pem) => Certificate::from_pem(pem).map_err(|e| invalid(&e))?,
            None => Certificate::from_der(input).map_err(|e| invalid(&e))?,
        };
        let der = cert.to_der().map_err(|e| invalid(&e))?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| invalid(&e))?;
        let key = rsa::PublicKey::from_public_key_der(&spki).map_err(|_| CertificateError::NotRsa)?;
        let validity = cert.tbs_certificate().validity();
        let secs = |t: x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
        Ok(RegisteredCert {
            s256: Sha256::digest(&der).to_vec(),
            sha1: Sha1::digest(&der).to_vec(),
            der,
            key,
            not_before: secs(validity.not_before),
            not_after: secs(validity.not_after),
        })
    }

    /// base64url SHA-256 of the DER.
    pub(crate) fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.s256)
    }
}

/// The first `-----BEGIN CERTIFICATE-----` block of `input`, if it is PEM.
fn first_pem_certificate(input: &[u8]) -> Option<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let start = input.windows(BEGIN.len()).position(|w| w == BEGIN)?;
    let rest = input.get(start..)?;
    let end = rest.windows(END.len()).position(|w| w == END)? + END.len();
    rest.get(..end)
}

/// Registered credentials and the `jti`s seen.
#[derive(Default)]
pub(crate) struct IdentityState {
    certs: Vec<RegisteredCert>,
    /// Accepted `jti` → its `exp` (pruned once expired).
    seen_jtis: HashMap<String, i64>,
    federated: HashSet<String>,
    revoked_federated: HashSet<String>,
}

impl IdentityState {
    /// Registers `cert` (again: no-op) and returns its `x5t#S256`.
    pub(crate) fn add_cert(&mut self, cert: RegisteredCert) -> String {
        let thumb = cert.x5t_s256();
        if !self.certs.iter().any(|c| c.der == cert.der) {
            self.certs.push(cert);
        }
        thumb
    }

    /// Removes `cert`; whether it was registered.
    pub(crate) fn remove_cert(&mut self, cert: &RegisteredCert) -> bool {
        let before = self.certs.len();
        self.certs.retain(|c| c.der != cert.der);
        self.certs.len() != before
    }

    pub(crate) fn add_federated(&mut self, token: &str) {
        self.revoked_federated.remove(token);
        self.federated.insert(token.to_owned());
    }

    /// Revokes `token`; whether it was registered.
    pub(crate) fn revoke_federated(&mut self, token: &str) -> bool {
        let was = self.federated.remove(token);
        if was {
            self.revoked_federated.insert(token.to_owned());
        }
        was
    }
}

/// An accepted assertion.
pub(crate) enum Accepted {
    /// A certificate-signed JWT: `{"header": …, "claims": …}`.
    Certificate(Value),
    /// A registered federated token.
    Federated,
}

/// A refused assertion: the reason and the `error_description` text after
/// `AADSTS{code}: `.
pub(crate) struct Refusal {
    pub(crate) reason: AssertionRejection,
    pub(crate) description: String,
}

fn refuse(reason: AssertionRejection, description: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        description: description.into(),
    }
}

/// A decoded (unverified) JWT.
struct Jwt<'a> {
    /// `header.payload`, the signed bytes.
    signing_input: &'a str,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signature: Vec<u8>,
}

fn decode_jwt(token: &str) -> Option<Jwt<'_>> {
    let mut parts = token.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let object = |part: &str| match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    };
    Some(Jwt {
        signing_input: token.get(..h.len() + 1 + c.len())?,
        header: object(h)?,
        claims: object(c)?,
        signature: URL_SAFE_NO_PAD.decode(s).ok()?,
    })
}

/// A NumericDate claim, whole seconds (fractions are cut).
fn numeric(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// A time as Entra writes it in error descriptions (`06/04/2026 05:40:43`).
fn entra_time(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0).map_or_else(|| secs.to_string(), |t| t.format("%m/%d/%Y %H:%M:%S").to_string())
}

fn time_range(now: i64, from: Option<i64>, exp: i64) -> String {
    format!(
        "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
        entra_time(now),
        from.map_or_else(|| "(not set)".to_owned(), entra_time),
        entra_time(exp)
    )
}

const MALFORMED: &str = "JWT token is invalid or malformed.";

/// Checks a `client_assertion` for `client_id` at `token_url` at Unix time `now`.
pub(crate) fn check(
    state: &mut IdentityState,
    assertion: &str,
    client_id: &str,
    token_url: &str,
    now: i64,
) -> Result<Accepted, Refusal> {
    if state.federated.contains(assertion) {
        // Real Entra verifies the issuer's signature and matches issuer and
        // subject against the app's federated credentials; the registered
        // token itself stands for that here. It stays valid until it expires.
        if let Some(exp) = decode_jwt(assertion).and_then(|j| numeric(&j.claims, "exp")) {
            if exp <= now {
                return Err(refuse(AssertionRejection::Expired, time_range(now, None, exp)));
            }
        }
        return Ok(Accepted::Federated);
    }
    if state.revoked_federated.contains(assertion) {
        let exp = decode_jwt(assertion)
            .and_then(|j| numeric(&j.claims, "exp"))
            .unwrap_or(now)
            .min(now);
        return Err(refuse(
            AssertionRejection::RevokedFederatedToken,
            time_range(now, None, exp),
        ));
    }
    let Some(jwt) = decode_jwt(assertion) else {
        return Err(refuse(AssertionRejection::Malformed, MALFORMED));
    };
    let thumbprint = match (jwt.header.get("x5t#S256"), jwt.header.get("x5t")) {
        (Some(Value::String(t)), _) => (t.as_str(), true),
        (None, Some(Value::String(t))) => (t.as_str(), false),
        (None, None) => {
            let claim = |name: &str| jwt.claims.get(name).and_then(Value::as_str).unwrap_or("");
            return Err(refuse(
                AssertionRejection::UnknownFederatedToken,
                format!(
                    "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'. https://docs.microsoft.com/azure/active-directory/develop/workload-identity-federation",
                    claim("iss"),
                    claim("sub"),
                    claim("aud")
                ),
            ));
        }
        _ => return Err(refuse(AssertionRejection::Malformed, MALFORMED)),
    };
    certificate(state, &jwt, thumbprint, client_id, token_url, now)
}

fn certificate(
    state: &mut IdentityState,
    jwt: &Jwt<'_>,
    (thumbprint, s256): (&str, bool),
    client_id: &str,
    token_url: &str,
    now: i64,
) -> Result<Accepted, Refusal> {
    let alg = jwt.header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "PS256" && alg != "RS256" {
        return Err(refuse(
            AssertionRejection::UnsupportedAlgorithm,
            format!(
                "Client assertion failed signature validation. [Reason - The signing algorithm '{}' is not supported; use PS256 or RS256.]",
                alg.escape_default()
            ),
        ));
    }
    let wanted = URL_SAFE_NO_PAD
        .decode(thumbprint.trim_end_matches('='))
        .unwrap_or_default();
    let found = state
        .certs
        .iter()
        .find(|c| if s256 { c.s256 == wanted } else { c.sha1 == wanted });
    let Some(cert) = found else {
        let hex: String = wanted.iter().map(|b| format!("{b:02X}")).collect();
        return Err(refuse(
            AssertionRejection::UnknownKey,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{hex}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"
            ),
        ));
    };
    let input = jwt.signing_input.as_bytes();
    let verified = if alg == "RS256" {
        rsa::pkcs1v15::Signature::try_from(jwt.signature.as_slice()).is_ok_and(|sig| {
            rsa::pkcs1v15::VerifyingKey::<Sha256>::new(cert.key.clone())
                .verify(input, &sig)
                .is_ok()
        })
    } else {
        // RFC 7518 §3.5: PS256's salt is as long as the hash (32 bytes).
        rsa::pss::Signature::try_from(jwt.signature.as_slice()).is_ok_and(|sig| {
            rsa::pss::VerifyingKey::<Sha256>::new(cert.key.clone())
                .verify(input, &sig)
                .is_ok()
        })
    };
    if !verified {
        return Err(refuse(
            AssertionRejection::BadSignature,
            "Client assertion failed signature validation.",
        ));
    }
    if now < cert.not_before || now > cert.not_after {
        let hex: String = cert.s256.iter().map(|b| format!("{b:02X}")).collect();
        return Err(refuse(
            AssertionRejection::KeyExpired,
            format!(
                "The certificate with identifier used to sign the client assertion is expired on application. [Reason - The key used is expired., Thumbprint of key used by client: '{hex}', Found key 'Start=\"{}\", End=\"{}\"', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]",
                entra_time(cert.not_before),
                entra_time(cert.not_after)
            ),
        ));
    }
    let c = &jwt.claims;
    let string = |name: &str| c.get(name).and_then(Value::as_str);
    let (Some(iss), Some(sub)) = (string("iss"), string("sub")) else {
        return Err(refuse(AssertionRejection::Malformed, MALFORMED));
    };
    if !iss.eq_ignore_ascii_case(client_id) || !sub.eq_ignore_ascii_case(client_id) {
        return Err(refuse(
            AssertionRejection::ClientIdMismatch,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
        ));
    }
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == token_url,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(token_url)),
        _ => return Err(refuse(AssertionRejection::Malformed, MALFORMED)),
    };
    if !aud_ok {
        return Err(refuse(
            AssertionRejection::WrongAudience,
            "Client assertion audience claim does not match Realm issuer. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
        ));
    }
    let Some(exp) = numeric(c, "exp") else {
        return Err(refuse(AssertionRejection::Malformed, MALFORMED));
    };
    let nbf = numeric(c, "nbf");
    let iat = numeric(c, "iat");
    let from = nbf.or(iat);
    if exp <= now {
        return Err(refuse(AssertionRejection::Expired, time_range(now, from, exp)));
    }
    if exp > now.saturating_add(MAX_AHEAD) {
        return Err(refuse(AssertionRejection::ExpiresTooLate, time_range(now, from, exp)));
    }
    if [nbf, iat].into_iter().flatten().any(|t| t > now.saturating_add(SKEW)) {
        return Err(refuse(AssertionRejection::NotYetValid, time_range(now, from, exp)));
    }
    let Some(jti) = string("jti").filter(|j| !j.is_empty()) else {
        return Err(refuse(AssertionRejection::Malformed, MALFORMED));
    };
    if state.seen_jtis.contains_key(jti) {
        return Err(refuse(
            AssertionRejection::ReplayedJti,
            format!(
                "Assertion is invalid: a client assertion with jti '{}' was already used. Make a new assertion, with a new jti, for every token request.",
                jti.escape_default()
            ),
        ));
    }
    if state.seen_jtis.len() >= JTI_PRUNE_AT {
        // An expired assertion is refused for its `exp` before its `jti` is
        // looked at, so forgetting it changes nothing.
        state.seen_jtis.retain(|_, e| *e > now);
    }
    state.seen_jtis.insert(jti.to_owned(), exp);
    Ok(Accepted::Certificate(serde_json::json!({
        "header": jwt.header,
        "claims": jwt.claims,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks() {
        let pem = b"junk\n-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let block = first_pem_certificate(pem).expect("a block");
        assert!(block.starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert!(block.ends_with(b"-----END CERTIFICATE-----"));
        assert!(first_pem_certificate(b"\x30\x82").is_none());
    }

    #[test]
    fn jwts() {
        assert!(decode_jwt("a.b").is_none());
        assert!(decode_jwt("a.b.c.d").is_none());
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"PS256"}"#);
        let c = URL_SAFE_NO_PAD.encode(br#"{"exp":1.5e9}"#);
        let jwt = format!("{h}.{c}.AAAA");
        let j = decode_jwt(&jwt).expect("decodes");
        assert_eq!(j.signing_input, format!("{h}.{c}"));
        assert_eq!(numeric(&j.claims, "exp"), Some(1_500_000_000));
        assert!(decode_jwt(&format!("{h}.{h}x.AAAA")).is_none());
        let not_object = URL_SAFE_NO_PAD.encode(b"[1]");
        assert!(decode_jwt(&format!("{h}.{not_object}.AAAA")).is_none());
    }

    #[test]
    fn codes_are_the_documented_ones() {
        use AssertionRejection as R;
        assert_eq!((R::UnknownKey.status(), R::UnknownKey.error()), (401, "invalid_client"));
        assert_eq!((R::Malformed.status(), R::Malformed.error()), (400, "invalid_request"));
        assert_eq!(R::WrongAudience.code(), 700_023);
        assert_eq!(R::ClientIdMismatch.code(), 700_021);
        assert_eq!(R::ReplayedJti.code(), 50_013);
    }
}
