//! Bounded retries: how many attempts, how long between them, and how long in total. The one
//! schedule every retry loop of recarch uses (Graph requests, the token endpoint, downloads,
//! store writes and uploads, lease renewal).

use std::time::Duration;

/// How persistently to retry a request that failed in a way that may pass (throttling,
/// unavailability, dropped connections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The first backoff when the server gave no `Retry-After`; doubles each attempt.
    pub base_delay: Duration,
    /// The longest single backoff wait (a server's `Retry-After` is honoured as given).
    pub max_delay: Duration,
    /// Give up once this much time has passed since the first attempt.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(120),
            max_total: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1). The server's
    /// `Retry-After` is honoured exactly: never shortened, never capped (whether waiting that
    /// long fits is [`RetryPolicy::allows`]'s call). Without one, exponential backoff with
    /// jitter (50-100 % of the step, at most `max_delay`) so that many clients throttled at
    /// once do not come back in lockstep.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) => wait,
            None => {
                let step = self
                    .base_delay
                    .saturating_mul(1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX));
                let step = step.min(self.max_delay);
                step.mul_f64(0.5 + fastrand::f64() / 2.0)
            }
        }
    }

    /// Whether another attempt fits: attempts left, and the wait ends within the total budget.
    pub fn allows(&self, attempts_made: u32, elapsed: Duration, next_wait: Duration) -> bool {
        attempts_made < self.max_attempts.max(1) && elapsed.saturating_add(next_wait) <= self.max_total
    }

    /// Waits before attempt `attempt + 1` if this policy allows one, and says whether it did:
    /// the one wait between two attempts that every retry loop takes.
    ///
    /// The wait is [`RetryPolicy::delay`] (the server's `Retry-After` exactly, else a jittered
    /// backoff); it is allowed when [`RetryPolicy::allows`] it, `elapsed` being the time since
    /// the first attempt (on the caller's clock). `before_wait` is called with the wait just
    /// before the sleep (to log the retry, share a throttling pause or let go of a response).
    /// When no attempt is left, it returns `false` at once, without calling `before_wait`, and
    /// the caller gives up with its error.
    pub async fn wait_before_retry(
        &self,
        attempt: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        before_wait: impl FnOnce(Duration),
    ) -> bool {
        let wait = self.delay(attempt, retry_after);
        if !self.allows(attempt, elapsed, wait) {
            return false;
        }
        before_wait(wait);
        tokio::time::sleep(wait).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for _ in 0..100 {
            let d1 = p.delay(1, None);
            assert!(
                d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d3 = p.delay(3, None);
            assert!(
                d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            assert!(p.delay(40, None) <= Duration::from_secs(1));
        }
        // Retry-After is never shortened, not even to max_delay.
        assert_eq!(p.delay(1, Some(Duration::from_secs(30))), Duration::from_secs(30));
        assert_eq!(p.delay(1, Some(Duration::from_millis(300))), Duration::from_millis(300));
    }

    #[test]
    fn attempts_and_total_time_are_bounded() {
        let p = RetryPolicy {
            max_attempts: 3,
            max_total: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        assert!(p.allows(1, Duration::ZERO, Duration::from_secs(1)));
        assert!(!p.allows(3, Duration::ZERO, Duration::from_secs(1)));
        assert!(!p.allows(1, Duration::from_secs(9), Duration::from_secs(2)));
        // A Retry-After longer than the whole budget never fits.
        assert!(!p.allows(1, Duration::ZERO, p.delay(1, Some(Duration::from_secs(11)))));
        assert!(!p.allows(1, Duration::ZERO, Duration::MAX));
    }

    #[tokio::test]
    async fn waits_only_when_another_attempt_fits() {
        let policy = RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(2),
            max_total: Duration::from_secs(1),
        };
        let mut waited = None;
        assert!(
            policy
                .wait_before_retry(1, Duration::ZERO, None, |wait| waited = Some(wait))
                .await
        );
        assert!(
            waited.is_some_and(|wait| wait <= Duration::from_millis(2)),
            "{waited:?}"
        );
        // No attempt left, or a Retry-After beyond the budget: no wait, no callback.
        let mut called = false;
        assert!(
            !policy
                .wait_before_retry(2, Duration::ZERO, None, |_| called = true)
                .await
        );
        let asked = Some(Duration::from_secs(2));
        assert!(
            !policy
                .wait_before_retry(1, Duration::ZERO, asked, |_| called = true)
                .await
        );
        assert!(!called);
        // A Retry-After that fits is waited for exactly.
        let asked = Some(Duration::from_millis(5));
        let mut waited = None;
        assert!(
            policy
                .wait_before_retry(1, Duration::ZERO, asked, |wait| waited = Some(wait))
                .await
        );
        assert_eq!(waited, asked);
    }
}
