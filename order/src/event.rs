//! Events on the `order-events` topic. JSON, keyed by user id, with a `type`
//! tag and a schema version `v`, read by the settler and by downstream
//! systems (logistics, finance).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::after_sale;
use crate::checkout::{item_key, CheckoutItem, CheckoutOrder};
use crate::id::OrderId;
use crate::lifecycle::{Action, Actor};
use crate::status::OrderStatus;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// One message on `order-events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    #[serde(flatten)]
    pub event: OrderEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OrderEvent {
    OrderCreated(OrderCreated),
    OrderPaid(OrderPaid),
    OrderCancelled(OrderCancelled),
    RefundRequired(RefundRequired),
    OrderStatusChanged(OrderStatusChanged),
    RefundCompleted(RefundCompleted),
    AfterSaleChanged(AfterSaleChanged),
    /// A cart checkout was accepted: the parent order, its sub-orders and
    /// items. Each item is an order of its own; its later events are the
    /// single-order ones (`OrderPaid`, `OrderCancelled`, ...).
    CheckoutCreated(CheckoutOrder),
    OrderReaddressed(OrderReaddressed),
}

/// The buyer changed the delivery region of an order awaiting payment; a
/// sale split over warehouses moved it to `warehouse`. The order's
/// payment or cancellation carries the warehouse it ends in too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReaddressed {
    pub order_id: OrderId,
    pub user_id: u64,
    pub sku: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
    pub at: DateTime<Utc>,
}

/// Units were reserved for an order that now awaits payment. Later events
/// of the order carry the same fields, so a consumer that never saw this
/// one (the gateway died before sending it) can still record the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreated {
    pub order_id: OrderId,
    pub user_id: u64,
    pub sku: String,
    pub qty: u32,
    pub amount_cents: i64,
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
    pub pay_by: DateTime<Utc>,
    /// The sale the order belongs to (its `loaded_ms` in Redis), so one
    /// sale's orders are told from an earlier sale's of the same SKU. 0 in
    /// events from before it was recorded.
    #[serde(default)]
    pub sale_generation: i64,
    /// The warehouse its units are in, for a sale split over warehouses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
    /// The storefront channel it came through (`traffic.channels`); none
    /// for a request without a channel key, and in an event the system
    /// built again from Redis's record (an unacknowledged order cancelled
    /// at its deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl OrderCreated {
    /// An item of a checkout as the order its events describe: its key
    /// names the checkout and its package (`cart.<parent>.<sub-order>`);
    /// an item of a sale split over warehouses names the one its units are
    /// in (chosen for the cart's region).
    pub fn of_checkout_item(checkout: &CheckoutOrder, sub_order: u32, item: &CheckoutItem) -> Self {
        Self {
            order_id: item.order_id,
            user_id: checkout.user_id,
            sku: item.sku.clone(),
            qty: item.qty,
            amount_cents: item.amount_cents,
            idempotency_key: item_key(checkout.order_id, sub_order),
            created_at: checkout.created_at,
            pay_by: checkout.pay_by,
            sale_generation: item.sale_generation,
            warehouse: item.warehouse.clone(),
            channel: checkout.channel.clone(),
        }
    }
}

/// The channel confirmed the payment: the reserved units are sold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPaid {
    #[serde(flatten)]
    pub order: OrderCreated,
    /// The payment channel's id; `""` in events from before there were
    /// several: the default channel's.
    #[serde(default)]
    pub payment_channel: String,
    pub payment_id: String,
    pub paid_at: DateTime<Utc>,
}

/// Why a pending order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The buyer cancelled.
    User,
    /// The payment window passed.
    Timeout,
    /// The broker never confirmed the order's creation before its confirm
    /// deadline (the buyer was answered 503, never 202).
    Unconfirmed,
    /// The buyer cancelled a paid order before it shipped: refunded.
    AfterPayment,
    /// Its sale deducts at payment, and its payment found the units sold to
    /// faster payers: refunded.
    SoldOut,
    /// The database fallback took it while Redis was down, and its
    /// idempotency key had placed another order in Redis: the buyer's
    /// retry reached both stores, and keeps the order Redis holds.
    DuplicateKey,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Timeout => "timeout",
            Self::Unconfirmed => "unconfirmed",
            Self::AfterPayment => "after_payment",
            Self::SoldOut => "sold_out",
            Self::DuplicateKey => "duplicate_key",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::User, Self::Timeout, Self::Unconfirmed, Self::AfterPayment, Self::SoldOut, Self::DuplicateKey]
            .into_iter()
            .find(|reason| reason.as_str() == name)
    }

    /// Whether the buyer is to blame: they cancelled or let it expire (a
    /// strike against them). An unconfirmed order is the gateway's failure.
    pub fn is_strike(self) -> bool {
        matches!(self, Self::User | Self::Timeout)
    }
}

