//! Handing Redis the orders the database fallback took while it was down
//! ([`crate::fallback`]), once it answers again: each goes into Redis as
//! if `reserve.lua` had placed it (`adopt.lua`), and from then on Redis
//! alone answers for it (payment, cancellation, timeout). Every gateway
//! adopts what is pending, every [`ADOPT_EVERY`]; a payment or a
//! cancellation of an order not adopted yet adopts it first.
//!
//! An adopter first claims the order in MySQL (`adopting`): from then on
//! the request that took it can neither accept it there nor give its units
//! back, so Redis is told whether it was accepted as MySQL decided it.
//! `adopt.lua` decides each order once and keeps the decision, so gateways
//! adopting the same order at once, or again after a crash, agree. An order
//! whose idempotency key placed another order in Redis, acknowledged, is
//! cancelled as `duplicate_key`: its units go back to the database share
//! once the cancellation is on the broker. While that other order is not
//! acknowledged yet, the adopter waits for it to be settled.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use order::event::{CancelReason, OrderCancelled, OrderEvent};
use order::id::OrderId;
use stock::Adopted;

use crate::center::OrderCenter;
use crate::fallback::created;

/// How often each gateway looks for orders to adopt.
pub const ADOPT_EVERY: Duration = Duration::from_secs(1);
/// Orders listed per page.
const PAGE: u32 = 500;

/// Adopts pending orders while Redis answers; runs until aborted.
pub async fn run(center: Arc<OrderCenter>) {
    let mut every = tokio::time::interval(ADOPT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if center.breakers.load().redis.permit().is_err() {
            continue;
        }
        // Page by id: an order that cannot be adopted now does not hold up
        // the ones after it.
        let mut after = 0;
        loop {
            let pending = match center.services.orders.pending_fallback_orders(after, PAGE).await {
                Ok(pending) => pending,
                // Not only while MySQL is down: a gateway may run with no shard reachable.
                Err(err) => {
                    tracing::debug!(error = %err, "could not list the fallback's orders");
                    break;
                }
            };
            for &order_id in &pending {
                adopt(&center, order_id).await;
            }
            match pending.last() {
                Some(last) if pending.len() == PAGE as usize => after = last.raw() as i64,
                _ => break,
            }
        }
    }
}

/// Adopts `order_id` first if the database fallback took it (for
/// `user_id`, when named) and Redis does not hold it yet: a payment or a
/// cancellation must find it in Redis.
pub(crate) async fn adopt_first(center: &OrderCenter, order_id: OrderId, user_id: Option<u64>) {
    if !order_id.from_database() {
        return;
    }
    match center.services.orders.is_pending_fallback_order(order_id, user_id).await {
        Ok(true) => adopt(center, order_id).await,
        Ok(false) => {}
        Err(err) => tracing::warn!(%order_id, error = %err, "could not look the fallback's order up"),
    }
}

/// Claims one order and hands it to Redis, or cancels it as a duplicate.
/// Anything left undone is done by a later call.
async fn adopt(center: &OrderCenter, order_id: OrderId) {
    let orders = &center.services.orders;
    let in_flight_ms = center.in_flight_window().as_millis() as u64;
    let order = match orders.claim_for_adoption(order_id, in_flight_ms).await {
        Ok(Some(order)) => order,
        // Its request may still be waiting for the broker, or it is settled.
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(%order_id, error = %err, "fallback order not claimed; trying again");
            return;
        }
    };
    let ttl = center.settings.orders.idempotency_ttl_secs;
    let adopted = match center.sales.adopt(&order, ttl, center.confirm_windows().confirm_ms).await {
        Ok(adopted) => adopted,
        Err(err) => {
            tracing::warn!(%order_id, error = %err, "fallback order not adopted; trying again");
            return;
        }
    };
    metrics::counter!("gateway_fallback_adoptions_total", "outcome" => adopted_name(adopted)).increment(1);
    let recorded = match adopted {
        Adopted::Adopted => orders.fallback_adopted(order_id).await,
        Adopted::Duplicate { first } => {
            tracing::warn!(%order_id, kept = ?first, "fallback order's key placed another order in Redis; cancelling it");
            let cancelled = OrderEvent::OrderCancelled(OrderCancelled {
                order: created(&order),
                reason: CancelReason::DuplicateKey,
                cancelled_at: Utc::now(),
            });
            if center.publish(&cancelled).await.is_err() {
                return;
            }
            orders.fallback_duplicate(order_id).await
        }
        Adopted::Wait => return,
        Adopted::OtherSale | Adopted::UnknownSku | Adopted::IdTaken => {
            tracing::error!(
                sku = %order.sku, %order_id, outcome = adopted_name(adopted),
                "fallback order cannot join its sale in Redis; it waits for an operator (see GET /admin/skus/{{sku}})"
            );
            return;
        }
    };
    if let Err(err) = recorded {
        tracing::warn!(%order_id, error = %err, "fallback order's adoption not recorded; trying again");
    }
}

fn adopted_name(adopted: Adopted) -> &'static str {
    match adopted {
        Adopted::Adopted => "adopted",
        Adopted::Duplicate { .. } => "duplicate_key",
        Adopted::Wait => "wait",
        Adopted::OtherSale => "other_sale",
        Adopted::UnknownSku => "unknown_sku",
        Adopted::IdTaken => "id_taken",
    }
}
