//! [`Archive::probe`]: is the store usable, and which conditional operations does it honour?

use std::fmt;

use bytes::Bytes;
use chrono::Utc;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};

use crate::layout::{self, path};
use crate::{Archive, StoreError};

/// What [`Archive::probe`] found out about the store's conditional operations.
///
/// The probe fails outright (with [`StoreError::Unreachable`]) only when the store cannot be
/// written, read or deleted at all. A store that ignores or lacks conditional operations is
/// still usable, with weaker guarantees; [`ProbeReport::warnings`] says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeReport {
    /// Create-only writes ([`PutMode::Create`]) work and are honoured: creating an existing
    /// object fails. Leases, manifests and run reports rely on this; without it leases are
    /// advisory (two runs of a shard can both "acquire" it) and a racing run can overwrite a
    /// manifest.
    pub create_only: bool,
    /// Conditional updates ([`PutMode::Update`]) work and are honoured: an update against a
    /// stale ETag fails. Without them (`LocalFileSystem`) lease takeover and renewal are
    /// re-check-then-write; see the [crate notes on leases](crate#leases).
    pub conditional_update: bool,
    /// Create-only copies work and are honoured, so blob commits are atomic. Without them
    /// (S3 without `aws_copy_if_not_exists`) commits are check-then-copy: still correct for
    /// content-addressed blobs, but two racing runs may both report a new blob.
    pub create_only_copy: bool,
}

impl ProbeReport {
    /// `true` when create-only writes are not honoured: a lease does not keep a second run
    /// of the shard out. Warn the operator (and do not run shards concurrently).
    pub fn leases_are_advisory(&self) -> bool {
        !self.create_only
    }

    /// One sentence per guarantee the store weakens, for the operator's log; empty for S3
    /// configured as documented, Azure and in-memory stores. `LocalFileSystem` always yields
    /// the conditional-update note (a documented limitation of that backend).
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.create_only {
            out.push(
                "the store does not honour create-only writes: leases are advisory (two runs of one shard can \
                 overlap) and a racing run may overwrite a manifest",
            );
        }
        if !self.conditional_update {
            out.push(
                "the store has no conditional updates: an expired lease is taken over by delete-then-create, so two \
                 runs taking it over at the same instant may overlap until the next renewal",
            );
        }
        if !self.create_only_copy {
            out.push(
                "the store has no create-only copy: blob commits are check-then-copy (safe for content-addressed \
                 blobs, but racing runs may both report a new blob); for S3 set aws_copy_if_not_exists",
            );
        }
        out
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "create-only writes: {}, conditional updates: {}, create-only copies: {}",
            yes_no(self.create_only),
            yes_no(self.conditional_update),
            yes_no(self.create_only_copy)
        )
    }
}

/// How a conditional step ended.
enum Outcome {
    /// The store honoured the condition.
    Honoured,
    /// The store does not implement it, or ignored it.
    Missing,
}

impl Archive {
    /// Checks that the store can be used, and which conditional operations it honours.
    ///
    /// Under `staging/_probe/` it writes a small object (create-only where supported), reads
    /// it back, creates it again (which must fail), updates it conditionally (a stale ETag
    /// must fail), copies it create-only twice (the second must fail), and deletes what it
    /// wrote. About ten requests; nothing is left behind.
    ///
    /// For S3 and Azure archives opened with [`Archive::open`] the probe retries transient
    /// failures only briefly (about two seconds), so a wrong endpoint fails fast; the other
    /// operations use `object_store`'s default retries.
    ///
    /// # Errors
    /// [`StoreError::Unreachable`] naming the archive URL, the step and the backend's own
    /// message (e.g. `NoSuchBucket`, `SignatureDoesNotMatch`, `AuthorizationFailure`,
    /// `Connection refused`); never a credential.
    pub async fn probe(&self) -> Result<ProbeReport, StoreError> {
        self.probe_at(layout::probe_key()).await
    }

    /// [`Archive::probe`], with the probe objects in `shard`'s staging area, so that a run
    /// killed mid-probe leaves debris only where [`Archive::clean_staging`] of that shard
    /// removes it. Call it while holding the shard's lease.
    ///
    /// # Errors
    /// As [`Archive::probe`].
    pub async fn probe_in(&self, shard: &crate::ShardId) -> Result<ProbeReport, StoreError> {
        self.probe_at(layout::shard_probe_key(shard)).await
    }

