//! The member points a checkout spends: taken from the buyer's balance
//! before any unit is tried (once, however often the checkout is driven),
//! given back whole when the checkout is refused. Once its items live,
//! each item's points come back as it is cancelled or returned (in the
//! orders database, with the item's move).

use order::checkout::CheckoutOrder;
use order::id::OrderId;
use orderdb::points::Spent;

use crate::center::OrderCenter;
use crate::outcomes::CheckoutError;
use crate::refusal::{down, Dependency};

pub(super) async fn spend(center: &OrderCenter, order: &CheckoutOrder) -> Result<(), CheckoutError> {
    if order.points == 0 {
        return Ok(());
    }
    let items: Vec<(OrderId, u64)> = order.items().map(|(_, item)| (item.order_id, item.points)).collect();
    let spent = center
        .services
        .orders
        .spend_points(order.user_id, order.order_id, &items)
        .await
        .map_err(down(Dependency::Mysql, "spending member points"))?;
    match spent {
        Spent::Done => Ok(()),
        Spent::Short { balance } => Err(CheckoutError::InsufficientPoints { balance, points: order.points }),
    }
}

/// Nothing holds the refused checkout's items: every point it spent goes back.
pub(super) async fn give_back(center: &OrderCenter, order: &CheckoutOrder) {
    if order.points == 0 {
        return;
    }
    let items: Vec<OrderId> = order.items().map(|(_, item)| item.order_id).collect();
    if let Err(err) = center.services.orders.give_back_points(order.user_id, &items).await {
        // No order row will ever name its items: the settler's sweep of
        // lost items gives them back.
        tracing::warn!(order_id = %order.order_id, error = %err, "a refused checkout's points not given back yet");
    }
}
