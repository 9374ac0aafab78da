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
    /// Moves when the watch goes down or up: no snapshot read across it is kept.
    generation: u64,
    /// Per SKU, moves when its units come back: no snapshot of it read across it is kept.
    units_back: HashMap<String, u64>,
}

impl State {
    /// What a snapshot of `sku` read from now on must still find to be kept.
    fn epoch(&self, sku: &str) -> (u64, u64) {
        (self.generation, self.units_back.get(sku).copied().unwrap_or(0))
    }
}

/// A read of a SKU's used keys, kept for [`MAX_AGE`] from when it began;
/// `None` when Redis had none to give (units on sale, too many keys, a sale
/// loaded before its keys were kept): the SKU's keys are looked up one by
/// one until it is read again.
struct Snapshot {
    keys: Option<HashSet<String>>,
    read_at: Instant,
}

impl Snapshot {
    fn fresh(&self) -> bool {
        self.read_at.elapsed() < MAX_AGE
    }
}

impl UsedKeys {
    /// Whether `key` reserved units of `sku`, if a snapshot of the SKU says.
    pub fn contains(&self, sku: &str, key: &str) -> Option<bool> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let keys = state.snapshots.get(sku).filter(|snapshot| snapshot.fresh())?.keys.as_ref()?;
        Some(keys.contains(key))
    }

    /// Reads a snapshot of `sku`'s keys in the background, unless one is
    /// being read, a fresh one is held, or the watch is down.
    pub fn load(self: &Arc<Self>, sales: &Arc<SaleStore>, sku: &str) {
        let (epoch, read_at) = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if !state.watching || state.snapshots.get(sku).is_some_and(Snapshot::fresh) {
                return;
            }
            (state.epoch(sku), Instant::now())
        };
        if !self.loading.insert(sku.to_owned()) {
            return;
        }
        let (this, sales, sku) = (self.clone(), sales.clone(), sku.to_owned());
        tokio::spawn(async move {
            match sales.used_keys(&sku, MOST_KEYS).await {
                Ok(keys) => this.keep(&sku, Snapshot { keys, read_at }, epoch),
                Err(err) => tracing::debug!(sku, error = %err, "used keys not read; sold-out retries ask Redis"),
            }
            this.loading.remove(&sku);
        });
    }

    /// Keeps a snapshot read since `epoch`, unless its SKU's units came
    /// back, or the watch went down, since.
    fn keep(&self, sku: &str, snapshot: Snapshot, epoch: (u64, u64)) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.watching && state.epoch(sku) == epoch {
            state.snapshots.insert(sku.to_owned(), snapshot);
        }
    }

    /// Applies what the watch saw.
    pub fn apply(&self, event: UnitsBack) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            UnitsBack::Sku(sku) => {
                state.snapshots.remove(&sku);
                *state.units_back.entry(sku).or_default() += 1;
            }
            UnitsBack::Down | UnitsBack::Up => {
                state.snapshots.clear();
                state.units_back.clear();
                state.generation += 1;
                state.watching = event == UnitsBack::Up;
            }
        }
    }

    /// Drops snapshots past their age. (The units-back counts stay: one
    /// number per SKU whose units came back since the watch came up.)
    pub fn prune(&self) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.snapshots.retain(|_, snapshot| snapshot.fresh());
    }
}

/// Watches the unit ledger's channel for good, dropping snapshots as units come back.
pub async fn keep_fresh(used_keys: Arc<UsedKeys>, sales: Arc<SaleStore>) {
    stock::units_back::watch(sales.redis(), |event| used_keys.apply(event)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(names: &[&str]) -> Snapshot {
        Snapshot { keys: Some(names.iter().map(|name| name.to_string()).collect()), read_at: Instant::now() }
    }

    fn epoch(used: &UsedKeys, sku: &str) -> (u64, u64) {
        used.state.read().unwrap().epoch(sku)
    }

    #[test]
    fn a_snapshot_answers_until_its_units_come_back() {
        let used = UsedKeys::default();
        used.apply(UnitsBack::Up);
        used.keep("tv", snapshot(&["k1"]), epoch(&used, "tv"));
        assert_eq!(used.contains("tv", "k1"), Some(true));
        assert_eq!(used.contains("tv", "k2"), Some(false));
        assert_eq!(used.contains("radio", "k1"), None);
        used.apply(UnitsBack::Sku("tv".into()));
        assert_eq!(used.contains("tv", "k2"), None);
    }

    #[test]
    fn a_snapshot_read_across_its_units_coming_back_or_while_the_watch_is_down_is_not_kept() {
        let used = UsedKeys::default();
        used.keep("tv", snapshot(&["k1"]), epoch(&used, "tv"));
        assert_eq!(used.contains("tv", "k2"), None, "the watch never came up");
        used.apply(UnitsBack::Up);
        let (tv, radio) = (epoch(&used, "tv"), epoch(&used, "radio"));
        used.apply(UnitsBack::Sku("tv".into()));
        used.keep("tv", snapshot(&["k1"]), tv);
        assert_eq!(used.contains("tv", "k2"), None, "its units came back while it was read");
        used.keep("radio", snapshot(&["k1"]), radio);
        assert_eq!(used.contains("radio", "k2"), Some(false), "another SKU's units say nothing of it");
        used.apply(UnitsBack::Down);
        assert_eq!(used.contains("radio", "k2"), None, "the watch went down");
        used.keep("tv", snapshot(&["k1"]), epoch(&used, "tv"));
        assert_eq!(used.contains("tv", "k2"), None, "nothing is kept while it is down");
    }

    #[test]
    fn a_snapshot_is_trusted_for_its_age_only() {
        let used = UsedKeys::default();
        used.apply(UnitsBack::Up);
        let old = Snapshot { read_at: Instant::now() - MAX_AGE, ..snapshot(&["k1"]) };
        used.keep("tv", old, epoch(&used, "tv"));
        assert_eq!(used.contains("tv", "k2"), None);
        used.prune();
        assert!(used.state.read().unwrap().snapshots.is_empty());
        used.keep("tv", Snapshot { keys: None, read_at: Instant::now() }, epoch(&used, "tv"));
        assert_eq!(used.contains("tv", "k2"), None, "Redis had none to give: look it up");
    }
}
