//! The run's side of the ledger (`ledger/`, see `recarch_store::ledger`): what the store
//! journals of its own writes (every object under `manifests/`, `meetings/`, `calls/`,
//! `catalog/` and `holds/`, with the SHA-256 of its bytes) is logged in records by this
//! process's actor, signed when `[ledger].signing_key_file` is set.
//!
//! A round names the keys a page's items may write in an intent before any of them starts,
//! and logs the leaves when the page's checkpoint is saved (so the ledger trails the archive
//! by at most the pages in flight); the next run of a shard killed in between logs what the
//! dead run wrote (`recover`) before anything else.

use std::sync::Arc;

use recarch_store::ledger::{Actor, AppendedRecord, LedgerEvent, LedgerIntent, LedgerSigner};
use recarch_store::{Archive, ShardId, StoreError};
use serde_json::{Map, Value};

/// Logs this process's writes and actions.
#[derive(Debug, Clone)]
pub struct Ledger {
    archive: Archive,
    shard: ShardId,
    actor: Actor,
    signer: Option<Arc<LedgerSigner>>,
    stats: Arc<Counters>,
    /// Taken for a whole [`Ledger::log`]: the leaves are taken from the journal only once the
    /// previous record is written, so pages settled meanwhile share one record (a group
    /// commit), and a caller whose leaves a record before it already took appends nothing.
    appending: Arc<tokio::sync::Mutex<()>>,
}

/// What the ledger cost this process so far (see [`Ledger::stats`]).
#[derive(Debug, Default)]
struct Counters {
    records: std::sync::atomic::AtomicU64,
    leaves: std::sync::atomic::AtomicU64,
    intents: std::sync::atomic::AtomicU64,
    micros: std::sync::atomic::AtomicU64,
}

/// What the ledger cost a run: records appended, leaves logged, intents written, and the time
/// spent writing them (summed over the organizers' passes, which overlap).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerStats {
    /// Records appended.
    pub records: u64,
    /// Leaves they log.
    pub leaves: u64,
    /// Intents written.
    pub intents: u64,
    /// Seconds spent in intents and appends, summed over concurrent passes.
    pub seconds: f64,
}

impl Ledger {
    /// The ledger of `archive`, written by this process as `shard`.
    pub fn new(archive: Archive, shard: ShardId, signer: Option<Arc<LedgerSigner>>) -> Self {
        let actor = actor(&shard);
        Ledger {
            archive,
            shard,
            actor,
            signer,
            stats: Arc::default(),
            appending: Arc::default(),
        }
    }

    /// What the ledger cost so far.
    pub fn stats(&self) -> LedgerStats {
        use std::sync::atomic::Ordering::Relaxed;
        LedgerStats {
            records: self.stats.records.load(Relaxed),
            leaves: self.stats.leaves.load(Relaxed),
            intents: self.stats.intents.load(Relaxed),
            seconds: self.stats.micros.load(Relaxed) as f64 / 1e6,
        }
    }

    fn timed(&self, started: std::time::Instant) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats
            .micros
            .fetch_add(micros, std::sync::atomic::Ordering::Relaxed);
    }

    /// The shard it writes intents as.
    pub fn shard(&self) -> &ShardId {
        &self.shard
    }

    /// Names the keys about to be written (none: no intent).
    ///
    /// # Errors
    /// Store failures: nothing may be written then.
    pub async fn intend(&self, keys: Vec<String>) -> Result<Option<LedgerIntent>, StoreError> {
        if keys.is_empty() {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let intent = self.archive.ledger_intend(&self.shard, keys).await;
        self.timed(started);
        self.stats.intents.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        intent.map(Some)
    }

    /// Logs every leaf journaled since the last record as one `event` record, then settles
    /// `intents`. Callers take turns; the leaves are taken when a caller's turn comes, so one
    /// record logs the pages settled while the previous one was written. A `run` with no leaf appends nothing (its intents are settled); other events
    /// are always recorded (they are the audit trail of who did what). On failure the leaves
    /// wait for the next record and the intents for recovery.
    ///
    /// # Errors
    /// Store failures.
    pub async fn log(
        &self,
        intents: Vec<LedgerIntent>,
        event: LedgerEvent,
        details: Map<String, Value>,
    ) -> Result<Option<AppendedRecord>, StoreError> {
        let started = std::time::Instant::now();
        // Everything this caller wrote is in the journal, or in a record appended while it
        // waited here.
        let _appending = self.appending.lock().await;
        let leaves = self.archive.take_leaves();
        if leaves.is_empty() && event == LedgerEvent::Run {
            self.archive.ledger_settle(intents).await;
            self.timed(started);
            return Ok(None);
        }
        let count = leaves.len() as u64;
        let appended = self
            .archive
            .append_ledger(event, &self.actor, leaves.clone(), details, self.signer.as_deref())
            .await;
        let logged = match appended {
            Ok(record) => {
                self.archive.ledger_settle(intents).await;
                use std::sync::atomic::Ordering::Relaxed;
                self.stats.records.fetch_add(1, Relaxed);
                self.stats.leaves.fetch_add(count, Relaxed);
                Ok(Some(record))
            }
            Err(e) => {
                self.archive.return_leaves(leaves);
                Err(e)
            }
        };
        self.timed(started);
        logged
    }

    /// Logs what killed runs of this shard wrote and did not log (`recover`); first thing in
    /// a run, holding the lease. The intents stay until [`Ledger::settle`], once what follows
    /// from the keys written is done.
    ///
    /// # Errors
    /// Store failures.
    pub async fn recover(&self) -> Result<Option<recarch_store::ledger::Recovery>, StoreError> {
        self.archive
            .recover_ledger(&self.shard, &self.actor, self.signer.as_deref())
            .await
    }

    /// Settles intents that a record logs (those [`Ledger::recover`] left).
    pub async fn settle(&self, intents: Vec<LedgerIntent>) {
        self.archive.ledger_settle(intents).await;
    }
}

