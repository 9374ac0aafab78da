//! The order as `GET /v1/orders/{id}` shows it (the row, its history,
//! refunds and after-sale requests), read through the hot-order cache in
//! Redis (`stock::order_cache`), then the order's primary shard, never a
//! replica: a buyer reads their own move at once.
//!
//! Who keeps the cache in step with the moves:
//! - an accepted order is cached before its 202 (`placement.rs`), so it is
//!   readable before the settler has stored it;
//! - the moves that reach MySQL later, through Kafka (a payment, a pending
//!   order's cancellation), are recorded beside the view before their event
//!   is sent, and laid over a view that still says `PENDING_PAYMENT`;
//! - every move made in MySQL first drops the cached view once committed,
//!   here in the workflows, again in the settler's outbox relay, and
//!   in the settler after it applied a move from Kafka;
//! - the settler's refund driver drops the views of the orders whose
//!   refunds it handled, each round.
//!
//! A read therefore shows every acknowledged move. A cache write that
//! failed, or a read of the shard that raced a move and cached what it
//! read, can show an older status until the settler's next delete of that
//! order, and never longer than `cache.ttl_secs`.

use std::time::Duration;

use order::checkout::CheckoutOrder;
use order::id::OrderId;
use order::status::OrderStatus;
use orderdb::StoredOrder;
use serde_json::{json, Value};

use crate::center::OrderCenter;

impl OrderCenter {
    fn cache_ttl(&self) -> Option<Duration> {
        (self.settings.cache.ttl_secs > 0).then(|| Duration::from_secs(self.settings.cache.ttl_secs))
    }

    /// The order's view, from the cache or else its shard (then cached);
    /// `None` if it is unknown or, with `owner`, not theirs.
    pub async fn order_view(&self, order_id: OrderId, owner: Option<u64>) -> Result<Option<Value>, sqlx::Error> {
        let owned = |view: &Value| owner.is_none_or(|owner| view["user_id"].as_u64() == Some(owner));
        let Some(ttl) = self.cache_ttl() else {
            return Ok(self.view_from_shard(order_id).await?.filter(owned));
        };
        // Redis's breaker (fed by placements and these reads): while it is
        // open, reads go straight to the shard instead of waiting out a timeout.
        let breaker = self.breakers.load().redis.clone();
        let found = match breaker.permit() {
            Ok(()) => {
                let found = self.order_cache.cached_order(order_id).await;
                breaker.record(&found);
                found.map_err(|err| err.to_string())
            }
            Err(_) => Err("its breaker is open".to_owned()),
        };
        let (cached, moved) = found.unwrap_or_else(|err| {
            metrics::counter!("gateway_order_cache_total", "outcome" => "error").increment(1);
            tracing::debug!(%order_id, error = %err, "order cache unreadable; reading the shard");
            (None, None)
        });
        let view = match cached.and_then(|text| serde_json::from_str::<Value>(&text).ok()) {
            Some(view) => {
                metrics::counter!("gateway_order_cache_total", "outcome" => "hit").increment(1);
                view
            }
            None => {
                metrics::counter!("gateway_order_cache_total", "outcome" => "miss").increment(1);
                let Some(view) = self.view_from_shard(order_id).await?.filter(owned) else { return Ok(None) };
                // Off the answer's path: a slow Redis does not slow the read.
                let (cache, text) = (self.order_cache.clone(), view.to_string());
                tokio::spawn(async move {
                    if let Err(err) = cache.cache_order(order_id, &text, ttl).await {
                        tracing::debug!(%order_id, error = %err, "order view not cached");
                    }
                });
                view
            }
        };
        Ok(owned(&view).then(|| with_move(view, moved)))
    }

