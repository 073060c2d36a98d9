//! Outlook contacts: every user's mailbox, its contact folders (the default
//! one, top-level and nested ones) and their contacts, with the change
//! sequence that contacts delta rounds continue from.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::DateTime;

use crate::data::common::{EPOCH_SECS, Removal};
use crate::rng::{Rng, domain};

/// A contact folder as created in the simulator (see
/// [`GraphSim::contact_folders`](crate::GraphSim::contact_folders)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactFolderInfo {
    /// Its id (`displayName` too for folders made by [`GraphSim::add_contact`](crate::GraphSim::add_contact)).
    pub id: String,
    /// `displayName` (`Contacts` for the default folder).
    pub display_name: String,
    /// `parentFolderId`: the default folder's id for a top-level folder.
    pub parent_folder_id: String,
}

/// A simulated Outlook contact.
#[derive(Debug, Clone)]
pub(crate) struct Contact {
    pub(crate) id: String,
    pub(crate) display_name: String,
    pub(crate) created: String,
    pub(crate) modified: String,
    pub(crate) company: String,
    pub(crate) business_phone: String,
    /// Global contact change sequence number of the last change.
    pub(crate) change_seq: u64,
    pub(crate) removed: Option<Removal>,
}

/// The companies simulated contacts work for.
const COMPANIES: &[&str] = &[
    "Contoso",
    "Fabrikam",
    "Northwind Traders",
    "Tailspin Toys",
    "Litware",
    "Adventure Works",
    "Woodgrove Bank",
];

/// Contact properties `$select` may name.
pub(crate) const CONTACT_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "givenName",
    "surname",
    "emailAddresses",
    "parentFolderId",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "businessPhones",
    "companyName",
];

impl Contact {
    fn change_key(&self) -> String {
        let mut b = b"EQAAABYAAAD".to_vec();
        b.extend_from_slice(&self.change_seq.to_be_bytes());
        STANDARD.encode(b)
    }

    fn given_and_surname(&self) -> (String, String) {
        let mut parts = self.display_name.split_whitespace();
        let given = parts.next().unwrap_or_default().to_owned();
        let surname = parts.collect::<Vec<_>>().join(" ");
        (given, surname)
    }

    fn email(&self) -> String {
        let local: Vec<String> = self
            .display_name
            .split_whitespace()
            .map(|w| {
                w.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect::<String>()
                    .to_ascii_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect();
        if local.is_empty() {
            format!("contact{}@contoso.com", self.change_seq)
        } else {
            format!("{}@contoso.com", local.join("."))
        }
    }

    /// The contact JSON object, restricted to `select` when given.
    pub(crate) fn to_json(&self, folder: &str, select: Option<&[String]>) -> serde_json::Value {
        if let Some(reason) = self.removed {
            return serde_json::json!({
                "@odata.type": "#microsoft.graph.contact",
                "id": self.id,
                "@removed": { "reason": reason.reason() },
            });
        }
        let ck = self.change_key();
        let mut m = serde_json::Map::new();
        m.insert("@odata.type".into(), "#microsoft.graph.contact".into());
        m.insert("@odata.etag".into(), format!("W/\"{ck}\"").into());
        m.insert("id".into(), self.id.clone().into());
        let (given, surname) = self.given_and_surname();
        let fields: [(&str, serde_json::Value); 11] = [
            ("createdDateTime", self.created.clone().into()),
            ("lastModifiedDateTime", self.modified.clone().into()),
            ("changeKey", ck.into()),
            ("categories", serde_json::Value::Array(Vec::new())),
            ("parentFolderId", folder.to_owned().into()),
            ("displayName", self.display_name.clone().into()),
            ("givenName", given.into()),
            ("surname", surname.into()),
            (
                "emailAddresses",
                serde_json::json!([{ "name": self.display_name, "address": self.email() }]),
            ),
            ("businessPhones", serde_json::json!([self.business_phone])),
            ("companyName", self.company.clone().into()),
        ];
        for (name, value) in fields {
            let wanted = select.is_none_or(|s| s.iter().any(|f| f.eq_ignore_ascii_case(name)));
            if wanted {
                m.insert(name.to_owned(), value);
            }
        }
        serde_json::Value::Object(m)
    }
}

/// One user's contact folder.
#[derive(Debug, Default)]
pub(crate) struct ContactFolder {
    /// Its id.
    pub(crate) folder: String,
    pub(crate) display_name: String,
    /// The id of its parent: the default folder for a top-level folder, the
    /// mailbox root for the default folder.
    pub(crate) parent_id: String,
    /// Creation order among all folders.
    pub(crate) seq: u64,
    pub(crate) contacts: Vec<Contact>,
    pub(crate) by_id: HashMap<String, usize>,
}

impl ContactFolder {
    /// The contactFolder JSON object.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.folder,
            "displayName": self.display_name,
            "parentFolderId": self.parent_id,
        })
    }

    pub(crate) fn info(&self) -> ContactFolderInfo {
        ContactFolderInfo {
            id: self.folder.clone(),
            display_name: self.display_name.clone(),
            parent_folder_id: self.parent_id.clone(),
        }
    }
}

