//! Names, not only GUIDs: what a compliance officer searches by, recorded beside each item.
//!
//! When an item is archived, its manifest gets the meeting's `subject`, `startDateTime` and
//! `endDateTime` (meeting items: `GET /users/{o}/onlineMeetings/{meetingId}`,
//! `OnlineMeetings.Read.All`) and the organizer's `organizerName` and `organizerUpn` (every
//! kind; for contacts and ad hoc calls the mailbox user: `GET /users/{o}`, `User.Read.All`),
//! and the meeting's index gets the same names. The catalog copies them from the manifests.
//!
//! # Policy
//!
//! - **A failure to enrich never blocks archiving.** Any error (403, 404, 5xx, a timeout, a
//!   body that is not JSON) leaves the names absent and is logged once, at warn level, naming
//!   the permission a 403 points at; the item is archived as usual.
//! - **One attempt per meeting and per organizer per run**: results, failures included, are
//!   cached for the run ([`Names`]), so items of one meeting share one GET (with the Graph
//!   client's usual throttling and transient retries). The lookup runs while the item's
//!   content downloads, so it costs an item no time unless it is slower than the download.
//! - **A later run fills them in.** Manifests are written once, so what an item missed is
//!   remembered in its organizer's state ([`recarch_store::NamesPending`]: the meetings whose
//!   index lacks names, and a flag for the organizer's names; bounded) and read again at the
//!   start of that organizer's next pass ([`fill_in`]): found names go to the meeting's index
//!   ([`recarch_store::Archive::set_index_names`]) and, as additional catalog entries with the
//!   same `manifest` and `sha256`, to the catalog, whose readers merge them (`find::find`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt as _;
use recarch_delta::{DeltaClient, DeltaError, MeetingNames, UserNames};
use recarch_failure::error_chain;
use recarch_store::{Archive, CatalogEntry, Container, IndexNames, Kind, NamesPending, OrganizerId};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use url::Url;

use crate::pipeline::ItemContext;

/// A lookup done once per run: its answer, or `None` when it failed (logged then).
type Cached<T> = Arc<OnceCell<Option<T>>>;

/// The run's lookups of meetings and organizers, and what items archived without.
#[derive(Debug)]
pub struct Names {
    /// Graph, through the run's authenticated client (its retries and throttling pause).
    delta: DeltaClient,
    /// The Graph API base (`[graph].base_url`: national clouds have their own).
    base_url: Url,
    /// `(organizer, meetingId)` → the meeting's names.
    meetings: Mutex<HashMap<(OrganizerId, String), Cached<MeetingNames>>>,
    /// Organizer → its names.
    users: Mutex<HashMap<OrganizerId, Cached<UserNames>>>,
    /// What items archived in this run lacked, by kind and organizer, until the organizer's
    /// state is saved (`take_missing`).
    missing: Mutex<HashMap<(Kind, OrganizerId), NamesPending>>,
}

/// The names found for one item (each `None` when it was not asked for or not found).
#[derive(Debug, Clone, Default)]
pub struct ItemNames {
    /// The meeting's, for a meeting's item whose lookup succeeded.
    pub meeting: Option<MeetingNames>,
    /// The organizer's (the mailbox user's), when its lookup succeeded.
    pub organizer: Option<UserNames>,
}

impl ItemNames {
    /// The manifest members: `subject`, `startDateTime`, `endDateTime`, `organizerName`,
    /// `organizerUpn`, each only when known.
    pub fn manifest_members(&self) -> Map<String, Value> {
        let mut members = Map::new();
        for (name, value) in self.pairs() {
            if let Some(value) = value {
                members.insert(name.to_owned(), Value::String(value.to_owned()));
            }
        }
        members
    }

    /// The same names for a meeting's index.
    pub fn index_names(&self) -> IndexNames {
        let meeting = self.meeting.clone().unwrap_or_default();
        let user = self.organizer.clone().unwrap_or_default();
        IndexNames {
            subject: meeting.subject,
            start_date_time: meeting.start_date_time,
            end_date_time: meeting.end_date_time,
            organizer_name: user.display_name,
            organizer_upn: user.user_principal_name,
        }
    }

