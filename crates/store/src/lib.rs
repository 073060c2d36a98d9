//! The recording archive on object storage: content-addressed blobs, one JSON manifest
//! per recording, per-organizer checkpoints, run reports and shard leases, on local disk,
//! S3 or Azure Blob Storage through [`object_store`].
//!
//! This crate knows nothing about Microsoft Graph or HTTP APIs: it stores bytes under
//! their SHA-256 and JSON documents whose source-specific members are opaque to it.
//!
//! # Layout
//!
//! Under the archive URL's prefix, and nothing else once a run has finished:
//!
//! ```text
//! blobs/sha256/<64 lowercase hex>                  recording bytes, named by their SHA-256; immutable
//! manifests/<kind>/<organizerId>/<key>.json        one per item; <key> = hex SHA-256 of its id
//! meetings/<organizerId>/<key>.json                 one meeting's items; <key> = hex SHA-256 of the meeting id
//! calls/<userId>/<key>.json                        one ad hoc call's items; <key> = hex SHA-256 of the call id
//! catalog/<UTC timestamp>-<shard>-<random>.jsonl   add-only segments: one line per item archived (see CatalogEntry)
//! state/<kind>/<organizerId>.json                  checkpoint (next/delta link, or a window's watermark)
//! state/<kind>/<organizerId>/queue/<key>.json      one per item to retry (see the queue module)
//! state/<kind>/<organizerId>/dead/<key>.json       one per dead letter
//! runs/<UTC timestamp>-<shard>.json                one report per run
//! ledger/<20-digit seq>.json                       the tamper-evident ledger (see the ledger module)
//! state/ledger/<shard>/<time>-<random>.json        a shard's ledger intents in flight
//! locks/<shard>.json                               lease held by a running job
//! state/uploads/<shard>/<hex>-<random>.json        S3: a multipart upload of a blob under way
//! holds/<hex SHA-256 of the matter>/<time>-<random>.json  a legal hold's place or release record
//! state/dispose.json                               the disposals so far (for status)
//! ```
//!
//! `state/`, `locks/` and `runs/` are rewritten; with WORM retention they live in a store of
//! their own ([`Archive::with_state_store`]), and everything else is locked as it is written
//! (the `worm` module).
//!
//! Uploads go to `staging/<shard>/…` first and are moved into `blobs/` once their digest
//! is known; [`Archive::clean_staging`] removes what killed runs left there. Every key is
//! built from validated values ([`OrganizerId`], [`ShardId`], [`Sha256Digest`]) or hashes,
//! never from raw input.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use recarch_store::{
//!     Archive, ContentRef, KIND_CALL_RECORDING, Manifest, ManifestWrite, OrganizerId, ShardId,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let archive = Archive::open("memory://", &[])?; // e.g. "file:///srv/recarch", "s3://bucket/recarch"
//! let report = archive.probe().await?; // fails if the store cannot be written, read, deleted
//! assert!(!report.leases_are_advisory()); // else warn: create-only writes are not honoured
//!
//! let shard = ShardId::new(0, 1);
//! let lease = archive
//!     .acquire_lease(&shard, "example-run", Duration::from_secs(600))
//!     .await?;
//! archive.clean_staging(&shard).await?;
//!
//! // Stream the recording in, then name it by its digest.
//! let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"mp4 bytes"))]);
//! let staged = archive.stage(&shard, body).await?;
//! let (digest, size) = (staged.digest(), staged.size());
//! let blob = archive.commit_blob(staged, &digest).await?;
//! assert!(blob.created);
//!
//! let organizer = OrganizerId::parse("0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d")?;
//! let mut manifest = Manifest::new(
//!     KIND_CALL_RECORDING,
//!     "recording-id-from-the-source",
//!     organizer.clone(),
//!     ContentRef::new(digest, size, "video/mp4"),
//! );
//! manifest.extra.insert("meetingId".into(), "meeting-1".into());
//! assert_eq!(archive.put_manifest(&manifest).await?, ManifestWrite::Created);
//! assert_eq!(archive.put_manifest(&manifest).await?, ManifestWrite::AlreadyExists);
//! assert!(archive.manifest_exists(&organizer, "recording-id-from-the-source").await?);
//!
//! archive.release_lease(lease).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Every fallible operation returns [`StoreError`] ([`StageError`] for [`Archive::stage`],
//! which also carries the body stream's own error). The enum is `#[non_exhaustive]`;
//! each variant names the key, URL or option involved and its message says what to do.
//! Conditions that are normal outcomes are not errors: a missing manifest or state is
//! `Ok(None)`, an existing manifest is [`ManifestWrite::AlreadyExists`], an existing blob
//! is `BlobCommit { created: false, .. }`. Wrapped backend errors are reachable through
//! [`std::error::Error::source`]; print the chain to see them. Errors never contain
//! credentials: URLs are shown without user info and query, option values are never
//! echoed. Nothing in this crate panics on bad data in the archive: unreadable objects
//! surface as [`StoreError::Corrupt`].
//!
//! # Consistency
//!
//! - Blobs are written once. Committing a digest that exists deletes the staged copy and
//!   reports `created: false`; concurrent commits of one digest are safe.
//! - Manifests are create-only ([`object_store::PutMode::Create`]) and only written when
//!   their blob exists with the stated size.
//! - State documents are replaced atomically (readers see the old or the new one).
//! - Backends differ: `LocalFileSystem` supports create-only puts and copies but not
//!   conditional updates ([`object_store::PutMode::Update`]); S3 needs
//!   `aws_copy_if_not_exists` for atomic blob commits (without it, commits fall back to
//!   check-then-copy, which is still safe for content-addressed data); a create-only copy
//!   onto an existing Azure blob may be refused with 409 or 412 (the latter surfaces as
//!   [`object_store::Error::Precondition`]); both count as "already there".
//!   [`Archive::probe`] reports what the store honours ([`ProbeReport`]).
//! - `object_store` has no create-only multipart upload, hence staging: uploads go to a
//!   fresh `staging/` key and are then copied create-only to their blob name and deleted.
//!   S3 parts are at least [`S3_MIN_PART_SIZE`] (except the last).
//! - On S3 a run killed during a multipart upload leaves it incomplete (billed, not listed):
//!   each upload is announced by an intent record under `state/uploads/<shard>/`, and
//!   [`Archive::abort_interrupted_uploads`] aborts what the shard's killed runs left.
//! - Listings are snapshots. Every operation that lists documents and reads them follows one
//!   rule: an object listed, then gone when read (deleted in between), is left out, as if the
//!   listing had been taken a moment later; any other read failure is that object's own.
//!
//! # Typed access only
//!
//! Everything the archive holds is read and written through [`Archive`]'s operations, which
//! keep the layout's keys and rules: leases ([`Archive::leases`]), manifests
//! ([`Archive::manifests_of`], [`Archive::read_manifests`]), meeting indexes
//! ([`Archive::indexes`]), blobs ([`Archive::list_blobs`], [`Archive::hash_blob`]),
//! state, queues and run reports. The raw store behind it is for tests only.
//!
//! # Leases
//!
//! [`Archive::acquire_lease`] creates `locks/<shard>.json` create-only. An unexpired lease
//! held by anyone else yields [`StoreError::LeaseHeld`]; an expired one is taken over with
//! a conditional update on the version read (S3, Azure, in-memory). `LocalFileSystem`
//! cannot update conditionally, so there takeover is re-check, delete, create-only and
//! renewal is re-check, overwrite: two runs taking over the same expired lease at the same
//! instant may both succeed; the loser learns it at its next [`Archive::renew_lease`]
//! ([`StoreError::LeaseLost`]). Renew well within the TTL; leases compare wall clocks, so
//! hosts sharing an archive need synchronised clocks.
//!
//! A lease whose holder is provably gone is taken over without waiting for its TTL, so a
//! killed run does not block the next one: same host name, same kernel boot id and same pid
//! namespace as ours, and its pid no longer running with the recorded start time (checked
//! through `/proc`, so Linux only). Anything else — another host, another pod (every pod's
//! recarch is pid 1, in its own namespace), an older lease without these fields — is trusted
//! until it expires.

