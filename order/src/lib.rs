//! The flash-sale order domain, shared by the gateway and the settler. No I/O.
//!
//! Layout:
//! - [`id`]: 64-bit time-ordered order ids that name their shard bucket.
//! - [`shard`]: user id → logical bucket → physical shard.
//! - [`request`]: the place-order request and its validation; [`cart`]:
//!   the checkout request's.
//! - [`event`]: the events carried on the `order-events` topic.
//! - [`status`]: the statuses an order moves through.
//! - [`lifecycle`]: the state machine: (status, action, actor) → next status.
//! - [`after_sale`]: after-sale requests' own state machine.
//! - [`allocation`]: a cart's discounts spread over its lines, in cents.
//! - [`sale`]: a sale's window and its deduction strategy; [`fallback`]:
//!   an ordinary sale's kind and the orders its database fallback takes.
//! - [`scheduling`]: which warehouses serve a buyer's region.
//! - [`sale_stats`]: a SKU's sale figures, counted from its events.
//! - [`splitting`]: a cart's lines into packages (sub-orders), and freight.
//! - [`checkout`]: a cart's plan: its catalogue terms, discounts, packages,
//!   freight, and the items reserved and paid like single orders.

pub mod after_sale;
pub mod allocation;
pub mod cart;
pub mod checkout;
pub mod event;
pub mod fallback;
pub mod id;
pub mod lifecycle;
pub mod request;
pub mod sale;
pub mod sale_stats;
pub mod scheduling;
pub mod shard;
pub mod splitting;
pub mod status;
