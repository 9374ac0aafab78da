//! Cart checkout routes: the buyer's checkout, its payment and its
//! cancellation, and the admin API's catalogue (shipping facts,
//! promotions, coupons, freight templates) that checkouts price with.

use std::sync::Arc;

use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use order::cart::Checkout;
use order::checkout::{checkout_status, CheckoutOrder, CouponTerms, PromotionTerms, ShippingFacts};
use order::request::{check_token, checkout_payment_channel, StorefrontChannel};
use order::splitting::FreightTemplate;
use order::status::OrderStatus;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use stock::catalogue::Catalogue;

use crate::app::App;
use crate::config::LimitedRoute;
use crate::error::ApiError;
use crate::http::{self, Read, Reply};
use crate::routes::admin::{authorize, json_body};
use crate::routes::input;
use ordercenter::checkout::checkout;
use ordercenter::checkout_payments;
use ordercenter::refusal::down;
use ordercenter::refusal::Dependency;

/// Largest amount in cents the catalogue takes (as a sale's price).
const MAX_CENTS: i64 = 1_000_000_000_000;

/// `POST /v1/checkout` `{"lines": [{"sku", "qty"}], "coupon"?}` with an
/// `Idempotency-Key`: 201 with the checkout (200 and `Idempotent-Replayed`
/// for a repeat of the key).
pub async fn place(
    app: Arc<App>,
    req: Read,
    buyer: u64,
    channel: Option<StorefrontChannel>,
) -> Result<Reply, ApiError> {
    let key = input::idempotency_key(req.headers())?;
    http::require_json(req.headers())?;
    let cart = Checkout { channel, ..Checkout::from_json(req.body(), buyer)? };
    app.traffic.load().admit_user(LimitedRoute::Checkout, cart.user_id)?;
    let (order, replayed) = checkout(app.center.clone(), cart, key).await?;
    if replayed {
        // The replay stands without the statuses if MySQL cannot give them.
        let statuses = app.center.checkout_item_statuses(&order).await;
        let statuses = statuses.map_err(down(Dependency::Mysql, "item lookup")).ok();
        let mut reply = http::json(StatusCode::OK, &answer(&order, statuses.as_deref()));
        reply.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        Ok(reply)
    } else {
        let pending = vec![OrderStatus::PendingPayment; order.items().count()];
        Ok(http::json(StatusCode::CREATED, &answer(&order, Some(&pending))))
    }
}

