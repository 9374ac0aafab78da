//! A checkout's one payment and its cancellation, item by item: the
//! payment is for the parent order (`attach` is [`CHECKOUT_ATTACH`]) and
//! confirms each item's reservation (`confirm.lua`, TCC's Confirm) with
//! the item's amount; an item cancelled first gets its amount refunded,
//! as a single order's late payment does.

use chrono::Utc;
use order::checkout::CheckoutOrder;
use order::event::{OrderCreated, OrderEvent, OrderPaid, Refund, RefundRequired};
use order::id::OrderId;
use order::status::OrderStatus;
use stock::Confirmation;

use crate::center::OrderCenter;
use crate::outcomes::{OrderError, Payment, PaymentError, PaymentStarted, Settled, CHECKOUT_ATTACH};
use crate::refusal::down;
use crate::refusal::Dependency;
use crate::{cancellation, payment_starts};

/// The buyer's checkout, if it is theirs.
pub async fn owned(center: &OrderCenter, parent: OrderId, user_id: u64) -> Result<CheckoutOrder, OrderError> {
    let json = center.checkouts.checkout(parent).await.map_err(down(Dependency::Redis, "checkout lookup"))?;
    match json.and_then(|json| serde_json::from_str::<CheckoutOrder>(&json).ok()) {
        Some(order) if order.user_id == user_id => Ok(order),
        _ => Err(OrderError::UnknownOrder),
    }
}

/// Creates the checkout's payment at the channel while any item is still held.
/// At the channel the buyer `asked` for, as a single order's ([`payment_starts::open`]).
pub async fn start(
    center: &OrderCenter,
    parent: OrderId,
    user_id: u64,
    asked: Option<&str>,
) -> Result<PaymentStarted, OrderError> {
    let order = owned(center, parent, user_id).await?;
    // Not before it was accepted: a payment must not reach an item its
    // checkout has yet to try (it would be refunded, the item left unpaid).
    let claim = center
        .checkouts
        .checkout_claim(user_id, &order.idempotency_key)
        .await
        .map_err(down(Dependency::Redis, "checkout key lookup"))?;
    if !claim.is_some_and(|claim| claim.parent == parent && claim.accepted) {
        return Err(OrderError::NotPending { status: None });
    }
    let held = order.items().map(|(_, item)| (item.sku.clone(), item.order_id)).collect::<Vec<_>>();
    let mut any_held = false;
    for (sku, item) in &held {
        let reservation =
            center.sales.reservation(sku, *item).await.map_err(down(Dependency::Redis, "reservation lookup"))?;
        any_held |= reservation.is_some();
    }
    if !any_held {
        return Err(OrderError::NotPending { status: None });
    }
    payment_starts::open(center, asked, parent, order.payable_cents, CHECKOUT_ATTACH).await
}

