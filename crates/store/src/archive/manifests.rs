//! Manifests: create-only writes checked against their blobs, versioned manifests, reads and
//! listings.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::PutMode;
use serde_json::Value;

use super::{LIST_FETCH_CONCURRENCY, to_json};
use crate::layout::{self, path};
use crate::model::{MANIFEST_RESERVED, VERSIONS};
use crate::{Archive, Kind, MANIFEST_SCHEMA, Manifest, OrganizerId, StoreError};

/// Outcome of [`Archive::put_manifest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestWrite {
    /// The manifest was written.
    Created,
    /// A manifest for this recording already existed; it was left untouched.
    AlreadyExists,
}

impl Archive {
    /// The manifest key of a recording:
    /// `manifests/recordings/<organizer>/<lowercase hex SHA-256 of recording_id>.json`.
    ///
    /// The recording id is hashed, so whatever it contains (`/`, `..`, …) the key stays
    /// inside the organizer's directory.
    pub fn manifest_key(organizer: &OrganizerId, recording_id: &str) -> String {
        layout::manifest_key(organizer, recording_id)
    }

    /// The manifest key of item `id` of `kind`: `manifests/<kind>/<organizer>/<hex SHA-256 of
    /// id>.json`.
    pub fn manifest_key_of(kind: Kind, organizer: &OrganizerId, id: &str) -> String {
        layout::manifest_key_of(kind, organizer, id)
    }

    /// Whether the recording's manifest exists.
    ///
    /// # Errors
    /// Store failures.
    pub async fn manifest_exists(&self, organizer: &OrganizerId, recording_id: &str) -> Result<bool, StoreError> {
        self.manifest_exists_of(Kind::Recordings, organizer, recording_id).await
    }

    /// Whether the manifest of item `id` of `kind` exists
    /// (`manifests/<kind>/<organizer>/<key>.json`).
    ///
    /// # Errors
    /// Store failures.
    pub async fn manifest_exists_of(&self, kind: Kind, organizer: &OrganizerId, id: &str) -> Result<bool, StoreError> {
        let key = layout::manifest_key_of(kind, organizer, id);
        Ok(self.head(&key).await?.is_some())
    }

    /// Writes the manifest, create-only: an existing manifest for the recording is left
    /// untouched and `Ok(ManifestWrite::AlreadyExists)` is returned.
    ///
    /// Checked first: the schema is [`MANIFEST_SCHEMA`], `content.blob` names
    /// `content.sha256`, [`Manifest::extra`] reuses no field name, and the blob exists
    /// with `content.size` bytes (a manifest never points at a missing blob).
    ///
    /// # Errors
    /// [`StoreError::Rejected`] if a check fails; store failures.
    pub async fn put_manifest(&self, manifest: &Manifest) -> Result<ManifestWrite, StoreError> {
        let key = self.check_manifest(manifest).await?;
        let body = to_json(&key, manifest)?;
        // Its blob is kept at least as long as the item (it may be older, and shared).
        let lock = self.lock_blob_of(manifest).await?;
        match self
            .store
            .put_opts(&path(&key), body.clone(), PutMode::Create.into())
            .await
        {
            Ok(written) => {
                self.written_locked(&key, &body, written.version.as_deref(), lock)
                    .await?;
                Ok(ManifestWrite::Created)
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Written before, perhaps by a run killed before it locked it.
                if let Some(lock) = lock {
                    self.lock_at_least(&key, lock).await?;
                }
                Ok(ManifestWrite::AlreadyExists)
            }
            Err(e) => Err(StoreError::from_backend(&key, e)),
        }
    }

    /// With a lock policy and a manifest that asks for retention: locks its blob at least
    /// until the manifest's retain-until, and returns that lock.
    async fn lock_blob_of(&self, manifest: &Manifest) -> Result<Option<crate::worm::ObjectLock>, StoreError> {
        if self.worm.is_none() {
            return Ok(None);
        }
        let Some(lock) = manifest.extra.get("retention").and_then(crate::worm::retention_lock) else {
            return Ok(None);
        };
        self.lock_at_least(&layout::blob_key(&manifest.content.sha256), lock)
            .await?;
        Ok(Some(lock))
    }

