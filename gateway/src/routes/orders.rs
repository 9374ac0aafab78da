//! `POST /v1/orders` (the hot path), `POST /v1/orders/{id}/cancel`,
//! `POST /v1/orders/{id}/address` and `GET /v1/orders/{id}`: parse, call the
//! workflow, map its outcome.

use std::sync::Arc;

use hyper::header::HeaderValue;
use hyper::StatusCode;
use order::request::{NewAddress, PlaceOrder, StorefrontChannel};
use order::status::OrderStatus;

use crate::app::App;
use crate::config::LimitedRoute;
use crate::error::ApiError;
use crate::http::{self, Read, Reply};
use crate::routes::admin::authorize;
use crate::routes::input;
use ordercenter::outcomes::OrderError;
use ordercenter::refusal::down;
use ordercenter::refusal::Dependency;
use ordercenter::{cancellation, placement, readdress};

/// 202 for the request that made the order; 200 with `Idempotent-Replayed`
/// for a repeat of its key; 422 if the repeat changed the request.
pub async fn place(
    app: Arc<App>,
    req: Read,
    buyer: u64,
    channel: Option<StorefrontChannel>,
) -> Result<Reply, ApiError> {
    let key = input::idempotency_key(req.headers())?;
    http::require_json(req.headers())?;
    let order = PlaceOrder { channel, ..PlaceOrder::from_json(req.body(), buyer)? };
    app.traffic.load().admit_user(LimitedRoute::PlaceOrder, order.user_id)?;
    app.center.sale_windows.check(&order.sku)?;
    let placed = placement::place(app.center.clone(), order, key).await?;
    if placed.replayed {
        let mut reply = http::json(StatusCode::OK, &placed.accepted);
        reply.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        Ok(reply)
    } else {
        Ok(http::json(StatusCode::ACCEPTED, &placed.accepted))
    }
}

/// `{"sku", "user_id"?}`: the buyer cancels an order of theirs. A pending
/// one's units go back at once; a paid one not shipped yet is refunded
/// (`refund` in the answer), once the warehouse intercepted it if it was
/// pushed there. 409 once shipped, cancelled or completed.
pub async fn cancel(app: &App, order_id: &str, req: Read, buyer: u64) -> Result<Reply, ApiError> {
    let order_id = input::order_id(order_id)?;
    let owner = input::owner(&req, buyer)?;
    app.traffic.load().admit_user(LimitedRoute::CancelOrder, owner.user_id)?;
    let refund = cancellation::cancel(&app.center, &owner.sku, order_id, owner.user_id).await?;
    let answer = serde_json::json!({"order_id": order_id, "status": OrderStatus::Cancelled, "refund": refund});
    Ok(http::json(StatusCode::OK, &answer))
}

/// `{"sku", "region", "user_id"?}`: the buyer moves an order awaiting
/// payment to another delivery region; for a sale split over warehouses
/// the scheduling rules choose its warehouse again (409 `no_warehouse` when
/// none serving the region can take it).
pub async fn change_address(app: &App, order_id: &str, req: Read, buyer: u64) -> Result<Reply, ApiError> {
    let order_id = input::order_id(order_id)?;
    http::require_json(req.headers())?;
    let address = NewAddress::from_json(req.body(), buyer)?;
    app.traffic.load().admit_user(LimitedRoute::CancelOrder, address.owner.user_id)?;
    let warehouse = readdress::change_region(&app.center, order_id, &address).await?;
    let answer = serde_json::json!({"order_id": order_id, "region": address.region, "warehouse": warehouse});
    Ok(http::json(StatusCode::OK, &answer))
}

/// The buyer's order with its history, refunds and after-sale requests; another buyer's is answered 404
/// like an unknown one, so order ids say nothing.
pub async fn get(app: &App, order_id: &str, buyer: u64) -> Result<Reply, ApiError> {
    app.traffic.load().admit_user(LimitedRoute::GetOrder, buyer)?;
    view(app, order_id, Some(buyer)).await
}

/// `GET /admin/orders/{id}`: the merchant's view of any order, the same
/// answer as its buyer's.
pub async fn get_as_merchant(app: &App, order_id: &str, req: Read) -> Result<Reply, ApiError> {
    authorize(app, req.headers())?;
    view(app, order_id, None).await
}

/// The order with its history, refunds and after-sale requests (through the
/// hot-order cache); unknown if it is not `owner`'s.
async fn view(app: &App, order_id: &str, owner: Option<u64>) -> Result<Reply, ApiError> {
    let order_id = input::order_id(order_id)?;
    let view = app
        .center
        .order_view(order_id, owner)
        .await
        .map_err(down(Dependency::Mysql, "order lookup"))?
        .ok_or(OrderError::UnknownOrder)?;
    Ok(http::json(StatusCode::OK, &view))
}
