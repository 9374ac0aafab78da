//! A buyer changing the delivery region of an order awaiting payment (seed
//! 001's "modification" before payment). For a sale split over warehouses
//! the scheduling rules run again and the order's units move to the
//! warehouse they choose, atomically (`readdress.lua`); the change is
//! refused when no warehouse serving the region can take it. A payment or
//! cancellation racing it comes before or after, never in between.

use chrono::Utc;
use order::event::{OrderEvent, OrderReaddressed};
use order::id::OrderId;
use order::request::NewAddress;
use order::status::OrderStatus;
use stock::Readdressed;

use crate::center::OrderCenter;
use crate::order_moves::current_status;
use crate::outcomes::OrderError;
use crate::refusal::{down, Dependency};

/// Moves the order to the warehouse its new region is served from; the
/// warehouse it is in after (`None` for a sale in one pool).
pub async fn change_region(
    center: &OrderCenter,
    order_id: OrderId,
    address: &NewAddress,
) -> Result<Option<String>, OrderError> {
    let (sku, user_id) = (address.owner.sku.as_str(), address.owner.user_id);
    let serving = center.serving_warehouses(Some(&address.region));
    let readdressed =
        center.sales.readdress(sku, order_id, user_id, &serving).await.map_err(down(Dependency::Redis, "readdress"))?;
    match readdressed {
        Readdressed::Kept(warehouse) => Ok(warehouse),
        Readdressed::Moved(warehouse) => {
            let event = OrderEvent::OrderReaddressed(OrderReaddressed {
                order_id,
                user_id,
                sku: sku.to_owned(),
                region: address.region.clone(),
                warehouse: Some(warehouse.clone()),
                at: Utc::now(),
            });
            // The move stands either way: the order's payment or
            // cancellation carries its warehouse to MySQL too.
            if let Err(err) = center.publish(&event).await {
                tracing::warn!(%order_id, error = %err, "readdress event not acknowledged; the order's next move carries its warehouse");
            }
            Ok(Some(warehouse))
        }
        Readdressed::NoWarehouse => Err(OrderError::NoWarehouse),
        Readdressed::CartItem => Err(OrderError::CartItem),
        Readdressed::Unacknowledged => Err(OrderError::NotYetAccepted),
        Readdressed::NotPending { paid: true } => Err(OrderError::NotPending { status: Some(OrderStatus::Paid) }),
        Readdressed::NotPending { paid: false } => Err(OrderError::NotPending { status: Some(OrderStatus::Cancelled) }),
        // Not in this sale (replaced since, another SKU's, or never this
        // buyer's): the order's shard knows whether it is past pending.
        Readdressed::NotFound => match current_status(center, order_id, Some(user_id)).await? {
            OrderStatus::PendingPayment => Err(OrderError::UnknownOrder),
            status => Err(OrderError::NotPending { status: Some(status) }),
        },
    }
}
