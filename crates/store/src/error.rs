//! Errors of the archive store.

use chrono::{DateTime, Utc};

/// Everything that can go wrong talking to the archive.
///
/// Every variant names the object key (relative to the archive root), the URL or the
/// option involved, and its message says what the caller can do about it. Wrapped
/// backend errors are exposed through [`std::error::Error::source`] only (print the
/// chain, e.g. with `{:#}` in `anyhow`, to see them); [`StoreError::Unreachable`] is the
/// exception: it is what an operator sees first when the store is misconfigured, so its
/// message carries the backend's text itself. No variant ever carries a credential.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL (or one of its parts) cannot be used.
    #[error("invalid store url {url}: {reason}")]
    InvalidUrl {
        /// The URL, with credentials and query stripped.
        url: String,
        /// What is wrong with it and what is accepted instead.
        reason: String,
    },

    /// A store option key is unknown to the backend or its value is unusable.
    #[error("invalid store option {key}: {reason}")]
    InvalidOption {
        /// The option key (never its value, which may be a secret).
        key: String,
        /// What is wrong.
        reason: String,
    },

    /// A value that becomes part of an object key (organizer id, shard id, digest) is
    /// malformed; nothing was read or written.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidId {
        /// What kind of identifier it was meant to be.
        kind: &'static str,
        /// The offending value (truncated to a sane length).
        value: String,
        /// What is expected.
        reason: String,
    },

    /// A key file (the ledger's signing or public key) cannot be read or holds no key of
    /// the expected kind. Never carries any of the file's content.
    #[error("cannot use the key file {path}: {reason}")]
    InvalidKeyFile {
        /// The file, as given.
        path: String,
        /// What is wrong and how to make a good one.
        reason: String,
    },

    /// The archive failed the write/read/delete probe; check the URL, network,
    /// credentials and permissions.
    #[error("cannot use the archive at {url}: {reason}")]
    Unreachable {
        /// The archive URL, with credentials and query stripped.
        url: String,
        /// Which probe step failed and the backend's message.
        reason: String,
    },

    /// The backend refused the credentials or the operation; check credentials and the
    /// permissions granted on the bucket/container/directory.
    #[error("permission denied on {key}: check the store credentials and their permissions")]
    PermissionDenied {
        /// The object key.
        key: String,
        /// The backend error.
        #[source]
        source: object_store::Error,
    },

    /// The object does not exist.
    #[error("{key} does not exist")]
    NotFound {
        /// The object key.
        key: String,
    },

    /// The object already exists and the operation was create-only.
    #[error("{key} already exists")]
    AlreadyExists {
        /// The object key.
        key: String,
    },

    /// The object changed since it was read (a conditional write lost a race); re-read
    /// and retry.
    #[error("{key} was changed concurrently; re-read it and retry")]
    Precondition {
        /// The object key.
        key: String,
    },

    /// The backend does not support an operation this crate needs; for S3 this usually
    /// means a conditional-write option (`aws_conditional_put`, `aws_copy_if_not_exists`)
    /// must be configured.
    #[error("the store does not support an operation needed on {key}")]
    Unsupported {
        /// The object key.
        key: String,
        /// The backend error.
        #[source]
        source: object_store::Error,
    },

    /// An object in the archive is not what the layout says it should be. The object is
    /// left untouched; inspect it, and delete or repair it by hand.
    #[error("corrupt object {key}: {reason}")]
    Corrupt {
        /// The object key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The bytes staged for a blob do not hash to the digest it was to be stored under;
    /// the staged copy was discarded. Fetch the recording again.
    #[error("staged bytes hash to {actual}, not {expected}; not stored as {key}")]
    DigestMismatch {
        /// The blob key the caller asked for.
        key: String,
        /// The digest the caller passed.
        expected: String,
        /// The digest of the staged bytes.
        actual: String,
    },

    /// A manifest or state document was refused before writing; fix the caller.
    #[error("refusing to write {key}: {reason}")]
    Rejected {
        /// The object key it would have been written to.
        key: String,
        /// Why it was refused.
        reason: String,
    },

    /// Another run holds the shard's lease; wait for it to finish or for the lease to
    /// expire.
    #[error("shard {shard} is leased by {owner} until {expires_at}; wait for that run or for the lease to expire")]
    LeaseHeld {
        /// The shard.
        shard: String,
        /// Owner recorded in the lease.
        owner: String,
        /// When the lease expires unless renewed.
        expires_at: DateTime<Utc>,
    },

    /// The lease was taken over by another run (or removed) since it was acquired; stop
    /// writing for this shard.
    #[error("lost the lease on shard {shard}: another run took it over; stop work on this shard")]
    LeaseLost {
        /// The shard.
        shard: String,
    },

    /// The disk (or the user's quota) that holds `path` is full (ENOSPC, EDQUOT): nothing can
    /// be written there until space is freed. The environment's fault, never an item's: stop
    /// starting work, and do not download the same bytes again into the same full disk.
    #[error("no space left on {path}{}", free_note(*.free))]
    StorageFull {
        /// The directory (spool, local archive) or, when only that is known, the object key.
        path: String,
        /// Bytes still available there to this process, when it could be measured.
        free: Option<u64>,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Any other backend failure (network, I/O, throttling after retries); usually
    /// transient: retry later.
    #[error("store operation on {key} failed")]
    Backend {
        /// The object key (or prefix) involved.
        key: String,
        /// The backend error.
        #[source]
        source: object_store::Error,
    },
}

impl StoreError {
    /// The failure class, for an operation on one item's objects (its blob, manifest, queue
    /// entry): a backend failure (network, throttling after `object_store`'s own retries) or
    /// a lost conditional write is transient; the store refusing this object (permission,
    /// corrupt or mismatching data, a rejected document, a name taken by something else) is
    /// permanent; an unusable store as a whole (bad URL or option, unreachable at the probe,
    /// a lease in other hands, a full disk) is fatal.
    pub fn class(&self) -> recarch_failure::FailureClass {
        use recarch_failure::FailureClass;
        match self {
            StoreError::Backend { .. } | StoreError::Precondition { .. } => FailureClass::Transient,
            StoreError::InvalidUrl { .. }
            | StoreError::InvalidOption { .. }
            | StoreError::Unreachable { .. }
            | StoreError::LeaseHeld { .. }
            | StoreError::LeaseLost { .. }
            | StoreError::InvalidKeyFile { .. }
            | StoreError::StorageFull { .. } => FailureClass::Fatal,
            StoreError::PermissionDenied { .. }
            | StoreError::NotFound { .. }
            | StoreError::AlreadyExists { .. }
            | StoreError::Unsupported { .. }
            | StoreError::Corrupt { .. }
            | StoreError::DigestMismatch { .. }
            | StoreError::Rejected { .. }
            | StoreError::InvalidId { .. } => FailureClass::Permanent,
        }
    }

    /// The disk is full: where, and how much is still free there (see
    /// [`StoreError::StorageFull`]).
    pub fn storage_full(&self) -> Option<(&str, Option<u64>)> {
        match self {
            StoreError::StorageFull { path, free, .. } => Some((path, *free)),
            _ => None,
        }
    }

    /// A full disk under `dir` (see [`is_storage_full`]), with the space still free there.
    pub(crate) fn disk_full(dir: &std::path::Path, source: std::io::Error) -> Self {
        Self::StorageFull {
            path: dir.display().to_string(),
            free: free_space(dir),
            source,
        }
    }

    /// Maps an `object_store` error on `key` to the matching variant.
    pub(crate) fn from_backend(key: impl Into<String>, source: object_store::Error) -> Self {
        let key = key.into();
        // A local write that met a full disk, wherever the backend wrapped its I/O error.
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&source);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if is_storage_full(io) {
                    return Self::StorageFull {
                        path: key,
                        free: None,
                        source: std::io::Error::new(io.kind(), io.to_string()),
                    };
                }
            }
            cause = e.source();
        }
        match source {
            object_store::Error::NotFound { .. } => Self::NotFound { key },
            object_store::Error::AlreadyExists { .. } => Self::AlreadyExists { key },
            object_store::Error::Precondition { .. } => Self::Precondition { key },
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                Self::PermissionDenied { key, source }
            }
            object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. } => {
                Self::Unsupported { key, source }
            }
            source => Self::Backend { key, source },
        }
    }

    pub(crate) fn corrupt(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            key: key.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_id(kind: &'static str, value: &str, reason: impl Into<String>) -> Self {
        const MAX: usize = 80;
        let value = if value.chars().count() > MAX {
            let mut v: String = value.chars().take(MAX).collect();
            v.push('…');
            v
        } else {
            value.to_owned()
        };
        Self::InvalidId {
            kind,
            value,
            reason: reason.into(),
        }
    }
}

