//! `POST /v1/orders` (the hot path) and `GET /v1/orders/{id}`.
//!
//! Placing an order: global bucket → parse and validate → user bucket →
//! local sold-out mark → `reserve.lua` → `OrderCreated` to Kafka, answered
//! 202 only once the broker acknowledged it. If the event certainly did not
//! reach the broker, the units go back (`release.lua`) and the answer is
//! 503. If it may have (a timeout after sending), the reservation stays
//! until its confirm deadline and the answer is 503 `outcome_unknown`: a
//! retry with the same key sends the same order again.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Request, StatusCode};
use order::event::{CancelReason, OrderCancelled, OrderCreated, OrderEvent};
use order::id::OrderId;
use order::request::{check_idempotency_key, OrderOwner, PlaceOrder};
use order::shard::bucket_for_user;
use order::status::OrderStatus;
use serde::Serialize;

use crate::app::App;
use crate::config::LimitedRoute;
use crate::error::{ApiError, Dependency};
use crate::http::{self, Reply};
use crate::recent_orders::flight_key;
use stock::records::from_ms;
use stock::{Cancellation, IdempotencyRecord, Release, Reservation, ReserveRequest};

/// The answer to an accepted order, the same for every repeat of its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub sku: String,
    pub qty: u32,
    pub amount_cents: i64,
    pub pay_by: DateTime<Utc>,
}

/// The outcome of one placement, shared by the requests that raced on its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub accepted: Accepted,
    pub user_id: u64,
    /// The key had been answered before this placement ran.
    pub replayed: bool,
}

pub async fn place(app: Arc<App>, req: Request<Incoming>) -> Result<Reply, ApiError> {
    let (parts, body) = req.into_parts();
    let key = idempotency_key(&parts.headers)?;
    http::require_json(&parts.headers)?;
    let body = http::read_body(&parts.headers, body).await?;
    let order = PlaceOrder::from_json(&body).map_err(|e| ApiError::Invalid(e.0))?;
    app.traffic.load().admit_user(LimitedRoute::PlaceOrder, order.user_id)?;
    app.sale_windows.check(&order.sku)?;
    let flight = flight_key(&order.sku, &key);
    // A retry of an accepted click still gets its order after the SKU sold
    // out: from memory if this gateway placed it, else from its record in
    // Redis (it may have been placed on another instance).
    if app.sold_out.is_sold_out(&order.sku) && !app.placing.is_running(&flight) {
        if let Some(placed) = app.recent_orders.get(&order.sku, &key) {
            return answer(&order, Placed { replayed: true, ..placed }, false);
        }
        let used = app.sales.idempotency_key_used(&order.sku, &key).await.unwrap_or_else(|err| {
            tracing::warn!(sku = %order.sku, error = %err, "idempotency lookup failed; answering sold out");
            false
        });
        if !used {
            metrics::counter!("gateway_sold_out_answers_total", "source" => "local").increment(1);
            return Err(ApiError::SoldOut);
        }
    }

    let (task_app, task_order, task_key) = (app.clone(), order.clone(), key.clone());
    let (outcome, ran_here) = app
        .placing
        .run(flight, || async move {
            // Its own task: a client hanging up must not cancel a placement
            // between the reservation and the broker's acknowledgement.
            tokio::spawn(place_once(task_app, task_order, task_key))
                .await
                .unwrap_or(Err(ApiError::Unavailable(Dependency::Redis)))
        })
        .await;
    let placed = outcome?;
    if ran_here && !placed.replayed {
        app.recent_orders.remember(&order.sku, &key, &placed);
    }
    answer(&order, placed, ran_here)
}

/// 202 for the request that made the order; 200 with `Idempotent-Replayed`
/// for a repeat of its key; 422 if the repeat changed the request.
fn answer(order: &PlaceOrder, placed: Placed, ran_here: bool) -> Result<Reply, ApiError> {
    if (placed.user_id, placed.accepted.qty) != (order.user_id, order.qty) {
        return Err(ApiError::IdempotencyKeyReused);
    }
    if placed.replayed || !ran_here {
        let mut reply = http::json(StatusCode::OK, &placed.accepted);
        reply.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        Ok(reply)
    } else {
        Ok(http::json(StatusCode::ACCEPTED, &placed.accepted))
    }
}

