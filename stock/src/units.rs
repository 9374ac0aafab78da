//! The unit ledger's Rust side: a sale's four counts and the one invariant
//! they keep, `stock + reserved + sold = total`, and its orders awaiting
//! payment that hold no unit (`open`, a sale deducting at payment). In Redis only
//! `stock/lua/lib/units.lua` moves them; what reads them (reconciliation,
//! the load generator's and the fault suite's checks) checks them here.

use serde::{Deserialize, Serialize};

/// A sale's units, as `sale:{sku}` holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Units {
    /// For sale.
    pub stock: i64,
    /// Held by orders not paid yet.
    pub reserved: i64,
    /// Paid for.
    pub sold: i64,
    /// Loaded in all (less units withdrawn).
    pub total: i64,
    /// Ordered by orders awaiting payment of a sale deducting at payment:
    /// not held, so not part of the total.
    pub open: i64,
}

impl Units {
    /// Whether the counts add up to the total, none below zero.
    pub fn add_up(&self) -> bool {
        self.stock + self.reserved + self.sold == self.total
            && self.stock >= 0
            && self.reserved >= 0
            && self.sold >= 0
            && self.open >= 0
    }

    /// Units held by orders: reserved or sold.
    pub fn held(&self) -> i64 {
        self.reserved + self.sold
    }

    /// Units of live orders: held, or ordered by open orders that hold none
    /// (what MySQL's pending and paid orders add up to).
    pub fn ordered(&self) -> i64 {
        self.held() + self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_add_up_only_to_their_total_and_never_below_zero() {
        let units = Units { stock: 5, reserved: 3, sold: 2, total: 10, open: 0 };
        assert!(units.add_up());
        assert_eq!(units.held(), 5);
        assert_eq!(Units { open: 4, ..units }.ordered(), 9);
        assert!(!Units { total: 11, ..units }.add_up());
        assert!(!Units { stock: -1, reserved: 9, ..units }.add_up());
        assert!(!Units { open: -1, ..units }.add_up());
    }
}