/// A pending order was cancelled and its units went back to stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    #[serde(flatten)]
    pub order: OrderCreated,
    pub reason: CancelReason,
    pub cancelled_at: DateTime<Utc>,
}

/// Money arrived for an order that can no longer take it (it was cancelled
/// first): it must go back. The original payment record is not touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequired {
    pub order_id: OrderId,
    pub user_id: u64,
    pub sku: String,
    /// As [`OrderPaid::payment_channel`].
    #[serde(default)]
    pub payment_channel: String,
    pub payment_id: String,
    pub amount_cents: i64,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A move of a paid order (pushed to the warehouse, shipped, received,
/// completed, cancelled after payment), written to the order's shard with
/// the move itself and relayed from there (the transactional outbox).
/// Consumers apply it once: a move whose `from` is no longer the order's
/// status has been applied already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStatusChanged {
    #[serde(flatten)]
    pub order: OrderCreated,
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub action: Action,
    pub actor: Actor,
    /// The parcel, once shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<Shipment>,
    /// The payment given back, for a cancellation after payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Refund>,
    pub at: DateTime<Utc>,
}

/// The channel confirmed a refund: the money is back with the buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundCompleted {
    pub refund_id: String,
    pub order_id: OrderId,
    pub user_id: u64,
    /// Empty in events written before it was added.
    #[serde(default)]
    pub sku: String,
    pub payment_id: String,
    pub amount_cents: i64,
    pub at: DateTime<Utc>,
}

/// An after-sale request was made or moved. Sent from the shard's outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterSaleChanged {
    /// An id like an order's, in the buyer's shard bucket.
    pub after_sale_id: OrderId,
    pub order_id: OrderId,
    pub user_id: u64,
    pub sku: String,
    pub kind: after_sale::Kind,
    pub qty: u32,
    /// `None` when the request was made.
    pub from: Option<after_sale::Status>,
    pub to: after_sale::Status,
    /// `None` when the request was made (by the buyer).
    pub action: Option<after_sale::Action>,
    pub actor: Actor,
    /// The money given back, when refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Refund>,
    pub at: DateTime<Utc>,
}

/// Where a parcel went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_no: String,
}

/// A payment to give back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub payment_id: String,
    pub amount_cents: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not an order event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("schema version {0} is not supported (this build reads {SCHEMA_VERSION})")]
    Version(u32),
}

impl OrderEvent {
    /// The partition key: all events of one user stay in order.
    pub fn key(&self) -> String {
        self.user_id().to_string()
    }

