//! Member points: the buyer's balance (`GET /v1/points`), and an
//! operator's look and grant (`GET`, `POST /admin/points/{user_id}`). What a
//! checkout spends and what comes back move with the orders, in their shard.

use hyper::{Method, StatusCode};
use order::request::check_token;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::config::LimitedRoute;
use crate::error::ApiError;
use crate::http::{self, Read, Reply};
use crate::routes::admin::{authorize, json_body};
use ordercenter::refusal::{down, Dependency};

/// Most points one grant gives.
const MAX_GRANT: u64 = 1_000_000_000;

/// A grant: `{"grant_id", "points"}`; a repeat of its id grants nothing more.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    grant_id: String,
    points: u64,
}

pub async fn mine(app: &App, buyer: u64) -> Result<Reply, ApiError> {
    app.traffic.load().admit_user(LimitedRoute::GetOrder, buyer)?;
    let balance =
        app.center.services.reads.points_balance(buyer).await.map_err(down(Dependency::Mysql, "points balance"))?;
    Ok(http::json(StatusCode::OK, &json!({"user_id": buyer, "balance": balance})))
}

pub async fn admin(app: &App, user_id: &str, req: Read) -> Result<Reply, ApiError> {
    authorize(app, req.headers())?;
    let user_id = match user_id.parse::<u64>() {
        Ok(user_id) if user_id > 0 => user_id,
        _ => return Err(ApiError::Invalid("user_id must be a positive integer".into())),
    };
    let orders = &app.center.services.orders;
    if req.method() != Method::POST {
        let balance = orders.points_balance(user_id).await.map_err(down(Dependency::Mysql, "points balance"))?;
        return Ok(http::json(StatusCode::OK, &json!({"user_id": user_id, "balance": balance})));
    }
    let grant: Grant = json_body(&req)?;
    check_token("grant_id", &grant.grant_id).map_err(|e| ApiError::Invalid(e.0))?;
    if !(1..=MAX_GRANT).contains(&grant.points) {
        return Err(ApiError::Invalid(format!("points must be between 1 and {MAX_GRANT}")));
    }
    let (balance, granted) = orders
        .grant_points(user_id, &grant.grant_id, grant.points)
        .await
        .map_err(down(Dependency::Mysql, "granting points"))?;
    Ok(http::json(StatusCode::OK, &json!({"user_id": user_id, "balance": balance, "granted": granted})))
}
