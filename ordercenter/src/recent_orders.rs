//! The orders this gateway accepted lately, by SKU and idempotency key, so
//! that a retry of an accepted click is answered with its order even when
//! the SKU has since sold out and requests for it are answered from memory.
//! Bounded in count and kept for the payment window; a retry this memory
//! does not know (another instance placed it, or the memory was full) is
//! looked up in Redis.

use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::outcomes::{flight_key, Placed};

/// Most orders remembered, about 250 bytes each.
const CAPACITY: usize = 10_000;

pub struct RecentOrders {
    orders: DashMap<String, (Placed, Instant)>,
    keep_for: Duration,
}

impl RecentOrders {
    pub fn new(keep_for: Duration) -> Self {
        Self { orders: DashMap::new(), keep_for }
    }

    pub fn remember(&self, sku: &str, key: &str, placed: &Placed) {
        if self.orders.len() < CAPACITY {
            self.orders.insert(flight_key(sku, key), (placed.clone(), Instant::now()));
        }
    }

    pub fn get(&self, sku: &str, key: &str) -> Option<Placed> {
        let entry = self.orders.get(&flight_key(sku, key))?;
        (entry.1.elapsed() < self.keep_for).then(|| entry.0.clone())
    }

    /// Drops what is older than the payment window.
    pub fn prune(&self) {
        self.orders.retain(|_, (_, at)| at.elapsed() < self.keep_for);
    }
}
