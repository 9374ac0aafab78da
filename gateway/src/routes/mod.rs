//! Routing: one match on the path, then for the business routes the traffic
//! checks that need no body (IP deny list, global and per-IP buckets), then
//! the body, read within `server.body_read_timeout_ms`, then the in-flight
//! cap, then the handler. Health, metrics and admin routes skip those
//! checks, so the SRE can still see and steer an overloaded gateway.

pub mod admin;
pub mod input;
pub mod ops;
pub mod orders;
pub mod payments;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request};

use crate::app::App;
use crate::config::LimitedRoute;
use crate::error::ApiError;
use crate::http::{self, Reply};
use crate::traffic::TrafficPolicy;

/// What a request is for, from its path.
enum Target<'a> {
    PlaceOrder,
    GetOrder(&'a str),
    PayOrder(&'a str),
    CancelOrder(&'a str),
    PaymentNotify,
    AdminSku(&'a str),
    AdminConfig,
    Healthz,
    Readyz,
    Metrics,
    Unknown,
}

impl<'a> Target<'a> {
    fn of(path: &'a str) -> Self {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            ["v1", "orders"] => Self::PlaceOrder,
            ["v1", "orders", id] => Self::GetOrder(id),
            ["v1", "orders", id, "pay"] => Self::PayOrder(id),
            ["v1", "orders", id, "cancel"] => Self::CancelOrder(id),
            ["v1", "payments", "notify"] => Self::PaymentNotify,
            ["admin", "skus", sku] => Self::AdminSku(sku),
            ["admin", "config"] => Self::AdminConfig,
            ["healthz"] => Self::Healthz,
            ["readyz"] => Self::Readyz,
            ["metrics"] => Self::Metrics,
            _ => Self::Unknown,
        }
    }

    /// The label of the route in metrics.
    fn label(&self) -> &'static str {
        match self.limited() {
            Some(route) => route.as_str(),
            None => match self {
                Self::AdminSku(_) => "admin_sku",
                Self::AdminConfig => "admin_config",
                Self::Healthz => "healthz",
                Self::Readyz => "readyz",
                Self::Metrics => "metrics",
                _ => "unknown",
            },
        }
    }

    /// The business routes, which traffic control applies to.
    fn limited(&self) -> Option<LimitedRoute> {
        Some(match self {
            Self::PlaceOrder => LimitedRoute::PlaceOrder,
            Self::GetOrder(_) => LimitedRoute::GetOrder,
            Self::PayOrder(_) => LimitedRoute::PayOrder,
            Self::CancelOrder(_) => LimitedRoute::CancelOrder,
            Self::PaymentNotify => LimitedRoute::PaymentNotify,
            _ => return None,
        })
    }

    /// The buyer routes: they act for an authenticated buyer.
    fn for_buyers(&self) -> bool {
        matches!(self, Self::PlaceOrder | Self::GetOrder(_) | Self::PayOrder(_) | Self::CancelOrder(_))
    }

    fn allow(&self) -> &'static str {
        match self {
            Self::PlaceOrder | Self::PayOrder(_) | Self::CancelOrder(_) | Self::PaymentNotify => "POST",
            Self::AdminSku(_) => "GET, PUT, PATCH",
            _ => "GET",
        }
    }
}

/// What is decided from the head alone: the method, the IP deny list and
/// buckets, and for the buyer routes the buyer (0 for the other routes:
/// never a user id, they are positive).
fn before_body(
    app: &App,
    policy: &TrafficPolicy,
    req: &Request<Incoming>,
    peer: SocketAddr,
    target: &Target<'_>,
) -> Result<u64, ApiError> {
    if matches!(target, Target::Unknown) {
        return Err(ApiError::NotFound);
    }
    if !target.allow().split(", ").any(|method| method == req.method().as_str()) {
        return Err(ApiError::MethodNotAllowed { allow: target.allow() });
    }
    if let Some(route) = target.limited() {
        let forwarded_for = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
        policy.admit(route, policy.client_ip(peer.ip(), forwarded_for))?;
    }
    if !target.for_buyers() {
        return Ok(0);
    }
    Ok(app.auth.load().buyer(req.headers(), peer.ip(), &policy.config.trusted_proxies)?)
}

pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Reply {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    let target = Target::of(&path);
    let route = target.label();
    let reply = dispatch(app, req, peer, target).await.unwrap_or_else(|err| http::error(&err));
    metrics::counter!("gateway_requests_total", "route" => route, "status" => reply.status().as_str().to_owned())
        .increment(1);
    metrics::histogram!("gateway_request_duration_seconds", "route" => route).record(started.elapsed());
    reply
}

async fn dispatch(
    app: Arc<App>,
    req: Request<Incoming>,
    peer: SocketAddr,
    target: Target<'_>,
) -> Result<Reply, ApiError> {
    let policy = app.traffic.load_full();
    let buyer = match before_body(&app, &policy, &req, peer, &target) {
        Ok(buyer) => buyer,
        Err(err) => {
            // Read what was sent anyway (bounded), so the answer is not lost
            // to a connection reset.
            http::discard_body(req, app.config.server.body_read_timeout()).await;
            return Err(err);
        }
    };
    // A slow client waits here on its own time: the in-flight slot is taken
    // only once the body is in.
    let req = http::read_body(req, app.config.server.body_read_timeout()).await?;
    let _slot = match target.limited() {
        Some(_) => Some(app.in_flight.enter(policy.config.max_in_flight)?),
        None => None,
    };
    match target {
        Target::PlaceOrder => orders::place(app.clone(), req, buyer).await,
        Target::GetOrder(order_id) => orders::get(&app, order_id, buyer).await,
        Target::PayOrder(order_id) => payments::pay(&app, order_id, req, buyer).await,
        Target::CancelOrder(order_id) => orders::cancel(&app, order_id, req, buyer).await,
        Target::PaymentNotify => payments::notify(&app, req).await,
        Target::AdminSku(sku) if req.method() == Method::PUT => admin::put_sku(&app, sku, req).await,
        Target::AdminSku(sku) if req.method() == Method::PATCH => admin::patch_sku(&app, sku, req).await,
        Target::AdminSku(sku) => admin::get_sku(&app, sku, req).await,
        Target::AdminConfig => admin::get_config(&app, req),
        Target::Healthz => Ok(ops::healthz()),
        Target::Readyz => Ok(ops::readyz(&app).await),
        Target::Metrics => Ok(ops::metrics(&app)),
        Target::Unknown => Err(ApiError::NotFound),
    }
}
