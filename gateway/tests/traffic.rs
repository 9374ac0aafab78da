//! Traffic control against a running gateway: buckets by scope, trusted
//! proxies, deny lists, hot reload (file change, broken file, SIGHUP; the
//! scheduling rules too), circuit breakers and load shedding. Real Redis
//! and broker.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use gateway::config::{Config, LimitedRoute, RouteLimits};
use gateway::traffic::buckets::bucket;
use hyper::{Method, StatusCode};
use support::*;
use tokio::net::{TcpListener, TcpStream};

async fn order_from(gateway: &TestGateway, user: u64, sku: &str, key: &str, forwarded_for: Option<&str>) -> Answer {
    let body = serde_json::json!({"user_id": user, "sku": sku, "qty": 1}).to_string();
    let mut headers = vec![("content-type", "application/json"), ("idempotency-key", key)];
    if let Some(hops) = forwarded_for {
        headers.push(("x-forwarded-for", hops));
    }
    gateway.request(Method::POST, "/v1/orders", &headers, body).await
}

fn with_place_order(mut config: Config, limits: RouteLimits) -> Config {
    config.traffic.routes.insert(LimitedRoute::PlaceOrder, limits);
    config
}

async fn gateway_with(limits: RouteLimits, edit: impl FnOnce(&mut Config)) -> (TestGateway, String) {
    let topic = fresh_topic(1).await;
    let mut config = with_place_order(gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()]), limits);
    edit(&mut config);
    let gateway = TestGateway::start(config).await;
    let sku = unique("traffic");
    gateway.load_sale(&sku, 1_000, 1_000, 100).await;
    (gateway, sku)
}

