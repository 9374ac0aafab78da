//! The breakers of the dependencies an order needs: Redis's and Kafka's
//! ([`crate::breaker`]) and each payment channel's
//! ([`crate::rate_breaker`]), rebuilt on every reload of
//! `[traffic.breakers]`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::breaker::Breaker;
use crate::rate_breaker::RateBreaker;
use crate::refusal::Dependency;
use crate::settings;

/// The breakers of the dependencies an order needs, rebuilt on every
/// reload of `[traffic.breakers]` and swapped in whole.
pub struct Breakers {
    pub redis: Arc<Breaker>,
    pub kafka: Arc<Breaker>,
    /// One per payment channel, by id. Counts calls, not a moving
    /// average: its threshold is a small share of them ([`RateBreaker`]).
    pub payment_channels: BTreeMap<String, Arc<RateBreaker>>,
}

impl Breakers {
    /// Builds the breakers for `settings`, keeping from `previous` each one
    /// whose settings did not change, with its state.
    pub fn build<'a>(
        settings: &settings::Breakers,
        channels: impl Iterator<Item = &'a str>,
        previous: Option<&Breakers>,
    ) -> Self {
        let breaker = |dependency, settings: &settings::Breaker, kept: Option<&Arc<Breaker>>| match kept {
            Some(kept) if kept.settings() == settings => kept.clone(),
            _ => Arc::new(Breaker::new(dependency, settings)),
        };
        Self {
            redis: breaker(Dependency::Redis, &settings.redis, previous.map(|p| &p.redis)),
            kafka: breaker(Dependency::Kafka, &settings.kafka, previous.map(|p| &p.kafka)),
            payment_channels: channels
                .map(|id| {
                    let breaker = match previous.and_then(|p| p.payment_channels.get(id)) {
                        Some(kept) if kept.settings() == &settings.payment_channel => kept.clone(),
                        _ => Arc::new(RateBreaker::new(id, &settings.payment_channel)),
                    };
                    (id.to_owned(), breaker)
                })
                .collect(),
        }
    }
}
