//! Every backoff wharf uses, in one place: what is retried how often is policy, and policy is
//! read here, not in the loops that wait.
//!
//! - an app or Image whose step failed, or that was repaired: 1 s doubling to 5 min;
//! - the engine unreachable (the loop, the event watchers, the uptime recorder), and a node
//!   agent's connection to the server: 0.5 s doubling to 30 s with jitter;
//! - a registry that answered 429: 1 min doubling to 1 h.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// The longest an app waits between retries.
pub const APP_MAX: Duration = Duration::from_secs(300);
/// The longest wharf waits before looking for a lost engine again.
pub const OUTAGE_MAX: Duration = Duration::from_secs(30);
/// The first and longest wait after a registry rate-limited a digest check.
pub const RATE_LIMIT_FIRST: Duration = Duration::from_secs(60);
pub const RATE_LIMIT_MAX: Duration = Duration::from_secs(3600);

/// Retries and repairs of one object.
pub fn app() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_factor(2.0)
        .with_max_delay(APP_MAX)
        .without_max_times()
        .build()
}

/// Reconnecting to the engine.
pub fn outage() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_factor(2.0)
        .with_max_delay(OUTAGE_MAX)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The next wait after a registry's 429, given the last one.
pub fn rate_limited(last: Option<Duration>) -> Duration {
    last.map_or(RATE_LIMIT_FIRST, |d| (d * 2).min(RATE_LIMIT_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_their_caps() {
        let delays: Vec<Duration> = app().take(10).collect();
        assert_eq!(delays[0], Duration::from_secs(1));
        assert_eq!(delays[1], Duration::from_secs(2));
        assert_eq!(delays[9], APP_MAX);
        assert!(outage().take(20).all(|d| d <= OUTAGE_MAX * 2));
        assert_eq!(rate_limited(None), RATE_LIMIT_FIRST);
        assert_eq!(rate_limited(Some(RATE_LIMIT_FIRST)), RATE_LIMIT_FIRST * 2);
        assert_eq!(rate_limited(Some(RATE_LIMIT_MAX)), RATE_LIMIT_MAX);
    }
}