    /// The order's view as its primary shard has it.
    pub async fn view_from_shard(&self, order_id: OrderId) -> Result<Option<Value>, sqlx::Error> {
        // One query after the other: a read holds one connection at a time,
        // so many reads at once cannot each hold some of the pool while
        // waiting for more (and all time out together).
        let Some(order) = self.services.reads.get(order_id).await? else { return Ok(None) };
        let history = self.services.reads.history(order_id).await?;
        let refunds = self.services.reads.refunds_of(order_id).await?;
        let after_sales = self.services.reads.after_sales_of(order_id).await?;
        let mut view = new_view(&order);
        view["history"] = serde_json::to_value(&history).expect("history serialises");
        view["refunds"] = serde_json::to_value(&refunds).expect("refunds serialise");
        view["after_sales"] = serde_json::to_value(&after_sales).expect("after-sales serialise");
        Ok(Some(view))
    }

    /// Caches a just-accepted order's view, unless one is cached already.
    pub async fn cache_accepted(&self, order: &StoredOrder) {
        let Some(ttl) = self.cache_ttl() else { return };
        if let Err(err) = self.order_cache.cache_new_order(order.order_id, &new_view(order).to_string(), ttl).await {
            metrics::counter!("gateway_order_cache_writes_failed_total").increment(1);
            tracing::warn!(order_id = %order.order_id, error = %err, "accepted order not cached; reads go to its shard");
        }
    }

    /// Records a pending order's move made in Redis, before its event goes
    /// to Kafka: reads show it until the settler has applied it.
    pub async fn record_move(&self, order_id: OrderId, status: OrderStatus) {
        if self.cache_ttl().is_none() {
            return;
        }
        if let Err(err) = self.order_cache.record_order_move(order_id, status.as_str()).await {
            metrics::counter!("gateway_order_cache_writes_failed_total").increment(1);
            tracing::warn!(%order_id, error = %err, "order move not recorded; reads show it once the settler applied it");
        }
    }

    /// Each item's status, in the checkout's order, as its order's view
    /// shows it; an item not stored yet awaits its payment.
    pub async fn checkout_item_statuses(&self, order: &CheckoutOrder) -> Result<Vec<OrderStatus>, sqlx::Error> {
        let mut statuses = Vec::new();
        for (_, item) in order.items() {
            let view = self.order_view(item.order_id, Some(order.user_id)).await?;
            let status = view.and_then(|view| view["status"].as_str().and_then(OrderStatus::parse));
            statuses.push(status.unwrap_or(OrderStatus::PendingPayment));
        }
        Ok(statuses)
    }

    /// Drops the cached view of an order MySQL just moved.
    pub async fn forget_order(&self, order_id: OrderId) {
        if self.cache_ttl().is_none() {
            return;
        }
        if let Err(err) = self.order_cache.forget_orders(&[order_id]).await {
            metrics::counter!("gateway_order_cache_writes_failed_total").increment(1);
            tracing::warn!(%order_id, error = %err, "cached order view not dropped; the settler or its TTL ends it");
        }
    }
}

/// The view of an order with no history, refunds or after-sale requests yet.
pub fn new_view(order: &StoredOrder) -> Value {
    let mut view = serde_json::to_value(order).expect("orders serialise");
    view["history"] = json!([]);
    view["refunds"] = json!([]);
    view["after_sales"] = json!([]);
    view
}

/// A recorded move out of `PENDING_PAYMENT` laid over a view still there.
fn with_move(mut view: Value, moved: Option<String>) -> Value {
    if let Some(status) = moved.as_deref().and_then(OrderStatus::parse) {
        if view["status"] == OrderStatus::PendingPayment.as_str() {
            view["status"] = json!(status);
        }
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_move_shows_only_over_a_pending_view() {
        let view = |status: &str| json!({"status": status, "order_id": "1"});
        assert_eq!(with_move(view("PENDING_PAYMENT"), Some("PAID".into()))["status"], "PAID");
        assert_eq!(with_move(view("PENDING_PAYMENT"), Some("CANCELLED".into()))["status"], "CANCELLED");
        assert_eq!(with_move(view("SHIPPED"), Some("PAID".into()))["status"], "SHIPPED", "never backwards");
        assert_eq!(with_move(view("PENDING_PAYMENT"), None)["status"], "PENDING_PAYMENT");
        assert_eq!(with_move(view("PENDING_PAYMENT"), Some("LOST".into()))["status"], "PENDING_PAYMENT");
    }
}