/// Who is acting: the user (`$USER` or `$LOGNAME`; in a container that sets neither, the
/// process's account as `/etc/passwd` names it, or `uid N`), the host (a pod's name in
/// Kubernetes), the shard and this version.
pub fn actor(shard: &ShardId) -> Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(process_account);
    Actor {
        user,
        host: recarch_store::hostname().to_owned(),
        shard: shard.to_string(),
        version: format!("recarch {}", env!("CARGO_PKG_VERSION")),
    }
}

/// The account this process runs as, without the environment: the owner of `/proc/self`
/// (the process's user id on Linux) named through `/etc/passwd`; `uid N` when it has no name
/// there, `unknown` where neither can be read.
fn process_account() -> String {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".to_owned();
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    account_named(&passwd, uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// The name `passwd` (the text of `/etc/passwd`) gives `uid`.
fn account_named(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

/// Leaves per record when logging what was written before the ledger.
const GENESIS_RECORD: usize = 10_000;

/// An archive written by a version without the ledger has objects no record logs: the first
/// run that finds no ledger logs every object under the logged prefixes, as they are, in
/// `recover` records (`details.reason` says why), before it writes anything, so that `verify`
/// can tell what is changed from now on. Nothing to do for a new archive or one with a ledger.
///
/// # Errors
/// Exit 4 when the store cannot be read or the records cannot be written.
pub async fn genesis(archive: &Archive, ledger: &Ledger) -> Result<(), crate::exit::ExitError> {
    use futures::StreamExt as _;
    use recarch_store::ledger::Leaf;

    let fatal = |what: &str, e: StoreError| {
        crate::exit::ExitError::new(
            crate::exit::Exit::Fatal,
            anyhow::anyhow!("{what}: {}", recarch_failure::error_chain(&e)),
        )
    };
    if archive
        .ledger_head()
        .await
        .map_err(|e| fatal("cannot read the ledger's head", e))?
        .is_some()
    {
        return Ok(());
    }
    let mut objects = archive.ledgered_objects();
    let mut leaves = Vec::new();
    let mut logged = 0u64;
    loop {
        let next = objects.next().await;
        let done = next.is_none();
        if let Some(item) = next {
            let (key, read) = item.map_err(|e| fatal("cannot list the archive's objects for the ledger", e))?;
            let bytes = read.map_err(|e| fatal("cannot read an object for the ledger", e))?;
            match Leaf::of_bytes(key.clone(), &bytes) {
                Ok(leaf) => leaves.push(leaf),
                Err(e) => tracing::warn!(%key, error = %e, "not logged: not a key of the layout"),
            }
        }
        if leaves.len() >= GENESIS_RECORD || (done && !leaves.is_empty()) {
            let mut details = Map::new();
            details.insert(
                "reason".into(),
                Value::String("objects written before this archive had a ledger".into()),
            );
            logged += leaves.len() as u64;
            archive
                .append_ledger(
                    LedgerEvent::Recover,
                    &ledger.actor,
                    std::mem::take(&mut leaves),
                    details,
                    ledger.signer.as_deref(),
                )
                .await
                .map_err(|e| fatal("cannot write the ledger", e))?;
        }
        if done {
            break;
        }
    }
    if logged > 0 {
        tracing::warn!(
            objects = logged,
            "the archive had no ledger: logged the objects already in it"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_account_is_named_by_passwd_or_by_its_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# a comment\nbroken\nrecarch:x:10001:10001::/home/recarch:/sbin/nologin\n";
        assert_eq!(account_named(passwd, 0).as_deref(), Some("root"));
        assert_eq!(account_named(passwd, 10001).as_deref(), Some("recarch"));
        assert_eq!(account_named(passwd, 65532), None);
        assert_eq!(account_named("", 0), None);
        // This process: a name, or its uid; never empty.
        let me = process_account();
        assert!(!me.is_empty() && me != "unknown", "{me}");
    }
}
