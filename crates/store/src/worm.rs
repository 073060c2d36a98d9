//! Write-once retention (WORM) and legal holds on the archive's objects.
//!
//! With a [`WormPolicy`] set ([`Archive::with_worm`]), every object the archive writes under
//! the logged prefixes (manifests, meeting and call indexes, catalog segments, hold records),
//! every ledger record and every blob is locked ([`ObjectLock`]) until its retain-until as it
//! is written, before the write counts as done: a manifest until its own `retention.retainUntil`,
//! its blob at least as long (extended, never shortened, when a later item needs it longer),
//! everything else for the policy's longest period from the time written.
//!
//! How an object is locked is the backend's business, behind the store's `Extensions`:
//! S3 Object Lock (`PutObjectRetention` and `PutObjectLegalHold` on the version just written),
//! Azure version-level immutability (`x-ms-immutability-policy-until-date`, `x-ms-legal-hold`),
//! and on local disk files made read-only, which recarch's own commands honour and nothing
//! else has to ([`WormSupport::Local`]).

use std::fmt;

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::{Archive, StoreError};

/// How an object's retention is enforced: S3 Object Lock modes, Azure's policy states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Users with a special permission may shorten or remove it (S3 `GOVERNANCE`, Azure
    /// `Unlocked`).
    Governance,
    /// Nobody may shorten or remove it, not even the account's root (S3 `COMPLIANCE`, Azure
    /// `Locked`).
    Compliance,
}

impl LockMode {
    /// The name S3 uses: `GOVERNANCE` or `COMPLIANCE`.
    pub fn s3_name(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    /// The state Azure's `x-ms-immutability-policy-mode` takes: `Unlocked` or `Locked`.
    pub fn azure_name(self) -> &'static str {
        match self {
            LockMode::Governance => "Unlocked",
            LockMode::Compliance => "Locked",
        }
    }

    /// The lowercase name of the configuration and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The retention of one object version: its mode, and the instant until which it cannot be
/// deleted or overwritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLock {
    /// Governance or compliance.
    pub mode: LockMode,
    /// Until when (whole seconds: what S3 and Azure keep).
    pub retain_until: DateTime<Utc>,
}

impl ObjectLock {
    /// A lock until `until`, rounded up to the next whole second (stores keep whole seconds;
    /// rounding down would shorten it).
    pub fn until(mode: LockMode, until: DateTime<Utc>) -> ObjectLock {
        let whole = DateTime::from_timestamp(until.timestamp(), 0).unwrap_or(until);
        let retain_until = if whole < until {
            whole + TimeDelta::seconds(1)
        } else {
            whole
        };
        ObjectLock { mode, retain_until }
    }

    /// `retain_until` as S3 and Azure want it: `2026-12-06T15:00:00Z`.
    pub fn until_rfc3339(&self) -> String {
        self.retain_until.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}

/// What an object version's store says of its retention and legal hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockState {
    /// Its retention, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<ObjectLock>,
    /// Whether a legal hold is on.
    pub legal_hold: bool,
}

/// Whether the backend can keep objects write-once, as [`Archive::worm_support`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WormSupport {
    /// The store enforces retention and legal holds (S3 with Object Lock enabled, Azure with
    /// version-level immutability).
    Enforced,
    /// The store could, but this bucket or container is not set up for it; the reason names
    /// it and says what is missing.
    NotEnabled(String),
    /// Local disk: files are made read-only and recarch honours retention and holds in its
    /// own commands, but anyone who can write the directory can delete them. Not WORM.
    Local,
    /// A backend with no such thing (in memory).
    None,
}

/// The archive's retention policy, as the configuration sets it (see [`Archive::with_worm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WormPolicy {
    /// The mode every lock is set in.
    pub mode: LockMode,
    /// How long objects that are not an item's (indexes, catalog segments, hold records,
    /// ledger records) are kept: the longest period configured for any kind, so that
    /// nothing an item's evidence relies on goes before the item.
    pub longest: TimeDelta,
}

impl WormPolicy {
    /// The lock of an object written now that is not one item's.
    pub fn lock_from(&self, now: DateTime<Utc>) -> ObjectLock {
        ObjectLock::until(self.mode, now + self.longest)
    }
}

/// Counts of what locking did, shared by an archive's clones.
#[derive(Debug, Default)]
pub(crate) struct LockCounters {
    locked: AtomicU64,
    extended: AtomicU64,
    holds: AtomicU64,
    micros: AtomicU64,
}

/// What locking did in this process: for run reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockStats {
    /// Objects locked (as they were written, or found unlocked: a killed run's).
    pub locked: u64,
    /// Objects whose lock was extended (blobs a later item needs longer).
    pub extended: u64,
    /// Legal holds set or cleared on the store.
    pub legal_holds: u64,
    /// Microseconds spent in those requests, summed over concurrent writers.
    pub micros: u64,
}

