//! Signed checkpoints: a C2SP signed note (<https://c2sp.org/signed-note>) over a C2SP tlog
//! checkpoint body (<https://c2sp.org/tlog-checkpoint>), signed with Ed25519.
//!
//! ```text
//! <origin>\n                          the checkpoint body (the note's text): what is signed, byte for byte
//! <tree size, decimal>\n
//! <root, standard base64>\n
//! \n                                  a blank line, then one line per signature
//! — <key name> <base64(key id (4 bytes) || Ed25519 signature (64 bytes))>\n
//! ```
//!
//! The key id is the first 4 bytes of SHA-256(key name || "\n" || 0x01 || 32-byte public
//! key), so it binds the name to the key. The note is interoperable with Go's
//! `golang.org/x/mod/sumdb/note` and every C2SP tool: [`LedgerSigner::verifier_key`] prints
//! the key in their `<name>+<hex id>+<base64>` form.
//!
//! Written here rather than taken from a crate: the one Rust implementation of the format
//! (`signed_note`) pins `ed25519-dalek` 2, `sha2` 0.10, `base64` 0.21 and `thiserror` 1,
//! older majors of four crates this workspace already has, for some sixty lines of format.
//!
//! Keys come from files: the private key as PKCS#8 PEM (`openssl genpkey -algorithm
//! ed25519`), the public key as SPKI PEM (`openssl pkey -pubout`). An error reading either
//! names the file and never shows any of its content.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::merkle::MerkleHash;
use crate::StoreError;

/// The signature type byte of Ed25519 in key ids and verifier keys.
const ALG_ED25519: u8 = 0x01;
/// Most signature lines a note may carry (as Go's implementation).
const MAX_SIGNATURES: usize = 100;
/// What starts a signature line: an em dash and a space.
const SIG_PREFIX: &str = "\u{2014} ";
/// Largest key file read: PEM keys are a few hundred bytes.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Why a note or a checkpoint was not accepted. A verifier tells a malformed note, one not
/// signed by its key, and one whose signature is wrong apart.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Not a signed note: no blank line before the signatures, a text that does not end
    /// with a newline, a signature line out of form, too many signatures.
    #[error("malformed note: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// No signature line is by the verifier's key (another key signed, or none).
    #[error("no signature by key {name}+{key_id:08x}; signed by: {signed_by}")]
    UnknownKey {
        /// The key name expected, or `*` when any name with the verifier's key is accepted.
        name: String,
        /// The verifier key's id under that name (0 when any name is accepted).
        key_id: u32,
        /// The `name+id` of every signature line found, or `nobody`.
        signed_by: String,
    },
    /// A signature line by the verifier's key does not verify: the text or the signature
    /// was changed.
    #[error("invalid signature for key {name}+{key_id:08x}")]
    BadSignature {
        /// The key name on the line.
        name: String,
        /// The key id on the line.
        key_id: u32,
    },
    /// The note's text is not a checkpoint body (origin, tree size, base64 root).
    #[error("malformed checkpoint: {reason}")]
    MalformedCheckpoint {
        /// What is wrong.
        reason: String,
    },
}

fn malformed(reason: impl Into<String>) -> NoteError {
    NoteError::Malformed { reason: reason.into() }
}

/// A tree head as a checkpoint states it: which log, how many leaves, and their root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    /// The log's origin line (by convention, the signing key's name).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// The RFC 6962 root over them.
    pub root: MerkleHash,
}

impl TreeHead {
    /// The checkpoint body: `<origin>\n<size>\n<base64 root>\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root.as_bytes())
        )
    }

    /// Parses a checkpoint body; extension lines after the root are allowed and ignored.
    ///
    /// # Errors
    /// [`NoteError::MalformedCheckpoint`].
    pub fn parse(body: &str) -> Result<Self, NoteError> {
        let bad = |reason: &str| NoteError::MalformedCheckpoint { reason: reason.into() };
        let mut lines = body.split_inclusive('\n');
        let mut line = |what: &str| {
            lines
                .next()
                .and_then(|l| l.strip_suffix('\n'))
                .ok_or_else(|| bad(&format!("no {what} line")))
        };
        let origin = line("origin")?;
        let size = line("tree size")?;
        let root = line("root")?;
        if origin.is_empty() {
            return Err(bad("empty origin"));
        }
        let canonical = size == "0" || (!size.starts_with('0') && size.bytes().all(|b| b.is_ascii_digit()));
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| bad("the tree size is not a decimal number"))?;
        let root: [u8; 32] = STANDARD
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the root is not 32 bytes of standard base64"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root: MerkleHash::from_bytes(root),
        })
    }
}

