//! A keep-alive HTTP/1 client for the gateway, with the calls the scenarios make.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use stock::{Units, WarehouseStatus};

#[derive(Clone)]
pub struct Gateway {
    base: String,
    admin_token: String,
    buyers: Signer,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Buyers live in this many regions (`r1`, `r2`, ...; by user id), each
    /// order naming its buyer's; 0: orders name none.
    regions: u32,
}

/// Signs buyer tokens (HS256) the way a storefront's login would: with
/// `BUYER_TOKEN_SECRET` under key id `BUYER_TOKEN_KID`, by default the
/// gateway's development key.
#[derive(Clone)]
pub struct Signer {
    header: jsonwebtoken::Header,
    key: jsonwebtoken::EncodingKey,
}

/// Lifetime of the tokens signed here, seconds.
const TOKEN_LIFETIME_SECS: i64 = 3_600;

impl Signer {
    pub fn from_env() -> Self {
        let secret = std::env::var("BUYER_TOKEN_SECRET").unwrap_or_else(|_| "dev-buyer-token-signing-key".into());
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(std::env::var("BUYER_TOKEN_KID").unwrap_or_else(|_| "dev".into()));
        Self { header, key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()) }
    }

    /// A token naming `user_id`, valid for an hour.
    pub fn token(&self, user_id: u64) -> String {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |now| now.as_secs() as i64 + TOKEN_LIFETIME_SECS);
        let claims = json!({"sub": user_id.to_string(), "exp": exp});
        jsonwebtoken::encode(&self.header, &claims, &self.key).expect("HS256 signing does not fail")
    }

    fn bearer(&self, user_id: u64) -> String {
        format!("Bearer {}", self.token(user_id))
    }
}

/// Load goes to loopback (127.0.0.0/8, ::1) only.
pub fn require_loopback(url: &str) -> anyhow::Result<()> {
    let uri: hyper::Uri = url.parse().context("URL")?;
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("{url} is not a loopback address; load goes to 127.0.0.0/8 or ::1 only");
    }
    Ok(())
}

