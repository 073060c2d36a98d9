//! Shard leases: `locks/<shard>.json`.
//!
//! A lease is a small JSON document created with a create-only write. It expires at
//! `expiresAt` unless renewed; an expired lease may be taken over by another run.
//!
//! Where the backend supports conditional updates (S3 with the default
//! `aws_conditional_put=etag`, Azure, in-memory), takeover and renewal are
//! compare-and-swap on the object's ETag/version, so exactly one run wins.
//!
//! `LocalFileSystem` has no conditional update. There, takeover is "re-check, delete,
//! create-only" and renewal is "re-check, overwrite". Two runs taking over the same
//! expired lease within a few milliseconds can both believe they won: the one whose
//! document was replaced finds out at its next [`Archive::renew_lease`]
//! ([`StoreError::LeaseLost`]), so the overlap lasts at most one renewal interval. Keep
//! the renewal interval well below the TTL, and do not share a local archive between
//! hosts whose clocks disagree.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use object_store::{GetOptions, ObjectStore, PutMode, PutResult, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::archive::to_json;
use crate::layout::{self, path};
use crate::probe::is_unsupported;
use crate::{Archive, ShardId, StoreError};

/// Schema tag of lease documents.
pub const LEASE_SCHEMA: &str = "recarch.lease.v1";

/// Longest TTL honoured; longer ones are capped (keeps timestamps representable).
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Rounds of create / inspect / take over before giving up on a contended lease.
const ACQUIRE_ATTEMPTS: usize = 5;

/// A held lease on a shard. Renew it with [`Archive::renew_lease`] well before
/// `expires_at`, and give it back with [`Archive::release_lease`].
#[derive(Debug)]
pub struct Lease {
    /// The shard leased.
    pub shard: ShardId,
    /// Owner name given at acquisition.
    pub owner: String,
    /// When the lease expires unless renewed.
    pub expires_at: DateTime<Utc>,
    lease_id: String,
    acquired_at: DateTime<Utc>,
    ttl: Duration,
}

impl Lease {
    /// The TTL given at acquisition (capped at one year).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Random id distinguishing this acquisition from any other, even by the same owner.
    pub fn lease_id(&self) -> &str {
        &self.lease_id
    }

