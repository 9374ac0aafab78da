//! `POST /admin/orders/{id}/push`, `POST /admin/orders/{id}/ship`
//! (the merchant, with an admin token) and `POST /v1/orders/{id}/receive`
//! (the buyer). Each answers the order's status after the move; a move the
//! state machine does not allow from the order's status is
//! 409 `invalid_transition`.

use hyper::StatusCode;
use order::event::Shipment;
use order::request::check_token;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::config::LimitedRoute;
use crate::error::ApiError;
use crate::http::{self, Read, Reply};
use crate::routes::admin::{authorize, json_body};
use crate::routes::input;
use ordercenter::fulfilment;

/// Longest carrier name.
const MAX_CARRIER_LEN: usize = 32;

/// The merchant's action on an order, from the path.
pub async fn admin_action(app: &App, order_id: &str, action: &str, req: Read) -> Result<Reply, ApiError> {
    let admin = authorize(app, req.headers())?;
    let order_id = input::order_id(order_id)?;
    let status = match action {
        "push" => fulfilment::push(&app.center, order_id).await?,
        "ship" => fulfilment::ship(&app.center, order_id, shipment(&req)?).await?,
        _ => return Err(ApiError::NotFound),
    };
    tracing::info!(target: "audit", admin, action, %order_id, %status, "order moved");
    Ok(http::json(StatusCode::OK, &json!({"order_id": order_id, "status": status})))
}

/// `{"carrier", "tracking_no"}`.
pub(crate) fn shipment(req: &Read) -> Result<Shipment, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        carrier: String,
        tracking_no: String,
    }
    let body: Body = json_body(req)?;
    check_token("carrier", &body.carrier).map_err(|e| ApiError::Invalid(e.0))?;
    if body.carrier.len() > MAX_CARRIER_LEN {
        return Err(ApiError::Invalid(format!("carrier must be at most {MAX_CARRIER_LEN} characters")));
    }
    check_token("tracking_no", &body.tracking_no).map_err(|e| ApiError::Invalid(e.0))?;
    Ok(Shipment { carrier: body.carrier, tracking_no: body.tracking_no })
}

/// The buyer confirms receipt of a shipped order of theirs.
pub async fn receive(app: &App, order_id: &str, buyer: u64) -> Result<Reply, ApiError> {
    let order_id = input::order_id(order_id)?;
    app.traffic.load().admit_user(LimitedRoute::ReceiveOrder, buyer)?;
    let status = fulfilment::receive(&app.center, order_id, buyer).await?;
    Ok(http::json(StatusCode::OK, &json!({"order_id": order_id, "status": status})))
}
