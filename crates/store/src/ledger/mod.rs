//! The ledger: a tamper-evident, optionally signed, append-only log of every object written
//! under `manifests/`, `meetings/`, `calls/`, `catalog/` and `holds/`, and of every human
//! action (export, holds, disposal, retry), so that the archive can be believed and audited.
//!
//! ```text
//! ledger/<20-digit zero-padded seq>.json        one record per event; create-only; the chain
//! ```
//!
//! # The chain and the tree
//!
//! Each [`LedgerRecord`] names the objects written since the last one (its `leaves`, key and
//! SHA-256 of the bytes as written, in write order), the digest of the previous record's exact
//! bytes (`prev`), and the RFC 6962 Merkle root over every leaf of records `0..=seq` (`root`,
//! `treeSize`; hashing in [`leaf_hash`] and [`node_hash`]). Changing, adding or removing a
//! leaf changes every later root; changing a record breaks the next one's `prev`; removing
//! one leaves a hole in the numbering. With a signing key, each record also carries a
//! [`checkpoint`](LedgerSigner::sign_tree_head): a C2SP signed note over origin, tree size and
//! root, which anyone with the public key can check, with this crate or any C2SP tool.
//!
//! # Appending is cheap
//!
//! A record also stores its tree's [`Frontier`] (`frontier`: the at most 64 roots of the
//! perfect subtrees on the tree's right edge), so the next record extends the tree from the
//! newest record alone and appending never reads history. The head is found once per
//! process, in O(log n) requests (HEAD requests doubling, then bisecting, then one listing
//! from the number found: see [`Archive::ledger_head`](crate::Archive::ledger_head)), and kept in the [`Archive`](crate::Archive). A record
//! is written create-only as `seq + 1`; a writer that loses that race reads the records
//! written since and tries again, so any number of shards and commands append to one linear
//! chain ([`Archive::append_ledger`](crate::Archive::append_ledger)). `frontier` is redundant with the leaves, and checked.
//!
//! # Checking in constant memory
//!
//! [`Archive::read_ledger`](crate::Archive::read_ledger) yields the records in sequence order, fetching them by number
//! (local disk lists in no order); a listing from the first absent number tells a hole from
//! the end. [`LedgerChecker`] consumes them one by one, keeping only the frontier and the
//! previous digest, and reports each [`LedgerFinding`] with the record's key. It hands back
//! each parsed record, so the caller can check the objects the leaves name (modified,
//! deleted unless a `dispose` record explains it, inserted).
//!
//! # Example
//!
//! ```
//! use recarch_store::ledger::{Actor, Leaf, LedgerChecker, LedgerEvent, LedgerSigner};
//! use recarch_store::{Archive, ShardId};
//! use futures::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let archive = Archive::open("memory://", &[])?;
//! let signer = LedgerSigner::from_seed("recarch.example.com/ledger", [7; 32])?; // or from_pkcs8_pem_file
//! let shard = ShardId::new(0, 1);
//! let actor = Actor { user: "svc".into(), host: "pod-1".into(), shard: shard.to_string(), version: "recarch 0.1.0".into() };
//!
//! let key = "manifests/recordings/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d/ab.json".to_owned();
//! let bytes = b"{\"schema\":\"recarch.manifest.v1\"}\n"; // as the manifest was written
//! let leaves = vec![Leaf::of_bytes(key, bytes)?];
//! let record = archive
//!     .append_ledger(LedgerEvent::Run, &actor, leaves, Default::default(), Some(&signer))
//!     .await?;
//! assert_eq!((record.seq, record.tree_size), (0, 1));
//!
//! // Verify: every record in order, in constant memory.
//! let mut checker = LedgerChecker::new(Some(signer.verifier()));
//! let mut items = archive.read_ledger(0);
//! while let Some(item) = items.next().await {
//!     let checked = checker.check(item?);
//!     assert!(checked.findings.is_empty(), "{:?}", checked.findings);
//! }
//! assert_eq!(checker.records(), 1);
//! # Ok(())
//! # }
//! ```

mod chain;
mod check;
mod merkle;
mod note;
mod read;
mod record;

pub(crate) use chain::Tip;
pub use chain::{AppendedRecord, LedgerHead};
pub use check::{Checked, LedgerChecker, LedgerFinding};
pub use merkle::{Frontier, MerkleHash, empty_root, leaf_hash, node_hash};
pub use note::{LedgerSigner, LedgerVerifier, NoteError, TreeHead, read_checkpoint};
pub use read::{LedgerItem, StoredRecord};
pub use record::{Actor, LEDGER_SCHEMA, Leaf, LedgerEvent, LedgerRecord, check_leaf_key, ledger_record_key};
