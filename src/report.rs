//! What a run did: counts, failures, the run report (`runs/<timestamp>-<shard>.json`) and the
//! end-of-run summary on stdout.

use chrono::{DateTime, Utc};
use recarch_failure::FailureClass;
use serde::Serialize;

/// Counts of a run (and of each organizer).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Items seen in delta pages and the retry queue (after de-duplication within the run).
    pub discovered: u64,
    /// Archived by this run.
    pub archived: u64,
    /// Already archived earlier (manifest present): nothing downloaded.
    pub already_archived: u64,
    /// Repeated within this run's pages (or tried from the queue already) and skipped.
    pub duplicates: u64,
    /// `@removed` markers (archived items are kept: an archive does not forget).
    pub removed: u64,
    /// Failed in this run (queued or dead-lettered).
    pub failed: u64,
    /// Of those, moved to the dead-letter list in this run.
    pub dead_lettered: u64,
    /// Items on the dead-letter list that the delta round listed again (not retried).
    pub skipped_dead_letters: u64,
    /// Bytes downloaded and stored.
    pub bytes: u64,
    /// New blobs (the rest had identical bytes already).
    pub new_blobs: u64,
    /// Delta pages read.
    pub pages: u64,
    /// Full rounds restarted after 410 Gone.
    pub resyncs: u64,
}

impl Counts {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &Counts) {
        self.discovered += o.discovered;
        self.archived += o.archived;
        self.already_archived += o.already_archived;
        self.duplicates += o.duplicates;
        self.removed += o.removed;
        self.failed += o.failed;
        self.dead_lettered += o.dead_lettered;
        self.skipped_dead_letters += o.skipped_dead_letters;
        self.bytes += o.bytes;
        self.new_blobs += o.new_blobs;
        self.pages += o.pages;
        self.resyncs += o.resyncs;
    }
}

/// One failure of this run: an item (queued or dead-lettered) or a whole organizer's round.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The organizer.
    pub organizer_id: String,
    /// `recordings`, ...
    pub kind: String,
    /// The Graph id (empty when the failure is the organizer's round, not an item).
    pub id: String,
    /// Transient or permanent.
    pub class: FailureClass,
    /// Why.
    pub reason: String,
    /// In how many runs the item has failed so far (0 for a round failure).
    pub attempts: u32,
    /// Whether the item moved to the dead-letter list in this run.
    pub dead_lettered: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Everything discovered is archived (exit 0).
    Complete,
    /// Some items or organizers failed in this run (exit 1).
    Partial,
    /// SIGTERM/SIGINT cut the run short (exit 1).
    Interrupted,
    /// Something stopped the whole run (exit 4).
    Fatal,
}

/// The outcome of a run: what the report holds and what the summary prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// `recarch.run.v1`.
    pub schema: &'static str,
    /// The shard.
    pub shard: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Seconds.
    pub duration_secs: f64,
    /// Organizers of this shard.
    pub organizers: usize,
    /// Totals.
    #[serde(flatten)]
    pub counts: Counts,
    /// The same, per kind archived (`recordings`, `transcripts`, `contacts`).
    pub kinds: std::collections::BTreeMap<recarch_store::Kind, KindReport>,
    /// Bytes per second over the whole run.
    pub throughput_bytes_per_sec: f64,
    /// Items queued for a later run, over this shard's organizers, when the run ended.
    pub queued: u64,
    /// Items on the dead-letter lists of this shard's organizers when the run ended (this run's
    /// and earlier ones'): never retried automatically; see `recarch status` and
    /// `recarch retry`.
    pub dead_letters: u64,
    /// Organizers whose pass (or source) failed in this run.
    pub organizers_failed: usize,
    /// Requests sent to Graph (every attempt).
    pub graph_requests: u64,
    /// Of those, answered 429 or 503.
    pub throttled_requests: u64,
    /// When a run of this shard last exited 0 (this one, if it did).
    pub last_success_at: Option<DateTime<Utc>>,
    /// Failures of this run.
    pub failures: Vec<Failure>,
    /// `complete`, `partial`, `interrupted` or `fatal`.
    pub outcome: Outcome,
    /// Whether SIGTERM/SIGINT cut the run short.
    pub interrupted: bool,
    /// The process exit code.
    pub exit_code: u8,
    /// Why the run ended with exit 4 (`outcome: fatal`): the kind of fault and its message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<crate::environment::Cause>,
    /// What the ledger cost this run.
    pub ledger: crate::ledger::LedgerStats,
    /// With a retention mode: the mode, and what locking (and legal holds) cost this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionReport>,
}

