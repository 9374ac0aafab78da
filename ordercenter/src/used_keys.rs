//! A sold-out SKU's used idempotency keys, in memory: a sold-out request
//! whose key is not among them is no retry of an order, so it is answered
//! 409 here, without asking Redis; one whose key is among them goes to the
//! placement, which answers its order.
//!
//! A snapshot is read while the SKU is sold out (`used_keys.lua`), and is
//! good until units come back on sale: a key that reserves later needs
//! them. The unit ledger says so on its `units_back` channel, which
//! [`keep_fresh`] watches and which drops the SKU's snapshot. While the
//! watch is down (its connection lost, messages missed) every snapshot is
//! dropped and none is taken. A snapshot is also trusted for at most
//! [`MAX_AGE`], in case a message was lost without the watch knowing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use dashmap::DashSet;
use stock::{SaleStore, UnitsBack};

/// How long a snapshot is trusted without news from the watch.
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// Most keys held for one SKU (about 60 bytes each); a sale with more
/// answers its sold-out requests from Redis.
const MOST_KEYS: usize = 50_000;

#[derive(Default)]
pub struct UsedKeys {
    state: RwLock<State>,
    /// SKUs whose snapshot is being read.
    loading: DashSet<String>,
}

#[derive(Default)]
struct State {
    snapshots: HashMap<String, Snapshot>,
    /// Whether the watch is up: snapshots are taken only then.
    watching: bool,
    /// Moves on every drop: a snapshot read across a drop is not kept.
    epoch: u64,
}

struct Snapshot {
    keys: HashSet<String>,
    taken: Instant,
}

impl UsedKeys {
    /// Whether `key` reserved units of `sku`, if a snapshot of the SKU says.
    pub fn contains(&self, sku: &str, key: &str) -> Option<bool> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let snapshot = state.snapshots.get(sku).filter(|snapshot| snapshot.taken.elapsed() < MAX_AGE)?;
        Some(snapshot.keys.contains(key))
    }

    /// Reads a snapshot of `sku`'s keys in the background, unless one is
    /// being read or the watch is down.
    pub fn load(self: &Arc<Self>, sales: &Arc<SaleStore>, sku: &str) {
        let epoch = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if !state.watching {
                return;
            }
            state.epoch
        };
        if !self.loading.insert(sku.to_owned()) {
            return;
        }
        let (this, sales, sku) = (self.clone(), sales.clone(), sku.to_owned());
        tokio::spawn(async move {
            match sales.used_keys(&sku, MOST_KEYS).await {
                Ok(Some(keys)) => this.keep(&sku, keys, epoch),
                Ok(None) => {}
                Err(err) => tracing::debug!(sku, error = %err, "used keys not read; sold-out retries ask Redis"),
            }
            this.loading.remove(&sku);
        });
    }

    /// Keeps a snapshot read since `epoch`, unless something was dropped since.
    fn keep(&self, sku: &str, keys: HashSet<String>, epoch: u64) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.watching && state.epoch == epoch {
            state.snapshots.insert(sku.to_owned(), Snapshot { keys, taken: Instant::now() });
        }
    }

    /// Applies what the watch saw.
    pub fn apply(&self, event: UnitsBack) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.epoch += 1;
        match event {
            UnitsBack::Sku(sku) => {
                state.snapshots.remove(&sku);
            }
            UnitsBack::Down | UnitsBack::Up => {
                state.snapshots.clear();
                state.watching = event == UnitsBack::Up;
            }
        }
    }
}

/// Watches the unit ledger's channel for good, dropping snapshots as units come back.
pub async fn keep_fresh(used_keys: Arc<UsedKeys>, sales: Arc<SaleStore>) {
    stock::units_back::watch(sales.redis(), |event| used_keys.apply(event)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> HashSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn a_snapshot_answers_until_units_come_back() {
        let used = UsedKeys::default();
        used.apply(UnitsBack::Up);
        used.keep("tv", keys(&["k1"]), 1);
        assert_eq!(used.contains("tv", "k1"), Some(true));
        assert_eq!(used.contains("tv", "k2"), Some(false));
        assert_eq!(used.contains("radio", "k1"), None);
        used.apply(UnitsBack::Sku("tv".into()));
        assert_eq!(used.contains("tv", "k2"), None);
    }

    #[test]
    fn a_snapshot_read_across_a_drop_or_while_the_watch_is_down_is_not_kept() {
        let used = UsedKeys::default();
        used.keep("tv", keys(&["k1"]), 0);
        assert_eq!(used.contains("tv", "k2"), None, "the watch never came up");
        used.apply(UnitsBack::Up);
        let epoch = used.state.read().unwrap().epoch;
        used.apply(UnitsBack::Sku("radio".into()));
        used.keep("tv", keys(&["k1"]), epoch);
        assert_eq!(used.contains("tv", "k2"), None, "units came back while it was read");
        used.keep("tv", keys(&["k1"]), epoch + 1);
        used.apply(UnitsBack::Down);
        assert_eq!(used.contains("tv", "k2"), None, "the watch went down");
    }
}