    /// Appends a version to the manifest of a versioned item (a contact): `manifest` describes
    /// the new version (its `content` is the version's blob, its `archivedAt` when it was
    /// archived, its other members the item's newest state) and becomes the stored manifest,
    /// whose `versions` array keeps every earlier version followed by this one: `content`'s
    /// members, `archivedAt`, and `version` (caller-owned members of the entry, e.g. why it
    /// was removed). Nothing is ever taken out of `versions`.
    ///
    /// A version whose blob is that of the newest version already listed is not appended
    /// (`Ok(ManifestWrite::AlreadyExists)`): replaying a page after a kill appends nothing
    /// twice. Updates are conditional on the version read (see the `document`
    /// module), so concurrent writers never lose a version.
    ///
    /// # Errors
    /// As [`Archive::put_manifest`]; [`StoreError::Corrupt`] for a stored manifest that is not
    /// one of this item; [`StoreError::Precondition`] when other writers kept winning.
    pub async fn append_version(
        &self,
        manifest: &Manifest,
        version: serde_json::Map<String, Value>,
    ) -> Result<ManifestWrite, StoreError> {
        let key = self.check_manifest(manifest).await?;
        if manifest.extra.contains_key(VERSIONS) {
            return Err(StoreError::Rejected {
                key,
                reason: format!("extra member {VERSIONS:?} is kept by the store"),
            });
        }
        let mut entry = match serde_json::to_value(&manifest.content) {
            Ok(Value::Object(entry)) => entry,
            _ => serde_json::Map::new(),
        };
        entry.insert(
            "archivedAt".into(),
            serde_json::to_value(manifest.archived_at).unwrap_or(Value::Null),
        );
        entry.extend(version);
        let entry = Value::Object(entry);
        self.lock_blob_of(manifest).await?;
        let written = self
            .update_document(&key, "a manifest", |stored: Option<Manifest>| {
                let mut versions = match &stored {
                    Some(stored) => {
                        if stored.id != manifest.id || stored.organizer_id != manifest.organizer_id {
                            return Err(StoreError::corrupt(&key, "a manifest of another item"));
                        }
                        match stored.extra.get(VERSIONS) {
                            Some(Value::Array(versions)) => versions.clone(),
                            _ => return Err(StoreError::corrupt(&key, format!("no {VERSIONS:?} array"))),
                        }
                    }
                    None => Vec::new(),
                };
                let newest = versions.last().and_then(|v| v.get("sha256")).and_then(Value::as_str);
                if newest == Some(manifest.content.sha256.to_hex().as_str()) {
                    return Ok(None);
                }
                versions.push(entry.clone());
                let mut next = manifest.clone();
                next.extra.insert(VERSIONS.into(), Value::Array(versions));
                Ok(Some(next))
            })
            .await?;
        Ok(match written {
            Some(_) => ManifestWrite::Created,
            None => ManifestWrite::AlreadyExists,
        })
    }

    /// The checks every manifest passes before it is written; returns its key.
    async fn check_manifest(&self, manifest: &Manifest) -> Result<String, StoreError> {
        let kind = manifest.archive_kind().ok_or_else(|| StoreError::Rejected {
            key: layout::manifest_key(&manifest.organizer_id, &manifest.id),
            reason: format!("unknown kind {:?} (source {:?})", manifest.kind, manifest.source()),
        })?;
        let key = layout::manifest_key_of(kind, &manifest.organizer_id, &manifest.id);
        let rejected = |reason: String| StoreError::Rejected {
            key: key.clone(),
            reason,
        };
        if manifest.schema != MANIFEST_SCHEMA {
            return Err(rejected(format!(
                "schema is {:?}, expected {MANIFEST_SCHEMA:?}",
                manifest.schema
            )));
        }
        let blob = layout::blob_key(&manifest.content.sha256);
        if manifest.content.blob != blob {
            return Err(rejected(format!(
                "content.blob is {:?}, expected {blob:?}",
                manifest.content.blob
            )));
        }
        if let Some(name) = MANIFEST_RESERVED
            .iter()
            .find(|name| manifest.extra.contains_key(**name))
        {
            return Err(rejected(format!(
                "extra member {name:?} collides with a manifest field"
            )));
        }
        match self.blob_size(&manifest.content.sha256).await? {
            Some(size) if size == manifest.content.size => {}
            Some(size) => {
                return Err(rejected(format!(
                    "blob {blob} is {size} bytes, manifest says {}",
                    manifest.content.size
                )));
            }
            None => return Err(rejected(format!("blob {blob} does not exist"))),
        }
        // Every other blob the manifest names (a transcript's `metadata`) must be there too.
        for (name, value) in &manifest.extra {
            let Ok(other) = serde_json::from_value::<crate::ContentRef>(value.clone()) else {
                continue;
            };
            if other.blob != layout::blob_key(&other.sha256) {
                return Err(rejected(format!("{name}.blob does not name {name}.sha256")));
            }
            if self.blob_size(&other.sha256).await? != Some(other.size) {
                return Err(rejected(format!(
                    "blob {} of {name} is missing or not {} bytes",
                    other.blob, other.size
                )));
            }
        }
        Ok(key)
    }

