//! Placing an order, the hot path behind `POST /v1/orders`: local sold-out
//! mark → one placement per key in flight → `reserve.lua` → `OrderCreated`
//! to Kafka → `acknowledge.lua`; accepted only once the broker acknowledged
//! the event. If the event certainly did not reach the broker, the units go
//! back (`release.lua`). If it may have (a timeout after sending), the
//! reservation stays until its confirm deadline and the outcome is unknown:
//! a retry with the same key sends the same order again. With Redis's
//! breaker open, an ordinary sale's order is taken from its database share
//! instead ([`crate::fallback`]); any other is a 503.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use order::event::{OrderCreated, OrderEvent};
use order::request::{PlaceOrder, StorefrontChannel};
use order::shard::bucket_for_user;
use order::status::OrderStatus;
use orderdb::StoredOrder;
use stock::records::from_ms;
use stock::{Acknowledgement, ChannelShare, IdempotencyRecord, Release, Reservation, ReserveRequest};
use tracing::Instrument;

use crate::breaker::BreakerState;
use crate::center::OrderCenter;
use crate::fallback;
use crate::outcomes::{flight_key, Accepted, PlaceError, Placed};
use crate::refusal::down;
use crate::refusal::Dependency;

/// Places `order` under idempotency key `key`, or answers the order the key
/// placed before (`replayed`). A repeat that changes the buyer or the
/// quantity is [`PlaceError::KeyReused`].
pub async fn place(center: Arc<OrderCenter>, order: PlaceOrder, key: String) -> Result<Placed, PlaceError> {
    let flight = flight_key(&order.sku, &key);
    // A retry of an accepted click still gets its order after the SKU sold
    // out: from memory if this gateway placed it, else from its record in
    // Redis (it may have been placed on another instance). A key that never
    // reserved is sold out: the SKU's used keys in memory say so, or Redis.
    if center.sold_out.is_sold_out(&order.sku) && !center.placing.is_running(&flight) {
        if let Some(placed) = center.recent_orders.get(&order.sku, &key) {
            return same_request(&order, Placed { replayed: true, ..placed });
        }
        let used = match center.used_keys.contains(&order.sku, &key) {
            Some(used) => used,
            None => {
                center.used_keys.load(&center.sales, &order.sku);
                // A lookup that fails says nothing: the placement asks Redis
                // again (a used key gets its order) or answers 503.
                center.key_lookups.call(&order.sku, key.clone()).await.unwrap_or_else(|err| {
                    tracing::warn!(sku = %order.sku, error = %err, "idempotency lookup failed; trying the placement");
                    true
                })
            }
        };
        if !used {
            metrics::counter!("gateway_sold_out_answers_total", "source" => "local").increment(1);
            return Err(PlaceError::SoldOut);
        }
    }

    if let Some(retry_after_secs) = cooling_down(&center, order.user_id).await {
        return Err(PlaceError::CoolingDown { retry_after_secs });
    }

    let (task_app, task_order, task_key) = (center.clone(), order.clone(), key.clone());
    let (outcome, ran_here) = center
        .placing
        .run(flight, || async move {
            // Its own task: a client hanging up must not cancel a placement
            // between the reservation and the broker's acknowledgement.
            tokio::spawn(place_once(task_app, task_order, task_key).in_current_span()).await.unwrap_or_else(|err| {
                tracing::error!(error = %err, "placement task failed");
                Err(PlaceError::Unavailable(Dependency::Redis))
            })
        })
        .await;
    let placed = outcome?;
    if ran_here && !placed.replayed {
        center.recent_orders.remember(&order.sku, &key, &placed);
    }
    // A request that joined another's placement of its key is a repeat.
    same_request(&order, Placed { replayed: placed.replayed || !ran_here, ..placed })
}

/// The security check before an order (and a checkout): a buyer with
/// more than `abuse.max_strikes` orders cancelled or let expire in the
/// current window waits for its end; the seconds left, if so. If Redis
/// cannot say, the order goes on (reserving needs Redis anyway).
pub(crate) async fn cooling_down(center: &OrderCenter, user_id: u64) -> Option<u64> {
    let max = center.settings.abuse.max_strikes;
    // With Redis's breaker open, it cannot say (and an ordinary sale's
    // order may go on from the database).
    if max == 0 || center.breakers.load().redis.state() == BreakerState::Open {
        return None;
    }
    match center.strikes.strikes(user_id).await {
        Ok((strikes, left_ms)) if strikes > i64::from(max) => {
            metrics::counter!("gateway_cooling_down_total").increment(1);
            Some((left_ms as u64).div_ceil(1_000).max(1))
        }
        Ok(_) => None,
        Err(err) => {
            tracing::warn!(user_id, error = %err, "could not read the buyer's strikes; letting the order through");
            None
        }
    }
}

