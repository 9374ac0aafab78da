//! An ordinary sale's database fallback (seed 000: Redis for ordinary
//! sales, a database row lock when Redis fails). The sale's units are split
//! once, when it is loaded: Redis holds most, the inventory database the
//! rest (`database_units`). Each store sells only its own share, so a
//! gateway cut off from Redis while another still reaches it cannot sell a
//! unit twice. While Redis cannot be reached, an order takes units from the
//! database's share under its row lock and is recorded in the same
//! transaction; once Redis answers again the order is handed to it
//! (adopted) with its units, and lives there like any other.

use serde::{Deserialize, Serialize};

use crate::id::OrderId;

/// Whether a sale may sell from the database when Redis is down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleKind {
    /// Redis only: with Redis down an order is answered 503 (a row lock
    /// cannot take a flash crowd).
    #[default]
    Flash,
    /// Sells from its database share while Redis cannot be reached.
    Ordinary,
}

/// An order the database took, until Redis has adopted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackOrder {
    pub order_id: OrderId,
    pub sku: String,
    pub idempotency_key: String,
    pub user_id: u64,
    pub qty: u32,
    pub amount_cents: i64,
    /// The sale's generation when it was loaded, as Redis's orders carry.
    pub sale_generation: i64,
    pub created_ms: i64,
    pub pay_by_ms: i64,
    /// The broker acknowledged its `OrderCreated`: its buyer was answered 202.
    pub accepted: bool,
}