/// Whether an I/O error says the disk or the quota is full (ENOSPC, EDQUOT).
pub fn is_storage_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Bytes available to an unprivileged writer on the file system that holds `dir` (the
/// nearest existing ancestor, if `dir` itself is not there yet).
pub fn free_space(dir: &std::path::Path) -> Option<u64> {
    let existing = dir.ancestors().find(|d| d.exists())?;
    let stat = rustix::fs::statvfs(existing).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// ` (412 MiB free)`, or nothing when unknown.
fn free_note(free: Option<u64>) -> String {
    free.map(|f| format!(" ({} free)", human_bytes(f))).unwrap_or_default()
}

/// `412 MiB`, `2.1 GiB`: a byte count as an operator reads it.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} bytes"),
        _ if value < 10.0 => format!("{value:.1} {}", UNITS[unit]),
        _ => format!("{value:.0} {}", UNITS[unit]),
    }
}

/// Error of [`Archive::stage`](crate::Archive::stage): either the caller's body stream
/// failed or the store did. In both cases the partial upload was aborted.
///
/// Deliberately exhaustive: callers match both arms to decide whom to blame.
#[derive(Debug, thiserror::Error)]
pub enum StageError<E> {
    /// The body stream yielded an error; nothing was stored.
    #[error("the body stream failed while staging")]
    Body(#[source] E),
    /// The store failed; nothing was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}
