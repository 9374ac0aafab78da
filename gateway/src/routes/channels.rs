//! Storefront channels' figures: `GET /admin/channels/{id}/stats` (their
//! orders by status, from every shard), and the per-channel count of what
//! their order and checkout requests were answered.

use hyper::StatusCode;
use serde_json::{json, Map, Value};

use crate::app::App;
use crate::error::ApiError;
use crate::http::{self, Read, Reply};
use crate::routes::admin::authorize;
use ordercenter::refusal::{down, Dependency};

/// Counts an answer to a channel's order (`route`) in
/// `gateway_channel_orders_total{channel, route, status}`.
pub fn count(channel: Option<&str>, route: &'static str, answered: &Result<Reply, ApiError>) {
    let Some(channel) = channel else { return };
    let status = match answered {
        Ok(reply) => reply.status(),
        Err(err) => err.status(),
    };
    let (channel, status) = (channel.to_owned(), status.as_str().to_owned());
    metrics::counter!("gateway_channel_orders_total", "channel" => channel, "route" => route, "status" => status)
        .increment(1);
}

/// A configured channel's orders by status: `{"channel", "orders": {status: {"count", "amount_cents"}}}`.
pub async fn stats(app: &App, channel: &str, req: Read) -> Result<Reply, ApiError> {
    authorize(app, req.headers())?;
    if !app.traffic.load().config.channels.list.contains_key(channel) {
        return Err(ApiError::NotFound);
    }
    let figures =
        app.center.services.reads.channel_figures(channel).await.map_err(down(Dependency::Mysql, "channel figures"))?;
    let orders: Map<String, Value> = figures
        .into_iter()
        .map(|(status, (count, cents))| (status.as_str().to_owned(), json!({"count": count, "amount_cents": cents})))
        .collect();
    Ok(http::json(StatusCode::OK, &json!({"channel": channel, "orders": orders})))
}
