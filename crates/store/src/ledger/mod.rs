//! The ledger: a tamper-evident, append-only log of every object written under the logged
//! prefixes.
//!
//! This part: the RFC 6962 Merkle tree its records commit to ([`leaf_hash`], [`node_hash`]),
//! and the [`Frontier`] a record stores so that the next one extends the tree without reading
//! history.

mod merkle;

pub use merkle::{Frontier, MerkleHash, empty_root, leaf_hash, node_hash};
