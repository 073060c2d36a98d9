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
//!
//! # Holder liveness
//!
//! A run killed with SIGKILL leaves its lease behind. Its successor need not wait out the
//! TTL when it can *prove* the holder is gone, so every lease records who holds it:
//!
//! | member | from | meaning |
//! | --- | --- | --- |
//! | `host` | `$HOSTNAME`, `/proc/sys/kernel/hostname` | for operators |
//! | `pid` | the process id | in the holder's pid namespace |
//! | `bootId` | `/proc/sys/kernel/random/boot_id` | the running kernel: random per boot |
//! | `pidNamespace` | inode `N` of `/proc/self/ns/pid` → `pid:[N]` | which pids `pid` is one of |
//! | `startTicks` | field 22 of `/proc/self/stat` | start time, clock ticks after boot |
//!
//! The holder is judged dead only when the lease names this host name, this boot id and
//! this pid namespace, and `/proc/<pid>` is gone or its start time differs (the pid was
//! reused). In every other case (another host; another pod or container, where pid 1 and
//! a repeated host name mean nothing; another boot; an old lease without these members;
//! no `/proc`) the holder is presumed alive until `expiresAt`, so a live holder is never
//! taken for dead and a dead one still lapses with its TTL. The pid namespace and the
//! boot id are only recorded when `/proc/self` is this process (a `/proc` mounted from
//! another pid namespace would mislead). A `/proc` mounted with `hidepid` hides other
//! users' processes: runs sharing an archive on one machine must run as one user.

use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt;
use object_store::{GetOptions, ObjectStore, PutMode, PutResult, UpdateVersion};
use recarch_failure::RetryPolicy;
use serde::{Deserialize, Serialize};

use crate::archive::to_json;
use crate::layout::{self, path};
use crate::probe::is_unsupported;
use crate::{Archive, ShardId, StoreError};

/// Schema tag of lease documents.
pub const LEASE_SCHEMA: &str = "recarch.lease.v1";

/// Leases read at once by [`Archive::leases`].
const LEASE_READS: usize = 8;
/// Longest TTL honoured; longer ones are capped (keeps timestamps representable).
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// How a contended acquisition goes round again: five rounds of create / inspect / take over
/// at most, a few jittered milliseconds apart so that contenders do not go round in lockstep.
fn contention_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        max_total: Duration::from_secs(10),
    }
}

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

/// A lease as stored in `locks/<shard>.json`: who holds the shard, and until when (read them
/// with [`Archive::leases`]). Serialises to the document as stored.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LeaseRecord {
    /// Always [`LEASE_SCHEMA`].
    pub schema: String,
    /// The shard leased.
    pub shard: ShardId,
    /// The owner named at acquisition (`recarch run` names its host and process).
    pub owner: String,
    /// Random id of this acquisition.
    pub lease_id: String,
    /// The process holding it.
    #[serde(flatten)]
    pub holder: LeaseHolder,
    /// When it was acquired.
    pub acquired_at: DateTime<Utc>,
    /// When it was last renewed.
    pub renewed_at: DateTime<Utc>,
    /// When it expires unless renewed.
    pub expires_at: DateTime<Utc>,
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
            holder: this_process().clone(),
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

/// Who holds a lease: enough to decide later, on the same machine, whether that process
/// still runs (see "Holder liveness" in the module docs). Flattened into the lease
/// document; the members after `pid` are absent from leases written by older versions.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LeaseHolder {
    /// Host name, for operators reading the lease.
    pub host: String,
    /// Process id, as seen in the holder's own pid namespace.
    pub pid: u32,
    /// The kernel's boot id: the same value means the same machine, same boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Inode of the holder's pid namespace: pids are only comparable within one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<u64>,
    /// The holder's start time in clock ticks after boot: tells it from a later process
    /// that was given the same pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
}

