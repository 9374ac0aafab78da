//! After-sale requests (seed 002): the buyer asks for a refund before
//! shipment, a return with refund, or an exchange; the merchant reviews,
//! the warehouse receives the goods back, the refund goes through the
//! channel, an exchange's replacement ships. The request's own table
//! (`order::after_sale`) decides every move (`orderdb::after_sales`).
//!
//! A refund before shipment of an order not pushed to the warehouse is
//! approved at once; one already pushed needs the warehouse to intercept
//! it, asked on approval (a refused interception refuses the approval).

use chrono::Utc;
use order::after_sale::{Action, Kind, Status};
use order::event::Shipment;
use order::id::OrderId;
use order::lifecycle::Actor;
use order::shard::bucket_for_user;
use order::status::OrderStatus;
use orderdb::after_sales::{AfterSaleMove, AfterSaleMoved, AfterSaleView, NewAfterSale, Opened};
use orderdb::ShardPools;
use paychannel::warehouse::{outbound_order_id, HttpWarehouse, Parcel, WarehouseOrder};

use crate::center::OrderCenter;
use crate::order_moves::{current_status, warehouse_error, NOT_INTERCEPTED};
use crate::outcomes::OrderError;
use crate::refusal::{down, Dependency};

/// What the buyer asks.
pub struct Request {
    pub kind: Kind,
    pub qty: u32,
    pub reason: String,
}

/// Opens a request on an order of `buyer`'s.
pub async fn open(
    center: &OrderCenter,
    order_id: OrderId,
    buyer: u64,
    request: Request,
) -> Result<AfterSaleView, OrderError> {
    if !center.node.held() {
        return Err(OrderError::Unavailable(Dependency::Redis));
    }
    let now = Utc::now();
    let new = NewAfterSale {
        after_sale_id: center.ids.next(bucket_for_user(buyer), now.timestamp_millis()),
        order_id,
        owner: buyer,
        kind: request.kind,
        qty: request.qty,
        reason: request.reason,
        at: now,
    };
    let opened = match center
        .services
        .orders
        .open_after_sale(&new)
        .await
        .map_err(down(Dependency::Mysql, "an after-sale write"))?
    {
        Opened::Done(opened) => {
            center.forget_order(order_id).await;
            opened
        }
        Opened::NotNow { status } => return Err(OrderError::AfterSaleNotAllowed { status }),
        Opened::TooMany { left } => return Err(OrderError::NotReturnable { left }),
        Opened::Unknown => return Err(OrderError::UnknownOrder),
    };
    metrics::counter!("gateway_after_sales_total", "kind" => opened.kind.as_str()).increment(1);
    // Not pushed to the warehouse: nothing to stop, approved at once.
    if opened.kind == Kind::RefundOnly && current_status(center, order_id, None).await? == OrderStatus::Paid {
        if let Ok(approved) = make(center, opened.after_sale_id, Action::Approve, Actor::System, None, false).await {
            return Ok(approved);
        }
    }
    Ok(opened)
}

/// The merchant's (or warehouse's) move of a request: `approve`
/// (`return_address`), `reject` (`reason`), `receive` (the goods came
/// back), `ship` (an exchange's replacement, with its parcel).
pub async fn act(
    center: &OrderCenter,
    after_sale_id: OrderId,
    action: Action,
    text: Option<String>,
    parcel: Option<Shipment>,
) -> Result<AfterSaleView, OrderError> {
    let request = center
        .services
        .orders
        .after_sale(after_sale_id)
        .await
        .map_err(down(Dependency::Mysql, "an after-sale write"))?
        .ok_or(OrderError::UnknownOrder)?;
    if action == Action::Approve && request.kind == Kind::RefundOnly {
        return approve_refund_before_shipment(center, &request, text).await;
    }
    if let (Action::ShipReplacement, Some(parcel)) = (action, &parcel) {
        order::after_sale::next(request.kind, request.status, action, Actor::Merchant)?;
        let parcel = Parcel { carrier: parcel.carrier.clone(), tracking_no: parcel.tracking_no.clone() };
        center.services.warehouse.ship(&outbound_order_id(after_sale_id), &parcel).await.map_err(warehouse_error)?;
    }
    let moved = make(center, after_sale_id, action, Actor::Merchant, text, false).await?;
    if moved.status == Status::ExchangeOutbound {
        // The relay hands it over too, if this does not reach the warehouse.
        let outbound = WarehouseOrder {
            order_id: outbound_order_id(after_sale_id),
            sku: order_sku(center, &moved).await?,
            qty: moved.qty,
        };
        if let Err(err) = center.services.warehouse.push(&outbound).await {
            tracing::warn!(%after_sale_id, error = %err, "exchange outbound not handed over; the relay will");
        }
    }
    Ok(moved)
}

