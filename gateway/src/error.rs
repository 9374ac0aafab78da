//! Every refusal the API gives, and its mapping to HTTP in one place: the
//! workflows' and traffic control's errors become an [`ApiError`] here and
//! nowhere else.

use hyper::StatusCode;
use order::after_sale;
use order::id::OrderId;
use order::lifecycle::Action;
use order::status::OrderStatus;
use serde_json::{json, Value};

use order::request::RequestError;

use crate::auth::AuthError;
use crate::outcomes::{CheckoutError, OrderError, PlaceError, SettleError};
use crate::refusal::{Dependency, Refusal};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("missing or wrong admin token")]
    Unauthorized,
    /// A buyer route without a valid buyer token (or trusted user header).
    #[error("{0}")]
    Unauthenticated(String),
    /// The body names a user other than the authenticated buyer.
    #[error("user_id is not the authenticated buyer")]
    UserMismatch,
    #[error("no such route")]
    NotFound,
    #[error("unknown sku")]
    UnknownSku,
    #[error("unknown order")]
    UnknownOrder,
    #[error("sold out")]
    SoldOut,
    #[error("only {available} units left")]
    InsufficientStock { available: i64 },
    #[error("purchase limit exceeded")]
    PurchaseLimitExceeded,
    #[error("too many orders cancelled or left unpaid lately; try again later")]
    CoolingDown { retry_after_secs: u64 },
    #[error("an earlier request with this key is still being processed")]
    InProgress { order_id: OrderId },
    #[error("the order is no longer pending payment")]
    NotPending { status: Option<OrderStatus> },
    #[error("{} is not allowed while the order is {status}", .action.as_str())]
    InvalidTransition { status: OrderStatus, action: Action },
    #[error("the warehouse refused: the order is {state} there")]
    WarehouseRefused { state: String },
    #[error("no stuck refund with this id")]
    RefundNotStuck,
    #[error("{} is not allowed for an after-sale request in {}", .action.as_str(), .status.as_str())]
    InvalidAfterSaleTransition { status: after_sale::Status, action: after_sale::Action },
    #[error("no such after-sale request while the order is {status}")]
    AfterSaleNotAllowed { status: OrderStatus },
    #[error("{left} units are left to return; a refund before shipment is of the whole order")]
    NotReturnable { left: u32 },
    #[error("missing or wrong notification signature")]
    BadSignature,
    #[error("paid amount {paid} differs from the order's {expected}")]
    AmountMismatch { paid: i64, expected: i64 },
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Refused(Refusal),
    #[error("the sale has orders outstanding; change it with PATCH instead of replacing it")]
    SaleBusy { reservations: u64, outbox: u64, unsettled_payments: u64 },
    #[error("only {stock} units are still for sale; reserved and sold units cannot be removed")]
    TooFewUnits { stock: i64 },
    #[error("the sale's total is {total} now, not if_total: nothing was changed")]
    SaleChanged { total: i64 },
    #[error("{} unavailable", .0.as_str())]
    Unavailable(Dependency),
    /// The order was reserved and sent, but the broker's answer did not
    /// come in time: it may exist. Retrying with the same key is safe.
    #[error("the broker did not confirm the order in time; retry with the same Idempotency-Key")]
    OutcomeUnknown { order_id: OrderId, retry_after_secs: u64 },
    /// A checkout's own refusals (those naming a SKU, a coupon's).
    #[error(transparent)]
    Checkout(CheckoutError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized | Self::Unauthenticated(_) | Self::BadSignature => StatusCode::UNAUTHORIZED,
            Self::UserMismatch | Self::CoolingDown { .. } => StatusCode::FORBIDDEN,
            Self::NotFound | Self::UnknownSku | Self::UnknownOrder => StatusCode::NOT_FOUND,
            Self::SoldOut
            | Self::InsufficientStock { .. }
            | Self::PurchaseLimitExceeded
            | Self::InProgress { .. }
            | Self::NotPending { .. }
            | Self::InvalidTransition { .. }
            | Self::WarehouseRefused { .. }
            | Self::RefundNotStuck
            | Self::InvalidAfterSaleTransition { .. }
            | Self::AfterSaleNotAllowed { .. }
            | Self::NotReturnable { .. }
            | Self::SaleBusy { .. }
            | Self::TooFewUnits { .. }
            | Self::SaleChanged { .. } => StatusCode::CONFLICT,
            Self::AmountMismatch { .. } => StatusCode::BAD_REQUEST,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) | Self::OutcomeUnknown { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Checkout(err) => match err {
                CheckoutError::UnknownSku { .. } | CheckoutError::UnknownCoupon => StatusCode::NOT_FOUND,
                CheckoutError::CouponNotYours => StatusCode::FORBIDDEN,
                CheckoutError::TooLarge { .. } | CheckoutError::BelowMinimumSpend { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                CheckoutError::OutcomeUnknown { .. } => StatusCode::SERVICE_UNAVAILABLE,
                CheckoutError::Refused(_)
                | CheckoutError::CoolingDown { .. }
                | CheckoutError::KeyReused
                | CheckoutError::InProgress { .. }
                | CheckoutError::Unavailable(_) => ApiError::from(err.clone()).status(),
                _ => StatusCode::CONFLICT,
            },
            Self::Refused(refusal) => match refusal {
                Refusal::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                Refusal::Denied { .. } => StatusCode::FORBIDDEN,
                Refusal::SaleNotStarted { .. } | Refusal::SaleEnded => StatusCode::CONFLICT,
                Refusal::Overloaded | Refusal::BreakerOpen(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    /// The JSON body: always an `error` code, plus what helps the client act.
    pub fn body(&self) -> Value {
        match self {
            Self::Invalid(detail) => json!({"error": "invalid_request", "detail": detail}),
            Self::UnsupportedMediaType => {
                json!({"error": "unsupported_media_type", "detail": self.to_string()})
            }
            Self::PayloadTooLarge { .. } => json!({"error": "payload_too_large", "detail": self.to_string()}),
            Self::RequestTimeout => json!({"error": "request_timeout", "detail": self.to_string()}),
            Self::MethodNotAllowed { .. } => json!({"error": "method_not_allowed"}),
            Self::Unauthorized => json!({"error": "unauthorized"}),
            Self::Unauthenticated(detail) => json!({"error": "unauthenticated", "detail": detail}),
            Self::UserMismatch => json!({"error": "user_mismatch", "detail": self.to_string()}),
            Self::NotFound => json!({"error": "not_found"}),
            Self::UnknownSku => json!({"error": "unknown_sku"}),
            Self::UnknownOrder => json!({"error": "unknown_order"}),
            Self::SoldOut => json!({"error": "sold_out"}),
            Self::InsufficientStock { available } => {
                json!({"error": "insufficient_stock", "available": available})
            }
            Self::PurchaseLimitExceeded => json!({"error": "purchase_limit_exceeded"}),
            Self::CoolingDown { retry_after_secs } => json!({
                "error": "cooling_down",
                "retry_after_secs": retry_after_secs,
                "detail": self.to_string(),
            }),
            Self::InProgress { order_id } => json!({"error": "request_in_progress", "order_id": order_id}),
            Self::IdempotencyKeyReused => json!({"error": "idempotency_key_reused"}),
            Self::NotPending { status } => json!({"error": "order_not_pending", "status": status}),
            Self::InvalidTransition { status, action } => {
                json!({"error": "invalid_transition", "status": status, "action": action, "detail": self.to_string()})
            }
            Self::RefundNotStuck => json!({"error": "refund_not_stuck", "detail": self.to_string()}),
            Self::InvalidAfterSaleTransition { status, action } => {
                json!({"error": "invalid_transition", "status": status, "action": action, "detail": self.to_string()})
            }
            Self::AfterSaleNotAllowed { status } => {
                json!({"error": "after_sale_not_allowed", "status": status, "detail": self.to_string()})
            }
            Self::NotReturnable { left } => {
                json!({"error": "not_returnable", "left": left, "detail": self.to_string()})
            }
            Self::WarehouseRefused { state } => {
                json!({"error": "warehouse_refused", "state": state, "detail": self.to_string()})
            }
            Self::BadSignature => json!({"error": "bad_signature"}),
            Self::AmountMismatch { paid, expected } => {
                json!({"error": "amount_mismatch", "paid_cents": paid, "expected_cents": expected})
            }
            Self::Refused(refusal) => match refusal {
                Refusal::RateLimited { scope, .. } => json!({"error": "rate_limited", "scope": scope.as_str()}),
                Refusal::Denied { .. } => json!({"error": "forbidden"}),
                Refusal::Overloaded => json!({"error": "overloaded"}),
                Refusal::SaleNotStarted { starts_at } => json!({"error": "sale_not_started", "starts_at": starts_at}),
                Refusal::SaleEnded => json!({"error": "sale_ended"}),
                Refusal::BreakerOpen(dependency) => json!({"error": "unavailable", "dependency": dependency.as_str()}),
            },
            Self::SaleBusy { reservations, outbox, unsettled_payments } => json!({
                "error": "sale_busy",
                "reservations": reservations,
                "unsent_cancellations": outbox,
                "unsettled_payments": unsettled_payments,
                "detail": self.to_string(),
            }),
            Self::TooFewUnits { stock } => {
                json!({"error": "too_few_units", "stock": stock, "detail": self.to_string()})
            }
            Self::SaleChanged { total } => {
                json!({"error": "sale_changed", "total": total, "detail": self.to_string()})
            }
            Self::Unavailable(dependency) => {
                json!({"error": "unavailable", "dependency": dependency.as_str()})
            }
            Self::OutcomeUnknown { order_id, .. } => json!({
                "error": "outcome_unknown",
                "dependency": Dependency::Kafka.as_str(),
                "order_id": order_id,
                "detail": self.to_string(),
            }),
            Self::Checkout(err) => {
                let detail = err.to_string();
                match err {
                    CheckoutError::UnknownSku { sku } => json!({"error": "unknown_sku", "sku": sku}),
                    CheckoutError::OutOfStock { sku, available: 0 } => json!({"error": "sold_out", "sku": sku}),
                    CheckoutError::OutOfStock { sku, available } => {
                        json!({"error": "insufficient_stock", "sku": sku, "available": available})
                    }
                    CheckoutError::LimitExceeded { sku } => json!({"error": "purchase_limit_exceeded", "sku": sku}),
                    CheckoutError::OutsideWindow { sku, refusal: Refusal::SaleNotStarted { starts_at } } => {
                        json!({"error": "sale_not_started", "sku": sku, "starts_at": starts_at})
                    }
                    CheckoutError::OutsideWindow { sku, .. } => json!({"error": "sale_ended", "sku": sku}),
                    CheckoutError::PriceChanged { sku, price_cents } => {
                        json!({"error": "price_changed", "sku": sku, "price_cents": price_cents, "detail": detail})
                    }
                    CheckoutError::TooLarge { sku } => json!({"error": "item_too_large", "sku": sku, "detail": detail}),
                    CheckoutError::UnknownCoupon => json!({"error": "unknown_coupon"}),
                    CheckoutError::CouponNotYours => json!({"error": "coupon_not_yours", "detail": detail}),
                    CheckoutError::CouponUsed => json!({"error": "coupon_used", "detail": detail}),
                    CheckoutError::BelowMinimumSpend { left_cents } => {
                        json!({"error": "below_minimum_spend", "left_cents": left_cents, "detail": detail})
                    }
                    CheckoutError::Cancelled => json!({"error": "checkout_cancelled", "detail": detail}),
                    CheckoutError::OutcomeUnknown { order_id, .. } => json!({
                        "error": "outcome_unknown",
                        "dependency": Dependency::Kafka.as_str(),
                        "order_id": order_id,
                        "detail": detail,
                    }),
                    // Answered as the single-order refusals are.
                    other => ApiError::from(other.clone()).body(),
                }
            }
        }
    }

    /// Seconds for a `Retry-After` header, where retrying later makes sense.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Refused(Refusal::RateLimited { retry_after_secs, .. })
            | Self::OutcomeUnknown { retry_after_secs, .. }
            | Self::Checkout(CheckoutError::OutcomeUnknown { retry_after_secs, .. })
            | Self::CoolingDown { retry_after_secs } => Some(*retry_after_secs),
            Self::Unavailable(_)
            | Self::InProgress { .. }
            | Self::Refused(Refusal::Overloaded | Refusal::BreakerOpen(_)) => Some(1),
            _ => None,
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(err: RequestError) -> Self {
        match err {
            RequestError::Invalid(invalid) => Self::Invalid(invalid.0),
            RequestError::OtherUser => Self::UserMismatch,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        Self::Unauthenticated(err.to_string())
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<PlaceError> for ApiError {
    fn from(err: PlaceError) -> Self {
        match err {
            PlaceError::Refused(refusal) => Self::Refused(refusal),
            PlaceError::UnknownSku => Self::UnknownSku,
            PlaceError::SoldOut => Self::SoldOut,
            PlaceError::InsufficientStock { available } => Self::InsufficientStock { available },
            PlaceError::LimitExceeded => Self::PurchaseLimitExceeded,
            PlaceError::CoolingDown { retry_after_secs } => Self::CoolingDown { retry_after_secs },
            PlaceError::KeyReused => Self::IdempotencyKeyReused,
            PlaceError::InProgress { order_id } => Self::InProgress { order_id },
            PlaceError::Unavailable(dependency) => Self::Unavailable(dependency),
            PlaceError::OutcomeUnknown { order_id, retry_after_secs } => {
                Self::OutcomeUnknown { order_id, retry_after_secs }
            }
        }
    }
}

impl From<CheckoutError> for ApiError {
    fn from(err: CheckoutError) -> Self {
        match err {
            CheckoutError::Refused(refusal) => Self::Refused(refusal),
            CheckoutError::KeyReused => Self::IdempotencyKeyReused,
            CheckoutError::CoolingDown { retry_after_secs } => Self::CoolingDown { retry_after_secs },
            CheckoutError::InProgress { order_id } => Self::InProgress { order_id },
            CheckoutError::Unavailable(dependency) => Self::Unavailable(dependency),
            other => Self::Checkout(other),
        }
    }
}

impl From<SettleError> for ApiError {
    fn from(err: SettleError) -> Self {
        match err {
            SettleError::Unavailable(dependency) => Self::Unavailable(dependency),
            SettleError::AmountMismatch { paid, expected } => Self::AmountMismatch { paid, expected },
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(err: OrderError) -> Self {
        match err {
            OrderError::UnknownOrder => Self::UnknownOrder,
            OrderError::NotPending { status } => Self::NotPending { status },
            OrderError::InvalidTransition { status, action } => Self::InvalidTransition { status, action },
            OrderError::WarehouseRefused { state } => Self::WarehouseRefused { state },
            OrderError::InvalidAfterSaleTransition { status, action } => {
                Self::InvalidAfterSaleTransition { status, action }
            }
            OrderError::AfterSaleNotAllowed { status } => Self::AfterSaleNotAllowed { status },
            OrderError::NotReturnable { left } => Self::NotReturnable { left },
            OrderError::Unavailable(dependency) => Self::Unavailable(dependency),
        }
    }
}