/// The placement, if it was made for this buyer and quantity.
fn same_request(order: &PlaceOrder, placed: Placed) -> Result<Placed, PlaceError> {
    if (placed.user_id, placed.accepted.qty) != (order.user_id, order.qty) {
        return Err(PlaceError::KeyReused);
    }
    Ok(placed)
}

/// Reserves in Redis and queues the event: one placement of one key.
async fn place_once(center: Arc<OrderCenter>, order: PlaceOrder, key: String) -> Result<Placed, PlaceError> {
    // An order needs both: with Kafka's breaker open, take no stock at all;
    // with Redis's, only an ordinary sale's database share.
    let policy = center.breakers.load_full();
    policy.kafka.permit()?;
    if let Err(refusal) = policy.redis.permit() {
        return fallback::place(&center, &order, &key, refusal).await;
    }
    if !center.node.held() {
        tracing::warn!(node_id = center.settings.node_id, "node id lease not held; refusing to mint order ids");
        return Err(PlaceError::Unavailable(Dependency::Redis));
    }
    let now_ms = Utc::now().timestamp_millis();
    let pay_by_ms = now_ms + center.settings.orders.payment_window_secs as i64 * 1_000;
    let order_id = center.ids.next(bucket_for_user(order.user_id), now_ms);
    // The request's span (its log lines) names the order from here on.
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let started = Instant::now();
    let request = ReserveRequest {
        sku: order.sku.clone().into(),
        idempotency_key: key.clone().into(),
        user_id: order.user_id,
        qty: order.qty,
        order_id,
        now_ms,
        pay_by_ms,
        idempotency_ttl_secs: center.settings.orders.idempotency_ttl_secs,
        confirm_windows: center.confirm_windows(),
        warehouses: center.serving_warehouses(order.region.as_deref()).into(),
        channel_share: channel_share(order.channel.as_ref()),
    };
    // With the other requests for the SKU that arrive together: one script call.
    let reserving = tracing::info_span!("stock.reserve", sku = %order.sku);
    let reserved = center.reservations.call(&order.sku, request).instrument(reserving).await;
    policy.redis.record(&reserved);
    let reservation = reserved.map_err(down(Dependency::Redis, "reserve"))?;
    metrics::histogram!("gateway_redis_reserve_seconds").record(started.elapsed());
    metrics::counter!("gateway_reservations_total", "outcome" => outcome_name(&reservation)).increment(1);

    match reservation {
        Reservation::Reserved { amount_cents, stock_left, sale_generation, warehouse } => {
            if stock_left == 0 {
                center.sold_out.mark(&order.sku);
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
                warehouse,
            };
            publish_created(&center, &order, &key, record, false).await
        }
        Reservation::Duplicate(record) => {
            if (record.user_id, record.qty) != (order.user_id, order.qty) {
                return Err(PlaceError::KeyReused);
            }
            if record.acknowledged {
                return Ok(placed(&order.sku, &record, true));
            }
            // The request that reserved is over without an acknowledgement
            // (it died, or answered outcome unknown): send the event again
            // (the settler is idempotent on order id).
            publish_created(&center, &order, &key, record, true).await
        }
        Reservation::InProgress(record) => {
            if (record.user_id, record.qty) != (order.user_id, order.qty) {
                return Err(PlaceError::KeyReused);
            }
            Err(PlaceError::InProgress { order_id: record.order_id })
        }
        Reservation::IdTaken => {
            tracing::error!(%order_id, node_id = center.settings.node_id, "order id already in use: is another instance running with this node id?");
            Err(PlaceError::Unavailable(Dependency::Redis))
        }
        Reservation::UnknownSku => Err(PlaceError::UnknownSku),
        Reservation::OutOfStock { stock_left } if stock_left <= 0 => {
            center.sold_out.mark(&order.sku);
            metrics::counter!("gateway_sold_out_answers_total", "source" => "redis").increment(1);
            Err(PlaceError::SoldOut)
        }
        Reservation::OutOfStock { stock_left } => Err(PlaceError::InsufficientStock { available: stock_left }),
        Reservation::Capped { stock_left, .. } => Err(PlaceError::OpenOrdersCapped { available: stock_left }),
        Reservation::RegionSoldOut { .. } | Reservation::NoWarehouse => Err(PlaceError::NoWarehouse),
        Reservation::LimitExceeded => Err(PlaceError::LimitExceeded),
        Reservation::ChannelShareTaken { held } => Err(PlaceError::ChannelShareTaken { held }),
        Reservation::OutsideWindow(window) => Err(center.sale_windows.refusal(&order.sku, window).into()),
    }
}