/// A user's mailbox, as far as contacts go.
#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    /// The default `Contacts` folder (whose parent, the mailbox root, is
    /// never listed).
    pub(crate) default_id: String,
}

/// The well-known name of the default contacts folder.
pub(crate) const DEFAULT_FOLDER_ALIAS: &str = "contacts";

/// The display name of the default contacts folder.
pub(crate) const DEFAULT_FOLDER_NAME: &str = "Contacts";

/// Every user's mailbox: contact folders and contacts.
#[derive(Debug, Default)]
pub(crate) struct Contacts {
    /// (lowercased user, folder id) → folder.
    pub(crate) folders: HashMap<(String, String), ContactFolder>,
    /// Lowercased user → its mailbox.
    pub(crate) mailboxes: HashMap<String, Mailbox>,
    /// The contact change sequence (creations, renames, removals).
    pub(crate) seq: u64,
    contact_counter: u64,
    /// Contact folders (and mailbox roots) created so far, for their ids and order.
    folder_counter: u64,
}

impl Contacts {
    /// A new contact id, shaped like real ones (standard base64 with `+`, `/`, `=`),
    /// and the contact's number.
    fn new_contact_id(&mut self, seed: u64) -> (String, u64) {
        let n = self.contact_counter;
        self.contact_counter += 1;
        let mut r = Rng::derive(seed, domain::CONTACT, n);
        let mut raw = r.bytes(70); // 70 = 3*23 + 1 → "=="
        raw[..4].copy_from_slice(&[0x00, 0x03, 0x24, 0x00]); // "AAMkA"
        raw[30..33].copy_from_slice(&[0xFB, 0xFF, 0xBF]);
        raw[60..68].copy_from_slice(&n.to_be_bytes());
        (STANDARD.encode(raw), n)
    }

    /// A new folder id, shaped like real ones (`AAMkA…`, standard base64
    /// with `+`, `/` and one `=`), and its creation number.
    fn new_folder_id(&mut self, seed: u64) -> (String, u64) {
        let n = self.folder_counter;
        self.folder_counter += 1;
        let mut r = Rng::derive(seed, domain::CONTACT_FOLDER, n);
        let mut raw = r.bytes(47); // 47 = 3*15 + 2 → "="
        raw[..4].copy_from_slice(&[0x00, 0x03, 0x24, 0x00]); // "AAMkA"
        raw[12..15].copy_from_slice(&[0xFB, 0xFF, 0xBF]); // "+/+/"
        raw[30..38].copy_from_slice(&n.to_be_bytes());
        (STANDARD.encode(raw), n)
    }

    /// `user`'s mailbox (lowercased key), made with its default folder if it
    /// has none yet.
    pub(crate) fn ensure_mailbox(&mut self, seed: u64, user: &str) -> Mailbox {
        let key = user.to_ascii_lowercase();
        if let Some(m) = self.mailboxes.get(&key) {
            return m.clone();
        }
        let (root_id, _) = self.new_folder_id(seed);
        let (default_id, seq) = self.new_folder_id(seed);
        self.folders.insert(
            (key.clone(), default_id.clone()),
            ContactFolder {
                folder: default_id.clone(),
                display_name: DEFAULT_FOLDER_NAME.to_owned(),
                parent_id: root_id.clone(),
                seq,
                ..ContactFolder::default()
            },
        );
        let m = Mailbox { default_id };
        self.mailboxes.insert(key, m.clone());
        m
    }

    /// The folder id `folder` names for `user`: the default folder's id for
    /// the well-known name `contacts` (any case) when the user has a mailbox,
    /// else `folder` itself.
    pub(crate) fn resolve_folder(&self, user: &str, folder: &str) -> String {
        if folder.eq_ignore_ascii_case(DEFAULT_FOLDER_ALIAS) {
            if let Some(m) = self.mailboxes.get(&user.to_ascii_lowercase()) {
                return m.default_id.clone();
            }
        }
        folder.to_owned()
    }

    /// `user`'s folder `folder` (an id, or the well-known `contacts`), if
    /// it has one.
    pub(crate) fn folder(&self, user: &str, folder: &str) -> Option<&ContactFolder> {
        let id = self.resolve_folder(user, folder);
        self.folders.get(&(user.to_ascii_lowercase(), id))
    }

