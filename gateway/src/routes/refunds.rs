//! Refunds: a channel's signed notification (`POST /v1/refunds/notify/{channel}`),
//! and the operator's compensation queue (`GET /admin/refunds?status=stuck`,
//! `POST /admin/refunds/{refund_id}/retry`).

use hyper::StatusCode;
use order::request::check_token;
use paychannel::messages::{RefundState, RefundStatus};
use serde_json::json;

use paychannel::channels::Channels;

use crate::app::App;
use crate::error::ApiError;
use crate::http::{self, Read, Reply};
use crate::routes::admin::authorize;
use crate::routes::payments::verified_channel;
use ordercenter::refusal::down;
use ordercenter::refusal::Dependency;

/// Most refunds listed per shard.
const LIST_LIMIT: u32 = 100;

/// A channel's notification of a refund's outcome, verified like a
/// payment's before anything is read; recorded once however often it
/// comes, and only for a refund through that channel.
pub async fn notify(app: &App, channel: &str, req: Read) -> Result<Reply, ApiError> {
    let Some(channel) = verified_channel(app, channel, &req) else {
        metrics::counter!("gateway_refund_notifications_total", "outcome" => "bad_signature").increment(1);
        return Err(ApiError::BadSignature);
    };
    let state: RefundState =
        serde_json::from_slice(req.body()).map_err(|e| ApiError::Invalid(format!("notification: {e}")))?;
    check_token("refund_id", &state.refund_id).map_err(|e| ApiError::Invalid(e.0))?;
    let succeeded = match state.status {
        RefundStatus::Processing => return Ok(http::json(StatusCode::OK, &json!({"code": "SUCCESS"}))),
        RefundStatus::Success => true,
        RefundStatus::Failed => false,
    };
    let settled = app
        .center
        .services
        .orders
        .refund_settled(&state.refund_id, &Channels::recorded_as(channel), succeeded, "notification")
        .await
        .map_err(down(Dependency::Mysql, "recording the refund outcome (the channel retries)"))?;
    let outcome = format!("{settled:?}").to_lowercase();
    metrics::counter!("gateway_refund_notifications_total", "outcome" => outcome).increment(1);
    Ok(http::json(StatusCode::OK, &json!({"code": "SUCCESS"})))
}

/// `?status=stuck|pending|done` (stuck by default): refunds in that state, every shard.
pub async fn list(app: &App, req: Read) -> Result<Reply, ApiError> {
    authorize(app, req.headers())?;
    let wanted = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("status="))
        .unwrap_or("stuck");
    let state = match wanted {
        "stuck" => "STUCK",
        "pending" => "PENDING",
        "done" => "DONE",
        _ => return Err(ApiError::Invalid("status must be stuck, pending or done".into())),
    };
    let refunds = app
        .center
        .services
        .orders
        .refunds_in_state(state, LIST_LIMIT)
        .await
        .map_err(down(Dependency::Mysql, "a refunds lookup"))?;
    Ok(http::json(StatusCode::OK, &json!({"status": wanted, "refunds": refunds})))
}

/// An operator sends a stuck refund round again.
pub async fn retry(app: &App, refund_id: &str, req: Read) -> Result<Reply, ApiError> {
    let admin = authorize(app, req.headers())?;
    check_token("refund_id", refund_id).map_err(|e| ApiError::Invalid(e.0))?;
    if !app
        .center
        .services
        .orders
        .retry_refund(refund_id, &admin)
        .await
        .map_err(down(Dependency::Mysql, "a refunds lookup"))?
    {
        return Err(ApiError::RefundNotStuck);
    }
    tracing::info!(target: "audit", admin, refund_id, "stuck refund retried");
    Ok(http::json(StatusCode::OK, &json!({"refund_id": refund_id, "state": "PENDING"})))
}
