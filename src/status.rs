//! `recarch status`: per-organizer checkpoint and queue, the lease, and the last run.

use futures::TryStreamExt;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;
use recarch_store::{Archive, LinkKind, OrganizerState};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::exit::{Exit, ExitError};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusReport {
    store: String,
    organizers: Vec<OrganizerStatus>,
    leases: Vec<Value>,
    last_run: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OrganizerStatus {
    organizer_id: String,
    /// `not started`, `mid-round` or `up to date`.
    round: &'static str,
    rounds_completed: u64,
    updated_at: Option<String>,
    queued: Vec<QueuedStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueuedStatus {
    id: String,
    attempts: u32,
    last_error: String,
    last_failed_at: String,
}

/// Prints the status; exit 0 whenever the status could be read (queued items are listed, not
/// signalled: `run` exits 1 for them).
pub async fn status_cli(config: &Config, archive: &Archive, json: bool) -> Result<Exit, ExitError> {
    let fatal = |e: anyhow::Error| ExitError::new(Exit::Fatal, e);
    let mut organizers = Vec::new();
    for org in &config.source.organizers {
        let state = archive
            .load_state(org)
            .await
            .map_err(|e| fatal(anyhow::Error::new(e).context(format!("cannot read the state of organizer {org}"))))?;
        organizers.push(describe(org.as_str(), state.as_ref()));
    }
    let store = archive.object_store();
    let mut leases = Vec::new();
    let locks: Vec<_> = store
        .list(Some(&Path::from("locks")))
        .try_collect()
        .await
        .map_err(|e| fatal(anyhow::Error::new(e).context("cannot list leases")))?;
    for lock in locks {
        if let Some(v) = read_json(archive, &lock.location).await {
            leases.push(v);
        }
    }
    let runs: Vec<_> = store
        .list(Some(&Path::from("runs")))
        .try_collect()
        .await
        .map_err(|e| fatal(anyhow::Error::new(e).context("cannot list run reports")))?;
    let last = runs
        .iter()
        .max_by(|a, b| a.last_modified.cmp(&b.last_modified).then(a.location.cmp(&b.location)));
    let last_run = match last {
        Some(meta) => read_json(archive, &meta.location).await,
        None => None,
    };
    let report = StatusReport {
        store: archive.display_url().to_owned(),
        organizers,
        leases,
        last_run,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print_text(&report);
    }
    Ok(Exit::Ok)
}

fn describe(org: &str, state: Option<&OrganizerState>) -> OrganizerStatus {
    let round = match state.and_then(|s| s.checkpoint.as_ref()).map(|c| c.kind) {
        None => "not started",
        Some(LinkKind::Next) => "mid-round",
        Some(LinkKind::Delta) => "up to date",
    };
    OrganizerStatus {
        organizer_id: org.to_owned(),
        round,
        rounds_completed: state.map_or(0, |s| s.rounds_completed),
        updated_at: state.map(|s| s.updated_at.to_rfc3339()),
        queued: state
            .map(|s| {
                s.queue
                    .iter()
                    .map(|q| QueuedStatus {
                        id: q.id.clone(),
                        attempts: q.attempts,
                        last_error: q.last_error.clone(),
                        last_failed_at: q.last_failed_at.to_rfc3339(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

async fn read_json(archive: &Archive, path: &Path) -> Option<Value> {
    let bytes = archive.object_store().get(path).await.ok()?.bytes().await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn print_text(report: &StatusReport) {
    println!("store: {}", report.store);
    for o in &report.organizers {
        println!(
            "organizer {}: {}, {} rounds completed, {} queued{}",
            o.organizer_id,
            o.round,
            o.rounds_completed,
            o.queued.len(),
            o.updated_at
                .as_deref()
                .map(|u| format!(", updated {u}"))
                .unwrap_or_default()
        );
        for q in &o.queued {
            println!("  queued {} (attempts {}): {}", q.id, q.attempts, q.last_error);
        }
    }
    for lease in &report.leases {
        println!(
            "lease: shard {} held by {} until {}",
            lease["shard"].as_str().unwrap_or("?"),
            lease["owner"].as_str().unwrap_or("?"),
            lease["expiresAt"].as_str().unwrap_or("?")
        );
    }
    match &report.last_run {
        Some(run) => println!(
            "last run: shard {} at {}: {} archived, {} failed, exit {}",
            run["shard"].as_str().unwrap_or("?"),
            run["startedAt"].as_str().unwrap_or("?"),
            run["archived"],
            run["failed"],
            run["exitCode"]
        ),
        None => println!("last run: none"),
    }
}
