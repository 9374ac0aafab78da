//! Test support: real Redis, Kafka and MariaDB on loopback, each test with
//! its own SKUs, topic and shard databases, and a gateway on 127.0.0.1:0.
//!
//! Services come from `REDIS_URL`, `KAFKA_BOOTSTRAP` and `MYSQL_URL`
//! (server DSN without a database), defaulting to what `scripts/setup.sh`
//! starts.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway::config::Config;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use settler::setup::{ensure_topics, TopicSpec};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn kafka_bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn mysql_server() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://flashsale:flashsale@127.0.0.1:3306".into())
}

/// A buyer token for `user_id`, signed with the development key the test
/// gateways take, valid for an hour.
pub fn buyer_token(user_id: u64) -> String {
    sign_token(user_id, 3_600, gateway::config::DEV_TOKEN_SECRET)
}

/// An HS256 token (`kid` dev) for `user_id` expiring `expires_in` seconds from now (negative: past).
pub fn sign_token(user_id: u64, expires_in: i64, secret: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("dev".into());
    let claims = serde_json::json!({"sub": user_id.to_string(), "exp": chrono::Utc::now().timestamp() + expires_in});
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// A topic of its own, with `partitions` partitions, and its dead-letter
/// topic (`<topic>.dlq`, as [`settler_config`] names it).
pub async fn fresh_topic(partitions: i32) -> String {
    let topic = unique("order_events_test");
    let topics = [TopicSpec::new(&topic, partitions), TopicSpec::new(format!("{topic}.dlq"), 1)];
    ensure_topics(&kafka_bootstrap(), &topics).await.expect("creating topics");
    topic
}

/// `n` shard databases of its own, migrated. Dropped by [`drop_shards`].
pub async fn fresh_shards(n: usize) -> Vec<String> {
    let prefix = unique("t");
    let dsns: Vec<String> = (0..n).map(|i| format!("{}/{prefix}_{i}", mysql_server())).collect();
    orderdb::shards::create_databases(&dsns).await.expect("creating shard databases");
    let shards = pools(&dsns);
    shards.migrate().await.expect("migrating shards");
    shards.close().await;
    dsns
}

pub async fn drop_shards(dsns: &[String]) {
    orderdb::shards::drop_databases(dsns).await.expect("dropping shard databases");
}

/// Pools of one connection on the test's shards.
pub fn pools(dsns: &[String]) -> orderdb::ShardPools {
    orderdb::ShardPools::connect_lazy(dsns, 1, Duration::from_secs(5)).unwrap()
}

/// Every stored copy of every order of `sku`, with its shard.
async fn sale_orders(shards: &[String], sku: &str) -> Vec<orderdb::orders::SaleOrder> {
    let pools = pools(shards);
    let orders = pools.orders_of_sku(sku).await.unwrap();
    pools.close().await;
    orders
}

/// Each test's Redis keys live under a namespace named after its topic, so
/// the sweepers and payment pollers of parallel tests see only their own;
/// `scripts/test.sh` drops the `test_…` keys earlier runs left.
pub fn namespace(topic: &str) -> String {
    format!("test_{topic}:")
}

/// A gateway config pointing at the test services, with the limits off.
pub fn gateway_config(topic: &str, shards: &[String]) -> Config {
    let mut config = Config::default();
    config.server.listen = ([127, 0, 0, 1], 0).into();
    config.server.shutdown_grace_secs = 2;
    config.server.development = true;
    // Every test client is 127.0.0.1.
    config.server.max_connections_per_ip = 0;
    config.admin.tokens = [("tests".to_owned(), ADMIN_TOKEN.into())].into();
    config.redis.url = redis_url();
    config.redis.namespace = namespace(topic);
    config.kafka.bootstrap = kafka_bootstrap();
    config.kafka.topic = topic.into();
    config.mysql.shards = shards.to_vec();
    config.traffic.routes.clear();
    config
}

pub fn settler_config(topic: &str, shards: &[String]) -> settler::config::Config {
    let mut config = settler::config::Config::default();
    config.redis.url = redis_url();
    config.redis.namespace = namespace(topic);
    config.kafka.bootstrap = kafka_bootstrap();
    config.kafka.topic = topic.into();
    config.kafka.dlq_topic = format!("{topic}.dlq");
    config.kafka.group_id = unique("settler_test");
    config.mysql.shards = shards.to_vec();
    config
}

/// A running gateway; stopped when dropped.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub app: Arc<gateway::App>,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl TestGateway {
    /// Binds 127.0.0.1:0 and points the payment notifications at itself.
    pub async fn start(config: Config) -> Self {
        Self::start_with_file(config, None).await
    }

    /// As [`TestGateway::start`], reloading traffic from `config_file`.
    pub async fn start_with_file(mut config: Config, config_file: Option<std::path::PathBuf>) -> Self {
        config.validate().expect("a test gateway's config passes the same checks as a deployment's");
        let listener = tokio::net::TcpListener::bind(config.server.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        config.payments.notify_url = format!("http://{addr}/v1/payments/notify");
        let app = Arc::new(gateway::App::new(config, config_file.clone()).expect("building the gateway"));
        app.center.sales.redis().wait_connected(Duration::from_secs(1)).await;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let app = app.clone();
            async move {
                let stopped = async {
                    let _ = stopped.await;
                };
                if let Err(err) = gateway::run(listener, app, config_file, stopped).await {
                    tracing::error!(error = %err, "test gateway stopped");
                }
            }
        });
        // Orders are taken once the node id lease is held.
        let waiting = Instant::now();
        while !app.center.node.held() && waiting.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build(connector);
        Self { addr, app, client, stop: Some(stop).into(), task: Some(task).into() }
    }

    /// Stops accepting, drains and flushes; returns once `run` has returned.
    pub async fn shutdown(&self) {
        if let Some(stop) = self.stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.lock().await.take() {
            task.await.unwrap();
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        self.try_request(method, path, headers, body).await.expect("request failed")
    }

    /// A request that may fail to connect or be answered.
    pub async fn try_request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Answer, Box<dyn std::error::Error + Send + Sync>> {
        let mut req = Request::builder().method(method).uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let body = body.into();
        // A buyer route gets the token of the user its body names (user 1
        // if none), unless the test brings its own Authorization.
        let names_auth = headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
        if (path.starts_with("/v1/orders") || path.starts_with("/v1/checkout")) && !names_auth {
            let user = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["user_id"].as_u64()).unwrap_or(1);
            req = req.header("authorization", format!("Bearer {}", buyer_token(user)));
        }
        let response = self.client.request(req.body(Full::new(body))?).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await?.to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Answer { status, headers, json })
    }

    pub async fn place(&self, user_id: u64, sku: &str, qty: u32, key: &str) -> Answer {
        self.try_place(user_id, sku, qty, key).await.expect("request failed")
    }

    pub async fn try_place(
        &self,
        user_id: u64,
        sku: &str,
        qty: u32,
        key: &str,
    ) -> Result<Answer, Box<dyn std::error::Error + Send + Sync>> {
        let body = serde_json::json!({"user_id": user_id, "sku": sku, "qty": qty}).to_string();
        let headers = [("content-type", "application/json"), ("idempotency-key", key)];
        self.try_request(Method::POST, "/v1/orders", &headers, body).await
    }

    pub async fn load_sale(&self, sku: &str, stock: i64, per_user_limit: i64, price_cents: i64) {
        let body = serde_json::json!({"stock": stock, "per_user_limit": per_user_limit, "price_cents": price_cents});
        let answer = self.admin(Method::PUT, &format!("/admin/skus/{sku}"), body.to_string()).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    }

    /// The sale's counters from `GET /admin/skus/{sku}`.
    pub async fn sale(&self, sku: &str) -> Value {
        let answer = self.admin(Method::GET, &format!("/admin/skus/{sku}"), "").await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
        answer.json["sale"].clone()
    }

    pub async fn admin(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Answer {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        self.request(method, path, &[("authorization", &auth), ("content-type", "application/json")], body).await
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
    }
}

