//! Bounded retries: the `Retry-After` header, [`RetryPolicy`] (the schedule every retry loop
//! shares, from `recarch_failure`) and the one wait between two attempts that every retry loop
//! of this crate takes (the token endpoint, Graph requests, delta pages cut off mid-body).

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

pub use recarch_failure::RetryPolicy;

/// Waits before attempt `attempt + 1` if `policy` allows one, and says whether it did.
///
/// The wait is [`RetryPolicy::delay`] (the server's `Retry-After` exactly, else a jittered
/// backoff); it is allowed when [`RetryPolicy::allows`] it, `elapsed` being the time since the
/// first attempt (on the caller's clock). `before_wait` is called with the wait just before the
/// sleep (to log the retry, share a throttling pause or let go of a response). When no attempt
/// is left, it returns `false` at once, without calling `before_wait`, and the caller gives up
/// with its error.
pub(crate) async fn wait_before_retry(
    policy: &RetryPolicy,
    attempt: u32,
    elapsed: Duration,
    retry_after: Option<Duration>,
    before_wait: impl FnOnce(Duration),
) -> bool {
    let wait = policy.delay(attempt, retry_after);
    if !policy.allows(attempt, elapsed, wait) {
        return false;
    }
    before_wait(wait);
    tokio::time::sleep(wait).await;
    true
}

/// The `Retry-After` header as a duration: delay-seconds (what Graph sends) or an HTTP-date
/// (any of the three formats of RFC 9110; a date in the past means "now").
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wednesday, 21-Oct-15 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).expect("ascii date"));
        let wait = retry_after(&h).expect("a future date");
        assert!(
            wait > Duration::from_secs(28) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
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
        assert!(wait_before_retry(&policy, 1, Duration::ZERO, None, |wait| waited = Some(wait)).await);
        assert!(
            waited.is_some_and(|wait| wait <= Duration::from_millis(2)),
            "{waited:?}"
        );
        // No attempt left, or a Retry-After beyond the budget: no wait, no callback.
        let mut called = false;
        assert!(!wait_before_retry(&policy, 2, Duration::ZERO, None, |_| called = true).await);
        let asked = Some(Duration::from_secs(2));
        assert!(!wait_before_retry(&policy, 1, Duration::ZERO, asked, |_| called = true).await);
        assert!(!called);
        // A Retry-After that fits is waited for exactly.
        let asked = Some(Duration::from_millis(5));
        let mut waited = None;
        assert!(wait_before_retry(&policy, 1, Duration::ZERO, asked, |wait| waited = Some(wait)).await);
        assert_eq!(waited, asked);
    }
}
