//! The order lifecycle's timers, on every shard each round:
//!
//! - **The outbox relay.** Events of moves made in MySQL (fulfilment,
//!   cancellation after payment, auto-completion) wait in their shard's
//!   `order_outbox`; the relay sends them, oldest first, and deletes a row
//!   only after the broker acknowledged its event. A cancelled paid order's
//!   units leave `sold` first (`return_units.lua`, once per order), so a row
//!   gone means its effects are done. So does a push's hand-over to the
//!   warehouse (the gateway tries it at once; the relay makes sure of it).
//!   Relays on several settlers, or a
//!   round after a failed send, may send one row twice; consumers apply an
//!   event once (a move whose `from` is no longer the order's status).
//! - **Refunds** ([`crate::refunds`]): the due ones asked of the channel.
//! - **Overdue reviews**: after-sale requests nobody reviewed within
//!   `lifecycle.review_within_secs` are approved (or escalated).
//! - **Auto-completion.** A shipped order whose buyer did not confirm
//!   receipt within `lifecycle.auto_complete_after_secs` completes, a move
//!   of the same table by the system.
//! - **Lost items' member points.** A checkout spends its points before
//!   it tries any unit; an item no order row names
//!   `lifecycle.lost_points_after_secs` later never got that far (its
//!   request died, or nothing tried its units), and its points go back.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use events::producer::EventProducer;
use futures::future::join_all;
use order::after_sale;
use order::event::OrderEvent;
use order::id::OrderId;
use order::lifecycle::Action;
use ordercenter::{after_sales, fulfilment};
use orderdb::outbox::OutboxEntry;
use orderdb::ShardPools;
use paychannel::warehouse::{outbound_order_id, HttpWarehouse, WarehouseError, WarehouseOrder};
use stock::{OrderCache, SaleStore};

use crate::refunds::RefundDriver;

/// Most outbox rows sent, and most orders completed, per shard per round.
const AT_ONCE: u32 = 500;

pub struct Timers {
    pub shards: ShardPools,
    pub store: SaleStore,
    pub events: EventProducer,
    pub every: Duration,
    pub auto_complete_after: Duration,
    /// Whether a cancelled paid order's units go back on sale while it runs.
    pub restock: bool,
    pub warehouse: HttpWarehouse,
    pub refunds: RefundDriver,
    /// After-sale requests not reviewed within this long are approved, or
    /// escalated if `escalate_unreviewed`.
    pub review_within: Duration,
    pub escalate_unreviewed: bool,
    /// Gives back the points of items no order row names, once a minute.
    pub lost_points: LostPoints,
}

/// When the points spent on an item no order row names are given back:
/// `after` its spend (past every window in which the item could still
/// live), looked for in the day of spends before that, once a minute.
pub struct LostPoints {
    after: Duration,
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl LostPoints {
    const EVERY: Duration = Duration::from_secs(60);

    pub fn after(after: Duration) -> Self {
        Self { after, last: std::sync::Mutex::new(None) }
    }

    /// Whether a sweep is due now (and, if so, marks it done).
    fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|last| last.elapsed() < Self::EVERY) {
            return false;
        }
        *last = Some(std::time::Instant::now());
        true
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    pub sent: u64,
    pub completed: u64,
    pub refunded: u64,
    pub reviewed: u64,
}