/// `POST /v1/orders/{id}/cancel` `{"user_id", "sku"}`: the buyer cancels a
/// pending order; its units go back at once. 409 once paid or cancelled.
pub async fn cancel(app: &App, order_id: &str, req: Request<Incoming>) -> Result<Reply, ApiError> {
    let order_id = parse_order_id(order_id)?;
    let owner = owner(req).await?;
    app.traffic.load().admit_user(LimitedRoute::CancelOrder, owner.user_id)?;
    let cancellation = app.sales.cancel(&owner.sku, order_id, owner.user_id).await.map_err(|err| {
        tracing::warn!(%order_id, error = %err, "cancel failed");
        ApiError::Unavailable(Dependency::Redis)
    })?;
    match cancellation {
        Cancellation::Cancelled { outbox_entry, reservation } => {
            app.sold_out.clear(&owner.sku);
            let event = OrderEvent::OrderCancelled(OrderCancelled {
                order: reservation.order(order_id, &owner.sku),
                reason: CancelReason::User,
                cancelled_at: Utc::now(),
            });
            // The cancellation stands either way: if the event cannot go
            // now, the settler's sweeper sends it from the outbox.
            if app.publish(&event).await.is_ok() {
                if let Err(err) = app.sales.remove_from_outbox(&owner.sku, &outbox_entry).await {
                    tracing::warn!(%order_id, error = %err, "cancellation left in the outbox; it will be sent again");
                }
            }
            Ok(http::json(StatusCode::OK, &serde_json::json!({"order_id": order_id, "status": OrderStatus::Cancelled})))
        }
        Cancellation::NotPending { paid } => {
            Err(ApiError::NotPending { status: Some(if paid { OrderStatus::Paid } else { OrderStatus::Cancelled }) })
        }
        Cancellation::NotFound => Err(ApiError::UnknownOrder),
    }
}

/// Reads `{"user_id", "sku"}` from a JSON body.
pub async fn owner(req: Request<Incoming>) -> Result<OrderOwner, ApiError> {
    http::require_json(req.headers())?;
    let (parts, body) = req.into_parts();
    let body = http::read_body(&parts.headers, body).await?;
    OrderOwner::from_json(&body).map_err(|e| ApiError::Invalid(e.0))
}

pub fn parse_order_id(text: &str) -> Result<OrderId, ApiError> {
    text.parse().map_err(|e: order::id::BadOrderId| ApiError::Invalid(e.to_string()))
}

pub async fn get(app: &App, order_id: &str) -> Result<Reply, ApiError> {
    let order_id = parse_order_id(order_id)?;
    let order = app
        .orders
        .get(order_id)
        .await
        .map_err(|err| {
            tracing::warn!(%order_id, error = %err, "order lookup failed");
            ApiError::Unavailable(Dependency::Mysql)
        })?
        .ok_or(ApiError::UnknownOrder)?;
    Ok(http::json(StatusCode::OK, &order))
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let key = headers
        .get("idempotency-key")
        .ok_or_else(|| ApiError::Invalid("the Idempotency-Key header is required".into()))?
        .to_str()
        .map_err(|_| ApiError::Invalid("Idempotency-Key must be ASCII".into()))?;
    check_idempotency_key(key).map_err(|e| ApiError::Invalid(e.0))?;
    Ok(key.to_owned())
}

/// Reserves in Redis and queues the event: one placement of one key.
async fn place_once(app: Arc<App>, order: PlaceOrder, key: String) -> Result<Placed, ApiError> {
    if !app.node.held() {
        tracing::warn!(node_id = app.config.server.node_id, "node id lease not held; refusing to mint order ids");
        return Err(ApiError::Unavailable(Dependency::Redis));
    }
    let now_ms = Utc::now().timestamp_millis();
    let pay_by_ms = now_ms + app.config.orders.payment_window_secs as i64 * 1_000;
    let order_id = app.ids.next(bucket_for_user(order.user_id), now_ms);
    // An order needs both: with either breaker open, take no stock at all.
    let policy = app.traffic.load_full();
    policy.redis.permit()?;
    policy.kafka.permit()?;
    let started = Instant::now();
    let reserved = app
        .sales
        .reserve(&ReserveRequest {
            sku: &order.sku,
            idempotency_key: &key,
            user_id: order.user_id,
            qty: order.qty,
            order_id,
            now_ms,
            pay_by_ms,
            idempotency_ttl_secs: app.config.orders.idempotency_ttl_secs,
            windows: app.windows(),
        })
        .await;
    policy.redis.record(&reserved);
    let reservation = reserved.map_err(|err| {
        tracing::warn!(sku = %order.sku, error = %err, "reserve failed");
        ApiError::Unavailable(Dependency::Redis)
    })?;
    metrics::histogram!("gateway_redis_reserve_seconds").record(started.elapsed());
    metrics::counter!("gateway_reservations_total", "outcome" => outcome_name(&reservation)).increment(1);

    match reservation {
        Reservation::Reserved { amount_cents, stock_left, sale_generation } => {
            if stock_left == 0 {
                app.sold_out.mark(&order.sku);
            }
            let record = IdempotencyRecord {
                acknowledged: false,
                user_id: order.user_id,
                qty: order.qty,
                order_id,
                amount_cents,
                pay_by_ms,
                created_ms: now_ms,
                sale_generation,
            };
            queue(&app, &order.sku, &key, record, false).await
        }
        Reservation::Duplicate(record) => {
            if (record.user_id, record.qty) != (order.user_id, order.qty) {
                return Err(ApiError::IdempotencyKeyReused);
            }
            if record.acknowledged {
                return Ok(placed(&order.sku, &record, true));
            }
            // The request that reserved is over without an acknowledgement
            // (it died, or answered outcome unknown): send the event again
            // (the settler is idempotent on order id).
            queue(&app, &order.sku, &key, record, true).await
        }
        Reservation::InProgress(record) => {
            if (record.user_id, record.qty) != (order.user_id, order.qty) {
                return Err(ApiError::IdempotencyKeyReused);
            }
            Err(ApiError::InProgress { order_id: record.order_id })
        }
        Reservation::IdTaken => {
            tracing::error!(%order_id, node_id = app.config.server.node_id, "order id already in use: is another instance running with this node id?");
            Err(ApiError::Unavailable(Dependency::Redis))
        }
        Reservation::UnknownSku => Err(ApiError::UnknownSku),
        Reservation::OutOfStock { stock_left } if stock_left <= 0 => {
            app.sold_out.mark(&order.sku);
            metrics::counter!("gateway_sold_out_answers_total", "source" => "redis").increment(1);
            Err(ApiError::SoldOut)
        }
        Reservation::OutOfStock { stock_left } => Err(ApiError::InsufficientStock { available: stock_left }),
        Reservation::LimitExceeded => Err(ApiError::PurchaseLimitExceeded),
        Reservation::OutsideWindow(window) => Err(app.sale_windows.refusal(&order.sku, window)),
    }
}

