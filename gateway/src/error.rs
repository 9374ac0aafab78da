//! Every refusal the API gives, mapped to HTTP in one place: the HTTP
//! layer's own refusals are variants here, the workflows' and traffic
//! control's errors are wrapped whole, and each says how it is answered
//! ([`Answer`]); a class becomes a status in [`status_of`].

use hyper::StatusCode;
use serde_json::{json, Value};

use order::request::RequestError;

use crate::answers::{Answer, Class};
use crate::auth::AuthError;
use ordercenter::outcomes::{CheckoutError, OrderError, PaymentError, PlaceError};
use ordercenter::refusal::{Dependency, Refusal};

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
    /// An admin route's SKU has no sale.
    #[error("unknown sku")]
    UnknownSku,
    #[error("no stuck refund with this id")]
    RefundNotStuck,
    #[error("missing or wrong notification signature")]
    BadSignature,
    #[error("the sale has orders outstanding; change it with PATCH instead of replacing it")]
    SaleBusy { reservations: u64, outbox: u64, unsettled_payments: u64 },
    #[error("orders the database fallback took wait for Redis to adopt them; replace the sale once they are adopted")]
    FallbackPending { orders: i64 },
    #[error("only {stock} units are still for sale; reserved and sold units cannot be removed")]
    TooFewUnits { stock: i64 },
    #[error("the sale's total is {total} now, not if_total: nothing was changed")]
    SaleChanged { total: i64 },
    #[error("the sale is split over warehouses: add units to one with POST /admin/skus/{{sku}}/warehouses")]
    WarehouseRequired,
    #[error("the sale has no warehouse {0}")]
    UnknownWarehouse(String),
    #[error(transparent)]
    Unavailable(#[from] Dependency),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Place(#[from] PlaceError),
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error(transparent)]
    Settle(#[from] PaymentError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            _ => status_of(self.class()),
        }
    }

    /// The JSON body: always an `error` code, plus what helps the client act.
    pub fn body(&self) -> Value {
        let mut body = json!({"error": self.code()});
        if let (Value::Object(body), Value::Object(fields)) = (&mut body, self.fields()) {
            body.extend(fields);
        }
        body
    }

    /// The wrapped error that says how it is answered, if any.
    fn wrapped(&self) -> Option<&dyn Answer> {
        match self {
            Self::Unavailable(err) => Some(err),
            Self::Refused(err) => Some(err),
            Self::Place(err) => Some(err),
            Self::Checkout(err) => Some(err),
            Self::Order(err) => Some(err),
            Self::Settle(err) => Some(err),
            _ => None,
        }
    }
}

/// Each class's status.
pub fn status_of(class: Class) -> StatusCode {
    match class {
        Class::Invalid => StatusCode::BAD_REQUEST,
        Class::Unauthenticated => StatusCode::UNAUTHORIZED,
        Class::Forbidden => StatusCode::FORBIDDEN,
        Class::NotFound => StatusCode::NOT_FOUND,
        Class::Conflict => StatusCode::CONFLICT,
        Class::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        Class::TooMany => StatusCode::TOO_MANY_REQUESTS,
        Class::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl Answer for ApiError {
    fn class(&self) -> Class {
        if let Some(wrapped) = self.wrapped() {
            return wrapped.class();
        }
        match self {
            Self::Invalid(_)
            | Self::UnsupportedMediaType
            | Self::PayloadTooLarge { .. }
            | Self::RequestTimeout
            | Self::MethodNotAllowed { .. } => Class::Invalid,
            Self::Unauthorized | Self::Unauthenticated(_) | Self::BadSignature => Class::Unauthenticated,
            Self::UserMismatch => Class::Forbidden,
            Self::NotFound | Self::UnknownSku | Self::UnknownWarehouse(_) => Class::NotFound,
            Self::RefundNotStuck
            | Self::SaleBusy { .. }
            | Self::FallbackPending { .. }
            | Self::TooFewUnits { .. }
            | Self::SaleChanged { .. }
            | Self::WarehouseRequired => Class::Conflict,
            _ => unreachable!("wrapped errors answered above"),
        }
    }

    fn code(&self) -> &'static str {
        if let Some(wrapped) = self.wrapped() {
            return wrapped.code();
        }
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::UserMismatch => "user_mismatch",
            Self::NotFound => "not_found",
            Self::UnknownSku => "unknown_sku",
            Self::RefundNotStuck => "refund_not_stuck",
            Self::BadSignature => "bad_signature",
            Self::SaleBusy { .. } => "sale_busy",
            Self::FallbackPending { .. } => "fallback_orders_pending",
            Self::TooFewUnits { .. } => "too_few_units",
            Self::SaleChanged { .. } => "sale_changed",
            Self::WarehouseRequired => "warehouse_required",
            Self::UnknownWarehouse(_) => "unknown_warehouse",
            _ => unreachable!("wrapped errors answered above"),
        }
    }

    fn fields(&self) -> Value {
        if let Some(wrapped) = self.wrapped() {
            return wrapped.fields();
        }
        let detail = self.to_string();
        match self {
            Self::Invalid(detail) | Self::Unauthenticated(detail) => json!({"detail": detail}),
            Self::SaleBusy { reservations, outbox, unsettled_payments } => json!({
                "reservations": reservations,
                "unsent_cancellations": outbox,
                "unsettled_payments": unsettled_payments,
                "detail": detail,
            }),
            Self::FallbackPending { orders } => json!({"orders": orders, "detail": detail}),
            Self::TooFewUnits { stock } => json!({"stock": stock, "detail": detail}),
            Self::SaleChanged { total } => json!({"total": total, "detail": detail}),
            Self::UnsupportedMediaType
            | Self::PayloadTooLarge { .. }
            | Self::RequestTimeout
            | Self::UserMismatch
            | Self::RefundNotStuck
            | Self::WarehouseRequired => json!({"detail": detail}),
            Self::UnknownWarehouse(warehouse) => json!({"warehouse": warehouse, "detail": detail}),
            _ => json!({}),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        self.wrapped().and_then(Answer::retry_after_secs)
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
