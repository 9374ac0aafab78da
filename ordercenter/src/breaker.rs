//! Circuit breakers around Redis, Kafka and the payment channel, on the
//! `failsafe` crate's state machine (success rate over a time window,
//! constant open time, half-open probes). While one is open, requests that
//! need its dependency get an immediate 503 instead of waiting for
//! timeouts.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use failsafe::backoff::{self, Constant};
use failsafe::failure_policy::{self, SuccessRateOverTimeWindow};
use failsafe::{Config, Instrument, StateMachine};

use crate::refusal::{Dependency, Refusal};
use crate::settings;

/// Where a breaker's machine is; the number is the `gateway_breaker_state` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }

    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            2 => Self::Open,
            1 => Self::HalfOpen,
            _ => Self::Closed,
        }
    }
}

pub struct Breaker {
    dependency: Dependency,
    settings: settings::Breaker,
    machine: StateMachine<SuccessRateOverTimeWindow<Constant>, Transitions>,
    state: Arc<AtomicU8>,
}

/// Tracks the state for `/readyz` and `/metrics` as the machine moves.
pub(crate) struct Transitions {
    pub(crate) dependency: Dependency,
    /// Which of the dependency's instances: a payment channel's id (the
    /// `channel` label); `""` for Redis and Kafka.
    pub(crate) channel: String,
    pub(crate) state: Arc<AtomicU8>,
}

impl Transitions {
    /// `dependency`, and `channel` for a payment channel's.
    fn labels(&self) -> Vec<metrics::Label> {
        let mut labels = vec![metrics::Label::new("dependency", self.dependency.as_str())];
        if !self.channel.is_empty() {
            labels.push(metrics::Label::new("channel", self.channel.clone()));
        }
        labels
    }

    pub(crate) fn moved(&self, state: BreakerState) {
        metrics::gauge!("gateway_breaker_state", self.labels()).set(f64::from(state as u8));
        // The machine reports "closed" when it is built: not a transition.
        if self.state.swap(state as u8, Ordering::Relaxed) == state as u8 {
            return;
        }
        let name = state.as_str();
        let (dependency, channel) = (self.dependency.as_str(), self.channel.as_str());
        tracing::warn!(dependency, channel, state = name, "circuit breaker moved");
        let mut labels = self.labels();
        labels.push(metrics::Label::new("to", name));
        metrics::counter!("gateway_breaker_transitions_total", labels).increment(1);
    }

    pub(crate) fn rejected(&self) {
        metrics::counter!("gateway_breaker_rejections_total", self.labels()).increment(1);
    }
}

impl Instrument for Transitions {
    fn on_call_rejected(&self) {
        self.rejected();
    }

    fn on_open(&self) {
        self.moved(BreakerState::Open);
    }

    fn on_half_open(&self) {
        self.moved(BreakerState::HalfOpen);
    }

    fn on_closed(&self) {
        self.moved(BreakerState::Closed);
    }
}

impl Breaker {
    pub fn new(dependency: Dependency, settings: &settings::Breaker) -> Self {
        let state = Arc::new(AtomicU8::new(BreakerState::Closed as u8));
        let policy = failure_policy::success_rate_over_time_window(
            1.0 - settings.failure_ratio,
            settings.min_requests,
            Duration::from_secs(settings.window_secs),
            backoff::constant(Duration::from_millis(settings.open_ms)),
        );
        let machine = Config::new()
            .failure_policy(policy)
            .instrument(Transitions { dependency, channel: String::new(), state: state.clone() })
            .build();
        Self { dependency, settings: settings.clone(), machine, state }
    }

    pub fn settings(&self) -> &settings::Breaker {
        &self.settings
    }

    /// Ok if a call may go ahead; an immediate 503 while the breaker is open.
    pub fn permit(&self) -> Result<(), Refusal> {
        if !self.settings.enabled || self.machine.is_call_permitted() {
            Ok(())
        } else {
            Err(Refusal::BreakerOpen(self.dependency))
        }
    }

    pub fn record<T, E>(&self, outcome: &Result<T, E>) {
        match outcome {
            Ok(_) => self.machine.on_success(),
            Err(_) => self.machine.on_error(),
        }
    }

    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Relaxed))
    }
}