#[tokio::test]
async fn each_scope_limits_at_its_burst_and_keys_do_not_share_buckets() {
    let trusted = |config: &mut Config| config.traffic.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];

    // The buckets refill at 1 token/s: the counted requests go to a SKU
    // with no sale (404 from Redis at once, no broker round trip), so no
    // refill lands between them however slow the machine is.
    // Per IP: two clients behind our proxy, each with its own bucket.
    let (gateway, sku) = gateway_with(RouteLimits { ip: Some(bucket(1, 2)), ..Default::default() }, trusted).await;
    let none = format!("{sku}_none");
    for (n, ip) in [(1, "203.0.113.1"), (2, "203.0.113.1")] {
        assert_eq!(order_from(&gateway, n, &none, &format!("a{n}"), Some(ip)).await.status, StatusCode::NOT_FOUND);
    }
    let limited = order_from(&gateway, 3, &none, "a3", Some("203.0.113.1")).await;
    assert_eq!((limited.status, limited.json["scope"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("ip")));
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(order_from(&gateway, 4, &none, "a4", Some("203.0.113.2")).await.status, StatusCode::NOT_FOUND);

    // Per user: two users, each with their own bucket.
    let (gateway, sku) = gateway_with(RouteLimits { user: Some(bucket(1, 2)), ..Default::default() }, |_| {}).await;
    let none = format!("{sku}_none");
    assert_eq!(gateway.place(7, &none, 1, "u1").await.status, StatusCode::NOT_FOUND);
    assert_eq!(gateway.place(7, &none, 1, "u2").await.status, StatusCode::NOT_FOUND);
    let limited = gateway.place(7, &none, 1, "u3").await;
    assert_eq!((limited.status, limited.json["scope"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("user")));
    assert_eq!(gateway.place(8, &none, 1, "u4").await.status, StatusCode::NOT_FOUND);

    // Global: everyone together.
    let (gateway, sku) = gateway_with(RouteLimits { global: Some(bucket(1, 3)), ..Default::default() }, |_| {}).await;
    let answers = join_all((1..=5u64).map(|user| {
        let gateway = &gateway;
        let sku = sku.clone();
        async move { gateway.place(user, &sku, 1, &format!("g{user}")).await }
    }))
    .await;
    let limited: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(limited.len(), 2);
    assert!(limited.iter().all(|a| a.json["scope"] == "global"));
    assert_eq!(gateway.sale(&sku).await["stock"], 997, "limited requests take no stock");
}

#[tokio::test]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    // Untrusted peer: the header is ignored, both "clients" share the peer's bucket.
    let (gateway, sku) = gateway_with(RouteLimits { ip: Some(bucket(1, 1)), ..Default::default() }, |_| {}).await;
    assert_eq!(order_from(&gateway, 1, &sku, "s1", Some("198.51.100.1")).await.status, StatusCode::ACCEPTED);
    let spoofed = order_from(&gateway, 2, &sku, "s2", Some("198.51.100.2")).await;
    assert_eq!(spoofed.status, StatusCode::TOO_MANY_REQUESTS, "a spoofed header buys no new bucket");

    // Trusted peer: the header names the client.
    let trusted = |config: &mut Config| config.traffic.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let (gateway, sku) = gateway_with(RouteLimits { ip: Some(bucket(1, 1)), ..Default::default() }, trusted).await;
    assert_eq!(order_from(&gateway, 1, &sku, "t1", Some("198.51.100.1")).await.status, StatusCode::ACCEPTED);
    assert_eq!(order_from(&gateway, 2, &sku, "t2", Some("198.51.100.2")).await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn denied_users_and_networks_get_403_and_take_no_stock() {
    let deny = |config: &mut Config| {
        config.traffic.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        config.traffic.deny.users = vec![666];
        config.traffic.deny.ips = vec!["192.0.2.0/24".parse().unwrap()];
    };
    let (gateway, sku) = gateway_with(RouteLimits::default(), deny).await;
    let user = gateway.place(666, &sku, 1, "d1").await;
    assert_eq!((user.status, user.json["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let network = order_from(&gateway, 5, &sku, "d2", Some("192.0.2.77")).await;
    assert_eq!(network.status, StatusCode::FORBIDDEN);
    assert_eq!(order_from(&gateway, 5, &sku, "d3", Some("192.0.3.1")).await.status, StatusCode::ACCEPTED);
    assert_eq!(gateway.sale(&sku).await["stock"], 999, "only the allowed order took a unit");
}

/// Writes a config file whose place_order user bucket has burst `burst`
/// (the rest as the test gateway's config).
fn write_config(path: &PathBuf, base: &Config, burst: u32) {
    let mut config = with_place_order(base.clone(), RouteLimits { user: Some(bucket(1, burst)), ..Default::default() });
    config.server.listen = ([127, 0, 0, 1], 0).into();
    // Written elsewhere and renamed into place, as editors do.
    let staging = path.with_extension("tmp");
    // Secrets serialize masked: put the real ones back.
    let mut file = toml::Value::try_from(&config).unwrap();
    let tokens: std::collections::BTreeMap<_, _> =
        config.admin.tokens.iter().map(|(name, token)| (name.clone(), token.expose().to_owned())).collect();
    file["admin"]["tokens"] = toml::Value::try_from(tokens).unwrap();
    for (id, channel) in &config.payments.channels {
        file["payments"]["channels"][id]["secret"] = channel.secret.expose().into();
    }
    for (i, key) in config.auth.keys.iter().enumerate() {
        if let Some(secret) = &key.secret {
            file["auth"]["keys"][i]["secret"] = secret.expose().into();
        }
    }
    std::fs::write(&staging, toml::to_string(&file).unwrap()).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

/// A gateway started from a config file of its own (written from `base`,
/// in a fresh folder named after `prefix`) that it watches for reloads.
async fn gateway_from_file(prefix: &str, base: &Config) -> (TestGateway, PathBuf) {
    let folder = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join("gateway.toml");
    write_config(&path, base, 2);
    let gateway = TestGateway::start_with_file(Config::load(Some(&path)).unwrap(), Some(path.clone())).await;
    (gateway, path)
}

/// The gateway's count of config reloads ended with `result` (`ok`, `failed`).
async fn reloads(gateway: &TestGateway, result: &str) -> f64 {
    let text = gateway.request(Method::GET, "/metrics", &[], "").await.json.as_str().unwrap().to_owned();
    metric(&text, &format!("gateway_config_reloads_total{{result=\"{result}\"}}"))
}

/// How many of `n` orders by one new user get past the user bucket. They
/// go to a SKU with no sale: answered at once (404), so the bucket does not
/// refill between them.
async fn accepted_of(gateway: &TestGateway, sku: &str, user: u64, n: u32) -> usize {
    let mut admitted = 0;
    for i in 0..n {
        let answer = gateway.place(user, &format!("{sku}_none"), 1, &format!("r{user}-{i}")).await;
        if answer.status != StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.json);
            admitted += 1;
        }
    }
    admitted
}

fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(name_and_labels))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// Which warehouse serves the east changes with the file, no restart.
#[tokio::test]
async fn scheduling_rules_reload_from_the_file() {
    let topic = fresh_topic(1).await;
    let mut base = gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()]);
    let serving = |warehouse: &str| order::scheduling::SchedulingRules {
        promised_hours: 48,
        delivery_hours: [(warehouse.to_owned(), [("east".to_owned(), 12)].into_iter().collect())].into_iter().collect(),
    };
    base.scheduling = serving("a");
    let (gateway, path) = gateway_from_file("scheduling", &base).await;
    let sku = unique("scheduling");
    let terms = serde_json::json!({
        "stock": 20, "per_user_limit": 1, "price_cents": 100,
        "warehouses": [{"warehouse": "a", "units": 10}, {"warehouse": "b", "units": 10}],
    });
    assert_eq!(
        gateway.admin(Method::PUT, &format!("/admin/skus/{sku}"), terms.to_string()).await.status,
        StatusCode::OK
    );
    let east = |user: u64| {
        let gateway = &gateway;
        let body = serde_json::json!({"user_id": user, "sku": sku, "qty": 1, "region": "east"}).to_string();
        async move {
            let key = format!("east-{user}");
            let headers = [("content-type", "application/json"), ("idempotency-key", key.as_str())];
            gateway.request(Method::POST, "/v1/orders", &headers, body).await.json["warehouse"].clone()
        }
    };
    assert_eq!(east(1).await, "a");

    base.scheduling = serving("b");
    write_config(&path, &base, 2);
    let mut user = 1;
    eventually(Duration::from_secs(10), "the new rules", || {
        user += 1;
        let placed = east(user);
        async move { (placed.await == "b").then_some(()) }
    })
    .await;
    let shown = gateway.admin(Method::GET, "/admin/config", "").await;
    assert!(shown.json["config"]["scheduling"]["delivery_hours"]["b"].is_object(), "{}", shown.json);
}

#[tokio::test]
async fn limits_reload_from_the_file_and_on_sighup_and_a_broken_file_changes_nothing() {
    let topic = fresh_topic(1).await;
    let base = gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()]);
    let (gateway, path) = gateway_from_file("reload", &base).await;
    let sku = unique("reload");
    gateway.load_sale(&sku, 1_000, 1_000, 100).await;
    let hash_before = gateway.admin(Method::GET, "/admin/config", "").await.json["loaded"]["traffic_hash"].clone();
    assert_eq!(accepted_of(&gateway, &sku, 1, 6).await, 2);

    // The file changes: the new burst applies to the next requests, no restart.
    write_config(&path, &base, 5);
    eventually(Duration::from_secs(10), "the reload", || async {
        let shown = gateway.admin(Method::GET, "/admin/config", "").await;
        (shown.json["loaded"]["traffic_hash"] != hash_before).then_some(())
    })
    .await;
    let shown = gateway.admin(Method::GET, "/admin/config", "").await;
    assert_eq!(shown.json["config"]["traffic"]["routes"]["place_order"]["user"]["burst"], 5);
    assert_eq!(shown.json["config"]["admin"]["tokens"]["tests"], "***", "secrets are masked");
    assert_eq!(shown.json["config"]["payments"]["channels"]["card"]["secret"], "***", "secrets are masked");
    assert_eq!(accepted_of(&gateway, &sku, 2, 8).await, 5);

    // A broken file is refused and counted; the last good limits stay.
    std::fs::write(&path, "[traffic.routes.place_order]\nuser = { per_second = 0, burst = 1 }\n").unwrap();
    eventually(Duration::from_secs(10), "the refused reload", || async {
        (reloads(&gateway, "failed").await >= 1.0).then_some(())
    })
    .await;
    assert_eq!(accepted_of(&gateway, &sku, 3, 8).await, 5, "the last good config is in force");

    // A fixed file is taken again.
    write_config(&path, &base, 3);
    eventually(Duration::from_secs(10), "the fixed file", || async {
        let shown = gateway.admin(Method::GET, "/admin/config", "").await;
        (shown.json["config"]["traffic"]["routes"]["place_order"]["user"]["burst"] == 3).then_some(())
    })
    .await;
    assert_eq!(accepted_of(&gateway, &sku, 4, 8).await, 3);

    // SIGHUP reloads on its own (here an unchanged file: the count moves).
    let before = reloads(&gateway, "ok").await;
    let status = std::process::Command::new("kill").args(["-HUP", &std::process::id().to_string()]).status().unwrap();
    assert!(status.success());
    eventually(Duration::from_secs(10), "the SIGHUP reload", || async {
        (reloads(&gateway, "ok").await > before).then_some(())
    })
    .await;

    // Not TOML at all, then SIGHUP with that file in place, then the file
    // gone and SIGHUP: each refused and counted, the last good limits stay.
    let failures = || reloads(&gateway, "failed");
    let sighup = || {
        let status = std::process::Command::new("kill").args(["-HUP", &std::process::id().to_string()]).status();
        assert!(status.unwrap().success());
    };
    let before = failures().await;
    std::fs::write(&path, "this is [not toml").unwrap();
    eventually(Duration::from_secs(10), "the syntax error refused", || async {
        (failures().await > before).then_some(())
    })
    .await;
    let before = failures().await;
    sighup();
    eventually(Duration::from_secs(10), "SIGHUP with a broken file refused", || async {
        (failures().await > before).then_some(())
    })
    .await;
    std::fs::remove_file(&path).unwrap();
    let before = failures().await;
    sighup();
    eventually(Duration::from_secs(10), "SIGHUP with no file refused", || async {
        (failures().await > before).then_some(())
    })
    .await;
    assert_eq!(accepted_of(&gateway, &sku, 5, 8).await, 3, "the last good config is still in force");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// Admin tokens are rotated by editing the file: the new one works and the
