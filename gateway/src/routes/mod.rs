//! Routing: one match on method and path, and per-route request metrics.

pub mod admin;
pub mod ops;
pub mod orders;
pub mod payments;

use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request};

use crate::app::App;
use crate::error::ApiError;
use crate::http::{self, Reply};

pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Reply {
    let started = Instant::now();
    let (route, result) = dispatch(app, req).await;
    let reply = result.unwrap_or_else(|err| http::error(&err));
    metrics::counter!("gateway_requests_total", "route" => route, "status" => reply.status().as_str().to_owned())
        .increment(1);
    metrics::histogram!("gateway_request_duration_seconds", "route" => route).record(started.elapsed());
    reply
}

async fn dispatch(app: Arc<App>, req: Request<Incoming>) -> (&'static str, Result<Reply, ApiError>) {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    let wrong_method = |allow| Err(ApiError::MethodNotAllowed { allow });
    match segments.as_slice() {
        ["v1", "orders"] => (
            "place_order",
            if method == Method::POST { orders::place(app, req).await } else { wrong_method("POST") },
        ),
        ["v1", "orders", order_id, "cancel"] => (
            "cancel_order",
            if method == Method::POST { orders::cancel(&app, order_id, req).await } else { wrong_method("POST") },
        ),
        ["v1", "orders", order_id, "pay"] => (
            "pay_order",
            if method == Method::POST { payments::pay(&app, order_id, req).await } else { wrong_method("POST") },
        ),
        ["v1", "payments", "notify"] => (
            "payment_notify",
            if method == Method::POST { payments::notify(&app, req).await } else { wrong_method("POST") },
        ),
        ["v1", "orders", order_id] => (
            "get_order",
            if method == Method::GET { orders::get(&app, order_id).await } else { wrong_method("GET") },
        ),
        ["admin", "skus", sku] => (
            "admin_sku",
            match method {
                Method::PUT => admin::put_sku(&app, sku, req).await,
                Method::GET => admin::get_sku(&app, sku, req).await,
                _ => wrong_method("GET, PUT"),
            },
        ),
        ["healthz"] => ("healthz", if method == Method::GET { Ok(ops::healthz()) } else { wrong_method("GET") }),
        ["readyz"] => ("readyz", if method == Method::GET { Ok(ops::readyz(&app).await) } else { wrong_method("GET") }),
        ["metrics"] => ("metrics", if method == Method::GET { Ok(ops::metrics(&app)) } else { wrong_method("GET") }),
        _ => ("unknown", Err(ApiError::NotFound)),
    }
}