/// A run's retention: its mode, and the objects it locked and held on the store.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionReport {
    /// `governance` or `compliance`.
    pub mode: String,
    /// Objects locked, extended, legal holds set, and the time spent.
    #[serde(flatten)]
    pub locks: recarch_store::LockStats,
    /// The active matters when the run began.
    pub active_matters: usize,
}

impl RunReport {
    /// The report of a run of `shard` that started at `started_at` and has done nothing yet
    /// (outcome `complete`, exit 0, every count 0): the run fills in what it did.
    pub fn new(shard: &str, started_at: DateTime<Utc>) -> RunReport {
        RunReport {
            schema: "recarch.run.v1",
            shard: shard.to_owned(),
            started_at,
            finished_at: started_at,
            duration_secs: 0.0,
            organizers: 0,
            counts: Counts::default(),
            kinds: std::collections::BTreeMap::new(),
            throughput_bytes_per_sec: 0.0,
            queued: 0,
            dead_letters: 0,
            organizers_failed: 0,
            graph_requests: 0,
            throttled_requests: 0,
            last_success_at: None,
            failures: Vec::new(),
            outcome: Outcome::Complete,
            interrupted: false,
            exit_code: 0,
            cause: None,
            ledger: crate::ledger::LedgerStats::default(),
            retention: None,
        }
    }
}

/// One kind's part of a run.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindReport {
    /// Counts of this kind.
    #[serde(flatten)]
    pub counts: Counts,
    /// Items of this kind queued when the run ended.
    pub queued: u64,
    /// Dead letters of this kind when the run ended.
    pub dead_letters: u64,
}

/// The end-of-run summary on stdout.
pub fn print_summary(report: &RunReport) -> Result<(), crate::output::StdoutError> {
    let c = &report.counts;
    let mib = c.bytes as f64 / (1024.0 * 1024.0);
    let rate = report.throughput_bytes_per_sec / (1024.0 * 1024.0);
    crate::outln!(
        "run {shard}: {archived} archived ({mib:.1} MiB, {rate:.1} MiB/s), {already} already archived, {failed} failed ({dead} dead-lettered), {removed} removed in graph, {pages} pages, {dur:.1}s{int}",
        shard = report.shard,
        archived = c.archived,
        already = c.already_archived,
        failed = c.failed,
        dead = c.dead_lettered,
        removed = c.removed,
        pages = c.pages,
        dur = report.duration_secs,
        int = if report.interrupted { " (interrupted)" } else { "" },
    )?;
    if report.kinds.len() > 1 {
        let parts: Vec<String> = report
            .kinds
            .iter()
            .map(|(kind, part)| {
                let c = &part.counts;
                let removed = if c.removed > 0 {
                    format!(", {} removed", c.removed)
                } else {
                    String::new()
                };
                format!("{kind} {} archived ({} failed{removed})", c.archived, c.failed)
            })
            .collect();
        crate::outln!("  by kind: {}", parts.join("; "))?;
    }
    if report.queued > 0 || report.dead_letters > 0 {
        crate::outln!(
            "  {} queued for the next run, {} dead letters (never retried automatically; see recarch status, recarch retry)",
            report.queued,
            report.dead_letters
        )?;
    }
    for f in report.failures.iter().take(20) {
        let fate = if f.dead_lettered { "dead-lettered" } else { "failed" };
        if f.id.is_empty() {
            crate::outln!("  {fate}: organizer {} {}: {}", f.organizer_id, f.kind, f.reason)?;
        } else {
            crate::outln!(
                "  {fate}: organizer {} {} {} ({}, {} runs): {}",
                f.organizer_id,
                f.kind,
                f.id,
                f.class,
                f.attempts,
                f.reason
            )?;
        }
    }
    if report.failures.len() > 20 {
        crate::outln!("  … and {} more (see the run report)", report.failures.len() - 20)?;
    }
    Ok(())
}
