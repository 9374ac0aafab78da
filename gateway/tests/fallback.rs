//! An ordinary sale keeps selling while Redis is down, from its database
//! share; a flash sale answers 503. Against a Redis of the test's own
//! (`redis-server` on a spare loopback port, keeping an append-only file as
//! a production Redis keeps its data), killed mid-sale and started again.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hyper::{Method, StatusCode};
use ordercenter::settings::Breaker;
use serde_json::{json, Value};
use support::*;
use tokio::process::{Child, Command};

fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn redis_server(port: u16, dir: &Path) -> Child {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", ""])
        .args(["--appendonly", "yes", "--appendfsync", "always", "--dir", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server (scripts/setup.sh installs it)")
}

/// Places until the answer is not a 503 (the breaker opening, a probe of
/// the dead Redis): as a client retries, with the same key.
async fn place_through(gateway: &TestGateway, user: u64, sku: &str, key: &str) -> Answer {
    for _ in 0..50 {
        let answer = gateway.place(user, sku, 1, key).await;
        if answer.status != StatusCode::SERVICE_UNAVAILABLE {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{user}/{key}: still 503 after 50 tries");
}

fn figure(value: &Value, name: &str) -> i64 {
    value[name].as_i64().unwrap_or_else(|| panic!("{name} in {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ordinary_sale_sells_from_the_database_while_redis_is_down_and_redis_adopts_its_orders() {
    let dir = std::env::temp_dir().join(unique("redis_fallback"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = spare_port();
    let mut redis = redis_server(port, &dir);
    let (topic, shards) = (fresh_topic(2).await, fresh_shards(2).await);
    let redis_url = format!("redis://127.0.0.1:{port}");
    let mut config = gateway_config(&topic, &shards);
    config.redis.url = redis_url.clone();
    config.redis.command_timeout_ms = 200;
    config.traffic.breakers.redis =
        Breaker { enabled: true, failure_ratio: 0.5, min_requests: 3, window_secs: 2, open_ms: 300 };
    let gateway = TestGateway::start(config).await;
    let mut settler = settler_config(&topic, &shards);
    settler.redis.url = redis_url;
    let settler = TestSettler::start(settler);

    let (sku, flash) = (unique("ordinary"), unique("flash"));
    let terms = json!({"stock": 30, "per_user_limit": 2, "price_cents": 100, "kind": "ordinary", "database_units": 10});
    let loaded = gateway.admin(Method::PUT, &format!("/admin/skus/{sku}"), terms.to_string()).await;
    assert_eq!(loaded.status, StatusCode::OK, "{}", loaded.json);
    assert_eq!((&loaded.json["sale"]["kind"], figure(&loaded.json["sale"], "stock")), (&json!("ordinary"), 20));
    assert_eq!(loaded.json["database_share"], json!({"units": 10, "pending_orders": 0}));
    gateway.load_sale(&flash, 30, 2, 100).await;
    let no_share = json!({"stock": 5, "per_user_limit": 1, "price_cents": 1, "kind": "ordinary"});
    let refused = gateway.admin(Method::PUT, &format!("/admin/skus/{sku}_x"), no_share.to_string()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);

    // Redis up: five orders from its share.
    let mut accepted = Vec::new();
    for user in 1..=5u64 {
        let answer = gateway.place(user, &sku, 1, &format!("k{user}")).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
        accepted.push(answer.json["order_id"].as_str().unwrap().to_owned());
    }

    redis.kill().await.unwrap();
    // The flash sale: 503, however long it lasts.
    for attempt in 0..5 {
        let answer = gateway.place(9, &flash, 1, "f9").await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "attempt {attempt}: {}", answer.json);
    }
    // Buyer 1's retry of its first key reaches only the database: it gets
    // an order of its own there (Redis's is the one that will stand).
    let duplicate = place_through(&gateway, 1, &sku, "k1").await;
    assert_eq!(duplicate.status, StatusCode::ACCEPTED, "{}", duplicate.json);
    let duplicate_id = duplicate.json["order_id"].as_str().unwrap().to_owned();
    assert_ne!(duplicate_id, accepted[0]);
    // Forty buyers race for the nine units left in the database's share.
    let racers = (100..140u64).map(|user| {
        let (gateway, sku) = (&gateway, &sku);
        async move { (user, place_through(gateway, user, sku, &format!("k{user}")).await) }
    });
    let answers = futures::future::join_all(racers).await;
    let mut from_database = Vec::new();
    for (user, answer) in &answers {
        match answer.status {
            StatusCode::ACCEPTED => from_database.push((*user, answer.json["order_id"].as_str().unwrap().to_owned())),
            StatusCode::CONFLICT => assert_eq!(answer.json["error"], "sold_out", "{}", answer.json),
            status => panic!("{user}: {status} {}", answer.json),
        }
    }
    assert_eq!(from_database.len(), 9, "the database share's units, each sold once");
    let (user, order_id) = &from_database[0];
    let again = gateway.place(*user, &sku, 1, &format!("k{user}")).await;
    assert_eq!((again.status, &again.json["order_id"]), (StatusCode::OK, &json!(order_id)), "a retry, replayed");

    // Redis back with its data: the fallback's orders are adopted, the
    // duplicate is cancelled, and the counts agree.
    let _redis = redis_server(port, &dir);
    let (cancel_user, cancel_id) = from_database[1].clone();
    let cancelled = eventually(Duration::from_secs(20), "a fallback order cancelled once Redis is back", || async {
        let body = json!({"sku": sku, "user_id": cancel_user}).to_string();
        let path = format!("/v1/orders/{cancel_id}/cancel");
        let answer = gateway.try_request(Method::POST, &path, &[("content-type", "application/json")], body).await;
        answer.ok().filter(|answer| answer.status == StatusCode::OK)
    })
    .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    let adopted = eventually(Duration::from_secs(20), "every fallback order adopted", || async {
        let answer = gateway.admin(Method::GET, &format!("/admin/skus/{sku}"), "").await;
        (answer.status == StatusCode::OK && answer.json["database_share"]["pending_orders"] == 0).then_some(answer.json)
    })
    .await;
    let sale = &adopted["sale"];
    // Redis: its 20, plus the 9 adopted; 5 + 8 reserved, 1 cancelled back
    // on sale. The database: the duplicate's unit back.
    assert_eq!((figure(sale, "total"), figure(sale, "reserved"), figure(sale, "stock")), (29, 13, 16), "{adopted}");
    assert_eq!(adopted["database_share"]["units"], 1, "{adopted}");

    let statuses = eventually(Duration::from_secs(30), "every order stored as it ended", || async {
        let statuses = order_statuses(&shards, &sku).await;
        (statuses.len() == 15 && statuses.values().filter(|s| *s == "CANCELLED").count() == 2).then_some(statuses)
    })
    .await;
    let status_of = |id: &str| statuses[&id.parse::<i64>().unwrap()].clone();
    assert!(accepted.iter().all(|id| status_of(id) == "PENDING_PAYMENT"));
    assert_eq!((status_of(&duplicate_id), status_of(&cancel_id)), ("CANCELLED".into(), "CANCELLED".into()));
    let pools = pools(&shards);
    let reason: (String,) = sqlx::query_as("SELECT cancel_reason FROM orders WHERE order_id = ?")
        .bind(duplicate_id.parse::<i64>().unwrap())
        .fetch_one(&pools.pools[pools.router.shard_for_user(1)])
        .await
        .unwrap();
    assert_eq!(reason.0, "duplicate_key");
    pools.close().await;
    // Redis answers the fallback's keys now.
    let (user, order_id) = &from_database[2];
    let again = gateway.place(*user, &sku, 1, &format!("k{user}")).await;
    assert_eq!((again.status, &again.json["order_id"]), (StatusCode::OK, &json!(order_id)), "{}", again.json);

    settler.stop().await;
    drop_shards(&shards).await;
    let _ = std::fs::remove_dir_all(&dir);
}
