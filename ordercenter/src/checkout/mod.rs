//! Cart checkout, behind `POST /v1/checkout`: the buyer's key is claimed →
//! the cart is priced and planned (`order::checkout`) and stored → each SKU
//! is tried in SKU order (`tcc_try.lua`) → `CheckoutCreated` to Kafka →
//! each SKU's items move on to the payment deadline → the key answers the
//! checkout. A refused Try cancels every SKU tried (`tcc_cancel.lua`) and
//! frees the key and the coupon. As for single orders, a broker that may
//! have the event (a timeout) leaves the outcome unknown: the items stay
//! held until their confirm deadline, and a retry with the same key
//! sends the same checkout again.
//!
//! Trying in SKU order makes two carts that want the same SKUs meet on the
//! first one they share: one gets it, the other is refused there, before
//! it holds anything the first still needs.
//!
//! [`pricing`] prices and stores the cart; [`coupons`] holds its coupon;
//! [`points`] spends its member points, and gives them back if refused.

mod coupons;
mod points;
mod pricing;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::Utc;
use order::cart::Checkout;
use order::checkout::{checkout_status, CheckoutOrder};
use order::event::{OrderCreated, OrderEvent};
use order::id::OrderId;
use order::request::StorefrontChannel;
use order::shard::bucket_for_user;
use order::status::OrderStatus;
use orderdb::StoredOrder;
use stock::{CancelledItem, CheckoutRecord, TccItem, Tried, TryRequest};
use tracing::Instrument;

use coupons::unfreeze_coupon;
use pricing::priced;

use crate::center::OrderCenter;
use crate::outcomes::CheckoutError;
use crate::placement::{channel_share, cooling_down};
use crate::refusal::{down, Dependency};

/// The checkout placed under `key`, and whether it was placed before (a replay).
pub async fn checkout(
    center: Arc<OrderCenter>,
    cart: Checkout,
    key: String,
) -> Result<(CheckoutOrder, bool), CheckoutError> {
    // Its own task: a client hanging up must not stop a checkout between
    // its Tries and their Confirm or Cancel.
    tokio::spawn(checkout_once(center, cart, key).in_current_span()).await.unwrap_or_else(|err| {
        tracing::error!(error = %err, "checkout task failed");
        Err(CheckoutError::Unavailable(Dependency::Redis))
    })
}

async fn checkout_once(
    center: Arc<OrderCenter>,
    cart: Checkout,
    key: String,
) -> Result<(CheckoutOrder, bool), CheckoutError> {
    if !center.node.held() {
        return Err(CheckoutError::Unavailable(Dependency::Redis));
    }
    if let Some(retry_after_secs) = cooling_down(&center, cart.user_id).await {
        return Err(CheckoutError::CoolingDown { retry_after_secs });
    }
    let policy = center.breakers.load_full();
    policy.redis.permit().map_err(CheckoutError::Refused)?;
    policy.kafka.permit().map_err(CheckoutError::Refused)?;
    let now_ms = Utc::now().timestamp_millis();
    let parent = center.ids.next(bucket_for_user(cart.user_id), now_ms);
    tracing::Span::current().record("order_id", tracing::field::display(parent));
    let record = CheckoutRecord { accepted: false, parent, created_ms: now_ms };
    let claimed = center
        .checkouts
        .claim_checkout(cart.user_id, &key, &record, center.checkout_ttl())
        .await
        .map_err(redis_down)?;
    if let Some(first) = claimed {
        return again(&center, &cart, &key, first).await;
    }
    let order = match priced(&center, &cart, &key, parent, now_ms).await {
        Ok(order) => order,
        Err(err) => {
            free_key(&center, cart.user_id, &key, &record).await;
            return Err(err);
        }
    };
    drive(&center, order, &key, record, cart.channel.as_ref(), false).await.map(|order| (order, false))
}

