//! `POST /v1/orders/{id}/pay` (the buyer starts paying) and
//! `POST /v1/payments/notify` (the channel's asynchronous notification).

use chrono::Utc;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use order::request::check_token;
use paychannel::messages::{CreatePayment, PaymentState, PaymentStatus};
use paychannel::{signature, SIGNATURE_HEADER};
use serde_json::json;
use stock::PaymentQuery;

use crate::app::App;
use crate::config::LimitedRoute;
use crate::error::{ApiError, Dependency};
use crate::http::{self, Reply};
use crate::payments::settle;
use crate::routes::orders::{owner, parse_order_id};

/// Creates the payment at the channel for a pending order of the user and
/// answers what the shopper's device needs to pay. The channel is asked
/// about it later in case its notification gets lost.
pub async fn pay(app: &App, order_id: &str, req: Request<Incoming>) -> Result<Reply, ApiError> {
    let order_id = parse_order_id(order_id)?;
    let owner = owner(req).await?;
    app.traffic.load().admit_user(LimitedRoute::PayOrder, owner.user_id)?;
    let reservation = app
        .sales
        .reservation(&owner.sku, order_id)
        .await
        .map_err(|_| ApiError::Unavailable(Dependency::Redis))?
        .ok_or(ApiError::NotPending { status: None })?;
    if reservation.user_id != owner.user_id {
        return Err(ApiError::UnknownOrder);
    }
    let created = app
        .channel
        .create(&CreatePayment {
            merchant_order_id: order_id.to_string(),
            amount_cents: reservation.amount_cents,
            attach: owner.sku.clone(),
            notify_url: app.config.payments.notify_url.clone(),
        })
        .await
        .map_err(|err| {
            tracing::warn!(%order_id, error = %err, "creating the payment failed");
            ApiError::Unavailable(Dependency::PaymentChannel)
        })?;
    let now_ms = Utc::now().timestamp_millis();
    let query = PaymentQuery { sku: owner.sku, order_id, started_ms: now_ms };
    let due_ms = now_ms + app.config.payments.query_every_secs as i64 * 1_000;
    if let Err(err) = app.sales.queue_payment_query(&query, due_ms).await {
        tracing::warn!(%order_id, error = %err, "payment not queued for lookups; only its notification will settle it");
    }
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "order_id": order_id,
            "payment_id": created.payment_id,
            "amount_cents": reservation.amount_cents,
            "pay_url": created.pay_url,
            "qr_payload": created.qr_payload,
        }),
    ))
}

/// The channel's notification. The signature over the raw body is checked
/// before anything is parsed; the channel gets its 200 only once the
/// resulting event is acknowledged by the broker (so it retries otherwise).
pub async fn notify(app: &App, req: Request<Incoming>) -> Result<Reply, ApiError> {
    let (parts, body) = req.into_parts();
    let body = http::read_body(&parts.headers, body).await?;
    let signature = parts.headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !signature::verify(app.config.payments.secret.as_bytes(), &body, signature) {
        metrics::counter!("gateway_payments_total", "outcome" => "bad_signature").increment(1);
        return Err(ApiError::BadSignature);
    }
    let state: PaymentState =
        serde_json::from_slice(&body).map_err(|e| ApiError::Invalid(format!("notification: {e}")))?;
    if state.status == PaymentStatus::Success {
        let order_id = parse_order_id(&state.merchant_order_id)?;
        check_token("attach", &state.attach).map_err(|e| ApiError::Invalid(e.0))?;
        check_token("payment_id", &state.payment_id).map_err(|e| ApiError::Invalid(e.0))?;
        let paid_at = state.paid_at.unwrap_or_else(Utc::now);
        settle(app, &state.attach, order_id, &state.payment_id, state.amount_cents, paid_at).await?;
    }
    Ok(http::json(StatusCode::OK, &json!({"code": "SUCCESS"})))
}
