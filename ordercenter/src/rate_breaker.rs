//! A circuit breaker that counts calls over a sliding window of whole
//! seconds, for a dependency whose threshold is a small share of its calls
//! (seed 000: a payment channel failing more than 5 % of them). The
//! `failsafe` machine of [`crate::breaker`] judges by a moving average of
//! successes, which a burst of calls barely moves; this one opens once
//! more than `failure_ratio` of at least `min_requests` calls in the last
//! `window_secs` failed. Open, it refuses calls for `open_ms`; then one
//! probe at a time goes through (half-open): a success closes it, a
//! failure opens it again. A probe whose outcome never comes (its caller
//! gave up) is replaced after `open_ms`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::breaker::{BreakerState, Transitions};
use crate::refusal::{Dependency, Refusal};
use crate::settings;

pub struct RateBreaker {
    settings: settings::Breaker,
    started: Instant,
    inner: Mutex<Inner>,
    transitions: Transitions,
}

struct Inner {
    /// (second since `started`, calls, failures), oldest first.
    seconds: VecDeque<(u64, u32, u32)>,
    phase: Phase,
}

#[derive(Clone, Copy)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    /// A probe is out since `since` (none: the next call is one).
    HalfOpen {
        since: Option<Instant>,
    },
}

impl RateBreaker {
    /// The breaker of payment channel `channel`.
    pub fn new(channel: &str, settings: &settings::Breaker) -> Self {
        let state = Arc::new(AtomicU8::new(BreakerState::Closed as u8));
        Self {
            settings: settings.clone(),
            started: Instant::now(),
            inner: Mutex::new(Inner { seconds: VecDeque::new(), phase: Phase::Closed }),
            transitions: Transitions { dependency: Dependency::PaymentChannel, channel: channel.to_owned(), state },
        }
    }

    pub fn settings(&self) -> &settings::Breaker {
        &self.settings
    }

    /// Ok if a call may go ahead; an immediate 503 while the breaker is
    /// open, or while its probe is out.
    pub fn permit(&self) -> Result<(), Refusal> {
        if !self.settings.enabled {
            return Ok(());
        }
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let permitted = self.lets_through(inner.phase, now);
        if permitted && !matches!(inner.phase, Phase::Closed) {
            inner.phase = Phase::HalfOpen { since: Some(now) };
            self.transitions.moved(BreakerState::HalfOpen);
        }
        if !permitted {
            self.transitions.rejected();
            return Err(Refusal::BreakerOpen(self.transitions.dependency));
        }
        Ok(())
    }

    /// Whether a call now would be let through (as a probe, if not
    /// closed), without taking it: to choose among channels.
    pub fn would_permit(&self) -> bool {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        !self.settings.enabled || self.lets_through(inner.phase, Instant::now())
    }

    /// Closed, or open past its time with no probe out.
    fn lets_through(&self, phase: Phase, now: Instant) -> bool {
        let open_for = Duration::from_millis(self.settings.open_ms);
        match phase {
            Phase::Closed => true,
            Phase::Open { until } => now >= until,
            Phase::HalfOpen { since: Some(since) } => now.duration_since(since) >= open_for,
            Phase::HalfOpen { since: None } => true,
        }
    }

    /// Records one call: a success, or a failure of the dependency.
    pub fn record_success(&self, success: bool) {
        if !self.settings.enabled {
            return;
        }
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match inner.phase {
            Phase::HalfOpen { .. } if success => {
                inner.seconds.clear();
                inner.phase = Phase::Closed;
                self.transitions.moved(BreakerState::Closed);
            }
            Phase::HalfOpen { .. } => self.open(&mut inner, now),
            // A call let through before it opened.
            Phase::Open { .. } => {}
            Phase::Closed => {
                let second = now.duration_since(self.started).as_secs();
                let window = self.settings.window_secs.max(1);
                while inner.seconds.front().is_some_and(|(at, _, _)| at + window <= second) {
                    inner.seconds.pop_front();
                }
                match inner.seconds.back_mut() {
                    Some((at, calls, failures)) if *at == second => {
                        *calls += 1;
                        *failures += u32::from(!success);
                    }
                    _ => inner.seconds.push_back((second, 1, u32::from(!success))),
                }
                let (calls, failures) =
                    inner.seconds.iter().fold((0u32, 0u32), |(c, f), (_, calls, failures)| (c + calls, f + failures));
                let too_many = f64::from(failures) > self.settings.failure_ratio * f64::from(calls);
                if calls >= self.settings.min_requests && too_many {
                    self.open(&mut inner, now);
                }
            }
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        inner.phase = Phase::Open { until: now + Duration::from_millis(self.settings.open_ms) };
        self.transitions.moved(BreakerState::Open);
    }

    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.transitions.state.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_ms: u64) -> RateBreaker {
        let settings =
            settings::Breaker { enabled: true, failure_ratio: 0.05, min_requests: 20, window_secs: 30, open_ms };
        RateBreaker::new("card", &settings)
    }

    #[test]
    fn it_opens_past_the_share_of_failures_and_a_probe_closes_it() {
        let breaker = breaker(50);
        // One failure in twenty is 5 %: not past it.
        for call in 0..20 {
            assert!(breaker.permit().is_ok());
            breaker.record_success(call != 0);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record_success(false);
        assert_eq!(breaker.state(), BreakerState::Open, "2 of 21 failed");
        assert!(breaker.permit().is_err());

        std::thread::sleep(Duration::from_millis(60));
        assert!(breaker.permit().is_ok(), "the probe");
        assert!(breaker.permit().is_err(), "one probe at a time");
        breaker.record_success(false);
        assert_eq!(breaker.state(), BreakerState::Open, "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(60));
        assert!(breaker.permit().is_ok());
        breaker.record_success(true);
        assert_eq!(breaker.state(), BreakerState::Closed);
        // The window starts afresh.
        breaker.record_success(false);
        assert_eq!(breaker.state(), BreakerState::Closed, "too few calls to judge");
    }

    #[test]
    fn a_probe_whose_outcome_never_comes_is_replaced() {
        let breaker = breaker(30);
        for _ in 0..20 {
            breaker.record_success(false);
        }
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.permit().is_ok());
        assert!(breaker.permit().is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.permit().is_ok(), "its caller gave up");
    }
}
