//! Per-organizer state documents: read with their version, replaced only at that version.

use futures::{StreamExt, TryStreamExt};
use object_store::{PutMode, UpdateVersion};

use super::{LIST_FETCH_CONCURRENCY, to_json};
use crate::layout::{self, path};
use crate::{Archive, Kind, OrganizerId, OrganizerState, STATE_SCHEMA, StoreError};

impl Archive {
    /// Reads the organizer's state, or `None` if there is none yet.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it is not a valid state document of that organizer;
    /// store failures.
    pub async fn load_state(&self, kind: Kind, organizer: &OrganizerId) -> Result<Option<OrganizerState>, StoreError> {
        let key = layout::state_key(kind, organizer);
        match self.get_with_meta(&key).await? {
            Some((bytes, meta)) => {
                let state = parse_state(kind, &key, &bytes)?;
                self.remember_state_version(&key, meta.e_tag, meta.version);
                Ok(Some(state))
            }
            None => {
                self.forget_state_version(&key);
                Ok(None)
            }
        }
    }

    fn remember_state_version(&self, key: &str, e_tag: Option<String>, version: Option<String>) {
        if let Ok(mut versions) = self.state_versions.lock() {
            if e_tag.is_some() || version.is_some() {
                versions.insert(key.to_owned(), UpdateVersion { e_tag, version });
            } else {
                versions.remove(key);
            }
        }
    }

    /// Forgets the version of the organizer's state this archive last read or wrote, once
    /// its pass is over, so that a run over many organizers does not keep one per organizer.
    /// The next [`Archive::save_state`] of that state must follow a [`Archive::load_state`]:
    /// without a known version it is a create, refused when the state exists.
    pub fn forget_state(&self, kind: Kind, organizer: &OrganizerId) {
        self.forget_state_version(&layout::state_key(kind, organizer));
    }

    fn forget_state_version(&self, key: &str) {
        if let Ok(mut versions) = self.state_versions.lock() {
            versions.remove(key);
        }
    }

    /// Writes the organizer's state, replacing the previous one atomically (readers see
    /// the old or the new document, never a mix).
    ///
    /// # Errors
    /// [`StoreError::Rejected`] if the schema is not [`STATE_SCHEMA`]; store failures.
    pub async fn save_state(&self, state: &OrganizerState) -> Result<(), StoreError> {
        let key = layout::state_key(state.kind, &state.organizer_id);
        if state.schema != STATE_SCHEMA {
            return Err(StoreError::Rejected {
                reason: format!("schema is {:?}, expected {STATE_SCHEMA:?}", state.schema),
                key,
            });
        }
        let body = to_json(&key, state)?;
        // Replace exactly the version last read or written here (ETag match), or create the
        // document if there was none: a state changed by anyone else in between means another
        // run works on this organizer, and nothing is overwritten. Backends without
        // conditional updates (local disk) overwrite; the shard lease keeps writers apart there.
        let known = self.state_versions.lock().ok().and_then(|v| v.get(&key).cloned());
        let mode = match known {
            Some(version) => PutMode::Update(version),
            None => PutMode::Create,
        };
        let written = match self.store.put_opts(&path(&key), body.clone(), mode.into()).await {
            Ok(written) => written,
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                return Err(StoreError::Precondition { key });
            }
            Err(object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. }) => self
                .store
                .put_opts(&path(&key), body, PutMode::Overwrite.into())
                .await
                .map_err(|e| StoreError::from_backend(&key, e))?,
            Err(e) => return Err(StoreError::from_backend(&key, e)),
        };
        self.remember_state_version(&key, written.e_tag, written.version);
        Ok(())
    }

    /// Every organizer's state of `kind`, sorted by organizer id.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for the first checkpoint under `state/<kind>/` that is not
    /// a valid state document under its proper key; store failures.
    pub async fn list_states(&self, kind: Kind) -> Result<Vec<OrganizerState>, StoreError> {
        // Only the checkpoints: queue entries and dead letters live under the same prefix.
        let checkpoint = move |key: &str| matches!(layout::parse_state_key(kind, key), Some((_, None)));
        let mut states: Vec<OrganizerState> = self
            .list_and_read(&layout::state_prefix(kind), checkpoint, LIST_FETCH_CONCURRENCY)
            .map(|item| {
                let (key, read) = item?;
                parse_state(kind, &key, &read?)
            })
            .try_collect()
            .await?;
        states.sort_by(|a, b| a.organizer_id.cmp(&b.organizer_id));
        Ok(states)
    }
}

fn parse_state(kind: Kind, key: &str, bytes: &[u8]) -> Result<OrganizerState, StoreError> {
    let state: OrganizerState =
        serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(key, format!("not a state document: {e}")))?;
    if state.schema != STATE_SCHEMA {
        return Err(StoreError::corrupt(
            key,
            format!(
                "unsupported schema {:?} (this version reads {STATE_SCHEMA:?})",
                state.schema
            ),
        ));
    }
    let expected = layout::state_key(state.kind, &state.organizer_id);
    if expected != key || state.kind != kind {
        return Err(StoreError::corrupt(
            key,
            format!("its kind and organizerId belong at {expected}"),
        ));
    }
    Ok(state)
}