    fn pairs(&self) -> [(&'static str, Option<&str>); 5] {
        let meeting = self.meeting.as_ref();
        let user = self.organizer.as_ref();
        [
            ("subject", meeting.and_then(|m| m.subject.as_deref())),
            ("startDateTime", meeting.and_then(|m| m.start_date_time.as_deref())),
            ("endDateTime", meeting.and_then(|m| m.end_date_time.as_deref())),
            ("organizerName", user.and_then(|u| u.display_name.as_deref())),
            ("organizerUpn", user.and_then(|u| u.user_principal_name.as_deref())),
        ]
    }

    /// Adds to a catalog entry each name it lacks; `true` when it added any.
    fn fill_entry(&self, entry: &mut CatalogEntry) -> bool {
        let mut added = false;
        for (name, value) in self.pairs() {
            if let Some(value) = value {
                if !entry.extra.contains_key(name) {
                    entry.extra.insert(name.to_owned(), Value::String(value.to_owned()));
                    added = true;
                }
            }
        }
        added
    }
}

impl Names {
    /// Lookups through `delta` against the Graph API at `base_url`.
    pub fn new(delta: DeltaClient, base_url: Url) -> Self {
        Names {
            delta,
            base_url,
            meetings: Mutex::default(),
            users: Mutex::default(),
            missing: Mutex::default(),
        }
    }

    /// The names of `organizer` and, for a meeting's item, of `meeting_id`: both looked up at
    /// once, each at most once per run.
    pub async fn of(&self, organizer: &OrganizerId, meeting_id: Option<&str>) -> ItemNames {
        let meeting = async {
            match meeting_id.filter(|m| !m.is_empty()) {
                Some(id) => self.meeting(organizer, id).await,
                None => None,
            }
        };
        let (meeting, organizer) = tokio::join!(meeting, self.organizer(organizer));
        ItemNames { meeting, organizer }
    }

    /// The meeting's subject and times, or `None` (logged the first time) when Graph would not
    /// say.
    pub async fn meeting(&self, organizer: &OrganizerId, meeting_id: &str) -> Option<MeetingNames> {
        let cell = Arc::clone(
            lock(&self.meetings)
                .entry((organizer.clone(), meeting_id.to_owned()))
                .or_default(),
        );
        cell.get_or_init(|| async {
            match self
                .delta
                .online_meeting(&self.base_url, organizer.as_str(), meeting_id)
                .await
            {
                Ok(names) => Some(names),
                Err(e) => {
                    let hint = hint(
                        &e,
                        "the app needs the OnlineMeetings.Read.All application permission, and the Teams application access policy that covers this organizer's recordings",
                    );
                    tracing::warn!(%organizer, meeting = %meeting_id, error = %error_chain(&e), "cannot read the meeting's subject and times{hint}; its items are archived without them and a later run fills them in");
                    None
                }
            }
        })
        .await
        .clone()
    }

    /// The organizer's display name and principal name, or `None` (logged the first time).
    pub async fn organizer(&self, organizer: &OrganizerId) -> Option<UserNames> {
        let cell = Arc::clone(lock(&self.users).entry(organizer.clone()).or_default());
        cell.get_or_init(|| async {
            match self.delta.user_names(&self.base_url, organizer.as_str()).await {
                Ok(names) => Some(names),
                Err(e) => {
                    let hint = hint(&e, "the app needs the User.Read.All application permission");
                    tracing::warn!(%organizer, error = %error_chain(&e), "cannot read the organizer's names{hint}; its items are archived without them and a later run fills them in");
                    None
                }
            }
        })
        .await
        .clone()
    }

    /// Notes what an item of `kind` archived now lacked, for the organizer's state: its
    /// meeting (when the meeting's or the organizer's names are missing from its index) and
    /// the organizer's names.
    pub fn missed(&self, kind: Kind, organizer: &OrganizerId, meeting_id: Option<&str>, names: &ItemNames) {
        let meeting_id = meeting_id.filter(|m| !m.is_empty());
        let meeting_missed = meeting_id.is_some() && (names.meeting.is_none() || names.organizer.is_none());
        if !meeting_missed && names.organizer.is_some() {
            return;
        }
        let mut missing = lock(&self.missing);
        let pending = missing.entry((kind, organizer.clone())).or_default();
        pending.organizer |= names.organizer.is_none();
        if let (true, Some(meeting)) = (meeting_missed, meeting_id) {
            pending.meetings.insert(meeting.to_owned());
        }
    }

    /// What items of `kind` of `organizer` lacked since the last call (for its state).
    pub fn take_missing(&self, kind: Kind, organizer: &OrganizerId) -> NamesPending {
        lock(&self.missing)
            .remove(&(kind, organizer.clone()))
            .unwrap_or_default()
    }

