//! The local-disk special cases: committing a blob by a hard link, and sweeping
//! `LocalFileSystem`'s own upload temporaries.
//!
//! A blob is written (hashed, fsynced) to a file under `<root>/staging/<shard>/` and becomes
//! `blobs/sha256/<hex>` by a hard link: create-only (an existing blob is never replaced), and
//! durable once the blob directory is fsynced. The staging name is then unlinked; a killed
//! process leaves it for [`Archive::clean_staging`], which lists it like any object.
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

/// What [`link_blob`] found at the blob's name.
pub(crate) enum Linked {
    /// The staged file is now the blob.
    Created,
    /// A blob of that name existed already, of `size` bytes (the caller checks it).
    Existed { size: u64 },
}

/// Makes the (fsynced) file `staged` the blob `key` under `root` by a hard link, then
/// fsyncs the blob's directory (and any directory it had to create) and removes the staging
/// name, also when a blob of that name existed already.
pub(crate) async fn link_blob(root: &Path, staged: &Path, key: &str) -> Result<Linked, StoreError> {
    let target = root.join(key);
    let staged = staged.to_path_buf();
    blocking(key, move || {
        if let Some(dir) = target.parent() {
            create_dirs_durably(dir)?;
        }
        let linked = match std::fs::hard_link(&staged, &target) {
            Ok(()) => {
                if let Some(dir) = target.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                Linked::Created
            }
            // Its size from the same blocking call, not one more request.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Linked::Existed {
                size: std::fs::metadata(&target)?.len(),
            },
            Err(e) => return Err(e),
        };
        if let Err(e) = std::fs::remove_file(&staged) {
            tracing::warn!(file = %staged.display(), error = %e, "cannot remove a staged file; the next run of the shard will");
        }
        Ok(linked)
    })
    .await
}

/// Creates `dir` and its missing ancestors, fsyncing the parent of each directory created
/// so that the new entries survive a crash.
fn create_dirs_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

/// Removes `LocalFileSystem` temporaries under `<root>/staging/<shard>/`; returns how
/// many files were removed.
pub(crate) async fn sweep_staging(root: PathBuf, shard: &ShardId) -> Result<usize, StoreError> {
    let key = staging_prefix(shard);
    let staging = root.join(STAGING);
    let dir = root.join(&key);
    blocking(&key, move || {
        let removed = sweep_dir(&dir)?;
        // Best effort: drop the emptied areas (fails harmlessly if something is inside).
        let _ = std::fs::remove_dir(&dir);
        let _ = std::fs::remove_dir(&staging);
        Ok(removed)
    })
    .await
}

fn sweep_dir(dir: &Path) -> io::Result<usize> {
    let Some(entries) = read_dir_if_exists(dir)? else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            removed += sweep_dir(&entry.path())?;
            let _ = std::fs::remove_dir(entry.path());
        } else if is_upload_temporary(&entry.file_name()) {
            removed += usize::from(remove_temporary(&entry.path())?);
        }
    }
    Ok(removed)
}

/// Organizers whose directories one blocking task sweeps: only the paths of one batch exist at
/// once, whatever the number of organizers (all of them at once cost ~1.8 KiB per organizer:
/// 18 MiB of paths for 10 000).
const SWEEP_BATCH: usize = 256;

/// Removes `LocalFileSystem` temporaries of writes that belong to `shard` and its
/// `organizers` outside staging: interrupted state, manifest, meeting index, run report and
/// lease writes.
/// Temporaries of other shards are left alone, as their runs may be writing them right now.
pub(crate) async fn sweep_interrupted_writes(
    root: PathBuf,
    shard: &ShardId,
    organizers: &[crate::OrganizerId],
) -> Result<usize, StoreError> {
    use crate::layout::{self, ItemList, RUNS, STATES};
    let directory_dir = file_of(&root, &layout::directory_key(shard)).0;
    let (shards_dir, shard_status) = file_of(&root, &layout::shard_status_key(shard));
    let (locks, lease_name) = file_of(&root, &layout::lease_key(shard));
    let runs = root.join(RUNS);
    // The ledger intents of this shard, its catalog segments, and records nobody finished.
    let intents = root.join(format!("{}/{shard}", layout::LEDGER_INTENTS));
    let catalog = root.join(layout::CATALOG);
    let records = root.join(layout::LEDGER);
    let segment_of_ours = {
        let marker = format!("-{shard}");
        move |name: &str| {
            name.strip_suffix(".jsonl")
                .and_then(|stem| stem.rsplit_once('-'))
                .is_some_and(|(rest, _)| rest.ends_with(&marker))
        }
    };
    let ours_report = {
        let shard = shard.clone();
        move |name: &str| layout::parse_run_report_key(&format!("{RUNS}/{name}")).is_some_and(|(_, of, _)| of == shard)
    };
    // Every kind's checkpoints sit side by side in one directory: its temporaries are listed
    // once, and those of this shard's organizers removed.
    let state_dirs: Vec<(crate::Kind, PathBuf)> = crate::Kind::ALL
        .into_iter()
        .map(|k| (k, root.join(layout::state_prefix(k))))
        .collect();
    let (mut removed, checkpoints) = blocking(STATES, move || {
        let mut removed = sweep_flat(&directory_dir, |_| true)?;
        removed += sweep_flat(&runs, ours_report)?;
        removed += sweep_flat(&intents, |_| true)?;
        removed += sweep_flat(&catalog, segment_of_ours)?;
        removed += sweep_stale(&records, STALE_RECORD_WRITE)?;
        removed += sweep_flat(&locks, |name| name == lease_name)?;
        removed += sweep_flat(&shards_dir, |name| name == shard_status)?;
        let mut checkpoints = Vec::new();
        for (kind, dir) in &state_dirs {
            let mut found = Vec::new();
            list_temporaries(dir, &mut found)?;
            checkpoints.extend(found.into_iter().map(|(file, name)| (*kind, file, name)));
        }
        Ok((removed, checkpoints))
    })
    .await?;
    let ours: Vec<PathBuf> = checkpoints
        .into_iter()
        .filter(|(kind, _, name)| {
            let key = format!("{}/{name}", layout::state_prefix(*kind));
            matches!(layout::parse_state_key(*kind, &key), Some((o, None)) if organizers.contains(&o))
        })
        .map(|(_, file, _)| file)
        .collect();
    if !ours.is_empty() {
        removed += blocking(STATES, move || {
            let mut removed = 0;
            for file in &ours {
                removed += usize::from(remove_temporary(file)?);
            }
            Ok(removed)
        })
        .await?;
    }
    // Each organizer's queue entries, dead letters, manifests and meeting and call indexes, a batch at a
    // time.
    for batch in organizers.chunks(SWEEP_BATCH) {
        let batch = batch.to_vec();
        let root = root.clone();
        removed += blocking(STATES, move || {
            let mut removed = 0;
            for o in &batch {
                for kind in crate::Kind::ALL {
                    for list in [ItemList::Queue, ItemList::Dead] {
                        removed += sweep_flat(&root.join(layout::item_list_prefix(kind, o, list)), |_| true)?;
                    }
                    removed += sweep_flat(&root.join(layout::manifest_prefix(kind, o)), |_| true)?;
                }
                for container in layout::Container::ALL {
                    removed += sweep_flat(&root.join(layout::index_prefix(container, o)), |_| true)?;
                }
            }
            Ok(removed)
        })
        .await?;
    }
    Ok(removed)
}

