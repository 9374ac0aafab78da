//! What callers hand to the scripts: a reservation request, the windows of
//! an unacknowledged order, a sale's terms and a change to a live sale.

use std::borrow::Cow;

use order::id::OrderId;
use order::sale::{Deduction, SaleWindow};
use serde::{Deserialize, Serialize};

/// The windows of an order the broker has not acknowledged yet, ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmWindows {
    /// How long it may hold its units before the sweeper cancels it as
    /// unconfirmed.
    pub confirm_ms: u64,
    /// How long the request that reserved it may still be waiting for the
    /// broker: a repeat of its key within it is answered in progress.
    pub in_flight_ms: u64,
}

/// A cancellation the buyer is to blame for (they cancelled, or let the
/// order expire), counted against them for `window_secs` from their first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strike {
    pub user_id: u64,
    pub window_secs: u64,
}

/// One reservation request, as the gateway hands it to `reserve.lua`
/// (borrowed, or owned while it waits in a batch).
pub struct ReserveRequest<'a> {
    pub sku: Cow<'a, str>,
    pub idempotency_key: Cow<'a, str>,
    pub user_id: u64,
    pub qty: u32,
    pub order_id: OrderId,
    pub now_ms: i64,
    pub pay_by_ms: i64,
    pub idempotency_ttl_secs: u64,
    pub confirm_windows: ConfirmWindows,
}

/// A sale as loaded by the admin API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleTerms {
    pub stock: i64,
    pub per_user_limit: i64,
    pub price_cents: i64,
    #[serde(flatten)]
    pub window: SaleWindow,
    /// When its units leave the stock; at order unless named.
    #[serde(default)]
    pub deduction: Deduction,
    /// Deducting at payment: units of orders awaiting payment may reach
    /// this % of the stock (default 150).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_orders_cap_pct: Option<u32>,
}

/// A change to a live sale (the body of the admin API's PATCH); `None`
/// leaves a term as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleChange {
    /// Units to add; negative removes units still for sale.
    pub add_units: Option<i64>,
    pub per_user_limit: Option<i64>,
    /// The price of orders placed from now on.
    pub price_cents: Option<i64>,
    /// Replaces the whole window: `{"starts_at"?, "ends_at"?}`.
    pub window: Option<SaleWindow>,
    /// Apply only while the sale's total is this: a retry after a lost
    /// answer cannot apply the change twice.
    pub if_total: Option<i64>,
}
