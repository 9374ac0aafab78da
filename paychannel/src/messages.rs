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