/// A repeat of a key: the first checkout's answer, or (once its request is
/// surely over, unanswered) its checkout sent again.
async fn again(
    center: &OrderCenter,
    cart: &Checkout,
    key: &str,
    first: CheckoutRecord,
) -> Result<(CheckoutOrder, bool), CheckoutError> {
    let now_ms = Utc::now().timestamp_millis();
    let over = now_ms - first.created_ms >= center.in_flight_window().as_millis() as i64;
    let Some(order) = load(center, first.parent).await? else {
        // Claimed, its checkout not stored: its request is storing it now,
        // or died before (then nothing was held, and the key is freed for
        // the next retry).
        if over {
            free_key(center, cart.user_id, key, &first).await;
        }
        return Err(CheckoutError::InProgress { order_id: first.parent });
    };
    let lines: Vec<(String, u32)> = cart.lines.iter().map(|line| (line.sku.clone(), line.qty)).collect();
    if !order.is_same_request(cart.user_id, &lines, cart.coupon.as_deref(), cart.points) {
        return Err(CheckoutError::KeyReused);
    }
    if first.accepted {
        // Its payment window passed: answered as it stands, and refused
        // once every item was cancelled unpaid (the key is free then).
        if now_ms >= order.pay_by.timestamp_millis() {
            let statuses =
                center.checkout_item_statuses(&order).await.map_err(down(Dependency::Mysql, "item lookup"))?;
            if checkout_status(&statuses) == OrderStatus::Cancelled {
                free_key(center, cart.user_id, key, &first).await;
                return Err(CheckoutError::Cancelled);
            }
        }
        return Ok((order, true));
    }
    if !over {
        return Err(CheckoutError::InProgress { order_id: first.parent });
    }
    if now_ms >= order.pay_by.timestamp_millis() {
        // Its payment window passed unanswered: whatever it held is gone.
        free_key(center, cart.user_id, key, &first).await;
        return Err(CheckoutError::Cancelled);
    }
    // Taken over by this request alone: other repeats now see it in progress.
    if !center.checkouts.refresh_checkout(cart.user_id, key, &first, now_ms).await.map_err(redis_down)? {
        return Err(CheckoutError::InProgress { order_id: first.parent });
    }
    let record = CheckoutRecord { created_ms: now_ms, ..first };
    drive(center, order, key, record, cart.channel.as_ref(), true).await.map(|order| (order, true))
}

pub(super) async fn load(center: &OrderCenter, parent: OrderId) -> Result<Option<CheckoutOrder>, CheckoutError> {
    let Some(json) = center.checkouts.checkout(parent).await.map_err(redis_down)? else {
        return Ok(None);
    };
    serde_json::from_str(&json).map(Some).map_err(|err| {
        tracing::error!(%parent, error = %err, "stored checkout unreadable");
        CheckoutError::Unavailable(Dependency::Redis)
    })
}

pub(super) async fn save(center: &OrderCenter, order: &CheckoutOrder) -> Result<(), CheckoutError> {
    let json = serde_json::to_string(order).expect("a checkout serializes");
    Ok(center.checkouts.save_checkout(order.order_id, &json, center.checkout_ttl()).await.map_err(redis_down)?)
}

async fn free_key(center: &OrderCenter, user_id: u64, key: &str, record: &CheckoutRecord) {
    if let Err(err) = center.checkouts.drop_checkout(user_id, key, record).await {
        let parent = record.parent;
        tracing::warn!(%parent, error = %err, "idempotency key left claimed by a refused checkout until its TTL");
    }
}

/// Each SKU's items, in SKU order.
pub(super) fn by_sku(order: &CheckoutOrder) -> BTreeMap<String, Vec<TccItem>> {
    let mut skus: BTreeMap<String, Vec<TccItem>> = BTreeMap::new();
    for (sub_order, item) in order.items() {
        skus.entry(item.sku.clone()).or_default().push(TccItem {
            order_id: item.order_id,
            qty: item.qty,
            amount_cents: item.amount_cents,
            key: order::checkout::item_key(order.order_id, sub_order),
        });
    }
    skus
}

