//! Key material for tests: RSA keys, self-signed certificates, PKCS#12 files
//! and signed client assertions, made in-process (no `openssl` on the machine).
//!
//! **For tests only.** The keys are derived from a public seed, so anyone can
//! recreate them: never use them for anything real.
//!
//! Everything but the PKCS#12 bytes is deterministic from the seed: the same
//! seed always gives the same key, the same certificate DER and the same
//! thumbprints (a PKCS#12 file has random salts, but always holds the same key
//! and certificate). Generating a 2048-bit RSA key takes a moment, so keys are
//! cached per seed for the life of the process.
//!
//! ```no_run
//! use recarch_graph_sim::test_keys;
//! # async fn demo(sim: recarch_graph_sim::GraphSim) {
//! let cert = test_keys::test_certificate(1);
//! sim.register_certificate(&cert.cert_der).expect("an RSA certificate");
//! // Files a client under test reads: PEM (key and certificate), or PKCS#12.
//! let pem = cert.pem_bundle();
//! let pfx = cert.pkcs12("secret");
//! // Or sign an assertion directly, as a correct client does:
//! let jwt = cert.client_assertion(&sim.config().client_id, &sim.token_url());
//! # let _ = (pem, pfx, jwt);
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng as _;
use rsa::PrivateKey;
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder as _, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::der::{Encode as _, EncodePem as _};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfo, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};

use crate::rng::mix64;

/// The `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// RSA key size of the test keys.
const KEY_BITS: usize = 2048;

/// `2025-01-01T00:00:00Z` → `2049-12-31T23:59:59Z`: valid for every test run.
const VALID: (u64, u64) = (1_735_689_600, 2_524_607_999);
/// `2020-01-01T00:00:00Z` → `2021-01-01T00:00:00Z`: long expired.
const EXPIRED: (u64, u64) = (1_577_836_800, 1_609_459_200);

/// A test certificate and its private key, in the forms clients read.
#[derive(Clone)]
pub struct TestCertificate {
    /// The X.509 certificate, DER.
    pub cert_der: Vec<u8>,
    /// The certificate as PEM (`-----BEGIN CERTIFICATE-----`).
    pub cert_pem: String,
    /// The RSA private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
    /// Start of the certificate's validity.
    pub not_before: SystemTime,
    /// End of the certificate's validity.
    pub not_after: SystemTime,
    key: PrivateKey,
}

impl fmt::Debug for TestCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCertificate")
            .field("x5t#S256", &self.x5t_s256())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A valid self-signed certificate (2025 to 2049) for a 2048-bit RSA key, both
/// derived from `seed`.
pub fn test_certificate(seed: u64) -> TestCertificate {
    make(seed, seed, VALID, "recarch test certificate")
}

/// Like [`test_certificate`] (same key for the same seed), but the certificate
/// expired on 2021-01-01.
pub fn expired_certificate(seed: u64) -> TestCertificate {
    make(seed, seed, EXPIRED, "recarch expired test certificate")
}

/// A valid certificate for the key of `seed`, paired with a private key that
/// does not belong to it (so signatures never verify against the
/// certificate): what a rotation that updated only one of two files leaves.
pub fn mismatched_certificate(seed: u64) -> TestCertificate {
    make(
        seed,
        mix64(seed ^ 0x6d69_736d_6174_6368),
        VALID,
        "recarch test certificate",
    )
}

/// The cached RSA key of `seed`.
fn key(seed: u64) -> PrivateKey {
    static KEYS: OnceLock<Mutex<HashMap<u64, PrivateKey>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Mutex::default);
    // Held while generating: two tests asking for one seed generate it once.
    let mut keys = keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    keys.entry(seed)
        .or_insert_with(|| {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            // A ChaCha stream never fails and 2048 bits is a supported size.
            #[allow(clippy::expect_used)]
            PrivateKey::new(&mut rng, KEY_BITS).expect("RSA key generation")
        })
        .clone()
}