    async fn probe_at(&self, key: String) -> Result<ProbeReport, StoreError> {
        let store = self.probe_store();
        let copy_key = format!("{key}-copy");
        let mut wrote = false;
        let result = self.probe_steps(store.as_ref(), &key, &copy_key, &mut wrote).await;
        let mut cleanup = Ok(());
        // Nothing to clean up (and no point in more requests) if the first write failed.
        for k in [&key, &copy_key].into_iter().filter(|_| wrote) {
            match store.delete(&path(k)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    if cleanup.is_ok() {
                        cleanup = Err(self.unreachable(&format!("deleting probe object {k}"), &e));
                    }
                }
            }
        }
        if let Some(root) = self.backend.local_root() {
            // Local disk keeps emptied directories (see `open_local`): drop the probe's, if
            // nothing else is in them.
            let dir = root.join(&key);
            for dir in dir.ancestors().skip(1).take(2) {
                let _ = std::fs::remove_dir(dir);
            }
        }
        let report = result?;
        cleanup?;
        tracing::debug!(url = %self.display_url(), %report, "store probe");
        Ok(report)
    }

    /// `Unreachable` for a failed step, with the backend error and its sources (where the
    /// server's error code or e.g. "Connection refused" is found).
    fn unreachable(&self, step: &str, e: &object_store::Error) -> StoreError {
        StoreError::Unreachable {
            url: self.display_url().to_owned(),
            reason: format!("{step} failed: {}", error_chain(e)),
        }
    }

    async fn probe_steps(
        &self,
        store: &dyn ObjectStore,
        key: &str,
        copy_key: &str,
        wrote: &mut bool,
    ) -> Result<ProbeReport, StoreError> {
        let location = path(key);
        let body = Bytes::from(format!("recarch probe {}\n", Utc::now().to_rfc3339()));
        let writing = format!("writing probe object {key}");

        // Write (create-only where the store can) and read back.
        let created = match store
            .put_opts(&location, PutPayload::from_bytes(body.clone()), PutMode::Create.into())
            .await
        {
            Ok(_) => true,
            Err(e) if is_unsupported(&e) => {
                store
                    .put(&location, PutPayload::from_bytes(body.clone()))
                    .await
                    .map_err(|e| self.unreachable(&writing, &e))?;
                false
            }
            Err(e) => return Err(self.unreachable(&writing, &e)),
        };
        *wrote = true;
        let reading = format!("reading back probe object {key}");
        let read = store
            .get(&location)
            .await
            .map_err(|e| self.unreachable(&reading, &e))?
            .bytes()
            .await
            .map_err(|e| self.unreachable(&reading, &e))?;
        if read != body {
            return Err(StoreError::Unreachable {
                url: self.display_url().to_owned(),
                reason: format!("{reading} failed: the content read back differs from what was written"),
            });
        }

        // Create-only: creating it again must fail.
        let create_only = created
            && match store
                .put_opts(
                    &location,
                    PutPayload::from_static(b"second create"),
                    PutMode::Create.into(),
                )
                .await
            {
                Err(object_store::Error::AlreadyExists { .. }) => Outcome::Honoured,
                Ok(_) => Outcome::Missing,
                Err(e) if is_unsupported(&e) => Outcome::Missing,
                Err(e) => return Err(self.unreachable(&format!("create-only write of probe object {key}"), &e)),
            }
            .honoured();

        // Conditional update: with the current ETag it succeeds, with a stale one it fails.
        let updating = format!("conditional update of probe object {key}");
        let meta = store
            .head(&location)
            .await
            .map_err(|e| self.unreachable(&reading, &e))?;
        let conditional_update = match meta.e_tag.clone() {
            None => false,
            Some(tag) => {
                let current = UpdateVersion {
                    e_tag: Some(tag),
                    version: meta.version.clone(),
                };
                match store
                    .put_opts(
                        &location,
                        PutPayload::from_static(b"update"),
                        PutMode::Update(current.clone()).into(),
                    )
                    .await
                {
                    Ok(_) => match store
                        .put_opts(
                            &location,
                            PutPayload::from_static(b"stale"),
                            PutMode::Update(current).into(),
                        )
                        .await
                    {
                        Err(object_store::Error::Precondition { .. }) => Outcome::Honoured,
                        Ok(_) => Outcome::Missing,
                        Err(e) if is_unsupported(&e) => Outcome::Missing,
                        Err(e) => return Err(self.unreachable(&updating, &e)),
                    },
                    Err(e) if is_unsupported(&e) => Outcome::Missing,
                    // The store refuses an update against the ETag it just reported.
                    Err(object_store::Error::Precondition { .. }) => Outcome::Missing,
                    Err(e) => return Err(self.unreachable(&updating, &e)),
                }
                .honoured()
            }
        };

        // Create-only copy: the second copy onto the same name must fail.
        let copying = format!("create-only copy of probe object {key}");
        let copy_to = Path::from(copy_key);
        let create_only_copy = match store.copy_if_not_exists(&location, &copy_to).await {
            Ok(()) => match store.copy_if_not_exists(&location, &copy_to).await {
                // Azure may answer 412, which object_store leaves as Precondition on copies.
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    Outcome::Honoured
                }
                Ok(()) => Outcome::Missing,
                Err(e) => return Err(self.unreachable(&copying, &e)),
            },
            Err(e) if is_unsupported(&e) => Outcome::Missing,
            Err(e) => return Err(self.unreachable(&copying, &e)),
        }
        .honoured();

        Ok(ProbeReport {
            create_only,
            conditional_update,
            create_only_copy,
        })
    }
}

impl Outcome {
    fn honoured(self) -> bool {
        matches!(self, Outcome::Honoured)
    }
}

pub(crate) use recarch_failure::error_chain;

pub(crate) fn is_unsupported(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. }
    )
}