impl Gateway {
    /// Refuses targets off this machine: load goes to loopback only.
    pub fn new(base: &str, admin_token: &str, connections: usize) -> anyhow::Result<Self> {
        require_loopback(base)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(connections).build(connector);
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            admin_token: admin_token.to_owned(),
            buyers: Signer::from_env(),
            client,
            regions: 0,
        })
    }

    /// The same gateway, its buyers spread over `regions` regions.
    pub fn in_regions(self, regions: u32) -> Self {
        Self { regions, ..self }
    }

    /// The region of `user_id`'s orders, if buyers live in regions.
    fn region_of(&self, user_id: u64) -> Option<String> {
        (self.regions > 0).then(|| format!("r{}", user_id % u64::from(self.regions) + 1))
    }

    /// `POST /v1/orders`; the status and the body.
    pub async fn place(&self, user_id: u64, sku: &str, qty: u32, key: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut body = json!({"user_id": user_id, "sku": sku, "qty": qty});
        if let Some(region) = self.region_of(user_id) {
            body["region"] = json!(region);
        }
        let body = body.to_string();
        let req = Request::post(format!("{}/v1/orders", self.base))
            .header("authorization", self.buyers.bearer(user_id))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Full::new(Bytes::from(body)))?;
        self.send(req).await
    }

    /// `POST /v1/checkout` as `user_id`; the status and the body.
    pub async fn checkout(&self, user_id: u64, key: &str, body: &Value) -> anyhow::Result<(StatusCode, Bytes)> {
        let req = Request::post(format!("{}/v1/checkout", self.base))
            .header("authorization", self.buyers.bearer(user_id))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Full::new(Bytes::from(body.to_string())))?;
        self.send(req).await
    }

    /// `POST /v1/checkouts/{id}/pay`; the channel's payment id.
    pub async fn pay_checkout(&self, parent: &str, user_id: u64) -> anyhow::Result<String> {
        let reply = self.expect_ok(&format!("/v1/checkouts/{parent}/pay"), Some(user_id), json!({})).await?;
        Ok(reply["payment_id"].as_str().unwrap_or_default().to_owned())
    }

    /// `POST /v1/checkouts/{id}/cancel`; the status.
    pub async fn cancel_checkout(&self, parent: &str, user_id: u64) -> anyhow::Result<StatusCode> {
        let req = Request::post(format!("{}/v1/checkouts/{parent}/cancel", self.base))
            .header("authorization", self.buyers.bearer(user_id))
            .body(Full::new(Bytes::new()))?;
        Ok(self.send(req).await?.0)
    }

    /// `PUT /admin/catalogue/{kind}/{id}`; fails unless 200.
    pub async fn catalogue(&self, kind: &str, id: &str, entry: &Value) -> anyhow::Result<()> {
        let req = Request::put(format!("{}/admin/catalogue/{kind}/{id}", self.base))
            .header("authorization", format!("Bearer {}", self.admin_token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(entry.to_string())))?;
        let (status, reply) = self.send(req).await?;
        if status != StatusCode::OK {
            bail!("catalogue {kind}/{id}: {status} {}", String::from_utf8_lossy(&reply));
        }
        Ok(())
    }

    /// `POST /v1/orders/{id}/pay`; the channel's payment id.
    pub async fn pay(&self, order_id: &str, user_id: u64, sku: &str) -> anyhow::Result<String> {
        let body = json!({"user_id": user_id, "sku": sku}).to_string();
        let req = Request::post(format!("{}/v1/orders/{order_id}/pay", self.base))
            .header("authorization", self.buyers.bearer(user_id))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let (status, reply) = self.send(req).await?;
        if status != StatusCode::OK {
            bail!("paying {order_id}: {status} {}", String::from_utf8_lossy(&reply));
        }
        let reply: Value = serde_json::from_slice(&reply)?;
        Ok(reply["payment_id"].as_str().unwrap_or_default().to_owned())
    }

    /// `POST /v1/orders/{id}/pay` at `channel` (none: the gateway's
    /// choice); the status and the answer.
    pub async fn pay_at(
        &self,
        order_id: &str,
        user_id: u64,
        sku: &str,
        channel: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut body = json!({"user_id": user_id, "sku": sku});
        if let Some(channel) = channel {
            body["channel"] = channel.into();
        }
        let req = Request::post(format!("{}/v1/orders/{order_id}/pay", self.base))
            .header("authorization", self.buyers.bearer(user_id))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let (status, reply) = self.send(req).await?;
        Ok((status.as_u16(), serde_json::from_slice(&reply).unwrap_or_default()))
    }

    /// A JSON POST to another loopback service (a simulator's fault knobs).
    pub async fn post_to(&self, base: &str, path: &str, body: &Value) -> anyhow::Result<()> {
        let req = Request::post(format!("{}{path}", base.trim_end_matches('/')))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let (status, reply) = self.send(req).await?;
        anyhow::ensure!(status.is_success(), "{base}{path}: {status} {}", String::from_utf8_lossy(&reply));
        Ok(())
    }

    /// `POST /v1/orders/{id}/cancel`; the status.
    pub async fn cancel(&self, order_id: &str, user_id: u64, sku: &str) -> anyhow::Result<StatusCode> {
        let body = json!({"user_id": user_id, "sku": sku}).to_string();
        let req = Request::post(format!("{}/v1/orders/{order_id}/cancel", self.base))
            .header("authorization", self.buyers.bearer(user_id))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        Ok(self.send(req).await?.0)
    }

    /// `GET /v1/orders/{id}` as its buyer; the status.
    pub async fn order(&self, order_id: &str, user_id: u64) -> anyhow::Result<StatusCode> {
        let req = Request::get(format!("{}/v1/orders/{order_id}", self.base))
            .header("authorization", self.buyers.bearer(user_id))
            .body(Full::new(Bytes::new()))?;
        Ok(self.send(req).await?.0)
    }

    /// A GET of `path_and_query` as `buyer` (else with the admin token); the status and the body.
    pub async fn get(&self, path_and_query: &str, buyer: Option<u64>) -> anyhow::Result<(StatusCode, Bytes)> {
        let auth = match buyer {
            Some(user_id) => self.buyers.bearer(user_id),
            None => format!("Bearer {}", self.admin_token),
        };
        let req = Request::get(format!("{}{path_and_query}", self.base))
            .header("authorization", auth)
            .body(Full::new(Bytes::new()))?;
        self.send(req).await
    }

    /// The value of one sample of the gateway's `/metrics` (0 if absent),
    /// e.g. `gateway_order_cache_total{outcome="hit"}`.
    pub async fn metric(&self, sample: &str) -> anyhow::Result<f64> {
        let (_, text) = self.get("/metrics", None).await?;
        let text = String::from_utf8_lossy(&text);
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(Ok(0.0), |value| value.trim().parse())?;
        Ok(value)
    }

    /// `POST /admin/orders/{id}/push|ship` (ship with a parcel); fails unless 200.
    pub async fn merchant(&self, order_id: &str, action: &str) -> anyhow::Result<()> {
        let body =
            if action == "ship" { json!({"carrier": "sf", "tracking_no": format!("T{order_id}")}) } else { json!({}) };
        self.expect_ok(&format!("/admin/orders/{order_id}/{action}"), None, body).await.map(|_| ())
    }

    /// `POST /v1/orders/{id}/receive` as its buyer; fails unless 200.
    pub async fn receive(&self, order_id: &str, user_id: u64) -> anyhow::Result<()> {
        self.expect_ok(&format!("/v1/orders/{order_id}/receive"), Some(user_id), json!({})).await.map(|_| ())
    }

    /// `POST /v1/orders/{id}/after-sales` as its buyer; the request's id.
    pub async fn after_sale(&self, order_id: &str, user_id: u64, kind: &str, qty: u32) -> anyhow::Result<String> {
        let body = json!({"kind": kind, "qty": qty, "reason": "load test"});
        let path = format!("/v1/orders/{order_id}/after-sales");
        let reply = self.expect(StatusCode::CREATED, &path, Some(user_id), body).await?;
        Ok(reply["after_sale_id"].as_str().unwrap_or_default().to_owned())
    }

    /// `POST /admin/after-sales/{id}/{action}`; the request's status after.
    pub async fn review(&self, after_sale_id: &str, action: &str, body: Value) -> anyhow::Result<String> {
        let reply = self.expect_ok(&format!("/admin/after-sales/{after_sale_id}/{action}"), None, body).await?;
        Ok(reply["status"].as_str().unwrap_or_default().to_owned())
    }

    async fn expect_ok(&self, path: &str, buyer: Option<u64>, body: Value) -> anyhow::Result<Value> {
        self.expect(StatusCode::OK, path, buyer, body).await
    }

    /// A POST as `buyer` (else with the admin token) that must answer `want`; its JSON.
    async fn expect(&self, want: StatusCode, path: &str, buyer: Option<u64>, body: Value) -> anyhow::Result<Value> {
        let auth = match buyer {
            Some(user_id) => self.buyers.bearer(user_id),
            None => format!("Bearer {}", self.admin_token),
        };
        let req = Request::post(format!("{}{path}", self.base))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let (status, reply) = self.send(req).await?;
        if status != want {
            bail!("{path}: {status} {}", String::from_utf8_lossy(&reply));
        }
        Ok(serde_json::from_slice(&reply)?)
    }

    /// The shopper pays at the channel (the simulator's `complete`).
    pub async fn complete_payment(&self, channel_url: &str, payment_id: &str) -> anyhow::Result<()> {
        let req = Request::post(format!("{}/v1/payments/{payment_id}/complete", channel_url.trim_end_matches('/')))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{}")))?;
        let (status, reply) = self.send(req).await?;
        if status != StatusCode::OK {
            bail!("completing {payment_id}: {status} {}", String::from_utf8_lossy(&reply));
        }
        Ok(())
    }

    pub async fn load_sale(&self, sku: &str, stock: i64, per_user_limit: i64, price_cents: i64) -> anyhow::Result<()> {
        self.load_sale_with(sku, json!({"stock": stock, "per_user_limit": per_user_limit, "price_cents": price_cents}))
            .await
    }

    /// `PUT /admin/skus/{sku}` with these terms.
    pub async fn load_sale_with(&self, sku: &str, terms: Value) -> anyhow::Result<()> {
        let (status, reply) = self.admin(Method::PUT, sku, terms.to_string()).await?;
        if status != StatusCode::OK {
            bail!("loading the sale: {status} {}", String::from_utf8_lossy(&reply));
        }
        Ok(())
    }

    /// The sale's warehouses' counts (regional stock).
    pub async fn warehouses(&self, sku: &str) -> anyhow::Result<Vec<WarehouseStatus>> {
        let (status, reply) = self.admin(Method::GET, sku, String::new()).await?;
        if status != StatusCode::OK {
            bail!("reading the sale: {status} {}", String::from_utf8_lossy(&reply));
        }
        let reply: Value = serde_json::from_slice(&reply)?;
        Ok(serde_json::from_value(reply["sale"]["warehouses"].clone()).unwrap_or_default())
    }

    pub async fn sale(&self, sku: &str) -> anyhow::Result<Units> {
        let (status, reply) = self.admin(Method::GET, sku, String::new()).await?;
        if status != StatusCode::OK {
            bail!("reading the sale: {status} {}", String::from_utf8_lossy(&reply));
        }
        let reply: Value = serde_json::from_slice(&reply)?;
        Ok(serde_json::from_value(reply["sale"].clone())?)
    }

    /// The sale's counters once they satisfy `done`, or as they are when
    /// `timeout` passed (saying what it waited for).
    pub async fn sale_once(
        &self,
        sku: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(&Units) -> bool,
    ) -> anyhow::Result<Units> {
        let deadline = Instant::now() + timeout;
        loop {
            let sale = self.sale(sku).await?;
            if done(&sale) || Instant::now() > deadline {
                if !done(&sale) {
                    eprintln!("gave up waiting for {what}: {sale:?}");
                }
                return Ok(sale);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn admin(&self, method: Method, sku: &str, body: String) -> anyhow::Result<(StatusCode, Bytes)> {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}/admin/skus/{sku}", self.base))
            .header("authorization", format!("Bearer {}", self.admin_token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        self.send(req).await
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> anyhow::Result<(StatusCode, Bytes)> {
        let response = self.client.request(req).await?;
        let status = response.status();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }
}
