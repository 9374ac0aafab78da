//! Payments: starting one at the channel for a pending order, and acting on
//! a payment the same way whether its notification arrived or the channel
//! was asked: `confirm.lua` decides atomically, then the event
//! goes to Kafka, and only then is the payment acknowledged. A verified
//! payment is never dropped: one that cannot pay for its order (cancelled,
//! already paid by another payment, unknown to the sale) becomes a
//! `RefundRequired` with its own record.

use chrono::Utc;
use order::event::{OrderEvent, OrderPaid, RefundRequired};
use order::id::OrderId;
use order::status::OrderStatus;
use stock::{Confirmation, ReservationRecord};

use crate::center::OrderCenter;
use crate::outcomes::{OrderError, Payment, PaymentError, PaymentStarted, Settled};
use crate::refusal::down;
use crate::refusal::Dependency;
use crate::{adoption, cancellation, checkout_payments, payment_starts};

/// Creates the payment for a pending order of `user_id` at the channel
/// the buyer `asked` for (see [`payment_starts::open`]).
pub async fn start(
    center: &OrderCenter,
    sku: &str,
    order_id: OrderId,
    user_id: u64,
    asked: Option<&str>,
) -> Result<PaymentStarted, OrderError> {
    adoption::adopt_first(center, order_id, Some(user_id)).await;
    let reservation =
        center.sales.reservation(sku, order_id).await.map_err(down(Dependency::Redis, "reservation lookup"))?;
    let Some(reservation) = reservation else {
        return Err(no_longer_held_status(center, order_id, user_id).await);
    };
    if reservation.user_id != user_id {
        return Err(OrderError::UnknownOrder);
    }
    payment_starts::open(center, asked, order_id, reservation.amount_cents, sku).await
}

/// Why an order holds no reservation, told only to its buyer: its stored
/// status if it is theirs, else unknown (so nobody learns others' orders).
async fn no_longer_held_status(center: &OrderCenter, order_id: OrderId, user_id: u64) -> OrderError {
    match center.services.orders.get(order_id).await {
        // Still pending in MySQL: its end (paid or cancelled) is on its way there.
        Ok(Some(order)) if order.user_id == user_id => {
            OrderError::NotPending { status: (order.status != OrderStatus::PendingPayment).then_some(order.status) }
        }
        Ok(_) => OrderError::UnknownOrder,
        Err(err) => {
            tracing::warn!(%order_id, error = %err, "order lookup failed");
            OrderError::Unavailable(Dependency::Mysql)
        }
    }
}

/// Settles a payment. Copies of one payment settling at once in this
/// gateway share one settlement.
pub async fn settle(center: &OrderCenter, payment: &Payment) -> Result<Settled, PaymentError> {
    let flight = format!("{}\n{}\n{}", payment.sku, payment.order_id, payment.payment_id);
    let (settled, _) = center.settling.run(flight, || settle_once(center, payment)).await;
    settled
}

async fn settle_once(center: &OrderCenter, payment: &Payment) -> Result<Settled, PaymentError> {
    if payment.is_for_checkout() {
        if let Some(settled) = checkout_payments::settle(center, payment).await? {
            return Ok(settled);
        }
    }
    let Payment { sku, order_id, payment_id, amount_cents, .. } = payment;
    let (sku, order_id, amount_cents) = (sku.as_str(), *order_id, *amount_cents);
    adoption::adopt_first(center, order_id, None).await;
    let confirmation = center
        .sales
        .confirm(sku, order_id, payment_id, amount_cents)
        .await
        .map_err(down(Dependency::Redis, "confirm"))?;
    let (settled, refund, reservation) = match confirmation {
        Confirmation::Paid(reservation) => (Settled::Paid, None, reservation),
        Confirmation::Refund { reason, reservation } => {
            (Settled::Refunded, Some(format!("order cancelled ({})", reason.as_str())), reservation)
        }
        Confirmation::SoldOut { outbox_entry, reservation } => {
            cancellation::sold_out(center, sku, order_id, &reservation, &outbox_entry).await;
            (Settled::Refunded, Some("sold out before the payment came".to_owned()), reservation)
        }
        Confirmation::Duplicate { acknowledged: true, .. } => {
            metrics::counter!("gateway_payments_total", "outcome" => "duplicate").increment(1);
            return Ok(Settled::AlreadySettled);
        }
        // Seen before, but its event was never acknowledged: send it again.
        Confirmation::Duplicate { refund, reservation, acknowledged: false } => {
            let reason = refund.then(|| "order cancelled".to_owned());
            (if refund { Settled::Refunded } else { Settled::Paid }, reason, reservation)
        }
        Confirmation::SecondPayment(reservation) => {
            (Settled::Refunded, Some("a second payment for an order already paid".to_owned()), reservation)
        }
        Confirmation::Orphan => {
            tracing::warn!(%order_id, sku, payment_id, "payment for an order this sale does not know; to refund");
            let unknown = ReservationRecord {
                user_id: 0,
                qty: 0,
                amount_cents,
                created_ms: 0,
                pay_by_ms: 0,
                sale_generation: 0,
                warehouse: None,
                idempotency_key: String::new(),
            };
            (Settled::Refunded, Some("no such order in the sale".to_owned()), unknown)
        }
        Confirmation::AmountMismatch { expected } => {
            tracing::error!(%order_id, paid = amount_cents, expected, "payment amount differs from the order's");
            return Err(PaymentError::AmountMismatch { paid: amount_cents, expected });
        }
    };
    if settled == Settled::Paid {
        // MySQL hears of it through Kafka; readers see it now.
        center.record_move(order_id, OrderStatus::Paid).await;
    }
    center.publish(&event(payment, refund, &reservation)).await.map_err(|err| {
        tracing::warn!(%order_id, payment_id, error = %err, "payment event not acknowledged; the channel will retry");
        PaymentError::from(err)
    })?;
    if let Err(err) = center.sales.mark_payment_event(sku, order_id, payment_id).await {
        // A repeat of this payment will send the event once more; harmless.
        tracing::warn!(%order_id, error = %err, "could not record the payment event as sent");
    }
    let outcome = if settled == Settled::Paid { "paid" } else { "refund_required" };
    metrics::counter!("gateway_payments_total", "outcome" => outcome).increment(1);
    Ok(settled)
}

fn event(payment: &Payment, refund_reason: Option<String>, reservation: &ReservationRecord) -> OrderEvent {
    match refund_reason {
        None => OrderEvent::OrderPaid(OrderPaid {
            order: reservation.order(payment.order_id, &payment.sku),
            payment_channel: payment.channel.clone(),
            payment_id: payment.payment_id.clone(),
            paid_at: payment.paid_at,
        }),
        Some(reason) => OrderEvent::RefundRequired(RefundRequired {
            order_id: payment.order_id,
            user_id: reservation.user_id,
            sku: payment.sku.clone(),
            payment_channel: payment.channel.clone(),
            payment_id: payment.payment_id.clone(),
            amount_cents: payment.amount_cents,
            reason,
            at: Utc::now(),
        }),
    }
}
