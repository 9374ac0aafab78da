//! The payment channel, as the gateway sees it, and a simulator of one.
//!
//! Layout:
//! - [`messages`]: what goes over the wire: create, query, notification.
//! - [`signature`]: HMAC-SHA256 over the raw body of notifications and lookup answers.
//! - [`client`]: the [`client::PaymentChannel`] trait and its HTTP implementation.
//! - [`simulator`]: a channel that behaves like WeChat Pay / Alipay do:
//!   signed asynchronous notifications retried on a back-off schedule, a
//!   query API, and faults on request (drop, delay, duplicate).

pub mod client;
pub mod messages;
pub mod signature;
pub mod simulator;

/// The header carrying the signature of a notification or a lookup answer:
/// hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-pay-signature";