/// old one is refused from the reload on, without a restart.
#[tokio::test]
async fn admin_tokens_rotate_with_a_reload() {
    let topic = fresh_topic(1).await;
    let mut base = gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()]);
    let (gateway, path) = gateway_from_file("rotate", &base).await;
    let get_config = |token: &'static str| {
        let gateway = &gateway;
        async move {
            let auth = format!("Bearer {token}");
            gateway.request(Method::GET, "/admin/config", &[("authorization", &auth)], "").await.status
        }
    };
    assert_eq!(get_config(ADMIN_TOKEN).await, StatusCode::OK);
    assert_eq!(get_config("rotated-admin-token-2").await, StatusCode::UNAUTHORIZED);

    base.admin.tokens = [("ops".to_owned(), "rotated-admin-token-2".into())].into();
    write_config(&path, &base, 2);
    eventually(Duration::from_secs(10), "the new token", || async {
        (get_config("rotated-admin-token-2").await == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(get_config(ADMIN_TOKEN).await, StatusCode::UNAUTHORIZED, "the old token is gone");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// Development mode is fixed at start: a reload that switches it is
/// refused whole, even when the new file is valid on its own.
#[tokio::test]
async fn a_reload_cannot_switch_development_mode() {
    let topic = fresh_topic(1).await;
    let mut base = gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()]);
    let (gateway, path) = gateway_from_file("devflip", &base).await;
    let before = reloads(&gateway, "failed").await;
    base.server.development = false;
    base.admin.tokens = [("ops".to_owned(), "a-production-admin-token".into())].into();
    base.payments.channels.get_mut("card").unwrap().secret = "the-channel-secret-0123".into();
    base.auth.keys[0].secret = Some("an-issuer-secret-of-32-bytes-or-more".into());
    base.validate().expect("valid on its own");
    write_config(&path, &base, 2);
    eventually(Duration::from_secs(10), "the refused reload", || async {
        (reloads(&gateway, "failed").await > before).then_some(())
    })
    .await;
    let still =
        gateway.request(Method::GET, "/admin/config", &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))], "").await;
    assert_eq!(still.status, StatusCode::OK, "the running admin tokens stay");
    assert_eq!(still.json["config"]["server"]["development"], true);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// Every admin change writes one audit line: which token, what, the sale
