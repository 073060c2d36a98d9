//! Validated identifiers that become parts of object keys.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// A SHA-256 digest: the name of a blob.
///
/// Displayed, debugged and serialized as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses exactly 64 lowercase hex digits.
    ///
    /// # Errors
    /// [`StoreError::InvalidId`] for anything else (uppercase included: blob names are
    /// canonical).
    pub fn from_hex(hex: &str) -> Result<Self, StoreError> {
        if hex.len() != 64 {
            return Err(StoreError::invalid_id(
                "sha256 digest",
                hex,
                format!("expected 64 lowercase hex digits, got {} bytes", hex.len()),
            ));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(StoreError::invalid_id(
                "sha256 digest",
                hex,
                "expected only lowercase hex digits 0-9a-f",
            ));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).map_err(|e| StoreError::invalid_id("sha256 digest", hex, e.to_string()))?;
        Ok(Self(out))
    }

    /// Hashes `data` in one go.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

impl FromStr for Sha256Digest {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// The Entra ID object id of a meeting organizer: a GUID, stored lowercase.
///
/// Only a valid GUID can ever become part of an object key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrganizerId(String);

impl OrganizerId {
    /// Parses a GUID in the `8-4-4-4-12` hex form, any case; it is stored lowercase.
    ///
    /// # Errors
    /// [`StoreError::InvalidId`] if `value` is not such a GUID (braces are not accepted).
    pub fn parse(value: &str) -> Result<Self, StoreError> {
        const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
        let mut parts = value.split('-');
        let well_formed = GROUPS.iter().all(|&len| {
            parts
                .next()
                .is_some_and(|p| p.len() == len && p.bytes().all(|b| b.is_ascii_hexdigit()))
        }) && parts.next().is_none();
        if !well_formed {
            return Err(StoreError::invalid_id(
                "organizer id",
                value,
                "expected a GUID like 01234567-89ab-cdef-0123-456789abcdef",
            ));
        }
        Ok(Self(value.to_ascii_lowercase()))
    }

    /// The lowercase GUID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrganizerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OrganizerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrganizerId({})", self.0)
    }
}

impl FromStr for OrganizerId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for OrganizerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for OrganizerId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrganizerId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The name of a shard of the organizer set: `[a-z0-9-]`, 1 to 64 characters.
///
/// Names the lease (`locks/<shard>.json`), the staging area and run reports.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(String);

impl ShardId {
    /// The shard `index` of `count`, named `<index>-of-<count>` (e.g. `0-of-1`).
    ///
    /// Does not check `index < count`; that is the scheduler's business.
    pub fn new(index: u32, count: u32) -> Self {
        Self(format!("{index}-of-{count}"))
    }

    /// Accepts any name made of `[a-z0-9-]`, 1 to 64 characters.
    ///
    /// # Errors
    /// [`StoreError::InvalidId`] otherwise.
    pub fn parse(value: &str) -> Result<Self, StoreError> {
        if value.is_empty() || value.len() > 64 {
            return Err(StoreError::invalid_id("shard id", value, "expected 1 to 64 characters"));
        }
        if !value.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-')) {
            return Err(StoreError::invalid_id(
                "shard id",
                value,
                "expected only lowercase letters, digits and '-'",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShardId({})", self.0)
    }
}

impl FromStr for ShardId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ShardId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ShardId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_hex_roundtrip_and_rejections() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256Digest::from_hex(&d.to_hex()).ok(), Some(d));
        assert_eq!(format!("{d}"), d.to_hex());
        assert!(format!("{d:?}").contains(&d.to_hex()));
        assert!(Sha256Digest::from_hex(&d.to_hex().to_uppercase()).is_err());
        assert!(Sha256Digest::from_hex(&d.to_hex()[1..]).is_err());
        assert!(Sha256Digest::from_hex(&format!("{}0", d.to_hex())).is_err());
        assert!(Sha256Digest::from_hex(&"g".repeat(64)).is_err());
        // Multi-byte characters with the right byte length are rejected, not panicked on.
        assert!(Sha256Digest::from_hex(&"é".repeat(32)).is_err());
    }

    #[test]
    fn digest_serde_is_hex_string() {
        let d = Sha256Digest::from_bytes([0xab; 32]);
        let json = serde_json::to_string(&d).expect("serialize");
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        let back: Sha256Digest = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Sha256Digest>("\"ab\"").is_err());
    }

    #[test]
    fn organizer_id_validation() {
        let id = OrganizerId::parse("0123ABCD-89ab-CDEF-0123-456789ABCDEF").expect("valid");
        assert_eq!(id.as_str(), "0123abcd-89ab-cdef-0123-456789abcdef");
        for bad in [
            "",
            "..",
            "../../etc",
            "0123abcd-89ab-cdef-0123-456789abcdef/",
            "{0123abcd-89ab-cdef-0123-456789abcdef}",
            "0123abcd-89ab-cdef-0123-456789abcde",
            "0123abcd-89ab-cdef-0123-456789abcdef-00",
            "0123abcd_89ab_cdef_0123_456789abcdef",
            "0123abcg-89ab-cdef-0123-456789abcdef",
        ] {
            assert!(OrganizerId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(serde_json::from_str::<OrganizerId>("\"../x\"").is_err());
        let back: OrganizerId = serde_json::from_str("\"0123ABCD-89ab-cdef-0123-456789abcdef\"").expect("valid");
        assert_eq!(back, id);
    }

    #[test]
    fn shard_id_validation() {
        assert_eq!(ShardId::new(0, 1).as_str(), "0-of-1");
        assert!(ShardId::parse("0of1").is_ok());
        assert!(ShardId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "A", "a/b", "..", "a_b", "a.b", &"a".repeat(65)] {
            assert!(ShardId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