mod archive;
mod catalog;
pub mod dispose;
mod document;
mod error;
mod extensions;
pub mod holds;
mod ids;
mod layout;
mod lease;
pub mod ledger;
mod listing;
mod local;
mod meetings;
mod model;
mod multipart;
mod probe;
mod queue;
pub mod routed;
mod spool;
pub mod worm;

pub use archive::{
    Archive, BlobCommit, BlobCopyError, DEFAULT_PART_CONCURRENCY, DEFAULT_PART_SIZE, DEFAULT_SPOOL_MEMORY,
    MAX_SPOOL_MEMORY, ManifestRead, ManifestWrite, RunReportRef, S3_MIN_PART_SIZE, SPOOL_PART_SIZE, Staged,
    StoredManifest, redact_url,
};
pub use catalog::{
    CATALOG_METADATA_SHA256, CatalogEntry, CatalogLine, DisposalMarker, catalog_segment_lines, is_catalog_segment,
};
pub use error::{StageError, StoreError, free_space, human_bytes, is_storage_full};
pub use extensions::{Encryption, IncompleteUpload};
pub use holds::{HOLD_SCHEMA, HoldAction, HoldRecord, Matter, StoredHold};
pub use ids::{OrganizerId, Sha256Digest, ShardId};
pub use layout::{Container, Kind, MANIFEST_SOURCE, SOURCE_ADHOC_CALL, blob_key, item_key};
pub use lease::{LEASE_SCHEMA, Lease, LeaseHolder, LeaseRecord, hostname};
pub use meetings::{
    CALL_SCHEMA, IndexNames, MEETING_SCHEMA, MeetingEntry, MeetingIndex, MeetingPair, index_key, meeting_key,
};
pub use model::{
    Checkpoint, ContentRef, DEAD_LETTER_SCHEMA, DIRECTORY_SCHEMA, DeadLetter, DirectoryEntry, DirectoryState,
    KIND_CALL_RECORDING, LinkKind, MANIFEST_SCHEMA, Manifest, NAMES_PENDING_MAX, NamesPending, ORGANIZER_SOURCE,
    OrganizerState, QUEUED_SCHEMA, QueuedItem, STATE_SCHEMA, ShardStatus, SourceState, VERSIONS,
};
pub use probe::ProbeReport;
pub use queue::StateOverview;
pub use recarch_failure::FailureClass;
pub use worm::{LockMode, LockState, LockStats, ObjectLock, WormPolicy, WormSupport};

/// Re-export of the `object_store` crate this one is built on, for [`Archive::from_store`].
pub use object_store;
