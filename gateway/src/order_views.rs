//! The order as `GET /v1/orders/{id}` shows it (the row, its history,
//! refunds and after-sale requests), read through the hot-order cache in
//! Redis (`stock::order_cache`), then the order's primary shard, never a
//! replica: a buyer reads their own move at once.
//!
//! Who keeps the cache in step with the moves:
//! - an accepted order is cached before its 202 (`placement.rs`), so it is
//!   readable before the settler has stored it;
//! - the moves that reach MySQL later, through Kafka (a payment, a pending
//!   order's cancellation), change the cached view's status in place before
//!   they are answered;
//! - every move made in MySQL first drops the cached view once committed,
//!   here in the gateway's routes, again in the settler's outbox relay, and
//!   in the settler after it applied a move from Kafka;
//! - the settler's refund driver drops the views of the orders whose
//!   refunds it handled, each round.
//!
//! A read therefore shows every acknowledged move. A cache write that
//! failed, or a read of the shard that raced a move and cached what it
//! read, can show an older status until the relay's next delete of that
//! order, and never longer than `cache.ttl_secs`.

use std::time::Duration;

use order::id::OrderId;
use order::status::OrderStatus;
use orderdb::StoredOrder;
use serde_json::{json, Value};

use crate::app::App;

impl App {
    fn cache_ttl(&self) -> Option<Duration> {
        (self.config.cache.ttl_secs > 0).then(|| Duration::from_secs(self.config.cache.ttl_secs))
    }

    /// The order's view, from the cache or else its shard (then cached).
    pub async fn order_view(&self, order_id: OrderId) -> Result<Option<Value>, sqlx::Error> {
        let Some(ttl) = self.cache_ttl() else { return self.view_from_shard(order_id).await };
        match self.sales.cached_order(order_id).await {
            Ok(Some(text)) => match serde_json::from_str(&text) {
                Ok(view) => {
                    metrics::counter!("gateway_order_cache_total", "outcome" => "hit").increment(1);
                    return Ok(Some(view));
                }
                Err(err) => tracing::warn!(%order_id, error = %err, "cached order view unreadable; reading the shard"),
            },
            Ok(None) => metrics::counter!("gateway_order_cache_total", "outcome" => "miss").increment(1),
            Err(err) => {
                metrics::counter!("gateway_order_cache_total", "outcome" => "error").increment(1);
                tracing::debug!(%order_id, error = %err, "order cache unreadable; reading the shard");
            }
        }
        let view = self.view_from_shard(order_id).await?;
        if let Some(view) = &view {
            if let Err(err) = self.sales.cache_order(order_id, &view.to_string(), ttl).await {
                tracing::debug!(%order_id, error = %err, "order view not cached");
            }
        }
        Ok(view)
    }

    /// The order's view as its primary shard has it.
    pub async fn view_from_shard(&self, order_id: OrderId) -> Result<Option<Value>, sqlx::Error> {
        let Some(order) = self.orders.get(order_id).await? else { return Ok(None) };
        let (history, refunds, after_sales) = tokio::try_join!(
            self.orders.history(order_id),
            self.orders.refunds_of(order_id),
            self.orders.after_sales_of(order_id),
        )?;
        let mut view = new_view(&order);
        view["history"] = serde_json::to_value(&history).expect("history serialises");
        view["refunds"] = serde_json::to_value(&refunds).expect("refunds serialise");
        view["after_sales"] = serde_json::to_value(&after_sales).expect("after-sales serialise");
        Ok(Some(view))
    }

    /// Caches a just-accepted order's view, unless a move cached one first.
    pub async fn cache_accepted(&self, order: &StoredOrder) {
        let Some(ttl) = self.cache_ttl() else { return };
        if let Err(err) = self.sales.cache_new_order(order.order_id, &new_view(order).to_string(), ttl).await {
            metrics::counter!("gateway_order_cache_writes_failed_total").increment(1);
            tracing::warn!(order_id = %order.order_id, error = %err, "accepted order not cached; reads go to its shard");
        }
    }

    /// Sets the cached view's status (a move on its way to MySQL through
    /// Kafka); nothing if the order is not cached.
    pub async fn cache_status(&self, order_id: OrderId, status: OrderStatus) {
        if self.cache_ttl().is_none() {
            return;
        }
        let changed = async {
            let Some(text) = self.sales.cached_order(order_id).await? else { return Ok(()) };
            let Ok(mut view) = serde_json::from_str::<Value>(&text) else {
                return self.sales.forget_orders(&[order_id]).await;
            };
            view["status"] = json!(status);
            self.sales.recache_order(order_id, &view.to_string()).await
        };
        if let Err(err) = changed.await {
            metrics::counter!("gateway_order_cache_writes_failed_total").increment(1);
            tracing::warn!(%order_id, error = %err, "cached order view not updated; the settler's relay or its TTL ends it");
        }
    }

    /// Drops the cached view of an order MySQL just moved.
    pub async fn forget_order(&self, order_id: OrderId) {
        if self.cache_ttl().is_none() {
            return;
        }
        if let Err(err) = self.sales.forget_orders(&[order_id]).await {
            metrics::counter!("gateway_order_cache_writes_failed_total").increment(1);
            tracing::warn!(%order_id, error = %err, "cached order view not dropped; the settler's relay or its TTL ends it");
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
