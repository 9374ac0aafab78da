//! The timeout sweeper: every `sweeper.every_ms`, for every active sale
//! (one that may hold reservations or unsent cancellations), cancels the
//! orders whose payment deadline passed (`sweep.lua`, atomic, so sweepers
//! on several settlers never release the same units twice), then sends the
//! sale's outbox: the `OrderCancelled` events of those timeouts and of any
//! buyer cancellation whose event the gateway could not send. An entry
//! leaves the outbox only once the broker acknowledged its event.
//!
//! A round's work grows with the active sales, not with every sale ever
//! loaded: a sale with nothing left to do leaves the active set until its
//! next reservation. Every `sweeper.rescan_every_ms` (and at start) every
//! loaded sale is looked at once, pipelined, and those holding reservations
//! or outbox entries are made active again, whatever was lost.
//!
//! Units given back are visible to every gateway at once in Redis; a
//! gateway that marked the SKU sold out looks again after
//! `orders.sold_out_recheck_ms`.

use std::future::Future;
use std::time::Duration;

use events::producer::EventProducer;
use order::event::OrderEvent;
use stock::records::parse_outbox_entry;
use stock::{SaleStore, StoreError, Strike};
use tracing::field::Empty;
use tracing::Instrument;

/// Most outbox entries sent per sale per round.
const OUTBOX_AT_ONCE: usize = 500;

pub struct Sweeper {
    pub store: SaleStore,
    pub events: EventProducer,
    pub every: Duration,
    pub rescan_every: Duration,
    pub batch: usize,
    /// The window of a buyer's strikes (`abuse.window_secs`): each timeout
    /// or buyer cancellation the sweeper sends counts against the buyer.
    pub strike_window_secs: u64,
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
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_rescan = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut shutdown => return,
            }
            if tokio::time::Instant::now() >= next_rescan {
                match self.store.activate_pending_sales().await {
                    Ok(found) => {
                        tracing::debug!(found, "rescanned the sales for pending work");
                        next_rescan = tokio::time::Instant::now() + self.rescan_every;
                    }
                    Err(err) => tracing::warn!(error = %err, "rescan of the sales failed; trying again next round"),
                }
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

    /// One pass over the active sales. A sale that fails (its cluster slot
    /// failing over, say) is logged and left for the next round; the others
    /// are swept.
    pub async fn round(&self) -> Result<Swept, StoreError> {
        let mut swept = Swept::default();
        // Redis's clock: the gateways' confirm deadlines come from it, and
        // this machine's clock may be off theirs.
        let now_ms = self.store.redis().now_ms().await?;
        for sku in self.store.active_sales().await? {
            match self.visit(&sku, now_ms).await {
                Ok(sale) => {
                    metrics::counter!("settler_swept_orders_total").increment(sale.cancelled);
                    swept.cancelled += sale.cancelled;
                    swept.events_sent += sale.events_sent;
                }
                Err(err) => tracing::warn!(sku, error = %err, "sweeping a sale failed; trying again next round"),
            }
        }
        Ok(swept)
    }

    /// Out of the active set first, back in if work is left (see
    /// `SaleStore::sweep`); a sale whose re-add fails is found by the rescan.
    async fn visit(&self, sku: &str, now_ms: i64) -> Result<Swept, StoreError> {
        self.store.set_active(sku, false).await?;
        let sale = self.sweep_sale(sku, now_ms).await;
        if !matches!(sale, Ok((_, true))) {
            self.store.set_active(sku, true).await?;
        }
        Ok(sale?.0)
    }

    /// Sweeps one sale and sends its outbox; also says whether it is idle
    /// now (no reservations, nothing left in the outbox).
    async fn sweep_sale(&self, sku: &str, now_ms: i64) -> Result<(Swept, bool), StoreError> {
        let swept = self.store.sweep(sku, now_ms, self.batch).await?;
        let (events_sent, outbox_empty) = self.send_outbox(sku, now_ms).await?;
        let idle = swept.reservations_left == 0 && outbox_empty;
        Ok((Swept { cancelled: swept.cancelled, events_sent }, idle))
    }

    /// Sends up to `OUTBOX_AT_ONCE` outbox entries; how many were sent and
    /// whether the outbox is empty now.
    async fn send_outbox(&self, sku: &str, now_ms: i64) -> Result<(u64, bool), StoreError> {
        let entries = self.store.outbox(sku, OUTBOX_AT_ONCE).await?;
        let mut sent = 0;
        for entry in &entries {
            let Some(cancelled) = parse_outbox_entry(entry, sku, now_ms) else {
                tracing::error!(sku, entry, "unreadable outbox entry dropped");
                self.store.remove_from_outbox(sku, entry).await?;
                continue;
            };
            let strike = cancelled
                .reason
                .is_strike()
                .then_some(Strike { user_id: cancelled.order.user_id, window_secs: self.strike_window_secs });
            // The cancellation Redis made, sent: a trace of its own (sampled by
            // the settler's `tracing.sample_ratio`), continued by the settler
            // that stores it.
            let span = tracing::info_span!(
                "cancellation.send",
                sku,
                order_id = %cancelled.order.order_id,
                reason = cancelled.reason.as_str(),
                trace_id = Empty,
            );
            telemetry::propagation::record_trace_id(&span);
            let event = OrderEvent::OrderCancelled(cancelled);
            if self.events.send(&event).instrument(span).await.is_err() {
                // The broker is down: the entry stays, the next round tries again.
                return Ok((sent, false));
            }
            self.store.cancellation_sent(sku, entry, strike).await?;
            sent += 1;
        }
        Ok((sent, entries.len() < OUTBOX_AT_ONCE))
    }
}