/// Spends its points, tries every SKU, then sends the checkout and
/// confirms its acceptance.
/// `record` is the key's claim as this request holds it: from its time
/// on, a repeat waits the in-flight window before it takes over. The event
/// is sent only early enough in that window for the broker's answer to
/// come within it, so a checkout is never sent by this request and
/// cancelled by a repeat's (or the reverse).
async fn drive(
    center: &OrderCenter,
    mut order: CheckoutOrder,
    key: &str,
    record: CheckoutRecord,
    channel: Option<&StorefrontChannel>,
    replayed: bool,
) -> Result<CheckoutOrder, CheckoutError> {
    let skus = by_sku(&order);
    if let Err(refusal) = points::spend(center, &order).await {
        return Err(abort(center, &order, key, &record, &skus, &[], refusal).await);
    }
    let mut generations: HashMap<String, i64> = HashMap::new();
    let mut tried: Vec<&str> = Vec::with_capacity(skus.len());
    for (sku, items) in &skus {
        tried.push(sku);
        let unit_price_cents =
            order.lines.iter().find(|line| line.sku == *sku).map(|line| line.unit_price_cents).unwrap_or_default();
        let warehouse =
            order.items().find(|(_, item)| item.sku == *sku).and_then(|(_, item)| item.warehouse.as_deref());
        let request = TryRequest {
            user_id: order.user_id,
            unit_price_cents,
            now_ms: order.created_at.timestamp_millis(),
            pay_by_ms: order.pay_by.timestamp_millis(),
            confirm_ms: center.confirm_windows().confirm_ms,
            warehouse,
            channel_share: channel_share(channel),
            items,
        };
        let refusal = match center.sales.tcc_try(sku, &request).await {
            Ok(Tried::Held { sale_generation }) => {
                generations.insert(sku.clone(), sale_generation);
                continue;
            }
            Ok(refused) => refused_try(center, sku, refused),
            Err(err) => {
                tracing::warn!(order_id = %order.order_id, sku, error = %err, "try failed; cancelling the checkout");
                CheckoutError::Unavailable(Dependency::Redis)
            }
        };
        return Err(abort(center, &order, key, &record, &skus, &tried, refusal).await);
    }
    let send_by_ms =
        record.created_ms + center.in_flight_window().as_millis() as i64 - center.settings.message_timeout_ms as i64;
    if Utc::now().timestamp_millis() > send_by_ms {
        tracing::warn!(order_id = %order.order_id, "checkout's tries took too long to send it; cancelling");
        let all: Vec<&str> = skus.keys().map(String::as_str).collect();
        return Err(
            abort(center, &order, key, &record, &skus, &all, CheckoutError::Unavailable(Dependency::Redis)).await
        );
    }
    for sub in &mut order.sub_orders {
        for item in &mut sub.items {
            item.sale_generation = generations[&item.sku];
        }
    }
    save(center, &order).await?;
    let outcome_unknown = || CheckoutError::OutcomeUnknown {
        order_id: order.order_id,
        retry_after_secs: center.in_flight_window().as_secs().max(1),
    };
    if let Err(unpublished) = center.publish(&OrderEvent::CheckoutCreated(order.clone())).await {
        if unpublished.delivered_maybe || replayed {
            tracing::warn!(order_id = %order.order_id, "checkout event outcome unknown; its items stay until the confirm deadline");
            return Err(outcome_unknown());
        }
        let all: Vec<&str> = skus.keys().map(String::as_str).collect();
        return Err(
            abort(center, &order, key, &record, &skus, &all, CheckoutError::Unavailable(Dependency::Kafka)).await
        );
    }
    let pay_by_ms = order.pay_by.timestamp_millis();
    for (sku, items) in &skus {
        let ids: Vec<OrderId> = items.iter().map(|item| item.order_id).collect();
        match center.sales.acknowledge_items(sku, &ids, pay_by_ms).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(order_id = %order.order_id, sku, "checkout item gone before its acknowledgement; it stays gone");
                return Err(outcome_unknown());
            }
            Err(err) => {
                tracing::warn!(order_id = %order.order_id, sku, error = %err, "could not acknowledge the checkout in Redis");
                return Err(outcome_unknown());
            }
        }
    }
    if !replayed {
        for (sub_order, item) in order.items() {
            let item = OrderCreated::of_checkout_item(&order, sub_order, item);
            center
                .cache_accepted(&StoredOrder {
                    order_id: item.order_id,
                    user_id: item.user_id,
                    sku: item.sku,
                    qty: item.qty,
                    amount_cents: item.amount_cents,
                    status: OrderStatus::PendingPayment,
                    created_at: item.created_at,
                    pay_by: item.pay_by,
                    shipment: None,
                })
                .await;
        }
    }
    if let Err(err) = center.checkouts.accept_checkout(order.user_id, key, &record).await {
        // A repeat of the key sends it once more (all idempotent) and is answered then.
        tracing::warn!(order_id = %order.order_id, error = %err, "checkout key not marked answered");
    }
    metrics::counter!("gateway_checkouts_total", "outcome" => "accepted").increment(1);
    Ok(order)
}

