//! Token buckets (governor) of one route: global, per client IP, per user.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{Bucket, LimitedRoute, RouteLimits};
use ordercenter::refusal::{Refusal, Scope};

/// A limiter with the bucket it was built from, so a reload can tell
/// whether to keep it (and its state) or build a new one.
pub(super) struct SizedLimiter<L> {
    pub(super) bucket: Bucket,
    pub(super) limiter: Arc<L>,
}

impl<L> Clone for SizedLimiter<L> {
    fn clone(&self) -> Self {
        Self { bucket: self.bucket, limiter: self.limiter.clone() }
    }
}

fn quota(bucket: Bucket) -> Quota {
    Quota::per_second(bucket.per_second).allow_burst(bucket.burst)
}

/// Keeps `previous` if its bucket is unchanged, else builds anew.
pub(super) fn reuse_or_build<L>(
    bucket: Option<Bucket>,
    previous: Option<&SizedLimiter<L>>,
    build: impl Fn(Quota) -> L,
) -> Option<SizedLimiter<L>> {
    let bucket = bucket?;
    match previous {
        Some(previous) if previous.bucket == bucket => Some(previous.clone()),
        _ => Some(SizedLimiter { bucket, limiter: Arc::new(build(quota(bucket))) }),
    }
}

#[derive(Clone)]
pub struct RouteBuckets {
    route: LimitedRoute,
    global: Option<SizedLimiter<DefaultDirectRateLimiter>>,
    ip: Option<SizedLimiter<DefaultKeyedRateLimiter<IpAddr>>>,
    user: Option<SizedLimiter<DefaultKeyedRateLimiter<u64>>>,
}

impl RouteBuckets {
    /// Buckets for `limits`, keeping those of `previous` whose size did not
    /// change: a reload does not refill or empty them.
    pub fn build(route: LimitedRoute, limits: &RouteLimits, previous: Option<&RouteBuckets>) -> Self {
        Self {
            route,
            global: reuse_or_build(limits.global, previous.and_then(|p| p.global.as_ref()), RateLimiter::direct),
            ip: reuse_or_build(limits.ip, previous.and_then(|p| p.ip.as_ref()), RateLimiter::keyed),
            user: reuse_or_build(limits.user, previous.and_then(|p| p.user.as_ref()), RateLimiter::keyed),
        }
    }

    pub fn check_global(&self) -> Result<(), Refusal> {
        match &self.global {
            Some(sized) => self.decide(Scope::Global, sized.limiter.check()),
            None => Ok(()),
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        match &self.ip {
            Some(sized) => self.decide(Scope::Ip, sized.limiter.check_key(&ip)),
            None => Ok(()),
        }
    }

    pub fn check_user(&self, user_id: u64) -> Result<(), Refusal> {
        match &self.user {
            Some(sized) => self.decide(Scope::User, sized.limiter.check_key(&user_id)),
            None => Ok(()),
        }
    }

    /// Forgets keys whose buckets are full again, so a flood of distinct
    /// IPs or user ids does not grow memory without bound.
    pub fn prune(&self) {
        if let Some(sized) = &self.ip {
            sized.limiter.retain_recent();
            sized.limiter.shrink_to_fit();
        }
        if let Some(sized) = &self.user {
            sized.limiter.retain_recent();
            sized.limiter.shrink_to_fit();
        }
    }

    fn decide(
        &self,
        scope: Scope,
        decision: Result<(), governor::NotUntil<<DefaultClock as Clock>::Instant>>,
    ) -> Result<(), Refusal> {
        let route = self.route.as_str();
        match decision {
            Ok(()) => {
                metrics::counter!("gateway_rate_limit_total", "route" => route, "scope" => scope.as_str(), "decision" => "allowed")
                    .increment(1);
                Ok(())
            }
            Err(not_until) => {
                metrics::counter!("gateway_rate_limit_total", "route" => route, "scope" => scope.as_str(), "decision" => "limited")
                    .increment(1);
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(Refusal::RateLimited { scope, retry_after_secs: whole_seconds_up(wait) })
            }
        }
    }
}

/// `Retry-After` takes whole seconds; round up so a client that obeys it finds a token.
pub(super) fn whole_seconds_up(wait: Duration) -> u64 {
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

    fn limits(global: Option<Bucket>, ip: Option<Bucket>, user: Option<Bucket>) -> RouteLimits {
        RouteLimits { global, ip, user }
    }

    #[test]
    fn keyed_buckets_are_separate_and_sized_by_burst() {
        let buckets =
            RouteBuckets::build(LimitedRoute::PlaceOrder, &limits(None, Some(bucket(1, 2)), Some(bucket(1, 3))), None);
        for _ in 0..3 {
            assert!(buckets.check_user(1).is_ok());
        }
        let Err(Refusal::RateLimited { scope, retry_after_secs }) = buckets.check_user(1) else {
            panic!("the fourth request in one second must be limited");
        };
        assert_eq!((scope, retry_after_secs), (Scope::User, 1));
        assert!(buckets.check_user(2).is_ok(), "another user has a bucket of their own");

        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(buckets.check_ip(a).is_ok() && buckets.check_ip(a).is_ok());
        assert!(matches!(buckets.check_ip(a), Err(Refusal::RateLimited { scope: Scope::Ip, .. })));
        assert!(buckets.check_ip(b).is_ok());
    }

    #[test]
    fn a_reload_keeps_unchanged_buckets_and_rebuilds_changed_ones() {
        let first =
            RouteBuckets::build(LimitedRoute::PlaceOrder, &limits(Some(bucket(1, 1)), None, Some(bucket(1, 1))), None);
        assert!(first.check_global().is_ok());
        assert!(first.check_user(7).is_ok());
        // Global unchanged (stays empty), user bucket resized (starts full).
        let second = RouteBuckets::build(
            LimitedRoute::PlaceOrder,
            &limits(Some(bucket(1, 1)), None, Some(bucket(1, 2))),
            Some(&first),
        );
        assert!(second.check_global().is_err(), "an unchanged bucket keeps its state");
        assert!(second.check_user(7).is_ok() && second.check_user(7).is_ok());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1_001)), 2);
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
    }
}
