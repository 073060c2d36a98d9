//! A mailbox's contact folders: the default `Contacts` folder (by its well-known name, or else as
//! the parent of the folders in it), the
//! folders in it (`/contactFolders`) and, recursively, every folder's `childFolders`; each
//! listing followed through its `@odata.nextLink` pages.

use std::collections::{HashSet, VecDeque};

use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use crate::client::DeltaClient;
use crate::error::DeltaError;
use crate::http::host_of;
use crate::resources::{append_option, join};

/// Folders of one mailbox beyond which the listing stops with an error (a cycle or a
/// runaway answer must not grow memory without bound).
pub const MAX_CONTACT_FOLDERS: usize = 10_000;

/// Error codes with which Graph says a user has no mailbox it can read (not an error for
/// archiving contacts: there are none).
const NO_MAILBOX: &[&str] = &["MailboxNotEnabledForRESTAPI", "MailboxNotFound"];

/// A contact folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactFolder {
    /// The folder id.
    pub id: String,
    /// Its name (`Contacts` for the default folder).
    #[serde(default)]
    pub display_name: Option<String>,
    /// The folder it is in (absent for the default folder).
    #[serde(default)]
    pub parent_folder_id: Option<String>,
}

#[derive(Deserialize)]
struct FolderPage {
    #[serde(default)]
    value: Vec<ContactFolder>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

impl DeltaClient {
    /// Every contact folder of `user`: the default folder first, then the folders below it,
    /// breadth first, each once. `Ok(None)` when the user has no mailbox Graph can read
    /// (`MailboxNotEnabledForRESTAPI`).
    ///
    /// # Errors
    /// Graph errors (403 when the application may not read the mailbox), and
    /// [`DeltaError::Protocol`] beyond [`MAX_CONTACT_FOLDERS`] folders.
    pub async fn contact_folders(&self, base_url: &Url, user: &str) -> Result<Option<Vec<ContactFolder>>, DeltaError> {
        let default = join(base_url, &["users", user, "contactFolders", "contacts"]);
        let default: Option<ContactFolder> = match self.get_json(&default).await {
            Ok(folder) => Some(folder),
            Err(e) if no_mailbox(&e) => return Ok(None),
            // A service that does not resolve the well-known name: the default folder is then
            // the parent of the folders listed in it (below), if there are any.
            Err(DeltaError::Status { status, .. }) if matches!(status.as_u16(), 400 | 404) => {
                tracing::info!(%user, %status, "the default contact folder is not found by its well-known name; taking it from its folders' parentFolderId");
                None
            }
            Err(e) => return Err(e),
        };
        let mut seen: HashSet<String> = HashSet::new();
        let mut folders = Vec::new();
        let mut default_known = false;
        if let Some(default) = default {
            seen.insert(default.id.clone());
            folders.push(default);
            default_known = true;
        }
        // The folders in the default one are listed by `/contactFolders`; deeper ones only
        // through their parent's `childFolders`, which a service may not offer (404: no
        // deeper folders).
        let top = join(base_url, &["users", user, "contactFolders"]);
        let mut to_list: VecDeque<(Url, bool)> = VecDeque::from([(top, true)]);
        while let Some((mut url, is_top)) = to_list.pop_front() {
            append_option(&mut url, "$select", "id,displayName,parentFolderId");
            loop {
                let page: FolderPage = match self.get_json(&url).await {
                    Ok(page) => page,
                    Err(e) if is_top && no_mailbox(&e) => return Ok(None),
                    Err(DeltaError::Status { status, .. }) if !is_top && status == StatusCode::NOT_FOUND => {
                        tracing::debug!(%user, "no childFolders listing for a contact folder; taking it as having none");
                        break;
                    }
                    Err(e) => return Err(e),
                };
                for folder in page.value {
                    if is_top && !default_known {
                        if let Some(parent) = &folder.parent_folder_id {
                            if seen.insert(parent.clone()) {
                                folders.insert(
                                    0,
                                    ContactFolder {
                                        id: parent.clone(),
                                        display_name: None,
                                        parent_folder_id: None,
                                    },
                                );
                            }
                            default_known = true;
                        }
                    }
                    if !seen.insert(folder.id.clone()) {
                        continue;
                    }
                    if folders.len() >= MAX_CONTACT_FOLDERS {
                        return Err(DeltaError::Protocol {
                            host: host_of(&url),
                            reason: format!("more than {MAX_CONTACT_FOLDERS} contact folders for one user"),
                        });
                    }
                    to_list.push_back((
                        join(base_url, &["users", user, "contactFolders", &folder.id, "childFolders"]),
                        false,
                    ));
                    folders.push(folder);
                }
                match page.next_link {
                    // Opaque: followed verbatim (and only on the Graph origin).
                    Some(next) => {
                        url = Url::parse(&next).map_err(|e| DeltaError::InvalidLink { reason: e.to_string() })?;
                    }
                    None => break,
                }
            }
        }
        if !default_known {
            tracing::warn!(%user, "the default contact folder could not be found (neither by its well-known name nor as a folder's parent); its contacts are not archived");
        }
        Ok(Some(folders))
    }
}

/// Whether `e` is Graph saying the user has no mailbox it can read.
fn no_mailbox(e: &DeltaError) -> bool {
    matches!(e, DeltaError::Status { status, body, .. }
        if *status == StatusCode::NOT_FOUND && NO_MAILBOX.contains(&body.code.as_str()))
}
