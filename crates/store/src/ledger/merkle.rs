//! The RFC 6962 Merkle tree over the ledger's leaves, and its [`Frontier`]: the roots of the
//! perfect subtrees along the tree's right edge, which is all it takes to append leaves and
//! compute the root without the leaves themselves.
//!
//! Hashing (RFC 6962 §2.1, SHA-256):
//!
//! ```text
//! leaf     = SHA-256(0x00 || data)            data = key bytes || 0x00 || 32 raw bytes of the object's SHA-256
//! interior = SHA-256(0x01 || left || right)
//! root of the empty tree = SHA-256("")
//! root of n > 1 leaves = interior(root of the first k, root of the other n - k), k the largest power of two < n
//! ```
//!
//! One hasher for the writer and the checker alike: [`leaf_hash`] and [`node_hash`] are the
//! only places the prefixes are applied.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::{Sha256Digest, StoreError};

/// A node of the ledger's Merkle tree: a leaf hash, an interior hash or a root.
///
/// Deliberately not a [`Sha256Digest`] (which names an object by its bytes): the two are
/// both SHA-256 outputs, but a tree hash never names an object. Shown and serialized as 64
/// lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MerkleHash([u8; 32]);

impl MerkleHash {
    /// Wraps raw hash bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 lowercase hex digits.
    ///
    /// # Errors
    /// [`StoreError::InvalidId`] for anything else.
    pub fn from_hex(hex: &str) -> Result<Self, StoreError> {
        // Same canonical form as a digest: reuse its checks.
        Sha256Digest::from_hex(hex)
            .map(|d| Self(*d.as_bytes()))
            .map_err(|_| StoreError::invalid_id("merkle hash", hex, "expected 64 lowercase hex digits"))
    }
}

impl fmt::Display for MerkleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for MerkleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MerkleHash({})", self.to_hex())
    }
}

impl Serialize for MerkleHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for MerkleHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// The RFC 6962 leaf hash of arbitrary leaf data: SHA-256(0x00 || data), for the test
/// vectors, whose leaves are not (key, digest) pairs.
#[cfg(test)]
pub(crate) fn rfc6962_leaf(data: &[u8]) -> MerkleHash {
    MerkleHash(Sha256::new().chain_update([0x00]).chain_update(data).finalize().into())
}

/// The leaf hash of the object at `key` whose bytes hash to `object`:
/// SHA-256(0x00 || key || 0x00 || object's 32 raw bytes).
///
/// The 0x00 after the key cannot be confused with a key byte (layout keys have no NUL), and
/// the digest has a fixed length, so two different (key, digest) pairs never share leaf data.
pub fn leaf_hash(key: &str, object: &Sha256Digest) -> MerkleHash {
    MerkleHash(
        Sha256::new()
            .chain_update([0x00])
            .chain_update(key.as_bytes())
            .chain_update([0x00])
            .chain_update(object.as_bytes())
            .finalize()
            .into(),
    )
}

