//! Retry policy for registry requests: exponential backoff with jitter on HTTP 429, HTTP 5xx and
//! transport failures, honouring the server's `Retry-After`.

use std::time::Duration;

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; 1 means no retry.
    pub attempts: u32,
    /// Delay before the first retry; it doubles with each further retry.
    pub base_delay: Duration,
    /// Upper bound of any one delay, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 5, base_delay: Duration::from_millis(200), max_delay: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// Returns the delay before retry number `retry` (1 for the first retry). A `Retry-After`
    /// from the server wins over the computed backoff, capped at `max_delay`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(server) = retry_after {
            return server.min(self.max_delay);
        }
        let exponent = retry.saturating_sub(1).min(16);
        let backoff = self.base_delay.saturating_mul(1 << exponent).min(self.max_delay);
        // Up to 25 % jitter keeps parallel transfers from retrying in lockstep.
        let jitter_range = backoff.as_millis() as u64 / 4;
        let jitter = if jitter_range == 0 { 0 } else { pseudo_random() % jitter_range };
        backoff + Duration::from_millis(jitter)
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let now = time::OffsetDateTime::now_utc();
    let seconds = (when - now).whole_milliseconds().max(0) as u64;
    Some(Duration::from_millis(seconds))
}

fn pseudo_random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let policy = RetryPolicy { attempts: 10, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        let first = policy.delay(1, None);
        assert!(first >= Duration::from_millis(100), "{first:?}");
        assert!(first < Duration::from_millis(126), "{first:?}");
        let third = policy.delay(3, None);
        assert!(third >= Duration::from_millis(400), "{third:?}");
        assert!(third < Duration::from_millis(501), "{third:?}");
        assert!(policy.delay(9, None) <= Duration::from_millis(1250));
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(policy.delay(1, Some(Duration::from_secs(3600))), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
