//! `recarch dispose`: deletes the items whose retention has passed and that no active legal
//! hold covers: the manifest, and each blob no remaining manifest refers to.
//!
//! 1. **Plan** (a dry run stops here): every manifest is read. One without a `retention`
//!    member is kept forever; one an active matter covers is held (a hold always wins); one
//!    whose `retention.retainUntil` (a contact's: its newest version's, which every version
//!    extends) is still ahead is not yet expired; the rest is eligible. A blob is deleted only
//!    when every manifest naming it is eligible (blobs are shared: content addressed); if a
//!    manifest cannot be read, which blobs it names is unknown, and no blob is deleted.
//! 2. **Per batch** of [`BATCH`] items: the `dispose` ledger record is appended first, before
//!    anything is deleted: its leaves are the manifests to delete with the digests of their
//!    bytes as read (what `verify`'s ledger check excuses: a key whose newest leaf a
//!    `dispose` record holds may be gone), its details the counts, the actor and the blobs to
//!    delete. Then a catalog segment of disposal markers (`recarch_store::DisposalMarker`,
//!    named in an intent and logged in a `run` record), so that `ls`, `show` and `export` stop
//!    listing the items; then the manifests are deleted ([`Archive::dispose_object`]: every
//!    version on a versioned store), then the blobs whose manifests are all gone. A deletion the
//!    store refuses (S3 Object Lock: a version still locked) is an error naming the key (exit 1);
//!    the others go on. A manifest that could not be deleted is logged again and cataloged
//!    again (a segment after the marker's lists it anew), so `verify` and `ls` see it as kept.
//! 3. **Summary**: the disposal is added to `state/dispose.json`, which `status` reads.
//!
//! Meeting and call indexes are left as they are (add-only, evidence of what the meeting
//! held); `verify` excuses an index entry whose manifest a `dispose` record removed.
//!
//! A run writing while blobs are deleted could name a blob just judged unreferenced (the same
//! bytes archived again): `--yes` refuses to start while a run holds a lease (exit 3), and
//! checks again before each batch.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use recarch_store::dispose::LastDisposal;
use recarch_store::ledger::{Leaf, LedgerEvent};
use recarch_store::{Archive, CatalogEntry, DisposalMarker, Manifest, ManifestRead, Sha256Digest, blob_key};
use serde::Serialize;
use serde_json::{Value, json};

use crate::exit::{Exit, ExitError};
use crate::holds::ActiveHolds;
use crate::ledger::Ledger;
use recarch_failure::error_chain;

/// Items disposed of per `dispose` ledger record (and per marker segment).
pub const BATCH: usize = 1000;
/// Deletions in flight at once.
const DELETES: usize = 8;
/// How often reading the manifests is logged.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// What `dispose` was asked to do.
#[derive(Debug, Clone, Copy)]
pub struct DisposeRequest {
    /// Delete (`--yes`); otherwise a dry run that says what would be deleted.
    pub apply: bool,
    /// Print the summary as JSON.
    pub json: bool,
}

/// An item to dispose of.
#[derive(Debug, Clone)]
struct Item {
    /// The manifest's key.
    key: String,
    /// The SHA-256 of the manifest's bytes as read (the `dispose` record's leaf).
    digest: Sha256Digest,
    /// Its catalog entries (one per contact version): what the markers hide.
    entries: Vec<CatalogEntry>,
    /// The blobs it names, with their sizes.
    refs: Vec<(Sha256Digest, u64)>,
    /// Its retain-until, passed.
    retain_until: DateTime<Utc>,
}

/// What reading every manifest found.
#[derive(Debug, Default)]
struct Plan {
    eligible: Vec<Item>,
    held: u64,
    not_expired: u64,
    no_retention: u64,
    /// Manifests that cannot be judged (unreadable, or a retention member that is not one),
    /// with why; they are kept.
    unreadable: Vec<(String, String)>,
    /// Blobs a kept manifest names.
    kept_refs: HashSet<Sha256Digest>,
    /// Why no blob may be deleted (a manifest whose blobs are unknown), if so.
    blobs_withheld: Option<String>,
}

