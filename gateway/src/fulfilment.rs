//! A paid order's road to the buyer: the merchant pushes it to the
//! warehouse and ships it, the buyer confirms receipt (or the settler
//! completes it after `lifecycle.auto_complete_after_secs`). Every move is
//! the state machine's (`order::lifecycle`), made in the order's shard with
//! its history and outbox rows (`orderdb::moves`).
//!
//! The warehouse decides a parcel's fate once: shipped or intercepted. So a
//! shipment is asked of the warehouse before the order moves to SHIPPED,
//! and a cancellation of a pushed order asks for the interception first
//! (`cancellation.rs`): whichever the warehouse grants is the one that can
//! move the order. Both are safe to repeat: the warehouse answers a repeat
//! like the first, and a move already made is refused by the table.

use chrono::Utc;
use order::event::{OrderStatusChanged, Shipment};
use order::id::OrderId;
use order::lifecycle::{self, Action, Actor};
use order::status::OrderStatus;
use orderdb::moves::{Move, Moved};
use paychannel::warehouse::{Parcel, WarehouseError, WarehouseOrder};

use crate::answers::down;
use crate::app::App;
use crate::outcomes::OrderError;
use crate::refusal::Dependency;

/// Hands a paid order to the warehouse: the move, then the warehouse at
/// once. If the warehouse does not answer, the settler's relay hands it
/// over from the move's outbox row (the warehouse answers a repeat like
/// the first), so the push stands either way.
pub async fn push(app: &App, order_id: OrderId) -> Result<OrderStatus, OrderError> {
    let changed = make(app, order_id, Action::Push, Actor::Merchant, None, None).await?;
    let handed = WarehouseOrder { order_id: order_id.to_string(), sku: changed.order.sku, qty: changed.order.qty };
    if let Err(err) = app.warehouse.push(&handed).await {
        tracing::warn!(%order_id, error = %err, "warehouse push failed; the relay hands the order over");
    }
    Ok(changed.to)
}

/// Ships a pushed order: the warehouse first (it refuses an intercepted
/// order), then the move.
pub async fn ship(app: &App, order_id: OrderId, shipment: Shipment) -> Result<OrderStatus, OrderError> {
    let status = current_status(app, order_id, None).await?;
    lifecycle::next(status, Action::Ship, Actor::Merchant)?;
    let parcel = Parcel { carrier: shipment.carrier.clone(), tracking_no: shipment.tracking_no.clone() };
    app.warehouse.ship(&order_id.to_string(), &parcel).await.map_err(warehouse_error)?;
    Ok(make(app, order_id, Action::Ship, Actor::Merchant, None, Some(shipment)).await?.to)
}

/// The buyer confirms receipt: the order completes.
pub async fn receive(app: &App, order_id: OrderId, buyer: u64) -> Result<OrderStatus, OrderError> {
    Ok(make(app, order_id, Action::Receive, Actor::Buyer, Some(buyer), None).await?.to)
}

/// The order's status in its shard; unknown if it is not `owner`'s.
pub async fn current_status(app: &App, order_id: OrderId, owner: Option<u64>) -> Result<OrderStatus, OrderError> {
    app.orders
        .status_of(order_id, owner)
        .await
        .map_err(down(Dependency::Mysql, "an order move"))?
        .ok_or(OrderError::UnknownOrder)
}

/// Makes one move of the table in the order's shard.
pub async fn make(
    app: &App,
    order_id: OrderId,
    action: Action,
    actor: Actor,
    owner: Option<u64>,
    shipment: Option<Shipment>,
) -> Result<OrderStatusChanged, OrderError> {
    let request = Move { order_id, action, actor, owner, shipment, intercepted: false, at: Utc::now() };
    moved(app, app.orders.transition(&request).await.map_err(down(Dependency::Mysql, "an order move"))?, action).await
}

/// The warehouse state a move reports when the order was pushed after its
/// status was read, so nobody asked the warehouse to intercept it.
pub const NOT_INTERCEPTED: &str = "not_intercepted";

/// A move's outcome as the API answers it; a move made drops the order's
/// cached view. Only a cancellation of a pushed order needs an
/// interception first, and its workflow asks for one and tries again
/// before it gets here.
pub async fn moved(app: &App, moved: Moved, action: Action) -> Result<OrderStatusChanged, OrderError> {
    match moved {
        Moved::Done(changed) => {
            app.forget_order(changed.order.order_id).await;
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
