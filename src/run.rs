//! `recarch run`: one archive pass over the organizers of a shard.
//!
//! Flow: open and probe the store → take the shard's lease → fetch a token (fails fast on bad
//! credentials) → per organizer, concurrently: retry the queue, then walk the delta round from
//! the saved checkpoint, downloading items with bounded concurrency while the next page is
//! fetched, and saving each page's link only once every item of it (and of every page before
//! it) is archived or queued → write the run report → release the lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use recarch_delta::auth::{ClientCredentials, ClientCredentialsConfig, TokenProvider, scope_for};
use recarch_delta::retry::RetryPolicy;
use recarch_delta::{DeltaClient, GraphHttp};
use recarch_fetch::Fetcher;
use recarch_store::{Archive, Lease, OrganizerId, ShardId, StoreError};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, client_proof};
use crate::environment::Cause;
use crate::exit::{Exit, ExitError};
use crate::kinds::{AdhocRecordings, AdhocTranscripts, Contacts, Recordings, Transcripts};
use crate::organizers;
use crate::pipeline::ItemContext;
use crate::queue::QueuePolicy;
use crate::report::{Counts, Failure, KindReport, Outcome, RunReport};
use crate::round::{OrganizerResult, RoundContext, archive_organizer};
use recarch_failure::error_chain;
use recarch_store::ledger::LedgerEvent;

/// How long a lease lasts without renewal; renewed every third of it.
const LEASE_TTL: Duration = Duration::from_secs(120);
/// How long before a lease lapses a run stops trying to renew it through store errors.
const LEASE_SAFETY_MARGIN: Duration = Duration::from_secs(10);

/// Which part of the organizers this run covers.
#[derive(Debug, Clone, Copy)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// The shard's id in the store (`0-of-1`).
    pub fn id(&self) -> ShardId {
        ShardId::new(self.index, self.count)
    }

    /// Whether `organizer` belongs to this shard (stable: by SHA-256 of the id).
    pub fn owns(&self, organizer: &OrganizerId) -> bool {
        use sha2::Digest;
        let h = sha2::Sha256::digest(organizer.as_str().as_bytes());
        let n = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        n % u64::from(self.count) == u64::from(self.index)
    }
}

/// Runs one archive pass. Returns the report (its `exit_code` is 0 or 1), or an error carrying
/// exit code 2, 3 or 4.
pub async fn run(config: &Config, shard: Shard, shutdown: CancellationToken) -> Result<RunReport, ExitError> {
    run_with_progress(config, shard, shutdown, Arc::new(crate::progress::NoProgress)).await
}

/// [`run`], reporting progress (bars on a terminal) as it goes.
///
/// Every run that got as far as opening the store leaves a run report, including one that
/// ends with exit 4 before any work (token endpoint unreachable, store unusable): its
/// `outcome` is `fatal` and its `cause` says why, so that `status` and the metrics show the
/// failure (the report itself is lost only when the store cannot be written at all).
pub async fn run_with_progress(
    config: &Config,
    shard: Shard,
    shutdown: CancellationToken,
    progress: Arc<dyn crate::progress::Progress>,
) -> Result<RunReport, ExitError> {
    let started_at = Utc::now();
    let started = Instant::now();
    let shard_id = shard.id();

    // Configuration first (exit 2), before touching anything.
    let proof = client_proof(&config.graph.credential).map_err(|e| ExitError::new(Exit::Config, e))?;
    tracing::info!(graph = %config.graph.base_url, authority = %config.graph.authority_url, tenant = %config.graph.tenant_id, client = %config.graph.client_id, "endpoints");

    let (archive, copied) = open_archive_for_run(config).await?;
    let run = Started {
        config,
        shard,
        archive: &archive,
        started_at,
        started,
    };
    let passed = match copied {
        Ok(()) => pass(&run, proof, shutdown, progress).await,
        Err(e) => Err(e),
    };
    match passed {
        Ok(report) if report.exit_code == Exit::Fatal as u8 => {
            let message = report.cause.as_ref().map_or_else(String::new, |c| c.message.clone());
            Err(ExitError::new(Exit::Fatal, anyhow::anyhow!(message)))
        }
        Ok(report) => Ok(report),
        Err(e) if e.exit == Exit::Fatal => {
            let mut report = RunReport::new(shard_id.as_str(), started_at);
            report.outcome = Outcome::Fatal;
            report.exit_code = Exit::Fatal as u8;
            report.cause = Some(Cause::of(&e.error));
            report.last_success_at = last_success(&archive, &shard_id).await;
            finish_report(&run, &mut report).await;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// What every part of a run needs to know about it.
struct Started<'a> {
    config: &'a Config,
    shard: Shard,
    archive: &'a Archive,
    started_at: chrono::DateTime<Utc>,
    started: Instant,
}

/// When a run of `shard` last exited 0, as recorded.
async fn last_success(archive: &Archive, shard: &ShardId) -> Option<chrono::DateTime<Utc>> {
    match archive.load_shard_status(shard).await {
        Ok(status) => status.last_success_at,
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "cannot read the last success");
            None
        }
    }
}

