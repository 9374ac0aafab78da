//! The order center: every order workflow, from a buyer's click to an
//! after-sale refund, over Redis, Kafka and MySQL. It knows nothing of
//! HTTP: the gateway's routes parse a request, call one workflow and map
//! its outcome; the answers and errors are in [`outcomes`].
//!
//! Layout, in the order imports run (each layer uses only those below it):
//! - Workflows: [`placement`] (the hot path) with [`fallback`] (an
//!   ordinary sale's orders while Redis is down) and [`adoption`] (those
//!   orders handed to Redis once it is back), [`cancellation`] (a buyer
//!   cancels, before or after paying), [`fulfilment`] (push, ship,
//!   receive), [`after_sales`] (refund-only, return, exchange requests),
//!   [`payments`] (starting and settling payments) with
//!   [`payment_starts`] (the channel a payment goes to, and its creation
//!   there), [`payment_lookups`] (asking the channel about late
//!   notifications), [`checkout`] (a cart:
//!   priced, tried SKU by SKU, accepted or cancelled) and
//!   [`checkout_payments`] (its one payment, and its cancellation),
//!   [`readdress`] (a buyer moves a pending order to another region),
//!   [`queries`] (a buyer's orders, the merchant's search over the shards);
//!   [`order_moves`] (one move of an order in its shard, as they answer it).
//! - Shared state: [`center`] (what every workflow needs, built once),
//!   [`order_views`] (an order as the API shows it, through the hot-order
//!   cache), [`replicas`] (the read replicas and whether each keeps up),
//!   [`batch`] and [`group_commit`] (one Redis script call for the requests
//!   that arrive together).
//! - Local decisions: [`breaker`] (circuit breakers around Redis and
//!   Kafka), [`rate_breaker`] (each payment channel's, counting calls),
//!   [`breakers`] (all of them, swapped whole on a reload), [`sold_out`], [`used_keys`], [`sale_windows`] and
//!   [`recent_orders`] (what is answered from memory), [`single_flight`] (one placement per key in
//!   flight), [`node_lease`] (this instance's node id, leased in Redis),
//!   [`share_lookups`] (whether a SKU has a database share, kept a few
//!   seconds);
//!   refusals and the dependency that failed are in [`refusal`].
//! - [`settings`]: the config sections the workflows read.

pub mod adoption;
pub mod after_sales;
pub mod batch;
pub mod breaker;
pub mod breakers;
pub mod cancellation;
pub mod center;
pub mod checkout;
pub mod checkout_payments;
pub mod fallback;
pub mod fulfilment;
pub mod group_commit;
pub mod node_lease;
pub mod order_moves;
pub mod order_views;
pub mod outcomes;
pub mod payment_lookups;
pub mod payment_starts;
pub mod payments;
pub mod placement;
pub mod queries;
pub mod rate_breaker;
pub mod readdress;
pub mod recent_orders;
pub mod refusal;
pub mod replicas;
pub mod sale_windows;
pub mod settings;
pub mod share_lookups;
pub mod single_flight;
pub mod sold_out;
pub mod used_keys;

pub use center::{OrderCenter, Services};
