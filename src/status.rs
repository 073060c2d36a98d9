//! `recarch status`: per organizer, its round, queued items and dead letters, the leases
//! held, and the last run.
//!
//! One listing of `state/<kind>/` tells which organizers have queued items or dead letters;
//! checkpoints and those lists are then read in parallel, so the answer over ten thousand
//! organizers takes seconds, not minutes.

use chrono::SecondsFormat;
use futures::StreamExt;
use recarch_store::{Archive, Kind, LeaseRecord, LinkKind, OrganizerId, OrganizerState, StateOverview};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::exit::{Exit, ExitError};
use recarch_failure::error_chain;

/// How many organizers' documents are read at once.
const READ_CONCURRENCY: usize = 64;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusReport {
    store: String,
    /// `[store].state_url`, without credentials or query: where the state, leases and run
    /// reports shown here are kept (`None`: in the archive).
    #[serde(skip_serializing_if = "Option::is_none")]
    state_store: Option<String>,
    /// `true` when nothing needs attention: no dead letters, and every shard's last run
    /// archived everything (exit 0). `status` exits 1 otherwise.
    healthy: bool,
    /// What needs attention, one line each.
    attention: Vec<String>,
    organizers: Vec<OrganizerStatus>,
    /// Totals over the organizers listed.
    totals: Totals,
    /// The leases held, as stored.
    leases: Vec<LeaseRecord>,
    last_run: Option<Value>,
    /// The ledger's newest record (`None`: no ledger yet).
    ledger: Option<LedgerStatus>,
    /// The legal holds: the matters active now, by name (`None`: `holds/` could not be read).
    holds: Option<Vec<String>>,
    /// Encryption at rest, as the store reports it for the ledger's newest record (`None`:
    /// the store reports none, or there is no record yet).
    encryption: Option<recarch_store::Encryption>,
    /// `[retention]` (`None`: mode `none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    retention: Option<RetentionStatus>,
    /// What `recarch dispose` deleted so far, and its newest disposal (`None`: nothing yet,
    /// or the summary cannot be read).
    disposed: Option<recarch_store::dispose::DisposalSummary>,
}

/// `[retention]`, as `status` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RetentionStatus {
    /// `governance` or `compliance`.
    mode: &'static str,
    /// Each kind's period, in seconds.
    period_seconds: std::collections::BTreeMap<recarch_store::Kind, u64>,
    /// Whether the store enforces it (not yet: local disk only records it).
    enforced_by_store: bool,
}

/// The ledger's head, as `status` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LedgerStatus {
    /// The newest record's sequence number.
    seq: u64,
    /// Leaves logged so far.
    tree_size: u64,
    /// Their RFC 6962 root (hex).
    root: String,
    /// Whether the newest record carries a signed checkpoint.
    signed: bool,
    /// That checkpoint (a C2SP signed note; unsigned, its bare body): keep it elsewhere, and `verify --checkpoint`
    /// proves later that the ledger still begins with this tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<String>,
}

/// Encryption at rest as the store reports it for the ledger's newest record (`seq`): an
/// object every archived item's run wrote, so it shows what the store applied to the
/// archive's writes. Failures are logged and shown as nothing reported.
pub(crate) async fn encryption(archive: &Archive, seq: u64) -> Option<recarch_store::Encryption> {
    match archive
        .encryption_of(&recarch_store::ledger::ledger_record_key(seq))
        .await
    {
        Ok(encryption) => encryption,
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "cannot read the encryption of the ledger's newest record");
            None
        }
    }
}