/// The interior node over `left` and `right`: SHA-256(0x01 || left || right).
pub fn node_hash(left: &MerkleHash, right: &MerkleHash) -> MerkleHash {
    MerkleHash(
        Sha256::new()
            .chain_update([0x01])
            .chain_update(left.0)
            .chain_update(right.0)
            .finalize()
            .into(),
    )
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> MerkleHash {
    MerkleHash(Sha256::digest([]).into())
}

/// Largest tree a stored frontier may describe (2^62 leaves): far beyond any ledger, and far
/// enough from `u64::MAX` that appending to a frontier read from the store never overflows.
const MAX_SIZE: u64 = 1 << 62;

/// The right edge of a Merkle tree of `size` leaves (a compact range starting at leaf 0): one
/// hash per set bit of `size`, the root of each perfect subtree, largest (leftmost) first.
/// That is at most 64 hashes whatever the size, and enough to append leaves and to compute
/// the root ([`Frontier::root`]) without the leaves that came before.
///
/// A ledger record stores its tree's frontier (`frontier` beside `treeSize`), so the next
/// record extends the tree from the head record alone; a checker recomputes it from the
/// leaves and compares.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Frontier {
    /// How many leaves the tree has.
    size: u64,
    /// The perfect subtree roots, largest first; `hashes.len() == size.count_ones()`.
    hashes: Vec<MerkleHash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier as stored: `hashes` are the perfect subtree roots of a tree of `size`
    /// leaves, largest first.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] (naming `what`, e.g. the record's key) when there are not
    /// exactly as many hashes as `size` has bits set.
    pub fn from_parts(what: &str, size: u64, hashes: Vec<MerkleHash>) -> Result<Self, StoreError> {
        if size > MAX_SIZE {
            return Err(StoreError::Rejected {
                key: what.to_owned(),
                reason: format!("a tree of {size} leaves is larger than any ledger can be"),
            });
        }
        if hashes.len() != size.count_ones() as usize {
            return Err(StoreError::Rejected {
                key: what.to_owned(),
                reason: format!(
                    "a frontier of a tree of {size} leaves has {} hashes, not {}",
                    size.count_ones(),
                    hashes.len()
                ),
            });
        }
        Ok(Self { size, hashes })
    }

    /// How many leaves the tree has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtree roots, largest (leftmost) first.
    pub fn hashes(&self) -> &[MerkleHash] {
        &self.hashes
    }

    /// Appends the leaf whose hash is `leaf` ([`leaf_hash`]).
    pub fn push(&mut self, leaf: MerkleHash) {
        // Each trailing set bit of the old size is a perfect subtree as large as what is being
        // carried: merge them, like a binary increment.
        let mut carried = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            // `hashes` has one entry per set bit, so a set bit always has its hash.
            let Some(left) = self.hashes.pop() else { break };
            carried = node_hash(&left, &carried);
            size >>= 1;
        }
        self.hashes.push(carried);
        self.size += 1;
    }

    /// Appends the leaf of the object at `key` with digest `object`.
    pub fn append(&mut self, key: &str, object: &Sha256Digest) {
        self.push(leaf_hash(key, object));
    }

    /// The root of the tree: [`empty_root`] for no leaves, else the subtree roots folded from
    /// the right (RFC 6962's split at the largest power of two, applied recursively).
    pub fn root(&self) -> MerkleHash {
        let mut hashes = self.hashes.iter().rev();
        let Some(last) = hashes.next() else {
            return empty_root();
        };
        hashes.fold(*last, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// RFC 6962's definition, recursively, over leaf hashes: the reference [`Frontier`] must
    /// agree with.
    fn naive_root(leaves: &[MerkleHash]) -> MerkleHash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n);
                node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
            }
        }
    }

    /// The largest power of two strictly below `n` (n ≥ 2), spelled out plainly.
    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("hex")
    }

    fn hash(s: &str) -> MerkleHash {
        MerkleHash::from_hex(s).expect("hash")
    }

    #[test]
    fn split_is_the_largest_power_of_two_below() {
        for n in 2..300 {
            let k = split(n);
            assert!(k < n && 2 * k >= n && k.is_power_of_two(), "{n}");
        }
    }

    /// The RFC 6962 test vectors of transparency-dev/merkle (`testonly/constants.go`): leaf
    /// inputs, and the root of each prefix of them.
    #[test]
    fn rfc6962_vectors() {
        let inputs = [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ];
        let roots = [
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), hash(roots[0]));
        let mut leaves = Vec::new();
        for (input, root) in inputs.iter().zip(&roots[1..]) {
            let leaf = rfc6962_leaf(&unhex(input));
            frontier.push(leaf);
            leaves.push(leaf);
            assert_eq!(frontier.root(), hash(root), "{} leaves", leaves.len());
            assert_eq!(naive_root(&leaves), hash(root), "{} leaves", leaves.len());
        }
        // The compact tree of 7 leaves: subtrees of 4, 2 and 1 (same source).
        let mut seven = Frontier::new();
        for input in &inputs[..7] {
            seven.push(rfc6962_leaf(&unhex(input)));
        }
        assert_eq!(
            seven.hashes(),
            [
                hash("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                hash("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                hash("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            ]
        );
    }

    #[test]
    fn leaf_hash_is_rfc6962_leaf_of_key_nul_digest() {
        let digest = Sha256Digest::of(b"manifest bytes");
        let key = "manifests/recordings/x.json";
        let mut data = key.as_bytes().to_vec();
        data.push(0);
        data.extend_from_slice(digest.as_bytes());
        assert_eq!(leaf_hash(key, &digest), rfc6962_leaf(&data));
        assert_ne!(
            leaf_hash(key, &digest),
            leaf_hash("manifests/recordings/y.json", &digest)
        );
    }

    #[test]
    fn from_parts_checks_the_count() {
        let h = empty_root();
        assert!(Frontier::from_parts("r", 0, vec![]).is_ok());
        assert!(Frontier::from_parts("r", 5, vec![h, h]).is_ok());
        let err = Frontier::from_parts("ledger/x.json", 5, vec![h]).expect_err("5 has two bits");
        assert!(err.to_string().contains("ledger/x.json"), "{err}");
        assert!(Frontier::from_parts("r", 1, vec![]).is_err());
        assert!(Frontier::from_parts("r", u64::MAX, vec![h; 64]).is_err());
    }

    #[test]
    fn hash_hex_round_trip() {
        let h = node_hash(&empty_root(), &empty_root());
        assert_eq!(MerkleHash::from_hex(&h.to_hex()).expect("hex"), h);
        let json = serde_json::to_string(&h).expect("json");
        assert_eq!(serde_json::from_str::<MerkleHash>(&json).expect("back"), h);
        assert!(MerkleHash::from_hex(&h.to_hex().to_uppercase()).is_err());
        assert!(MerkleHash::from_hex("00").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The frontier's root after every append equals the recursive definition, and a
        /// frontier rebuilt from its stored parts carries on identically.
        #[test]
        fn frontier_matches_naive_recursion(n in 0usize..300, seed in any::<u64>(), cut in any::<prop::sample::Index>()) {
            let leaves: Vec<MerkleHash> = (0..n)
                .map(|i| leaf_hash(&format!("manifests/{seed}/{i}.json"), &Sha256Digest::of(&i.to_le_bytes())))
                .collect();
            let cut = if n == 0 { 0 } else { cut.index(n + 1) };
            let mut frontier = Frontier::new();
            prop_assert_eq!(frontier.root(), naive_root(&[]));
            for (i, leaf) in leaves.iter().enumerate() {
                if i == cut {
                    frontier = Frontier::from_parts("stored", frontier.size(), frontier.hashes().to_vec()).expect("stored");
                }
                frontier.push(*leaf);
                prop_assert_eq!(frontier.size(), i as u64 + 1);
                prop_assert_eq!(frontier.hashes().len(), frontier.size().count_ones() as usize);
                prop_assert_eq!(frontier.root(), naive_root(&leaves[..=i]));
            }
            prop_assert_eq!(frontier.root(), naive_root(&leaves));
        }
    }
}