/// Stamps the report's end, exports the metrics and writes the report (create-only, under
/// `runs/`); neither failure fails the run.
async fn finish_report(run: &Started<'_>, report: &mut RunReport) {
    report.finished_at = Utc::now();
    report.duration_secs = run.started.elapsed().as_secs_f64();
    report.throughput_bytes_per_sec = if report.duration_secs > 0.0 {
        report.counts.bytes as f64 / report.duration_secs
    } else {
        0.0
    };
    export_metrics(run.config, report).await;
    let report_json = serde_json::to_value(&*report).unwrap_or(Value::Null);
    if let Err(e) = run
        .archive
        .put_run_report(&run.shard.id(), run.started_at, &report_json)
        .await
    {
        tracing::warn!(error = %e, "cannot write the run report");
    }
}

/// The pass itself, once the store is open: lease, token, organizers, report. An error
/// before the organizers' passes is returned as is (the caller reports it); a fault during
/// them ends in a report with exit code 4.
async fn pass(
    run: &Started<'_>,
    proof: recarch_delta::credentials::ClientProof,
    shutdown: CancellationToken,
    progress: Arc<dyn crate::progress::Progress>,
) -> Result<RunReport, ExitError> {
    let Started {
        config,
        shard,
        archive,
        started_at,
        ..
    } = *run;
    let shard_id = shard.id();
    // Cancelled on SIGTERM/SIGINT (through `shutdown`) and by the first environment fault:
    // from then on no new organizer, page or download starts.
    let halt = shutdown.child_token();
    let environment = Arc::new(crate::environment::Environment::new(
        archive.display_url(),
        halt.clone(),
    ));
    let unusable = |e: StoreError| {
        ExitError::new(
            Exit::Fatal,
            anyhow::Error::new(e)
                .context("the store is not usable; check [store].url, [store.options] and credentials"),
        )
    };
    // With a retention mode, the store must keep objects write-once before anything is
    // written: a bucket without Object Lock is refused (exit 2, naming it).
    let holds = Arc::new(crate::holds::StoreHolds::read(archive).await?);
    if let Some(policy) = archive.worm() {
        require_worm(archive, policy, holds.support.as_ref())?;
    }
    let owner = format!(
        "{}:{}:{:08x}",
        recarch_store::hostname(),
        std::process::id(),
        fastrand::u32(..)
    );
    let mut lease = match archive.acquire_lease(&shard_id, &owner, LEASE_TTL).await {
        Ok(lease) => lease,
        Err(e @ StoreError::LeaseHeld { .. }) => return Err(ExitError::new(Exit::LeaseHeld, e)),
        Err(e) => {
            // Unreachable endpoint, wrong key, missing bucket: the probe names the URL, the
            // step and the server's own error more plainly than the lease write did.
            if let Err(probe) = archive.probe().await {
                return Err(unusable(probe));
            }
            return Err(ExitError::new(
                Exit::Fatal,
                anyhow::Error::new(e).context("cannot take the shard lease"),
            ));
        }
    };
    // Reachable and writable, and which guarantees the backend keeps; probe objects live in
    // this shard's staging area, so a run killed mid-probe leaves debris only where the next
    // run of the shard cleans up.
    match archive.probe_in(&shard_id).await {
        Ok(report) => {
            if report.leases_are_advisory() {
                tracing::warn!(store = archive.display_url(), %report, "the store ignores create-only writes: leases are advisory, so do not run the same shard twice at once");
            }
        }
        Err(e) => {
            let _ = archive.release_lease(lease).await;
            return Err(unusable(e));
        }
    }
    tracing::info!(shard = %shard_id, store = archive.display_url(), "lease taken, starting run");

    let catalog = Arc::new(crate::catalog::CatalogWriter::new(archive.clone(), shard_id.clone()));
    let ledger = Arc::new(crate::ledger::Ledger::new(
        archive.clone(),
        shard_id.clone(),
        config.ledger.signer.clone(),
    ));
    let work = async {
        let graph = graph_clients(config, proof)?;
        // Fail fast, before any work, when the credentials are refused (fatal: exit 4) or the
        // token endpoint stays unavailable through every retry.
        // Either way nothing can be archived: exit 4 with the endpoint's own error code.
        graph
            .tokens
            .token()
            .await
            .map_err(|e| match crate::environment::EnvironmentFault::from_auth(&e) {
                Some(fault) => ExitError::new(Exit::Fatal, fault),
                None => ExitError::new(Exit::Fatal, e),
            })?;
        // Which organizers: ids, UPNs, a group, the directory; then this shard's part.
        let resolved = organizers::resolve(config, &graph.delta, archive, &shard_id).await;
        let organizers: Vec<OrganizerId> = resolved.organizers.into_iter().filter(|o| shard.owns(o)).collect();
        tracing::info!(shard = %shard_id, organizers = organizers.len(), "organizers of this shard");
        let reclaimed = archive
            .reclaim(&shard_id, &organizers)
            .await
            .map_err(|e| ExitError::new(Exit::Fatal, anyhow::Error::new(e).context("cannot clean staging")))?;
        if reclaimed > 0 {
            tracing::info!(reclaimed, "removed debris of an interrupted earlier run");
        }
        abort_interrupted_uploads(archive, &shard_id, started_at).await;
        // What a killed run of this shard wrote and did not log, before anything else.
        let recovery = match ledger.recover().await {
            Ok(Some(recovery)) => {
                tracing::warn!(
                    leaves = recovery.recovered,
                    "logged what an interrupted run of this shard wrote (a recover record)"
                );
                Some(recovery)
            }
            Ok(None) => None,
            Err(e) => {
                return Err(ExitError::new(
                    Exit::Fatal,
                    anyhow::Error::new(e).context("cannot recover the ledger of an interrupted run"),
                ));
            }
        };
        crate::ledger::genesis(archive, &ledger).await?;
        // The encryption at rest in force, as the store reports it for the ledger's newest
        // record (nothing on stores that report none).
        if let Ok(Some(head)) = archive.ledger_head().await
            && let Some(encryption) = crate::status::encryption(archive, head.seq).await
        {
            tracing::info!(algorithm = %encryption.algorithm, kms_key = encryption.kms_key_id.as_deref().unwrap_or("-"), "encryption at rest, as the store reports it");
        }
        // An archive made before the catalog gets one before anything is added to it.
        match archive.has_catalog().await {
            Ok(true) => {}
            Ok(false) => {
                let built = crate::find::rebuild(archive, &ledger).await?;
                if built > 0 {
                    tracing::info!(
                        entries = built,
                        "the archive had no catalog: built it from the manifests"
                    );
                }
            }
            Err(e) => {
                return Err(ExitError::new(
                    Exit::Fatal,
                    anyhow::Error::new(e).context("cannot list catalog/"),
                ));
            }
        }
        // What an interrupted run archived and may not have cataloged (it may have logged a
        // manifest and died before its segment): cataloged again, then the intents are
        // settled, so that a run killed before this point does it again.
        if let Some(recovery) = recovery {
            let cataloged = crate::find::recatalog(archive, &ledger, &recovery.written).await?;
            if cataloged > 0 {
                tracing::info!(entries = cataloged, "cataloged what the interrupted run archived");
            }
            ledger.settle(recovery.left).await;
        }
        let ctx = ItemContext {
            archive: archive.clone(),
            fetcher: graph.fetcher.clone(),
            shard: shard_id.clone(),
            retry: graph.delta.http().policy().clone(),
            staging_slots: Arc::new(tokio::sync::Semaphore::new(
                config.fetch.concurrency * archive.staged_uploads_per_download(),
            )),
            progress,
            retried: false,
            environment: Arc::clone(&environment),
            catalog: Arc::clone(&catalog),
            ledger: Arc::clone(&ledger),
            names: Arc::new(crate::enrich::Names::new(
                graph.delta.clone(),
                config.graph.base_url.clone(),
            )),
            retention: config.retention.clone(),
            holds: Arc::clone(&holds),
        };
        let rc = RoundContext {
            items: &ctx,
            delta: &graph.delta,
            config,
            policy: QueuePolicy {
                max_item_attempts: config.fetch.max_item_attempts,
            },
            shutdown: &halt,
        };
        // The passes borrow `organizers`, which the run report needs afterwards.
        let totals = {
            // One pass per organizer and kind, all through the same round; a kind that fails (a
            // tenant with transcripts turned off) fails only its own passes. Passes are made as
            // they start and folded into the totals as they end, so that memory does not grow
            // with the number of organizers (issue 12).
            let passes = organizers
                .iter()
                .flat_map(|o| config.source.kinds.iter().map(move |k| (o.clone(), *k)));
            let org_parallel = (organizers.len() * config.source.kinds.len()).clamp(1, config.fetch.concurrency.max(2));
            let organizers_done = futures::stream::iter(passes)
                .map(|(org, kind)| {
                    let rc = &rc;
                    async move {
                        match kind {
                            recarch_store::Kind::Transcripts => archive_organizer(rc, &Transcripts, org).await,
                            recarch_store::Kind::Contacts => archive_organizer(rc, &Contacts, org).await,
                            recarch_store::Kind::Recordings => archive_organizer(rc, &Recordings, org).await,
                            recarch_store::Kind::AdhocRecordings => {
                                archive_organizer(rc, &AdhocRecordings::new(&rc.config.graph.base_url), org).await
                            }
                            recarch_store::Kind::AdhocTranscripts => {
                                archive_organizer(rc, &AdhocTranscripts::new(&rc.config.graph.base_url), org).await
                            }
                        }
                    }
                })
                .buffer_unordered(org_parallel)
                .fold(Totals::new(config), |mut totals, result| async move {
                    totals.add(result);
                    totals
                });
            // After SIGTERM/SIGINT, or an environment fault, no new download starts: items
            // still waiting for a slot come back `Interrupted` (their pages stay unfinished);
            // open downloads stream on.
            let stop_new_downloads = async {
                halt.cancelled().await;
                ctx.fetcher.close();
                ctx.staging_slots.close();
            };
            tokio::pin!(organizers_done);
            tokio::select! {
                totals = &mut organizers_done => totals,
                () = stop_new_downloads => organizers_done.await,
            }
        };
        Ok::<_, ExitError>((organizers, resolved.failures, totals, Some(graph.delta.http().clone())))
    };

    // After SIGTERM/SIGINT, in-flight downloads get a grace period, then are abandoned (their
    // pages were never checkpointed, so the next run does them again).
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(config.run.shutdown_grace).await;
    };
    let results = tokio::select! {
        results = work => results,
        lost = keep_lease(archive, &mut lease, LEASE_TTL / 3) => {
            shutdown.cancel();
            return Err(lost);
        }
        () = grace => {
            tracing::warn!(grace_secs = config.run.shutdown_grace.as_secs_f64(), "in-flight downloads did not finish in time; abandoned, they run again next time");
            Ok((Vec::new(), Vec::new(), Totals::new(config), None))
        }
    };
    let (organizers, source_failures, totals, graph_http) = match results {
        Ok(r) => r,
        Err(e) => {
            let _ = archive.release_lease(lease).await;
            return Err(e);
        }
    };
    let Totals {
        counts,
        mut kinds,
        failures: pass_failures,
        passes_failed,
        fatal,
    } = totals;
    let organizers_failed = source_failures.len() + passes_failed;
    let mut failures = source_failures;
    failures.extend(pass_failures);
    // What the last pages and the retry queues archived, and the record that logs it.
    let segment = match catalog.flush(&ledger).await {
        Ok(intent) => intent,
        Err(e) => {
            tracing::error!(error = %recarch_failure::error_chain(&e), "cannot write the catalog's last segment: `recarch ls` misses this run's last items until `recarch catalog rebuild`");
            None
        }
    };
    if let Err(e) = ledger
        .log(segment.into_iter().collect(), LedgerEvent::Run, serde_json::Map::new())
        .await
    {
        tracing::error!(error = %recarch_failure::error_chain(&e), "cannot write the run's last ledger record: the next run of this shard logs it (recover)");
    }
    // Debris of abandoned downloads (after a shutdown) goes now, not next run.
    if let Err(e) = archive.clean_staging(&shard_id).await {
        tracing::warn!(error = %e, "cannot clean staging at the end of the run");
    }
    // And the multipart uploads they left (none of this shard's uploads is in flight now).
    abort_interrupted_uploads(archive, &shard_id, Utc::now()).await;
    let mut queued = 0;
    let mut dead_letters = 0;
    for kind in &config.source.kinds {
        let (q, d) = queue_totals(archive, *kind, &organizers).await;
        queued += q;
        dead_letters += d;
        let part = kinds.entry(*kind).or_default();
        part.queued = q;
        part.dead_letters = d;
    }
    let interrupted = shutdown.is_cancelled();
    let outcome = if fatal.is_some() {
        Outcome::Fatal
    } else if interrupted {
        Outcome::Interrupted
    } else if failures.is_empty() {
        Outcome::Complete
    } else {
        Outcome::Partial
    };
    let exit_code = match outcome {
        Outcome::Complete => 0,
        Outcome::Partial | Outcome::Interrupted => 1,
        Outcome::Fatal => 4,
    };
    let mut report = RunReport::new(shard_id.as_str(), started_at);
    report.organizers = organizers.len();
    report.counts = counts;
    report.kinds = kinds;
    report.queued = queued;
    report.dead_letters = dead_letters;
    report.organizers_failed = organizers_failed;
    report.graph_requests = graph_http.as_ref().map_or(0, |h| h.requests_sent());
    report.ledger = ledger.stats();
    report.retention = archive.worm().map(|policy| crate::report::RetentionReport {
        mode: policy.mode.to_string(),
        locks: archive.lock_stats(),
        active_matters: holds.active.len(),
    });
    report.throttled_requests = graph_http.as_ref().map_or(0, |h| h.throttle_events());
    report.failures = failures;
    report.outcome = outcome;
    report.interrupted = interrupted;
    report.exit_code = exit_code;
    report.cause = fatal.as_ref().map(Cause::of);
    report.last_success_at = if exit_code == 0 {
        let status = recarch_store::ShardStatus {
            last_success_at: Some(Utc::now()),
        };
        if let Err(e) = archive.save_shard_status(&shard_id, &status).await {
            tracing::warn!(error = %error_chain(&e), "cannot record the last success");
        }
        status.last_success_at
    } else {
        last_success(archive, &shard_id).await
    };
    finish_report(run, &mut report).await;
    if let Err(e) = archive.release_lease(lease).await {
        tracing::warn!(error = %e, "cannot release the lease; it expires by itself");
    }
    Ok(report)
}

