//! A paid order's road to the buyer: the merchant pushes it to the
//! warehouse and ships it, the buyer confirms receipt (or the settler
//! completes it after `lifecycle.auto_complete_after_secs`, [`auto_complete`]). Every move is
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
use order::event::Shipment;
use order::id::OrderId;
use order::lifecycle::{self, Action, Actor};
use order::status::OrderStatus;
use orderdb::moves::{Move, Moved};
use orderdb::ShardPools;
use paychannel::warehouse::{Parcel, WarehouseOrder};

use crate::center::OrderCenter;
use crate::order_moves::{current_status, make, warehouse_error};
use crate::outcomes::OrderError;

/// Hands a paid order to the warehouse: the move, then the warehouse at
/// once. If the warehouse does not answer, the settler's relay hands it
/// over from the move's outbox row (the warehouse answers a repeat like
/// the first), so the push stands either way.
pub async fn push(center: &OrderCenter, order_id: OrderId) -> Result<OrderStatus, OrderError> {
    let changed = make(center, order_id, Action::Push, Actor::Merchant, None, None).await?;
    let handed = WarehouseOrder { order_id: order_id.to_string(), sku: changed.order.sku, qty: changed.order.qty };
    if let Err(err) = center.services.warehouse.push(&handed).await {
        tracing::warn!(%order_id, error = %err, "warehouse push failed; the relay hands the order over");
    }
    Ok(changed.to)
}

/// Ships a pushed order: the warehouse first (it refuses an intercepted
/// order), then the move.
pub async fn ship(center: &OrderCenter, order_id: OrderId, shipment: Shipment) -> Result<OrderStatus, OrderError> {
    let status = current_status(center, order_id, None).await?;
    lifecycle::next(status, Action::Ship, Actor::Merchant)?;
    let parcel = Parcel { carrier: shipment.carrier.clone(), tracking_no: shipment.tracking_no.clone() };
    center.services.warehouse.ship(&order_id.to_string(), &parcel).await.map_err(warehouse_error)?;
    Ok(make(center, order_id, Action::Ship, Actor::Merchant, None, Some(shipment)).await?.to)
}

/// The buyer confirms receipt: the order completes.
pub async fn receive(center: &OrderCenter, order_id: OrderId, buyer: u64) -> Result<OrderStatus, OrderError> {
    Ok(make(center, order_id, Action::Receive, Actor::Buyer, Some(buyer), None).await?.to)
}

/// Completes a shipped order whose buyer did not confirm receipt in time,
/// a move of the same table by the system (the settler's timer). True if
/// it moved: a buyer's confirmation or an after-sale move that came first wins.
pub async fn auto_complete(orders: &ShardPools, order_id: OrderId) -> Result<bool, sqlx::Error> {
    let request = Move {
        order_id,
        action: Action::AutoComplete,
        actor: Actor::System,
        owner: None,
        shipment: None,
        intercepted: false,
        at: Utc::now(),
    };
    Ok(matches!(orders.transition(&request).await?, Moved::Done(_)))
}
