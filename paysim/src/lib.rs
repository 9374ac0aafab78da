//! A payment channel simulator that behaves like WeChat Pay / Alipay do.
//!
//! - `POST /v1/payments` `CreatePayment` → `CreatedPayment` (one payment per
//!   merchant order: a repeat returns the first).
//! - `GET /v1/payments?merchant_order_id=X` → `PaymentState`, 404 if none.
//! - `POST /v1/payments/{payment_id}/complete` [`NotifyPlan`] → the shopper
//!   paid: the payment succeeds and its notification is sent to the
//!   `notify_url`, signed (`x-pay-signature`, hex HMAC-SHA256 of the body),
//!   and retried on the back-off schedule until a 2xx answers it — unless
//!   the plan drops, delays or duplicates it.
//! - `POST /v1/refunds` `CreateRefund` → `RefundState` (PROCESSING; one
//!   refund per id, at most what is left of a successful payment); it
//!   succeeds a moment later and its signed notification is sent like a
//!   payment's. `GET /v1/refunds/{refund_id}` → signed `RefundState`.
//!   `POST /v1/faults/refunds` `RefundFaults` → refuse the next requests,
//!   or drop the next notifications.
//! - `POST /v1/faults/payments` `PaymentFaults` → fail every n-th payment
//!   call (create, ask) with a 500, and answer each one late, until changed.
//! - `GET /v1/stats` → notifications attempted and acknowledged.
//! - `/v1/warehouse/…`: the warehouse simulator ([`warehouse`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;

use paychannel::messages::{
    CreatePayment, CreateRefund, CreatedPayment, NotifyPlan, PaymentFaults, PaymentState, PaymentStatus, RefundFaults,
    RefundState, RefundStatus,
};
use paychannel::{signature, SIGNATURE_HEADER};

/// Waits before each retry of an unacknowledged notification, ms (the real
/// channels wait minutes; tests and demos want seconds).
pub const DEFAULT_RETRY_SCHEDULE_MS: &[u64] = &[250, 500, 1_000, 2_000, 5_000, 10_000, 30_000];

pub mod warehouse;

