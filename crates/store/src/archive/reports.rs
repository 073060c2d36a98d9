//! Run reports: `runs/<UTC start time>-<shard>.json`, written create-only and found again by
//! the time in their names.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::PutMode;

use super::to_json;
use crate::layout::{self, path};
use crate::{Archive, ShardId, StoreError};

/// How many names are tried for a run report before giving up.
const RUN_REPORT_ATTEMPTS: u32 = 16;

impl Archive {
    /// Writes a run report (create-only) as `runs/<YYYYMMDDTHHMMSS.mmmZ>-<shard>.json`, using
    /// `started` in UTC (fixed width: names sort as runs started). If that name is taken (two
    /// runs of a shard in one millisecond), a counter is added. Returns the key written.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if every candidate name is taken; store failures.
    pub async fn put_run_report(
        &self,
        shard: &ShardId,
        started: DateTime<Utc>,
        report: &serde_json::Value,
    ) -> Result<String, StoreError> {
        let mut key = layout::run_report_key(started, shard, 0);
        let body = to_json(&key, report)?;
        for attempt in 0..RUN_REPORT_ATTEMPTS {
            key = layout::run_report_key(started, shard, attempt);
            match self
                .store
                .put_opts(&path(&key), body.clone(), PutMode::Create.into())
                .await
            {
                Ok(_) => return Ok(key),
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(StoreError::from_backend(&key, e)),
            }
        }
        Err(StoreError::AlreadyExists { key })
    }

    /// The newest run report of each shard, by the start time and counter in its name (never
    /// by the objects' modification times, which a copied archive does not keep), sorted by
    /// shard. Names of earlier versions (whole seconds) are read too.
    ///
    /// # Errors
    /// Store failures while listing `runs/`.
    pub async fn newest_run_reports(&self) -> Result<Vec<RunReportRef>, StoreError> {
        let mut newest: std::collections::BTreeMap<String, RunReportRef> = Default::default();
        let mut listing = self.store.list(Some(&path(layout::RUNS)));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| StoreError::from_backend(layout::RUNS, e))?;
            let key = meta.location.to_string();
            let Some((started, shard, counter)) = layout::parse_run_report_key(&key) else {
                continue;
            };
            let candidate = RunReportRef {
                key,
                started,
                shard,
                counter,
            };
            match newest.get(candidate.shard.as_str()) {
                Some(known) if (known.started, known.counter) >= (candidate.started, candidate.counter) => {}
                _ => {
                    newest.insert(candidate.shard.as_str().to_owned(), candidate);
                }
            }
        }
        Ok(newest.into_values().collect())
    }

    /// The run report named by `report`, as written.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if it is gone, [`StoreError::Corrupt`] if it is not JSON;
    /// store failures.
    pub async fn read_run_report(&self, report: &RunReportRef) -> Result<serde_json::Value, StoreError> {
        let bytes = self.get_bytes(&report.key).await?.ok_or_else(|| StoreError::NotFound {
            key: report.key.clone(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::corrupt(&report.key, format!("not a run report: {e}")))
    }
}

/// A run report under `runs/`, known by its name: when the run started, its shard, and the
/// counter that tells apart runs of a shard started in the same millisecond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReportRef {
    /// The report's key.
    pub key: String,
    /// When the run started (from the name).
    pub started: DateTime<Utc>,
    /// The run's shard.
    pub shard: ShardId,
    /// 0, or the counter added to the name.
    pub counter: u32,
}