/// Settles a checkout's payment: each item confirmed (or refunded), then
/// every event sent, then each item's payment marked acknowledged. `None`
/// when no checkout has this id (settled as a single order's payment).
pub async fn settle(center: &OrderCenter, payment: &Payment) -> Result<Option<Settled>, PaymentError> {
    let json = center.checkouts.checkout(payment.order_id).await.map_err(down(Dependency::Redis, "checkout lookup"))?;
    let Some(order) = json.and_then(|json| serde_json::from_str::<CheckoutOrder>(&json).ok()) else {
        // Its record expired (days after its payment window): a repeat of a
        // payment settled then is recognised in MySQL; anything else is a
        // payment nothing can take, refunded as a single order's would be.
        let settled = center
            .services
            .orders
            .checkout_paid_by(payment.order_id, &payment.payment_id)
            .await
            .map_err(down(Dependency::Mysql, "checkout payment lookup"))?;
        return Ok(settled.then_some(Settled::AlreadySettled));
    };
    if payment.amount_cents != order.payable_cents {
        tracing::error!(order_id = %order.order_id, paid = payment.amount_cents, "payment amount differs from the checkout's");
        return Err(PaymentError::AmountMismatch { paid: payment.amount_cents, expected: order.payable_cents });
    }
    let mut events = Vec::new();
    let mut sent = Vec::new();
    let (mut paid, mut refunded) = (0, 0);
    for (sub_order, item) in order.items() {
        let confirmation =
            center.sales.confirm(&item.sku, item.order_id, &payment.payment_id, item.amount_cents).await.map_err(
                |err| {
                    tracing::warn!(order_id = %item.order_id, error = %err, "confirm failed");
                    PaymentError::Unavailable(Dependency::Redis)
                },
            )?;
        let refund = match confirmation {
            Confirmation::Paid(_) | Confirmation::Duplicate { refund: false, acknowledged: false, .. } => None,
            Confirmation::Duplicate { acknowledged: true, .. } => continue,
            Confirmation::Refund { .. } | Confirmation::Duplicate { refund: true, .. } => {
                Some("checkout item cancelled before its payment")
            }
            Confirmation::SoldOut { outbox_entry, reservation } => {
                cancellation::sold_out(center, &item.sku, item.order_id, &reservation, &outbox_entry).await;
                Some("checkout item sold out before its payment")
            }
            Confirmation::SecondPayment(_) => Some("a second payment for a checkout already paid"),
            Confirmation::Orphan => Some("no such item in the sale"),
            Confirmation::AmountMismatch { expected } => {
                return Err(PaymentError::AmountMismatch { paid: item.amount_cents, expected });
            }
        };
        let item_order = OrderCreated::of_checkout_item(&order, sub_order, item);
        match refund {
            None => {
                paid += 1;
                center.record_move(item.order_id, OrderStatus::Paid).await;
                events.push(OrderEvent::OrderPaid(OrderPaid {
                    order: item_order,
                    payment_channel: payment.channel.clone(),
                    payment_id: payment.payment_id.clone(),
                    paid_at: payment.paid_at,
                }));
            }
            Some(reason) => {
                refunded += 1;
                events.push(OrderEvent::RefundRequired(RefundRequired {
                    order_id: item.order_id,
                    user_id: order.user_id,
                    sku: item.sku.clone(),
                    payment_channel: payment.channel.clone(),
                    payment_id: payment.payment_id.clone(),
                    amount_cents: item.amount_cents,
                    reason: reason.to_owned(),
                    at: Utc::now(),
                }));
            }
        }
        sent.push((item.sku.clone(), item.order_id));
    }
    if let Some(code) = order.coupon.as_deref().filter(|_| paid > 0) {
        // Used for good before the payment is acknowledged (the channel
        // retries until it is recorded).
        let used = center
            .checkouts
            .use_coupon(order.user_id, code, order.order_id)
            .await
            .map_err(down(Dependency::Redis, "marking the coupon used"))?;
        if !used {
            tracing::error!(order_id = %order.order_id, code, "a paid checkout's coupon is held by another checkout");
        }
    }
    if sent.is_empty() {
        metrics::counter!("gateway_payments_total", "outcome" => "duplicate").increment(1);
        return Ok(Some(Settled::AlreadySettled));
    }
    for event in &events {
        center.publish(event).await.map_err(|err| {
            tracing::warn!(order_id = %order.order_id, error = %err, "checkout payment event not acknowledged; the channel will retry");
            PaymentError::from(err)
        })?;
    }
    for (sku, item) in &sent {
        if let Err(err) = center.sales.mark_payment_event(sku, *item, &payment.payment_id).await {
            tracing::warn!(order_id = %item, error = %err, "could not record the payment event as sent");
        }
    }
    metrics::counter!("gateway_payments_total", "outcome" => "paid").increment(paid);
    metrics::counter!("gateway_payments_total", "outcome" => "refund_required").increment(refunded);
    Ok(Some(if paid > 0 { Settled::Paid } else { Settled::Refunded }))
}

/// The buyer cancels the whole checkout: each item as a single order is
/// (a pending one's units back at once, a paid one refunded once the
/// warehouse let it go). Stops at the first item refused; the refunds started.
pub async fn cancel(center: &OrderCenter, parent: OrderId, user_id: u64) -> Result<Vec<Refund>, OrderError> {
    let order = owned(center, parent, user_id).await?;
    let mut refunds = Vec::new();
    for (_, item) in order.items() {
        match cancellation::cancel(center, &item.sku, item.order_id, user_id).await {
            Ok(refund) => refunds.extend(refund),
            // Cancelled before (by a timeout, or an earlier request).
            Err(OrderError::InvalidTransition { status: OrderStatus::Cancelled, .. }) => {}
            Err(err) => return Err(err),
        }
    }
    if let Some(code) = &order.coupon {
        if let Err(err) = center.checkouts.swap_coupon_holder(user_id, code, Some(parent), None).await {
            tracing::warn!(%parent, error = %err, "coupon not unfrozen; its next use finds the checkout cancelled");
        }
    }
    Ok(refunds)
}