/// The ledger's head and whether it is signed; `None` without a ledger. Read failures are
/// logged and shown as no ledger.
async fn ledger_status(archive: &Archive, origin: &str) -> Option<LedgerStatus> {
    use futures::StreamExt as _;
    let head = match archive.ledger_head().await {
        Ok(head) => head?,
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "cannot read the ledger's head");
            return None;
        }
    };
    let checkpoint = match archive.read_ledger(head.seq).next().await {
        Some(Ok(recarch_store::ledger::LedgerItem::Record(stored))) => {
            recarch_store::ledger::LedgerRecord::parse(&stored.key, &stored.bytes)
                .ok()
                .and_then(|r| r.checkpoint)
        }
        _ => None,
    };
    let signed = checkpoint.is_some();
    // Unsigned, the bare checkpoint body: worth keeping too (it proves a prefix, not who wrote it).
    let checkpoint = checkpoint.or_else(|| {
        let head = recarch_store::ledger::TreeHead {
            origin: origin.to_owned(),
            size: head.tree_size,
            root: head.root,
        };
        Some(head.body())
    });
    Some(LedgerStatus {
        seq: head.seq,
        tree_size: head.tree_size,
        root: head.root.to_hex(),
        signed,
        checkpoint,
    })
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Totals {
    organizers: usize,
    queued: usize,
    dead_letters: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OrganizerStatus {
    organizer_id: String,
    kind: Kind,
    /// `not started`, `mid-round` or `up to date`.
    round: &'static str,
    rounds_completed: u64,
    /// When a round last reached its deltaLink.
    last_completed_at: Option<String>,
    /// Kinds listed by time window (ad hoc calls): the end of the last window walked to its
    /// end; the next run lists from there, less `[source].adhoc_overlap`.
    #[serde(skip_serializing_if = "Option::is_none")]
    watermark: Option<String>,
    updated_at: Option<String>,
    queued: Vec<ItemStatus>,
    dead_letters: Vec<ItemStatus>,
    /// A document that could not be read (the rest of the status is still shown).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemStatus {
    id: String,
    attempts: u32,
    class: String,
    last_error: String,
    first_failed_at: String,
    last_failed_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_lettered_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Prints the status. Exit 0 when healthy (no dead letters, every shard's last run exited 0),
/// 1 when something needs attention (usable as a readiness or alerting check), 4 when the
/// store cannot be read.
pub async fn status_cli(config: &Config, archive: &Archive, json: bool) -> Result<Exit, ExitError> {
    let fatal = |e: anyhow::Error| ExitError::new(Exit::Fatal, e);
    // Per kind, the configured ids and every organizer with state (discovered through UPNs, a
    // group or the directory), without asking Graph: the view `retry` acts on.
    let known = crate::organizers::known(config, archive)
        .await
        .map_err(|e| fatal(anyhow::Error::new(e).context("cannot list the organizers' state")))?;
    let mut organizers: Vec<OrganizerStatus> = Vec::new();
    let mut distinct = std::collections::BTreeSet::new();
    for k in &known {
        distinct.extend(k.organizers.iter().map(|o| o.to_string()));
        let described: Vec<OrganizerStatus> = futures::stream::iter(&k.organizers)
            .map(|org| describe(archive, k.kind, org, k.overview.get(org)))
            .buffered(READ_CONCURRENCY)
            .collect()
            .await;
        organizers.extend(described);
    }
    let totals = Totals {
        organizers: distinct.len(),
        queued: organizers.iter().map(|o| o.queued.len()).sum(),
        dead_letters: organizers.iter().map(|o| o.dead_letters.len()).sum(),
    };
    let leases: Vec<LeaseRecord> = archive
        .leases()
        .await
        .map_err(|e| fatal(anyhow::Error::new(e).context("cannot list leases")))?
        .into_iter()
        // An unreadable lease is not shown: a run treats it as held until its TTL has passed
        // since it was written, and takes it over then.
        .filter_map(Result::ok)
        .collect();
    // Each shard's newest report, by the start time its name records (never by file times,
    // which a copied archive does not keep); the newest of them is "the last run".
    let newest = archive
        .newest_run_reports()
        .await
        .map_err(|e| fatal(anyhow::Error::new(e).context("cannot list run reports")))?;
    let mut attention = Vec::new();
    let mut last_run: Option<(chrono::DateTime<chrono::Utc>, Value)> = None;
    for report in &newest {
        let run = match archive.read_run_report(report).await {
            Ok(run) => run,
            Err(e) => {
                attention.push(format!(
                    "shard {}: its last run report cannot be read: {}",
                    report.shard,
                    error_chain(&e)
                ));
                continue;
            }
        };
        if run["exitCode"].as_u64() != Some(0) {
            let cause = run["cause"]["message"]
                .as_str()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            attention.push(format!(
                "shard {}: the last run ({}) ended {} with exit {}{cause}",
                report.shard,
                run["startedAt"].as_str().unwrap_or("?"),
                run["outcome"].as_str().unwrap_or("?"),
                run["exitCode"]
            ));
        }
        if last_run.as_ref().is_none_or(|(started, _)| report.started > *started) {
            last_run = Some((report.started, run));
        }
    }
    let last_run = last_run.map(|(_, run)| run);
    if totals.dead_letters > 0 {
        attention.push(format!(
            "{} dead letters: never retried automatically; fix the cause, then recarch retry",
            totals.dead_letters
        ));
    }
    let ledger = ledger_status(archive, &config.ledger.origin).await;
    let report = StatusReport {
        store: archive.display_url().to_owned(),
        state_store: config.store.state_url.as_deref().map(recarch_store::redact_url),
        healthy: attention.is_empty(),
        attention,
        organizers,
        totals,
        leases,
        last_run,
        encryption: match &ledger {
            Some(l) => encryption(archive, l.seq).await,
            None => None,
        },
        retention: (config.retention.mode != crate::config::RetentionMode::None).then(|| RetentionStatus {
            mode: config.retention.mode.as_str(),
            period_seconds: config
                .retention
                .periods
                .iter()
                .map(|(k, d)| (*k, d.as_secs()))
                .collect(),
            enforced_by_store: false,
        }),
        ledger,
        holds: match archive.matters().await {
            Ok(matters) => Some(
                matters
                    .into_values()
                    .filter(|m| m.is_active())
                    .map(|m| m.name)
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cannot read the legal holds");
                None
            }
        },
        disposed: match archive.disposal_summary().await {
            Ok(summary) => summary,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cannot read the disposal summary");
                None
            }
        },
    };
    let printed = if json {
        crate::outln!("{}", serde_json::to_string_pretty(&report).unwrap_or_default())
    } else {
        print_text(&report)
    };
    crate::output::finish(printed, if report.healthy { Exit::Ok } else { Exit::Partial })
}

async fn describe(
    archive: &Archive,
    kind: Kind,
    org: &OrganizerId,
    overview: Option<&StateOverview>,
) -> OrganizerStatus {
    let mut errors = Vec::new();
    let overview = overview.cloned().unwrap_or_default();
    let state = if overview.has_checkpoint {
        match archive.load_state(kind, org).await {
            Ok(state) => state,
            Err(e) => {
                errors.push(error_chain(&e));
                None
            }
        }
    } else {
        None
    };
    let mut queued = Vec::new();
    if overview.queued > 0 {
        match archive.list_queued(kind, org).await {
            Ok(items) => {
                for item in items {
                    match item {
                        Ok(q) => queued.push(item_status(&q, None)),
                        Err(e) => errors.push(error_chain(&e)),
                    }
                }
            }
            Err(e) => errors.push(error_chain(&e)),
        }
    }
    let mut dead_letters = Vec::new();
    if overview.dead > 0 {
        match archive.list_dead_letters(kind, org).await {
            Ok(items) => {
                for item in items {
                    match item {
                        Ok(d) => dead_letters.push(item_status(&d.item, Some(&d))),
                        Err(e) => errors.push(error_chain(&e)),
                    }
                }
            }
            Err(e) => errors.push(error_chain(&e)),
        }
    }
    queued.sort_by(|a, b| a.first_failed_at.cmp(&b.first_failed_at).then(a.id.cmp(&b.id)));
    dead_letters.sort_by(|a, b| a.first_failed_at.cmp(&b.first_failed_at).then(a.id.cmp(&b.id)));
    let state: Option<&OrganizerState> = state.as_ref();
    let round = round_of(state);
    OrganizerStatus {
        organizer_id: org.to_string(),
        kind,
        round,
        rounds_completed: state.map_or(0, |s| s.rounds_completed),
        last_completed_at: state.and_then(|s| s.last_completed_at).map(|t| t.to_rfc3339()),
        watermark: state
            .and_then(|s| s.sources.values().filter_map(|source| source.watermark).min())
            .map(|t| t.to_rfc3339()),
        updated_at: state.map(|s| s.updated_at.to_rfc3339()),
        queued,
        dead_letters,
        errors,
    }
}

/// Where the organizer's round stands; for kinds with several sources (contact folders), the
/// least advanced source decides.
fn round_of(state: Option<&OrganizerState>) -> &'static str {
    let Some(state) = state else { return "not started" };
    if state.sources.is_empty() && state.last_completed_at.is_some() {
        // A pass completed, over no source at all (a mailbox without contact folders).
        return "up to date";
    }
    let mut links: Vec<Option<LinkKind>> = state
        .sources
        .values()
        // A source listed by window has no link: its watermark says a window was walked.
        .map(|s| {
            s.checkpoint
                .as_ref()
                .map(|c| c.kind)
                .or(s.watermark.map(|_| LinkKind::Delta))
        })
        .collect();
    if links.is_empty() {
        links.push(None);
    }
    if links.contains(&Some(LinkKind::Next)) {
        "mid-round"
    } else if links.contains(&None) {
        if links.iter().all(Option::is_none) {
            "not started"
        } else {
            "mid-round"
        }
    } else {
        "up to date"
    }
}

fn item_status(q: &recarch_store::QueuedItem, dead: Option<&recarch_store::DeadLetter>) -> ItemStatus {
    ItemStatus {
        id: q.id.clone(),
        attempts: q.attempts,
        class: q.last_class.to_string(),
        last_error: q.last_error.clone(),
        first_failed_at: q.first_failed_at.to_rfc3339(),
        last_failed_at: q.last_failed_at.to_rfc3339(),
        dead_lettered_at: dead.map(|d| d.dead_lettered_at.to_rfc3339()),
        reason: dead.map(|d| d.reason.clone()),
    }
}

fn print_text(report: &StatusReport) -> Result<(), crate::output::StdoutError> {
    crate::outln!("store: {}", report.store)?;
    if let Some(state) = &report.state_store {
        crate::outln!("state: {state} (state/, locks/, runs/)")?;
    }
    match &report.ledger {
        Some(l) => crate::outln!(
            "ledger: record {}, {} leaves, root {}, {}",
            l.seq,
            l.tree_size,
            l.root,
            if l.signed { "signed" } else { "unsigned" }
        )?,
        None => crate::outln!("ledger: none yet (the next run starts it)")?,
    }
    let url = report.store.as_str();
    match &report.encryption {
        Some(e) => match &e.kms_key_id {
            Some(key) => crate::outln!("encryption: {} with KMS key {key}", e.algorithm)?,
            None if e.algorithm == "AES256" => crate::outln!("encryption: AES256 (S3-managed keys)")?,
            None => crate::outln!("encryption: {}", e.algorithm)?,
        },
        None if url.starts_with("s3://") => crate::outln!("encryption: none reported by the store")?,
        None if url.starts_with("az://") || url.starts_with("azure://") || url.starts_with("abfs") => crate::outln!(
            "encryption: Azure Storage encryption (always on; the account's or the encryption scope's keys)"
        )?,
        None if url.starts_with("file://") => {
            crate::outln!("encryption: whatever the file system provides (local disk)")?
        }
        None => {}
    }
    if let Some(r) = &report.retention {
        let periods: Vec<String> = r
            .period_seconds
            .iter()
            .map(|(k, s)| match s {
                s if s % 86_400 == 0 => format!("{} {}d", k.dirname(), s / 86_400),
                s => format!("{} {s}s", k.dirname()),
            })
            .collect();
        crate::outln!(
            "retention: {} ({}); recorded in each manifest and kept by recarch, not enforced by the store (local disk is not WORM)",
            r.mode,
            periods.join(", ")
        )?;
    }
    match &report.holds {
        Some(active) if active.is_empty() => crate::outln!("holds: none active")?,
        Some(active) => crate::outln!(
            "holds: {} active ({}; `recarch hold ls` for what each holds)",
            active.len(),
            active.join(", ")
        )?,
        None => crate::outln!("holds: cannot be read (see the log)")?,
    }
    if let Some(d) = &report.disposed {
        let last = d
            .last
            .as_ref()
            .map(|l| {
                format!(
                    " (last {}: {} items, by {}, ledger record {})",
                    l.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    l.items,
                    l.user,
                    l.record
                )
            })
            .unwrap_or_default();
        crate::outln!(
            "disposed: {} items, {} blobs, {}{last}",
            d.items,
            d.blobs,
            recarch_store::human_bytes(d.bytes)
        )?;
    }
    if report.healthy {
        crate::outln!("health: ok")?;
    } else {
        for a in &report.attention {
            crate::outln!("attention: {a}")?;
        }
    }
    for o in &report.organizers {
        crate::outln!(
            "organizer {}{}: {}, {} rounds completed, {} queued, {} dead letters{}{}",
            o.organizer_id,
            if o.kind == Kind::Recordings {
                String::new()
            } else {
                format!(" {}", o.kind)
            },
            o.round,
            o.rounds_completed,
            o.queued.len(),
            o.dead_letters.len(),
            o.last_completed_at
                .as_deref()
                .map(|u| format!(", last complete round {u}"))
                .unwrap_or_default()
                + &o.watermark
                    .as_deref()
                    .map(|w| format!(", listed up to {w}"))
                    .unwrap_or_default(),
            o.updated_at
                .as_deref()
                .map(|u| format!(", updated {u}"))
                .unwrap_or_default()
        )?;
        for q in &o.queued {
            crate::outln!(
                "  queued {} (attempts {}, {}): {}",
                q.id,
                q.attempts,
                q.class,
                q.last_error
            )?;
        }
        for d in &o.dead_letters {
            crate::outln!(
                "  dead letter {} (attempts {}, {}, since {}): {}",
                d.id,
                d.attempts,
                d.class,
                d.dead_lettered_at.as_deref().unwrap_or("?"),
                d.reason.as_deref().unwrap_or(&d.last_error)
            )?;
        }
        for e in &o.errors {
            crate::outln!("  unreadable: {e}")?;
        }
    }
    crate::outln!(
        "total: {} organizers, {} queued, {} dead letters",
        report.totals.organizers,
        report.totals.queued,
        report.totals.dead_letters
    )?;
    for lease in &report.leases {
        crate::outln!(
            "lease: shard {} held by {} until {}",
            lease.shard,
            lease.owner,
            // As the lease document has it.
            lease.expires_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        )?;
    }
    match &report.last_run {
        Some(run) => crate::outln!(
            "last run: shard {} at {}: {} archived, {} failed, {} dead-lettered, {}, exit {}",
            run["shard"].as_str().unwrap_or("?"),
            run["startedAt"].as_str().unwrap_or("?"),
            run["archived"],
            run["failed"],
            run["deadLettered"],
            run["outcome"].as_str().unwrap_or("?"),
            run["exitCode"]
        ),
        None => crate::outln!("last run: none"),
    }
}
