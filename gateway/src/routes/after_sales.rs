//! `POST /v1/orders/{id}/after-sales` (the buyer asks) and
//! `POST /admin/after-sales/{id}/{approve|reject|receive|ship}` (the
//! merchant, with an admin token). Each answers the request as stored; a
//! move its table does not allow is 409 `invalid_transition`.

use hyper::StatusCode;
use order::after_sale::{Action, Kind};
use serde::Deserialize;

use crate::app::App;
use crate::config::LimitedRoute;
use crate::error::ApiError;
use crate::http::{self, Read, Reply};
use crate::routes::admin::{authorize, json_body};
use crate::routes::fulfilment::shipment;
use crate::routes::input;
use ordercenter::after_sales::{self, Request};

/// Longest reason, return address or rejection reason.
const MAX_TEXT: usize = 255;

/// `{"kind": "REFUND_ONLY" | "RETURN_REFUND" | "EXCHANGE", "qty", "reason"}`.
pub async fn open(app: &App, order_id: &str, req: Read, buyer: u64) -> Result<Reply, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        kind: String,
        qty: u32,
        reason: String,
    }
    let order_id = input::order_id(order_id)?;
    app.traffic.load().admit_user(LimitedRoute::AfterSale, buyer)?;
    let body: Body = json_body(&req)?;
    let kind = Kind::parse(&body.kind)
        .ok_or_else(|| ApiError::Invalid("kind must be REFUND_ONLY, RETURN_REFUND or EXCHANGE".into()))?;
    if body.qty == 0 {
        return Err(ApiError::Invalid("qty must be at least 1".into()));
    }
    let reason = text("reason", body.reason)?;
    let opened = after_sales::open(&app.center, order_id, buyer, Request { kind, qty: body.qty, reason }).await?;
    Ok(http::json(StatusCode::CREATED, &opened))
}

/// The merchant's move of a request.
pub async fn act(app: &App, after_sale_id: &str, action: &str, req: Read) -> Result<Reply, ApiError> {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Words {
        return_address: Option<String>,
        reason: Option<String>,
    }
    let admin = authorize(app, req.headers())?;
    let after_sale_id = input::order_id(after_sale_id)?;
    let words = |req: &Read| -> Result<Words, ApiError> {
        if req.body().is_empty() {
            Ok(Words::default())
        } else {
            json_body(req)
        }
    };
    let moved = match action {
        "approve" => {
            let address = words(&req)?.return_address.map(|a| text("return_address", a)).transpose()?;
            after_sales::act(&app.center, after_sale_id, Action::Approve, address, None).await?
        }
        "reject" => {
            let reason = words(&req)?.reason.ok_or_else(|| ApiError::Invalid("a rejection needs a reason".into()))?;
            after_sales::act(&app.center, after_sale_id, Action::Reject, Some(text("reason", reason)?), None).await?
        }
        "receive" => after_sales::act(&app.center, after_sale_id, Action::ReceiveReturn, None, None).await?,
        "ship" => {
            after_sales::act(&app.center, after_sale_id, Action::ShipReplacement, None, Some(shipment(&req)?)).await?
        }
        _ => return Err(ApiError::NotFound),
    };
    tracing::info!(target: "audit", admin, action, %after_sale_id, status = moved.status.as_str(), "after-sale moved");
    Ok(http::json(StatusCode::OK, &moved))
}

fn text(name: &str, value: String) -> Result<String, ApiError> {
    if value.trim().is_empty() || value.chars().count() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(ApiError::Invalid(format!("{name} must be 1-{MAX_TEXT} characters, no control characters")));
    }
    Ok(value)
}