    /// When this lease was acquired.
    pub fn acquired_at(&self) -> DateTime<Utc> {
        self.acquired_at
    }
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct LeaseRecord {
    schema: String,
    shard: ShardId,
    owner: String,
    lease_id: String,
    host: String,
    pid: u32,
    acquired_at: DateTime<Utc>,
    renewed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl LeaseRecord {
    fn new(
        shard: &ShardId,
        owner: &str,
        lease_id: &str,
        acquired_at: DateTime<Utc>,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Self {
        Self {
            schema: LEASE_SCHEMA.to_owned(),
            shard: shard.clone(),
            owner: owner.to_owned(),
            lease_id: lease_id.to_owned(),
            host: hostname().to_owned(),
            pid: std::process::id(),
            acquired_at,
            renewed_at: now,
            expires_at: expiry(now, ttl),
        }
    }
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    // MAX_TTL always fits in a TimeDelta and, added to any realistic clock, in a DateTime.
    let delta = TimeDelta::from_std(ttl.min(MAX_TTL)).unwrap_or(TimeDelta::zero());
    now.checked_add_signed(delta).unwrap_or(now)
}

fn version_of(e_tag: Option<String>, version: Option<String>) -> UpdateVersion {
    UpdateVersion { e_tag, version }
}

/// Whether the lease was written by a process of this host that no longer runs (a run killed
/// with SIGKILL, say): then it need not wait out its TTL. Only decidable where `/proc` exists;
/// elsewhere, and for other hosts, the holder is presumed alive. A reused PID also reads as
/// alive, which errs on the safe side. Caveat: containers that share a hostname but not a PID
/// namespace must not run the same shard at once, or one would see the other as dead.
fn holder_is_dead(record: &LeaseRecord) -> bool {
    if record.host != hostname() || record.pid == std::process::id() {
        return false;
    }
    let proc_root = std::path::Path::new("/proc/self");
    proc_root.exists() && !std::path::Path::new(&format!("/proc/{}", record.pid)).exists()
}

impl Archive {
    /// Takes the lease on `shard` for `ttl`, recording `owner`, this host and process.
    ///
    /// Creates `locks/<shard>.json` create-only. If a lease exists and has not expired,
    /// fails with [`StoreError::LeaseHeld`]; if it has expired (or is unreadable and older
    /// than `ttl`, or was written by a process of this host that no longer exists), takes
    /// it over: a conditional update on the version read where the
    /// backend supports it, otherwise delete then create-only (see the [module
    /// notes](crate#leases) on the race that leaves).
    ///
    /// # Errors
    /// [`StoreError::LeaseHeld`]; [`StoreError::Precondition`] if the lease kept changing
    /// under contention; store failures.
    pub async fn acquire_lease(&self, shard: &ShardId, owner: &str, ttl: Duration) -> Result<Lease, StoreError> {
        let key = layout::lease_key(shard);
        let location = path(&key);
        let ttl = ttl.min(MAX_TTL);
        let lease_id = format!("{:032x}", fastrand::u128(..));
        let store = self.object_store();

        for _ in 0..ACQUIRE_ATTEMPTS {
            let now = Utc::now();
            let record = LeaseRecord::new(shard, owner, &lease_id, now, now, ttl);
            match store
                .put_opts(&location, to_json(&key, &record)?, PutMode::Create.into())
                .await
            {
                Ok(_) => return Ok(lease_from(record, ttl)),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(StoreError::from_backend(&key, e)),
            }

            let Some((bytes, meta)) = self.get_with_meta(&key).await? else {
                continue; // released meanwhile: try to create it again
            };
            let (holder, expires_at, holder_dead) = match serde_json::from_slice::<LeaseRecord>(&bytes) {
                Ok(current) => {
                    let dead = holder_is_dead(&current);
                    (current.owner, current.expires_at, dead)
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "unreadable lease; treating it as expiring ttl after its last write");
                    ("<unreadable lease>".to_owned(), expiry(meta.last_modified, ttl), false)
                }
            };
            let now = Utc::now();
            if holder_dead {
                tracing::warn!(shard = %shard, previous_owner = %holder, "the lease holder was a process on this host that no longer exists (killed?)");
            }
            if expires_at > now && !holder_dead {
                return Err(StoreError::LeaseHeld {
                    shard: shard.to_string(),
                    owner: holder,
                    expires_at,
                });
            }

            tracing::warn!(shard = %shard, previous_owner = %holder, %expires_at, "taking over an expired lease");
            let record = LeaseRecord::new(shard, owner, &lease_id, now, now, ttl);
            let seen = version_of(meta.e_tag.clone(), meta.version.clone());
            match store
                .put_opts(&location, to_json(&key, &record)?, PutMode::Update(seen).into())
                .await
            {
                Ok(_) => return Ok(lease_from(record, ttl)),
                // Someone else took it over (or released it) first: look again.
                Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
                    continue;
                }
                Err(e) if is_unsupported(&e) => {
                    // LocalFileSystem: delete the expired lease if it is still the version
                    // judged expired, then go round and create-only.
                    let still_same = match meta.e_tag.clone() {
                        Some(tag) => store
                            .get_opts(&location, GetOptions::new().with_if_match(Some(tag)).with_head(true))
                            .await
                            .is_ok(),
                        None => true,
                    };
                    if still_same {
                        self.delete_quietly(&key).await?;
                    }
                    continue;
                }
                Err(e) => return Err(StoreError::from_backend(&key, e)),
            }
        }
        Err(StoreError::Precondition { key })
    }

    /// Extends the lease to now + its TTL, after checking it is still this lease.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] if the lease document is gone or belongs to another
    /// acquisition (stop working on the shard); store failures.
    pub async fn renew_lease(&self, lease: &mut Lease) -> Result<(), StoreError> {
        let key = layout::lease_key(&lease.shard);
        let location = path(&key);
        let lost = || StoreError::LeaseLost {
            shard: lease.shard.to_string(),
        };
        let Some((bytes, meta)) = self.get_with_meta(&key).await? else {
            return Err(lost());
        };
        match serde_json::from_slice::<LeaseRecord>(&bytes) {
            Ok(current) if current.lease_id == lease.lease_id => {}
            _ => return Err(lost()),
        }
        let record = LeaseRecord::new(
            &lease.shard,
            &lease.owner,
            &lease.lease_id,
            lease.acquired_at,
            Utc::now(),
            lease.ttl,
        );
        let seen = version_of(meta.e_tag, meta.version);
        let store = self.object_store();
        let result: Result<PutResult, object_store::Error> = match store
            .put_opts(&location, to_json(&key, &record)?, PutMode::Update(seen).into())
            .await
        {
            Err(e) if is_unsupported(&e) => {
                // LocalFileSystem: plain atomic overwrite after the ownership check above.
                store
                    .put_opts(&location, to_json(&key, &record)?, PutMode::Overwrite.into())
                    .await
            }
            other => other,
        };
        match result {
            Ok(_) => {
                lease.expires_at = record.expires_at;
                Ok(())
            }
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => Err(lost()),
            Err(e) => Err(StoreError::from_backend(&key, e)),
        }
    }

    /// Gives the lease back: deletes `locks/<shard>.json` if it is still this lease. A
    /// lease already taken over or removed is left alone (and logged), not an error.
    ///
    /// # Errors
    /// Store failures.
    pub async fn release_lease(&self, lease: Lease) -> Result<(), StoreError> {
        let key = layout::lease_key(&lease.shard);
        let Some(bytes) = self.get_bytes(&key).await? else {
            tracing::warn!(shard = %lease.shard, "lease was already gone at release");
            return Ok(());
        };
        match serde_json::from_slice::<LeaseRecord>(&bytes) {
            Ok(current) if current.lease_id == lease.lease_id => {
                self.delete_quietly(&key).await?;
                if let Some(root) = &self.local_root {
                    // Best effort, and only if empty: another shard's lease may be there.
                    let _ = std::fs::remove_dir(root.join(layout::LOCKS));
                }
                Ok(())
            }
            _ => {
                tracing::warn!(shard = %lease.shard, "lease was taken over before release; left alone");
                Ok(())
            }
        }
    }
}

fn lease_from(record: LeaseRecord, ttl: Duration) -> Lease {
    Lease {
        shard: record.shard,
        owner: record.owner,
        expires_at: record.expires_at,
        lease_id: record.lease_id,
        acquired_at: record.acquired_at,
        ttl,
    }
}

/// This host's name, for operators reading a lease; `unknown` if it cannot be found.
fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        ["HOSTNAME", "COMPUTERNAME"]
            .iter()
            .filter_map(|var| std::env::var(var).ok())
            .chain(
                ["/proc/sys/kernel/hostname", "/etc/hostname"]
                    .iter()
                    .filter_map(|file| std::fs::read_to_string(file).ok()),
            )
            .map(|name| name.trim().to_owned())
            .find(|name| !name.is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_caps_ttl() {
        let now = Utc::now();
        assert_eq!(expiry(now, Duration::ZERO), now);
        assert_eq!(
            expiry(now, Duration::from_secs(u64::MAX)),
            now + TimeDelta::from_std(MAX_TTL).expect("fits")
        );
        assert!(!hostname().is_empty());
    }
}
