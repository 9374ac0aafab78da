//! The `[traffic]` section: token buckets per route and scope, deny lists,
//! breakers and the in-flight cap; reloaded while running.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use ordercenter::settings::Breakers;

/// Traffic control, reloaded from the file (and on SIGHUP) without a
/// restart. Everything here is per gateway instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Traffic {
    /// Proxies (CIDRs) whose `X-Forwarded-For` is believed. From any other
    /// peer the header is ignored and the peer address is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Requests served at once, past which new ones get an immediate 503
    /// instead of a queue. 0 switches the cap off.
    pub max_in_flight: usize,
    /// Token buckets per route (`place_order`, `get_order`, `pay_order`,
    /// `cancel_order`, `payment_notify`). A file that lists routes replaces
    /// the defaults whole: a route or scope it leaves out is not limited.
    #[serde(default = "default_routes", skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<LimitedRoute, RouteLimits>,
    /// Who is turned away with a 403 before any other work.
    pub deny: Deny,
    /// Circuit breakers around the dependencies.
    pub breakers: Breakers,
    /// Storefront channels, their keys and quotas.
    pub channels: Channels,
}

/// Storefront channels (web, app, partners), each known by the API keys it
/// sends in `X-Channel-Key`, kept here only as hex SHA-256 hashes. A key is
/// rotated by adding the new hash, reloading, then removing the old one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Channels {
    /// Requests to the limited routes without a known key get 401 (else
    /// they pass as no channel, under the other buckets only).
    pub required: bool,
    /// The channels by id.
    pub list: BTreeMap<String, Channel>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Channel {
    /// The hex SHA-256 of each API key the channel may send.
    pub key_sha256: Vec<String>,
    /// All of the channel's requests together.
    pub limit: Option<Bucket>,
    /// The channel's requests to one route.
    pub routes: BTreeMap<LimitedRoute, Bucket>,
    /// A partner's share: the most units of any one sale the channel's
    /// orders may hold or have bought at once (none: no cap). A cancelled
    /// or expired order's units come back to it.
    pub max_units_per_sale: Option<u64>,
}

/// Routes that can carry token buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitedRoute {
    PlaceOrder,
    Checkout,
    GetOrder,
    ListOrders,
    PayOrder,
    CancelOrder,
    ReceiveOrder,
    AfterSale,
    PaymentNotify,
    RefundNotify,
}

impl LimitedRoute {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlaceOrder => "place_order",
            Self::Checkout => "checkout",
            Self::GetOrder => "get_order",
            Self::ListOrders => "list_orders",
            Self::PayOrder => "pay_order",
            Self::CancelOrder => "cancel_order",
            Self::ReceiveOrder => "receive_order",
            Self::AfterSale => "after_sale",
            Self::PaymentNotify => "payment_notify",
            Self::RefundNotify => "refund_notify",
        }
    }
}

/// The buckets of one route; each one absent is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteLimits {
    /// All requests to the route together.
    pub global: Option<Bucket>,
    /// Each client IP.
    pub ip: Option<Bucket>,
    /// Each user id (routes whose body names the user).
    pub user: Option<Bucket>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Deny {
    /// User ids turned away.
    pub users: Vec<u64>,
    /// Client IPs turned away, as CIDRs (`203.0.113.7/32`, `10.0.0.0/8`).
    pub ips: Vec<IpNet>,
}

/// A token bucket: refills `per_second` tokens a second, holds at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// The buckets when the config names no routes at all.
fn default_routes() -> BTreeMap<LimitedRoute, RouteLimits> {
    let bucket = |per_second, burst| {
        Some(Bucket {
            per_second: NonZeroU32::new(per_second).expect("positive"),
            burst: NonZeroU32::new(burst).expect("positive"),
        })
    };
    let place_order = RouteLimits { global: bucket(50_000, 50_000), ip: bucket(50, 100), user: bucket(5, 10) };
    let get_order = RouteLimits { user: bucket(20, 40), ..RouteLimits::default() };
    let list_orders = RouteLimits { user: bucket(5, 20), ..RouteLimits::default() };
    let checkout = RouteLimits { global: bucket(5_000, 5_000), ip: bucket(20, 40), user: bucket(2, 5) };
    BTreeMap::from([
        (LimitedRoute::PlaceOrder, place_order),
        (LimitedRoute::Checkout, checkout),
        (LimitedRoute::GetOrder, get_order),
        (LimitedRoute::ListOrders, list_orders),
    ])
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            max_in_flight: 20_000,
            routes: default_routes(),
            deny: Deny::default(),
            breakers: Breakers::default(),
            channels: Channels::default(),
        }
    }
}

impl Traffic {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, breaker) in [
            ("traffic.breakers.redis", &self.breakers.redis),
            ("traffic.breakers.kafka", &self.breakers.kafka),
            ("traffic.breakers.payment_channel", &self.breakers.payment_channel),
        ] {
            let valid = breaker.failure_ratio > 0.0
                && breaker.failure_ratio <= 1.0
                && breaker.window_secs >= 1
                && breaker.open_ms > 0;
            if !valid {
                return Err(ConfigError::Invalid {
                    field: name,
                    problem: "needs 0 < failure_ratio <= 1, window_secs >= 1 and open_ms > 0".into(),
                });
            }
        }
        self.validate_channels()
    }

    /// Channel ids are tokens, and each key hash is 64 hex digits naming
    /// one channel.
    fn validate_channels(&self) -> Result<(), ConfigError> {
        let mut hashes = std::collections::HashSet::new();
        for (id, channel) in &self.channels.list {
            let token = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            // At most as long as `orders.channel` holds.
            if id.is_empty() || id.len() > 32 || !id.chars().all(token) {
                return Err(ConfigError::Invalid {
                    field: "traffic.channels.list",
                    problem: format!("channel id {id:?}: 1 to 32 of A-Z a-z 0-9 _ -"),
                });
            }
            if channel.max_units_per_sale == Some(0) {
                return Err(ConfigError::Invalid {
                    field: "traffic.channels.list",
                    problem: format!("channel {id}: max_units_per_sale must be at least 1 (leave it out for no cap)"),
                });
            }
            for hash in &channel.key_sha256 {
                let hex = hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit());
                if !hex || !hashes.insert(hash.to_ascii_lowercase()) {
                    return Err(ConfigError::Invalid {
                        field: "traffic.channels.list",
                        problem: format!("channel {id}: each key_sha256 is 64 hex digits, in one channel only"),
                    });
                }
            }
        }
        Ok(())
    }
}
