//! Outlook contacts: for each organizer (a mailbox user), every contact folder's
//! `contactFolders/{id}/contacts/delta` with `$select` and `Prefer: odata.maxpagesize` on the
//! first request, each folder a source with its own checkpoint. Every change is stored as it
//! was listed — the item's JSON as a blob named by its SHA-256 — and appended as a version to
//! the contact's manifest; an `@removed` marker appends a tombstone version with its reason.
//! Nothing is ever deleted.

use std::future::Future;

use chrono::Utc;
use futures::TryStreamExt;
use recarch_delta::{Contact, DeltaClient, DeltaError, DeltaRequest, resources};
use recarch_store::{ContentRef, Kind, MANIFEST_SCHEMA, Manifest, ManifestWrite, OrganizerId};
use serde_json::{Map, Value};

use super::{Admit, ItemKind, Removed, RoundStart, Seen, tombstone_marker};
use crate::config::Config;
use crate::pipeline::{Archived, ItemContext, ItemOutcome, store_bytes};

/// The `kind` of a contact manifest.
pub const KIND_CONTACT: &str = "contact";

/// Media type of a stored contact version.
const JSON: &str = "application/json";

/// Always selected besides `[source].contacts_select`: the folder a version was listed in.
const FOLDER_PROPERTY: &str = "parentFolderId";

/// The contacts kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Contacts;

/// `[source].contacts_select` plus the folder, each once.
fn select(config: &Config) -> Vec<&str> {
    let mut select: Vec<&str> = config.source.contacts_select.iter().map(String::as_str).collect();
    if !select.is_empty() && !select.contains(&FOLDER_PROPERTY) {
        select.push(FOLDER_PROPERTY);
    }
    select
}

impl ItemKind for Contacts {
    type Item = Contact;
    const KIND: Kind = Kind::Contacts;
    const NOUN: &'static str = "contact";

    fn id(item: &Contact) -> &str {
        &item.id
    }

    async fn sources(
        &self,
        delta: &DeltaClient,
        config: &Config,
        organizer: &OrganizerId,
    ) -> Result<Vec<Option<String>>, DeltaError> {
        match delta
            .contact_folders(&config.graph.base_url, organizer.as_str())
            .await?
        {
            Some(folders) => Ok(folders.into_iter().map(|f| Some(f.id)).collect()),
            None => {
                tracing::info!(%organizer, "no mailbox graph can read: no contacts to archive");
                Ok(Vec::new())
            }
        }
    }

    fn first_request(&self, config: &Config, start: &RoundStart<'_>) -> DeltaRequest {
        resources::contacts_request(
            &config.graph.base_url,
            start.organizer.as_str(),
            // Every source of this kind is a folder; `contacts` names the default one.
            start.source.unwrap_or("contacts"),
            &select(config),
            Some(config.source.contacts_page_size),
        )
    }

    fn configured_options(&self, config: &Config) -> Vec<String> {
        let select = select(config);
        if select.is_empty() {
            Vec::new()
        } else {
            vec![format!("$select={}", select.join(","))]
        }
    }

    fn archive<'a>(
        &'a self,
        ctx: &'a ItemContext,
        organizer: &'a OrganizerId,
        item: &'a Contact,
        raw: &'a Value,
    ) -> impl Future<Output = ItemOutcome> + Send + 'a {
        archive_contact(ctx, organizer, item, raw)
    }

    async fn live_ids(
        &self,
        ctx: &ItemContext,
        organizer: &OrganizerId,
    ) -> Result<Vec<(Option<String>, String)>, recarch_store::StoreError> {
        let mut live = Vec::new();
        let mut manifests = ctx.archive.manifests_of(Kind::Contacts, organizer);
        while let Some(manifest) = manifests.try_next().await? {
            let newest = manifest
                .extra
                .get(recarch_store::VERSIONS)
                .and_then(Value::as_array)
                .and_then(|v| v.last());
            let Some(newest) = newest else { continue };
            if newest.get("removed").is_none() {
                let folder = newest.get("folderId").and_then(Value::as_str).map(str::to_owned);
                live.push((folder, manifest.id));
            }
        }
        Ok(live)
    }

    /// Every listing is a version: a later one waits for the one in flight (so versions are
    /// appended in the order listed), and a dead-lettered contact's new version is archived
    /// like any other.
    fn admit(&self, id: &str, seen: &Seen<'_>) -> Admit {
        if seen.in_flight.contains(id) {
            Admit::AfterInFlight
        } else {
            Admit::Start
        }
    }

    /// Archived as a tombstone version with its reason.
    fn removed(&self, id: &str, raw: &Value) -> Removed<Contact> {
        match serde_json::from_value::<Contact>(raw.clone()) {
            Ok(item) => Removed::Archive(item),
            Err(e) => {
                tracing::warn!(%id, error = %e, "a removed marker this kind cannot read; not archived");
                Removed::Forget
            }
        }
    }

    fn supersedes_queued(&self) -> bool {
        true
    }

    fn reconciles(&self) -> bool {
        true
    }

    /// The marker names the folder, as a listed version would.
    fn unlisted_tombstone(&self, id: &str, source: Option<&str>) -> Value {
        let mut raw = tombstone_marker(id);
        if let (Some(folder), Some(obj)) = (source, raw.as_object_mut()) {
            obj.insert(FOLDER_PROPERTY.into(), Value::String(folder.to_owned()));
        }
        raw
    }

    fn forbidden_hint(&self) -> &'static str {
        "the app needs the Contacts.Read application permission with admin consent, and an Exchange Online application access policy (or RBAC for Applications) must include this mailbox; other kinds are archived regardless"
    }
}