/// Whether `name` may name a key: non-empty, no whitespace, no `+`.
fn check_key_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+') {
        return Err(StoreError::invalid_id(
            "ledger key name",
            name,
            "expected a non-empty name without spaces or '+', e.g. recarch.example.com/ledger",
        ));
    }
    Ok(())
}

/// The key id of `key` under `name`: the first 4 bytes of SHA-256(name || "\n" || 0x01 || key).
fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let hash = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([ALG_ED25519])
        .chain_update(key.as_bytes())
        .finalize();
    u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]])
}

/// Reads a key file of at most [`MAX_KEY_FILE`] bytes, wiped from memory when dropped.
fn read_key_file(path: &Path) -> Result<Zeroizing<String>, StoreError> {
    use std::io::Read as _;
    let invalid = |reason: String| StoreError::InvalidKeyFile {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| invalid(format!("cannot open it: {}", e.kind())))?;
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_KEY_FILE + 1)
        .read_to_string(&mut text)
        // An I/O error's message names no content; a file that is not UTF-8 is not PEM.
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => invalid("not a PEM file (not text)".into()),
            kind => invalid(format!("cannot read it: {kind}")),
        })?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(invalid(format!("larger than {MAX_KEY_FILE} bytes: not a PEM key")));
    }
    Ok(text)
}

/// Signs ledger checkpoints with an Ed25519 key under a key name.
///
/// Debug output shows the name and key id, never the key.
pub struct LedgerSigner {
    /// The key name on signature lines.
    name: String,
    /// The checkpoint's origin line (the name unless set otherwise).
    origin: String,
    /// The private key (wiped when dropped).
    key: SigningKey,
    /// [`key_id`] of the key under `name`.
    key_id: u32,
}

impl fmt::Debug for LedgerSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerSigner")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl LedgerSigner {
    fn new(name: &str, key: SigningKey) -> Result<Self, StoreError> {
        check_key_name(name)?;
        let key_id = key_id(name, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            origin: name.to_owned(),
            key,
            key_id,
        })
    }

    /// Reads an Ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, as
    /// `openssl genpkey -algorithm ed25519` writes it) from `path`, to sign under `name`
    /// (which is also the checkpoints' origin unless [`LedgerSigner::with_origin`] says
    /// otherwise).
    ///
    /// # Errors
    /// [`StoreError::InvalidKeyFile`] naming the file (never its content) when it cannot
    /// be read or holds no such key; [`StoreError::InvalidId`] for a name with spaces or `+`.
    pub fn from_pkcs8_pem_file(path: &Path, name: &str) -> Result<Self, StoreError> {
        let pem = read_key_file(path)?;
        Self::from_pkcs8_pem(&pem, name, &path.display().to_string())
    }

    /// As [`LedgerSigner::from_pkcs8_pem_file`], from the PEM text; `source` names where it
    /// came from in errors.
    ///
    /// # Errors
    /// As [`LedgerSigner::from_pkcs8_pem_file`].
    pub fn from_pkcs8_pem(pem: &str, name: &str, source: &str) -> Result<Self, StoreError> {
        // The parser's own error is not shown: only which of the usual mistakes it is.
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|_| StoreError::InvalidKeyFile {
            path: source.to_owned(),
            reason: format!(
                "{}; generate one with `openssl genpkey -algorithm ed25519 -out FILE`",
                pem_mistake(pem, "PRIVATE KEY")
            ),
        })?;
        Self::new(name, key)
    }

    /// A signer from the 32-byte Ed25519 private key (seed), for tests and tools.
    ///
    /// # Errors
    /// [`StoreError::InvalidId`] for a name with spaces or `+`.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, StoreError> {
        Self::new(name, SigningKey::from_bytes(&seed))
    }

    /// Uses `origin` as the checkpoints' origin line instead of the key name.
    ///
    /// # Errors
    /// [`StoreError::InvalidId`] for an empty origin or one with a line break.
    pub fn with_origin(mut self, origin: &str) -> Result<Self, StoreError> {
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(StoreError::invalid_id(
                "checkpoint origin",
                origin,
                "expected one non-empty line without control characters",
            ));
        }
        origin.clone_into(&mut self.origin);
        Ok(self)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The checkpoints' origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key id under the name.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier of this signer's signatures, bound to its key name.
    pub fn verifier(&self) -> LedgerVerifier {
        LedgerVerifier {
            key: self.key.verifying_key(),
            name: Some(self.name.clone()),
        }
    }

    /// The public key in SPKI PEM (`-----BEGIN PUBLIC KEY-----`), the file
    /// [`LedgerVerifier::from_spki_pem_file`] reads.
    pub fn public_key_pem(&self) -> String {
        self.verifier().public_key_pem()
    }

    /// The verifier key in the C2SP / Go `note` form: `<name>+<8 hex key id>+<base64(0x01 ||
    /// public key)>`.
    pub fn verifier_key(&self) -> String {
        let mut encoded = vec![ALG_ED25519];
        encoded.extend_from_slice(self.key.verifying_key().as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, STANDARD.encode(encoded))
    }

    /// Signs `text` (non-empty, ending with a newline, no blank line) as a note: the text, a
    /// blank line, and this key's signature line.
    ///
    /// # Errors
    /// [`NoteError::Malformed`] for a text that a note cannot carry.
    pub fn sign_note(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        Ok(self.sign_checked(text))
    }

    /// [`LedgerSigner::sign_note`] of a text already known to be a note's.
    fn sign_checked(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.key_id.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        format!("{text}\n{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(blob))
    }

    /// The signed checkpoint of a tree of `size` leaves with `root`, under this signer's
    /// origin.
    pub fn sign_tree_head(&self, size: u64, root: &MerkleHash) -> String {
        let head = TreeHead {
            origin: self.origin.clone(),
            size,
            root: *root,
        };
        // A checkpoint body is a note's text: three non-empty lines without control
        // characters (the origin is checked when set, the others are digits and base64).
        self.sign_checked(&head.body())
    }
}

