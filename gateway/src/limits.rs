//! Token buckets (governor) on the order route: one for all requests and one
//! per user id, sized in config.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{self, Bucket};
use crate::error::ApiError;

pub struct RateLimits {
    global: Option<DefaultDirectRateLimiter>,
    per_user: Option<DefaultKeyedRateLimiter<u64>>,
    clock: DefaultClock,
}

fn quota(bucket: Bucket) -> Quota {
    Quota::per_second(bucket.per_second).allow_burst(bucket.burst)
}

impl RateLimits {
    pub fn new(config: &config::Limits) -> Self {
        Self {
            global: config.global.map(|bucket| RateLimiter::direct(quota(bucket))),
            per_user: config.per_user.map(|bucket| RateLimiter::keyed(quota(bucket))),
            clock: DefaultClock::default(),
        }
    }

    /// Takes a token from the global bucket.
    pub fn check_global(&self) -> Result<(), ApiError> {
        match &self.global {
            Some(limiter) => limiter.check().map_err(|not_until| self.limited("global", not_until)),
            None => Ok(()),
        }
    }

    /// Takes a token from the user's bucket.
    pub fn check_user(&self, user_id: u64) -> Result<(), ApiError> {
        match &self.per_user {
            Some(limiter) => limiter.check_key(&user_id).map_err(|not_until| self.limited("user", not_until)),
            None => Ok(()),
        }
    }

    /// Forgets users whose buckets are full again, so a flood of distinct
    /// user ids does not grow memory without bound.
    pub fn prune(&self) {
        if let Some(limiter) = &self.per_user {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    fn limited(
        &self,
        scope: &'static str,
        not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>,
    ) -> ApiError {
        metrics::counter!("gateway_rate_limited_total", "scope" => scope).increment(1);
        let wait = not_until.wait_time_from(self.clock.now());
        ApiError::RateLimited { retry_after_secs: whole_seconds_up(wait) }
    }
}

/// `Retry-After` takes whole seconds; round up so a client that obeys it finds a token.
fn whole_seconds_up(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// A bucket from plain numbers (tests, tools); panics on zero.
pub fn bucket(per_second: u32, burst: u32) -> Bucket {
    Bucket {
        per_second: NonZeroU32::new(per_second).expect("positive rate"),
        burst: NonZeroU32::new(burst).expect("positive burst"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_buckets_are_separate_and_sized_by_burst() {
        let limits = RateLimits::new(&config::Limits { global: None, per_user: Some(bucket(1, 3)) });
        for _ in 0..3 {
            assert!(limits.check_user(1).is_ok());
        }
        let Err(ApiError::RateLimited { retry_after_secs }) = limits.check_user(1) else {
            panic!("fourth request in the same second must be limited");
        };
        assert_eq!(retry_after_secs, 1);
        assert!(limits.check_user(2).is_ok(), "another user has a bucket of their own");
    }

    #[test]
    fn the_global_bucket_limits_everyone() {
        let limits = RateLimits::new(&config::Limits { global: Some(bucket(1, 2)), per_user: None });
        assert!(limits.check_global().is_ok());
        assert!(limits.check_global().is_ok());
        assert!(limits.check_global().is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1_001)), 2);
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
    }
}
