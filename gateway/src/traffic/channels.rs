//! Storefront channels (web, app, partner sites feeding one gateway):
//! which channel a request comes from, by the API key it sends
//! in `X-Channel-Key` (compared by its SHA-256, the only form the config
//! holds), and the channel's quotas: all its requests, and its requests to
//! one route, each a token bucket of its own, so a channel over its quota
//! is limited without touching another's.

use std::collections::{BTreeMap, HashMap};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, RateLimiter};
use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use super::buckets::{reuse_or_build, whole_seconds_up, SizedLimiter};
use crate::auth::AuthError;
use crate::config::{Channels, LimitedRoute};
use ordercenter::refusal::{Refusal, Scope};

/// The header a storefront sends its API key in.
pub const CHANNEL_KEY_HEADER: &str = "x-channel-key";

type Limiter = SizedLimiter<DefaultDirectRateLimiter>;

#[derive(Default)]
pub struct ChannelGate {
    required: bool,
    /// SHA-256 of a key → its channel.
    by_key: HashMap<[u8; 32], String>,
    channels: HashMap<String, ChannelBuckets>,
}

#[derive(Default)]
struct ChannelBuckets {
    all: Option<Limiter>,
    routes: BTreeMap<LimitedRoute, Limiter>,
}

impl ChannelGate {
    /// The gate of `config`, keeping from `previous` every bucket whose size
    /// did not change, with its state.
    pub fn build(config: &Channels, previous: Option<&ChannelGate>) -> Self {
        let mut by_key = HashMap::new();
        let mut channels = HashMap::new();
        for (id, channel) in &config.list {
            for hash in &channel.key_sha256 {
                if let Ok(bytes) = hex::decode(hash) {
                    if let Ok(key) = <[u8; 32]>::try_from(bytes) {
                        by_key.insert(key, id.clone());
                    }
                }
            }
            let kept = previous.and_then(|gate| gate.channels.get(id));
            let routes = channel
                .routes
                .iter()
                .filter_map(|(route, bucket)| {
                    let before = kept.and_then(|kept| kept.routes.get(route));
                    Some((*route, reuse_or_build(Some(*bucket), before, RateLimiter::direct)?))
                })
                .collect();
            let all = reuse_or_build(channel.limit, kept.and_then(|kept| kept.all.as_ref()), RateLimiter::direct);
            channels.insert(id.clone(), ChannelBuckets { all, routes });
        }
        Self { required: config.required, by_key, channels }
    }

    /// The channel the request comes from (`None`: it names none, and none
    /// is required); 401 for a key no channel has.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
        let Some(key) = headers.get(CHANNEL_KEY_HEADER) else {
            return if self.required { Err(AuthError::ChannelKeyMissing) } else { Ok(None) };
        };
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        match self.by_key.get(&hash) {
            Some(channel) => Ok(Some(channel)),
            None => {
                metrics::counter!("gateway_auth_failures_total", "reason" => "unknown_channel_key").increment(1);
                Err(AuthError::UnknownChannelKey)
            }
        }
    }

    /// The channel's quotas for a request to `route`: all its requests,
    /// then its requests to the route.
    pub fn admit(&self, channel: &str, route: LimitedRoute) -> Result<(), Refusal> {
        let Some(buckets) = self.channels.get(channel) else { return Ok(()) };
        for limiter in buckets.all.iter().chain(buckets.routes.get(&route)) {
            if let Err(not_until) = limiter.limiter.check() {
                metrics::counter!("gateway_channel_requests_total", "channel" => channel.to_owned(), "decision" => "limited")
                    .increment(1);
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(Refusal::RateLimited { scope: Scope::Channel, retry_after_secs: whole_seconds_up(wait) });
            }
        }
        metrics::counter!("gateway_channel_requests_total", "channel" => channel.to_owned(), "decision" => "allowed")
            .increment(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Channel;
    use crate::traffic::buckets::bucket;

    fn key_hash(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    fn config(required: bool) -> Channels {
        let web = Channel {
            key_sha256: vec![key_hash("web-key")],
            limit: Some(bucket(1, 2)),
            routes: BTreeMap::new(),
            max_units_per_sale: None,
        };
        let app = Channel {
            key_sha256: vec![key_hash("app-key")],
            limit: None,
            routes: BTreeMap::from([(LimitedRoute::PlaceOrder, bucket(1, 1))]),
            max_units_per_sale: None,
        };
        Channels { required, list: BTreeMap::from([("web".to_owned(), web), ("app".to_owned(), app)]) }
    }

    fn headers(key: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            headers.insert(CHANNEL_KEY_HEADER, key.parse().unwrap());
        }
        headers
    }

    #[test]
    fn a_key_names_its_channel_and_a_wrong_or_missing_one_is_refused_as_configured() {
        let gate = ChannelGate::build(&config(false), None);
        assert_eq!(gate.identify(&headers(Some("web-key"))), Ok(Some("web")));
        assert_eq!(gate.identify(&headers(Some("nope"))), Err(AuthError::UnknownChannelKey));
        assert_eq!(gate.identify(&headers(None)), Ok(None));
        let required = ChannelGate::build(&config(true), None);
        assert_eq!(required.identify(&headers(None)), Err(AuthError::ChannelKeyMissing));
    }

    #[test]
    fn a_channel_over_its_quota_is_limited_and_another_is_not() {
        let gate = ChannelGate::build(&config(false), None);
        assert!(gate.admit("web", LimitedRoute::GetOrder).is_ok());
        assert!(gate.admit("web", LimitedRoute::PlaceOrder).is_ok());
        let limited = gate.admit("web", LimitedRoute::PlaceOrder);
        assert!(matches!(limited, Err(Refusal::RateLimited { scope: Scope::Channel, retry_after_secs: 1 })));
        assert!(gate.admit("app", LimitedRoute::PlaceOrder).is_ok());
        assert!(gate.admit("app", LimitedRoute::GetOrder).is_ok(), "its quota is on place_order only");
        assert!(gate.admit("app", LimitedRoute::PlaceOrder).is_err());
        // A reload keeps the state of unchanged buckets.
        let reloaded = ChannelGate::build(&config(false), Some(&gate));
        assert!(reloaded.admit("web", LimitedRoute::PlaceOrder).is_err());
    }
}