/// The summary `dispose` prints (`--json`: this object).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DisposeReport {
    /// Nothing was deleted (no `--yes`).
    pub dry_run: bool,
    /// Items past their retain-until and under no hold.
    pub eligible: u64,
    /// Items disposed of (manifests deleted); in a dry run, 0.
    pub disposed: u64,
    /// Items an active legal hold covers (kept, whatever their retention).
    pub held: u64,
    /// Items whose retain-until is still ahead.
    pub not_expired: u64,
    /// Items without a `retention` member (kept forever).
    pub no_retention: u64,
    /// Manifests that could not be read or judged (kept).
    pub unreadable: u64,
    /// Blobs deleted (a dry run: that would be deleted).
    pub blobs_deleted: u64,
    /// Bytes of those blobs.
    pub bytes_freed: u64,
    /// The `dispose` ledger records appended.
    pub ledger_records: Vec<String>,
    /// The items (eligible ones: disposed of, or in a dry run to be).
    pub items: Vec<Value>,
    /// The blobs deleted (or to be).
    pub blobs: Vec<Value>,
    /// What failed, each naming its key.
    pub failures: Vec<Value>,
    /// Why no blob was deleted, if none could be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs_withheld: Option<String>,
    /// Wall time.
    pub seconds: f64,
}