/// This process as a lease holder, computed once.
fn this_process() -> &'static LeaseHolder {
    static ME: OnceLock<LeaseHolder> = OnceLock::new();
    ME.get_or_init(|| {
        let pid = std::process::id();
        let mut me = LeaseHolder {
            host: hostname().to_owned(),
            pid,
            ..LeaseHolder::default()
        };
        // `/proc/self` must be this process, else `/proc` belongs to another pid namespace
        // and neither our pid namespace nor other pids could be checked through it.
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok();
        let Some((stat_pid, start_ticks)) = own_stat.as_deref().and_then(parse_stat) else {
            return me;
        };
        if stat_pid != pid {
            return me;
        }
        me.start_ticks = Some(start_ticks);
        me.boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty());
        me.pid_namespace = std::fs::read_link("/proc/self/ns/pid")
            .ok()
            .and_then(|target| parse_namespace_link(&target.to_string_lossy()));
        me
    })
}

/// `pid` and `starttime` (fields 1 and 22) of a `/proc/<pid>/stat` line. Field 2, the
/// command name in parentheses, may itself contain spaces and parentheses, so the fields
/// after it are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let (head, tail) = stat.rsplit_once(')')?;
    let pid = head.split_once('(')?.0.trim().parse().ok()?;
    // `tail` starts at field 3 (state), so field 22 is its 20th.
    let start_ticks = tail.split_whitespace().nth(22 - 3)?.parse().ok()?;
    Some((pid, start_ticks))
}

/// The inode in a namespace link target such as `pid:[4026531836]`.
fn parse_namespace_link(target: &str) -> Option<u64> {
    target.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// Start time of process `pid` of this pid namespace, from `/proc/<pid>/stat`;
/// [`io::ErrorKind::NotFound`] when no such process exists.
fn start_ticks_of(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    match parse_stat(&stat) {
        Some((_, start_ticks)) => Ok(start_ticks),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unparsable /proc/<pid>/stat",
        )),
    }
}

