//! What the workflows answer: a placement, a payment's settlement, a
//! buyer's action on an order, a publish; each with its own error type.
//! Apart from the workflows themselves, so that the state shared by every
//! request (`OrderCenter`) can hold them without importing the
//! workflows; `answers.rs` says how each is answered.

use chrono::{DateTime, Utc};
use order::after_sale;
use order::id::OrderId;
use order::lifecycle::{Action, Refused};
use order::status::OrderStatus;
use serde::Serialize;

use crate::refusal::{Dependency, Refusal};

/// The answer to an accepted order, the same for every repeat of its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub sku: String,
    pub qty: u32,
    pub amount_cents: i64,
    pub pay_by: DateTime<Utc>,
    /// Where its units are, for a sale split over warehouses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
}

/// The outcome of one placement, shared by the requests that raced on its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub accepted: Accepted,
    pub user_id: u64,
    /// The key had been answered before this request (a repeat).
    pub replayed: bool,
}

/// Why an order was not placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("unknown sku")]
    UnknownSku,
    #[error("sold out")]
    SoldOut,
    #[error("only {available} units left")]
    InsufficientStock { available: i64 },
    /// The sale deducts at payment and its orders awaiting payment already
    /// count for all its open-order cap allows.
    #[error("every unit left is ordered by orders awaiting payment; try again later")]
    OpenOrdersCapped { available: i64 },
    /// A sale split over warehouses: none that serves the buyer's region
    /// within the promised delivery time has the units (or is open).
    #[error("no warehouse serving this region has the units")]
    NoWarehouse,
    #[error("purchase limit exceeded")]
    LimitExceeded,
    /// The storefront channel holds or has bought all its share of the
    /// sale (`held` units).
    #[error("this channel's share of the sale is taken ({held} units)")]
    ChannelShareTaken { held: i64 },
    /// Too many orders cancelled or let expire lately.
    #[error("too many orders cancelled or left unpaid lately; try again later")]
    CoolingDown { retry_after_secs: u64 },
    /// The key belongs to another request (another buyer or quantity).
    #[error("idempotency key reused with a different request")]
    KeyReused,
    #[error("an earlier request with this key is still being processed")]
    InProgress { order_id: OrderId },
    #[error(transparent)]
    Unavailable(#[from] Dependency),
    /// The order was reserved and sent, but the broker's answer did not
    /// come in time: it may exist. Retrying with the same key is safe.
    #[error("the broker did not confirm the order in time; retry with the same Idempotency-Key")]
    OutcomeUnknown { order_id: OrderId, retry_after_secs: u64 },
}

/// The broker did not acknowledge an event. Unless `delivered_maybe` is
/// false, it may still have it (a timeout after sending), and whatever the
/// event announces must be treated as possibly done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event not acknowledged (delivered maybe: {delivered_maybe})")]
pub struct Unpublished {
    pub delivered_maybe: bool,
}

/// What became of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The order is paid: its units are sold.
    Paid,
    /// The order had been cancelled, or paid by another payment: the money goes back.
    Refunded,
    /// Seen and settled before; nothing changed.
    AlreadySettled,
}

/// The channel's `attach` of a checkout's payment (a SKU's otherwise).
pub const CHECKOUT_ATTACH: &str = "checkout";

/// What the shopper's device needs to pay.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentStarted {
    pub order_id: OrderId,
    /// The channel the payment was created at.
    pub channel: String,
    pub payment_id: String,
    pub amount_cents: i64,
    pub pay_url: String,
    pub qr_payload: String,
}

/// A successful payment the channel reported, verified.
#[derive(Debug, Clone)]
pub struct Payment {
    /// The SKU of the order's sale (the channel's `attach`), or
    /// [`CHECKOUT_ATTACH`] for a checkout's.
    pub sku: String,
    pub order_id: OrderId,
    /// The channel that reported it (its id).
    pub channel: String,
    pub payment_id: String,
    pub amount_cents: i64,
    pub paid_at: DateTime<Utc>,
}

impl Payment {
    /// Whether it pays for a checkout (its parent order) rather than an order of a sale.
    pub fn is_for_checkout(&self) -> bool {
        self.sku == CHECKOUT_ATTACH
    }
}

/// Why a payment was not settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// Redis or the broker failed: the channel retries, the poller looks again.
    #[error(transparent)]
    Unavailable(#[from] Dependency),
    /// Nothing changed; a payment of the wrong amount is not settled.
    #[error("paid amount {paid} differs from the order's {expected}")]
    AmountMismatch { paid: i64, expected: i64 },
}

impl From<Unpublished> for PaymentError {
    fn from(_: Unpublished) -> Self {
        Self::Unavailable(Dependency::Kafka)
    }
}

