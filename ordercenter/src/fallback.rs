//! Placing an order of an ordinary sale while Redis cannot be reached (its
//! breaker is open): the units come from the sale's database share, under
//! its row lock, and the order is recorded in the same transaction; then
//! `OrderCreated` goes to Kafka as on the hot path. A flash sale has no
//! share and is answered 503. Redis adopts the order once it answers
//! again ([`crate::adoption`]); see `order::fallback` for why the shares
//! never overlap.

use chrono::Utc;
use order::event::{OrderCreated, OrderEvent};
use order::fallback::FallbackOrder;
use order::request::PlaceOrder;
use order::shard::bucket_for_user;
use order::status::OrderStatus;
use orderdb::fallback_orders::{Earlier, Take, TakeRequest};
use stock::records::from_ms;
use stock::Acknowledgement;

use crate::center::OrderCenter;
use crate::outcomes::{Accepted, PlaceError, Placed};
use crate::refusal::{Dependency, Refusal};

/// How long the lookup of whether a SKU has a database share may take.
const SHARE_LOOKUP_WITHIN: std::time::Duration = std::time::Duration::from_millis(300);

/// How long taking an order from the database share may take (its row
/// lock queues a SKU's orders one after the other).
const TAKE_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Order ids minted at once by two gateways' fallbacks are told apart by
/// the database; the loser mints again, at most this many times.
const MINT_ATTEMPTS: usize = 3;

/// Places `order` from the database share, or answers why not; a SKU with
/// no share gets `redis_refusal`, the open breaker's answer.
pub(crate) async fn place(
    center: &OrderCenter,
    order: &PlaceOrder,
    key: &str,
    redis_refusal: Refusal,
) -> Result<Placed, PlaceError> {
    let orders = &center.services.orders;
    // A lookup that fails or is slow counts as no share: a fallback that
    // cannot reach MySQL either has nothing to sell, and the answer (Redis's
    // 503) must stay fast.
    let has_share = center
        .share_lookups
        .has_share(&order.sku, || async {
            match tokio::time::timeout(SHARE_LOOKUP_WITHIN, orders.has_database_share(&order.sku)).await {
                Ok(Ok(has)) => has,
                Ok(Err(err)) => {
                    tracing::warn!(sku = %order.sku, error = %err, "database share lookup failed");
                    false
                }
                Err(_) => {
                    tracing::warn!(sku = %order.sku, "database share lookup timed out");
                    false
                }
            }
        })
        .await;
    if !has_share {
        return Err(redis_refusal.into());
    }
    let now_ms = Utc::now().timestamp_millis();
    let pay_by_ms = now_ms + center.settings.orders.payment_window_secs as i64 * 1_000;
    for _ in 0..MINT_ATTEMPTS {
        let request = TakeRequest {
            sku: &order.sku,
            idempotency_key: key,
            user_id: order.user_id,
            qty: order.qty,
            order_id: center.database_ids.next(bucket_for_user(order.user_id), now_ms),
            now_ms,
            pay_by_ms,
            in_flight_ms: center.in_flight_window().as_millis() as u64,
            idempotency_ttl_secs: center.settings.orders.idempotency_ttl_secs,
        };
        // A failure, or a timeout, may have struck the commit: the order may
        // exist, and a retry with the key finds it.
        let unknown = PlaceError::OutcomeUnknown {
            order_id: request.order_id,
            retry_after_secs: center.in_flight_window().as_secs().max(1),
        };
        let take = match tokio::time::timeout(TAKE_WITHIN, orders.take_from_database(&request)).await {
            Ok(Ok(take)) => take,
            Ok(Err(err)) => {
                tracing::warn!(sku = %order.sku, error = %err, "database fallback failed");
                // No connection, nothing sent: certainly nothing taken.
                if matches!(err, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) {
                    return Err(PlaceError::Unavailable(Dependency::Mysql));
                }
                return Err(unknown);
            }
            Err(_) => {
                tracing::warn!(sku = %order.sku, "database fallback timed out");
                return Err(unknown);
            }
        };
        metrics::counter!("gateway_fallback_takes_total", "outcome" => take_name(&take)).increment(1);
        return match take {
            Take::Taken(taken) => publish_created(center, &taken, order, false).await,
            Take::Existing(earlier, _) if (earlier.user_id, earlier.qty) != (order.user_id, order.qty) => {
                Err(PlaceError::KeyReused)
            }
            Take::Existing(earlier, state) => match state {
                Earlier::Accepted => Ok(placed(&earlier, true)),
                Earlier::InFlight => Err(PlaceError::InProgress { order_id: earlier.order_id }),
                // Its request is over, unanswered: send it again (the
                // settler is idempotent on order id).
                Earlier::Unacknowledged => publish_created(center, &earlier, order, true).await,
                Earlier::InRedis => Err(outcome_unknown(center, &earlier)),
            },
            Take::IdTaken => continue,
            Take::NoShare => Err(redis_refusal.into()),
            Take::OutsideWindow(window) => Err(center.sale_windows.refusal(&order.sku, window).into()),
            // Redis's share may still have units: no sold-out mark here.
            Take::SoldOut { units } if units <= 0 => Err(PlaceError::SoldOut),
            Take::SoldOut { units } => Err(PlaceError::InsufficientStock { available: units }),
            Take::LimitExceeded => Err(PlaceError::LimitExceeded),
        };
    }
    tracing::error!(sku = %order.sku, "database fallback minted taken order ids {MINT_ATTEMPTS} times");
    Err(PlaceError::Unavailable(Dependency::Mysql))
}

