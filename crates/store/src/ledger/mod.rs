//! The ledger: a tamper-evident, append-only log of every object written under the logged
//! prefixes.
//!
//! So far: the RFC 6962 Merkle tree its records commit to ([`leaf_hash`], [`node_hash`]), the
//! [`Frontier`] a record stores so that the next one extends the tree without reading
//! history, the [`LedgerRecord`] itself, and its signed checkpoint ([`LedgerSigner`],
//! [`LedgerVerifier`]).

mod merkle;
mod note;
mod record;

pub use merkle::{Frontier, MerkleHash, empty_root, leaf_hash, node_hash};
pub use note::{LedgerSigner, LedgerVerifier, NoteError, TreeHead, read_checkpoint};
pub use record::{Actor, LEDGER_SCHEMA, Leaf, LedgerEvent, LedgerRecord, check_leaf_key, ledger_record_key};
