//! The retry queue and the dead-letter list: what becomes of an item that failed.
//!
//! A failed item is recorded before its page may be checkpointed: a first failure becomes a
//! queue entry (`attempts = 1`); a queued item that fails again in a later run counts one more
//! attempt. It moves to the organizer's dead-letter list — kept forever with its Graph item and
//! reason, never retried automatically, never blocking anything — after
//! `[fetch].max_item_attempts` failed runs, or when it failed permanently in two runs. An item
//! that succeeds leaves the queue; an `@removed` marker removes its id from the queue.
//!
//! Storage (one document per item, see `recarch_store`'s queue module) makes each of these a
//! single put or delete, so the cost is O(changed items) and a kill at any instant loses
//! nothing.

use recarch_failure::FailureClass;
use recarch_store::{Kind, OrganizerId, QueuedItem};
use serde_json::Value;

use crate::pipeline::{Archived, ItemContext, ItemOutcome};
use recarch_failure::error_chain;

/// When an item is given up on.
#[derive(Debug, Clone, Copy)]
pub struct QueuePolicy {
    /// Failed runs after which an item is dead-lettered (`[fetch].max_item_attempts`).
    pub max_item_attempts: u32,
}

impl QueuePolicy {
    /// Permanent failures (in distinct runs) after which an item is dead-lettered.
    pub const PERMANENT_FAILURES: u32 = 2;

    /// Why `entry` is to be dead-lettered now, or `None` to keep it queued.
    pub fn give_up(&self, entry: &QueuedItem) -> Option<String> {
        if entry.permanent_failures >= Self::PERMANENT_FAILURES {
            Some(format!(
                "failed permanently in {} runs; last: {}",
                entry.permanent_failures, entry.last_error
            ))
        } else if entry.attempts >= self.max_item_attempts {
            Some(format!(
                "failed in {} runs ([fetch].max_item_attempts); last: {}",
                entry.attempts, entry.last_error
            ))
        } else {
            None
        }
    }
}

/// What became of an item, once its fate is durable.
#[derive(Debug)]
pub enum Settled {
    /// Archived, now or before.
    Archived(Archived),
    /// Failed; recorded in the queue or the dead-letter list.
    Failed {
        /// Transient or permanent.
        class: FailureClass,
        /// Why.
        reason: String,
        /// Failed runs so far.
        attempts: u32,
        /// Whether it was dead-lettered now.
        dead_lettered: bool,
    },
    /// Not finished: the run is stopping (shutdown, or a fatal error elsewhere). Its page stays
    /// unfinished, so the checkpoint never passes it.
    Unfinished,
    /// Failed in a way that stops the run (not recorded against the item: it is not its fault).
    Fatal(anyhow::Error),
    /// A queued item whose failure is not recorded yet ([`ItemOutcome::Deferred`]): the
    /// organizer's pass records it with [`record_failure`] once it knows whose fault it was.
    Deferred(Deferred),
    /// Failed, and the failure could not be recorded (the store refused the queue entry): not
    /// durable, so its page stays unfinished and the organizer stops for this run.
    Unrecorded(String),
}

/// Where the items of one organizer and kind are settled: its queue and dead-letter list in
/// the archive of `ctx`, by `policy`.
#[derive(Clone, Copy)]
pub struct ItemQueue<'a> {
    /// The item pipeline's context (its archive).
    pub ctx: &'a ItemContext,
    /// When an item is given up on.
    pub policy: QueuePolicy,
    /// The kind.
    pub kind: Kind,
    /// The organizer.
    pub organizer: &'a OrganizerId,
}

