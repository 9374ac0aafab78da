//! How each refusal is answered, said by the error itself: its class (the
//! HTTP layer turns a class into a status in one line each), its `error`
//! code and the fields that help the client act. A new refusal is one
//! variant of its workflow's error and one arm here; `error.rs` wraps the
//! errors without naming their variants again.

use serde_json::{json, Value};

use ordercenter::outcomes::{CheckoutError, OrderError, PaymentError, PlaceError};
use ordercenter::refusal::{Dependency, Refusal};

/// What kind of refusal it is, whatever the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The request itself is wrong.
    Invalid,
    Unauthenticated,
    Forbidden,
    NotFound,
    /// The request is fine but the state of things refuses it.
    Conflict,
    /// Understood, but cannot be done as asked.
    Unprocessable,
    TooMany,
    /// A dependency failed or the instance is overloaded: retry later.
    Unavailable,
}

/// How an error is answered.
pub trait Answer: std::fmt::Display {
    fn class(&self) -> Class;
    /// The `error` field of the JSON body.
    fn code(&self) -> &'static str;
    /// The body's other fields (an object).
    fn fields(&self) -> Value {
        json!({})
    }
    /// Seconds for a `Retry-After` header, where retrying later makes sense.
    fn retry_after_secs(&self) -> Option<u64> {
        None
    }
}

impl Answer for Dependency {
    fn class(&self) -> Class {
        Class::Unavailable
    }
    fn code(&self) -> &'static str {
        "unavailable"
    }
    fn fields(&self) -> Value {
        json!({"dependency": self.as_str()})
    }
    fn retry_after_secs(&self) -> Option<u64> {
        Some(1)
    }
}

impl Answer for Refusal {
    fn class(&self) -> Class {
        match self {
            Self::RateLimited { .. } => Class::TooMany,
            Self::Denied { .. } => Class::Forbidden,
            Self::SaleNotStarted { .. } | Self::SaleEnded => Class::Conflict,
            Self::Overloaded | Self::BreakerOpen(_) => Class::Unavailable,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Denied { .. } => "forbidden",
            Self::Overloaded => "overloaded",
            Self::SaleNotStarted { .. } => "sale_not_started",
            Self::SaleEnded => "sale_ended",
            Self::BreakerOpen(_) => "unavailable",
        }
    }
    fn fields(&self) -> Value {
        match self {
            Self::RateLimited { scope, .. } => json!({"scope": scope.as_str()}),
            Self::SaleNotStarted { starts_at } => json!({"starts_at": starts_at}),
            Self::BreakerOpen(dependency) => dependency.fields(),
            Self::Denied { .. } | Self::Overloaded | Self::SaleEnded => json!({}),
        }
    }
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
            Self::Overloaded | Self::BreakerOpen(_) => Some(1),
            Self::Denied { .. } | Self::SaleNotStarted { .. } | Self::SaleEnded => None,
        }
    }
}

/// The broker did not confirm an order or a checkout in time: it may exist.
fn outcome_unknown(order_id: &impl serde::Serialize, detail: String) -> Value {
    json!({"dependency": Dependency::Kafka.as_str(), "order_id": order_id, "detail": detail})
}

impl Answer for PlaceError {
    fn class(&self) -> Class {
        match self {
            Self::Refused(refusal) => refusal.class(),
            Self::Unavailable(dependency) => dependency.class(),
            Self::UnknownSku => Class::NotFound,
            Self::CoolingDown { .. } => Class::Forbidden,
            Self::KeyReused => Class::Unprocessable,
            Self::OutcomeUnknown { .. } => Class::Unavailable,
            Self::SoldOut
            | Self::InsufficientStock { .. }
            | Self::OpenOrdersCapped { .. }
            | Self::NoWarehouse
            | Self::LimitExceeded
            | Self::ChannelShareTaken { .. }
            | Self::InProgress { .. } => Class::Conflict,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            Self::Refused(refusal) => refusal.code(),
            Self::Unavailable(dependency) => dependency.code(),
            Self::UnknownSku => "unknown_sku",
            Self::SoldOut => "sold_out",
            Self::InsufficientStock { .. } => "insufficient_stock",
            Self::OpenOrdersCapped { .. } => "open_orders_capped",
            Self::NoWarehouse => "no_warehouse",
            Self::LimitExceeded => "purchase_limit_exceeded",
            Self::ChannelShareTaken { .. } => "channel_share_taken",
            Self::CoolingDown { .. } => "cooling_down",
            Self::KeyReused => "idempotency_key_reused",
            Self::InProgress { .. } => "request_in_progress",
            Self::OutcomeUnknown { .. } => "outcome_unknown",
        }
    }
    fn fields(&self) -> Value {
        match self {
            Self::Refused(refusal) => refusal.fields(),
            Self::Unavailable(dependency) => dependency.fields(),
            Self::InsufficientStock { available } => json!({"available": available}),
            Self::OpenOrdersCapped { available } => json!({"available": available, "detail": self.to_string()}),
            Self::ChannelShareTaken { held } => json!({"held": held, "detail": self.to_string()}),
            Self::CoolingDown { retry_after_secs } => {
                json!({"retry_after_secs": retry_after_secs, "detail": self.to_string()})
            }
            Self::InProgress { order_id } => json!({"order_id": order_id}),
            Self::OutcomeUnknown { order_id, .. } => outcome_unknown(order_id, self.to_string()),
            Self::NoWarehouse => json!({"detail": self.to_string()}),
            Self::UnknownSku | Self::SoldOut | Self::LimitExceeded | Self::KeyReused => json!({}),
        }
    }
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Refused(refusal) => refusal.retry_after_secs(),
            Self::Unavailable(dependency) => dependency.retry_after_secs(),
            Self::CoolingDown { retry_after_secs } | Self::OutcomeUnknown { retry_after_secs, .. } => {
                Some(*retry_after_secs)
            }
            Self::InProgress { .. } => Some(1),
            Self::OpenOrdersCapped { .. } => Some(OPEN_ORDERS_CAPPED_RETRY_SECS),
            _ => None,
        }
    }
}