/// Which usual mistake a PEM text that did not parse shows, told from its labels alone.
fn pem_mistake(pem: &str, label: &str) -> String {
    let begin = format!("-----BEGIN {label}-----");
    if !pem.contains("-----BEGIN ") {
        return format!("not a PEM file (expected {begin})");
    }
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return "an encrypted private key; store it unencrypted (a Kubernetes Secret protects it)".into();
    }
    if !pem.contains(&begin) {
        return format!("no {begin} block (an RSA, EC or OpenSSH key, or the other half of the pair?)");
    }
    format!("the {begin} block is not an Ed25519 key")
}

/// Checks that `text` can be a note's text.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(malformed("the text does not end with a newline"));
    }
    if text.contains("\n\n") || text.starts_with('\n') {
        return Err(malformed("the text has a blank line"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(malformed("the text has a control character"));
    }
    Ok(())
}

/// One signature line of a note.
struct SignatureLine<'a> {
    name: &'a str,
    key_id: u32,
    signature: [u8; 64],
}

/// Splits a note into its text and signature lines.
fn parse_note(note: &str) -> Result<(&str, Vec<SignatureLine<'_>>), NoteError> {
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| malformed("no blank line before the signatures"))?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    check_text(text)?;
    if !signatures.ends_with('\n') {
        return Err(malformed("the last signature line does not end with a newline"));
    }
    let mut lines = Vec::new();
    for line in signatures[..signatures.len() - 1].split('\n') {
        if lines.len() == MAX_SIGNATURES {
            return Err(malformed(format!("more than {MAX_SIGNATURES} signatures")));
        }
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or_else(|| malformed("a signature line does not start with \"\u{2014} \""))?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or_else(|| malformed("a signature line has no signature"))?;
        if name.is_empty() || name.contains('+') || encoded.contains(' ') {
            return Err(malformed("a signature line is not \"\u{2014} <name> <base64>\""));
        }
        let blob = STANDARD
            .decode(encoded)
            .map_err(|_| malformed("a signature is not standard base64"))?;
        if blob.len() < 5 {
            return Err(malformed("a signature is shorter than a key id"));
        }
        let key_id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        // Signatures of other types (other lengths) are kept as lines but never match.
        let signature = blob[4..].try_into().unwrap_or([0; 64]);
        lines.push(SignatureLine {
            name,
            key_id,
            signature,
        });
    }
    Ok((text, lines))
}

/// Checks ledger checkpoints against an Ed25519 public key.
#[derive(Clone, Debug)]
pub struct LedgerVerifier {
    /// The public key.
    key: VerifyingKey,
    /// The only key name accepted, or any name whose key id matches `key`.
    name: Option<String>,
}