/// before and after.
#[tokio::test]
async fn admin_changes_write_one_audit_line_each() {
    #[derive(Clone, Default)]
    struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    tracing_subscriber::fmt()
        .with_env_filter("off,audit=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let topic = fresh_topic(1).await;
    let gateway = TestGateway::start(gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()])).await;
    let sku = unique("audit");
    gateway.load_sale(&sku, 10, 2, 100).await;
    let changed = gateway.admin(Method::PATCH, &format!("/admin/skus/{sku}"), r#"{"add_units": 5}"#).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.json);
    let refused = gateway.admin(Method::PATCH, &format!("/admin/skus/{sku}"), r#"{"add_units": -100}"#).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "a refused change is not a change");

    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let audit: Vec<&str> = text.lines().filter(|line| line.contains(&sku)).collect();
    assert_eq!(audit.len(), 2, "{text}");
    assert!(audit[0].contains("admin=\"tests\"") || audit[0].contains("admin=tests"), "{}", audit[0]);
    assert!(audit[0].contains("action=\"load_sale\"") || audit[0].contains("action=load_sale"), "{}", audit[0]);
    assert!(audit[0].contains("before=null"), "{}", audit[0]);
    assert!(
        audit[1].contains("change_sale") && audit[1].contains("\"total\":10") && audit[1].contains("\"total\":15"),
        "{}",
        audit[1]
    );
}

/// A TCP proxy to Redis that can be cut and restored, to take Redis away
/// from one gateway without stopping the shared server.
struct CuttableProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
}