pub struct Simulator {
    secret: Vec<u8>,
    warehouse: warehouse::Warehouse,
    retry_schedule: Vec<Duration>,
    payments: DashMap<String, (PaymentState, String)>,
    by_order: DashMap<String, String>,
    /// Refund id → its state and notify URL.
    refunds: DashMap<String, (RefundState, String)>,
    refund_faults: Mutex<RefundFaults>,
    payment_faults: Mutex<PaymentFaults>,
    /// Payment calls answered, for `PaymentFaults::fail_every`.
    payment_calls: AtomicU64,
    attempts: AtomicU64,
    acknowledged: AtomicU64,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Simulator {
    pub fn new(secret: &[u8], retry_schedule: &[Duration]) -> Arc<Self> {
        Arc::new(Self {
            secret: secret.to_vec(),
            warehouse: warehouse::Warehouse::default(),
            retry_schedule: retry_schedule.to_vec(),
            payments: DashMap::new(),
            by_order: DashMap::new(),
            refunds: DashMap::new(),
            refund_faults: Mutex::new(RefundFaults::default()),
            payment_faults: Mutex::new(PaymentFaults::default()),
            payment_calls: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        })
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = &mut shutdown => return,
            };
            let sim = self.clone();
            let service = service_fn(move |req| {
                let sim = sim.clone();
                async move { Ok::<_, Infallible>(sim.handle(req).await) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let method = req.method().clone();
        let body = match req.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return reply(StatusCode::BAD_REQUEST, json!({"error": "unreadable body"})),
        };
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if let ["v1", "warehouse", rest @ ..] = segments.as_slice() {
            return match self.warehouse.handle(method == Method::POST, rest, &body) {
                Some((status, answer)) => reply(status, answer),
                None => reply(StatusCode::NOT_FOUND, json!({"error": "no such route"})),
            };
        }
        if let (&Method::POST | &Method::GET, ["v1", "payments"]) = (&method, segments.as_slice()) {
            if let Some(failed) = self.payment_fault().await {
                return failed;
            }
        }
        match (method, segments.as_slice()) {
            (Method::POST, ["v1", "payments"]) => match serde_json::from_slice::<CreatePayment>(&body) {
                Ok(create) => reply(StatusCode::OK, self.create(create)),
                Err(err) => reply(StatusCode::BAD_REQUEST, json!({"error": err.to_string()})),
            },
            (Method::GET, ["v1", "payments"]) => {
                let params: HashMap<&str, &str> = query.split('&').filter_map(|pair| pair.split_once('=')).collect();
                let state = params
                    .get("merchant_order_id")
                    .and_then(|order| self.by_order.get(*order).map(|id| id.clone()))
                    .and_then(|id| self.payments.get(&id).map(|entry| entry.0.clone()));
                match state {
                    // Signed like a notification: the gateway acts on it the same way.
                    Some(state) => self.signed(&state),
                    None => reply(StatusCode::NOT_FOUND, json!({"error": "no such payment"})),
                }
            }
            (Method::POST, ["v1", "payments", payment_id, "complete"]) => {
                let plan: NotifyPlan = if body.is_empty() {
                    NotifyPlan::default()
                } else {
                    match serde_json::from_slice(&body) {
                        Ok(plan) => plan,
                        Err(err) => return reply(StatusCode::BAD_REQUEST, json!({"error": err.to_string()})),
                    }
                };
                match self.clone().complete(payment_id, plan) {
                    Some(state) => reply(StatusCode::OK, state),
                    None => reply(StatusCode::NOT_FOUND, json!({"error": "no such payment"})),
                }
            }
            (Method::POST, ["v1", "refunds"]) => match serde_json::from_slice::<CreateRefund>(&body) {
                Ok(create) => match self.clone().refund(create) {
                    Ok(state) => reply(StatusCode::OK, state),
                    Err((status, why)) => reply(status, json!({"error": why})),
                },
                Err(err) => reply(StatusCode::BAD_REQUEST, json!({"error": err.to_string()})),
            },
            (Method::GET, ["v1", "refunds", refund_id]) => match self.refunds.get(*refund_id) {
                Some(entry) => self.signed(&entry.0),
                None => reply(StatusCode::NOT_FOUND, json!({"error": "no such refund"})),
            },
            (Method::POST, ["v1", "faults", "refunds"]) => match serde_json::from_slice::<RefundFaults>(&body) {
                Ok(faults) => {
                    *self.refund_faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
                    reply(StatusCode::OK, faults)
                }
                Err(err) => reply(StatusCode::BAD_REQUEST, json!({"error": err.to_string()})),
            },
            (Method::POST, ["v1", "faults", "payments"]) => match serde_json::from_slice::<PaymentFaults>(&body) {
                Ok(faults) => {
                    *self.payment_faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
                    reply(StatusCode::OK, faults)
                }
                Err(err) => reply(StatusCode::BAD_REQUEST, json!({"error": err.to_string()})),
            },
            (Method::GET, ["v1", "stats"]) => reply(
                StatusCode::OK,
                json!({
                    "notifications_attempted": self.attempts.load(Ordering::Relaxed),
                    "notifications_acknowledged": self.acknowledged.load(Ordering::Relaxed),
                }),
            ),
            _ => reply(StatusCode::NOT_FOUND, json!({"error": "no such route"})),
        }
    }

    /// The injected fault of this payment call, if it fails: its 500.
    async fn payment_fault(&self) -> Option<Response<Full<Bytes>>> {
        let faults = *self.payment_faults.lock().unwrap_or_else(|e| e.into_inner());
        if faults.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
        }
        let call = self.payment_calls.fetch_add(1, Ordering::Relaxed) + 1;
        let fails = faults.fail_every > 0 && call.is_multiple_of(u64::from(faults.fail_every));
        fails.then(|| reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "the channel is busy; try again"})))
    }

    fn create(&self, create: CreatePayment) -> CreatedPayment {
        let payment_id = self
            .by_order
            .entry(create.merchant_order_id.clone())
            .or_insert_with(|| {
                let payment_id = format!("pay_{:016x}", rand::random::<u64>());
                let state = PaymentState {
                    payment_id: payment_id.clone(),
                    merchant_order_id: create.merchant_order_id.clone(),
                    attach: create.attach.clone(),
                    amount_cents: create.amount_cents,
                    status: PaymentStatus::NotPay,
                    paid_at: None,
                };
                self.payments.insert(payment_id.clone(), (state, create.notify_url.clone()));
                payment_id
            })
            .clone();
        CreatedPayment {
            pay_url: format!("paysim://pay/{payment_id}"),
            qr_payload: format!("paysim:{payment_id}:{}", create.amount_cents),
            payment_id,
        }
    }

    /// The shopper paid: mark it and send the notification as `plan` says.
    fn complete(self: Arc<Self>, payment_id: &str, plan: NotifyPlan) -> Option<PaymentState> {
        let (state, notify_url) = {
            let mut entry = self.payments.get_mut(payment_id)?;
            if entry.0.status != PaymentStatus::Success {
                entry.0.status = PaymentStatus::Success;
                entry.0.paid_at = Some(chrono::Utc::now());
            }
            entry.clone()
        };
        if !plan.drop {
            for _ in 0..plan.copies.max(1) {
                let sim = self.clone();
                let (state, notify_url) = (state.clone(), notify_url.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(plan.delay_ms)).await;
                    sim.notify(serde_json::to_vec(&state).expect("states serialise"), &notify_url).await;
                });
            }
        }
        Some(state)
    }

    /// Takes a refund of a successful payment, at most what is left of it;
    /// it succeeds a moment later and its notification is sent. A repeat
    /// of a refund id answers the first's state.
    fn refund(self: Arc<Self>, create: CreateRefund) -> Result<RefundState, (StatusCode, String)> {
        if let Some(known) = self.refunds.get(&create.refund_id) {
            return Ok(known.0.clone());
        }
        let drop_notification = {
            let mut faults = self.refund_faults.lock().unwrap_or_else(|e| e.into_inner());
            if faults.fail_first > 0 {
                faults.fail_first -= 1;
                return Err((StatusCode::INTERNAL_SERVER_ERROR, "the channel is busy; try again".into()));
            }
            let drop = faults.drop_notifications > 0;
            faults.drop_notifications = faults.drop_notifications.saturating_sub(1);
            drop
        };
        let paid = self
            .payments
            .get(&create.payment_id)
            .filter(|entry| entry.0.status == PaymentStatus::Success)
            .map(|entry| entry.0.amount_cents)
            .ok_or((StatusCode::BAD_REQUEST, "no such successful payment".to_owned()))?;
        let refunded: i64 = self
            .refunds
            .iter()
            .filter(|entry| entry.0.payment_id == create.payment_id && entry.0.status != RefundStatus::Failed)
            .map(|entry| entry.0.amount_cents)
            .sum();
        if create.amount_cents <= 0 || refunded + create.amount_cents > paid {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("{} cents exceed what is left of the payment", create.amount_cents),
            ));
        }
        let state = RefundState {
            refund_id: create.refund_id.clone(),
            payment_id: create.payment_id,
            merchant_order_id: create.merchant_order_id,
            amount_cents: create.amount_cents,
            status: RefundStatus::Processing,
            finished_at: None,
        };
        self.refunds.insert(create.refund_id.clone(), (state.clone(), create.notify_url.clone()));
        let sim = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let done = {
                let Some(mut entry) = sim.refunds.get_mut(&create.refund_id) else { return };
                entry.0.status = RefundStatus::Success;
                entry.0.finished_at = Some(chrono::Utc::now());
                entry.0.clone()
            };
            if !drop_notification {
                sim.notify(serde_json::to_vec(&done).expect("states serialise"), &create.notify_url).await;
            }
        });
        Ok(state)
    }

    /// `state` as JSON, signed like a notification.
    fn signed(&self, state: &impl serde::Serialize) -> Response<Full<Bytes>> {
        let body = serde_json::to_vec(state).expect("serialisable");
        let signature = signature::sign(&self.secret, &body);
        let mut answer = Response::new(Full::new(Bytes::from(body)));
        answer.headers_mut().insert("content-type", "application/json".parse().expect("valid header"));
        answer.headers_mut().insert(SIGNATURE_HEADER, signature.parse().expect("hex is a valid header"));
        answer
    }

    /// Sends one notification until a 2xx acknowledges it or the schedule ends.
    async fn notify(&self, body: Vec<u8>, notify_url: &str) {
        let signature = signature::sign(&self.secret, &body);
        let mut waits = self.retry_schedule.iter();
        loop {
            self.attempts.fetch_add(1, Ordering::Relaxed);
            let req = Request::post(notify_url)
                .header("content-type", "application/json")
                .header(SIGNATURE_HEADER, &signature)
                .body(Full::new(Bytes::from(body.clone())))
                .expect("valid request");
            let acknowledged = matches!(self.client.request(req).await, Ok(response) if response.status().is_success());
            if acknowledged {
                self.acknowledged.fetch_add(1, Ordering::Relaxed);
                return;
            }
            match waits.next() {
                Some(wait) => tokio::time::sleep(*wait).await,
                None => {
                    tracing::warn!(notify_url, "notification never acknowledged; giving up");
                    return;
                }
            }
        }
    }
}

fn reply(status: StatusCode, body: impl serde::Serialize) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(serde_json::to_vec(&body).expect("serialisable"))));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", "application/json".parse().expect("valid header"));
    response
}
