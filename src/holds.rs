//! Legal holds: `recarch hold place`, `hold release` and `hold ls`. A hold is a matter's
//! record under `holds/` stating the filters (those of `ls`) that select what it covers: the
//! items that match now and every item archived later that matches, until the matter is
//! released. Each action is a ledger event (`hold.place`, `hold.release`) with its actor. A
//! hold always wins over retention: nothing it covers is disposed of.

use std::collections::BTreeMap;

use chrono::Utc;
use recarch_store::ledger::LedgerEvent;
use recarch_store::{Archive, CatalogEntry, HOLD_SCHEMA, HoldAction, HoldRecord, Matter};
use serde_json::{Value, json};

use crate::exit::{Exit, ExitError};
use crate::find::filter::Filters;
use crate::ledger::Ledger;
use recarch_failure::error_chain;

/// The longest matter name accepted.
const MAX_MATTER: usize = 200;

/// The active holds: each active matter with the filters of its `place` records.
#[derive(Debug, Default, Clone)]
pub struct ActiveHolds {
    matters: Vec<(String, Vec<Filters>)>,
}

impl ActiveHolds {
    /// The active holds of `archive`.
    ///
    /// # Errors
    /// Exit 4 when `holds/` cannot be read (a hold record that cannot be read is an error:
    /// holds decide what may be deleted).
    pub async fn read(archive: &Archive) -> Result<ActiveHolds, ExitError> {
        let matters = read_matters(archive).await?;
        Ok(ActiveHolds::of(&matters))
    }

    fn of(matters: &BTreeMap<String, Matter>) -> ActiveHolds {
        let matters = matters
            .values()
            .filter(|m| m.is_active())
            .map(|m| {
                let filters = m
                    .active_places()
                    .iter()
                    .map(|p| serde_json::from_value(p.record.filters.clone()).unwrap_or_default())
                    .collect();
                (m.name.clone(), filters)
            })
            .collect();
        ActiveHolds { matters }
    }

    /// The matters that hold `entry`.
    pub fn covering(&self, entry: &CatalogEntry) -> Vec<&str> {
        self.matters
            .iter()
            .filter(|(_, filters)| filters.iter().any(|f| f.matches(entry)))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Whether no hold is active.
    pub fn is_empty(&self) -> bool {
        self.matters.is_empty()
    }

    /// How many matters are active.
    pub fn len(&self) -> usize {
        self.matters.len()
    }
}

/// Legal holds on the store's own objects: set where the store keeps them (S3 Object Lock,
/// Azure immutability), so that the store itself refuses to delete what a matter holds.
/// Elsewhere (local disk) the hold records alone decide, in recarch's own commands.
#[derive(Debug, Clone, Default)]
pub struct StoreHolds {
    /// The active holds, as read when the run began.
    pub active: ActiveHolds,
    /// What the store keeps, when it was asked and answered (see [`store_support`]).
    pub support: Option<recarch_store::WormSupport>,
}

impl StoreHolds {
    /// The active holds of `archive`, and whether its store keeps legal holds.
    ///
    /// # Errors
    /// Exit 4 when `holds/` or the store's configuration cannot be read.
    pub async fn read(archive: &Archive) -> Result<StoreHolds, ExitError> {
        let active = ActiveHolds::read(archive).await?;
        // Asked only when there is something to keep: a credential that may not read the
        // bucket's configuration costs nothing to those who use neither.
        let support = if active.is_empty() && archive.worm().is_none() {
            None
        } else {
            store_support(archive).await?
        };
        Ok(StoreHolds { active, support })
    }

    /// Whether the store keeps legal holds.
    pub fn enforced(&self) -> bool {
        self.support == Some(recarch_store::WormSupport::Enforced)
    }