/// The organizers' passes folded as they end: counts, per kind and in all, and what failed.
/// Only failures are kept one by one (the report lists them); a pass that went well leaves
/// nothing behind but its counts.
struct Totals {
    counts: Counts,
    kinds: std::collections::BTreeMap<recarch_store::Kind, KindReport>,
    failures: Vec<Failure>,
    /// Passes that stopped (a round failure or a fatal error).
    passes_failed: usize,
    /// The first fatal error.
    fatal: Option<anyhow::Error>,
}

impl Totals {
    fn new(config: &Config) -> Self {
        Totals {
            counts: Counts::default(),
            kinds: config
                .source
                .kinds
                .iter()
                .map(|k| (*k, KindReport::default()))
                .collect(),
            failures: Vec::new(),
            passes_failed: 0,
            fatal: None,
        }
    }

    fn add(&mut self, r: OrganizerResult) {
        if r.fatal.is_some() || r.failures.iter().any(|f| f.id.is_empty()) {
            self.passes_failed += 1;
        }
        self.counts.add(&r.counts);
        if let Some(kind) = r.kind {
            self.kinds.entry(kind).or_default().counts.add(&r.counts);
        }
        self.failures.extend(r.failures);
        if self.fatal.is_none() {
            self.fatal = r.fatal;
        }
    }
}

