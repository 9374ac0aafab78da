//! `POST /v1/orders/{id}/pay` (the buyer starts paying) and
//! `POST /v1/payments/notify` (the channel's asynchronous notification).

use chrono::Utc;
use hyper::StatusCode;
use order::request::{check_token, PayRequest};
use paychannel::channels::Channels;
use paychannel::messages::{PaymentState, PaymentStatus};
use paychannel::{signature, SIGNATURE_HEADER};
use serde_json::json;

use crate::app::App;
use crate::config::LimitedRoute;
use crate::error::ApiError;
use crate::http::{self, Read, Reply};
use crate::routes::input;
use ordercenter::outcomes::Payment;
use ordercenter::payments;

/// The buyer starts paying a pending order of theirs, at the channel they
/// name (`"channel"`) or the default: what the shopper's device needs to pay.
pub async fn pay(app: &App, order_id: &str, req: Read, buyer: u64) -> Result<Reply, ApiError> {
    let order_id = input::order_id(order_id)?;
    http::require_json(req.headers())?;
    let asked = PayRequest::from_json(req.body(), buyer)?;
    app.traffic.load().admit_user(LimitedRoute::PayOrder, asked.owner.user_id)?;
    let (owner, channel) = (&asked.owner, asked.channel.as_deref());
    let started = payments::start(&app.center, &owner.sku, order_id, owner.user_id, channel).await?;
    Ok(http::json(StatusCode::OK, &started))
}

/// The id of the channel a notification came from, if its signature over
/// the raw body verifies with that channel's secret. `channel` is the last
/// segment of its path (`""`: the bare path, where the payments made before
/// there were several channels are notified: [`Channels::resolve`]).
pub fn verified_channel<'a>(app: &'a App, channel: &'a str, req: &Read) -> Option<&'a str> {
    let channel = Channels::resolve(channel);
    let secret = app.config.payments.channels.get(channel)?.secret.expose();
    let signature = req.headers().get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    signature::verify(secret.as_bytes(), req.body(), signature).then_some(channel)
}

/// A channel's notification (`/v1/payments/notify/{channel}`). The
/// signature over the raw body is checked with that channel's secret
/// before anything is parsed; the channel gets its 200 only once the
/// resulting event is acknowledged by the broker (so it retries otherwise).
pub async fn notify(app: &App, channel: &str, req: Read) -> Result<Reply, ApiError> {
    let Some(channel) = verified_channel(app, channel, &req) else {
        metrics::counter!("gateway_payments_total", "outcome" => "bad_signature").increment(1);
        return Err(ApiError::BadSignature);
    };
    let state: PaymentState =
        serde_json::from_slice(req.body()).map_err(|e| ApiError::Invalid(format!("notification: {e}")))?;
    if state.status == PaymentStatus::Success {
        let order_id = input::order_id(&state.merchant_order_id)?;
        tracing::Span::current().record("order_id", tracing::field::display(order_id));
        check_token("attach", &state.attach).map_err(|e| ApiError::Invalid(e.0))?;
        check_token("payment_id", &state.payment_id).map_err(|e| ApiError::Invalid(e.0))?;
        let payment = Payment {
            sku: state.attach,
            order_id,
            channel: channel.to_owned(),
            payment_id: state.payment_id,
            amount_cents: state.amount_cents,
            paid_at: state.paid_at.unwrap_or_else(Utc::now),
        };
        payments::settle(&app.center, &payment).await?;
    }
    Ok(http::json(StatusCode::OK, &json!({"code": "SUCCESS"})))
}
