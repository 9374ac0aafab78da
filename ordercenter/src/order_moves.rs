//! One move of an order in its shard, as the workflows answer it: the
//! order's status, the move (`orderdb::moves`), its outcome as an
//! [`OrderError`] or the change made, and the warehouse's refusals.

use chrono::Utc;
use order::event::{OrderStatusChanged, Shipment};
use order::id::OrderId;
use order::lifecycle::{Action, Actor};
use order::status::OrderStatus;
use orderdb::moves::{Move, Moved};
use paychannel::warehouse::WarehouseError;

use crate::center::OrderCenter;
use crate::outcomes::OrderError;
use crate::refusal::{down, Dependency};

/// The order's status in its shard; unknown if it is not `owner`'s.
pub async fn current_status(
    center: &OrderCenter,
    order_id: OrderId,
    owner: Option<u64>,
) -> Result<OrderStatus, OrderError> {
    center
        .services
        .orders
        .status_of(order_id, owner)
        .await
        .map_err(down(Dependency::Mysql, "an order move"))?
        .ok_or(OrderError::UnknownOrder)
}

/// Makes one move of the table in the order's shard.
pub async fn make(
    center: &OrderCenter,
    order_id: OrderId,
    action: Action,
    actor: Actor,
    owner: Option<u64>,
    shipment: Option<Shipment>,
) -> Result<OrderStatusChanged, OrderError> {
    let request = Move { order_id, action, actor, owner, shipment, intercepted: false, at: Utc::now() };
    moved(
        center,
        center.services.orders.transition(&request).await.map_err(down(Dependency::Mysql, "an order move"))?,
        action,
    )
    .await
}

/// The warehouse state a move reports when the order was pushed after its
/// status was read, so nobody asked the warehouse to intercept it.
pub const NOT_INTERCEPTED: &str = "not_intercepted";

/// A move's outcome as the API answers it; a move made drops the order's
/// cached view. Only a cancellation of a pushed order needs an
/// interception first, and its workflow asks for one and tries again
/// before it gets here.
pub async fn moved(center: &OrderCenter, moved: Moved, action: Action) -> Result<OrderStatusChanged, OrderError> {
    match moved {
        Moved::Done(changed) => {
            center.forget_order(changed.order.order_id).await;
            metrics::counter!("gateway_order_moves_total", "action" => action.as_str()).increment(1);
            Ok(*changed)
        }
        Moved::Refused(refused) => Err(refused.into()),
        Moved::Unknown => Err(OrderError::UnknownOrder),
        Moved::NeedsInterception => Err(OrderError::WarehouseRefused { state: NOT_INTERCEPTED.into() }),
    }
}

pub fn warehouse_error(err: WarehouseError) -> OrderError {
    match err {
        WarehouseError::Refused { state } => OrderError::WarehouseRefused { state },
        err => {
            tracing::warn!(error = %err, "warehouse call failed");
            OrderError::Unavailable(Dependency::Warehouse)
        }
    }
}