/// Pushes the run's metrics and writes the metrics file, as configured; never fails the run.
async fn export_metrics(config: &Config, report: &RunReport) {
    if config.metrics.pushgateway_url.is_none() && config.metrics.file.is_none() {
        return;
    }
    let metrics = crate::metrics::RunMetrics::new();
    metrics.record(report, report.last_success_at);
    let body = metrics.encode();
    if let Some(gateway) = &config.metrics.pushgateway_url {
        match crate::metrics::push(gateway, &report.shard, body.clone()).await {
            Ok(()) => tracing::info!(pushgateway = %crate::config::redact_url(gateway.as_str()), "metrics pushed"),
            Err(e) => {
                tracing::warn!(pushgateway = %crate::config::redact_url(gateway.as_str()), error = %e, "cannot push the metrics; the run goes on")
            }
        }
    }
    if let Some(file) = &config.metrics.file {
        if let Err(e) = crate::metrics::write_file(file, &body) {
            tracing::warn!(file = %file.display(), error = %e, "cannot write the metrics file");
        }
    }
}

/// Renews the lease every `every` for as long as the run goes on; returns only when the run
/// must stop. A renewal that fails on a store error is retried until the lease would lapse
/// (then exit 4: the store is unreachable); only a lease seen in another holder's hands is
/// exit 3.
async fn keep_lease(archive: &Archive, lease: &mut Lease, every: Duration) -> ExitError {
    loop {
        tokio::time::sleep(every).await;
        let mut backoff = Duration::from_millis(500);
        loop {
            match archive.renew_lease(lease).await {
                Ok(()) => break,
                Err(e @ StoreError::LeaseLost { .. }) => {
                    return ExitError::new(
                        Exit::LeaseHeld,
                        anyhow::Error::new(e).context("lost the shard lease mid-run; another run took over"),
                    );
                }
                Err(e) => {
                    let left = (lease.expires_at - Utc::now()).to_std().unwrap_or_default();
                    let margin = LEASE_SAFETY_MARGIN.min(lease.ttl() / 4);
                    if left <= margin + backoff {
                        return ExitError::new(
                            Exit::Fatal,
                            anyhow::Error::new(e).context(
                                "cannot renew the shard lease before it lapses: the store is unreachable; stopping so that no other run overlaps this one",
                            ),
                        );
                    }
                    tracing::warn!(error = %error_chain(&e), left_secs = left.as_secs(), "cannot renew the shard lease, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(8));
                }
            }
        }
    }
}

/// Queue entries and dead letters of `organizers` (sorted, as [`organizers::resolve`] gives
/// them) when the run ends, from one listing.
async fn queue_totals(archive: &Archive, kind: recarch_store::Kind, organizers: &[OrganizerId]) -> (u64, u64) {
    debug_assert!(organizers.is_sorted());
    match archive
        .queue_totals(kind, |o| organizers.binary_search(o).is_ok())
        .await
    {
        Ok(totals) => totals,
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "cannot count queued items and dead letters");
            (0, 0)
        }
    }
}

