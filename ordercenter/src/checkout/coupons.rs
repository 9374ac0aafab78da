//! A coupon held by one checkout at a time: frozen for a checkout before
//! its units are tried, taken over from a holder that is over, given back
//! when the checkout is refused.

use chrono::Utc;
use order::checkout::CheckoutOrder;
use order::id::OrderId;
use stock::{CancelledItem, CouponHolder};

use super::{by_sku, load, redis_down};
use crate::center::OrderCenter;
use crate::outcomes::CheckoutError;

/// Freezes the buyer's coupon for `parent`. Refused while another
/// checkout holds it: one still being placed (younger than the in-flight
/// window), or one with an item held or paid. A holder that is neither is
/// cancelled for good first (its items' records then refuse a late Try,
/// e.g. from a retry of its key), so two checkouts never both use it.
pub(super) async fn freeze_coupon(
    center: &OrderCenter,
    user_id: u64,
    code: &str,
    parent: OrderId,
) -> Result<(), CheckoutError> {
    let holder = match center.checkouts.coupon_holder(user_id, code).await.map_err(redis_down)? {
        Some(CouponHolder::Used(_)) => return Err(CheckoutError::CouponUsed),
        Some(CouponHolder::Frozen(holder)) => Some(holder),
        None => None,
    };
    if let Some(holder) = holder {
        if let Some(order) = load(center, holder).await? {
            // Its key's claim says when a request last took it on (a repeat
            // of the key refreshes it).
            let claim =
                center.checkouts.checkout_claim(order.user_id, &order.idempotency_key).await.map_err(redis_down)?;
            let taken_on = claim
                .filter(|claim| claim.parent == holder)
                .map_or(order.created_at.timestamp_millis(), |claim| claim.created_ms);
            let age_ms = Utc::now().timestamp_millis() - taken_on;
            let items: Vec<(String, OrderId)> =
                order.items().map(|(_, item)| (item.sku.clone(), item.order_id)).collect();
            if age_ms < center.in_flight_window().as_millis() as i64
                || center.checkouts.any_item_live(&items).await.map_err(redis_down)?
            {
                return Err(CheckoutError::CouponUsed);
            }
            for (sku, items) in by_sku(&order) {
                let ids: Vec<OrderId> = items.iter().map(|item| item.order_id).collect();
                let cancelled =
                    center.sales.tcc_cancel(&sku, &ids, &center.confirm_windows()).await.map_err(redis_down)?;
                if cancelled.iter().any(|item| !matches!(item, CancelledItem::Empty | CancelledItem::Closed)) {
                    // Held or paid since the look above: it lives.
                    return Err(CheckoutError::CouponUsed);
                }
            }
        }
        // A holder is stored before it freezes the coupon, its record
        // outlives any hold and any payment window, and a paid one marks
        // the coupon used: a frozen holder without a record is long over.
    }
    if !center.checkouts.swap_coupon_holder(user_id, code, holder, Some(parent)).await.map_err(redis_down)? {
        return Err(CheckoutError::CouponUsed);
    }
    Ok(())
}

pub(super) async fn unfreeze_coupon(center: &OrderCenter, order: &CheckoutOrder) {
    let Some(code) = &order.coupon else { return };
    if let Err(err) = center.checkouts.swap_coupon_holder(order.user_id, code, Some(order.order_id), None).await {
        // Its next use finds the checkout dead and takes it over.
        tracing::warn!(order_id = %order.order_id, error = %err, "coupon left frozen by a refused checkout");
    }
}
