//! Health, readiness and metrics, for load balancers and Prometheus.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::http::{self, Reply};
use ordercenter::breaker::BreakerState;

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The process is up and serving HTTP.
pub fn healthz() -> Reply {
    http::json(StatusCode::OK, &json!({"status": "ok"}))
}

/// Redis and Kafka both answer, neither breaker is open and the node id
/// lease is held: this instance can take orders.
pub async fn readyz(app: &App) -> Reply {
    let redis =
        async { tokio::time::timeout(PROBE_TIMEOUT, app.center.sales.redis().ping()).await.is_ok_and(|r| r.is_ok()) };
    let (redis, kafka) = tokio::join!(redis, app.center.services.events.ready(PROBE_TIMEOUT));
    let breakers = app.center.breakers.load();
    let (redis_breaker, kafka_breaker) = (breakers.redis.state(), breakers.kafka.state());
    let breakers = json!({"redis": redis_breaker.as_str(), "kafka": kafka_breaker.as_str()});
    let closed = redis_breaker != BreakerState::Open && kafka_breaker != BreakerState::Open;
    let node_id = app.center.node.held();
    let status = if redis && kafka && closed && node_id { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let word = if status == StatusCode::OK { "ready" } else { "unavailable" };
    http::json(
        status,
        &json!({"status": word, "redis": redis, "kafka": kafka, "breakers": breakers, "node_id_leased": node_id}),
    )
}

/// The API's OpenAPI 3.1 description (`docs/openapi.json`), kept in step
/// with the routes by the test below.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

pub fn openapi() -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())));
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

/// The recorder's metrics, with the process's figures read now.
pub fn metrics(app: &App) -> Reply {
    metrics_process::Collector::default().collect();
    let mut reply = Response::new(Full::new(Bytes::from(app.metrics.render())));
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    reply
}
