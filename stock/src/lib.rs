//! The sales in Redis. Redis holds the live stock of every sale; the Lua
//! scripts in `stock/lua/` change it atomically, one script per decision:
//! reserve, release (unqueued order), acknowledge (the broker has it),
//! cancel (buyer), sweep (timeout), confirm (payment), load, update and
//! repair a sale. Every move of units goes through one Lua library, the
//! unit ledger (`stock/lua/lib/units.lua`), so `stock + reserved + sold`
//! equals the units loaded at every instant ([`units`] says it in Rust).
//!
//! Layout:
//! - [`config`]: where Redis is; [`error`]: why a call failed.
//! - [`keys`]: the key names, and each script's key list as its header gives it.
//! - [`scripts`]: the Lua sources, embedded; [`units`]: a sale's four counts
//!   and their invariant; [`units_back`]: the ledger's channel saying which
//!   SKUs had units come back on sale.
//! - [`requests`]: what callers hand to the scripts; [`replies`]: what the
//!   scripts answer, typed and parsed; [`records`]: the records they store.
//! - [`redis`]: the connection every store shares. One store per job, each
//!   with its own keys: [`store`] ([`SaleStore`]: a sale's units and
//!   reservations) with [`sweeps`] (the sales with work pending, their
//!   sweeps and outboxes), [`tcc`] (a cart checkout's Try and Cancel per SKU)
//!   [`warehouses`] (regional stock: a sale's warehouses) and [`adoption`]
//!   (an order the database fallback took, handed to Redis);
//!   [`order_cache`] ([`OrderCache`]: the hot-order cache); [`checkouts`]
//!   ([`Checkouts`]: a checkout's records in the buyer's slot) with
//!   [`catalogue`] (what a checkout prices with); [`payment_lookups`]
//!   ([`PaymentLookups`]: the payments the channel is to be asked about);
//!   [`sale_stats`] ([`SaleFigures`]: the live sale figures); [`leases`]
//!   ([`NodeLeases`], [`Strikes`]).

pub mod adoption;
pub mod catalogue;
pub mod checkouts;
pub mod config;
pub mod error;
pub mod keys;
pub mod leases;
pub mod order_cache;
pub mod payment_lookups;
pub mod records;
pub mod redis;
pub mod replies;
pub mod requests;
pub mod sale_stats;
pub mod scripts;
pub mod store;
pub mod sweeps;
pub mod tcc;
pub mod units;
pub mod units_back;
pub mod warehouses;

pub use adoption::Adopted;
pub use checkouts::{CheckoutRecord, Checkouts, CouponHolder};
pub use config::RedisConfig;
pub use error::StoreError;
pub use leases::{NodeLeases, Strikes};
pub use order_cache::OrderCache;
pub use payment_lookups::{PaymentLookups, PaymentQuery};
pub use records::{IdempotencyRecord, ReservationRecord};
pub use redis::Redis;
pub use replies::{
    Cancellation, Confirmation, Readdressed, Release, Repair, Reservation, SaleLoad, SaleStatus, SaleUpdate, Swept,
    UnitsReturned, WarehouseChanged, WarehouseStatus,
};
pub use requests::{
    Acknowledgement, ChannelShare, ConfirmWindows, ReserveRequest, SaleChange, SaleTerms, Strike, WarehouseChange,
    WarehouseUnits, ANY_WAREHOUSE,
};
pub use sale_stats::SaleFigures;
pub use scripts::RESERVE_LUA;
pub use store::SaleStore;
pub use tcc::{CancelledItem, TccItem, Tried, TryRequest};
pub use units::Units;
pub use units_back::UnitsBack;
pub use warehouses::WarehouseChoice;