fn refused_try(center: &OrderCenter, sku: &str, tried: Tried) -> CheckoutError {
    let sku = sku.to_owned();
    match tried {
        Tried::Held { .. } => unreachable!("a held Try is not a refusal"),
        Tried::Cancelled(_) => CheckoutError::Cancelled,
        Tried::UnknownSku => CheckoutError::UnknownSku { sku },
        Tried::OutsideWindow(window) => {
            CheckoutError::OutsideWindow { refusal: center.sale_windows.refusal(&sku, window), sku }
        }
        Tried::PriceChanged { price_cents } => CheckoutError::PriceChanged { sku, price_cents },
        Tried::OutOfStock { stock_left } => CheckoutError::OutOfStock { sku, available: stock_left },
        Tried::Capped => CheckoutError::OpenOrdersCapped { sku },
        Tried::Regional | Tried::NoWarehouse => CheckoutError::NoWarehouse { sku },
        Tried::LimitExceeded => CheckoutError::LimitExceeded { sku },
        Tried::ChannelShareTaken => CheckoutError::ChannelShareTaken { sku },
    }
}

/// Cancels the items of every SKU tried (the one refused too: its Try may
/// have taken effect unseen). When everything came back, the key, the
/// coupon and the points are free again and `refusal` is the answer; otherwise (too late,
/// or Redis failing) the items wait for their confirm deadline and the
/// outcome is unknown to the buyer.
async fn abort(
    center: &OrderCenter,
    order: &CheckoutOrder,
    key: &str,
    record: &CheckoutRecord,
    skus: &BTreeMap<String, Vec<TccItem>>,
    tried: &[&str],
    refusal: CheckoutError,
) -> CheckoutError {
    let outcome_unknown = CheckoutError::OutcomeUnknown {
        order_id: order.order_id,
        retry_after_secs: center.in_flight_window().as_secs().max(1),
    };
    // A repeat of the key took the checkout over (this request ran past the
    // in-flight window): it may be sending it; its items are its own now.
    match center.checkouts.checkout_claim(order.user_id, key).await {
        Ok(Some(claim)) if claim == *record => {}
        _ => return outcome_unknown,
    }
    let mut all_back = true;
    for sku in tried {
        let ids: Vec<OrderId> = skus[*sku].iter().map(|item| item.order_id).collect();
        match center.sales.tcc_cancel(sku, &ids, &center.confirm_windows()).await {
            Ok(outcomes) => {
                all_back &= outcomes.iter().all(|outcome| {
                    matches!(outcome, CancelledItem::Released | CancelledItem::Empty | CancelledItem::Closed)
                });
            }
            Err(err) => {
                tracing::warn!(order_id = %order.order_id, sku, error = %err, "cancel failed; its items wait for their confirm deadline");
                all_back = false;
            }
        }
    }
    if !all_back {
        return outcome_unknown;
    }
    for sku in tried {
        center.sold_out.clear(sku);
    }
    free_key(center, order.user_id, key, record).await;
    unfreeze_coupon(center, order).await;
    points::give_back(center, order).await;
    metrics::counter!("gateway_checkouts_total", "outcome" => "refused").increment(1);
    refusal
}

/// `map_err` for a failed Redis call of a checkout (a 503).
fn redis_down<E: std::fmt::Display>(err: E) -> Dependency {
    down(Dependency::Redis, "a checkout's Redis call")(err)
}
