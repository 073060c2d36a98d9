//! The run's metrics, for alerting: pushed to a Prometheus Pushgateway
//! (`[metrics] pushgateway_url`, grouping `job="recarch"`, `shard="I-of-N"`) and/or written to a
//! file in the text format (`--metrics-file`, for node-exporter's textfile collector).
//!
//! One `RunMetrics` per run, its handles registered into an owned `Registry` (no globals: tests
//! run several runs in one process), filled from the run report so the two never disagree.
//! Every metric is a gauge: it describes the last run of the shard (a batch job pushes values,
//! it is not scraped while it counts). Exporting never fails the run: a failure is logged.
//!
//! | metric | labels | meaning |
//! | --- | --- | --- |
//! | `recarch_items_archived` | `kind` | items archived by the run |
//! | `recarch_bytes_archived` | `kind` | bytes downloaded and stored |
//! | `recarch_items_failed` | `kind` | items that failed in the run (queued or dead-lettered) |
//! | `recarch_items_dead_lettered` | `kind` | items dead-lettered by the run |
//! | `recarch_queued_items` | `kind` | items queued for a later run, when the run ended |
//! | `recarch_dead_letters` | `kind` | dead letters of the shard's organizers (this run's and earlier ones') |
//! | `recarch_organizers` | `state` (`ok`, `failed`) | organizers of the shard, by how their pass ended |
//! | `recarch_graph_requests` | — | requests sent to Graph (every attempt) |
//! | `recarch_graph_throttled_requests` | — | of those, answered 429 or 503 |
//! | `recarch_run_duration_seconds` | — | the run's wall time |
//! | `recarch_run_exit_code` | — | the process exit code (0, 1, 4) |
//! | `recarch_run_fatal` | `cause` (`diskFull`, `tokenEndpoint`, `contentOutage`, `storeUnavailable`, `fatal`) | 1 when the run ended with exit 4, and why (absent otherwise) |
//! | `recarch_run_timestamp_seconds` | — | when the run ended (Unix time) |
//! | `recarch_last_success_timestamp_seconds` | — | when a run of the shard last exited 0 (Unix time; 0 if never) |
//! | `recarch_objects_locked` | `how` (`locked`, `extended`) | with a retention mode: objects the run locked as it wrote them, and blobs whose lock it extended |
//! | `recarch_legal_holds_set` | — | with a retention mode: legal holds the run set on the store (items an active matter covers) |
//! | `recarch_active_matters` | — | with a retention mode: the matters holding items when the run began |

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use url::Url;

use crate::report::RunReport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HowLabel {
    how: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: String,
}

/// Registers the handles of `$m` into `$registry`, one `field: name, help;` a metric, in order.
macro_rules! register {
    ($registry:ident, $m:ident; $($field:ident: $name:literal, $help:literal;)+) => {
        $($registry.register($name, $help, $m.$field.clone());)+
    };
}

/// The metrics of one run.
pub struct RunMetrics {
    registry: Registry,
    archived: Family<KindLabel, Gauge>,
    bytes: Family<KindLabel, Gauge>,
    failed: Family<KindLabel, Gauge>,
    dead_lettered: Family<KindLabel, Gauge>,
    queued: Family<KindLabel, Gauge>,
    dead_letters: Family<KindLabel, Gauge>,
    organizers: Family<StateLabel, Gauge>,
    requests: Gauge,
    throttled: Gauge,
    duration: Gauge<f64, AtomicU64>,
    exit_code: Gauge,
    ended: Gauge<f64, AtomicU64>,
    last_success: Gauge<f64, AtomicU64>,
    fatal: Family<CauseLabel, Gauge>,
    locked: Family<HowLabel, Gauge>,
    holds_set: Gauge,
    matters: Gauge,
}