impl Timers {
    /// A round every `every` until `shutdown` resolves. A shutdown stops a
    /// round where it is (a shard that is down may hold it for long): every
    /// step is a transaction or safe to redo, and the next start redoes it.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut shutdown => return,
            }
            let round = tokio::select! {
                round = self.round() => round,
                _ = &mut shutdown => return,
            };
            if round != Relayed::default() {
                tracing::debug!(
                    sent = round.sent,
                    completed = round.completed,
                    refunded = round.refunded,
                    "lifecycle round"
                );
            }
        }
    }

    /// One pass over every shard; a shard that fails is logged and tried
    /// again next round.
    pub async fn round(&self) -> Relayed {
        let mut round = Relayed::default();
        let lost_points_due = self.lost_points.due();
        for shard in 0..self.shards.pools.len() {
            match self.complete_shipped(shard).await {
                Ok(completed) => round.completed += completed,
                Err(err) => tracing::warn!(shard, error = %err, "auto-completion failed; trying again next round"),
            }
            match self.review_overdue(shard).await {
                Ok(reviewed) => round.reviewed += reviewed,
                Err(err) => tracing::warn!(shard, error = %err, "after-sale reviews failed; trying again next round"),
            }
            match self.refunds.round(&self.shards, shard).await {
                Ok((refunded, touched)) => {
                    round.refunded += refunded;
                    self.forget(shard, &touched).await;
                }
                Err(err) => tracing::warn!(shard, error = %err, "refund round failed; trying again next round"),
            }
            match self.relay(shard).await {
                Ok(sent) => round.sent += sent,
                Err(err) => tracing::warn!(shard, error = %err, "outbox relay failed; trying again next round"),
            }
            if lost_points_due {
                if let Err(err) = self.return_lost_points(shard).await {
                    tracing::warn!(shard, error = %err, "lost items' points not given back; trying again next round");
                }
            }
        }
        metrics::counter!("settler_outbox_sent_total").increment(round.sent);
        metrics::counter!("settler_auto_completed_total").increment(round.completed);
        metrics::counter!("settler_refunds_completed_total").increment(round.refunded);
        round
    }

    /// Gives back the points spent on items of shard `shard` that no order
    /// row names `lost_points.after` after their spend.
    async fn return_lost_points(&self, shard: usize) -> Result<(), sqlx::Error> {
        let after = chrono::Duration::from_std(self.lost_points.after).unwrap_or(chrono::Duration::MAX);
        let before = Utc::now() - after;
        let spent = before - chrono::Duration::days(1)..before;
        for (user_id, item) in self.shards.points_of_lost_items(shard, spent, AT_ONCE).await? {
            let back = self.shards.give_back_points(user_id, &[item]).await?;
            metrics::counter!("settler_lost_points_returned_total").increment(back);
            tracing::warn!(user_id, %item, back, "points of an item that never reached the orders database given back");
        }
        Ok(())
    }

    /// Approves (or escalates) the requests nobody reviewed in time
    /// (`ordercenter::after_sales::review_overdue`).
    async fn review_overdue(&self, shard: usize) -> Result<u64, sqlx::Error> {
        let after = chrono::Duration::from_std(self.review_within).unwrap_or(chrono::Duration::MAX);
        let mut reviewed = 0;
        for after_sale_id in self.shards.reviews_due(shard, Utc::now() - after, AT_ONCE).await? {
            if after_sales::review_overdue(&self.shards, &self.warehouse, after_sale_id, self.escalate_unreviewed)
                .await?
            {
                reviewed += 1;
            }
        }
        Ok(reviewed)
    }

    /// Completes the shipped orders whose buyers did not confirm receipt
    /// in time (`ordercenter::fulfilment::auto_complete`).
    async fn complete_shipped(&self, shard: usize) -> Result<u64, sqlx::Error> {
        let after = chrono::Duration::from_std(self.auto_complete_after).unwrap_or(chrono::Duration::MAX);
        let mut completed = 0;
        for order_id in self.shards.shipped_before(shard, Utc::now() - after, AT_ONCE).await? {
            if fulfilment::auto_complete(&self.shards, order_id).await? {
                completed += 1;
            }
        }
        Ok(completed)
    }

    /// Sends the shard's outbox. An order's rows go one after the other and
    /// stop at its first failure; only the rows sent are deleted, so a
    /// consumer never sees a later move of an order before an earlier one,
    /// and one order that cannot be delivered holds up no other. The orders
    /// sent leave the gateway's hot-order cache: a second delete after the
    /// gateway's own, which ends any entry a read cached while the move ran
    /// (and covers the moves made here, by timers).
    async fn relay(&self, shard: usize) -> Result<u64, sqlx::Error> {
        let entries = self.shards.outbox(shard, AT_ONCE).await?;
        // Orders side by side; one order's rows one after the other, stopping at its first failure.
        let mut by_order: Vec<Vec<&OutboxEntry>> = Vec::new();
        for entry in &entries {
            match by_order.iter_mut().find(|rows| rows[0].order_id == entry.order_id) {
                Some(rows) => rows.push(entry),
                None => by_order.push(vec![entry]),
            }
        }
        let sent = join_all(by_order.iter().map(|rows| async move {
            let mut done = Vec::new();
            for entry in rows {
                if !self.deliver(entry).await {
                    break;
                }
                done.push(entry);
            }
            done
        }))
        .await;
        let done: Vec<&OutboxEntry> = sent.into_iter().flatten().copied().collect();
        let ids: Vec<i64> = done.iter().map(|entry| entry.id).collect();
        self.shards.outbox_sent(shard, &ids).await?;
        let moved: Vec<OrderId> = done.iter().map(|entry| OrderId::from_raw(entry.order_id as u64)).collect();
        self.forget(shard, &moved).await;
        Ok(done.len() as u64)
    }

    /// Drops changed orders' views from the gateway's hot-order cache.
    async fn forget(&self, shard: usize, orders: &[OrderId]) {
        if let Err(err) = OrderCache::new(self.store.redis().clone()).forget_orders(orders).await {
            tracing::warn!(shard, error = %err, "changed orders left in the hot-order cache until their TTL");
        }
    }

    /// The entry's effects (units back to the sale, a pushed order or an
    /// exchange's outbound order handed to the warehouse), then its event;
    /// true once all are done.
    async fn deliver(&self, entry: &OutboxEntry) -> bool {
        let handover = match OrderEvent::decode(&entry.payload) {
            Ok(OrderEvent::OrderStatusChanged(changed)) => {
                if changed.refund.is_some() {
                    if let Err(err) = self.store.return_units(&changed.order, self.restock).await {
                        let order_id = changed.order.order_id;
                        tracing::warn!(%order_id, error = %err, "units of a cancelled paid order not returned yet");
                        return false;
                    }
                }
                let order = &changed.order;
                (changed.action == Action::Push).then(|| WarehouseOrder {
                    order_id: order.order_id.to_string(),
                    sku: order.sku.clone(),
                    qty: order.qty,
                })
            }
            Ok(OrderEvent::AfterSaleChanged(changed)) => {
                (changed.to == after_sale::Status::ExchangeOutbound).then(|| WarehouseOrder {
                    order_id: outbound_order_id(changed.after_sale_id),
                    sku: changed.sku,
                    qty: changed.qty,
                })
            }
            _ => None,
        };
        if let Some(handover) = handover {
            match self.warehouse.push(&handover).await {
                // Refused means intercepted first: the warehouse has decided, nothing is left to hand over.
                Ok(()) | Err(WarehouseError::Refused { .. }) => {}
                Err(WarehouseError::Failed { status, body }) if status.is_client_error() => {
                    // It will refuse it the same way every time: not a reason to hold the outbox.
                    metrics::counter!("settler_warehouse_refusals_total").increment(1);
                    tracing::error!(order = handover.order_id, %status, body, "the warehouse refused an order for good");
                }
                Err(err) => {
                    tracing::warn!(order = handover.order_id, error = %err, "the warehouse did not take the order yet");
                    return false;
                }
            }
        }
        self.events.send_encoded(entry.user_id, &entry.payload).await.is_ok()
    }
}
