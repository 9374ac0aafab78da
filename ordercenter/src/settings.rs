//! The order center's settings: the sections of the gateway's config file
//! its workflows read (`[orders]`, `[payments]`, `[abuse]`, `[cache]`,
//! `[queries]`, `[checkout]`, `[traffic.breakers]`), and [`Settings`],
//! what one [`crate::OrderCenter`] runs with.

use std::collections::BTreeMap;
use std::time::Duration;

use paychannel::channels::{development_endpoints, Endpoint, DEFAULT_CHANNEL};
use serde::{Deserialize, Serialize};

/// What the workflows run with, from the gateway's config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This instance's number, part of every order id it mints.
    pub node_id: u8,
    pub orders: Orders,
    pub payments: Payments,
    pub abuse: Abuse,
    pub cache: Cache,
    pub queries: Queries,
    pub checkout: Checkout,
    /// How long the broker may take to acknowledge an event, ms.
    pub message_timeout_ms: u64,
    /// How long after its reservation an unacknowledged order may still be
    /// in flight in another request. Past this, the request that made it
    /// has certainly finished or died.
    pub in_flight_window: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Orders {
    /// How long a buyer has to pay before the reserved units go back, seconds.
    pub payment_window_secs: u64,
    /// How long a repeat of an `Idempotency-Key` returns the first answer, seconds.
    pub idempotency_ttl_secs: u64,
    /// How long a reserved order may wait for the broker to acknowledge its
    /// creation before the sweeper cancels it and its units go back,
    /// seconds (below the payment window). Covers the orders whose buyer
    /// was answered 503 "outcome unknown" and a gateway that died between
    /// reserve and publish.
    pub confirm_window_secs: u64,
    /// How long a SKU seen sold out is answered 409 from memory before one
    /// request is let through to Redis to look again, milliseconds.
    pub sold_out_recheck_ms: u64,
}

impl Default for Orders {
    fn default() -> Self {
        Self {
            payment_window_secs: 900,
            idempotency_ttl_secs: 86_400,
            confirm_window_secs: 30,
            sold_out_recheck_ms: 1_000,
        }
    }
}

/// The security check before an order: a buyer with more than
/// `max_strikes` orders cancelled or let expire within `window_secs` (the
/// window starts at their first strike) is refused until it ends. The
/// settler counts the expiries with its own `abuse.window_secs`: keep them equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Abuse {
    /// 0 (the default) switches the check off. On, it costs one Redis read
    /// on every order, in series before the reservation.
    pub max_strikes: u32,
    pub window_secs: u64,
}

impl Default for Abuse {
    fn default() -> Self {
        Self { max_strikes: 0, window_secs: 3_600 }
    }
}

/// The payment channel and how lost notifications are chased.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Payments {
    /// The payment channels by id: where each is reached, the secret it
    /// signs with.
    pub channels: BTreeMap<String, Endpoint>,
    /// Where a payment goes when the buyer names no channel.
    pub default_channel: String,
    /// Where a payment the buyer named no channel for goes while the
    /// default channel's breaker is open; `""`: nowhere (503).
    pub fallback_channel: String,
    /// This gateway's `/v1/payments/notify`, as the channels reach it; a
    /// channel's notifications go to it followed by `/<channel id>`.
    pub notify_url: String,
    /// A call to a channel slower than this fails, ms.
    pub channel_timeout_ms: u64,
    /// How often an unpaid order whose payment was started is looked up at
    /// its channel, in case its notification was lost, seconds.
    pub query_every_secs: u64,
    /// How long after the payment started the lookups go on, seconds.
    pub query_for_secs: u64,
}

impl Payments {
    /// Where channel `id` sends its notifications.
    pub fn notify_url_of(&self, id: &str) -> String {
        format!("{}/{id}", self.notify_url.trim_end_matches('/'))
    }
}