/// Aborts the incomplete multipart uploads that interrupted runs of the shard left on S3
/// (billed, and invisible in listings); nothing to do on other stores. A failure is logged:
/// the intent records stay, and the next run tries again.
async fn abort_interrupted_uploads(archive: &Archive, shard: &ShardId, initiated_before: chrono::DateTime<Utc>) {
    match archive.abort_interrupted_uploads(shard, initiated_before).await {
        Ok(0) => {}
        Ok(aborted) => tracing::info!(aborted, "aborted incomplete multipart uploads of interrupted runs"),
        Err(e) => tracing::warn!(
            error = %error_chain(&e),
            "cannot abort the incomplete multipart uploads of interrupted runs; the next run tries again"
        ),
    }
}

/// Refuses a retention mode on a store that does not keep objects write-once (exit 2,
/// naming the bucket or container and what to do), as `support` (read with the holds, see
/// `crate::holds::store_support`) says; on local disk, says once that a directory is not WORM.
fn require_worm(
    archive: &Archive,
    policy: recarch_store::WormPolicy,
    support: Option<&recarch_store::WormSupport>,
) -> Result<(), ExitError> {
    match support {
        Some(recarch_store::WormSupport::Enforced) => {
            tracing::info!(mode = %policy.mode, store = archive.display_url(), "every object is locked as it is written");
            Ok(())
        }
        Some(recarch_store::WormSupport::NotEnabled(reason)) => Err(ExitError::new(
            Exit::Config,
            anyhow::anyhow!(
                "[retention].mode = \"{}\" on {}: {reason}",
                policy.mode,
                archive.display_url()
            ),
        )),
        Some(recarch_store::WormSupport::Local) => {
            tracing::info!(mode = %policy.mode, "local disk: retention is recorded and files are made read-only, but a directory is not WORM storage");
            Ok(())
        }
        Some(recarch_store::WormSupport::None) | None => Ok(()),
    }
}

