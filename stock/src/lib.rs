//! The sales in Redis. Redis holds the live stock of every sale; the Lua
//! scripts in `lua/` change it atomically, one script per decision:
//! reserve, release (unqueued order), cancel (buyer), sweep (timeout),
//! confirm (payment). `stock + reserved + sold` equals the units loaded at
//! every instant.
//!
//! Layout: [`keys`] names the keys, [`records`] parses what the scripts
//! store, [`store`] calls the scripts.

pub mod keys;
pub mod records;
pub mod store;

pub use records::{IdempotencyRecord, ReservationRecord};
pub use store::*;
