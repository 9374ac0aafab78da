//! The partners the gateway calls: the payment channel and the warehouse.
//! A simulator of both is the `paysim` crate.
//!
//! Layout:
//! - [`messages`]: what goes over the wire: create, query, notification.
//! - [`signature`]: HMAC-SHA256 over the raw body of notifications and lookup answers.
//! - [`client`]: the [`client::PaymentChannel`] trait and its HTTP implementation.
//! - [`channels`]: the configured channels by id, their endpoints and clients.
//! - [`warehouse`]: the warehouse's client: push, ship, intercept.

pub mod channels;
pub mod client;
pub mod messages;
pub mod signature;
pub mod warehouse;

/// The header carrying the signature of a notification or a lookup answer:
/// hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-pay-signature";
