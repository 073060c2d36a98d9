//! A mailbox's contact folders: the default `Contacts` folder (by its well-known name), the
//! folders in it (`/contactFolders`) and, recursively, every folder's `childFolders`; each
//! listing followed through its `@odata.nextLink` pages.

use std::collections::{HashSet, VecDeque};

use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use crate::client::DeltaClient;
use crate::error::DeltaError;
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
        let default: ContactFolder = match self.get_json(&default).await {
            Ok(folder) => folder,
            Err(DeltaError::Status { status, body, .. })
                if status == StatusCode::NOT_FOUND && NO_MAILBOX.contains(&body.code.as_str()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut seen: HashSet<String> = HashSet::from([default.id.clone()]);
        let mut folders = vec![default];
        // The folders in the default one are listed by `/contactFolders`; deeper ones only
        // through their parent's `childFolders`.
        let mut to_list: VecDeque<Url> = VecDeque::from([join(base_url, &["users", user, "contactFolders"])]);
        while let Some(mut url) = to_list.pop_front() {
            append_option(&mut url, "$select", "id,displayName,parentFolderId");
            loop {
                let page: FolderPage = self.get_json(&url).await?;
                for folder in page.value {
                    if !seen.insert(folder.id.clone()) {
                        continue;
                    }
                    if folders.len() >= MAX_CONTACT_FOLDERS {
                        return Err(DeltaError::Protocol {
                            host: crate::http::host_of(&url),
                            reason: format!("more than {MAX_CONTACT_FOLDERS} contact folders for one user"),
                        });
                    }
                    to_list.push_back(join(
                        base_url,
                        &["users", user, "contactFolders", &folder.id, "childFolders"],
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
        Ok(Some(folders))
    }
}
