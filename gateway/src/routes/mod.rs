//! Routing: one match on the path, then for the business routes the traffic
//! checks that need no body (IP deny list, global and per-IP buckets), then
//! the body, read within `server.body_read_timeout_ms`, then the in-flight
//! cap, then the handler. Health, metrics and admin routes skip those
//! checks, so the SRE can still see and steer an overloaded gateway.

pub mod admin;
pub mod after_sales;
pub mod channels;
pub mod checkout;
pub mod fulfilment;
pub mod input;
pub mod ops;
pub mod orders;
pub mod payments;
pub mod points;
pub mod queries;
pub mod refunds;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request};
use order::request::StorefrontChannel;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::app::App;
use crate::config::LimitedRoute;
use crate::error::ApiError;
use crate::http::{self, Reply};
use crate::traffic::TrafficPolicy;

/// What a request is for, from its path.
enum Target<'a> {
    PlaceOrder,
    Checkout,
    GetCheckout(&'a str),
    PayCheckout(&'a str),
    CancelCheckout(&'a str),
    /// An entry of the checkout catalogue: (kind, id).
    AdminCatalogue(&'a str, &'a str),
    ListOrders,
    /// The buyer's member points.
    MyPoints,
    GetOrder(&'a str),
    PayOrder(&'a str),
    CancelOrder(&'a str),
    /// The buyer changes a pending order's delivery region.
    ChangeAddress(&'a str),
    ReceiveOrder(&'a str),
    OpenAfterSale(&'a str),
    /// A payment channel's notification: the channel's id (`""`: the default's).
    PaymentNotify(&'a str),
    RefundNotify(&'a str),
    AdminSku(&'a str),
    /// A change to one warehouse of a regional sale.
    AdminWarehouses(&'a str),
    /// A SKU's live sale figures.
    AdminSaleStats(&'a str),
    AdminRefunds,
    /// A buyer's member points: the balance, a grant.
    AdminPoints(&'a str),
    /// A storefront channel's orders by status.
    AdminChannelStats(&'a str),
    /// The merchant's search over every shard.
    AdminSearch,
    AdminRefundRetry(&'a str),
    /// The merchant's move of an after-sale request: (its id, the move).
    AdminAfterSale(&'a str, &'a str),
    /// The merchant's view of an order.
    AdminOrderView(&'a str),
    /// The merchant's move of an order: (order id, `push` or `ship`).
    AdminOrder(&'a str, &'a str),
    AdminConfig,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Unknown,
}

impl<'a> Target<'a> {
    fn of(method: &Method, path: &'a str) -> Self {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            ["v1", "orders"] if method == Method::GET => Self::ListOrders,
            ["v1", "points"] => Self::MyPoints,
            ["v1", "orders"] => Self::PlaceOrder,
            ["v1", "checkout"] => Self::Checkout,
            ["v1", "checkouts", id] => Self::GetCheckout(id),
            ["v1", "checkouts", id, "pay"] => Self::PayCheckout(id),
            ["v1", "checkouts", id, "cancel"] => Self::CancelCheckout(id),
            ["admin", "catalogue", kind, id] => Self::AdminCatalogue(kind, id),
            ["v1", "orders", id] => Self::GetOrder(id),
            ["v1", "orders", id, "pay"] => Self::PayOrder(id),
            ["v1", "orders", id, "cancel"] => Self::CancelOrder(id),
            ["v1", "orders", id, "address"] => Self::ChangeAddress(id),
            ["v1", "orders", id, "receive"] => Self::ReceiveOrder(id),
            ["v1", "orders", id, "after-sales"] => Self::OpenAfterSale(id),
            ["v1", "payments", "notify"] => Self::PaymentNotify(""),
            ["v1", "payments", "notify", channel] => Self::PaymentNotify(channel),
            ["v1", "refunds", "notify"] => Self::RefundNotify(""),
            ["v1", "refunds", "notify", channel] => Self::RefundNotify(channel),
            ["admin", "refunds"] => Self::AdminRefunds,
            ["admin", "points", user_id] => Self::AdminPoints(user_id),
            ["admin", "channels", channel, "stats"] => Self::AdminChannelStats(channel),
            ["admin", "refunds", id, "retry"] => Self::AdminRefundRetry(id),
            ["admin", "after-sales", id, action @ ("approve" | "reject" | "receive" | "ship")] => {
                Self::AdminAfterSale(id, action)
            }
            ["admin", "skus", sku] => Self::AdminSku(sku),
            ["admin", "skus", sku, "warehouses"] => Self::AdminWarehouses(sku),
            ["admin", "sales", sku, "stats"] => Self::AdminSaleStats(sku),
            ["admin", "orders"] => Self::AdminSearch,
            ["admin", "orders", id] => Self::AdminOrderView(id),
            ["admin", "orders", id, action @ ("push" | "ship")] => Self::AdminOrder(id, action),
            ["admin", "config"] => Self::AdminConfig,
            ["healthz"] => Self::Healthz,
            ["readyz"] => Self::Readyz,
            ["metrics"] => Self::Metrics,
            ["openapi.json"] => Self::OpenApi,
            _ => Self::Unknown,
        }
    }

    /// The label of the route in metrics.
    fn label(&self) -> &'static str {
        // Limited as the order routes are, labelled apart.
        match self {
            Self::GetCheckout(_) => return "get_checkout",
            Self::PayCheckout(_) => return "pay_checkout",
            Self::CancelCheckout(_) => return "cancel_checkout",
            Self::ChangeAddress(_) => return "change_address",
            Self::MyPoints => return "get_points",
            _ => {}
        }
        match self.limited() {
            Some(route) => route.as_str(),
            None => match self {
                Self::AdminSku(_) => "admin_sku",
                Self::AdminWarehouses(_) => "admin_warehouses",
                Self::AdminCatalogue(..) => "admin_catalogue",
                Self::AdminSaleStats(_) => "admin_sale_stats",
                Self::AdminOrder(..) => "admin_order",
                Self::AdminOrderView(_) => "admin_order_view",
                Self::AdminRefunds => "admin_refunds",
                Self::AdminPoints(_) => "admin_points",
                Self::AdminChannelStats(_) => "admin_channel_stats",
                Self::AdminSearch => "admin_search",
                Self::AdminRefundRetry(_) => "admin_refund_retry",
                Self::AdminAfterSale(..) => "admin_after_sale",
                Self::AdminConfig => "admin_config",
                Self::Healthz => "healthz",
                Self::Readyz => "readyz",
                Self::Metrics => "metrics",
                Self::OpenApi => "openapi",
                _ => "unknown",
            },
        }
    }

    /// The order (or checkout) a path names.
    fn order_id(&self) -> Option<&'a str> {
        match *self {
            Self::GetOrder(id)
            | Self::PayOrder(id)
            | Self::CancelOrder(id)
            | Self::ChangeAddress(id)
            | Self::ReceiveOrder(id)
            | Self::OpenAfterSale(id)
            | Self::AdminOrderView(id)
            | Self::AdminOrder(id, _)
            | Self::GetCheckout(id)
            | Self::PayCheckout(id)
            | Self::CancelCheckout(id) => Some(id),
            _ => None,
        }
    }

    /// The business routes, which traffic control applies to.
    fn limited(&self) -> Option<LimitedRoute> {
        Some(match self {
            Self::PlaceOrder => LimitedRoute::PlaceOrder,
            Self::Checkout => LimitedRoute::Checkout,
            Self::GetOrder(_) | Self::GetCheckout(_) | Self::MyPoints => LimitedRoute::GetOrder,
            Self::ListOrders => LimitedRoute::ListOrders,
            Self::PayOrder(_) | Self::PayCheckout(_) => LimitedRoute::PayOrder,
            Self::CancelOrder(_) | Self::CancelCheckout(_) | Self::ChangeAddress(_) => LimitedRoute::CancelOrder,
            Self::ReceiveOrder(_) => LimitedRoute::ReceiveOrder,
            Self::OpenAfterSale(_) => LimitedRoute::AfterSale,
            Self::PaymentNotify(_) => LimitedRoute::PaymentNotify,
            Self::RefundNotify(_) => LimitedRoute::RefundNotify,
            _ => return None,
        })
    }

    /// The buyer routes: they act for an authenticated buyer.
    fn for_buyers(&self) -> bool {
        matches!(
            self,
            Self::PlaceOrder
                | Self::Checkout
                | Self::GetCheckout(_)
                | Self::PayCheckout(_)
                | Self::CancelCheckout(_)
                | Self::ListOrders
                | Self::MyPoints
                | Self::GetOrder(_)
                | Self::PayOrder(_)
                | Self::CancelOrder(_)
                | Self::ChangeAddress(_)
                | Self::ReceiveOrder(_)
                | Self::OpenAfterSale(_)
        )
    }

    fn allow(&self) -> &'static str {
        match self {
            // One path: the method chose the target.
            Self::PlaceOrder | Self::ListOrders => "GET, POST",
            Self::PayOrder(_)
            | Self::Checkout
            | Self::PayCheckout(_)
            | Self::CancelCheckout(_)
            | Self::CancelOrder(_)
            | Self::ChangeAddress(_)
            | Self::ReceiveOrder(_)
            | Self::OpenAfterSale(_)
            | Self::AdminAfterSale(..)
            | Self::PaymentNotify(_)
            | Self::RefundNotify(_)
            | Self::AdminRefundRetry(_)
            | Self::AdminWarehouses(_)
            | Self::AdminOrder(..) => "POST",
            Self::AdminSku(_) => "GET, PUT, PATCH",
            Self::AdminPoints(_) => "GET, POST",
            Self::AdminCatalogue(..) => "GET, PUT, DELETE",
            _ => "GET",
        }
    }
}

/// Who is asking, as the head says.
struct Caller {
    /// For the buyer routes the buyer; 0 for the other routes (never a
    /// user id: they are positive).
    buyer: u64,
    /// The storefront channel whose key the request carries.
    channel: Option<StorefrontChannel>,
}

/// What is decided from the head alone: the method, the IP deny list and
/// per-IP bucket, the storefront channel and its quotas, for the buyer
/// routes the buyer, then the global bucket.
fn before_body(
    app: &App,
    policy: &TrafficPolicy,
    req: &Request<Incoming>,
    peer: SocketAddr,
    target: &Target<'_>,
) -> Result<Caller, ApiError> {
    if matches!(target, Target::Unknown) {
        return Err(ApiError::NotFound);
    }
    if !target.allow().split(", ").any(|method| method == req.method().as_str()) {
        return Err(ApiError::MethodNotAllowed { allow: target.allow() });
    }
    let Some(route) = target.limited() else { return Ok(Caller { buyer: 0, channel: None }) };
    // Every X-Forwarded-For line, in order: a client's own line in front of
    // the proxy's must not choose the address.
    let forwarded_for: Vec<&str> =
        req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    let forwarded_for = (!forwarded_for.is_empty()).then(|| forwarded_for.join(","));
    policy.admit_ip(route, policy.client_ip(peer.ip(), forwarded_for.as_deref()))?;
    let channel = policy.channels.identify(req.headers())?;
    if let Some(channel) = channel {
        policy.channels.admit(channel, route)?;
    }
    let buyer = match target.for_buyers() {
        true => app.auth.load().buyer(req.headers(), peer.ip(), &policy.config.trusted_proxies)?,
        false => 0,
    };
    policy.admit_global(route)?;
    let channel = channel.map(|id| StorefrontChannel {
        id: id.to_owned(),
        max_units_per_sale: policy.config.channels.list.get(id).and_then(|channel| channel.max_units_per_sale),
    });
    Ok(Caller { buyer, channel })
}

pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Reply {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    let target = Target::of(req.method(), &path);
    let route = target.label();
    let span = request_span(&target, req.method(), route);
    let reply = dispatch(app, req, peer, target).instrument(span.clone()).await.unwrap_or_else(|err| http::error(&err));
    span.record("http.response.status_code", reply.status().as_u16());
    metrics::counter!("gateway_requests_total", "route" => route, "status" => reply.status().as_str().to_owned())
        .increment(1);
    metrics::histogram!("gateway_request_duration_seconds", "route" => route).record(started.elapsed());
    reply
}

/// The span of a request, the root of its trace (sampled by
/// `[tracing] sample_ratio`); its order id and trace id are on every log
/// line inside it. None for health checks and scrapes.
fn request_span(target: &Target<'_>, method: &Method, route: &'static str) -> Span {
    if matches!(target, Target::Healthz | Target::Readyz | Target::Metrics | Target::OpenApi | Target::Unknown) {
        return Span::none();
    }
    let span = tracing::info_span!(
        "request",
        otel.name = route,
        otel.kind = "server",
        http.request.method = %method,
        http.response.status_code = Empty,
        // Only a well-formed id: the path is the client's to fill.
        order_id = target.order_id().and_then(|id| input::order_id(id).ok()).map(tracing::field::display),
        trace_id = Empty,
    );
    telemetry::propagation::record_trace_id(&span);
    span
}

async fn dispatch(
    app: Arc<App>,
    req: Request<Incoming>,
    peer: SocketAddr,
    target: Target<'_>,
) -> Result<Reply, ApiError> {
    let policy = app.traffic.load_full();
    let admit = match target.limited() {
        Some(_) => tracing::info_span!("traffic.admit"),
        None => Span::none(),
    };
    let Caller { buyer, channel } = match admit.in_scope(|| before_body(&app, &policy, &req, peer, &target)) {
        Ok(caller) => caller,
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
        Target::PlaceOrder => {
            let id = channel.as_ref().map(|channel| channel.id.clone());
            let answered = orders::place(app.clone(), req, buyer, channel).await;
            channels::count(id.as_deref(), "place_order", &answered);
            answered
        }
        Target::Checkout => {
            let id = channel.as_ref().map(|channel| channel.id.clone());
            let answered = checkout::place(app.clone(), req, buyer, channel).await;
            channels::count(id.as_deref(), "checkout", &answered);
            answered
        }
        Target::GetCheckout(id) => checkout::get(&app, id, buyer).await,
        Target::PayCheckout(id) => checkout::pay(&app, id, req, buyer).await,
        Target::CancelCheckout(id) => checkout::cancel(&app, id, buyer).await,
        Target::AdminCatalogue(kind, id) => checkout::catalogue(&app, kind, id, req).await,
        Target::GetOrder(order_id) => orders::get(&app, order_id, buyer).await,
        Target::ListOrders => queries::mine(&app, req, buyer).await,
        Target::MyPoints => points::mine(&app, buyer).await,
        Target::AdminPoints(user_id) => points::admin(&app, user_id, req).await,
        Target::AdminChannelStats(channel) => channels::stats(&app, channel, req).await,
        Target::AdminSearch => queries::search(&app, req).await,
        Target::PayOrder(order_id) => payments::pay(&app, order_id, req, buyer).await,
        Target::CancelOrder(order_id) => orders::cancel(&app, order_id, req, buyer).await,
        Target::ChangeAddress(order_id) => orders::change_address(&app, order_id, req, buyer).await,
        Target::ReceiveOrder(order_id) => fulfilment::receive(&app, order_id, buyer).await,
        Target::OpenAfterSale(order_id) => after_sales::open(&app, order_id, req, buyer).await,
        Target::AdminAfterSale(id, action) => after_sales::act(&app, id, action, req).await,
        Target::AdminOrder(order_id, action) => fulfilment::admin_action(&app, order_id, action, req).await,
        Target::AdminOrderView(order_id) => orders::get_as_merchant(&app, order_id, req).await,
        Target::PaymentNotify(channel) => payments::notify(&app, channel, req).await,
        Target::RefundNotify(channel) => refunds::notify(&app, channel, req).await,
        Target::AdminRefunds => refunds::list(&app, req).await,
        Target::AdminRefundRetry(refund_id) => refunds::retry(&app, refund_id, req).await,
        Target::AdminSku(sku) if req.method() == Method::PUT => admin::put_sku(&app, sku, req).await,
        Target::AdminSku(sku) if req.method() == Method::PATCH => admin::patch_sku(&app, sku, req).await,
        Target::AdminSku(sku) => admin::get_sku(&app, sku, req).await,
        Target::AdminWarehouses(sku) => admin::change_warehouse(&app, sku, req).await,
        Target::AdminSaleStats(sku) => admin::sale_stats(&app, sku, req).await,
        Target::AdminConfig => admin::get_config(&app, req),
        Target::Healthz => Ok(ops::healthz()),
        Target::Readyz => Ok(ops::readyz(&app).await),
        Target::Metrics => Ok(ops::metrics(&app)),
        Target::OpenApi => Ok(ops::openapi()),
        Target::Unknown => Err(ApiError::NotFound),
    }
}

#[cfg(test)]
mod tests;
