//! The orders database: one MySQL database per shard, each holding the
//! orders of the users whose bucket maps to it. Every read and write of an
//! order goes through this crate, so the schema has one Rust mirror.
//!
//! Layout:
//! - [`shards`]: the pools, routing by user and order id, migrations,
//!   creating and dropping the databases.
//! - [`orders`]: the order rows: the column list, inserts, lookups, counts.
//! - [`moves`]: the one writer of an order's moves (conditional update,
//!   time column, history row, outbox row) and the moves that start in
//!   MySQL (fulfilment, cancellation after payment, auto-completion).
//! - [`transitions`]: the events that move an order (paid, cancelled,
//!   refund, replayed moves), each made through [`moves`].
//! - [`outbox`]: the events of moves made in MySQL, waiting for the relay.
//! - [`refunds`]: refund rows, their attempts and jobs, settling one once.
//! - [`after_sales`]: after-sale requests and their moves, refunds included.
//! - [`queries`]: order lists paged by a cursor on the order id.
//! - [`checkouts`]: cart checkouts: the parent, lines, sub-orders and items.
//! - [`points`]: member points: balances, grants, what checkouts spent on
//!   their items and what came back.
//! - [`inventory`]: an ordinary sale's database share; [`fallback_orders`]:
//!   the orders it took while Redis was down, until Redis adopts them.

pub mod after_sales;
pub mod checkouts;
pub mod fallback_orders;
pub mod inventory;
pub mod moves;
pub mod orders;
pub mod outbox;
pub mod points;
pub mod queries;
pub mod refunds;
pub mod shards;
pub mod transitions;

pub use orders::StoredOrder;
pub use shards::ShardPools;
