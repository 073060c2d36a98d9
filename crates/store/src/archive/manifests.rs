//! Manifests: create-only writes checked against their blobs, versioned manifests, reads and
//! listings.

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutMode};
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
        match self.store.put_opts(&path(&key), body, PutMode::Create.into()).await {
            Ok(_) => Ok(ManifestWrite::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(ManifestWrite::AlreadyExists),
            Err(e) => Err(StoreError::from_backend(&key, e)),
        }
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
        let kind = Kind::of_manifest(&manifest.kind).ok_or_else(|| StoreError::Rejected {
            key: layout::manifest_key(&manifest.organizer_id, &manifest.id),
            reason: format!("unknown kind {:?}", manifest.kind),
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

    /// Every manifest of `kind` of `organizer`, in no particular order.
    ///
    /// # Errors
    /// Listing or read failures, and [`StoreError::Corrupt`] for an object that is not a
    /// manifest.
    pub fn manifests_of(&self, kind: Kind, organizer: &OrganizerId) -> BoxStream<'_, Result<Manifest, StoreError>> {
        let prefix = format!("manifests/{kind}/{organizer}");
        self.store
            .list(Some(&path(&prefix)))
            .map(move |item| {
                let prefix = prefix.clone();
                async move {
                    let meta = item.map_err(|e| StoreError::from_backend(&prefix, e))?;
                    let key = meta.location.to_string();
                    match self.get_bytes(&key).await? {
                        Some(bytes) => parse_manifest(&key, &bytes).map(Some),
                        // Listed, then gone.
                        None => Ok(None),
                    }
                }
            })
            .buffered(LIST_FETCH_CONCURRENCY)
            .try_filter_map(|m| async move { Ok(m) })
            .boxed()
    }

    /// Every manifest, in no particular order, as `(key, manifest)`. The outer error is
    /// a listing or read failure; the inner one ([`StoreError::Corrupt`]) an object
    /// under `manifests/recordings/` that is not a valid manifest stored under its
    /// proper key.
    #[allow(clippy::type_complexity)] // the signature is the documented contract
    pub fn list_manifests(&self) -> BoxStream<'_, Result<(String, Result<Manifest, StoreError>), StoreError>> {
        self.store
            .list(Some(&path(layout::MANIFESTS)))
            .map(move |item| async move {
                let meta = item.map_err(|e| StoreError::from_backend(layout::MANIFESTS, e))?;
                let key = meta.location.to_string();
                let bytes = self
                    .store
                    .get(&meta.location)
                    .await
                    .map_err(|e| StoreError::from_backend(&key, e))?
                    .bytes()
                    .await
                    .map_err(|e| StoreError::from_backend(&key, e))?;
                let manifest = parse_manifest(&key, &bytes);
                Ok((key, manifest))
            })
            .buffered(LIST_FETCH_CONCURRENCY)
            .boxed()
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
    let expected = match Kind::of_manifest(&manifest.kind) {
        Some(kind) => layout::manifest_key_of(kind, &manifest.organizer_id, &manifest.id),
        None => return Err(StoreError::corrupt(key, format!("unknown kind {:?}", manifest.kind))),
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
