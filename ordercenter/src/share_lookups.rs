//! Whether a SKU has a database share (an ordinary sale's units kept in
//! MySQL for while Redis is down), as the fallback asks before it takes
//! anything: the answer is kept for [`TRUSTED_FOR`], and one lookup per SKU
//! runs at a time, so a flash crowd meeting a Redis outage costs MySQL one
//! plain read per SKU every few seconds, not a locking read per request
//! (and a MySQL that is down too, one slow lookup).

use std::future::Future;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::single_flight::SingleFlight;

/// How long an answer is trusted: a sale loaded as ordinary meanwhile
/// sells from its share at most this much later.
pub const TRUSTED_FOR: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct ShareLookups {
    known: DashMap<String, (bool, Instant)>,
    looking: SingleFlight<bool>,
}

impl ShareLookups {
    /// Whether `sku` has a share: from memory, else from `look`.
    pub async fn has_share<F, Fut>(&self, sku: &str, look: F) -> bool
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = bool>,
    {
        if let Some((has, at)) = self.known.get(sku).map(|entry| *entry) {
            if at.elapsed() < TRUSTED_FOR {
                return has;
            }
        }
        let (has, ran_here) = self.looking.run(sku.to_owned(), look).await;
        if ran_here {
            self.known.insert(sku.to_owned(), (has, Instant::now()));
        }
        has
    }

    /// Drops the answers past trust (any SKU may be asked about, so the map
    /// is pruned, not left to grow).
    pub fn prune(&self) {
        self.known.retain(|_, (_, at)| at.elapsed() < TRUSTED_FOR);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn an_answer_is_kept_until_past_trust() {
        let lookups = ShareLookups::default();
        let looked = AtomicU32::new(0);
        let look = |answer: bool| {
            looked.fetch_add(1, Ordering::Relaxed);
            async move { answer }
        };
        assert!(!lookups.has_share("tv", || look(false)).await);
        assert!(!lookups.has_share("tv", || look(true)).await, "from memory");
        assert_eq!(looked.load(Ordering::Relaxed), 1);
        lookups.known.insert("tv".into(), (false, Instant::now() - TRUSTED_FOR));
        assert!(lookups.has_share("tv", || look(true)).await, "asked again past trust");
        lookups.known.insert("radio".into(), (true, Instant::now() - TRUSTED_FOR));
        lookups.prune();
        assert_eq!(lookups.known.len(), 1);
    }
}