/// Sends `OrderCreated` and waits for the broker, then moves the order to
/// its payment deadline. Units go back only when the event certainly did
/// not reach the broker, on the order's first send: an order that may
/// exist keeps them until its confirm deadline, when the sweeper cancels
/// it if nobody retried.
async fn publish_created(
    center: &OrderCenter,
    order: &PlaceOrder,
    key: &str,
    record: IdempotencyRecord,
    replayed: bool,
) -> Result<Placed, PlaceError> {
    let sku = order.sku.as_str();
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
        warehouse: record.warehouse.clone(),
        channel: order.channel.as_ref().map(|channel| channel.id.clone()),
    });
    let outcome_unknown = || PlaceError::OutcomeUnknown {
        order_id: record.order_id,
        retry_after_secs: center.in_flight_window().as_secs().max(1),
    };
    if let Err(unpublished) = center.publish(&event).await {
        // A replay re-sends an order an earlier attempt may have delivered:
        // this attempt failing says nothing about that one.
        if unpublished.delivered_maybe || replayed {
            tracing::warn!(sku, order_id = %record.order_id, "order event outcome unknown; its units stay until the confirm deadline");
            return Err(outcome_unknown());
        }
        match center.sales.release(sku, key, record.order_id, &center.confirm_windows()).await {
            Ok(Release::Released { .. }) => center.sold_out.clear(sku),
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
        tracing::warn!(sku, order_id = %record.order_id, "order event not delivered; units given back");
        return Err(PlaceError::Unavailable(Dependency::Kafka));
    }
    // With the other orders of the SKU acknowledged at the same time, and
    // the order's view cached beside the acknowledgement, not after it. A
    // re-send caches nothing: it may follow moves that made the view stale.
    let order =
        Acknowledgement { idempotency_key: key.to_owned(), order_id: record.order_id, pay_by_ms: record.pay_by_ms };
    let acknowledged = center.acknowledgements.call(sku, order);
    let cached = async {
        if !replayed {
            center.cache_accepted(&stored_order(sku, &record)).await;
        }
    };
    let (acknowledged, ()) = tokio::join!(acknowledged, cached);
    if !replayed && !matches!(acknowledged, Ok(true)) {
        // Not accepted after all: no view of it to read.
        center.forget_order(record.order_id).await;
    }
    match acknowledged {
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

/// The order as the settler will store it.
fn stored_order(sku: &str, record: &IdempotencyRecord) -> StoredOrder {
    StoredOrder {
        order_id: record.order_id,
        user_id: record.user_id,
        sku: sku.to_owned(),
        qty: record.qty,
        amount_cents: record.amount_cents,
        status: OrderStatus::PendingPayment,
        created_at: from_ms(record.created_ms),
        pay_by: from_ms(record.pay_by_ms),
        shipment: None,
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
            warehouse: record.warehouse.clone(),
        },
        user_id: record.user_id,
        replayed,
    }
}

/// The share of a sale a capped storefront channel may take, as the
/// scripts take it (none for a channel without a cap).
pub(crate) fn channel_share(channel: Option<&StorefrontChannel>) -> Option<ChannelShare<'static>> {
    let channel = channel?;
    Some(ChannelShare { channel: channel.id.clone().into(), max_units: channel.max_units_per_sale? })
}

fn outcome_name(reservation: &Reservation) -> &'static str {
    match reservation {
        Reservation::Reserved { .. } => "reserved",
        Reservation::Duplicate(_) => "duplicate",
        Reservation::InProgress(_) => "in_progress",
        Reservation::IdTaken => "id_taken",
        Reservation::UnknownSku => "unknown_sku",
        Reservation::OutOfStock { .. } => "out_of_stock",
        Reservation::Capped { .. } => "capped",
        Reservation::RegionSoldOut { .. } => "region_sold_out",
        Reservation::NoWarehouse => "no_warehouse",
        Reservation::LimitExceeded => "limit_exceeded",
        Reservation::ChannelShareTaken { .. } => "channel_share_taken",
        Reservation::OutsideWindow(_) => "outside_window",
    }
}