/// Records `outcome` of item `id` (`raw` as Graph sent it; `previous` its queue entry, if it
/// was queued) in `queue` or its dead-letter list as the policy says.
pub async fn settle(
    queue: ItemQueue<'_>,
    id: &str,
    raw: &Value,
    previous: Option<QueuedItem>,
    outcome: ItemOutcome,
) -> Settled {
    let succeeded = match outcome {
        ItemOutcome::Archived(archived) => Settled::Archived(archived),
        ItemOutcome::Interrupted => return Settled::Unfinished,
        ItemOutcome::Fatal(e) => return Settled::Fatal(e),
        ItemOutcome::Deferred {
            class,
            reason,
            service,
            began,
        } => {
            return match previous {
                Some(entry) => Settled::Deferred(Deferred {
                    entry,
                    class,
                    reason,
                    service,
                    began,
                }),
                // Only queued items are deferred; anything else is recorded now.
                None => record_failure(queue, id, raw, None, class, reason).await,
            };
        }
        ItemOutcome::Failed { class, reason } => {
            return record_failure(queue, id, raw, previous, class, reason).await;
        }
    };
    if previous.is_some() {
        // Best effort: an entry left behind is tried again next run, finds the manifest and
        // is removed then.
        let ItemQueue {
            ctx, kind, organizer, ..
        } = queue;
        if let Err(e) = ctx.archive.remove_queued(kind, organizer, id).await {
            tracing::warn!(%organizer, %id, error = %error_chain(&e), "cannot remove an archived item from the queue; it goes next run");
        }
    }
    succeeded
}

/// A queued item's failure, not recorded yet (see [`Settled::Deferred`]).
#[derive(Debug)]
pub struct Deferred {
    /// Its queue entry, as read at the start of the run.
    pub entry: QueuedItem,
    /// The class to record.
    pub class: FailureClass,
    /// Why.
    pub reason: String,
    /// The service it failed at.
    pub service: crate::environment::Service,
    /// When it began (`crate::environment::InPipeline::began`).
    pub began: u64,
}

/// Records a failure of item `id` in `queue`, or moves it to the dead-letter list, as its
/// policy says (`previous`: its queue entry, if it was queued).
pub async fn record_failure(
    queue: ItemQueue<'_>,
    id: &str,
    raw: &Value,
    previous: Option<QueuedItem>,
    class: FailureClass,
    reason: String,
) -> Settled {
    let ItemQueue {
        ctx,
        policy,
        kind,
        organizer,
    } = queue;
    let entry = match previous {
        Some(mut q) => {
            q.failed_again(class, reason.clone());
            q
        }
        None => QueuedItem::first_failure(id, raw.clone(), class, reason.clone()),
    };
    let attempts = entry.attempts;
    let written = match policy.give_up(&entry) {
        Some(why) => {
            tracing::warn!(%organizer, %kind, %id, %class, attempts, reason = %why, "dead-lettered: not retried automatically (recarch retry moves it back)");
            ctx.archive
                .dead_letter(kind, organizer, entry, &why)
                .await
                .map(|_| true)
        }
        None => {
            tracing::warn!(%organizer, %kind, %id, %class, attempts, %reason, "failed; queued for the next run");
            ctx.archive.put_queued(kind, organizer, &entry).await.map(|()| false)
        }
    };
    match written {
        Ok(dead_lettered) => Settled::Failed {
            class,
            reason,
            attempts,
            dead_lettered,
        },
        Err(e) => Settled::Unrecorded(format!(
            "cannot record the failure of {id} ({reason}): {}",
            error_chain(&e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_after_the_limit_or_two_permanent_failures() {
        let policy = QueuePolicy { max_item_attempts: 3 };
        let mut q = QueuedItem::first_failure("a", Value::Null, FailureClass::Transient, "503");
        assert_eq!(policy.give_up(&q), None);
        q.failed_again(FailureClass::Permanent, "404");
        assert_eq!(policy.give_up(&q), None, "one permanent failure is not enough");
        q.failed_again(FailureClass::Permanent, "404");
        assert!(
            policy
                .give_up(&q)
                .is_some_and(|why| why.contains("permanently in 2 runs"))
        );
        let mut t = QueuedItem::first_failure("b", Value::Null, FailureClass::Transient, "503");
        t.failed_again(FailureClass::Transient, "503");
        assert_eq!(policy.give_up(&t), None);
        t.failed_again(FailureClass::Transient, "reset");
        assert!(
            policy
                .give_up(&t)
                .is_some_and(|why| why.contains("failed in 3 runs") && why.contains("reset"))
        );
    }
}