/// Opens the archive named by the configuration, with its mutable documents (`state/`,
/// `locks/`, `runs/`) at `[store].state_url` when that is set. Nothing is contacted.
pub fn open_archive(config: &Config) -> Result<Archive, ExitError> {
    let (archive, state) = open_stores(config)?;
    with_state(archive, state)
}

/// [`open_archive`] for `recarch run`: an archive that ran before it had a state store first
/// has its state, leases and run reports copied there (once; see
/// [`Archive::copy_state_to`]). The archive is returned with the copy's outcome, so that a
/// failed copy is reported like any other fatal failure of the run.
async fn open_archive_for_run(config: &Config) -> Result<(Archive, Result<(), ExitError>), ExitError> {
    let (archive, state) = open_stores(config)?;
    let copied = match &state {
        None => Ok(()),
        Some(state) => match archive.copy_state_to(state).await {
            Ok(0) => Ok(()),
            Ok(copied) => {
                tracing::info!(
                    copied,
                    from = archive.display_url(),
                    to = state.display_url(),
                    "copied the archive's state/, locks/ and runs/ to [store].state_url (its first run there); the originals in the archive are no longer read"
                );
                Ok(())
            }
            Err(e) => Err(ExitError::new(
                Exit::Fatal,
                anyhow::Error::new(e).context(format!(
                    "cannot copy the archive's state to [store].state_url {}",
                    state.display_url()
                )),
            )),
        },
    };
    Ok((with_state(archive, state)?, copied))
}

