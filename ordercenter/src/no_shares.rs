//! The SKUs the inventory database said have no database share (a flash
//! sale, or no sale at all): while Redis's breaker is open their orders are
//! answered 503 from memory for [`TRUSTED_FOR`], so a flash crowd meeting a
//! Redis outage does not turn into a lookup in MySQL per request.

use std::time::{Duration, Instant};

use dashmap::DashMap;

/// How long a "no share" answer is trusted; an ordinary sale loaded meanwhile
/// sells from its share at most this much later.
pub const TRUSTED_FOR: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct NoShares {
    seen: DashMap<String, Instant>,
}

impl NoShares {
    pub fn known(&self, sku: &str) -> bool {
        self.seen.get(sku).is_some_and(|at| at.elapsed() < TRUSTED_FOR)
    }

    pub fn remember(&self, sku: &str) {
        self.seen.insert(sku.to_owned(), Instant::now());
    }

    /// Drops the answers past trust (any SKU may be asked about, so the map
    /// is pruned, not left to grow).
    pub fn prune(&self) {
        self.seen.retain(|_, at| at.elapsed() < TRUSTED_FOR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sku_is_known_to_have_no_share_until_pruned_past_trust() {
        let shares = NoShares::default();
        assert!(!shares.known("tv"));
        shares.remember("tv");
        assert!(shares.known("tv") && !shares.known("radio"));
        shares.seen.insert("radio".into(), Instant::now() - TRUSTED_FOR);
        assert!(!shares.known("radio"));
        shares.prune();
        assert_eq!(shares.seen.len(), 1);
    }
}