/// Stores this version of the contact and appends it to the contact's manifest.
async fn archive_contact(ctx: &ItemContext, organizer: &OrganizerId, item: &Contact, raw: &Value) -> ItemOutcome {
    let bytes = match serde_json::to_vec(raw) {
        Ok(bytes) => bytes::Bytes::from(bytes),
        Err(e) => return ItemOutcome::failed(recarch_failure::FailureClass::Permanent, format!("cannot encode: {e}")),
    };
    // The mailbox user's names are looked up while the version is stored (once per run).
    let (blob, names) = tokio::join!(store_bytes(ctx, bytes, JSON), ctx.names.of(organizer, None));
    let blob = match blob {
        Ok(blob) => blob,
        Err(outcome) => return outcome,
    };
    let mut version = Map::new();
    if let Some(folder) = &item.parent_folder_id {
        version.insert("folderId".into(), Value::String(folder.clone()));
    }
    if let Some(removed) = &item.removed {
        version.insert("removed".into(), removed.clone());
    }
    let mut extra = names.manifest_members();
    extra.insert("graph".into(), raw.clone());
    let mut manifest = Manifest {
        schema: MANIFEST_SCHEMA.into(),
        kind: KIND_CONTACT.into(),
        id: item.id.clone(),
        organizer_id: organizer.clone(),
        content: ContentRef {
            sha256: blob.digest,
            size: blob.size,
            media_type: blob.media_type,
            blob: blob.commit.key,
        },
        archived_at: Utc::now(),
        extra,
    };
    // Each version keeps the manifest for the period from its own archiving.
    ctx.with_retention(&mut manifest);
    match ctx.archive.append_version(&manifest, version.clone()).await {
        Ok(ManifestWrite::Created) => {
            if let Err(e) = ctx.holds.hold_new(&ctx.archive, &manifest).await {
                return ctx.store_failed(e, "cannot set the legal hold of an active matter");
            }
            ctx.catalog.record_version(&manifest, &version);
            ctx.names.missed(Kind::Contacts, organizer, None, &names);
            tracing::info!(%organizer, id = %item.id, kind = KIND_CONTACT, sha256 = %manifest.content.sha256, removed = item.removed.is_some(), "archived a version");
            ItemOutcome::Archived(Archived::Now {
                bytes: blob.size,
                new_blob: blob.commit.created,
            })
        }
        Ok(ManifestWrite::AlreadyExists) => ItemOutcome::Archived(Archived::Already),
        Err(e) => ctx.store_failed(e, "cannot append the version to the manifest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(select: &str) -> Config {
        let text = format!(
            "[graph]\ntenant_id = \"t\"\nclient_id = \"00000000-0000-0000-0000-0000000000c1\"\n[source]\norganizers = [\"8b081ef6-4792-4def-b2c9-c363a1bf41d5\"]\nkinds = [\"contacts\"]\ncontacts_select = {select}\n[store]\nurl = \"file:///tmp/x\"\n"
        );
        Config::parse(&text, &[], std::path::Path::new("/nonexistent")).expect("valid config")
    }

    #[test]
    fn the_folder_is_always_selected_once() {
        assert_eq!(select(&config(r#"["displayName"]"#)), ["displayName", "parentFolderId"]);
        assert_eq!(
            select(&config(r#"["parentFolderId", "displayName"]"#)),
            ["parentFolderId", "displayName"]
        );
        let all = config("[]");
        assert!(select(&all).is_empty(), "no $select: every property, the folder too");
        assert!(Contacts.configured_options(&all).is_empty());
        assert_eq!(
            Contacts.configured_options(&config(r#"["displayName"]"#)),
            ["$select=displayName,parentFolderId"]
        );
        let org = OrganizerId::parse("8b081ef6-4792-4def-b2c9-c363a1bf41d5").expect("guid");
        let start = crate::kinds::RoundStart {
            organizer: &org,
            source: Some("F1"),
            window: crate::kinds::Window {
                watermark: None,
                until: chrono::Utc::now(),
            },
        };
        let request = Contacts.first_request(&config(r#"["displayName"]"#), &start);
        assert!(
            request
                .url
                .as_str()
                .ends_with("/users/8b081ef6-4792-4def-b2c9-c363a1bf41d5/contactFolders/F1/contacts/delta?$select=displayName,parentFolderId"),
            "{}",
            request.url
        );
        assert_eq!(request.headers["prefer"], "odata.maxpagesize=100");
    }
}