/// When to try a sale whose open orders are capped again: orders awaiting
/// payment are paid or expire within the payment window, many of them soon.
const OPEN_ORDERS_CAPPED_RETRY_SECS: u64 = 5;

impl Answer for CheckoutError {
    fn class(&self) -> Class {
        match self {
            Self::Refused(refusal) => refusal.class(),
            Self::Unavailable(dependency) => dependency.class(),
            Self::UnknownSku { .. } | Self::UnknownCoupon => Class::NotFound,
            Self::CouponNotYours | Self::CoolingDown { .. } => Class::Forbidden,
            Self::TooLarge { .. } | Self::BelowMinimumSpend { .. } | Self::KeyReused => Class::Unprocessable,
            Self::OutcomeUnknown { .. } => Class::Unavailable,
            Self::OutOfStock { .. }
            | Self::OpenOrdersCapped { .. }
            | Self::NoWarehouse { .. }
            | Self::LimitExceeded { .. }
            | Self::ChannelShareTaken { .. }
            | Self::OutsideWindow { .. }
            | Self::PriceChanged { .. }
            | Self::CouponUsed
            | Self::InsufficientPoints { .. }
            | Self::Cancelled
            | Self::InProgress { .. } => Class::Conflict,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            Self::Refused(refusal) | Self::OutsideWindow { refusal, .. } => refusal.code(),
            Self::Unavailable(dependency) => dependency.code(),
            Self::UnknownSku { .. } => "unknown_sku",
            Self::OutOfStock { available: 0, .. } => "sold_out",
            Self::OutOfStock { .. } => "insufficient_stock",
            Self::OpenOrdersCapped { .. } => "open_orders_capped",
            Self::NoWarehouse { .. } => "no_warehouse",
            Self::CoolingDown { .. } => "cooling_down",
            Self::LimitExceeded { .. } => "purchase_limit_exceeded",
            Self::ChannelShareTaken { .. } => "channel_share_taken",
            Self::PriceChanged { .. } => "price_changed",
            Self::TooLarge { .. } => "item_too_large",
            Self::UnknownCoupon => "unknown_coupon",
            Self::CouponNotYours => "coupon_not_yours",
            Self::CouponUsed => "coupon_used",
            Self::InsufficientPoints { .. } => "insufficient_points",
            Self::BelowMinimumSpend { .. } => "below_minimum_spend",
            Self::Cancelled => "checkout_cancelled",
            Self::KeyReused => "idempotency_key_reused",
            Self::InProgress { .. } => "request_in_progress",
            Self::OutcomeUnknown { .. } => "outcome_unknown",
        }
    }
    fn fields(&self) -> Value {
        let detail = self.to_string();
        match self {
            Self::Refused(refusal) => refusal.fields(),
            Self::Unavailable(dependency) => dependency.fields(),
            Self::UnknownSku { sku } | Self::OutOfStock { sku, available: 0 } | Self::LimitExceeded { sku } => {
                json!({"sku": sku})
            }
            Self::OutOfStock { sku, available } => json!({"sku": sku, "available": available}),
            Self::OutsideWindow { sku, refusal: Refusal::SaleNotStarted { starts_at } } => {
                json!({"sku": sku, "starts_at": starts_at})
            }
            Self::OutsideWindow { sku, .. } => json!({"sku": sku}),
            Self::CoolingDown { retry_after_secs } => json!({"retry_after_secs": retry_after_secs, "detail": detail}),
            Self::PriceChanged { sku, price_cents } => {
                json!({"sku": sku, "price_cents": price_cents, "detail": detail})
            }
            Self::TooLarge { sku }
            | Self::OpenOrdersCapped { sku }
            | Self::NoWarehouse { sku }
            | Self::ChannelShareTaken { sku } => {
                json!({"sku": sku, "detail": detail})
            }
            Self::BelowMinimumSpend { left_cents } => json!({"left_cents": left_cents, "detail": detail}),
            Self::InsufficientPoints { balance, points } => {
                json!({"balance": balance, "points": points, "detail": detail})
            }
            Self::CouponNotYours | Self::CouponUsed | Self::Cancelled => json!({"detail": detail}),
            Self::InProgress { order_id } => json!({"order_id": order_id}),
            Self::OutcomeUnknown { order_id, .. } => outcome_unknown(order_id, detail),
            Self::UnknownCoupon | Self::KeyReused => json!({}),
        }
    }
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Refused(refusal) => refusal.retry_after_secs(),
            Self::Unavailable(dependency) => dependency.retry_after_secs(),
            Self::CoolingDown { retry_after_secs } | Self::OutcomeUnknown { retry_after_secs, .. } => {
                Some(*retry_after_secs)
            }
            Self::InProgress { .. } => Some(1),
            Self::OpenOrdersCapped { .. } => Some(OPEN_ORDERS_CAPPED_RETRY_SECS),
            _ => None,
        }
    }
}