/// The archive at `[store].url` and, if set, the state store at `[store].state_url`.
fn open_stores(config: &Config) -> Result<(Archive, Option<Archive>), ExitError> {
    let open = |url: &str, options: &[(String, String)], url_key: &str, options_key: &str| {
        Archive::open(url, options).map_err(|e| match e {
            StoreError::InvalidUrl { .. } => {
                ExitError::new(Exit::Config, anyhow::Error::new(e).context(url_key.to_owned()))
            }
            StoreError::InvalidOption { .. } => {
                ExitError::new(Exit::Config, anyhow::Error::new(e).context(options_key.to_owned()))
            }
            other => ExitError::new(Exit::Fatal, other),
        })
    };
    let archive = open(
        &config.store.url,
        &config.store.options,
        "[store].url",
        "[store.options]",
    )?;
    let archive = match &config.store.spool_dir {
        Some(dir) => archive.with_spool_dir(dir),
        None => archive,
    };
    let archive = match config.store.spool_memory {
        Some(bytes) => archive.with_spool_memory(bytes),
        None => archive,
    };
    // Every object written is locked until its retain-until (see `recarch_store::worm`); the
    // state store is where the documents that are rewritten live: never locked.
    let archive = match config.retention.worm_policy() {
        Some(policy) => archive.with_worm(policy),
        None => archive,
    };
    let state = match &config.store.state_url {
        None => None,
        Some(url) => Some(open(
            url,
            &config.store.state_options,
            "[store].state_url",
            "[store.state_options] (or [store.options], which a state store of the same kind takes when it has none)",
        )?),
    };
    Ok((archive, state))
}

/// `archive` with its mutable documents in `state`, if any.
fn with_state(archive: Archive, state: Option<Archive>) -> Result<Archive, ExitError> {
    match state {
        None => Ok(archive),
        Some(state) => archive
            .with_state_store(state)
            .map_err(|e| ExitError::new(Exit::Config, anyhow::Error::new(e).context("[store].state_url"))),
    }
}

/// The HTTP side of a run: token provider, delta client, fetcher.
pub struct GraphClients {
    /// Tokens.
    pub tokens: Arc<dyn TokenProvider>,
    /// Delta paging.
    pub delta: DeltaClient,
    /// Downloads.
    pub fetcher: Fetcher,
}