impl Default for RunMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RunMetrics {
    /// Every metric registered, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = RunMetrics {
            archived: Family::default(),
            bytes: Family::default(),
            failed: Family::default(),
            dead_lettered: Family::default(),
            queued: Family::default(),
            dead_letters: Family::default(),
            organizers: Family::default(),
            requests: Gauge::default(),
            throttled: Gauge::default(),
            duration: Gauge::default(),
            exit_code: Gauge::default(),
            ended: Gauge::default(),
            last_success: Gauge::default(),
            fatal: Family::default(),
            locked: Family::default(),
            holds_set: Gauge::default(),
            matters: Gauge::default(),
            registry: Registry::default(),
        };
        // One metric a row, `field: name, help;`, in the order of the text format's output.
        register! { registry, m;
            archived: "recarch_items_archived", "Items archived by the run";
            bytes: "recarch_bytes_archived", "Bytes downloaded and stored by the run";
            failed: "recarch_items_failed", "Items that failed in the run (queued or dead-lettered)";
            dead_lettered: "recarch_items_dead_lettered", "Items dead-lettered by the run";
            queued: "recarch_queued_items", "Items queued for a later run";
            dead_letters: "recarch_dead_letters", "Dead letters of the shard's organizers";
            organizers: "recarch_organizers", "Organizers of the shard by how their pass ended";
            requests: "recarch_graph_requests", "Requests sent to Graph";
            throttled: "recarch_graph_throttled_requests", "Graph requests answered 429 or 503";
            duration: "recarch_run_duration_seconds", "Wall time of the run";
            exit_code: "recarch_run_exit_code", "Exit code of the run";
            fatal: "recarch_run_fatal", "1 when the run ended with exit 4, labelled with why";
            ended: "recarch_run_timestamp_seconds", "When the run ended (Unix time)";
            last_success: "recarch_last_success_timestamp_seconds", "When a run of the shard last exited 0 (Unix time)";
            locked: "recarch_objects_locked", "Objects the run locked as it wrote them, and blobs whose lock it extended";
            holds_set: "recarch_legal_holds_set", "Legal holds the run set on the store";
            matters: "recarch_active_matters", "Matters holding items when the run began";
        }
        RunMetrics { registry, ..m }
    }

    /// Sets every metric from the run report; `last_success` is the shard's last exit-0 run
    /// (this one, if it succeeded).
    pub fn record(&self, report: &RunReport, last_success: Option<DateTime<Utc>>) {
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for (kind, part) in &report.kinds {
            let kind = KindLabel { kind: kind.to_string() };
            let c = &part.counts;
            self.archived.get_or_create(&kind).set(int(c.archived));
            self.bytes.get_or_create(&kind).set(int(c.bytes));
            self.failed.get_or_create(&kind).set(int(c.failed));
            self.dead_lettered.get_or_create(&kind).set(int(c.dead_lettered));
            self.queued.get_or_create(&kind).set(int(part.queued));
            self.dead_letters.get_or_create(&kind).set(int(part.dead_letters));
        }
        let failed = report.organizers_failed.min(report.organizers);
        self.organizers
            .get_or_create(&StateLabel { state: "ok".into() })
            .set(i64::try_from(report.organizers - failed).unwrap_or(i64::MAX));
        self.organizers
            .get_or_create(&StateLabel { state: "failed".into() })
            .set(i64::try_from(failed).unwrap_or(i64::MAX));
        self.requests.set(int(report.graph_requests));
        self.throttled.set(int(report.throttled_requests));
        self.duration.set(report.duration_secs);
        self.exit_code.set(i64::from(report.exit_code));
        if let Some(cause) = &report.cause {
            self.fatal
                .get_or_create(&CauseLabel {
                    cause: cause.kind.clone(),
                })
                .set(1);
        }
        if let Some(retention) = &report.retention {
            for (how, count) in [
                ("locked", retention.locks.locked),
                ("extended", retention.locks.extended),
            ] {
                self.locked.get_or_create(&HowLabel { how: how.into() }).set(int(count));
            }
            self.holds_set.set(int(retention.locks.legal_holds));
            self.matters
                .set(i64::try_from(retention.active_matters).unwrap_or(i64::MAX));
        }
        self.ended.set(unix(report.finished_at));
        self.last_success.set(last_success.map_or(0.0, unix));
    }

    /// The Prometheus text format (0.0.4, as the Pushgateway and the textfile collector read).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            return String::new();
        }
        // OpenMetrics ends with `# EOF`; the 0.0.4 text format has no such line.
        out.lines()
            .filter(|l| *l != "# EOF")
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// `PUT {gateway}/metrics/job/recarch/shard/{shard}`: replaces the shard's group.
pub async fn push(gateway: &Url, shard: &str, body: String) -> Result<(), String> {
    let mut url = gateway.clone();
    url.path_segments_mut()
        .map_err(|()| "the pushgateway URL cannot take a path".to_owned())?
        .pop_if_empty()
        .extend(["metrics", "job", "recarch", "shard", shard]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .put(url)
        .header("content-type", "text/plain; version=0.0.4")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach the pushgateway: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("the pushgateway answered {}", response.status()));
    }
    Ok(())
}

/// Writes `body` to `path` atomically (a temporary file beside it, then a rename), so the
/// textfile collector never reads half a file.
pub fn write_file(path: &Path, body: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
