//! [`GraphSim`]'s test API for contacts: mailboxes, contact folders and
//! contacts, and the first requests of their lists and delta rounds.

use crate::data::common::Removal;
use crate::data::contacts::{Contact, ContactFolder, ContactFolderInfo};
use crate::http::encode_segment;
use crate::sim::GraphSim;
use crate::state::lock;

impl GraphSim {
    /// `{base}/users/{user}/contactFolders`: the first page of `user`'s
    /// top-level contact folders.
    pub fn contact_folders_url(&self, user: &str) -> String {
        format!("{}/users/{}/contactFolders", self.base_url(), encode_segment(user))
    }

    /// `{base}/users/{user}/contactFolders/{folder}/childFolders`: the first
    /// page of `folder`'s direct child folders.
    pub fn child_folders_url(&self, user: &str, folder: &str) -> String {
        format!(
            "{}/users/{}/contactFolders/{}/childFolders",
            self.base_url(),
            encode_segment(user),
            encode_segment(folder)
        )
    }

    /// The initial contacts delta URL for `user`'s `folder`.
    pub fn contacts_delta_url(&self, user: &str, folder: &str) -> String {
        format!(
            "{}/users/{}/contactFolders/{}/contacts/delta",
            self.base_url(),
            encode_segment(user),
            encode_segment(folder)
        )
    }

    /// Adds a contact named `display_name` to `user`'s `folder` and returns
    /// its id. `folder` is a folder id, or `contacts` (the well-known name of
    /// the default folder). The user gets a mailbox with its default
    /// `Contacts` folder on its first contact or folder; an unknown `folder`
    /// is created as a top-level folder (a child of the default folder) whose
    /// id and display name are `folder`.
    pub fn add_contact(&self, user: &str, folder: &str, display_name: &str) -> String {
        let seed = self.shared().config.seed;
        lock(&self.shared().data)
            .contacts
            .add_contact(seed, user, folder, display_name)
    }

    /// Adds a contact folder named `name` to `user`'s mailbox and returns its
    /// id (deterministic, standard base64 with `+`, `/` and `=` like real
    /// folder ids). `parent`: `None` for a top-level folder (a child of the
    /// default folder, listed by `/contactFolders`), else the id of its parent
    /// folder (or `contacts`), which is made as by [`GraphSim::add_contact`]
    /// if unknown. A nested folder is only found through its parent's
    /// `childFolders`.
    pub fn add_contact_folder(&self, user: &str, name: &str, parent: Option<&str>) -> String {
        let seed = self.shared().config.seed;
        lock(&self.shared().data)
            .contacts
            .add_contact_folder(seed, user, name, parent)
    }

    /// The id of `user`'s default `Contacts` folder (the mailbox is made if
    /// the user has none yet).
    pub fn default_contact_folder(&self, user: &str) -> String {
        let seed = self.shared().config.seed;
        lock(&self.shared().data).contacts.ensure_mailbox(seed, user).default_id
    }

    /// Every contact folder of `user` (the default one first, nested ones
    /// included), in order of creation; empty for a user without a mailbox.
    pub fn contact_folders(&self, user: &str) -> Vec<ContactFolderInfo> {
        let data = lock(&self.shared().data);
        data.contacts
            .all_folders(user)
            .into_iter()
            .map(ContactFolder::info)
            .collect()
    }

    /// Renames a live contact (no-op for unknown or removed contacts); the next
    /// delta round reports it.
    pub fn update_contact(&self, user: &str, folder: &str, id: &str, display_name: &str) {
        self.change_contact(user, folder, id, |c| {
            if c.removed.is_some() {
                return false;
            }
            c.display_name = display_name.to_owned();
            true
        });
    }

    /// Removes a contact: `hard` → the next delta round reports
    /// `@removed: {"reason": "deleted"}`, soft → `"changed"`. No-op for unknown
    /// contacts; a soft-removed contact can still be hard-removed.
    pub fn remove_contact(&self, user: &str, folder: &str, id: &str, hard: bool) {
        let reason = if hard { Removal::Deleted } else { Removal::Changed };
        self.change_contact(user, folder, id, |c| {
            if c.removed == Some(reason) || c.removed == Some(Removal::Deleted) {
                return false;
            }
            c.removed = Some(reason);
            true
        });
    }

    fn change_contact(&self, user: &str, folder: &str, id: &str, f: impl FnOnce(&mut Contact) -> bool) {
        lock(&self.shared().data).contacts.change_contact(user, folder, id, f);
    }
}