impl LedgerVerifier {
    /// Reads an Ed25519 public key in SPKI PEM (`-----BEGIN PUBLIC KEY-----`, as `openssl
    /// pkey -pubout` writes it) from `path`. Signatures under any key name are checked
    /// (the key id binds the name to the key); [`LedgerVerifier::with_name`] narrows that.
    ///
    /// # Errors
    /// [`StoreError::InvalidKeyFile`] naming the file (never its content).
    pub fn from_spki_pem_file(path: &Path) -> Result<Self, StoreError> {
        let pem = read_key_file(path)?;
        Self::from_spki_pem(&pem, &path.display().to_string())
    }

    /// As [`LedgerVerifier::from_spki_pem_file`], from the PEM text; `source` names where it
    /// came from in errors.
    ///
    /// # Errors
    /// As [`LedgerVerifier::from_spki_pem_file`].
    pub fn from_spki_pem(pem: &str, source: &str) -> Result<Self, StoreError> {
        let key = VerifyingKey::from_public_key_pem(pem).map_err(|_| StoreError::InvalidKeyFile {
            path: source.to_owned(),
            reason: format!(
                "{}; derive it from the private key with `openssl pkey -in KEY -pubout`",
                pem_mistake(pem, "PUBLIC KEY")
            ),
        })?;
        Ok(Self { key, name: None })
    }

    /// A verifier of the raw 32-byte Ed25519 public key.
    ///
    /// # Errors
    /// [`StoreError::InvalidId`] when the bytes are not a point of the curve.
    pub fn from_public_key(key: [u8; 32]) -> Result<Self, StoreError> {
        let key = VerifyingKey::from_bytes(&key)
            .map_err(|_| StoreError::invalid_id("ed25519 public key", &hex::encode(key), "not a valid Ed25519 key"))?;
        Ok(Self { key, name: None })
    }

    /// Parses a verifier key in the C2SP / Go `note` form, `<name>+<8 hex key id>+<base64(0x01
    /// || public key)>`; the verifier accepts that name only.
    ///
    /// # Errors
    /// [`StoreError::InvalidId`] when it is not one, or its key id does not match.
    pub fn from_verifier_key(vkey: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::invalid_id("verifier key", vkey, reason);
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(encoded)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("expected <name>+<key id>+<base64 key>"));
        };
        check_key_name(name)?;
        let id = (id.len() == 8)
            .then(|| u32::from_str_radix(id, 16).ok())
            .flatten()
            .ok_or_else(|| invalid("the key id is not 8 hex digits"))?;
        let raw = STANDARD
            .decode(encoded)
            .map_err(|_| invalid("the key is not standard base64"))?;
        let key: [u8; 32] = match raw.split_first() {
            Some((&ALG_ED25519, key)) => key.try_into().map_err(|_| invalid("not a 32-byte key"))?,
            _ => return Err(invalid("not an Ed25519 key (type 0x01)")),
        };
        let verifier = Self::from_public_key(key)?.with_name(name)?;
        if key_id(name, &verifier.key) != id {
            return Err(invalid("the key id does not match the name and key"));
        }
        Ok(verifier)
    }

    /// Accepts signatures under `name` only.
    ///
    /// # Errors
    /// [`StoreError::InvalidId`] for a name with spaces or `+`.
    pub fn with_name(mut self, name: &str) -> Result<Self, StoreError> {
        check_key_name(name)?;
        self.name = Some(name.to_owned());
        Ok(self)
    }

    /// The public key in SPKI PEM.
    pub fn public_key_pem(&self) -> String {
        // Encoding 32 bytes into a fixed structure cannot fail.
        self.key.to_public_key_pem(LineEnding::LF).unwrap_or_default()
    }

    /// Verifies a signed note and returns its text: some signature line must be by this key
    /// (its name accepted, its key id that of the key under that name) and every such line
    /// must verify. Lines by other keys are ignored.
    ///
    /// # Errors
    /// [`NoteError::Malformed`], [`NoteError::UnknownKey`] or [`NoteError::BadSignature`].
    pub fn verify_note<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, lines) = parse_note(note)?;
        let mut verified = false;
        for line in &lines {
            if self.name.as_deref().is_some_and(|name| name != line.name) {
                continue;
            }
            if line.key_id != key_id(line.name, &self.key) {
                continue;
            }
            let signature = Signature::from_bytes(&line.signature);
            self.key
                .verify_strict(text.as_bytes(), &signature)
                .map_err(|_| NoteError::BadSignature {
                    name: line.name.to_owned(),
                    key_id: line.key_id,
                })?;
            verified = true;
        }
        if verified {
            return Ok(text);
        }
        let signed_by = if lines.is_empty() {
            "nobody".to_owned()
        } else {
            lines
                .iter()
                .map(|l| format!("{}+{:08x}", l.name, l.key_id))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(match &self.name {
            Some(name) => NoteError::UnknownKey {
                name: name.clone(),
                key_id: key_id(name, &self.key),
                signed_by,
            },
            None => NoteError::UnknownKey {
                name: "*".into(),
                key_id: 0,
                signed_by,
            },
        })
    }

    /// Verifies a signed checkpoint ([`LedgerVerifier::verify_note`]) and parses its body.
    ///
    /// # Errors
    /// As [`LedgerVerifier::verify_note`], and [`NoteError::MalformedCheckpoint`].
    pub fn verify_checkpoint(&self, note: &str) -> Result<TreeHead, NoteError> {
        TreeHead::parse(self.verify_note(note)?)
    }
}

