//! The ledger: a tamper-evident, optionally signed, append-only log of every object written
//! under `manifests/`, `meetings/`, `calls/`, `catalog/` and `holds/`, and of every human
//! action (export, holds, disposal, retry), so that the archive can be believed and audited.
//!
//! ```text
//! ledger/<20-digit zero-padded seq>.json        one record per event; create-only; the chain
//! state/ledger/<shard>/<time>-<random>.json     intents of a shard's run in progress (mutable)
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
//! The signature covers the tree head, so every leaf up to that record; a record's other
//! members (event, actor, details) are covered by the next record's `prev`. The newest
//! record's own details are therefore only as safe as the store until another record follows
//! it (or its digest is kept elsewhere, e.g. in an export's custody file).
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
//! # Nothing written goes unlogged: intents and recovery
//!
//! A run logs its writes at least once per page. A run killed between writing a page's
//! objects and logging them must not lose those leaves, and the cost per archived item must
//! stay small. The design:
//!
//! 1. **Intent, one small PUT per page, before the page's writes.** The run calls
//!    [`Archive::ledger_intend`](crate::Archive::ledger_intend) with every key the page may write (manifest keys and meeting
//!    index keys are known from the items' ids before anything is fetched). It writes
//!    `state/ledger/<shard>/<time>-<random>.json` with those keys and the ledger's next record
//!    number as this process knows it (a lower bound for the record that will log them). No
//!    read: the head is remembered.
//! 2. **The page's objects are written**, the caller keeping each one's key and the SHA-256
//!    of the bytes it wrote, in order.
//! 3. **Log, one record per page.** [`Archive::append_ledger`](crate::Archive::append_ledger) appends the `run` record with those
//!    leaves, then [`Archive::ledger_settle`](crate::Archive::ledger_settle) deletes the page's intent (a DELETE, cheap; if it fails, recovery finds
//!    the keys already logged). Intents are separate documents, never rewritten, so pages in
//!    flight at once each have their own and nothing is read-modify-written.
//! 4. **Recovery, first thing in the next run of the shard** (holding its lease):
//!    [`Archive::recover_ledger`](crate::Archive::recover_ledger) lists the shard's intents (usually none: one request).
//!    For each key they name, it reads the object; one that exists, was last modified after
//!    its intent (both times from the store's own clock, so no clock skew between hosts),
//!    and whose digest no record since the intent's number logs under that key, becomes a
//!    leaf of one `recover` record. It hands back every key written after its intent
//!    (logged now or earlier) and leaves the intents in place: the caller does what follows
//!    from those keys (the binary catalogs the manifests among them), then settles the
//!    intents, so that a run killed in between finds them again. (Stores that keep
//!    modification times in whole seconds make an object written just before an intent look
//!    written after it, so the records of the few seconds before the oldest intent are read
//!    too: an object they logged is not logged again.)
//!
//! A kill at any instant therefore loses no leaf: before the intent, nothing was written;
//! after it and before the record, recovery finds what was written; after the record and
//! before the intent's deletion, recovery finds it all logged. What an intent cannot bring
//! back is an *intermediate* version of a document rewritten twice within one unlogged page
//! (a meeting index gaining two entries): only the version present at recovery is logged.
//! Per page the cost is one small PUT and one DELETE besides the record itself.
//!
//! Intents live under `state/` because they are rewritten and deleted: with WORM retention
//! they belong with the other mutable state, never in the locked bucket.
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
//! // First thing in a run: log what a killed run of the shard left unlogged.
//! assert!(archive.recover_ledger(&shard, &actor, Some(&signer)).await?.is_none());
//!
//! // Per page: intent, writes, record.
//! let key = "manifests/recordings/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d/ab.json".to_owned();
//! let intent = archive.ledger_intend(&shard, vec![key.clone()]).await?;
//! let bytes = b"{\"schema\":\"recarch.manifest.v1\"}\n"; // as the manifest was written
//! let leaves = vec![Leaf::of_bytes(key, bytes)?];
//! let record = archive
//!     .append_ledger(LedgerEvent::Run, &actor, leaves, Default::default(), Some(&signer))
//!     .await?;
//! archive.ledger_settle(vec![intent]).await;
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
mod pending;
mod read;
mod record;

pub(crate) use chain::Tip;
pub use chain::{AppendedRecord, LedgerHead};
pub use check::{Checked, LedgerChecker, LedgerFinding};
pub use merkle::{Frontier, MerkleHash, empty_root, leaf_hash, node_hash};
pub use note::{LedgerSigner, LedgerVerifier, NoteError, TreeHead, read_checkpoint};
pub use pending::{LEDGER_INTENT_SCHEMA, LedgerIntent, Recovery};
pub use read::{LedgerItem, StoredRecord};
pub use record::{Actor, LEDGER_SCHEMA, Leaf, LedgerEvent, LedgerRecord, check_leaf_key, ledger_record_key};
