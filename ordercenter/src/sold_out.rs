//! The local sold-out mark: once Redis says a SKU has no units left, this
//! gateway answers 409 from memory instead of asking again. A mark expires
//! after a short recheck interval, so units given back through another
//! gateway (a release, a timeout, a reload) are seen again.

use std::time::{Duration, Instant};

use dashmap::DashMap;

pub struct SoldOutCache {
    marks: DashMap<String, Instant>,
    recheck_after: Duration,
}

impl SoldOutCache {
    pub fn new(recheck_after: Duration) -> Self {
        Self { marks: DashMap::new(), recheck_after }
    }

    /// Whether the SKU is known sold out. An expired mark is dropped, letting
    /// the next request through to Redis.
    pub fn is_sold_out(&self, sku: &str) -> bool {
        let fresh = match self.marks.get(sku) {
            Some(marked_at) => marked_at.elapsed() < self.recheck_after,
            None => return false,
        };
        if !fresh {
            self.marks.remove(sku);
        }
        fresh
    }

    pub fn mark(&self, sku: &str) {
        self.marks.insert(sku.to_owned(), Instant::now());
    }

    /// Units came back (release, reload): let requests reach Redis again.
    pub fn clear(&self, sku: &str) {
        self.marks.remove(sku);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_clear_and_expire() {
        let cache = SoldOutCache::new(Duration::from_secs(60));
        assert!(!cache.is_sold_out("a"));
        cache.mark("a");
        assert!(cache.is_sold_out("a"));
        assert!(!cache.is_sold_out("b"));
        cache.clear("a");
        assert!(!cache.is_sold_out("a"));

        let short = SoldOutCache::new(Duration::ZERO);
        short.mark("a");
        assert!(!short.is_sold_out("a"));
    }
}