/// Sends the order's `OrderCreated` and waits for the broker, as the hot
/// path does: its units go back to the share only when the event certainly
/// did not reach the broker on the order's first send, within its in-flight
/// window and before an adopter claimed it.
async fn publish_created(
    center: &OrderCenter,
    order: &FallbackOrder,
    request: &PlaceOrder,
    replayed: bool,
) -> Result<Placed, PlaceError> {
    let orders = &center.services.orders;
    let channel = request.channel.as_ref().map(|channel| channel.id.clone());
    let event = OrderCreated { channel, ..created(order) };
    if let Err(unpublished) = center.publish(&OrderEvent::OrderCreated(event)).await {
        if unpublished.delivered_maybe || replayed {
            return Err(outcome_unknown(center, order));
        }
        let in_flight_ms = center.in_flight_window().as_millis() as u64;
        return match orders.fallback_dropped(order.order_id, in_flight_ms).await {
            Ok(true) => Err(PlaceError::Unavailable(Dependency::Kafka)),
            // Claimed by an adopter, or past its window: a retry may be sending it.
            Ok(false) => Err(outcome_unknown(center, order)),
            Err(err) => {
                tracing::warn!(order_id = %order.order_id, error = %err, "unqueued fallback order not dropped; it ends at its confirm deadline once adopted");
                Err(outcome_unknown(center, order))
            }
        };
    }
    match orders.fallback_accepted(order.order_id).await {
        Ok(true) => Ok(placed(order, replayed)),
        // An adopter claimed it first: the acknowledgement is Redis's to
        // make (false while Redis has not been handed it yet).
        Ok(false) => {
            let acknowledgement = Acknowledgement {
                idempotency_key: order.idempotency_key.clone(),
                order_id: order.order_id,
                pay_by_ms: order.pay_by_ms,
            };
            match center.acknowledgements.call(&order.sku, acknowledgement).await {
                Ok(true) => Ok(placed(order, replayed)),
                _ => Err(outcome_unknown(center, order)),
            }
        }
        Err(err) => {
            // Unacknowledged, it is cancelled at its confirm deadline once adopted.
            tracing::warn!(order_id = %order.order_id, error = %err, "fallback order not marked accepted");
            Err(outcome_unknown(center, order))
        }
    }
}

fn outcome_unknown(center: &OrderCenter, order: &FallbackOrder) -> PlaceError {
    PlaceError::OutcomeUnknown {
        order_id: order.order_id,
        retry_after_secs: center.in_flight_window().as_secs().max(1),
    }
}

/// The order's creation event, as the settler stores it.
pub(crate) fn created(order: &FallbackOrder) -> OrderCreated {
    OrderCreated {
        order_id: order.order_id,
        user_id: order.user_id,
        sku: order.sku.clone(),
        qty: order.qty,
        amount_cents: order.amount_cents,
        idempotency_key: order.idempotency_key.clone(),
        created_at: from_ms(order.created_ms),
        pay_by: from_ms(order.pay_by_ms),
        sale_generation: order.sale_generation,
        warehouse: None,
        channel: None,
    }
}

fn placed(order: &FallbackOrder, replayed: bool) -> Placed {
    Placed {
        accepted: Accepted {
            order_id: order.order_id,
            status: OrderStatus::PendingPayment,
            sku: order.sku.clone(),
            qty: order.qty,
            amount_cents: order.amount_cents,
            pay_by: from_ms(order.pay_by_ms),
            warehouse: None,
        },
        user_id: order.user_id,
        replayed,
    }
}

fn take_name(take: &Take) -> &'static str {
    match take {
        Take::Taken(_) => "taken",
        Take::Existing(..) => "existing",
        Take::IdTaken => "id_taken",
        Take::NoShare => "no_share",
        Take::OutsideWindow(_) => "outside_window",
        Take::SoldOut { .. } => "sold_out",
        Take::LimitExceeded => "limit_exceeded",
    }
}
