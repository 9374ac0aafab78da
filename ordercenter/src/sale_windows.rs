//! The local copy of sale windows, so a request before a sale's start or
//! after its end is answered without a Redis trip. Filled when this gateway
//! loads a sale and whenever `reserve.lua` refuses a request as outside the
//! window (how the other gateways learn it); an entry is trusted for
//! [`TRUST_FOR`], after which a request goes to Redis to look again.

use std::time::{Duration, Instant};

use chrono::Utc;
use dashmap::DashMap;
use order::sale::{Phase, SaleWindow};

use crate::refusal::Refusal;

/// How long a window learned is answered from memory.
pub const TRUST_FOR: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct SaleWindows {
    known: DashMap<String, (SaleWindow, Instant)>,
}

impl SaleWindows {
    /// Refuses a request the known window rules out; unknown SKUs pass.
    pub fn check(&self, sku: &str) -> Result<(), Refusal> {
        // Copy out before removing: a map guard held across `remove` deadlocks.
        let cached = self.known.get(sku).map(|entry| (entry.0, entry.1.elapsed() < TRUST_FOR));
        let window = match cached {
            Some((window, true)) => window,
            Some((_, false)) => {
                self.known.remove(sku);
                return Ok(());
            }
            None => return Ok(()),
        };
        match window.phase(Utc::now()) {
            Phase::NotStarted { starts_at } => Err(Refusal::SaleNotStarted { starts_at }),
            Phase::Ended => Err(Refusal::SaleEnded),
            Phase::Open => Ok(()),
        }
    }

    pub fn remember(&self, sku: &str, window: SaleWindow) {
        self.known.insert(sku.to_owned(), (window, Instant::now()));
    }

    /// The refusal for a window Redis reported, remembered for next time.
    pub fn refusal(&self, sku: &str, window: SaleWindow) -> Refusal {
        self.remember(sku, window);
        match window.phase(Utc::now()) {
            Phase::NotStarted { starts_at } => Refusal::SaleNotStarted { starts_at },
            // Redis's clock said outside; if ours says open, the end is the closer truth.
            Phase::Ended | Phase::Open => Refusal::SaleEnded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_before_and_after_and_passes_unknown_skus() {
        let windows = SaleWindows::default();
        let now = Utc::now();
        assert!(windows.check("tv").is_ok());
        windows.remember("tv", SaleWindow { starts_at: Some(now + chrono::Duration::hours(1)), ends_at: None });
        assert!(matches!(windows.check("tv"), Err(Refusal::SaleNotStarted { .. })));
        windows.remember("tv", SaleWindow { starts_at: None, ends_at: Some(now - chrono::Duration::seconds(1)) });
        assert_eq!(windows.check("tv"), Err(Refusal::SaleEnded));
        windows.remember("tv", SaleWindow::default());
        assert!(windows.check("tv").is_ok());
    }
}
