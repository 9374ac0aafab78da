//! The payment channel, as the gateway sees it. A simulator of one is the
//! `paysim` crate.
//!
//! Layout:
//! - [`messages`]: what goes over the wire: create, query, notification.
//! - [`signature`]: HMAC-SHA256 over the raw body of notifications and lookup answers.
//! - [`client`]: the [`client::PaymentChannel`] trait and its HTTP implementation.

pub mod client;
pub mod messages;
pub mod signature;

/// The header carrying the signature of a notification or a lookup answer:
/// hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-pay-signature";
