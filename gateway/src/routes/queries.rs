//! `GET /v1/orders` (the buyer's orders) and `GET /admin/orders` (the
//! merchant's search over every shard): read the query string, list, answer
//! `{"orders", "next_cursor"}` (and for a search `partial` with the shards
//! left out). Every parameter is checked; an unknown one is a 400, so a
//! misspelt filter is not silently a search of everything.

use chrono::{DateTime, Datelike, Utc};
use hyper::StatusCode;
use order::id::OrderId;
use order::request::check_token;
use order::status::OrderStatus;
use orderdb::queries::OrderFilter;
use serde_json::json;

use crate::app::App;
use crate::config::LimitedRoute;
use crate::error::ApiError;
use crate::http::{self, Read, Reply};
use crate::routes::admin::authorize;
use crate::routes::input;
use ordercenter::queries::{self, Page};
use ordercenter::refusal::down;
use ordercenter::refusal::Dependency;

/// Orders per page when `limit` is not given.
const DEFAULT_LIMIT: u32 = 20;

/// `?status=&limit=&cursor=`: the buyer's orders, newest first.
pub async fn mine(app: &App, req: Read, buyer: u64) -> Result<Reply, ApiError> {
    let mut filter = OrderFilter { user_id: Some(buyer), ..OrderFilter::default() };
    let mut paging = Paging::default();
    for (name, value) in parameters(&req)? {
        match name.as_ref() {
            "status" => filter.status = Some(status(&value)?),
            _ => paging.read(app, &name, &value)?,
        }
    }
    app.traffic.load().admit_user(LimitedRoute::ListOrders, buyer)?;
    let page = queries::of_buyer(&app.center, filter, paging.cursor, paging.limit)
        .await
        .map_err(down(Dependency::Mysql, "order list"))?;
    Ok(http::json(StatusCode::OK, &answer(&page)))
}

/// `?sku=&status=&from=&to=&min_amount_cents=&max_amount_cents=&limit=&cursor=`:
/// orders over every shard, newest first. `from` and `to` are RFC 3339
/// times (created at or after `from`, before `to`).
pub async fn search(app: &App, req: Read) -> Result<Reply, ApiError> {
    authorize(app, req.headers())?;
    let mut filter = OrderFilter::default();
    let mut paging = Paging::default();
    for (name, value) in parameters(&req)? {
        match name.as_ref() {
            "sku" => {
                check_token("sku", &value).map_err(|e| ApiError::Invalid(e.0))?;
                filter.sku = Some(value);
            }
            "status" => filter.status = Some(status(&value)?),
            "from" => filter.created_from = Some(time(&name, &value)?),
            "to" => filter.created_before = Some(time(&name, &value)?),
            "min_amount_cents" => filter.min_amount_cents = Some(number(&name, &value)?),
            "max_amount_cents" => filter.max_amount_cents = Some(number(&name, &value)?),
            _ => paging.read(app, &name, &value)?,
        }
    }
    let page = queries::search(&app.center, filter, paging.cursor, paging.limit).await;
    if page.missing_shards.len() == app.center.services.orders.pools.len() {
        return Err(ApiError::Unavailable(Dependency::Mysql));
    }
    let mut answer = answer(&page);
    answer["partial"] = json!(!page.missing_shards.is_empty());
    answer["missing_shards"] = json!(page.missing_shards);
    Ok(http::json(StatusCode::OK, &answer))
}

/// The query string's parameters; one named twice is a 400 (which one
/// would count is a guess).
fn parameters(req: &Read) -> Result<Vec<(String, String)>, ApiError> {
    let mut parameters: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
        if parameters.iter().any(|(seen, _)| *seen == name) {
            return Err(ApiError::Invalid(format!("query parameter {name:?} given twice")));
        }
        parameters.push((name.into_owned(), value.into_owned()));
    }
    Ok(parameters)
}

struct Paging {
    limit: u32,
    cursor: Option<OrderId>,
}

impl Default for Paging {
    fn default() -> Self {
        Self { limit: DEFAULT_LIMIT, cursor: None }
    }
}

impl Paging {
    fn read(&mut self, app: &App, name: &str, value: &str) -> Result<(), ApiError> {
        match name {
            "limit" => {
                let max = app.config.queries.max_page;
                self.limit = value
                    .parse()
                    .ok()
                    .filter(|limit| (1..=max).contains(limit))
                    .ok_or_else(|| ApiError::Invalid(format!("limit must be between 1 and {max}")))?;
            }
            "cursor" => self.cursor = Some(input::order_id(value)?),
            _ => return Err(ApiError::Invalid(format!("unknown query parameter {name:?}"))),
        }
        Ok(())
    }
}

fn answer(page: &Page) -> serde_json::Value {
    json!({"orders": page.orders, "next_cursor": page.next})
}

fn status(value: &str) -> Result<OrderStatus, ApiError> {
    OrderStatus::parse(value).ok_or_else(|| ApiError::Invalid(format!("unknown status {value:?}")))
}

/// An RFC 3339 time, in UTC within the years the database stores (1000–9999).
fn time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|time| time.with_timezone(&Utc))
        .ok()
        .filter(|time| (1_000..=9_999).contains(&time.year()))
        .ok_or_else(|| {
            ApiError::Invalid(format!(
                "{name} must be an RFC 3339 time in the years 1000-9999 UTC, e.g. 2026-12-03T10:00:00Z"
            ))
        })
}

fn number(name: &str, value: &str) -> Result<i64, ApiError> {
    value.parse().map_err(|_| ApiError::Invalid(format!("{name} must be a whole number of cents")))
}