/// The checkout as answered: as placed, with where it and each item stand
/// now (`status`: an item's is its order's), when known.
fn answer(order: &CheckoutOrder, statuses: Option<&[OrderStatus]>) -> Value {
    let mut answer = serde_json::to_value(order).expect("a checkout serialises");
    let Some(statuses) = statuses else {
        return answer;
    };
    answer["status"] = json!(checkout_status(statuses));
    let items = answer["sub_orders"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .flat_map(|sub| sub["items"].as_array_mut().map(|items| items.iter_mut()).into_iter().flatten());
    for (item, status) in items.zip(statuses) {
        item["status"] = json!(status);
    }
    answer
}

async fn with_statuses(app: &App, order: &CheckoutOrder) -> Result<Value, ApiError> {
    let statuses = app.center.checkout_item_statuses(order).await.map_err(down(Dependency::Mysql, "item lookup"))?;
    Ok(answer(order, Some(&statuses)))
}

/// `GET /v1/checkouts/{id}`: the buyer's checkout as placed, with where it
/// and each item stand now.
pub async fn get(app: &App, parent: &str, buyer: u64) -> Result<Reply, ApiError> {
    app.traffic.load().admit_user(LimitedRoute::GetOrder, buyer)?;
    let parent = input::order_id(parent)?;
    let order = checkout_payments::owned(&app.center, parent, buyer).await?;
    Ok(http::json(StatusCode::OK, &with_statuses(app, &order).await?))
}

/// `POST /v1/checkouts/{id}/pay`: starts the one payment of the checkout,
/// at the channel the body names (`{"channel"}`) or the default.
pub async fn pay(app: &App, parent: &str, req: Read, buyer: u64) -> Result<Reply, ApiError> {
    app.traffic.load().admit_user(LimitedRoute::PayOrder, buyer)?;
    let parent = input::order_id(parent)?;
    let channel = checkout_payment_channel(req.body())?;
    let started = checkout_payments::start(&app.center, parent, buyer, channel.as_deref()).await?;
    Ok(http::json(StatusCode::OK, &started))
}

/// `POST /v1/checkouts/{id}/cancel`: cancels every item of the checkout;
/// the refunds of those already paid.
pub async fn cancel(app: &App, parent: &str, buyer: u64) -> Result<Reply, ApiError> {
    app.traffic.load().admit_user(LimitedRoute::CancelOrder, buyer)?;
    let parent = input::order_id(parent)?;
    let refunds = checkout_payments::cancel(&app.center, parent, buyer).await?;
    Ok(http::json(StatusCode::OK, &json!({"order_id": parent, "status": "CANCELLED", "refunds": refunds})))
}

/// `GET | PUT | DELETE /admin/catalogue/{kind}/{id}`, kind one of `skus`
/// (`{"store", "warehouse", "handling"?, "weight_grams", "volume_cm3"}`),
/// `promotions` (`{"threshold_cents", "discount_cents", "skus"}`),
/// `coupons` (`{"discount_cents", "min_spend_cents", "users"?}`) and
/// `freight` (per store, `{"free_over_cents", "fee_cents"}`).
pub async fn catalogue(app: &App, kind: &str, id: &str, req: Read) -> Result<Reply, ApiError> {
    let admin = authorize(app, req.headers())?;
    check_token("id", id).map_err(|e| ApiError::Invalid(e.0))?;
    let catalogue = match kind {
        "skus" => Catalogue::Skus,
        "promotions" => Catalogue::Promotions,
        "coupons" => Catalogue::Coupons,
        "freight" => Catalogue::Freight,
        _ => return Err(ApiError::NotFound),
    };
    let entry = if req.method() == Method::PUT {
        let json = match catalogue {
            Catalogue::Skus => checked(&req, check_facts)?,
            Catalogue::Promotions => {
                let terms: PromotionTerms = json_body(&req)?;
                check_promotion(&terms)?;
                in_no_other_promotion(app, id, &terms).await?;
                serde_json::to_string(&terms).expect("serializes")
            }
            Catalogue::Coupons => checked(&req, check_coupon)?,
            Catalogue::Freight => checked(&req, check_freight)?,
        };
        Some(json)
    } else if req.method() == Method::DELETE {
        None
    } else {
        let found = app
            .center
            .checkouts
            .catalogue_entries(catalogue, &[id.to_owned()])
            .await
            .map_err(down(Dependency::Redis, "a catalogue call"))?;
        let json = found.into_iter().next().flatten().ok_or(ApiError::NotFound)?;
        let value: Value = serde_json::from_str(&json).map_err(|_| ApiError::Unavailable(Dependency::Redis))?;
        return Ok(http::json(StatusCode::OK, &value));
    };
    app.center
        .checkouts
        .put_catalogue(catalogue, id, entry.as_deref())
        .await
        .map_err(down(Dependency::Redis, "a catalogue call"))?;
    tracing::info!(target: "audit", admin, action = "catalogue", kind, id, entry = entry.as_deref().unwrap_or("deleted"));
    match entry {
        Some(json) => Ok(http::json(StatusCode::OK, &serde_json::from_str::<Value>(&json).expect("just written"))),
        None => Ok(http::json(StatusCode::OK, &json!({"deleted": id}))),
    }
}

/// The body as `T`, checked, back to JSON.
fn checked<T: DeserializeOwned + Serialize>(
    req: &Read,
    check: fn(&T) -> Result<(), String>,
) -> Result<String, ApiError> {
    let entry: T = json_body(req)?;
    check(&entry).map_err(ApiError::Invalid)?;
    Ok(serde_json::to_string(&entry).expect("serializes"))
}

fn cents(value: i64) -> bool {
    (0..=MAX_CENTS).contains(&value)
}

fn check_facts(facts: &ShippingFacts) -> Result<(), String> {
    check_token("store", &facts.store).map_err(|e| e.0)?;
    check_token("warehouse", &facts.warehouse).map_err(|e| e.0)?;
    if facts.weight_grams > 1_000_000_000 || facts.volume_cm3 > 1_000_000_000 {
        return Err("weight_grams and volume_cm3 must be at most 10^9".into());
    }
    Ok(())
}

/// A discount no larger than its threshold: reaching the threshold then
/// always leaves the discount within what the lines cost.
fn check_promotion(terms: &PromotionTerms) -> Result<(), ApiError> {
    if !cents(terms.threshold_cents) || !cents(terms.discount_cents) || terms.discount_cents > terms.threshold_cents {
        return Err(ApiError::Invalid("need 0 <= discount_cents <= threshold_cents <= 10^12".into()));
    }
    if terms.skus.is_empty() || terms.skus.len() > 1_000 {
        return Err(ApiError::Invalid("skus must name 1 to 1000 SKUs".into()));
    }
    for sku in &terms.skus {
        check_token("skus", sku).map_err(|e| ApiError::Invalid(e.0))?;
    }
    Ok(())
}

/// A SKU is in one promotion at most: 409 naming the other one.
async fn in_no_other_promotion(app: &App, id: &str, terms: &PromotionTerms) -> Result<(), ApiError> {
    let all = app
        .center
        .checkouts
        .catalogue_all(Catalogue::Promotions)
        .await
        .map_err(down(Dependency::Redis, "a catalogue call"))?;
    for (other, json) in all.iter().filter(|(other, _)| *other != id) {
        let Ok(other_terms) = serde_json::from_str::<PromotionTerms>(json) else { continue };
        if let Some(sku) = terms.skus.iter().find(|sku| other_terms.skus.contains(sku)) {
            return Err(ApiError::Invalid(format!("{sku} is in promotion {other} already; a SKU is in one promotion")));
        }
    }
    Ok(())
}

fn check_coupon(terms: &CouponTerms) -> Result<(), String> {
    if !cents(terms.discount_cents) || !cents(terms.min_spend_cents) || terms.discount_cents > terms.min_spend_cents {
        return Err("need 0 <= discount_cents <= min_spend_cents <= 10^12".into());
    }
    if terms.users.len() > 10_000 {
        return Err("users must name at most 10000 buyers".into());
    }
    Ok(())
}

fn check_freight(template: &FreightTemplate) -> Result<(), String> {
    if !cents(template.free_over_cents) || !cents(template.fee_cents) {
        return Err("free_over_cents and fee_cents must be 0 to 10^12".into());
    }
    Ok(())
}
