//! Read-modify-write of one JSON document that several writers may update (a meeting index,
//! a versioned item's manifest): read it with its version, let the caller change it, write it
//! back conditionally on that version (create-only when it was absent), and start again when
//! another writer got there first. Stores without conditional updates (local disk) are
//! serialised by an in-process lock per key; the shard lease keeps other processes away.

use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use object_store::{ObjectStoreExt as _, PutMode, UpdateVersion};
use recarch_failure::RetryPolicy;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::archive::to_json;
use crate::layout::path;
use crate::probe::is_unsupported;
use crate::{Archive, StoreError};

/// How a conditional update that lost to another writer is tried again: up to 16 attempts,
/// waits from about 20 ms doubling per loss up to 1 s, jittered so that the contenders spread
/// out.
fn contention_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 16,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(1),
        max_total: Duration::from_secs(60),
    }
}

/// Locks striped over keys: updates of one key in this process take turns, updates of
/// different keys mostly do not wait for each other.
pub(crate) const LOCK_STRIPES: usize = 64;

impl Archive {
    /// Updates the JSON document at `key`: `change` gets the current document (`None` when
    /// there is none) and returns the one to write, or `None` to leave it as it is. Returns
    /// the document written, or `None` when nothing was written.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the stored document does not parse as `T` (`what` names
    /// what it should be); errors `change` returns; store failures; or
    /// [`StoreError::Precondition`] when other writers kept winning.
    pub(crate) async fn update_document<T, F>(
        &self,
        key: &str,
        what: &str,
        mut change: F,
    ) -> Result<Option<T>, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> Result<Option<T>, StoreError>,
    {
        let stripe = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut h);
            (h.finish() % LOCK_STRIPES as u64) as usize
        };
        let _serialised = self.document_locks[stripe].lock().await;
        let policy = contention_retry();
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (current, version) = match self.get_with_meta(key).await? {
                Some((bytes, meta)) => {
                    let doc: T = serde_json::from_slice(&bytes)
                        .map_err(|e| StoreError::corrupt(key, format!("not {what}: {e}")))?;
                    (
                        Some(doc),
                        Some(UpdateVersion {
                            e_tag: meta.e_tag,
                            version: meta.version,
                        }),
                    )
                }
                None => (None, None),
            };
            let Some(doc) = change(current)? else {
                return Ok(None);
            };
            let body = to_json(key, &doc)?;
            let mode = match version {
                Some(v) => PutMode::Update(v),
                None => PutMode::Create,
            };
            match self.store.put_opts(&path(key), body.clone(), mode.into()).await {
                Ok(written) => {
                    self.written(key, &body, written.version.as_deref()).await?;
                    return Ok(Some(doc));
                }
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                    // Another writer won: read its version and try again, after a wait.
                    if !policy.wait_before_retry(attempt, started.elapsed(), None, |_| ()).await {
                        return Err(StoreError::Precondition { key: key.to_owned() });
                    }
                }
                Err(e) if is_unsupported(&e) => {
                    // Local disk: no conditional update; the lock above and the shard lease keep
                    // writers apart, so replacing the version read loses nothing.
                    let written = self
                        .store
                        .put(&path(key), body.clone())
                        .await
                        .map_err(|e| StoreError::from_backend(key, e))?;
                    self.written(key, &body, written.version.as_deref()).await?;
                    return Ok(Some(doc));
                }
                Err(e) => return Err(StoreError::from_backend(key, e)),
            }
        }
    }
}