/// Whether the `recorded` holder of a lease provably no longer runs, as seen by `ours`
/// (this process), reading a pid's start time with `start_ticks_of`.
///
/// Dead only with proof: same host name, same boot id and same pid namespace (so the pid
/// means the same process table), and the pid is gone or now belongs to a process started
/// at another time. Anything undecidable (other host, container or boot, members missing
/// from an old lease, `/proc` unreadable) reads as alive: such a lease lapses at its
/// `expiresAt` instead.
fn holder_is_dead(recorded: &LeaseHolder, ours: &LeaseHolder, start_ticks_of: impl Fn(u32) -> io::Result<u64>) -> bool {
    let same_boot = recorded.boot_id.is_some() && recorded.boot_id == ours.boot_id;
    let same_namespace = recorded.pid_namespace.is_some() && recorded.pid_namespace == ours.pid_namespace;
    if recorded.host != ours.host || !same_boot || !same_namespace {
        return false;
    }
    match start_ticks_of(recorded.pid) {
        Ok(started) => recorded.start_ticks.is_some_and(|recorded| recorded != started),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

impl Archive {
    /// Takes the lease on `shard` for `ttl`, recording `owner`, this host and process.
    ///
    /// Creates `locks/<shard>.json` create-only. If a lease exists and has not expired,
    /// fails with [`StoreError::LeaseHeld`]; if it has expired (or is unreadable and older
    /// than `ttl`, or its holder provably no longer runs: the same host, boot and pid
    /// namespace, and its pid gone or reused), takes it over: a conditional update on the
    /// version read where the backend supports it, otherwise delete then create-only (see
    /// the [module notes](crate#leases) on the race that leaves).
    ///
    /// # Errors
    /// [`StoreError::LeaseHeld`]; [`StoreError::Precondition`] if the lease kept changing
    /// under contention; store failures.
    pub async fn acquire_lease(&self, shard: &ShardId, owner: &str, ttl: Duration) -> Result<Lease, StoreError> {
        let key = layout::lease_key(shard);
        let location = path(&key);
        let ttl = ttl.min(MAX_TTL);
        let lease_id = format!("{:032x}", fastrand::u128(..));
        let store = &self.store;

        let policy = contention_retry();
        let started = std::time::Instant::now();
        let mut rounds = 0;
        loop {
            if rounds > 0 {
                let wait = policy.delay(rounds, None);
                if !policy.allows(rounds, started.elapsed(), wait) {
                    return Err(StoreError::Precondition { key });
                }
                tokio::time::sleep(wait).await;
            }
            rounds += 1;
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
                    let dead = holder_is_dead(&current.holder, this_process(), start_ticks_of);
                    (current.owner, current.expires_at, dead)
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "unreadable lease; treating it as expiring ttl after its last write");
                    ("<unreadable lease>".to_owned(), expiry(meta.last_modified, ttl), false)
                }
            };
            let now = Utc::now();
            if holder_dead {
                tracing::warn!(shard = %shard, previous_owner = %holder, "the lease holder was a process of this host and pid namespace that no longer exists (killed?)");
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
    }

    /// Every lease under `locks/`, sorted by key (so by shard). A lease that cannot be read,
    /// or not as a lease, is an inner error ([`StoreError::Corrupt`] for the latter); one
    /// released since it was listed is left out (see the `listing` module).
    ///
    /// # Errors
    /// Listing failures.
    pub async fn leases(&self) -> Result<Vec<Result<LeaseRecord, StoreError>>, StoreError> {
        let mut leases: Vec<(String, Result<LeaseRecord, StoreError>)> = self
            .list_and_read(
                layout::LOCKS,
                |key| layout::shard_of_lease_key(key).is_some(),
                LEASE_READS,
            )
            .map_ok(|(key, read)| {
                let lease = read.and_then(|bytes| {
                    serde_json::from_slice(&bytes).map_err(|e| StoreError::corrupt(&key, format!("not a lease: {e}")))
                });
                (key, lease)
            })
            .try_collect()
            .await?;
        leases.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(leases.into_iter().map(|(_, lease)| lease).collect())
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
        let store = &self.store;
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
                if let Some(root) = self.backend.local_root() {
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
/// This host's name, as leases record it (`HOSTNAME`, else the kernel's), `unknown` if none.
pub fn hostname() -> &'static str {
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

    /// A holder as `this_process` would record it, on host `web` in pid namespace `ns`.
    fn holder(pid: u32, ns: u64, start_ticks: u64) -> LeaseHolder {
        LeaseHolder {
            host: "web".to_owned(),
            pid,
            boot_id: Some("6b1c3f0e-boot".to_owned()),
            pid_namespace: Some(ns),
            start_ticks: Some(start_ticks),
        }
    }

    /// A process table holding only `pid`, started at `start_ticks`.
    fn only(pid: u32, start_ticks: u64) -> impl Fn(u32) -> io::Result<u64> {
        move |asked| {
            if asked == pid {
                Ok(start_ticks)
            } else {
                Err(io::ErrorKind::NotFound.into())
            }
        }
    }

    #[test]
    fn another_pod_with_pid_1_and_the_same_hostname_is_alive() {
        // Both are pid 1 with a fixed `hostname:`; only the pid namespaces differ. Our own
        // pid 1 runs (it is us) and another pid 1 would be "gone" from our /proc: neither
        // may count.
        let ours = holder(1, 4026532001, 500);
        let theirs = holder(1, 4026532999, 700);
        assert!(!holder_is_dead(&theirs, &ours, only(1, 500)));
        assert!(!holder_is_dead(&theirs, &ours, only(42, 1)));
    }

    #[test]
    fn same_namespace_pid_gone_is_dead() {
        let ours = holder(7, 4026531836, 500);
        assert!(holder_is_dead(&holder(42, 4026531836, 300), &ours, only(7, 500)));
    }

    #[test]
    fn same_namespace_pid_reused_by_a_later_process_is_dead() {
        let ours = holder(7, 4026531836, 500);
        assert!(holder_is_dead(&holder(42, 4026531836, 300), &ours, only(42, 450)));
        // Pid 1 of a container restarted in the same namespace: ourselves, started later.
        assert!(holder_is_dead(
            &holder(1, 4026531836, 300),
            &holder(1, 4026531836, 900),
            only(1, 900)
        ));
    }

    #[test]
    fn same_namespace_same_start_time_is_alive() {
        let ours = holder(7, 4026531836, 500);
        assert!(!holder_is_dead(&holder(42, 4026531836, 300), &ours, only(42, 300)));
        // Ourselves (a second acquisition in the same process).
        assert!(!holder_is_dead(&ours, &ours, only(7, 500)));
    }

    #[test]
    fn undecidable_holders_are_alive() {
        let ours = holder(7, 4026531836, 500);
        let gone = only(7, 500);
        // Another boot of this machine, or another machine.
        let other_boot = LeaseHolder {
            boot_id: Some("another-boot".to_owned()),
            ..holder(42, 4026531836, 300)
        };
        assert!(!holder_is_dead(&other_boot, &ours, &gone));
        let other_host = LeaseHolder {
            host: "db".to_owned(),
            ..holder(42, 4026531836, 300)
        };
        assert!(!holder_is_dead(&other_host, &ours, &gone));
        // /proc/<pid> exists but cannot be read or parsed.
        let unreadable = |_| Err(io::ErrorKind::PermissionDenied.into());
        assert!(!holder_is_dead(&holder(42, 4026531836, 300), &ours, unreadable));
        // We could not read our own identity (no /proc): nothing is comparable.
        let blind = LeaseHolder {
            host: "web".to_owned(),
            pid: 7,
            ..LeaseHolder::default()
        };
        assert!(!holder_is_dead(&holder(42, 4026531836, 300), &blind, &gone));
    }

    #[test]
    fn old_lease_without_the_new_members_is_alive() {
        let old = r#"{"schema":"recarch.lease.v1","shard":"0-of-1","owner":"run-a","leaseId":"x",
            "host":"web","pid":42,"acquiredAt":"2026-01-01T00:00:00Z",
            "renewedAt":"2026-01-01T00:00:00Z","expiresAt":"2026-01-01T00:10:00Z"}"#;
        let record: LeaseRecord = serde_json::from_str(old).expect("an old lease stays readable");
        assert_eq!(record.holder.pid, 42);
        assert_eq!(record.holder.boot_id, None);
        let ours = holder(7, 4026531836, 500);
        assert!(!holder_is_dead(&record.holder, &ours, only(7, 500)));
    }

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let stat = "10062 (cat) R 10058 10058 6585 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 21200 3133440 389";
        assert_eq!(parse_stat(stat), Some((10062, 21200)));
        let tricky = "77 (a) b) (c d) S 1 77 77 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 2";
        assert_eq!(parse_stat(tricky), Some((77, 987654)));
        assert_eq!(parse_stat("77 (short) S 1 2"), None);
        assert_eq!(parse_namespace_link("pid:[4026531836]"), Some(4026531836));
        assert_eq!(parse_namespace_link("net:[4026531836]"), None);
    }

    #[test]
    fn this_process_reads_its_own_identity() {
        let me = this_process();
        assert_eq!(me.pid, std::process::id());
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(me.boot_id.is_some() && me.pid_namespace.is_some(), "{me:?}");
            assert_eq!(start_ticks_of(me.pid).ok(), me.start_ticks);
            assert!(!holder_is_dead(me, me, start_ticks_of));
            // The document written carries the members, and reads back the same.
            let now = Utc::now();
            let record = LeaseRecord::new(&ShardId::new(0, 1), "me", "id", now, now, Duration::from_secs(60));
            let json = serde_json::to_value(&record).expect("serialize");
            assert_eq!(json["pid"], me.pid);
            assert_eq!(json["bootId"], me.boot_id.clone().expect("known"));
            let back: LeaseRecord = serde_json::from_value(json).expect("deserialize");
            assert_eq!(&back.holder, me);
        }
    }
}
