//! Handing Redis the orders the database fallback took while it was down
//! ([`crate::fallback`]), once it answers again: each goes into Redis as
//! if `reserve.lua` had placed it (`adopt.lua`), and from then on Redis
//! alone answers for it (payment, cancellation, timeout). Every gateway
//! adopts what is pending, every [`ADOPT_EVERY`]; a payment or a
//! cancellation of an order not adopted yet adopts it first. Adopting is
//! idempotent by order id, so gateways racing each other do no harm.
//!
//! An order whose idempotency key placed another order in Redis (the
//! buyer's retry reached both stores) is cancelled as `duplicate_key`:
//! its units go back to the database share once the cancellation is on
//! the broker.

use std::time::Duration;

use chrono::Utc;
use order::event::{CancelReason, OrderCancelled, OrderEvent};
use order::fallback::FallbackOrder;
use order::id::OrderId;
use stock::Adopted;

use crate::center::OrderCenter;
use crate::fallback::created;

/// How often each gateway looks for orders to adopt.
pub const ADOPT_EVERY: Duration = Duration::from_secs(1);
/// Orders adopted per look.
const BATCH: u32 = 500;

/// Adopts pending orders while Redis answers; runs until aborted.
pub async fn run(center: std::sync::Arc<OrderCenter>) {
    let mut every = tokio::time::interval(ADOPT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if center.breakers.load().redis.permit().is_err() {
            continue;
        }
        match center.services.orders.pending_fallback_orders(BATCH).await {
            Ok(pending) => {
                for order in pending {
                    adopt(&center, &order).await;
                }
            }
            // Not only while MySQL is down: a gateway may run with no shard reachable.
            Err(err) => tracing::debug!(error = %err, "could not list the fallback's orders"),
        }
    }
}

/// Adopts `order_id` first if the database fallback took it and Redis does
/// not hold it yet: a payment or cancellation must find it in Redis.
pub(crate) async fn adopt_first(center: &OrderCenter, order_id: OrderId) {
    if !order_id.from_database() {
        return;
    }
    match center.services.orders.pending_fallback_order(order_id).await {
        Ok(Some(order)) => adopt(center, &order).await,
        Ok(None) => {}
        Err(err) => tracing::warn!(%order_id, error = %err, "could not look the fallback's order up"),
    }
}

/// One order into Redis, or cancelled as a duplicate of its key's order
/// there. A failure leaves it pending for the next look.
async fn adopt(center: &OrderCenter, order: &FallbackOrder) {
    // Its placement may still be waiting for the broker: leave it the
    // in-flight window to finish first.
    let in_flight_ms = center.in_flight_window().as_millis() as i64;
    if !order.accepted && Utc::now().timestamp_millis() - order.created_ms < in_flight_ms {
        return;
    }
    let orders = &center.services.orders;
    let ttl = center.settings.orders.idempotency_ttl_secs;
    let adopted = match center.sales.adopt(order, ttl, center.confirm_windows().confirm_ms).await {
        Ok(adopted) => adopted,
        Err(err) => {
            tracing::warn!(order_id = %order.order_id, error = %err, "fallback order not adopted; trying again");
            return;
        }
    };
    metrics::counter!("gateway_fallback_adoptions_total", "outcome" => adopted_name(adopted)).increment(1);
    let settled = match adopted {
        Adopted::Adopted => orders.fallback_adopted(order.order_id).await,
        Adopted::Conflict { first } => {
            tracing::warn!(order_id = %order.order_id, kept = ?first, "fallback order's key placed another order in Redis; cancelling it");
            let cancelled = OrderEvent::OrderCancelled(OrderCancelled {
                order: created(order),
                reason: CancelReason::DuplicateKey,
                cancelled_at: Utc::now(),
            });
            if center.publish(&cancelled).await.is_err() {
                return;
            }
            orders.fallback_dropped(order.order_id, true).await.map(drop)
        }
        Adopted::UnknownSku => {
            tracing::error!(sku = %order.sku, order_id = %order.order_id, "Redis holds no sale for a fallback order; load the sale again to adopt it");
            return;
        }
    };
    if let Err(err) = settled {
        tracing::warn!(order_id = %order.order_id, error = %err, "fallback order's adoption not recorded; trying again");
    }
}

fn adopted_name(adopted: Adopted) -> &'static str {
    match adopted {
        Adopted::Adopted => "adopted",
        Adopted::Conflict { .. } => "duplicate_key",
        Adopted::UnknownSku => "unknown_sku",
    }
}
