//! The admin API: load a sale, change a live one, look at its counters.
//! Behind a bearer token.

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, Request, StatusCode};
use order::request::check_sku;

use crate::app::App;
use crate::error::ApiError;
use crate::http::{self, Reply};
use crate::refusal::Dependency;
use stock::{SaleChange, SaleLoad, SaleTerms, SaleUpdate};

/// Largest stock, limit or price a sale takes: the products of price and
/// quantity stay below 2^53, exact in Lua's numbers.
const MAX_FIGURE: i64 = 1_000_000_000_000;

/// `PUT /admin/skus/{sku}` `{"stock", "per_user_limit", "price_cents",
/// "starts_at"?, "ends_at"?}`: loads the sale, or replaces one with no
/// orders outstanding (else 409 `sale_busy`); answers its counters.
pub async fn put_sku(app: &App, sku: &str, req: Request<Incoming>) -> Result<Reply, ApiError> {
    authorize(app, req.headers())?;
    check_sku(sku).map_err(|e| ApiError::Invalid(e.0))?;
    let terms: SaleTerms = json_body(req).await?;
    if !in_range(terms.stock, 0) || !in_range(terms.per_user_limit, 1) || !in_range(terms.price_cents, 0) {
        return Err(ApiError::Invalid("stock and price_cents must be 0 to 10^12, per_user_limit 1 to 10^12".into()));
    }
    if !terms.window.is_valid() {
        return Err(ApiError::Invalid("ends_at must be after starts_at".into()));
    }
    let loaded = app.sales.load_sale(sku, &terms).await.map_err(|err| redis_down("loading a sale", err))?;
    if let SaleLoad::Busy { reservations, outbox, unsettled_payments } = loaded {
        return Err(ApiError::SaleBusy { reservations, outbox, unsettled_payments });
    }
    app.sold_out.clear(sku);
    app.sale_windows.remember(sku, terms.window);
    tracing::info!(sku, stock = terms.stock, per_user_limit = terms.per_user_limit, "sale loaded");
    sale_reply(app, sku).await
}

/// `PATCH /admin/skus/{sku}` `{"add_units"?, "per_user_limit"?,
/// "price_cents"?, "window"?, "if_total"?}`: changes a live sale; its
/// reservations, payments and buyers' counts stay as they are. Answers its
/// counters; 409 `sale_changed` when `if_total` no longer matches.
pub async fn patch_sku(app: &App, sku: &str, req: Request<Incoming>) -> Result<Reply, ApiError> {
    authorize(app, req.headers())?;
    check_sku(sku).map_err(|e| ApiError::Invalid(e.0))?;
    let change: SaleChange = json_body(req).await?;
    let add_ok = change.add_units.is_none_or(|add| add.abs() <= MAX_FIGURE);
    if !add_ok
        || !change.per_user_limit.is_none_or(|v| in_range(v, 1))
        || !change.price_cents.is_none_or(|v| in_range(v, 0))
    {
        return Err(ApiError::Invalid(
            "add_units must be within ±10^12, price_cents 0 to 10^12, per_user_limit 1 to 10^12".into(),
        ));
    }
    if !change.window.is_none_or(|window| window.is_valid()) {
        return Err(ApiError::Invalid("ends_at must be after starts_at".into()));
    }
    match app.sales.update_sale(sku, &change).await.map_err(|err| redis_down("changing a sale", err))? {
        SaleUpdate::Updated => {}
        SaleUpdate::UnknownSku => return Err(ApiError::UnknownSku),
        SaleUpdate::TooFewUnits { stock } => return Err(ApiError::TooFewUnits { stock }),
        SaleUpdate::TotalChanged { total } => return Err(ApiError::SaleChanged { total }),
    }
    app.sold_out.clear(sku);
    if let Some(window) = change.window {
        app.sale_windows.remember(sku, window);
    }
    tracing::info!(sku, ?change, "sale changed");
    sale_reply(app, sku).await
}

/// `GET /admin/skus/{sku}`: stock left, reserved, sold, limit and price.
pub async fn get_sku(app: &App, sku: &str, req: Request<Incoming>) -> Result<Reply, ApiError> {
    authorize(app, req.headers())?;
    check_sku(sku).map_err(|e| ApiError::Invalid(e.0))?;
    sale_reply(app, sku).await
}

/// `GET /admin/config`: the config in force, with the traffic section as
/// last reloaded and when, secrets masked.
pub fn get_config(app: &App, req: Request<Incoming>) -> Result<Reply, ApiError> {
    authorize(app, req.headers())?;
    let mut config = app.config.clone();
    config.traffic = app.traffic.load().config.clone();
    config.admin.token = "***".into();
    config.payments.secret = "***".into();
    let loaded = app.loaded.load_full();
    Ok(http::json(StatusCode::OK, &serde_json::json!({"loaded": *loaded, "config": config})))
}

async fn sale_reply(app: &App, sku: &str) -> Result<Reply, ApiError> {
    let status = app
        .sales
        .sale_status(sku)
        .await
        .map_err(|err| redis_down("reading a sale", err))?
        .ok_or(ApiError::UnknownSku)?;
    Ok(http::json(StatusCode::OK, &serde_json::json!({"sku": sku, "sale": status})))
}

/// Redis scripts count in doubles: keep every figure exact.
fn in_range(value: i64, min: i64) -> bool {
    (min..=MAX_FIGURE).contains(&value)
}

async fn json_body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    http::require_json(req.headers())?;
    let (parts, body) = req.into_parts();
    let body = http::read_body(&parts.headers, body).await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::Invalid(format!("body: {e}")))
}

fn redis_down(what: &str, err: stock::StoreError) -> ApiError {
    tracing::warn!(error = %err, what, "redis failed");
    ApiError::Unavailable(Dependency::Redis)
}

fn authorize(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(presented.as_bytes(), app.config.admin.token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Compares without stopping at the first difference, so response time does
/// not reveal how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
