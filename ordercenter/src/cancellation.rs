//! A buyer cancelling an order of theirs; and the cancellation of an order
//! whose payment found its sale's units gone (a sale deducting at payment).
//!
//! Pending payment: `cancel.lua` gives the units back at once and puts the
//! cancellation in the sale's outbox; the event goes to Kafka now if it
//! can, else the settler's sweeper sends it from the outbox.
//!
//! Paid, not shipped (seed 002's "cancel while pending shipment"): if the
//! order was not pushed to the warehouse, the move itself stops the push
//! (a push is a move from PAID too, and only one of them is made); if it
//! was, the warehouse must intercept it first, and a refused interception
//! (picking started) refuses the cancellation. The move records the refund
//! and its event in the order's shard; the settler's relay returns the
//! units to the sale and sends the event.

use chrono::Utc;
use order::event::{CancelReason, OrderCancelled, OrderEvent, Refund};
use order::id::OrderId;
use order::lifecycle::{Action, Actor};
use order::status::OrderStatus;
use orderdb::moves::{Move, Moved};
use stock::{Cancellation, ReservationRecord, Strike};

use crate::adoption;
use crate::center::OrderCenter;
use crate::order_moves::{current_status, moved, warehouse_error};
use crate::outcomes::OrderError;
use crate::refusal::down;
use crate::refusal::Dependency;

/// Cancels the order; the refund started, for a paid one.
pub async fn cancel(
    center: &OrderCenter,
    sku: &str,
    order_id: OrderId,
    user_id: u64,
) -> Result<Option<Refund>, OrderError> {
    adoption::adopt_first(center, order_id, Some(user_id)).await;
    let cancellation = center.sales.cancel(sku, order_id, user_id).await.map_err(down(Dependency::Redis, "cancel"))?;
    match cancellation {
        Cancellation::Cancelled { outbox_entry, reservation } => {
            center.sold_out.clear(sku);
            // MySQL hears of it through Kafka; readers see it now.
            center.record_move(order_id, OrderStatus::Cancelled).await;
            let event = OrderEvent::OrderCancelled(OrderCancelled {
                order: reservation.order(order_id, sku),
                reason: CancelReason::User,
                cancelled_at: Utc::now(),
            });
            // The cancellation stands either way: if the event cannot go
            // now, the settler's sweeper sends it from the outbox.
            if center.publish(&event).await.is_ok() {
                let strike = Strike { user_id, window_secs: center.settings.abuse.window_secs };
                if let Err(err) = center.sales.cancellation_sent(sku, &outbox_entry, Some(strike)).await {
                    tracing::warn!(%order_id, error = %err, "cancellation left in the outbox; it will be sent again");
                }
            }
            Ok(None)
        }
        Cancellation::NotPending { paid: false } => {
            Err(OrderError::InvalidTransition { status: OrderStatus::Cancelled, action: Action::Cancel })
        }
        // Paid, or unknown to the sale (replaced since): the order's shard knows.
        Cancellation::NotPending { paid: true } | Cancellation::NotFound => {
            cancel_after_payment(center, order_id, user_id).await.map(Some)
        }
    }
}

/// Sends the cancellation of an order whose payment found its sale's units
/// gone (`confirm.lua` cancelled it); if the broker does not take it now,
/// the settler's sweeper sends it from the outbox.
pub async fn sold_out(
    center: &OrderCenter,
    sku: &str,
    order_id: OrderId,
    reservation: &ReservationRecord,
    outbox_entry: &str,
) {
    center.record_move(order_id, OrderStatus::Cancelled).await;
    let event = OrderEvent::OrderCancelled(OrderCancelled {
        order: reservation.order(order_id, sku),
        reason: CancelReason::SoldOut,
        cancelled_at: Utc::now(),
    });
    if center.publish(&event).await.is_ok() {
        if let Err(err) = center.sales.cancellation_sent(sku, outbox_entry, None).await {
            tracing::warn!(%order_id, error = %err, "cancellation left in the outbox; it will be sent again");
        }
    }
}

/// A pushed order is intercepted first. If it was pushed between the read
/// of its status and the move, the move says so and the cancellation
/// starts again: it is never made without the interception.
async fn cancel_after_payment(center: &OrderCenter, order_id: OrderId, user_id: u64) -> Result<Refund, OrderError> {
    loop {
        let status = current_status(center, order_id, Some(user_id)).await?;
        match status {
            // Paid in Redis, its event not stored yet: ask again in a moment.
            OrderStatus::PendingPayment => return Err(OrderError::NotPending { status: Some(OrderStatus::Paid) }),
            OrderStatus::InWarehouse => {
                center.services.warehouse.intercept(&order_id.to_string()).await.map_err(warehouse_error)?;
            }
            _ => {}
        }
        let request = Move {
            order_id,
            action: Action::Cancel,
            actor: Actor::Buyer,
            owner: Some(user_id),
            shipment: None,
            intercepted: status == OrderStatus::InWarehouse,
            at: Utc::now(),
        };
        let outcome =
            center.services.orders.transition(&request).await.map_err(down(Dependency::Mysql, "an order move"))?;
        if matches!(outcome, Moved::NeedsInterception) {
            continue;
        }
        let changed = moved(center, outcome, Action::Cancel).await?;
        return changed.refund.ok_or(OrderError::InvalidTransition { status, action: Action::Cancel });
    }
}
