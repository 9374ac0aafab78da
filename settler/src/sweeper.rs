//! The timeout sweeper: every `sweeper.every_ms`, for every sale, cancels the
//! orders whose payment deadline passed (`sweep.lua`, atomic, so sweepers on
//! several settlers never release the same units twice), then sends the
//! sale's outbox: the `OrderCancelled` events of those timeouts and of any
//! buyer cancellation whose event the gateway could not send. An entry
//! leaves the outbox only once the broker acknowledged its event.
//!
//! Units given back are visible to every gateway at once in Redis; a
//! gateway that marked the SKU sold out looks again after
//! `orders.sold_out_recheck_ms`.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use order::event::OrderEvent;
use service::producer::EventProducer;
use stock::records::parse_outbox_entry;
use stock::{SaleStore, StoreError};

/// Most outbox entries sent per sale per round.
const OUTBOX_AT_ONCE: usize = 500;

pub struct Sweeper {
    pub store: SaleStore,
    pub events: EventProducer,
    pub every: Duration,
    pub batch: usize,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub cancelled: u64,
    pub events_sent: u64,
}

impl Sweeper {
    /// Sweeps every `every` until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut shutdown => return,
            }
            match self.round().await {
                Ok(swept) if swept != Swept::default() => {
                    tracing::info!(cancelled = swept.cancelled, events = swept.events_sent, "swept expired orders");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "sweep failed; trying again next round"),
            }
        }
    }

    /// One pass over every sale.
    pub async fn round(&self) -> Result<Swept, StoreError> {
        let mut swept = Swept::default();
        for sku in self.store.sales().await? {
            let now_ms = Utc::now().timestamp_millis();
            swept.cancelled += self.store.sweep(&sku, now_ms, self.batch).await?;
            swept.events_sent += self.send_outbox(&sku, now_ms).await?;
        }
        Ok(swept)
    }

    async fn send_outbox(&self, sku: &str, now_ms: i64) -> Result<u64, StoreError> {
        let mut sent = 0;
        for entry in self.store.outbox(sku, OUTBOX_AT_ONCE).await? {
            let Some(cancelled) = parse_outbox_entry(&entry, sku, now_ms) else {
                tracing::error!(sku, entry, "unreadable outbox entry dropped");
                self.store.remove_from_outbox(sku, &entry).await?;
                continue;
            };
            if self.events.send(&OrderEvent::OrderCancelled(cancelled)).await.is_err() {
                // The broker is down: the entry stays, the next round tries again.
                break;
            }
            self.store.remove_from_outbox(sku, &entry).await?;
            sent += 1;
        }
        Ok(sent)
    }
}