    /// Whether items of `kind` of `organizer` lacked anything not taken yet.
    pub fn has_missing(&self, kind: Kind, organizer: &OrganizerId) -> bool {
        lock(&self.missing).contains_key(&(kind, organizer.clone()))
    }
}

/// `; <what to do>` for a 403, else nothing.
fn hint(e: &DeltaError, fix: &str) -> String {
    if matches!(e, DeltaError::Forbidden { .. }) {
        format!("; {fix}")
    } else {
        String::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Fills in what earlier runs could not read for `kind` of `organizer` (`pending`, from its
/// state): each pending meeting is looked up (once per run, shared with the items) and its
/// names set on its index, and every manifest the index lists gets a catalog entry with the
/// names it lacks; when the organizer's names are pending and now found, every manifest of
/// the kind without them gets one too. What is filled in leaves `pending`; what still fails
/// stays for the next run. The index keys are named in a ledger intent first and everything
/// is logged (catalog segment, then the ledger record) before this returns.
///
/// # Errors
/// A reason, for the organizer's log line, when the ledger intent or the log cannot be
/// written (nothing is written without its intent; `pending` keeps what was not done).
pub async fn fill_in(
    ctx: &ItemContext,
    kind: Kind,
    organizer: &OrganizerId,
    pending: &mut NamesPending,
) -> Result<(), String> {
    let names = &ctx.names;
    let user = names.organizer(organizer).await;
    let meetings: Vec<String> = pending.meetings.iter().cloned().collect();
    let keys: Vec<String> = meetings
        .iter()
        .map(|m| recarch_store::index_key(Container::Meeting, organizer, m))
        .collect();
    let intent = ctx
        .ledger
        .intend(keys)
        .await
        .map_err(|e| format!("cannot write its ledger intent for names: {}", error_chain(&e)))?;
    // Manifests given an entry here, so the organizer's sweep below does not repeat them.
    let mut cataloged = HashSet::new();
    let mut filled = 0usize;
    for meeting_id in meetings {
        let found = ItemNames {
            meeting: names.meeting(organizer, &meeting_id).await,
            organizer: user.clone(),
        };
        if found.meeting.is_none() && found.organizer.is_none() {
            continue;
        }
        let index = match ctx
            .archive
            .set_index_names(Container::Meeting, organizer, &meeting_id, &found.index_names())
            .await
        {
            Ok(index) => index,
            Err(e) => {
                tracing::warn!(%organizer, meeting = %meeting_id, error = %error_chain(&e), "cannot record the meeting's names in its index; the next run tries again");
                continue;
            }
        };
        let mut complete = true;
        for manifest in index.iter().flat_map(|i| i.entries.iter().map(|e| e.manifest.clone())) {
            complete &= catalog_names(ctx, &manifest, &found).await;
            cataloged.insert(manifest);
        }
        if complete && found.meeting.is_some() && found.organizer.is_some() {
            pending.meetings.remove(&meeting_id);
            filled += 1;
        }
    }
    if pending.organizer {
        if let Some(user) = user {
            let found = ItemNames {
                meeting: None,
                organizer: Some(user),
            };
            let mut manifests = ctx.archive.manifests_of(kind, organizer);
            let mut complete = true;
            while let Some(manifest) = manifests.next().await {
                match manifest {
                    Ok(manifest) => {
                        let key = Archive::manifest_key_of(kind, organizer, &manifest.id);
                        if !cataloged.contains(&key) && !manifest.extra.contains_key("organizerName") {
                            record(ctx, &key, &manifest, &found);
                        }
                    }
                    Err(e) => {
                        complete = false;
                        tracing::warn!(%organizer, %kind, error = %error_chain(&e), "cannot read a manifest to catalog the organizer's names; the next run tries again");
                        break;
                    }
                }
            }
            pending.organizer = !complete;
        }
    }
    crate::round::log_writes(ctx, intent.into_iter().collect()).await?;
    if filled > 0 || !pending.organizer {
        tracing::info!(%organizer, %kind, meetings = filled, still_pending = pending.meetings.len(), organizer_pending = pending.organizer, "filled in names an earlier run could not read");
    }
    Ok(())
}

/// Records, for the manifest at `key`, catalog entries with the names it lacks; `false` when
/// the manifest could not be read (the next run tries again).
async fn catalog_names(ctx: &ItemContext, key: &str, found: &ItemNames) -> bool {
    match ctx.archive.manifest_at(key).await {
        Ok(Some(manifest)) => {
            record(ctx, key, &manifest, found);
            true
        }
        // Listed by the index but gone: nothing to name.
        Ok(None) => true,
        Err(e) => {
            tracing::warn!(%key, error = %error_chain(&e), "cannot read a manifest to catalog its names; the next run tries again");
            false
        }
    }
}

/// Adds to the run's catalog writer an entry for each of `manifest`'s entries that lacks one
/// of the names found (same `manifest` and `sha256`: readers merge them).
fn record(ctx: &ItemContext, key: &str, manifest: &recarch_store::Manifest, found: &ItemNames) {
    let entries: Vec<CatalogEntry> = CatalogEntry::of_manifest(key, manifest)
        .into_iter()
        .filter_map(|mut entry| found.fill_entry(&mut entry).then_some(entry))
        .collect();
    ctx.catalog.record_entries(entries);
}