impl Default for Payments {
    fn default() -> Self {
        Self {
            channels: development_endpoints(),
            default_channel: DEFAULT_CHANNEL.into(),
            fallback_channel: String::new(),
            notify_url: "http://127.0.0.1:8080/v1/payments/notify".into(),
            channel_timeout_ms: 3_000,
            query_every_secs: 60,
            query_for_secs: 1_800,
        }
    }
}

/// The hot-order cache: an order's view, readable from its 202 on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cache {
    /// How long an order's view stays cached after it was written or read,
    /// seconds; 0 switches the cache off. It bounds the cache's size (the
    /// orders accepted or read within it) and how stale a read can be when
    /// a cache write failed or a read raced a move.
    pub ttl_secs: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Self { ttl_secs: 60 }
    }
}

/// Order lists (`GET /v1/orders`) and the merchant's search (`GET /admin/orders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Queries {
    /// Most orders on one page (`limit` above it is refused).
    pub max_page: u32,
    /// The search waits this long for each shard, ms; a shard slower than
    /// this is left out of the answer, which is marked partial.
    pub shard_timeout_ms: u64,
    /// A replica further behind its primary than this (or not replicating)
    /// is not read; its shard's lists go to the primary, seconds.
    pub replica_max_lag_secs: u64,
    /// How often each replica's lag is read, ms.
    pub replica_check_ms: u64,
}

impl Default for Queries {
    fn default() -> Self {
        Self { max_page: 100, shard_timeout_ms: 1_000, replica_max_lag_secs: 5, replica_check_ms: 1_000 }
    }
}

/// Cart checkouts (`POST /v1/checkout`): a sub-order is split further
/// until each package is within the carrier's limits; member points are
/// worth `cents_per_point` each, at most `max_points_per_order` a checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Checkout {
    pub max_package_weight_grams: u64,
    pub max_package_volume_cm3: u64,
    pub cents_per_point: i64,
    pub max_points_per_order: u64,
}

impl Default for Checkout {
    fn default() -> Self {
        Self {
            max_package_weight_grams: 20_000,
            max_package_volume_cm3: 120_000,
            cents_per_point: 1,
            max_points_per_order: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Breakers {
    pub redis: Breaker,
    pub kafka: Breaker,
    /// Around the payment channel's API (creating a payment, asking about
    /// one): timeouts, refused connections and 5xx count as failures.
    /// Seed 000's rule by default: open past 5 % of at least 20 calls in 30 s.
    pub payment_channel: Breaker,
}

impl Default for Breakers {
    fn default() -> Self {
        Self {
            redis: Breaker::default(),
            kafka: Breaker::default(),
            payment_channel: Breaker { failure_ratio: 0.05, window_secs: 30, ..Breaker::default() },
        }
    }
}

/// A circuit breaker: opens when the success rate over `window_secs` falls
/// below `1 - failure_ratio` with at least `min_requests` calls, stays open
/// `open_ms`, then lets probe calls through (half-open): a success closes
/// it, a failure opens it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Breaker {
    pub enabled: bool,
    /// Share of failed calls (0–1, exclusive of 0) that opens the breaker.
    pub failure_ratio: f64,
    /// Calls in the window before the breaker may open.
    pub min_requests: u32,
    /// The sliding window the ratio is measured over, seconds (at least 1).
    pub window_secs: u64,
    /// How long an open breaker answers 503 before probing, ms.
    pub open_ms: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self { enabled: true, failure_ratio: 0.5, min_requests: 20, window_secs: 10, open_ms: 5_000 }
    }
}

impl Checkout {
    pub fn limits(&self) -> order::splitting::Limits {
        order::splitting::Limits {
            max_weight_grams: self.max_package_weight_grams,
            max_volume_cm3: self.max_package_volume_cm3,
        }
    }

    /// The member points a buyer asking for `asked` is offered.
    pub fn points_offer(&self, asked: u64) -> order::checkout::PointsOffer {
        order::checkout::PointsOffer {
            asked,
            cents_per_point: self.cents_per_point,
            max_per_order: self.max_points_per_order,
        }
    }
}
