//! What callers hand to the scripts: a reservation request, the windows of
//! an unacknowledged order, a sale's terms and a change to a live sale.

use std::borrow::Cow;

use order::fallback::SaleKind;
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
    /// The warehouses serving the buyer, best first, comma-separated, or
    /// [`ANY_WAREHOUSE`]; only a sale split over warehouses reads them.
    pub warehouses: Cow<'a, str>,
    /// The storefront channel's share of the sale, if it has one.
    pub channel_share: Option<ChannelShare<'a>>,
}

/// A storefront channel that may hold or have bought at most `max_units`
/// of a sale's units (a partner's share); a cancelled or expired order's
/// units come back to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelShare<'a> {
    pub channel: Cow<'a, str>,
    pub max_units: u64,
}

impl ChannelShare<'_> {
    /// The scripts' arguments for `share`: the channel and its cap ("" and 0: none).
    pub(crate) fn args(share: Option<&Self>) -> [String; 2] {
        match share {
            Some(share) => [share.channel.to_string(), share.max_units.to_string()],
            None => [String::new(), "0".to_owned()],
        }
    }
}

/// An order whose `OrderCreated` the broker acknowledged, as
/// `acknowledge.lua` takes it: its idempotency key, id and payment deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub idempotency_key: String,
    pub order_id: OrderId,
    pub pay_by_ms: i64,
}

/// A buyer any warehouse of a regional sale may serve (no region given).
pub const ANY_WAREHOUSE: &str = "*";

/// Units of a sale held in one warehouse (regional stock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseUnits {
    pub warehouse: String,
    pub units: i64,
}

/// A sale as loaded by the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Regional stock: the units split over warehouses, adding up to
    /// `stock`, in the order buyers with no region are served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warehouses: Vec<WarehouseUnits>,
    /// Flash unless named: an ordinary sale sells from the database while
    /// Redis cannot be reached (`order::fallback`).
    #[serde(default)]
    pub kind: SaleKind,
    /// An ordinary sale's database share, part of `stock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_units: Option<i64>,
}

impl SaleTerms {
    /// The units kept in the inventory database; Redis holds the rest.
    pub fn database_units(&self) -> i64 {
        match self.kind {
            SaleKind::Flash => 0,
            SaleKind::Ordinary => self.database_units.unwrap_or(0),
        }
    }

    /// The warehouses as `load_sale.lua` takes them: "<id>=<units>,...".
    pub(crate) fn warehouse_list(&self) -> String {
        let split: Vec<String> = self.warehouses.iter().map(|w| format!("{}={}", w.warehouse, w.units)).collect();
        split.join(",")
    }
}

/// An operator's change to one warehouse of a regional sale
/// (`warehouses.lua`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action", deny_unknown_fields)]
pub enum WarehouseChange {
    /// No new orders there; its reservations stay.
    Close {
        warehouse: String,
    },
    Open {
        warehouse: String,
    },
    /// Units for sale moved to another warehouse of the sale.
    Move {
        warehouse: String,
        to: String,
        units: i64,
    },
    /// Units added there (negative: removed from those for sale).
    Add {
        warehouse: String,
        units: i64,
    },
}

impl WarehouseChange {
    /// The arguments of `warehouses.lua`.
    pub(crate) fn args(&self) -> Vec<String> {
        let (op, warehouse, units, to) = match self {
            Self::Close { warehouse } => ("close", warehouse, String::new(), ""),
            Self::Open { warehouse } => ("open", warehouse, String::new(), ""),
            Self::Move { warehouse, to, units } => ("move", warehouse, units.to_string(), to.as_str()),
            Self::Add { warehouse, units } => ("add", warehouse, units.to_string(), ""),
        };
        vec![op.to_owned(), warehouse.clone(), units, to.to_owned()]
    }

    pub fn warehouses(&self) -> Vec<&str> {
        match self {
            Self::Close { warehouse } | Self::Open { warehouse } | Self::Add { warehouse, .. } => vec![warehouse],
            Self::Move { warehouse, to, .. } => vec![warehouse, to],
        }
    }
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