impl CuttableProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                let flag = flag.clone();
                tokio::spawn(async move {
                    if !flag.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                    // Copy until either side closes or the proxy is cut.
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let cut = async {
                        while flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = cut => {} }
                });
            }
        });
        Self { addr, up }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn the_redis_breaker_opens_answers_fast_and_closes_when_redis_is_back() {
    let redis: SocketAddr = redis_url().trim_start_matches("redis://").parse().expect("REDIS_URL as redis://ip:port");
    let proxy = CuttableProxy::start(redis).await;
    let topic = fresh_topic(1).await;
    let mut config = gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()]);
    config.redis.url = format!("redis://{}", proxy.addr);
    config.redis.command_timeout_ms = 200;
    config.traffic.breakers.redis =
        gateway::config::Breaker { enabled: true, failure_ratio: 0.5, min_requests: 5, window_secs: 1, open_ms: 1_000 };
    let gateway = TestGateway::start(config).await;
    let sku = unique("breaker");
    gateway.load_sale(&sku, 100, 100, 100).await;
    // The policy's window must have run once before it may open the breaker.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(gateway.place(1, &sku, 1, "before").await.status, StatusCode::ACCEPTED);

    proxy.set_up(false);
    // Let the proxy notice and drop the open connections.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Load while Redis is away: every answer a 503 naming Redis, until the
    // breaker has seen enough failures in its window to open.
    let mut opened = false;
    for round in 0..20 {
        let answers = join_all((0..10).map(|i| {
            let (gateway, sku) = (&gateway, &sku);
            async move { gateway.place(100 + i, sku, 1, &format!("down{round}-{i}")).await }
        }))
        .await;
        for answer in answers {
            assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.json);
            assert_eq!(answer.json["dependency"], "redis");
        }
        if gateway.app.center.breakers.load().redis.state().as_str() == "open" {
            opened = true;
            break;
        }
    }
    assert!(opened, "the breaker opened");
    let ready = gateway.request(Method::GET, "/readyz", &[], "").await;
    assert_eq!(
        (ready.status, ready.json["breakers"]["redis"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("open"))
    );
    let metrics = gateway.request(Method::GET, "/metrics", &[], "").await.json.as_str().unwrap().to_owned();
    assert_eq!(metric(&metrics, "gateway_breaker_state{dependency=\"redis\"}"), 2.0);

    proxy.set_up(true);
    let status = stock::SaleStore::connect(&stock::RedisConfig {
        url: redis_url(),
        namespace: namespace(&topic),
        ..Default::default()
    })
    .unwrap();
    status.redis().wait_connected(Duration::from_secs(2)).await;
    assert_eq!(status.sale_status(&sku).await.unwrap().unwrap().stock, 99, "no stock moved while Redis was away");

    // After the open time a probe goes through, succeeds, and orders flow.
    let answer = eventually(Duration::from_secs(15), "orders to flow again", || async {
        let answer = gateway.place(3, &sku, 1, &format!("after-{}", rand::random::<u32>())).await;
        (answer.status == StatusCode::ACCEPTED).then_some(answer)
    })
    .await;
    assert_eq!(answer.json["status"], "PENDING_PAYMENT");
    let ready = gateway.request(Method::GET, "/readyz", &[], "").await;
    assert_eq!(ready.json["breakers"]["redis"], "closed");
}