/// Sends `OrderCreated` and waits for the broker, then moves the order to
/// its payment deadline. Units go back only when the event certainly did
/// not reach the broker, on the order's first send: an order that may
/// exist keeps them until its confirm deadline, when the sweeper cancels
/// it if nobody retried.
async fn queue(app: &App, sku: &str, key: &str, record: IdempotencyRecord, replayed: bool) -> Result<Placed, ApiError> {
    let event = OrderEvent::OrderCreated(OrderCreated {
        order_id: record.order_id,
        user_id: record.user_id,
        sku: sku.to_owned(),
        qty: record.qty,
        amount_cents: record.amount_cents,
        idempotency_key: key.to_owned(),
        created_at: from_ms(record.created_ms),
        pay_by: from_ms(record.pay_by_ms),
        sale_generation: record.sale_generation,
    });
    let outcome_unknown = || ApiError::OutcomeUnknown {
        order_id: record.order_id,
        retry_after_secs: app.in_flight_window().as_secs().max(1),
    };
    if let Err(unpublished) = app.publish(&event).await {
        // A replay re-sends an order an earlier attempt may have delivered:
        // this attempt failing says nothing about that one.
        if unpublished.delivered_maybe || replayed {
            tracing::warn!(sku, order_id = %record.order_id, "order event outcome unknown; its units stay until the confirm deadline");
            return Err(outcome_unknown());
        }
        match app.sales.release(sku, key, record.order_id, &app.windows()).await {
            Ok(Release::Released { .. }) => app.sold_out.clear(sku),
            Ok(Release::NotHeld) => {}
            // A retry may be re-sending it by now: the order may yet exist.
            Ok(Release::TooLate) => return Err(outcome_unknown()),
            Err(err) => {
                tracing::error!(
                    sku, order_id = %record.order_id, error = %err,
                    "could not release an unqueued order; its units come back at its confirm deadline"
                );
                // Still held: a retry may re-send it.
                return Err(outcome_unknown());
            }
        }
        return Err(unpublished.into());
    }
    match app.sales.acknowledge(sku, key, &record).await {
        Ok(true) => Ok(placed(sku, &record, replayed)),
        Ok(false) => {
            // Cancelled as unconfirmed, or released, meanwhile; a retry with
            // the same key places a fresh order.
            tracing::warn!(sku, order_id = %record.order_id, "order gone before its acknowledgement; it stays gone");
            Err(outcome_unknown())
        }
        Err(err) => {
            // Until acknowledged, the order would be cancelled at its confirm
            // deadline: the buyer must not be told it was accepted.
            tracing::warn!(sku, order_id = %record.order_id, error = %err, "could not acknowledge the order in Redis");
            Err(outcome_unknown())
        }
    }
}

fn placed(sku: &str, record: &IdempotencyRecord, replayed: bool) -> Placed {
    Placed {
        accepted: Accepted {
            order_id: record.order_id,
            status: OrderStatus::PendingPayment,
            sku: sku.to_owned(),
            qty: record.qty,
            amount_cents: record.amount_cents,
            pay_by: from_ms(record.pay_by_ms),
        },
        user_id: record.user_id,
        replayed,
    }
}

fn outcome_name(reservation: &Reservation) -> &'static str {
    match reservation {
        Reservation::Reserved { .. } => "reserved",
        Reservation::Duplicate(_) => "duplicate",
        Reservation::InProgress(_) => "in_progress",
        Reservation::IdTaken => "id_taken",
        Reservation::UnknownSku => "unknown_sku",
        Reservation::OutOfStock { .. } => "out_of_stock",
        Reservation::LimitExceeded => "limit_exceeded",
        Reservation::OutsideWindow(_) => "outside_window",
    }
}