/// The system's review of a request nobody reviewed in time (the
/// settler's timer): approved, or escalated if `escalate`. A refund before
/// shipment of a pushed order needs the warehouse to intercept it first;
/// if it cannot, the request is escalated. True if the request moved.
pub async fn review_overdue(
    orders: &ShardPools,
    warehouse: &HttpWarehouse,
    after_sale_id: OrderId,
    escalate: bool,
) -> Result<bool, sqlx::Error> {
    let Some(request) = orders.after_sale(after_sale_id).await? else { return Ok(false) };
    let mut action = if escalate { Action::Escalate } else { Action::Approve };
    // Still pending review (a merchant may have moved it since it was listed)?
    if order::after_sale::next(request.kind, request.status, action, Actor::System).is_err() {
        return Ok(false);
    }
    let mut intercepted = false;
    if action == Action::Approve
        && request.kind == Kind::RefundOnly
        && orders.status_of(request.order_id, None).await? == Some(OrderStatus::InWarehouse)
    {
        intercepted = warehouse.intercept(&request.order_id.to_string()).await.is_ok();
        if !intercepted {
            action = Action::Escalate;
        }
    }
    let step = AfterSaleMove {
        after_sale_id,
        action,
        actor: Actor::System,
        return_address: None,
        reject_reason: None,
        intercepted,
        at: Utc::now(),
    };
    Ok(match orders.after_sale_move(&step).await? {
        AfterSaleMoved::Done(_) => true,
        // The order moved on (shipped before a refund-only request was
        // reviewed): customer service decides.
        AfterSaleMoved::OrderRefused(_) => {
            let escalate = AfterSaleMove { action: Action::Escalate, intercepted: false, ..step };
            matches!(orders.after_sale_move(&escalate).await?, AfterSaleMoved::Done(_))
        }
        // Pushed since it was read (it needs an interception): next round.
        AfterSaleMoved::NeedsInterception | AfterSaleMoved::Refused(_) | AfterSaleMoved::Unknown => false,
    })
}

/// A pushed order is intercepted first; if it was pushed between the read
/// of its status and the move, the move says so and the approval starts again.
async fn approve_refund_before_shipment(
    center: &OrderCenter,
    request: &AfterSaleView,
    text: Option<String>,
) -> Result<AfterSaleView, OrderError> {
    // The request's own table first: an interception for a request that
    // cannot be approved would stop a parcel nobody refunds.
    order::after_sale::next(request.kind, request.status, Action::Approve, Actor::Merchant)?;
    loop {
        let pushed = current_status(center, request.order_id, None).await? == OrderStatus::InWarehouse;
        if pushed {
            center.services.warehouse.intercept(&request.order_id.to_string()).await.map_err(warehouse_error)?;
        }
        match attempt(center, request.after_sale_id, Action::Approve, Actor::Merchant, text.clone(), pushed).await? {
            AfterSaleMoved::NeedsInterception => continue,
            moved => return answer(center, moved, Action::Approve).await,
        }
    }
}

async fn order_sku(center: &OrderCenter, request: &AfterSaleView) -> Result<String, OrderError> {
    let order = center
        .services
        .orders
        .get(request.order_id)
        .await
        .map_err(down(Dependency::Mysql, "an after-sale write"))?
        .ok_or(OrderError::UnknownOrder)?;
    Ok(order.sku)
}

async fn make(
    center: &OrderCenter,
    after_sale_id: OrderId,
    action: Action,
    actor: Actor,
    text: Option<String>,
    intercepted: bool,
) -> Result<AfterSaleView, OrderError> {
    answer(center, attempt(center, after_sale_id, action, actor, text, intercepted).await?, action).await
}

/// One move of a request in its shard, as `orderdb` answers it.
async fn attempt(
    center: &OrderCenter,
    after_sale_id: OrderId,
    action: Action,
    actor: Actor,
    text: Option<String>,
    intercepted: bool,
) -> Result<AfterSaleMoved, OrderError> {
    let (return_address, reject_reason) = match action {
        Action::Approve => (text, None),
        Action::Reject => (None, text),
        _ => (None, None),
    };
    let request =
        AfterSaleMove { after_sale_id, action, actor, return_address, reject_reason, intercepted, at: Utc::now() };
    Ok(center
        .services
        .orders
        .after_sale_move(&request)
        .await
        .map_err(down(Dependency::Mysql, "an after-sale write"))?)
}

/// A request's move as the API answers it; a move made drops its order's
/// cached view. Only an approval of a refund before shipment needs an
/// interception first, and its workflow asks for one and tries again
/// before it gets here.
async fn answer(center: &OrderCenter, moved: AfterSaleMoved, action: Action) -> Result<AfterSaleView, OrderError> {
    match moved {
        AfterSaleMoved::Done(moved) => {
            center.forget_order(moved.order_id).await;
            metrics::counter!("gateway_after_sale_moves_total", "action" => action.as_str()).increment(1);
            Ok(moved)
        }
        AfterSaleMoved::Refused(refused) => Err(refused.into()),
        AfterSaleMoved::OrderRefused(refused) => Err(refused.into()),
        AfterSaleMoved::Unknown => Err(OrderError::UnknownOrder),
        AfterSaleMoved::NeedsInterception => Err(OrderError::WarehouseRefused { state: NOT_INTERCEPTED.into() }),
    }
}