impl LockCounters {
    fn timed(&self, counter: &AtomicU64, started: std::time::Instant) {
        counter.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// A manifest's `retention` member: `{"mode", "retainUntil"}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetentionMember {
    mode: LockMode,
    retain_until: DateTime<Utc>,
}

impl RetentionMember {
    fn lock(&self) -> ObjectLock {
        ObjectLock::until(self.mode, self.retain_until)
    }
}

/// The lock a manifest's `retention` member asks for, if it parses.
pub(crate) fn retention_lock(member: &serde_json::Value) -> Option<ObjectLock> {
    RetentionMember::deserialize(member).ok().map(|r| r.lock())
}

/// The lock the `retention` member of a manifest written as `bytes` asks for, if it has one
/// that parses.
pub(crate) fn manifest_lock(bytes: &[u8]) -> Option<ObjectLock> {
    #[derive(Deserialize)]
    struct WithRetention {
        retention: Option<RetentionMember>,
    }
    let parsed: WithRetention = serde_json::from_slice(bytes).ok()?;
    parsed.retention.map(|r| r.lock())
}

impl Archive {
    /// Locks every object this archive writes from now on, as [`WormPolicy`] says (see the
    /// `worm` module). Without it nothing is locked.
    #[must_use]
    pub fn with_worm(mut self, policy: WormPolicy) -> Archive {
        self.worm = Some(policy);
        self
    }

    /// The policy set by [`Archive::with_worm`].
    pub fn worm(&self) -> Option<WormPolicy> {
        self.worm
    }

    /// Whether the backend keeps objects write-once (S3: `GetObjectLockConfiguration`;
    /// Azure: the container's version-level immutability). Call it at start-up when a
    /// retention mode is configured, and refuse to run on [`WormSupport::NotEnabled`].
    ///
    /// # Errors
    /// Store failures (the bucket missing, no permission to read its configuration).
    pub async fn worm_support(&self) -> Result<WormSupport, StoreError> {
        self.extensions.worm_support().await
    }

    /// The retention and legal hold of the object at `key` (its current version), as the
    /// store reports them; `None` where the store has no such thing or the object is absent.
    ///
    /// # Errors
    /// Store failures.
    pub async fn lock_state(&self, key: &str) -> Result<Option<LockState>, StoreError> {
        self.extensions.lock_state(key).await
    }

    /// Locks the version `version` (`None`: the current one) of `key`, just written, with
    /// `lock` when a policy is set. Nothing to extend: the object is new.
    ///
    /// # Errors
    /// Store failures: the write does not count as done.
    pub(crate) async fn lock_new(&self, key: &str, version: Option<&str>, lock: ObjectLock) -> Result<(), StoreError> {
        if self.worm.is_none() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        self.extensions.set_retention(key, version, &lock).await?;
        self.lock_counters.timed(&self.lock_counters.locked, started);
        Ok(())
    }

    /// What locking did in this process so far.
    pub fn lock_stats(&self) -> LockStats {
        let c = &self.lock_counters;
        LockStats {
            locked: c.locked.load(Ordering::Relaxed),
            extended: c.extended.load(Ordering::Relaxed),
            legal_holds: c.holds.load(Ordering::Relaxed),
            micros: c.micros.load(Ordering::Relaxed),
        }
    }

    /// Makes sure the object at `key` (which may have been there before) is locked at least
    /// until `lock`'s retain-until: set when it has no retention, extended when it has a
    /// shorter one, left alone otherwise. Never shortens.
    ///
    /// # Errors
    /// Store failures.
    pub async fn lock_at_least(&self, key: &str, lock: ObjectLock) -> Result<(), StoreError> {
        if self.worm.is_none() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let current = self.extensions.lock_state(key).await?;
        if let Some(LockState {
            retention: Some(held), ..
        }) = current
            && held.retain_until >= lock.retain_until
        {
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.lock_counters.micros.fetch_add(micros, Ordering::Relaxed);
            return Ok(());
        }
        self.extensions.set_retention(key, None, &lock).await?;
        let counter = match current.and_then(|c| c.retention) {
            Some(_) => &self.lock_counters.extended,
            None => &self.lock_counters.locked,
        };
        self.lock_counters.timed(counter, started);
        Ok(())
    }

    /// Sets (or clears) the legal hold on the current version of `key`. Where the store has
    /// no legal holds (local disk, in memory), nothing is sent: the hold records under
    /// `holds/` are what recarch's own commands honour.
    ///
    /// # Errors
    /// Store failures.
    pub async fn set_legal_hold(&self, key: &str, on: bool) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        self.extensions.set_legal_hold(key, None, on).await?;
        self.lock_counters.timed(&self.lock_counters.holds, started);
        Ok(())
    }

    /// Deletes the object at `key` for good (disposition): every version where the store
    /// keeps versions (an S3 bucket with Object Lock is versioned, and a plain delete would
    /// only hide the object behind a delete marker), else the object. Absent is fine. The
    /// store refuses a version still under retention or legal hold: an error.
    ///
    /// # Errors
    /// Store failures, and the store's refusal.
    pub async fn dispose_object(&self, key: &str) -> Result<(), StoreError> {
        match self.extensions.delete_versions(key).await? {
            Some(_) => Ok(()),
            None => self.delete_quietly(key).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_round_up_to_whole_seconds() {
        let t = DateTime::parse_from_rfc3339("2026-12-06T15:00:00.250Z")
            .expect("a time")
            .with_timezone(&Utc);
        let lock = ObjectLock::until(LockMode::Compliance, t);
        assert_eq!(lock.until_rfc3339(), "2026-12-06T15:00:01Z");
        let whole = DateTime::parse_from_rfc3339("2026-12-06T15:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        assert_eq!(ObjectLock::until(LockMode::Governance, whole).retain_until, whole);
        assert_eq!(LockMode::Governance.s3_name(), "GOVERNANCE");
        assert_eq!(LockMode::Compliance.azure_name(), "Locked");
    }
}