/// `recarch dispose`: a dry run unless `request.apply`. Exit 0 when everything eligible was
/// disposed of (or, in a dry run, could be judged), 1 when a deletion failed or a manifest
/// could not be read, 3 when a run holds a lease, 4 when the archive cannot be read or the
/// ledger written.
pub async fn dispose_cli(archive: &Archive, ledger: &Ledger, request: DisposeRequest) -> Result<Exit, ExitError> {
    let started = Instant::now();
    let now = Utc::now();
    if request.apply {
        refuse_while_running(archive).await?;
        // An archive written before the ledger gets its objects logged first, as they are.
        crate::ledger::genesis(archive, ledger).await?;
    }
    let holds = ActiveHolds::read(archive).await?;
    let plan = plan(archive, &holds, now).await?;
    let mut report = DisposeReport {
        dry_run: !request.apply,
        eligible: plan.eligible.len() as u64,
        held: plan.held,
        not_expired: plan.not_expired,
        no_retention: plan.no_retention,
        unreadable: plan.unreadable.len() as u64,
        blobs_withheld: plan.blobs_withheld.clone(),
        ..DisposeReport::default()
    };
    for (key, reason) in &plan.unreadable {
        report.failures.push(json!({"key": key, "reason": reason}));
    }
    let blobs = deletable_blobs(&plan);
    tracing::info!(
        eligible = report.eligible,
        held = report.held,
        not_expired = report.not_expired,
        no_retention = report.no_retention,
        blobs = blobs.len(),
        "disposition planned"
    );
    if request.apply {
        apply(archive, ledger, &plan, &blobs, &mut report).await?;
    } else {
        for item in &plan.eligible {
            report.items.push(item_json(item));
        }
        for (digest, size) in blobs.values().flatten() {
            report.blobs.push(json!({"key": blob_key(digest), "size": size}));
            report.blobs_deleted += 1;
            report.bytes_freed += size;
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    let exit = if report.failures.is_empty() && report.blobs_withheld.is_none() {
        Exit::Ok
    } else {
        Exit::Partial
    };
    let printed = if request.json {
        crate::outln!("{}", serde_json::to_string(&report).unwrap_or_default())
    } else {
        print_text(archive, &report)
    };
    crate::output::finish(printed, exit)
}

/// Exit 3 while a run holds an unexpired lease: it may be archiving the very bytes of a blob
/// about to be deleted.
async fn refuse_while_running(archive: &Archive) -> Result<(), ExitError> {
    let leases = archive.leases().await.map_err(|e| {
        ExitError::new(
            Exit::Fatal,
            anyhow::anyhow!(
                "cannot read the leases in {}: {}",
                archive.display_url(),
                error_chain(&e)
            ),
        )
    })?;
    let now = Utc::now();
    if let Some(lease) = leases.into_iter().flatten().find(|l| l.expires_at > now) {
        return Err(ExitError::new(
            Exit::LeaseHeld,
            anyhow::anyhow!(
                "a run holds the lease of shard {} (owner {}, until {}): dispose deletes blobs a run may be naming again, so it waits until no run is in progress",
                lease.shard,
                lease.owner,
                lease.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
    }
    Ok(())
}

/// A manifest's retain-until: its `retention.retainUntil`, or for a versioned manifest the
/// latest of that and its versions' own, if any. `Ok(None)` without a `retention` member;
/// `Err` for one that is not `{mode, retainUntil}`.
fn retain_until(manifest: &Manifest) -> Result<Option<DateTime<Utc>>, String> {
    let Some(retention) = manifest.extra.get("retention") else {
        return Ok(None);
    };
    let until = |retention: &Value| -> Result<DateTime<Utc>, String> {
        let text = retention
            .get("retainUntil")
            .and_then(Value::as_str)
            .ok_or_else(|| "its retention has no retainUntil".to_owned())?;
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("its retainUntil {text:?} is not an RFC 3339 time: {e}"))
    };
    let mut latest = until(retention)?;
    let versions = manifest
        .extra
        .get(recarch_store::VERSIONS)
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for version in versions {
        if let Some(own) = version.get("retention") {
            latest = latest.max(until(own)?);
        }
    }
    Ok(Some(latest))
}

/// Reads every manifest and sorts it: eligible, held, not expired, without retention, or
/// unreadable.
async fn plan(archive: &Archive, holds: &ActiveHolds, now: DateTime<Utc>) -> Result<Plan, ExitError> {
    let mut listing = crate::find::read_all_manifests(archive).await?;
    let mut plan = Plan::default();
    let mut read = 0u64;
    let mut last_progress = Instant::now();
    while let Some(item) = listing.next().await {
        let stored = match item {
            ManifestRead::Stored(stored) => stored,
            ManifestRead::Unreadable { key, error } => {
                let reason = format!("cannot read it: {}", error_chain(&error));
                plan.blobs_withheld.get_or_insert_with(|| {
                    format!("manifest {key} could not be read, so which blobs it names is unknown")
                });
                plan.unreadable.push((key, reason));
                continue;
            }
            ManifestRead::Unlisted { prefix, error, .. } => {
                let reason = format!("cannot list it: {}", error_chain(&error));
                plan.blobs_withheld.get_or_insert_with(|| {
                    format!("{prefix}/ could not be listed, so which blobs its manifests name is unknown")
                });
                plan.unreadable.push((format!("{prefix}/"), reason));
                continue;
            }
            // A kind of finding this version does not know: nothing to judge.
            _ => continue,
        };
        read += 1;
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            tracing::info!(manifests = read, "reading manifests");
        }
        let refs = match crate::verify::checks::check_manifest(&stored) {
            Ok((refs, _)) => refs,
            Err(problem) => {
                plan.blobs_withheld.get_or_insert_with(|| {
                    format!(
                        "manifest {} cannot be read, so which blobs it names is unknown",
                        stored.key
                    )
                });
                plan.unreadable.push((stored.key.clone(), problem));
                continue;
            }
        };
        let judged = stored.parse().map_err(|e| error_chain(&e)).and_then(|manifest| {
            let until = retain_until(&manifest)?;
            Ok((manifest, until))
        });
        let (manifest, until) = match judged {
            Ok(judged) => judged,
            Err(reason) => {
                plan.kept_refs.extend(refs.iter().map(|(d, _)| *d));
                plan.unreadable.push((stored.key.clone(), reason));
                continue;
            }
        };
        let entries = CatalogEntry::of_manifest(&stored.key, &manifest);
        let held = entries.iter().any(|e| !holds.covering(e).is_empty());
        let kept = match until {
            None => Some(&mut plan.no_retention),
            Some(_) if held => Some(&mut plan.held),
            Some(until) if until > now => Some(&mut plan.not_expired),
            Some(_) => None,
        };
        match (kept, until) {
            (Some(count), _) => {
                *count += 1;
                plan.kept_refs.extend(refs.iter().map(|(d, _)| *d));
            }
            (None, Some(retain_until)) => plan.eligible.push(Item {
                digest: Sha256Digest::of(&stored.bytes),
                key: stored.key,
                entries,
                refs,
                retain_until,
            }),
            (None, None) => {}
        }
    }
    // Oldest first, so that an interrupted disposal has done the longest-expired items.
    plan.eligible
        .sort_by(|a, b| (a.retain_until, &a.key).cmp(&(b.retain_until, &b.key)));
    Ok(plan)
}

/// The blobs to delete with their sizes, by the index of the batch whose items are the last
/// to name them: those no kept manifest names (none when a manifest could not be read).
fn deletable_blobs(plan: &Plan) -> HashMap<usize, Vec<(Sha256Digest, u64)>> {
    let mut last: HashMap<Sha256Digest, (usize, u64)> = HashMap::new();
    if plan.blobs_withheld.is_some() {
        return HashMap::new();
    }
    for (i, item) in plan.eligible.iter().enumerate() {
        for (digest, size) in &item.refs {
            if !plan.kept_refs.contains(digest) {
                last.insert(*digest, (i / BATCH, *size));
            }
        }
    }
    let mut by_batch: HashMap<usize, Vec<(Sha256Digest, u64)>> = HashMap::new();
    for (digest, (batch, size)) in last {
        by_batch.entry(batch).or_default().push((digest, size));
    }
    for blobs in by_batch.values_mut() {
        blobs.sort();
    }
    by_batch
}

fn item_json(item: &Item) -> Value {
    let first = item.entries.last();
    json!({
        "manifest": item.key,
        "kind": first.map(|e| e.kind.dirname()),
        "organizerId": first.map(|e| e.organizer_id.as_str()),
        "id": first.map(|e| e.id.as_str()),
        "retainUntil": item.retain_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

fn fatal(what: String, e: &recarch_store::StoreError) -> ExitError {
    ExitError::new(Exit::Fatal, anyhow::anyhow!("{what}: {}", error_chain(e)))
}

/// Disposes of the plan's eligible items, batch by batch (see the module docs).
async fn apply(
    archive: &Archive,
    ledger: &Ledger,
    plan: &Plan,
    blobs: &HashMap<usize, Vec<(Sha256Digest, u64)>>,
    report: &mut DisposeReport,
) -> Result<(), ExitError> {
    let batches = plan.eligible.len().div_ceil(BATCH);
    // Which eligible items name each blob deleted: a blob goes only once all of them are gone.
    let mut naming: HashMap<Sha256Digest, Vec<&str>> = HashMap::new();
    for item in &plan.eligible {
        for (digest, _) in &item.refs {
            naming.entry(*digest).or_default().push(item.key.as_str());
        }
    }
    let mut failed_manifests: HashSet<String> = HashSet::new();
    let mut first_record = None;
    for (n, batch) in plan.eligible.chunks(BATCH).enumerate() {
        if n > 0
            && let Err(e) = refuse_while_running(archive).await
        {
            summarise(archive, ledger, first_record.take(), report).await;
            return Err(e);
        }
        let to_delete: &[(Sha256Digest, u64)] = blobs.get(&n).map_or(&[], Vec::as_slice);
        // 1. The record, before anything is deleted.
        let leaves: Vec<(String, Sha256Digest)> = batch.iter().map(|i| (i.key.clone(), i.digest)).collect();
        archive
            .journal_disposal(&leaves)
            .map_err(|e| fatal("cannot log the disposal".into(), &e))?;
        let mut details = serde_json::Map::new();
        details.insert("items".into(), json!(batch.len()));
        details.insert(
            "blobs".into(),
            json!(to_delete.iter().map(|(d, _)| d.to_hex()).collect::<Vec<_>>()),
        );
        details.insert("bytes".into(), json!(to_delete.iter().map(|(_, s)| s).sum::<u64>()));
        details.insert("held".into(), json!(plan.held));
        details.insert("notExpired".into(), json!(plan.not_expired));
        details.insert("noRetention".into(), json!(plan.no_retention));
        details.insert("batch".into(), json!(format!("{} of {batches}", n + 1)));
        details.insert("actor".into(), json!(crate::ledger::actor(ledger.shard())));
        let record = ledger
            .log(Vec::new(), LedgerEvent::Dispose, details)
            .await
            .map_err(|e| {
                // The leaves wait in the journal for nothing: take them back.
                let _ = archive.take_leaves();
                fatal(
                    "cannot write the dispose ledger record (nothing was deleted)".into(),
                    &e,
                )
            })?
            .map(|r| r.key)
            .unwrap_or_default();
        first_record.get_or_insert_with(|| record.clone());
        report.ledger_records.push(record.clone());
        // 2. The markers that hide the items from `ls`, `show` and `export`.
        let disposed_at = Utc::now();
        let markers: Vec<DisposalMarker> = batch
            .iter()
            .flat_map(|item| item.entries.iter())
            .map(|e| DisposalMarker {
                manifest: e.manifest.clone(),
                sha256: e.sha256.clone(),
                disposed_at,
                record: record.clone(),
            })
            .collect();
        write_markers(archive, ledger, &markers, &record).await?;
        // 3. The manifests.
        let mut deletions = futures::stream::iter(
            batch
                .iter()
                .map(|item| async move { (item, archive.dispose_object(&item.key).await) }),
        )
        .buffer_unordered(DELETES);
        let mut kept_again = Vec::new();
        while let Some((item, deleted)) = deletions.next().await {
            match deleted {
                Ok(()) => {
                    report.disposed += 1;
                    report.items.push(item_json(item));
                    tracing::info!(manifest = %item.key, "disposed of");
                }
                Err(e) => {
                    let reason = error_chain(&e);
                    tracing::error!(key = %item.key, error = %reason, "cannot dispose of the manifest; kept");
                    report.failures.push(json!({"key": item.key, "reason": reason}));
                    failed_manifests.insert(item.key.clone());
                    kept_again.push(item);
                }
            }
        }
        drop(deletions);
        // 4. The blobs every naming manifest of which is gone.
        let deletable = to_delete.iter().filter(|(digest, _)| {
            naming
                .get(digest)
                .is_none_or(|keys| keys.iter().all(|k| !failed_manifests.contains(*k)))
        });
        let mut deletions = futures::stream::iter(deletable.map(|(digest, size)| async move {
            let key = blob_key(digest);
            let deleted = archive.dispose_object(&key).await;
            (key, *size, deleted)
        }))
        .buffer_unordered(DELETES);
        while let Some((key, size, deleted)) = deletions.next().await {
            match deleted {
                Ok(()) => {
                    report.blobs_deleted += 1;
                    report.bytes_freed += size;
                    report.blobs.push(json!({"key": key, "size": size}));
                }
                Err(e) => {
                    let reason = error_chain(&e);
                    tracing::error!(%key, error = %reason, "cannot delete the blob; kept");
                    report.failures.push(json!({"key": key, "reason": reason}));
                }
            }
        }
        drop(deletions);
        // 5. What could not be deleted is logged and cataloged again: it is kept.
        if !kept_again.is_empty() {
            keep_again(archive, ledger, &kept_again, &record).await?;
        }
        tracing::info!(
            batch = n + 1,
            batches,
            disposed = report.disposed,
            blobs = report.blobs_deleted,
            "disposition progress"
        );
    }
    summarise(archive, ledger, first_record, report).await;
    Ok(())
}

/// Adds what was deleted to the disposal summary `status` shows (a failure is logged: the
/// ledger has the disposal).
async fn summarise(archive: &Archive, ledger: &Ledger, first_record: Option<String>, report: &DisposeReport) {
    if report.disposed == 0 && report.blobs_deleted == 0 {
        return;
    }
    let last = LastDisposal {
        time: Utc::now(),
        record: first_record.unwrap_or_default(),
        items: report.disposed,
        blobs: report.blobs_deleted,
        bytes: report.bytes_freed,
        user: crate::ledger::actor(ledger.shard()).user,
    };
    if let Err(e) = archive.record_disposal(last).await {
        tracing::warn!(error = %error_chain(&e), "cannot update the disposal summary `status` shows; the ledger has the disposal");
    }
}

/// Writes `markers` as a catalog segment (named in an intent first) and logs it in a `run`
/// record naming the `dispose` record.
async fn write_markers(
    archive: &Archive,
    ledger: &Ledger,
    markers: &[DisposalMarker],
    record: &str,
) -> Result<(), ExitError> {
    let key = Archive::catalog_segment_key(ledger.shard());
    let written = async {
        let intent = ledger.intend(vec![key.clone()]).await?;
        archive.put_disposal_markers_at(&key, markers).await?;
        let mut details = serde_json::Map::new();
        details.insert("disposalMarkers".into(), json!(record));
        ledger
            .log(intent.into_iter().collect(), LedgerEvent::Run, details)
            .await
    }
    .await;
    written.map_err(|e| {
        fatal(
            format!("cannot write the disposal markers of {record} (nothing was deleted; run dispose again)"),
            &e,
        )
    })?;
    Ok(())
}

/// Logs and catalogs again the items whose manifests could not be deleted: their newest leaf
/// is no longer the `dispose` record's, and a segment after the markers lists them.
async fn keep_again(archive: &Archive, ledger: &Ledger, items: &[&Item], record: &str) -> Result<(), ExitError> {
    let mut leaves = Vec::new();
    for item in items {
        if let Ok(leaf) = Leaf::new(item.key.clone(), item.digest) {
            leaves.push(leaf);
        }
    }
    archive.return_leaves(leaves);
    let catalog = crate::catalog::CatalogWriter::new(archive.clone(), ledger.shard().clone());
    catalog.record_entries(items.iter().flat_map(|i| i.entries.iter().cloned()).collect());
    let written = async {
        let intent = catalog.flush(ledger).await?;
        let mut details = serde_json::Map::new();
        details.insert("disposeFailed".into(), json!(record));
        details.insert("items".into(), json!(items.len()));
        ledger
            .log(intent.into_iter().collect(), LedgerEvent::Run, details)
            .await
    }
    .await;
    written.map_err(|e| {
        fatal(
            format!(
                "cannot log again the items {record} failed to dispose of (verify reports them; run dispose again)"
            ),
            &e,
        )
    })?;
    Ok(())
}

fn print_text(archive: &Archive, report: &DisposeReport) -> Result<(), crate::output::StdoutError> {
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (item_verb, blob_verb) = if report.dry_run {
        ("would dispose of", "would delete")
    } else {
        ("disposed of", "deleted")
    };
    for item in &report.items {
        crate::outln!(
            "{item_verb} {} {} of {} (retain until {}): {}",
            text(item, "kind"),
            text(item, "id"),
            text(item, "organizerId"),
            text(item, "retainUntil"),
            text(item, "manifest")
        )?;
    }
    for blob in &report.blobs {
        crate::outln!(
            "{blob_verb} {} ({})",
            text(blob, "key"),
            recarch_store::human_bytes(blob["size"].as_u64().unwrap_or_default())
        )?;
    }
    for failure in &report.failures {
        crate::outln!("failed: {}: {}", text(failure, "key"), text(failure, "reason"))?;
    }
    if let Some(why) = &report.blobs_withheld {
        crate::outln!("no blob deleted: {why}")?;
    }
    let kept = format!(
        "{} held, {} not yet expired, {} without retention (kept forever){}",
        report.held,
        report.not_expired,
        report.no_retention,
        if report.unreadable > 0 {
            format!(", {} unreadable (kept)", report.unreadable)
        } else {
            String::new()
        }
    );
    if report.dry_run {
        crate::outln!(
            "dispose {} (dry run): {} eligible: would dispose of {} items and delete {} blobs ({}); {kept}; nothing was deleted (--yes disposes of them)",
            archive.display_url(),
            report.eligible,
            report.eligible,
            report.blobs_deleted,
            recarch_store::human_bytes(report.bytes_freed)
        )
    } else {
        crate::outln!(
            "dispose {}: {} eligible, {} disposed of, {} blobs deleted, {} freed; {kept}; {} failed; ledger {}",
            archive.display_url(),
            report.eligible,
            report.disposed,
            report.blobs_deleted,
            recarch_store::human_bytes(report.bytes_freed),
            report.failures.len(),
            if report.ledger_records.is_empty() {
                "unchanged".to_owned()
            } else {
                report.ledger_records.join(", ")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use recarch_store::{ContentRef, OrganizerId};

    fn manifest(retention: Option<Value>, versions: Option<Value>) -> Manifest {
        let org = OrganizerId::parse("8b081ef6-4792-4def-b2c9-c363a1bf41d5").unwrap();
        let mut m = Manifest::new(
            "contact",
            "c",
            org,
            ContentRef::new(Sha256Digest::of(b"x"), 1, "application/json"),
        );
        if let Some(r) = retention {
            m.extra.insert("retention".into(), r);
        }
        if let Some(v) = versions {
            m.extra.insert(recarch_store::VERSIONS.into(), v);
        }
        m
    }

    #[test]
    fn retention_is_read_as_the_latest_retain_until() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(retain_until(&manifest(None, None)), Ok(None));
        let r = json!({"mode": "governance", "retainUntil": "2030-01-01T00:00:00Z"});
        assert_eq!(
            retain_until(&manifest(Some(r.clone()), None)),
            Ok(Some(t("2030-01-01T00:00:00Z")))
        );
        // A version that states a later one of its own extends it.
        let versions = json!([{"sha256": "a", "retention": {"mode": "governance", "retainUntil": "2031-01-01T00:00:00Z"}}, {"sha256": "b"}]);
        assert_eq!(
            retain_until(&manifest(Some(r), Some(versions))),
            Ok(Some(t("2031-01-01T00:00:00Z")))
        );
        for bad in [json!({"mode": "governance"}), json!({"retainUntil": "soon"}), json!(7)] {
            assert!(retain_until(&manifest(Some(bad.clone()), None)).is_err(), "{bad}");
        }
    }
}
