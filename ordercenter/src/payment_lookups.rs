//! The answer to lost payment notifications: every payment started at
//! `/pay` is looked up at its channel every `query_every_secs` for
//! `query_for_secs`, and a successful one is settled exactly as its
//! notification would have been. Pollers on several gateways claim their
//! lookups atomically, so each payment is asked about once per round.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use paychannel::channels::Channels;
use paychannel::messages::PaymentStatus;
use stock::PaymentQuery;

use crate::center::OrderCenter;
use crate::outcomes::Payment;
use crate::outcomes::PaymentError;
use crate::payments::settle;

/// Most lookups claimed per round.
const CLAIM_AT_ONCE: usize = 100;

/// Polls until the task is aborted.
pub async fn run(center: Arc<OrderCenter>) {
    let every = Duration::from_secs(center.settings.payments.query_every_secs).min(Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now_ms = Utc::now().timestamp_millis();
        let next_due_ms = now_ms + center.settings.payments.query_every_secs as i64 * 1_000;
        match center.payment_lookups.claim_payment_lookups(now_ms, next_due_ms, CLAIM_AT_ONCE).await {
            Ok(queries) => {
                for query in queries {
                    look_up(&center, &query, now_ms).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not claim payment lookups"),
        }
    }
}

async fn look_up(center: &OrderCenter, query: &PaymentQuery, now_ms: i64) {
    let order_id = query.order_id;
    if center.services.channels.get(&query.channel).is_none() {
        tracing::error!(%order_id, channel = query.channel, "payment lookup at a channel no longer configured: dropped");
        drop_lookup(center, query).await;
        return;
    }
    // While the channel's breaker is open the lookup fails at once, and
    // is made again next round: the order keeps its payment window.
    let finished = match center.query_payment(&query.channel, &order_id.to_string()).await {
        Ok(Some(state)) if state.status == PaymentStatus::Success => {
            metrics::counter!("gateway_payment_lookups_total", "found" => "paid").increment(1);
            let payment = Payment {
                sku: query.sku.clone(),
                order_id,
                channel: Channels::resolve(&query.channel).to_owned(),
                payment_id: state.payment_id,
                amount_cents: state.amount_cents,
                paid_at: state.paid_at.unwrap_or_else(Utc::now),
            };
            match settle(center, &payment).await {
                // A wrong amount is logged where it is found; asking again changes nothing.
                Ok(_) | Err(PaymentError::AmountMismatch { .. }) => true,
                // Redis or Kafka failed: look again next round.
                Err(PaymentError::Unavailable(_)) => false,
            }
        }
        Ok(_) => {
            metrics::counter!("gateway_payment_lookups_total", "found" => "unpaid").increment(1);
            now_ms - query.started_ms > center.settings.payments.query_for_secs as i64 * 1_000
        }
        Err(_) => false,
    };
    if finished {
        drop_lookup(center, query).await;
    }
}

async fn drop_lookup(center: &OrderCenter, query: &PaymentQuery) {
    if let Err(err) = center.payment_lookups.drop_payment_query(query).await {
        tracing::warn!(order_id = %query.order_id, error = %err, "could not drop a finished payment lookup");
    }
}