/// Why an action on an order (pay, cancel, push, ship, receive) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// No such order of this buyer.
    #[error("unknown order")]
    UnknownOrder,
    /// Paid or cancelled already (`None`: no longer held, status unknown here).
    #[error("the order is no longer pending payment")]
    NotPending { status: Option<OrderStatus> },
    /// The state machine's table has no such move from the order's status.
    #[error("{} is not allowed while the order is {status}", .action.as_str())]
    InvalidTransition { status: OrderStatus, action: Action },
    /// The after-sale table has no such move from the request's status.
    #[error("{} is not allowed for an after-sale request in {}", .action.as_str(), .status.as_str())]
    InvalidAfterSaleTransition { status: after_sale::Status, action: after_sale::Action },
    /// The order's status does not allow this kind of after-sale request.
    #[error("no such after-sale request while the order is {status}")]
    AfterSaleNotAllowed { status: OrderStatus },
    /// More units asked for than are left to return (or, before shipment, not the whole order).
    #[error("{left} units are left to return; a refund before shipment is of the whole order")]
    NotReturnable { left: u32 },
    /// The warehouse shipped, is picking, or intercepted the order (`state`).
    #[error("the warehouse refused: the order is {state} there")]
    WarehouseRefused { state: String },
    /// No warehouse serving the order's new region can take it.
    #[error("no warehouse serving this region has the units")]
    NoWarehouse,
    /// The order is still being accepted (the broker has not acknowledged it).
    #[error("the order is still being accepted; try again in a moment")]
    NotYetAccepted,
    /// An item of a cart ships in its package, from the warehouse chosen
    /// at checkout: it does not move on its own.
    #[error("an item of a cart ships with its package from the warehouse chosen at checkout")]
    CartItem,
    /// The buyer named a payment channel this gateway does not have.
    #[error("no such payment channel")]
    UnknownPaymentChannel,
    /// The payment channel failed the call or its breaker is open; the
    /// buyer may pay through one of `available`.
    #[error("the payment channel {channel} is unavailable")]
    PaymentChannelDown { channel: String, available: Vec<String> },
    #[error(transparent)]
    Unavailable(#[from] Dependency),
}

impl From<after_sale::Refused> for OrderError {
    fn from(refused: after_sale::Refused) -> Self {
        Self::InvalidAfterSaleTransition { status: refused.status, action: refused.action }
    }
}

impl From<Refused> for OrderError {
    fn from(refused: Refused) -> Self {
        Self::InvalidTransition { status: refused.status, action: refused.action }
    }
}

/// Why a checkout was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("no sale for {sku}")]
    UnknownSku { sku: String },
    #[error("{sku} has {available} units left")]
    OutOfStock { sku: String, available: i64 },
    #[error("every unit of {sku} left is ordered by orders awaiting payment; try again later")]
    OpenOrdersCapped { sku: String },
    /// A sale split over warehouses: none serving the cart's region is
    /// open with the units (or they went between pricing and the Try).
    #[error("no warehouse serving this region has the units of {sku}")]
    NoWarehouse { sku: String },
    #[error("too many orders cancelled or left unpaid lately; try again later")]
    CoolingDown { retry_after_secs: u64 },
    #[error("the purchase limit of {sku} would be exceeded")]
    LimitExceeded { sku: String },
    /// The storefront channel's share of `sku` is taken.
    #[error("this channel's share of {sku} is taken")]
    ChannelShareTaken { sku: String },
    #[error("{sku}: {refusal}")]
    OutsideWindow { sku: String, refusal: Refusal },
    /// The operator changed the price after the cart was priced.
    #[error("the price of {sku} changed to {price_cents}")]
    PriceChanged { sku: String, price_cents: i64 },
    /// One unit is heavier or larger than a package may be.
    #[error("one unit of {sku} exceeds the package limits")]
    TooLarge { sku: String },
    #[error("no such coupon")]
    UnknownCoupon,
    #[error("the coupon is not this buyer's")]
    CouponNotYours,
    #[error("the coupon is used, or frozen by another checkout")]
    CouponUsed,
    #[error("the cart comes to {left_cents} after promotions, below the coupon's minimum spend")]
    BelowMinimumSpend { left_cents: i64 },
    /// The buyer's balance holds fewer member points than the checkout spends.
    #[error("the checkout spends {points} points; the balance holds {balance}")]
    InsufficientPoints { balance: u64, points: u64 },
    /// The checkout was cancelled while this request tried it.
    #[error("the checkout was cancelled")]
    Cancelled,
    #[error("idempotency key reused with a different cart")]
    KeyReused,
    #[error("an earlier request with this key is still being processed")]
    InProgress { order_id: OrderId },
    #[error(transparent)]
    Unavailable(#[from] Dependency),
    #[error("the broker did not confirm checkout {order_id} in time")]
    OutcomeUnknown { order_id: OrderId, retry_after_secs: u64 },
}

/// One key per SKU and idempotency key (SKUs and keys hold no newline).
pub fn flight_key(sku: &str, key: &str) -> String {
    format!("{sku}\n{key}")
}