impl Answer for OrderError {
    fn class(&self) -> Class {
        match self {
            Self::Unavailable(dependency) => dependency.class(),
            Self::UnknownOrder => Class::NotFound,
            Self::NotPending { .. }
            | Self::InvalidTransition { .. }
            | Self::InvalidAfterSaleTransition { .. }
            | Self::AfterSaleNotAllowed { .. }
            | Self::NotReturnable { .. }
            | Self::WarehouseRefused { .. }
            | Self::NoWarehouse
            | Self::CartItem
            | Self::NotYetAccepted => Class::Conflict,
            Self::UnknownPaymentChannel => Class::Invalid,
            Self::PaymentChannelDown { .. } => Class::Unavailable,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(dependency) => dependency.code(),
            Self::UnknownOrder => "unknown_order",
            Self::NotPending { .. } => "order_not_pending",
            Self::InvalidTransition { .. } | Self::InvalidAfterSaleTransition { .. } => "invalid_transition",
            Self::AfterSaleNotAllowed { .. } => "after_sale_not_allowed",
            Self::NotReturnable { .. } => "not_returnable",
            Self::WarehouseRefused { .. } => "warehouse_refused",
            Self::NoWarehouse => "no_warehouse",
            Self::NotYetAccepted => "request_in_progress",
            Self::CartItem => "cart_item",
            Self::UnknownPaymentChannel => "unknown_payment_channel",
            Self::PaymentChannelDown { .. } => "payment_channel_unavailable",
        }
    }
    fn fields(&self) -> Value {
        let detail = self.to_string();
        match self {
            Self::Unavailable(dependency) => dependency.fields(),
            Self::UnknownOrder => json!({}),
            Self::NotPending { status } => json!({"status": status}),
            Self::InvalidTransition { status, action } => {
                json!({"status": status, "action": action, "detail": detail})
            }
            Self::InvalidAfterSaleTransition { status, action } => {
                json!({"status": status, "action": action, "detail": detail})
            }
            Self::AfterSaleNotAllowed { status } => json!({"status": status, "detail": detail}),
            Self::NotReturnable { left } => json!({"left": left, "detail": detail}),
            Self::WarehouseRefused { state } => json!({"state": state, "detail": detail}),
            Self::NoWarehouse | Self::NotYetAccepted | Self::CartItem | Self::UnknownPaymentChannel => {
                json!({"detail": detail})
            }
            Self::PaymentChannelDown { channel, available } => {
                json!({"dependency": "payment_channel", "channel": channel, "available_channels": available, "detail": detail})
            }
        }
    }
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Unavailable(dependency) => dependency.retry_after_secs(),
            Self::NotYetAccepted | Self::PaymentChannelDown { .. } => Some(1),
            _ => None,
        }
    }
}

impl Answer for PaymentError {
    fn class(&self) -> Class {
        match self {
            Self::Unavailable(dependency) => dependency.class(),
            Self::AmountMismatch { .. } => Class::Invalid,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(dependency) => dependency.code(),
            Self::AmountMismatch { .. } => "amount_mismatch",
        }
    }
    fn fields(&self) -> Value {
        match self {
            Self::Unavailable(dependency) => dependency.fields(),
            Self::AmountMismatch { paid, expected } => json!({"paid_cents": paid, "expected_cents": expected}),
        }
    }
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Unavailable(dependency) => dependency.retry_after_secs(),
            Self::AmountMismatch { .. } => None,
        }
    }
}
