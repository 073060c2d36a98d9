//! The one local-disk special case: sweeping `LocalFileSystem`'s own upload temporaries.
//!
//! `LocalFileSystem` writes an upload to `<destination>#<n>` and renames it into place
//! when complete. A process killed mid-upload leaves that file behind, and
//! `object_store` listings skip names ending in `#<digits>`, so [`Archive::clean_staging`]
//! cannot see or delete it through the `ObjectStore` API. For archives opened from a
//! `file://` URL it therefore also walks `staging/<shard>/` on disk and removes such
//! files (and directories left empty). Our own keys never contain `#`.
//!
//! [`Archive::clean_staging`]: crate::Archive::clean_staging

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use crate::layout::{STAGING, staging_prefix};
use crate::{ShardId, StoreError};

/// Removes `LocalFileSystem` temporaries under `<root>/staging/<shard>/`; returns how
/// many files were removed.
pub(crate) async fn sweep_staging(root: PathBuf, shard: &ShardId) -> Result<usize, StoreError> {
    let key = staging_prefix(shard);
    let staging = root.join(STAGING);
    let dir = staging.join(shard.as_str());
    let swept = tokio::task::spawn_blocking(move || {
        let removed = sweep_dir(&dir)?;
        // Best effort: drop the emptied areas (fails harmlessly if something is inside).
        let _ = std::fs::remove_dir(&dir);
        let _ = std::fs::remove_dir(&staging);
        Ok::<_, io::Error>(removed)
    })
    .await
    .map_err(|e| StoreError::from_backend(&key, e.into()))?;
    swept.map_err(|e| {
        StoreError::from_backend(
            &key,
            object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            },
        )
    })
}

fn sweep_dir(dir: &Path) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            removed += sweep_dir(&entry.path())?;
            let _ = std::fs::remove_dir(entry.path());
        } else if is_upload_temporary(&entry.file_name()) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(file = %entry.path().display(), "removed an interrupted local upload");
                    removed += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// `LocalFileSystem`'s temporary names: `<name>#<digits>`.
pub(crate) fn is_upload_temporary(name: &OsStr) -> bool {
    name.to_str()
        .and_then(|name| name.rsplit_once('#'))
        .is_some_and(|(_, suffix)| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names() {
        assert!(is_upload_temporary(OsStr::new("abc#1")));
        assert!(is_upload_temporary(OsStr::new("a#b#12")));
        assert!(!is_upload_temporary(OsStr::new("abc#")));
        assert!(!is_upload_temporary(OsStr::new("abc#1x")));
        assert!(!is_upload_temporary(OsStr::new("abc")));
    }
}