fn graph_clients(config: &Config, proof: recarch_delta::credentials::ClientProof) -> Result<GraphClients, ExitError> {
    let fatal = |e: reqwest::Error| {
        ExitError::new(
            Exit::Fatal,
            anyhow::Error::new(e).context("cannot build the HTTP client"),
        )
    };
    // No client follows redirects by itself: the fetcher decides, per hop, whether the token
    // may go along.
    let builder = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("recarch/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
    };
    let graph_http = builder().build().map_err(fatal)?;
    let plain_http = builder().build().map_err(fatal)?;
    let token_http = builder().timeout(Duration::from_secs(60)).build().map_err(fatal)?;
    let policy = RetryPolicy {
        max_attempts: config.fetch.max_attempts,
        ..RetryPolicy::default()
    };

    let tokens: Arc<dyn TokenProvider> = Arc::new(
        ClientCredentials::new(
            token_http,
            ClientCredentialsConfig {
                authority_url: config.graph.authority_url.clone(),
                tenant_id: config.graph.tenant_id.clone(),
                client_id: config.graph.client_id.clone(),
                proof,
                scope: scope_for(&config.graph.base_url),
                refresh_margin: Duration::from_secs(300),
                retry: policy.clone(),
            },
        )
        .map_err(|e| ExitError::new(Exit::Config, e))?,
    );
    let http = GraphHttp::new(graph_http, Arc::clone(&tokens), &config.graph.base_url, policy);
    Ok(GraphClients {
        tokens,
        delta: DeltaClient::new(http.clone()),
        // Every byte is hashed once, by the store, which names the blob by what it staged.
        fetcher: Fetcher::new(http, plain_http, config.fetch.concurrency).hashing(false),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
        PutOptions, PutPayload, PutResult,
    };

    use super::*;

    /// An in-memory store whose next `failures` writes fail like an unreachable backend.
    #[derive(Debug, Default)]
    struct Flaky {
        inner: InMemory,
        failures: AtomicU32,
    }

    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Flaky")
        }
    }

    impl Flaky {
        fn fail(&self) -> object_store::Result<()> {
            let failing = self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                return Err(object_store::Error::Generic {
                    store: "Flaky",
                    source: "connection reset".into(),
                });
            }
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Flaky {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.fail()?;
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    fn archive() -> (Archive, Arc<Flaky>) {
        let store = Arc::new(Flaky::default());
        (Archive::from_store(store.clone(), "memory://flaky"), store)
    }

    #[tokio::test]
    async fn lease_renewal_survives_store_errors() {
        let (archive, store) = archive();
        let shard = ShardId::new(0, 1);
        let mut lease = archive
            .acquire_lease(&shard, "me", Duration::from_secs(4))
            .await
            .expect("free");
        let first_expiry = lease.expires_at;
        // Two renewals in a row fail; the third goes through well before the lease lapses.
        store.failures.store(2, Ordering::SeqCst);
        let kept = tokio::time::timeout(
            Duration::from_millis(3_500),
            keep_lease(&archive, &mut lease, Duration::from_millis(300)),
        )
        .await;
        assert!(
            kept.is_err(),
            "the run was stopped: {:?}",
            kept.map(|e| e.error.to_string())
        );
        assert!(lease.expires_at > first_expiry, "renewed");
        assert_eq!(store.failures.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_lease_taken_over_is_exit_3_and_an_unreachable_store_exit_4() {
        let (archive, store) = archive();
        let shard = ShardId::new(0, 1);
        let mut lease = archive
            .acquire_lease(&shard, "me", Duration::from_secs(2))
            .await
            .expect("free");
        // Another holder: the lease document replaced behind our back.
        let other = archive.clone();
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let theirs = other
            .acquire_lease(&shard, "them", Duration::from_secs(60))
            .await
            .expect("expired, taken over");
        let stop = keep_lease(&archive, &mut lease, Duration::from_millis(50)).await;
        assert_eq!(stop.exit, Exit::LeaseHeld, "{:#}", stop.error);
        archive.release_lease(theirs).await.expect("release");

        // A store that never answers again: stop before the lease lapses, exit 4.
        let mut lease = archive
            .acquire_lease(&shard, "me", Duration::from_secs(2))
            .await
            .expect("free");
        store.failures.store(u32::MAX, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let stop = keep_lease(&archive, &mut lease, Duration::from_millis(100)).await;
        assert_eq!(stop.exit, Exit::Fatal, "{:#}", stop.error);
        assert!(format!("{:#}", stop.error).contains("before it lapses"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "stopped before the lease lapsed"
        );
    }
}