/// The certificate of `cert_seed`'s key with `key_seed`'s key as the private key.
#[allow(clippy::expect_used)] // fixed, valid inputs: a failure is a bug here
fn make(cert_seed: u64, key_seed: u64, (from, to): (u64, u64), cn: &str) -> TestCertificate {
    let cert_key = key(cert_seed);
    let not_before = UNIX_EPOCH + Duration::from_secs(from);
    let not_after = UNIX_EPOCH + Duration::from_secs(to);
    let validity = Validity::new(
        Time::try_from(not_before).expect("a representable time"),
        Time::try_from(not_after).expect("a representable time"),
    );
    let subject = Name::from_str(&format!("CN={cn} {cert_seed},O=recarch-graph-sim")).expect("a valid name");
    let spki_der = cert_key
        .to_public_key()
        .to_public_key_der()
        .expect("an encodable public key");
    let spki = SubjectPublicKeyInfo::try_from(spki_der.as_bytes()).expect("a valid SPKI");
    // Positive and non-zero: 8 bytes of the seed behind a 0x01 byte.
    let mut serial = vec![0x01];
    serial.extend_from_slice(&mix64(cert_seed).to_be_bytes());
    let builder = CertificateBuilder::new(
        SelfSigned { subject },
        SerialNumber::new(&serial).expect("a valid serial number"),
        validity,
        spki,
    )
    .expect("a certificate builder");
    // PKCS#1 v1.5 signatures are deterministic: the same seed, the same DER.
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(cert_key);
    let cert = builder
        .build::<_, rsa::pkcs1v15::Signature>(&signer)
        .expect("a signed certificate");
    let cert_der = cert.to_der().expect("an encodable certificate");
    let cert_pem = cert.to_pem(LineEnding::LF).expect("an encodable certificate");
    let private = key(key_seed);
    let key_der = private.to_pkcs8_der().expect("an encodable key").as_bytes().to_vec();
    let key_pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an encodable key")
        .to_string();
    TestCertificate {
        cert_der,
        cert_pem,
        key_der,
        key_pem,
        not_before,
        not_after,
        key: private,
    }
}

/// A self-signed end-entity certificate without extensions.
struct SelfSigned {
    subject: Name,
}

impl BuilderProfile for SelfSigned {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(Vec::new())
    }
}

impl TestCertificate {
    /// The private key (PKCS#8) followed by the certificate, PEM, in one file:
    /// the shape of a Kubernetes TLS secret's `tls.pem` bundle.
    pub fn pem_bundle(&self) -> String {
        format!("{}{}", self.key_pem, self.cert_pem)
    }

    /// A PKCS#12 (`.pfx`) file holding the key and the certificate, encrypted
    /// and MACed with `password` (PBES2 with AES-256 and HMAC-SHA-256, as
    /// current tools write them; `""` for no password).
    pub fn pkcs12(&self, password: &str) -> Vec<u8> {
        use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
        // The inputs were made above and are valid; a failure is a bug here.
        #[allow(clippy::expect_used)]
        let chain = PrivateKeyChain::new(
            Sha1::digest(&self.cert_der).to_vec(),
            PrivateKey::from_der(&self.key_der).expect("a PKCS#8 key"),
            [Certificate::from_der(&self.cert_der).expect("a DER certificate")],
        );
        let mut store = KeyStore::new();
        store.add_entry("recarch", KeyStoreEntry::PrivateKeyChain(chain));
        #[allow(clippy::expect_used)]
        store.writer(password).write().expect("a PKCS#12 file")
    }

    /// The `x5t#S256` header value: base64url (no padding) of the SHA-256 of
    /// the certificate's DER.
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(&self.cert_der))
    }

    /// The legacy `x5t` header value: base64url (no padding) of the SHA-1 of
    /// the certificate's DER.
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha1::digest(&self.cert_der))
    }

    /// A JWT with `header` and `claims` (both JSON objects, sent as given),
    /// signed with this private key: RSASSA-PKCS1-v1_5 with SHA-256 when the
    /// header's `alg` is `RS256`, RSASSA-PSS with SHA-256 (salt 32 bytes)
    /// otherwise (whatever `alg` says, so tests can send a wrong one).
    pub fn sign_jwt(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default());
        let input = format!("{}.{}", part(header), part(claims));
        // The PSS salt comes from a generator seeded with the input: the same
        // JWT is signed the same way every time.
        let digest = Sha256::digest(input.as_bytes());
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&digest);
        let mut rng = ChaCha20Rng::from_seed(seed);
        let signature = if header["alg"] == "RS256" {
            rsa::pkcs1v15::SigningKey::<Sha256>::new(self.key.clone())
                .sign_with_rng(&mut rng, input.as_bytes())
                .to_vec()
        } else {
            rsa::pss::SigningKey::<Sha256>::new(self.key.clone())
                .sign_with_rng(&mut rng, input.as_bytes())
                .to_vec()
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// A client assertion as a correct client makes it: `PS256`, `typ: JWT`,
    /// `x5t#S256`; `aud` = `token_url`, `iss` = `sub` = `client_id`, a fresh
    /// `jti`, `nbf` = `iat` = now, `exp` = now + 10 minutes.
    pub fn client_assertion(&self, client_id: &str, token_url: &str) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let header = serde_json::json!({ "alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t_s256() });
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": fresh_jti(),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        self.sign_jwt(&header, &claims)
    }
}

/// A `jti` never handed out before in this process.
fn fresh_jti() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    crate::rng::Rng::derive(0, crate::rng::domain::JTI, n).guid()
}