/// A settler running in this process; stopped by [`TestSettler::stop`].
pub struct TestSettler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl TestSettler {
    pub fn start(config: settler::config::Config) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let settler = settler::Settler::new(config).expect("building the settler");
        let task = tokio::spawn(async move {
            settler
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("settler failed");
        });
        Self { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap<HeaderValue>,
    pub json: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub const PAYMENT_SECRET: &str = "test-payment-secret";

/// A payment channel simulator on 127.0.0.1:0 with a fast retry schedule;
/// returns its base URL. Runs until the test ends.
pub async fn start_paysim() -> String {
    start_paysim_signing(PAYMENT_SECRET).await
}

/// As [`start_paysim`], signing with `secret`: a second, independent channel.
pub async fn start_paysim_signing(secret: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let schedule = [Duration::from_millis(100), Duration::from_millis(200), Duration::from_millis(400)];
    let simulator = paysim::Simulator::new(secret.as_bytes(), &schedule);
    tokio::spawn(simulator.serve(listener, std::future::pending()));
    format!("http://{addr}")
}

/// The payment channels `(id, url, secret)`, the first the default.
pub fn payment_channels(config: &mut Config, channels: &[(&str, &str, &str)]) {
    config.payments.channels = channels
        .iter()
        .map(|(id, url, secret)| {
            let endpoint = paychannel::channels::Endpoint { url: (*url).to_owned(), secret: (*secret).into() };
            ((*id).to_owned(), endpoint)
        })
        .collect();
    config.payments.default_channel = channels[0].0.to_owned();
}

/// The one payment channel "card" at `url`, signing with [`PAYMENT_SECRET`].
pub fn payment_channel(config: &mut Config, url: &str) {
    payment_channels(config, &[("card", url, PAYMENT_SECRET)]);
}

/// A JSON request to the simulator.
pub async fn paysim(base: &str, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    json_request(base, method, path, &[], body).await
}

/// A JSON request to `base` (`http://host:port`) with `headers`: the answer's status and JSON (null if none).
pub async fn json_request(
    base: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, Value) {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut req = Request::builder().method(method).uri(format!("{base}{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.header("content-type", "application/json").body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let response = client.request(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// (order id, user id) of every order of `sku`, per shard.
pub async fn stored_orders(shards: &[String], sku: &str) -> Vec<Vec<(i64, u64)>> {
    let mut per_shard = vec![Vec::new(); shards.len()];
    for order in sale_orders(shards, sku).await {
        per_shard[order.shard].push((order.order_id.raw() as i64, order.user_id));
    }
    per_shard
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Order id → status of every order of `sku`, over all shards; an order on
/// two shards, or on a shard its user does not map to, fails the test.
pub async fn order_statuses(shards: &[String], sku: &str) -> std::collections::HashMap<i64, String> {
    let router = order::shard::ShardRouter::new(shards.len()).unwrap();
    let mut statuses = std::collections::HashMap::new();
    for order in sale_orders(shards, sku).await {
        let (order_id, user_id) = (order.order_id.raw() as i64, order.user_id);
        assert_eq!(
            router.shard_for_user(user_id),
            order.shard,
            "order {order_id} of user {user_id} on the wrong shard"
        );
        assert!(statuses.insert(order_id, order.status.to_string()).is_none(), "order {order_id} stored on two shards");
    }
    statuses
}

/// A sweeper over the test's namespace, sweeping `every`, at most `batch`
/// orders of a sale per sweep.
pub fn sweeper(config: &settler::config::Config, every: Duration, batch: usize) -> settler::sweeper::Sweeper {
    settler::sweeper::Sweeper {
        store: stock::SaleStore::connect(&config.redis).unwrap(),
        events: events::producer::EventProducer::new(&config.producer()).unwrap(),
        every,
        rescan_every: Duration::from_secs(60),
        batch,
        strike_window_secs: config.abuse.window_secs,
    }
}

/// A free port below the ephemeral range (32768 and up): while the test's
/// node is down, an outgoing connection of any process could otherwise be
/// given its port, and the restart would find it taken. Never one this
/// test binary handed out before (two picks before either is listened on).
fn spare_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let port = 20_000 + (random % 12_000) as u16;
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
}

/// A Kafka node of the test's own (`scripts/kafka.sh`, its data in a
/// directory of its own under `.local/test-brokers`), for faults that must
/// not touch other tests: stalls, kills and restarts. Removed when dropped.
pub struct TestBroker {
    pub bootstrap: String,
    port: u16,
    run_dir: std::path::PathBuf,
}

impl TestBroker {
    pub async fn start() -> Self {
        let (port, controller) = (spare_port(), spare_port());
        let run_dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.local/test-brokers").join(unique("kafka"));
        let broker = Self { bootstrap: format!("127.0.0.1:{port}"), port, run_dir };
        broker.script(&["start"], Some(controller)).await;
        broker
    }

    /// SIGSTOP: the broker keeps its connections but answers nothing.
    pub async fn stall(&self) {
        self.script(&["stall", "1"], None).await;
    }

    /// SIGCONT: it answers again, late requests included.
    pub async fn resume(&self) {
        self.script(&["resume", "1"], None).await;
    }

    /// SIGKILL: no controlled shutdown, nothing flushed by the broker.
    pub async fn kill(&self) {
        self.script(&["kill", "1"], None).await;
    }

    /// Starts the node again on its data; returns once it serves.
    pub async fn restart(&self) {
        self.script(&["start"], None).await;
    }

    /// Runs `scripts/kafka.sh` on this node's cluster directory.
    async fn script(&self, args: &[&str], controller_port: Option<u16>) {
        let mut command = tokio::process::Command::new("bash");
        command
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/kafka.sh"))
            .args(args)
            .env("KAFKA_PORT", self.port.to_string())
            .env("RUN_DIR", &self.run_dir)
            .kill_on_drop(true);
        if let Some(port) = controller_port {
            command.env("KAFKA_CONTROLLER_PORT", port.to_string());
        }
        let output = command.output().await.expect("running scripts/kafka.sh");
        assert!(
            output.status.success(),
            "scripts/kafka.sh {args:?} failed (run scripts/setup.sh first): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let pid_file = self.run_dir.join(format!("kafka-{}/node-1/pid", self.port));
        if let Ok(pid) = std::fs::read_to_string(pid_file) {
            let _ = std::process::Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}