    /// Reads the recording's manifest, or `None` if there is none.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it is not a valid manifest of that recording; store
    /// failures.
    pub async fn get_manifest(
        &self,
        organizer: &OrganizerId,
        recording_id: &str,
    ) -> Result<Option<Manifest>, StoreError> {
        let key = layout::manifest_key(organizer, recording_id);
        match self.get_bytes(&key).await? {
            Some(bytes) => parse_manifest(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every manifest of `kind` of `organizer`, in no particular order (a manifest deleted
    /// since it was listed is left out: see the `listing` module).
    ///
    /// # Errors
    /// Listing or read failures, and [`StoreError::Corrupt`] for an object that is not a
    /// manifest.
    pub fn manifests_of(&self, kind: Kind, organizer: &OrganizerId) -> BoxStream<'_, Result<Manifest, StoreError>> {
        self.list_and_read(
            &layout::manifest_prefix(kind, organizer),
            |_| true,
            LIST_FETCH_CONCURRENCY,
        )
        .map(|item| {
            let (key, read) = item?;
            parse_manifest(&key, &read?)
        })
        .boxed()
    }

    /// Every object under `manifests/` (in every kind directory, and any object outside the
    /// layout there), read `concurrency` at a time in no particular order, as stored: for a
    /// caller that checks the documents themselves (`recarch verify`), not only those that
    /// parse.
    ///
    /// `manifests/` is listed one organizer directory (`manifests/<kind>/<organizer>/`) at a
    /// time, after one delimited listing of `manifests/` and one of each kind directory: a
    /// listing stops at its first error on every backend, so a failed listing loses only the
    /// rest of its directory, and says so ([`ManifestRead::Unlisted`]). A manifest deleted
    /// since it was listed is left out (see the `listing` module). Memory: one path per
    /// organizer directory, and `concurrency` documents in flight.
    ///
    /// # Errors
    /// A failure to list `manifests/` itself.
    pub async fn read_manifests(&self, concurrency: usize) -> Result<BoxStream<'_, ManifestRead>, StoreError> {
        let top = self
            .store
            .list_with_delimiter(Some(&path(layout::MANIFEST_ROOT)))
            .await
            .map_err(|e| StoreError::from_backend(layout::MANIFEST_ROOT, e))?;
        // Objects directly under `manifests/` or `manifests/<kind>/` are misplaced, but read.
        let mut loose: Vec<String> = top.objects.iter().map(|m| m.location.to_string()).collect();
        let mut directories = Vec::new();
        let mut unlisted = Vec::new();
        for kind_dir in top.common_prefixes {
            let prefix = kind_dir.to_string();
            match self.store.list_with_delimiter(Some(&kind_dir)).await {
                Ok(listed) => {
                    loose.extend(listed.objects.iter().map(|m| m.location.to_string()));
                    directories.extend(listed.common_prefixes.iter().map(ToString::to_string));
                }
                Err(e) => unlisted.push(ManifestRead::Unlisted {
                    error: StoreError::from_backend(&prefix, e),
                    prefix,
                    whole: true,
                }),
            }
        }
        /// A key to read, or a directory whose listing failed.
        enum Next {
            Key(String),
            Unlisted(String, StoreError),
        }
        let keys = futures::stream::iter(loose.into_iter().map(Next::Key)).chain(
            futures::stream::iter(directories).flat_map(move |dir| {
                self.listed_keys(&dir, |_| true).map(move |item| match item {
                    Ok(key) => Next::Key(key),
                    Err(e) => Next::Unlisted(dir.clone(), e),
                })
            }),
        );
        let read = keys
            .map(move |next| async move {
                match next {
                    Next::Key(key) => match self.read_listed(key).await? {
                        (key, Ok(bytes)) => Some(ManifestRead::Stored(StoredManifest { key, bytes })),
                        (key, Err(error)) => Some(ManifestRead::Unreadable { key, error }),
                    },
                    Next::Unlisted(prefix, error) => Some(ManifestRead::Unlisted {
                        prefix,
                        error,
                        whole: false,
                    }),
                }
            })
            .buffer_unordered(concurrency.max(1))
            .filter_map(futures::future::ready);
        Ok(futures::stream::iter(unlisted).chain(read).boxed())
    }

    /// The manifest stored at `key` (a key a catalog entry or an index names), or `None` when
    /// there is none, or `key` is not a manifest's in the layout.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an object that is not a valid manifest stored under its
    /// proper key; store failures.
    pub async fn manifest_at(&self, key: &str) -> Result<Option<Manifest>, StoreError> {
        if !layout::is_manifest_key(key) {
            return Ok(None);
        }
        match self.get_bytes(key).await? {
            Some(bytes) => parse_manifest(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Whether a manifest is stored at `key`, the key a meeting index entry names. A key that
    /// is not a manifest's in the layout (`manifests/<kind>/<organizer>/<64 hex>.json`) names
    /// none.
    ///
    /// # Errors
    /// Store failures.
    pub async fn manifest_exists_at(&self, key: &str) -> Result<bool, StoreError> {
        if !layout::is_manifest_key(key) {
            return Ok(false);
        }
        Ok(self.head(key).await?.is_some())
    }

    /// Every recording's manifest, in no particular order, as `(key, manifest)`. The outer
    /// error is a listing or read failure; the inner one ([`StoreError::Corrupt`]) an object
    /// under `manifests/recordings/` that is not a valid manifest stored under its proper key.
    /// A manifest deleted since it was listed is left out (see the `listing` module).
    #[allow(clippy::type_complexity)] // the signature is the documented contract
    pub fn list_manifests(&self) -> BoxStream<'_, Result<(String, Result<Manifest, StoreError>), StoreError>> {
        self.list_and_read(layout::MANIFESTS, |_| true, LIST_FETCH_CONCURRENCY)
            .map(|item| {
                let (key, read) = item?;
                let manifest = parse_manifest(&key, &read?);
                Ok((key, manifest))
            })
            .boxed()
    }
}

/// What [`Archive::read_manifests`] finds, one item at a time.
#[derive(Debug)]
#[non_exhaustive]
pub enum ManifestRead {
    /// An object under `manifests/`, as stored.
    Stored(StoredManifest),
    /// An object listed under `manifests/` that could not be read.
    Unreadable {
        /// Its key.
        key: String,
        /// Why.
        error: StoreError,
    },
    /// A listing failed: what it had not listed yet under `prefix` is not in the stream.
    Unlisted {
        /// The directory, as listed (`manifests/<kind>` or `manifests/<kind>/<organizer>`).
        prefix: String,
        /// Why.
        error: StoreError,
        /// `true` when nothing under `prefix` was listed (a kind directory), `false` when its
        /// listing stopped part way (an organizer directory).
        whole: bool,
    },
}

/// A manifest object as stored, not parsed (see [`Archive::read_manifests`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// Its key.
    pub key: String,
    /// Its bytes.
    pub bytes: Bytes,
}

impl StoredManifest {
    /// The manifest, checked as every read of the store checks it (schema, kind, key, blob).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an object that is not a valid manifest stored under its
    /// proper key.
    pub fn parse(&self) -> Result<Manifest, StoreError> {
        parse_manifest(&self.key, &self.bytes)
    }

    /// Where a manifest of `organizer` and `id` belongs in the kind directory this one was
    /// found in: `manifests/<that directory>/<organizer>/<hex SHA-256 of id>.json`
    /// (`recordings` for an object directly under `manifests/`). One stored anywhere else is
    /// misplaced, whatever its kind directory is called.
    pub fn expected_key(&self, organizer: &OrganizerId, id: &str) -> String {
        layout::manifest_key_beside(&self.key, organizer, id)
    }
}

fn parse_manifest(key: &str, bytes: &[u8]) -> Result<Manifest, StoreError> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(key, format!("not a manifest: {e}")))?;
    if manifest.schema != MANIFEST_SCHEMA {
        return Err(StoreError::corrupt(
            key,
            format!(
                "unsupported schema {:?} (this version reads {MANIFEST_SCHEMA:?})",
                manifest.schema
            ),
        ));
    }
    let expected = match manifest.key() {
        Some(expected) => expected,
        None => {
            return Err(StoreError::corrupt(
                key,
                format!("unknown kind {:?} (source {:?})", manifest.kind, manifest.source()),
            ));
        }
    };
    if expected != key {
        return Err(StoreError::corrupt(
            key,
            format!("its id and organizerId belong at {expected}"),
        ));
    }
    let blob = layout::blob_key(&manifest.content.sha256);
    if manifest.content.blob != blob {
        return Err(StoreError::corrupt(
            key,
            format!("content.blob is {:?}, expected {blob:?}", manifest.content.blob),
        ));
    }
    Ok(manifest)
}
