//! Starting a payment: the channel it goes to (the one the buyer named,
//! else the default, else, the default's breaker open, the fallback), the
//! payment created there, and its lookups queued at that channel.

use chrono::Utc;
use order::id::OrderId;
use paychannel::messages::CreatePayment;
use stock::PaymentQuery;

use crate::center::OrderCenter;
use crate::outcomes::{OrderError, PaymentStarted};

/// Creates the payment of `order_id` (a single order, or a checkout's
/// parent) at the channel the buyer `asked` for, else at the default one,
/// else (the default's breaker open) at the fallback one; and queues its
/// lookups at that channel, in case its notification gets lost. `attach`
/// is the order's SKU, or [`crate::outcomes::CHECKOUT_ATTACH`].
pub async fn open(
    center: &OrderCenter,
    asked: Option<&str>,
    order_id: OrderId,
    amount_cents: i64,
    attach: &str,
) -> Result<PaymentStarted, OrderError> {
    let channel = choose_channel(center, asked)?;
    let create = CreatePayment {
        merchant_order_id: order_id.to_string(),
        amount_cents,
        attach: attach.to_owned(),
        notify_url: center.settings.payments.notify_url_of(&channel),
    };
    let created = center.create_payment(&channel, &create).await.map_err(|_| {
        let available = center.services.channels.ids().filter(|id| *id != channel && usable(center, id));
        OrderError::PaymentChannelDown { available: available.map(str::to_owned).collect(), channel: channel.clone() }
    })?;
    metrics::counter!("gateway_payments_started_total", "channel" => channel.clone()).increment(1);
    let now_ms = Utc::now().timestamp_millis();
    let query = PaymentQuery { sku: attach.to_owned(), order_id, started_ms: now_ms, channel: channel.clone() };
    let due_ms = now_ms + center.settings.payments.query_every_secs as i64 * 1_000;
    if let Err(err) = center.payment_lookups.queue_payment_query(&query, due_ms).await {
        tracing::warn!(%order_id, error = %err, "payment not queued for lookups; only its notification will settle it");
    }
    Ok(PaymentStarted {
        order_id,
        channel,
        payment_id: created.payment_id,
        amount_cents,
        pay_url: created.pay_url,
        qr_payload: created.qr_payload,
    })
}

/// The channel a payment goes to: the one the buyer named (theirs to
/// choose, open or not), else the default, unless its breaker would refuse
/// and the fallback's would not.
fn choose_channel(center: &OrderCenter, asked: Option<&str>) -> Result<String, OrderError> {
    let channels = &center.services.channels;
    if let Some(asked) = asked {
        return match channels.get(asked) {
            Some(_) if !asked.is_empty() => Ok(asked.to_owned()),
            _ => Err(OrderError::UnknownPaymentChannel),
        };
    }
    let (default, fallback) = (channels.default_id(), center.settings.payments.fallback_channel.as_str());
    if !fallback.is_empty() && !usable(center, default) && usable(center, fallback) {
        metrics::counter!("gateway_payment_fallbacks_total", "from" => default.to_owned(), "to" => fallback.to_owned())
            .increment(1);
        return Ok(fallback.to_owned());
    }
    Ok(default.to_owned())
}

/// Whether channel `id`'s breaker would let a call through now.
fn usable(center: &OrderCenter, id: &str) -> bool {
    center.payment_channel(id).is_some_and(|(_, breaker)| breaker.would_permit())
}
