//! [`Backend`]: how an archive writes a blob, one strategy per kind of store.
//!
//! A blob's name is its digest, known only once every byte has streamed through, so every
//! strategy first puts the bytes somewhere under a temporary name and then gives them their
//! blob name. Where and how differs, and every write-path decision ([`Archive::stage`],
//! [`Archive::commit_blob`], [`Archive::clean_staging`], [`Archive::reclaim`]) is one `match`
//! on this enum rather than a test of optional fields.
//!
//! [`Archive::stage`]: crate::Archive::stage
//! [`Archive::commit_blob`]: crate::Archive::commit_blob
//! [`Archive::clean_staging`]: crate::Archive::clean_staging
//! [`Archive::reclaim`]: crate::Archive::reclaim

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::spool::MemoryBudget;

use crate::layout;
use crate::spool::Durability;

/// How blobs are written (see the module docs).
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// Local disk (`file://`), **stage and link**: a body is written to a file under
    /// `<root>/staging/<shard>/`, fsynced, and hard-linked to its blob name (the `local`
    /// module). `root` is also where the temporaries `LocalFileSystem` leaves behind when a
    /// process is killed mid-write are swept from, and where emptied directories are removed
    /// by hand.
    Local {
        /// The archive's directory.
        root: PathBuf,
    },
    /// S3 and Azure, **spooled upload**: a body is held in memory while the archive's
    /// memory budget has room for it, else written to a local spool file under `dir`, while
    /// it is hashed; then it is uploaded once under its blob name (the `spool` module).
    Spooled {
        /// The spool directory of this archive (per shard below it).
        dir: PathBuf,
        /// The bytes of bodies that may be held in memory at once, shared by the downloads
        /// (`None`: every body goes to a file).
        memory: Option<Arc<MemoryBudget>>,
    },
    /// In memory, and stores handed to [`Archive::from_store`](crate::Archive::from_store),
    /// **multipart upload in the store**: a body is uploaded in parts to a fresh key under
    /// `staging/<shard>/`, and moved to its blob name by a create-only rename.
    Multipart,
}

impl Backend {
    /// The archive's directory on local disk.
    pub(crate) fn local_root(&self) -> Option<&Path> {
        match self {
            Backend::Local { root } => Some(root),
            Backend::Spooled { .. } | Backend::Multipart => None,
        }
    }

    /// The spool directory of a spooled backend.
    pub(crate) fn spool_dir(&self) -> Option<&Path> {
        match self {
            Backend::Spooled { dir, .. } => Some(dir),
            Backend::Local { .. } | Backend::Multipart => None,
        }
    }

    /// Where [`crate::spool::spool`] writes a body, whether it fsyncs it, and the memory
    /// budget it may hold bodies in instead: under the local archive's staging area (the
    /// file becomes the blob; never in memory), or in the spool directory (the file is only
    /// read back); `None` when bodies go to the store itself.
    pub(crate) fn spool_target(&self) -> Option<(PathBuf, Durability, Option<&Arc<MemoryBudget>>)> {
        match self {
            Backend::Local { root } => Some((root.join(layout::STAGING), Durability::Sync, None)),
            Backend::Spooled { dir, memory } => Some((dir.clone(), Durability::Scratch, memory.as_ref())),
            Backend::Multipart => None,
        }
    }

    /// See [`Archive::staged_uploads_per_download`](crate::Archive::staged_uploads_per_download):
    /// finishing a blob on local disk is waiting for fsync, elsewhere sending buffered parts.
    pub(crate) fn staged_uploads_per_download(&self) -> usize {
        match self {
            Backend::Local { .. } => 2,
            Backend::Spooled { .. } | Backend::Multipart => 1,
        }
    }
}