    /// Puts the store's legal hold on an item just archived, when an active matter covers
    /// it (see [`set_on_store`]).
    ///
    /// # Errors
    /// The first store failure.
    pub async fn hold_new(
        &self,
        archive: &Archive,
        manifest: &recarch_store::Manifest,
    ) -> Result<(), recarch_store::StoreError> {
        if !self.enforced() || self.active.is_empty() {
            return Ok(());
        }
        let Some(key) = manifest.key() else {
            return Ok(());
        };
        let entries = CatalogEntry::of_manifest(&key, manifest);
        let covered: Vec<&CatalogEntry> = entries.iter().filter(|e| !self.active.covering(e).is_empty()).collect();
        if covered.is_empty() {
            return Ok(());
        }
        match set_on_store(archive, &covered, true).await.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

/// Whether the store keeps objects write-once and legal holds (S3 with Object Lock, Azure
/// with version-level immutability), as it answers; `None` when it cannot tell and no
/// retention mode is set.
///
/// # Errors
/// Exit 4 when the store's configuration cannot be read and a retention mode is set.
pub async fn store_support(archive: &Archive) -> Result<Option<recarch_store::WormSupport>, ExitError> {
    match archive.worm_support().await {
        Ok(support) => Ok(Some(support)),
        // Without a retention mode, a store whose configuration cannot be read is taken as
        // one that keeps no holds: the hold records still decide in recarch's own commands.
        Err(e) if archive.worm().is_none() => {
            tracing::warn!(store = archive.display_url(), error = %error_chain(&e), "cannot read whether the store keeps legal holds (S3: s3:GetBucketObjectLockConfiguration); holds are recorded, not set on the store's objects");
            Ok(None)
        }
        Err(e) => Err(ExitError::new(
            Exit::Fatal,
            anyhow::anyhow!(
                "cannot read whether {} keeps legal holds: {}",
                archive.display_url(),
                error_chain(&e)
            ),
        )),
    }
}

/// Whether the store keeps legal holds (see [`store_support`]).
///
/// # Errors
/// As [`store_support`].
pub async fn store_keeps_holds(archive: &Archive) -> Result<bool, ExitError> {
    Ok(store_support(archive).await? == Some(recarch_store::WormSupport::Enforced))
}

/// Objects whose store legal hold is set at once.
const HOLD_CONCURRENCY: usize = 8;

/// Sets (`on`) or clears the store's legal hold on the manifest and the blob of each of
/// `entries`; returns the objects that failed, with why.
pub async fn set_on_store(
    archive: &Archive,
    entries: &[&CatalogEntry],
    on: bool,
) -> Vec<(String, recarch_store::StoreError)> {
    let mut keys: Vec<String> = Vec::new();
    let mut failed = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        let blob = match blob_of(entry) {
            Ok(blob) => Some(blob),
            Err(e) => {
                failed.push((entry.manifest.clone(), e));
                None
            }
        };
        for key in std::iter::once(entry.manifest.clone()).chain(blob) {
            if seen.insert(key.clone()) {
                keys.push(key);
            }
        }
    }
    failed.extend(set_keys_on_store(archive, keys, on).await);
    failed
}

/// The key of `entry`'s blob (built by the store's layout), or why there is none.
fn blob_of(entry: &CatalogEntry) -> Result<String, recarch_store::StoreError> {
    recarch_store::Sha256Digest::from_hex(&entry.sha256).map(|digest| recarch_store::blob_key(&digest))
}

/// Sets (`on`) or clears the store's legal hold on each of `keys`, a few at once; returns
/// the objects that failed, with why.
async fn set_keys_on_store(archive: &Archive, keys: Vec<String>, on: bool) -> Vec<(String, recarch_store::StoreError)> {
    use futures::StreamExt as _;
    futures::stream::iter(keys)
        .map(|key| async move {
            let set = archive.set_legal_hold(&key, on).await;
            set.err().map(|e| (key, e))
        })
        .buffer_unordered(HOLD_CONCURRENCY)
        .filter_map(futures::future::ready)
        .collect()
        .await
}

/// Exit 1 naming the objects whose store hold could not be changed (none: `Ok`).
fn store_failures(failed: &[(String, recarch_store::StoreError)], on: bool, retry: &str) -> Result<(), ExitError> {
    let Some((key, e)) = failed.first() else {
        return Ok(());
    };
    Err(ExitError::new(
        Exit::Partial,
        anyhow::anyhow!(
            "the hold record is written, but the store's legal hold could not be {} on {} objects (first: {key}: {}); recarch honours the record meanwhile; {retry}",
            if on { "set" } else { "cleared" },
            failed.len(),
            error_chain(e)
        ),
    ))
}

async fn read_matters(archive: &Archive) -> Result<BTreeMap<String, Matter>, ExitError> {
    archive.matters().await.map_err(|e| {
        ExitError::new(
            Exit::Fatal,
            anyhow::anyhow!(
                "cannot read the holds in {}: {}",
                archive.display_url(),
                error_chain(&e)
            ),
        )
    })
}

fn check_matter(matter: &str) -> Result<String, ExitError> {
    let matter = matter.trim();
    if matter.is_empty() || matter.len() > MAX_MATTER || matter.chars().any(char::is_control) {
        return Err(ExitError::new(
            Exit::Config,
            anyhow::anyhow!(
                "--matter {matter:?}: a matter is 1 to {MAX_MATTER} bytes of text without control characters"
            ),
        ));
    }
    Ok(matter.to_owned())
}

/// Writes a record of `action` on `matter` (named in a ledger intent first) and logs it as a
/// `hold.place` or `hold.release` event with this process's actor; returns the record's key
/// and the ledger record's.
async fn write(
    archive: &Archive,
    ledger: &Ledger,
    matter: &str,
    action: HoldAction,
    reason: Option<String>,
    filters: Value,
    items: u64,
) -> Result<(String, Option<String>), ExitError> {
    let record = &HoldRecord {
        schema: HOLD_SCHEMA.into(),
        matter: matter.to_owned(),
        action,
        time: Utc::now(),
        actor: serde_json::to_value(crate::ledger::actor(ledger.shard())).unwrap_or(Value::Null),
        reason: reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()),
        filters,
        items,
    };
    let event = match action {
        HoldAction::Place => LedgerEvent::HoldPlace,
        HoldAction::Release => LedgerEvent::HoldRelease,
    };
    let key = Archive::hold_key(record);
    let written = async {
        let intent = ledger.intend(vec![key.clone()]).await?;
        archive.put_hold(&key, record).await?;
        let mut details = serde_json::Map::new();
        details.insert("matter".into(), json!(record.matter));
        details.insert("record".into(), json!(key));
        details.insert("items".into(), json!(record.items));
        if let Some(reason) = &record.reason {
            details.insert("reason".into(), json!(reason));
        }
        if !record.filters.is_null() {
            details.insert("filters".into(), record.filters.clone());
        }
        ledger.log(intent.into_iter().collect(), event, details).await
    }
    .await;
    let appended = written.map_err(|e| {
        ExitError::new(
            Exit::Fatal,
            anyhow::anyhow!("cannot write the hold record {key}: {}", error_chain(&e)),
        )
    })?;
    Ok((key, appended.map(|r| r.key)))
}

/// `hold place`: the matter holds what `filters` select, now and as it is archived.
pub async fn place_cli(
    archive: &Archive,
    ledger: &Ledger,
    matter: &str,
    filters: &Filters,
    reason: Option<String>,
) -> Result<Exit, ExitError> {
    let matter = check_matter(matter)?;
    let enforced = store_keeps_holds(archive).await?;
    let found = crate::find::find(archive, ledger, filters).await?.into_entries()?;
    let (key, logged) = write(
        archive,
        ledger,
        &matter,
        HoldAction::Place,
        reason,
        serde_json::to_value(filters).unwrap_or(Value::Null),
        found.len() as u64,
    )
    .await?;
    let scope = if filters.is_empty() {
        "every item in the archive".to_owned()
    } else {
        format!("what matches {}", serde_json::to_string(filters).unwrap_or_default())
    };
    if enforced {
        let entries: Vec<&CatalogEntry> = found.iter().collect();
        let failed = set_on_store(archive, &entries, true).await;
        store_failures(&failed, true, "run the same `recarch hold place` again to set the rest")?;
    }
    crate::output::finish(
        crate::outln!(
            "hold placed: matter {matter:?} holds {scope}: {} items now, and each item archived later that matches, until it is released; record {key}, ledger record {}",
            found.len(),
            logged.as_deref().unwrap_or("none")
        ),
        Exit::Ok,
    )
}

/// `hold release`: the matter holds nothing any more. Exit 1 when it holds nothing now.
pub async fn release_cli(
    archive: &Archive,
    ledger: &Ledger,
    matter: &str,
    reason: Option<String>,
) -> Result<Exit, ExitError> {
    let matter = check_matter(matter)?;
    let matters = read_matters(archive).await?;
    if !matters.get(&matter).is_some_and(Matter::is_active) {
        let known: Vec<&str> = matters
            .values()
            .filter(|m| m.is_active())
            .map(|m| m.name.as_str())
            .collect();
        return Err(ExitError::new(
            Exit::Partial,
            anyhow::anyhow!(
                "matter {matter:?} holds nothing: {}",
                if known.is_empty() {
                    "no hold is active".to_owned()
                } else {
                    format!("the active matters are {known:?} (recarch hold ls)")
                }
            ),
        ));
    }
    // What only this matter holds, whose store hold is cleared once the release is recorded.
    let enforced = store_keeps_holds(archive).await?;
    let mut released = Vec::new();
    if enforced {
        let (this, others): (BTreeMap<String, Matter>, BTreeMap<String, Matter>) =
            matters.clone().into_iter().partition(|(name, _)| *name == matter);
        let (this, others) = (ActiveHolds::of(&this), ActiveHolds::of(&others));
        let mut everything = crate::find::find(archive, ledger, &Filters::default()).await?;
        // A blob shared with an item another matter holds stays held.
        let mut still_held = std::collections::HashSet::new();
        let mut only_this = Vec::new();
        while let Some(entry) = everything.next_entry()? {
            if !others.covering(&entry).is_empty() {
                still_held.insert(entry.sha256);
            } else if !this.covering(&entry).is_empty() {
                only_this.push(entry);
            }
        }
        released = only_this
            .into_iter()
            .map(|entry| (still_held.contains(entry.sha256.as_str()), entry))
            .collect();
    }
    let (key, logged) = write(archive, ledger, &matter, HoldAction::Release, reason, Value::Null, 0).await?;
    if enforced {
        let mut failed = Vec::new();
        let mut keys = Vec::new();
        for (blob_held, entry) in &released {
            keys.push(entry.manifest.clone());
            if !blob_held {
                match blob_of(entry) {
                    Ok(blob) => keys.push(blob),
                    Err(e) => failed.push((entry.manifest.clone(), e)),
                }
            }
        }
        failed.extend(set_keys_on_store(archive, keys, false).await);
        store_failures(
            &failed,
            false,
            "clear them by hand (aws s3api put-object-legal-hold … --legal-hold Status=OFF) or ask for help",
        )?;
    }
    crate::output::finish(
        crate::outln!(
            "hold released: matter {matter:?} holds nothing now (items other matters hold stay held); record {key}, ledger record {}",
            logged.as_deref().unwrap_or("none")
        ),
        Exit::Ok,
    )
}

/// `hold ls`: every matter, active or released, with what it holds now.
pub async fn ls_cli(archive: &Archive, ledger: &Ledger, json_out: bool) -> Result<Exit, ExitError> {
    let matters = read_matters(archive).await?;
    let active = ActiveHolds::of(&matters);
    // What each active matter holds now: one pass over the catalog.
    let mut held: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    if !active.is_empty() {
        let mut everything = crate::find::find(archive, ledger, &Filters::default()).await?;
        while let Some(entry) = everything.next_entry()? {
            for matter in active.covering(&entry) {
                let counts = held.entry(matter).or_default();
                counts.0 += 1;
                counts.1 += entry.size;
            }
        }
    }
    let mut printed = Ok(());
    if !json_out && !matters.is_empty() {
        printed = crate::outln!(
            "{:<28} {:<9} {:>7} {:>10}  {:<24} {:<20} REASON",
            "MATTER",
            "STATE",
            "ITEMS",
            "BYTES",
            "SINCE",
            "BY"
        );
    }
    for matter in matters.values() {
        if printed.is_err() {
            break;
        }
        let places = matter.active_places();
        let first = if matter.is_active() {
            places.first()
        } else {
            matter.records.last()
        };
        let (items, bytes) = held.get(matter.name.as_str()).copied().unwrap_or_default();
        let since = first
            .map(|r| r.record.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let by = first
            .and_then(|r| r.record.actor.get("user").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let reason = first.and_then(|r| r.record.reason.clone()).unwrap_or_default();
        let state = if matter.is_active() { "active" } else { "released" };
        printed = if json_out {
            let line = json!({
                "matter": matter.name,
                "state": state,
                "since": since,
                "by": first.map(|r| &r.record.actor),
                "reason": reason,
                "filters": places.iter().filter(|_| matter.is_active()).map(|p| &p.record.filters).collect::<Vec<_>>(),
                "items": items,
                "bytes": bytes,
                "records": matter.records.iter().map(|r| &r.key).collect::<Vec<_>>(),
            });
            crate::outln!("{line}")
        } else {
            crate::outln!(
                "{:<28} {:<9} {:>7} {:>10}  {:<24} {:<20} {}",
                matter.name,
                state,
                items,
                recarch_store::human_bytes(bytes),
                since,
                by,
                reason
            )
        };
    }
    crate::output::finish(printed, Exit::Ok)
}

/// The matters holding each of `entries`, by manifest (for `show`).
pub async fn holding(archive: &Archive, entries: &[&CatalogEntry]) -> Result<BTreeMap<String, Vec<String>>, ExitError> {
    let active = ActiveHolds::read(archive).await?;
    let mut out = BTreeMap::new();
    for entry in entries {
        let matters: Vec<String> = active.covering(entry).into_iter().map(str::to_owned).collect();
        out.insert(entry.manifest.clone(), matters);
    }
    Ok(out)
}