/// The tree head a signed checkpoint states, without checking any signature (a reader
/// without the public key can still compare it with the record).
///
/// # Errors
/// [`NoteError::Malformed`] or [`NoteError::MalformedCheckpoint`].
pub fn read_checkpoint(note: &str) -> Result<TreeHead, NoteError> {
    let (text, _) = parse_note(note)?;
    TreeHead::parse(text)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::pkcs8::EncodePrivateKey;

    use super::*;
    use crate::ledger::merkle::empty_root;

    /// Go's `sumdb/note` test key (`note_test.go`): `PRIVATE+KEY+PeterNeumann+c74f20a3+<base64
    /// of 0x01 || seed>` and its verifier key.
    const PETER_SKEY: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn peter() -> LedgerSigner {
        let raw = STANDARD.decode(PETER_SKEY).expect("base64");
        assert_eq!(raw[0], ALG_ED25519);
        LedgerSigner::from_seed("PeterNeumann", raw[1..].try_into().expect("32 bytes")).expect("signer")
    }

    #[test]
    fn go_note_vector() {
        let signer = peter();
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.verifier_key(), PETER_VKEY);
        let note = signer.sign_note(PETER_TEXT).expect("sign");
        assert_eq!(note, format!("{PETER_TEXT}\n{PETER_SIG}"));

        let verifier = LedgerVerifier::from_verifier_key(PETER_VKEY).expect("vkey");
        assert_eq!(verifier.verify_note(&note).expect("verify"), PETER_TEXT);
        // Another key's line beside ours is ignored.
        let both = format!("{PETER_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        assert_eq!(verifier.verify_note(&both).expect("verify"), PETER_TEXT);
        // Only the other key's line: not ours.
        let enoch_only = format!("{PETER_TEXT}\n{ENOCH_SIG}");
        assert!(matches!(
            verifier.verify_note(&enoch_only),
            Err(NoteError::UnknownKey { ref signed_by, .. }) if signed_by == "EnochRoot+af0cfe78"
        ));
        for bad in [
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3",
        ] {
            assert!(LedgerVerifier::from_verifier_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tampered_text_or_signature_fails() {
        let signer = peter();
        let verifier = signer.verifier();
        let note = signer.sign_tree_head(7, &empty_root());
        let head = verifier.verify_checkpoint(&note).expect("verify");
        assert_eq!(
            head,
            TreeHead {
                origin: "PeterNeumann".into(),
                size: 7,
                root: empty_root()
            }
        );
        assert_eq!(read_checkpoint(&note).expect("read"), head);

        let tampered = note.replacen("\n7\n", "\n8\n", 1);
        assert!(matches!(
            verifier.verify_checkpoint(&tampered),
            Err(NoteError::BadSignature { key_id: 0xc74f20a3, .. })
        ));
        // A flipped bit in the signature.
        let line_start = note.find(SIG_PREFIX).expect("line");
        let mut blob = STANDARD
            .decode(note[line_start..].trim_end().rsplit(' ').next().expect("b64"))
            .expect("b64");
        blob[10] ^= 1;
        let flipped = format!(
            "{}{SIG_PREFIX}PeterNeumann {}\n",
            &note[..line_start],
            STANDARD.encode(&blob)
        );
        assert!(matches!(
            verifier.verify_note(&flipped),
            Err(NoteError::BadSignature { .. })
        ));

        // Another key, same name: its key id differs, so the line is not this key's.
        let other = LedgerSigner::from_seed("PeterNeumann", [7; 32]).expect("other");
        assert!(matches!(
            other.verifier().verify_note(&note),
            Err(NoteError::UnknownKey { .. })
        ));
        // Any name: still bound by the key id.
        let any = LedgerVerifier::from_spki_pem(&signer.public_key_pem(), "pub.pem").expect("pem");
        assert!(any.verify_note(&note).is_ok());
        let any_other = LedgerVerifier::from_spki_pem(&other.public_key_pem(), "pub.pem").expect("pem");
        assert!(matches!(
            any_other.verify_note(&note),
            Err(NoteError::UnknownKey { .. })
        ));
        // The right key under the wrong expected name.
        assert!(matches!(
            any.clone().with_name("EnochRoot").expect("name").verify_note(&note),
            Err(NoteError::UnknownKey { .. })
        ));
    }

    #[test]
    fn malformed_notes() {
        let note = format!("{PETER_TEXT}\n{PETER_SIG}");
        let verifier = LedgerVerifier::from_verifier_key(PETER_VKEY).expect("vkey");
        for bad in [
            PETER_TEXT.to_owned(),
            format!("{PETER_TEXT}\n"),
            note[..note.len() - 1].to_owned(),
            format!("\x01{note}"),
            format!(
                "{PETER_TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            format!("{note}Unexpected line.\n"),
            format!("{PETER_TEXT}\n{}", PETER_SIG.repeat(101)),
        ] {
            assert!(
                matches!(verifier.verify_note(&bad), Err(NoteError::Malformed { .. })),
                "{bad:?}"
            );
        }
        for body in [
            "",
            "o\n",
            "o\n01\nAAAA\n",
            "o\n1\nAAAA\n",
            "\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        ] {
            assert!(TreeHead::parse(body).is_err(), "{body:?}");
        }
        let ext = format!(
            "{}extension\n",
            TreeHead {
                origin: "o".into(),
                size: 0,
                root: empty_root()
            }
            .body()
        );
        assert_eq!(TreeHead::parse(&ext).expect("extension lines are ignored").size, 0);
        assert!(LedgerSigner::from_seed("has space", [1; 32]).is_err());
        assert!(LedgerSigner::from_seed("a+b", [1; 32]).is_err());
        assert!(peter().sign_note("no newline").is_err());
    }

    #[test]
    fn key_files_are_read_and_never_echoed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let signer = peter();
        let private = signer.key.to_pkcs8_pem(LineEnding::LF).expect("pem");
        let key_path = dir.path().join("ledger.key");
        std::fs::write(&key_path, private.as_bytes()).expect("write");
        let pub_path = dir.path().join("ledger.pub");
        std::fs::write(&pub_path, signer.public_key_pem()).expect("write");

        let read = LedgerSigner::from_pkcs8_pem_file(&key_path, "PeterNeumann").expect("key");
        assert_eq!(read.verifier_key(), PETER_VKEY);
        assert!(!format!("{read:?}").contains(&private[30..60]));
        let verifier = LedgerVerifier::from_spki_pem_file(&pub_path).expect("pub");
        assert!(verifier.verify_note(&read.sign_note("x\n").expect("sign")).is_ok());

        // The halves swapped, garbage, a missing file: errors name the file, not the content.
        let secret_body: String = private.lines().nth(1).expect("body line").to_owned();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWNvbnRlbnQ=\n-----END PRIVATE KEY-----\n",
        )
        .expect("write");
        for (path, result) in [
            (&pub_path, LedgerSigner::from_pkcs8_pem_file(&pub_path, "n").map(|_| ())),
            (&garbage, LedgerSigner::from_pkcs8_pem_file(&garbage, "n").map(|_| ())),
            (&key_path, LedgerVerifier::from_spki_pem_file(&key_path).map(|_| ())),
            (
                &dir.path().join("absent.pem"),
                LedgerSigner::from_pkcs8_pem_file(&dir.path().join("absent.pem"), "n").map(|_| ()),
            ),
        ] {
            let err = result.expect_err("not a key");
            let text = err.to_string();
            assert!(matches!(err, StoreError::InvalidKeyFile { .. }), "{text}");
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(!text.contains(&secret_body) && !text.contains("c2VjcmV0"), "{text}");
        }
    }
}