#[tokio::test]
async fn past_the_in_flight_cap_requests_are_shed_at_once() {
    let slow_broker = |config: &mut Config| {
        config.traffic.max_in_flight = 2;
        // Each order waits for a 500 ms producer batch: a slow dependency.
        config.kafka.linger_ms = 500;
    };
    let (gateway, sku) = gateway_with(RouteLimits::default(), slow_broker).await;
    let answers = join_all((1..=10u64).map(|user| {
        let gateway = &gateway;
        let sku = sku.clone();
        async move { gateway.place(user, &sku, 1, &format!("shed{user}")).await }
    }))
    .await;
    let accepted = answers.iter().filter(|a| a.status == StatusCode::ACCEPTED).count();
    let shed: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert_eq!((accepted, shed.len()), (2, 8));
    assert!(shed.iter().all(|a| a.json["error"] == "overloaded" && a.header("retry-after") == Some("1")));
    // Admin and health routes are not shed.
    assert_eq!(gateway.sale(&sku).await["stock"], 998);
}

/// Storefront channels: with keys required, a request with none or a wrong
/// one is a 401; a channel over its quota gets 429 while another is not
/// touched; a key removed from the file is refused from the reload on, and
/// its replacement works, without a restart.
#[tokio::test]
async fn a_channel_over_its_quota_is_limited_alone_and_a_revoked_key_is_refused_after_a_reload() {
    use gateway::config::{Channel, Channels};
    use sha2::{Digest, Sha256};
    let hash = |key: &str| hex::encode(Sha256::digest(key.as_bytes()));
    let topic = fresh_topic(1).await;
    let mut base = gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()]);
    let channel = |key: &str, limit| Channel { key_sha256: vec![hash(key)], limit, ..Channel::default() };
    base.traffic.channels = Channels {
        required: true,
        list: [
            ("web".to_owned(), channel("web-key-1", Some(bucket(1, 3)))),
            ("partner".to_owned(), channel("partner-key-1", None)),
        ]
        .into(),
    };
    let (gateway, path) = gateway_from_file("channels", &base).await;
    let sku = unique("channel");
    let users = std::sync::atomic::AtomicU64::new(0);
    let order = |key: Option<&'static str>| {
        let gateway = &gateway;
        let (sku, user) = (sku.clone(), users.fetch_add(1, Ordering::Relaxed) + 1);
        async move {
            let body = serde_json::json!({"user_id": user, "sku": sku, "qty": 1}).to_string();
            let idempotency = format!("k{user}");
            let mut headers = vec![("content-type", "application/json"), ("idempotency-key", idempotency.as_str())];
            if let Some(key) = key {
                headers.push(("x-channel-key", key));
            }
            gateway.request(Method::POST, "/v1/orders", &headers, body).await
        }
    };

    for key in [None, Some("no-such-key")] {
        let refused = order(key).await;
        assert_eq!(
            (refused.status, refused.json["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
        );
    }
    // The SKU has no sale: each admitted request is a 404 at once.
    for _ in 0..3 {
        assert_eq!(order(Some("web-key-1")).await.status, StatusCode::NOT_FOUND);
    }
    let limited = order(Some("web-key-1")).await;
    assert_eq!((limited.status, limited.json["scope"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("channel")));
    assert!(limited.header("retry-after").is_some());
    for _ in 0..5 {
        assert_eq!(order(Some("partner-key-1")).await.status, StatusCode::NOT_FOUND, "the partner's quota is its own");
    }

    // The web channel's key is rotated in the file.
    base.traffic.channels.list.get_mut("web").unwrap().key_sha256 = vec![hash("web-key-2")];
    write_config(&path, &base, 2);
    eventually(Duration::from_secs(10), "the old key refused", || async {
        (order(Some("web-key-1")).await.status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    assert_ne!(order(Some("web-key-2")).await.status, StatusCode::UNAUTHORIZED, "the new key works");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// A Kubernetes ConfigMap mounted as a folder: `gateway.toml` is a symlink
/// to `..data/gateway.toml`, and an update writes a new timestamped folder
/// and swaps the `..data` symlink to it by rename. The gateway reloads on
/// that swap, though `gateway.toml` itself is never touched.
#[tokio::test]
async fn a_configmap_update_by_symlink_swap_reloads_the_limits() {
    use std::os::unix::fs::symlink;
    let topic = fresh_topic(1).await;
    let base = gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()]);
    let mount = std::env::temp_dir().join(unique("configmap"));
    std::fs::create_dir_all(mount.join("..2026_12_07_10_00_00.1")).unwrap();
    write_config(&mount.join("..2026_12_07_10_00_00.1/gateway.toml"), &base, 2);
    symlink("..2026_12_07_10_00_00.1", mount.join("..data")).unwrap();
    symlink("..data/gateway.toml", mount.join("gateway.toml")).unwrap();
    let path = mount.join("gateway.toml");
    let gateway = TestGateway::start_with_file(Config::load(Some(&path)).unwrap(), Some(path.clone())).await;
    let sku = unique("configmap");
    assert_eq!(accepted_of(&gateway, &sku, 1, 4).await, 2);

    // The kubelet's update: the new folder, a new symlink, renamed over `..data`.
    std::fs::create_dir_all(mount.join("..2026_12_07_10_05_00.2")).unwrap();
    write_config(&mount.join("..2026_12_07_10_05_00.2/gateway.toml"), &base, 5);
    symlink("..2026_12_07_10_05_00.2", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    std::fs::remove_dir_all(mount.join("..2026_12_07_10_00_00.1")).unwrap();
    eventually(Duration::from_secs(10), "the reload", || async {
        let shown = gateway.admin(Method::GET, "/admin/config", "").await;
        (shown.json["config"]["traffic"]["routes"]["place_order"]["user"]["burst"] == 5).then_some(())
    })
    .await;
    assert_eq!(accepted_of(&gateway, &sku, 2, 8).await, 5);
    std::fs::remove_dir_all(&mount).unwrap();
}