    /// Makes sure `user` has a folder `folder` (an id or the well-known
    /// `contacts`); an unknown one is created at the top level (under the
    /// default folder), named after its id. Returns its id.
    fn ensure_folder(&mut self, seed: u64, user: &str, folder: &str) -> String {
        let mailbox = self.ensure_mailbox(seed, user);
        let id = self.resolve_folder(user, folder);
        let key = (user.to_ascii_lowercase(), id.clone());
        if !self.folders.contains_key(&key) {
            let seq = self.folder_counter;
            self.folder_counter += 1;
            self.folders.insert(
                key,
                ContactFolder {
                    folder: id.clone(),
                    display_name: id.clone(),
                    parent_id: mailbox.default_id,
                    seq,
                    ..ContactFolder::default()
                },
            );
        }
        id
    }

    /// Adds a folder named `name` under `parent` (the top level when `None`;
    /// an unknown parent is created as by [`Contacts::ensure_folder`]) and
    /// returns its id.
    pub(crate) fn add_contact_folder(&mut self, seed: u64, user: &str, name: &str, parent: Option<&str>) -> String {
        let mailbox = self.ensure_mailbox(seed, user);
        let parent_id = match parent {
            Some(p) => self.ensure_folder(seed, user, p),
            None => mailbox.default_id,
        };
        let (id, seq) = self.new_folder_id(seed);
        self.folders.insert(
            (user.to_ascii_lowercase(), id.clone()),
            ContactFolder {
                folder: id.clone(),
                display_name: name.to_owned(),
                parent_id,
                seq,
                ..ContactFolder::default()
            },
        );
        id
    }

    /// The direct child folders of `parent` in `user`'s mailbox, in order of creation.
    pub(crate) fn child_folders(&self, user: &str, parent: &str) -> Vec<&ContactFolder> {
        let key = user.to_ascii_lowercase();
        let mut v: Vec<&ContactFolder> = self
            .folders
            .iter()
            .filter(|((u, _), f)| *u == key && f.parent_id == parent)
            .map(|(_, f)| f)
            .collect();
        v.sort_by_key(|f| f.seq);
        v
    }

    /// Every folder of `user`, the default one included, in order of creation.
    pub(crate) fn all_folders(&self, user: &str) -> Vec<&ContactFolder> {
        let key = user.to_ascii_lowercase();
        let mut v: Vec<&ContactFolder> = self
            .folders
            .iter()
            .filter(|((u, _), _)| *u == key)
            .map(|(_, f)| f)
            .collect();
        v.sort_by_key(|f| f.seq);
        v
    }

    /// Adds a contact named `display_name` to `user`'s `folder` (made as by
    /// [`Contacts::ensure_folder`] if unknown) and returns its id.
    pub(crate) fn add_contact(&mut self, seed: u64, user: &str, folder: &str, display_name: &str) -> String {
        let folder = self.ensure_folder(seed, user, folder);
        let (id, n) = self.new_contact_id(seed);
        self.seq += 1;
        let seq = self.seq;
        let stamp = contact_stamp(seq);
        let slot = usize::try_from(n).unwrap_or(0);
        let contact = Contact {
            id: id.clone(),
            display_name: display_name.to_owned(),
            created: stamp.clone(),
            modified: stamp,
            company: COMPANIES[slot % COMPANIES.len()].to_owned(),
            business_phone: format!("+1 425 555 {:04}", 100 + n % 9900),
            change_seq: seq,
            removed: None,
        };
        if let Some(f) = self.folders.get_mut(&(user.to_ascii_lowercase(), folder)) {
            f.by_id.insert(id.clone(), f.contacts.len());
            f.contacts.push(contact);
        }
        id
    }

    /// Applies `f` to contact `id` of `user`'s `folder` (an id or
    /// `contacts`); when it says it changed something, the change gets the
    /// next sequence number. No-op for unknown folders or contacts.
    pub(crate) fn change_contact(&mut self, user: &str, folder: &str, id: &str, f: impl FnOnce(&mut Contact) -> bool) {
        let next_seq = self.seq + 1;
        let folder = self.resolve_folder(user, folder);
        let Some(folder) = self.folders.get_mut(&(user.to_ascii_lowercase(), folder)) else {
            return;
        };
        let Some(contact) = folder.by_id.get(id).copied().and_then(|i| folder.contacts.get_mut(i)) else {
            return;
        };
        if f(contact) {
            contact.change_seq = next_seq;
            contact.modified = contact_stamp(next_seq);
            self.seq = next_seq;
        }
    }
}

/// A deterministic timestamp for contact change `seq`.
pub(crate) fn contact_stamp(seq: u64) -> String {
    let secs = EPOCH_SECS.saturating_add(i64::try_from(seq).unwrap_or(0).saturating_mul(60));
    DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
