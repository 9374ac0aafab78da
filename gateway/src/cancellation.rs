//! A buyer cancelling a pending order of theirs: `cancel.lua` gives the
//! units back at once and puts the cancellation in the sale's outbox; the
//! event goes to Kafka now if it can, else the settler's sweeper sends it
//! from the outbox. Paid or cancelled orders stay as they are.

use chrono::Utc;
use order::event::{CancelReason, OrderCancelled, OrderEvent};
use order::id::OrderId;
use order::status::OrderStatus;
use stock::{Cancellation, Strike};

use crate::app::App;
use crate::outcomes::OrderError;
use crate::refusal::Dependency;

pub async fn cancel(app: &App, sku: &str, order_id: OrderId, user_id: u64) -> Result<(), OrderError> {
    let cancellation = app.sales.cancel(sku, order_id, user_id).await.map_err(|err| {
        tracing::warn!(%order_id, error = %err, "cancel failed");
        OrderError::Unavailable(Dependency::Redis)
    })?;
    match cancellation {
        Cancellation::Cancelled { outbox_entry, reservation } => {
            app.sold_out.clear(sku);
            let event = OrderEvent::OrderCancelled(OrderCancelled {
                order: reservation.order(order_id, sku),
                reason: CancelReason::User,
                cancelled_at: Utc::now(),
            });
            // The cancellation stands either way: if the event cannot go
            // now, the settler's sweeper sends it from the outbox.
            if app.publish(&event).await.is_ok() {
                let strike = Strike { user_id, window_secs: app.config.abuse.window_secs };
                if let Err(err) = app.sales.cancellation_sent(sku, &outbox_entry, Some(strike)).await {
                    tracing::warn!(%order_id, error = %err, "cancellation left in the outbox; it will be sent again");
                }
            }
            Ok(())
        }
        Cancellation::NotPending { paid } => {
            Err(OrderError::NotPending { status: Some(if paid { OrderStatus::Paid } else { OrderStatus::Cancelled }) })
        }
        Cancellation::NotFound => Err(OrderError::UnknownOrder),
    }
}