    /// The event's type, as its spans and logs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::OrderCreated(_) => "OrderCreated",
            Self::OrderPaid(_) => "OrderPaid",
            Self::OrderCancelled(_) => "OrderCancelled",
            Self::RefundRequired(_) => "RefundRequired",
            Self::OrderStatusChanged(_) => "OrderStatusChanged",
            Self::RefundCompleted(_) => "RefundCompleted",
            Self::AfterSaleChanged(_) => "AfterSaleChanged",
            Self::CheckoutCreated(_) => "CheckoutCreated",
            Self::OrderReaddressed(_) => "OrderReaddressed",
        }
    }

    pub fn order_id(&self) -> OrderId {
        match self {
            Self::OrderCreated(order) => order.order_id,
            Self::OrderPaid(paid) => paid.order.order_id,
            Self::OrderCancelled(cancelled) => cancelled.order.order_id,
            Self::RefundRequired(refund) => refund.order_id,
            Self::OrderStatusChanged(changed) => changed.order.order_id,
            Self::RefundCompleted(refund) => refund.order_id,
            Self::AfterSaleChanged(changed) => changed.order_id,
            Self::CheckoutCreated(checkout) => checkout.order_id,
            Self::OrderReaddressed(readdressed) => readdressed.order_id,
        }
    }

    pub fn user_id(&self) -> u64 {
        match self {
            Self::OrderCreated(order) => order.user_id,
            Self::OrderPaid(paid) => paid.order.user_id,
            Self::OrderCancelled(cancelled) => cancelled.order.user_id,
            Self::RefundRequired(refund) => refund.user_id,
            Self::OrderStatusChanged(changed) => changed.order.user_id,
            Self::RefundCompleted(refund) => refund.user_id,
            Self::AfterSaleChanged(changed) => changed.user_id,
            Self::CheckoutCreated(checkout) => checkout.user_id,
            Self::OrderReaddressed(readdressed) => readdressed.user_id,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let envelope = Envelope { v: SCHEMA_VERSION, event: self.clone() };
        serde_json::to_vec(&envelope).expect("order events always serialise")
    }

    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let envelope: Envelope = serde_json::from_slice(payload)?;
        if envelope.v != SCHEMA_VERSION {
            return Err(DecodeError::Version(envelope.v));
        }
        Ok(envelope.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::IdGenerator;
    use crate::shard::bucket_for_user;

    fn created() -> OrderEvent {
        let at = DateTime::parse_from_rfc3339("2026-11-24T12:00:00.123Z").unwrap().to_utc();
        OrderEvent::OrderCreated(OrderCreated {
            order_id: IdGenerator::new(0).unwrap().next(bucket_for_user(42), at.timestamp_millis()),
            user_id: 42,
            sku: "sku-1".into(),
            qty: 2,
            amount_cents: 19_998,
            idempotency_key: "k-1".into(),
            created_at: at,
            pay_by: at + chrono::Duration::minutes(15),
            sale_generation: 0,
            warehouse: None,
            channel: None,
        })
    }

    #[test]
    fn round_trips_with_type_and_version() {
        let event = created();
        let bytes = event.encode();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["type"], "OrderCreated");
        assert_eq!(json["v"], 1);
        assert!(json["order_id"].is_string());
        assert_eq!(json["pay_by"], "2026-11-24T12:15:00.123Z");
        assert_eq!(OrderEvent::decode(&bytes).unwrap(), event);
        assert_eq!(event.key(), "42");
    }

    #[test]
    fn later_events_carry_the_whole_order() {
        let OrderEvent::OrderCreated(order) = created() else { unreachable!() };
        let cancelled = OrderEvent::OrderCancelled(OrderCancelled {
            order: order.clone(),
            reason: CancelReason::Timeout,
            cancelled_at: order.pay_by,
        });
        let json: serde_json::Value = serde_json::from_slice(&cancelled.encode()).unwrap();
        assert_eq!(json["type"], "OrderCancelled");
        assert_eq!(json["reason"], "timeout");
        assert_eq!(json["sku"], "sku-1");
        assert_eq!(OrderEvent::decode(&cancelled.encode()).unwrap(), cancelled);

        let paid = OrderEvent::OrderPaid(OrderPaid {
            order,
            payment_channel: "card".into(),
            payment_id: "pay_1".into(),
            paid_at: Utc::now(),
        });
        assert_eq!(OrderEvent::decode(&paid.encode()).unwrap(), paid);
        assert_eq!(paid.key(), "42");
    }

    #[test]
    fn every_event_type_is_documented_with_its_version() {
        let docs = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.md"));
        for name in [
            "OrderCreated",
            "OrderPaid",
            "OrderCancelled",
            "RefundRequired",
            "OrderStatusChanged",
            "RefundCompleted",
            "AfterSaleChanged",
            "OrderReaddressed",
        ] {
            assert!(docs.contains(&format!("## `{name}` (v{SCHEMA_VERSION})")), "{name} is not in docs/events.md");
        }
    }

    #[test]
    fn refuses_garbage_and_unknown_versions() {
        assert!(matches!(OrderEvent::decode(b"not json"), Err(DecodeError::Json(_))));
        assert!(matches!(OrderEvent::decode(br#"{"v":1,"type":"Nope"}"#), Err(DecodeError::Json(_))));
        let mut json: serde_json::Value = serde_json::from_slice(&created().encode()).unwrap();
        json["v"] = 2.into();
        let bytes = serde_json::to_vec(&json).unwrap();
        assert!(matches!(OrderEvent::decode(&bytes), Err(DecodeError::Version(2))));
    }
}
