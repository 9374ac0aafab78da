//! The channel's API messages (JSON).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Create a payment for a merchant's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePayment {
    /// The merchant's order id; one payment per order.
    pub merchant_order_id: String,
    pub amount_cents: i64,
    /// Echoed back in notifications and queries (the gateway puts the SKU here).
    pub attach: String,
    /// Where the channel sends the asynchronous notification.
    pub notify_url: String,
}

/// What the shopper's device needs to pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedPayment {
    pub payment_id: String,
    pub pay_url: String,
    pub qr_payload: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Created, not paid yet.
    NotPay,
    Success,
}

/// A payment's state: the body of a notification and of a query's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentState {
    pub payment_id: String,
    pub merchant_order_id: String,
    pub attach: String,
    pub amount_cents: i64,
    pub status: PaymentStatus,
    pub paid_at: Option<DateTime<Utc>>,
}

/// How the simulator notifies about one completed payment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyPlan {
    /// Never send the notification (a lost callback).
    pub drop: bool,
    /// Wait this long before the first attempt, ms.
    pub delay_ms: u64,
    /// Send this many copies at once (at least 1).
    pub copies: u32,
}

/// Give back (part of) a payment. One refund per `refund_id`: a repeat
/// returns the first's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRefund {
    pub refund_id: String,
    pub payment_id: String,
    pub merchant_order_id: String,
    pub amount_cents: i64,
    /// Where the channel sends the refund's asynchronous notification.
    pub notify_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    /// Accepted; the money is on its way back.
    Processing,
    Success,
    /// The channel gave up on it (the payment cannot take it back).
    Failed,
}

/// A refund's state: the body of its notification and of a query's answer,
/// both signed like a payment's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundState {
    pub refund_id: String,
    pub payment_id: String,
    pub merchant_order_id: String,
    pub amount_cents: i64,
    pub status: RefundStatus,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Faults the simulator injects into the payment calls it answers (creating
/// one, asking about one), until changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentFaults {
    /// Fail every n-th call with a 500 (0: none; 10: a tenth of them).
    pub fail_every: u32,
    /// Answer each call this much later, ms.
    pub delay_ms: u64,
}

/// Faults the simulator injects into the refunds it is asked for next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefundFaults {
    /// Refuse this many refund requests (500) before taking one.
    pub fail_first: u32,
    /// Send no notification for the next refunds taken (their outcome is
    /// only found by asking).
    pub drop_notifications: u32,
}