/// The directory under `root` of the file that holds `key`, and the file's name.
fn file_of(root: &Path, key: &str) -> (PathBuf, String) {
    let (dir, name) = key.rsplit_once('/').unwrap_or(("", key));
    (root.join(dir), name.to_owned())
}

/// Runs `f` on a blocking thread; its I/O error is a store error naming `what` (a key or
/// prefix).
pub(crate) async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::from_backend(what, e.into()))?
        .map_err(|e| io_error(what, e))
}

/// An I/O error of the local archive's file system, as a store error naming `what` (a key,
/// prefix or path).
pub(crate) fn io_error(what: impl Into<String>, e: io::Error) -> StoreError {
    StoreError::from_backend(
        what,
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        },
    )
}

/// The upload temporaries directly in `dir`, with their destination names.
fn list_temporaries(dir: &Path, out: &mut Vec<(PathBuf, String)>) -> io::Result<()> {
    let Some(entries) = read_dir_if_exists(dir)? else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(base) = name.to_str().and_then(|n| n.rsplit_once('#')).map(|(base, _)| base) else {
            continue;
        };
        if entry.file_type()?.is_file() && is_upload_temporary(&name) {
            out.push((entry.path(), base.to_owned()));
        }
    }
    Ok(())
}

/// Removes the upload temporaries directly in `dir` whose destination name satisfies `ours`.
fn sweep_flat(dir: &Path, ours: impl Fn(&str) -> bool) -> io::Result<usize> {
    let Some(entries) = read_dir_if_exists(dir)? else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(base) = name.to_str().and_then(|n| n.rsplit_once('#')).map(|(base, _)| base) else {
            continue;
        };
        if !entry.file_type()?.is_file() || !is_upload_temporary(&name) || !ours(base) {
            continue;
        }
        removed += usize::from(remove_temporary(&entry.path())?);
    }
    Ok(removed)
}

/// How old the temporary of a ledger record must be to be swept when its record was not
/// written since: records are appended by every shard into one directory, and a record (a few
/// KiB) is written in milliseconds, so a younger one may be another run's write in progress.
const STALE_RECORD_WRITE: std::time::Duration = std::time::Duration::from_secs(5);

/// Removes the upload temporaries directly in `dir` whose object exists (the write was done
/// again since, so this one is dead) or that were last modified more than `age` ago.
fn sweep_stale(dir: &Path, age: std::time::Duration) -> io::Result<usize> {
    let Some(entries) = read_dir_if_exists(dir)? else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_file() || !is_upload_temporary(&entry.file_name()) {
            continue;
        }
        let name = entry.file_name();
        let written = name
            .to_str()
            .and_then(|n| n.rsplit_once('#'))
            .is_some_and(|(base, _)| dir.join(base).exists());
        let old = entry
            .metadata()?
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|elapsed| elapsed > age);
        if written || old {
            removed += usize::from(remove_temporary(&entry.path())?);
        }
    }
    Ok(removed)
}

/// Removes one interrupted-write temporary; `false` if it was already gone.
fn remove_temporary(file: &Path) -> io::Result<bool> {
    match std::fs::remove_file(file) {
        Ok(()) => {
            tracing::info!(file = %file.display(), "removed an interrupted local write");
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The entries of `dir`, or `None` if it does not exist (nothing to sweep).
fn read_dir_if_exists(dir: &Path) -> io::Result<Option<std::fs::ReadDir>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
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
