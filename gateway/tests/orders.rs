//! The order API end to end: real Redis, broker and MariaDB, a gateway on
//! loopback and, where orders must reach the database, a settler.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use gateway::config::{LimitedRoute, RouteLimits};
use gateway::traffic::buckets::bucket;
use hyper::{Method, StatusCode};
use order::shard::ShardRouter;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_is_never_oversold_and_every_order_reaches_its_shard() {
    let topic = fresh_topic(4).await;
    let shards = fresh_shards(4).await;
    let mut config = gateway_config(&topic, &shards);
    // 2,000 clicks at once in a debug build on a shared 2-core machine: a
    // Redis call may wait longer than the production 500 ms. This test is
    // about what is answered, not how fast.
    config.redis.command_timeout_ms = 5_000;
    let gateway = Arc::new(TestGateway::start(config).await);
    let settler = TestSettler::start(settler_config(&topic, &shards));
    let sku = unique("phone");
    gateway.load_sale(&sku, 100, 1, 49_900).await;

    let answers = join_all((1..=2_000u64).map(|user| {
        let (gateway, sku) = (gateway.clone(), sku.clone());
        tokio::spawn(async move { gateway.place(user, &sku, 1, &format!("click-{user}")).await })
    }))
    .await;
    let mut accepted = HashSet::new();
    let mut sold_out = 0;
    for answer in answers {
        let answer = answer.unwrap();
        match answer.status {
            StatusCode::ACCEPTED => {
                assert_eq!(answer.json["status"], "PENDING_PAYMENT");
                assert_eq!(answer.json["amount_cents"], 49_900);
                accepted.insert(answer.json["order_id"].as_str().unwrap().parse::<i64>().unwrap());
            }
            StatusCode::CONFLICT => {
                assert_eq!(answer.json["error"], "sold_out");
                sold_out += 1;
            }
            other => panic!("unexpected {other}: {}", answer.json),
        }
    }
    assert_eq!((accepted.len(), sold_out), (100, 1_900));
    let sale = gateway.sale(&sku).await;
    assert_eq!((sale["stock"].as_i64(), sale["reserved"].as_i64()), (Some(0), Some(100)));

    let stored = eventually(Duration::from_secs(60), "the settler to store 100 orders", || async {
        let stored = stored_orders(&shards, &sku).await;
        (stored.iter().map(Vec::len).sum::<usize>() >= 100).then_some(stored)
    })
    .await;
    let router = ShardRouter::new(4).unwrap();
    let mut stored_ids = HashSet::new();
    for (shard, rows) in stored.iter().enumerate() {
        for &(order_id, user_id) in rows {
            assert_eq!(router.shard_for_user(user_id), shard, "user {user_id} stored on the wrong shard");
            assert!(stored_ids.insert(order_id), "order {order_id} stored twice");
        }
    }
    assert_eq!(stored_ids, accepted);
    // Every row carries its sale's generation (when the sale was loaded).
    let generation = gateway.sale(&sku).await["loaded_ms"].as_i64().unwrap();
    for dsn in &shards {
        let pool = sqlx::mysql::MySqlPool::connect(dsn).await.unwrap();
        let generations: Vec<(i64,)> = sqlx::query_as("SELECT DISTINCT sale_generation FROM orders WHERE sku = ?")
            .bind(&sku)
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(generations.iter().all(|(g,)| *g == generation), "{generations:?} for {generation}");
    }

    // An accepted order reads back from the shard its id names.
    let some_id = accepted.iter().next().unwrap();
    let buyer = stored.iter().flatten().find(|(id, _)| id == some_id).map(|(_, user)| *user).unwrap();
    let auth = format!("Bearer {}", buyer_token(buyer));
    let read = gateway.request(Method::GET, &format!("/v1/orders/{some_id}"), &[("authorization", &auth)], "").await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.json);
    assert_eq!(read.json["order_id"], some_id.to_string());
    assert_eq!(read.json["sku"], sku.as_str());
    assert_eq!(read.json["status"], "PENDING_PAYMENT");

    settler.stop().await;
    drop_shards(&shards).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_repeats_of_one_key_make_one_order() {
    let topic = fresh_topic(1).await;
    let gateway = Arc::new(TestGateway::start(gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()])).await);
    let sku = unique("console");
    gateway.load_sale(&sku, 10, 5, 1_000).await;

    let answers = join_all((0..50).map(|_| {
        let (gateway, sku) = (gateway.clone(), sku.clone());
        tokio::spawn(async move { gateway.place(42, &sku, 2, "one-click").await })
    }))
    .await;
    let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    let ids: HashSet<_> = answers.iter().map(|a| a.json["order_id"].clone()).collect();
    assert_eq!(ids.len(), 1, "all answers name one order: {ids:?}");
    assert!(ids.iter().all(|id| id.is_string()));
    let created = answers.iter().filter(|a| a.status == StatusCode::ACCEPTED).count();
    let replayed = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK && a.header("idempotent-replayed") == Some("true"))
        .count();
    assert_eq!((created, replayed), (1, 49));
    assert_eq!(gateway.sale(&sku).await["stock"], 8, "units taken once");

    // A later repeat replays the same body; a changed request is refused.
    let later = gateway.place(42, &sku, 2, "one-click").await;
    assert_eq!(later.status, StatusCode::OK);
    assert_eq!(later.json, answers.iter().find(|a| a.status == StatusCode::ACCEPTED).unwrap().json);
    for (user, qty) in [(43, 2), (42, 1)] {
        let reused = gateway.place(user, &sku, qty, "one-click").await;
        assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reused.json["error"], "idempotency_key_reused");
    }
}

/// Repeats of each click race on two gateway instances at once, so no
/// in-process single flight merges them: Redis's idempotency record is what
/// keeps one order per key, across several SKUs and quantities.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_repeats_across_two_gateways_make_one_order_per_key() {
    let topic = fresh_topic(1).await;
    let shards = ["mysql://unused@127.0.0.1/x".to_owned()];
    let mut second = gateway_config(&topic, &shards);
    second.server.node_id = 1;
    let gateways = [
        Arc::new(TestGateway::start(gateway_config(&topic, &shards)).await),
        Arc::new(TestGateway::start(second).await),
    ];
    let skus: Vec<String> = (0..3).map(|_| unique("race")).collect();
    for sku in &skus {
        gateways[0].load_sale(sku, 1_000, 10, 100).await;
    }
    // 3 SKUs × 20 clicks (qty 1–3), each sent 8 times, alternating gateways.
    let clicks: Vec<(String, u64, u32)> =
        skus.iter().flat_map(|sku| (1..=20u64).map(move |user| (sku.clone(), user, (user % 3 + 1) as u32))).collect();
    let mut sends = Vec::new();
    for (sku, user, qty) in &clicks {
        for copy in 0..8 {
            let (gateway, sku, user, qty) = (gateways[copy % 2].clone(), sku.clone(), *user, *qty);
            sends.push(tokio::spawn(async move {
                let answer = gateway.place(user, &sku, qty, &format!("click-{user}")).await;
                (sku, user, answer)
            }));
        }
    }
    let answers = join_all(sends).await;

    let mut orders: std::collections::HashMap<(String, u64), HashSet<String>> = Default::default();
    let mut created: std::collections::HashMap<(String, u64), usize> = Default::default();
    for answer in answers {
        let (sku, user, answer) = answer.unwrap();
        match answer.status {
            StatusCode::ACCEPTED | StatusCode::OK => {}
            StatusCode::CONFLICT => assert_eq!(answer.json["error"], "request_in_progress", "{}", answer.json),
            other => panic!("unexpected {other}: {}", answer.json),
        }
        orders.entry((sku.clone(), user)).or_default().insert(answer.json["order_id"].as_str().unwrap().to_owned());
        *created.entry((sku, user)).or_default() += usize::from(answer.status == StatusCode::ACCEPTED);
    }
    for ((sku, user), ids) in &orders {
        assert_eq!(ids.len(), 1, "click {user} on {sku} named several orders: {ids:?}");
        assert_eq!(created[&(sku.clone(), *user)], 1, "click {user} on {sku}: one 202");
    }
    for sku in &skus {
        let units: i64 = clicks.iter().filter(|(s, ..)| s == sku).map(|(.., qty)| *qty as i64).sum();
        let sale = gateways[0].sale(sku).await;
        assert_eq!((sale["reserved"].as_i64(), sale["stock"].as_i64()), (Some(units), Some(1_000 - units)), "{sku}");
    }
}

#[tokio::test]
async fn refusals_name_their_reason() {
    let topic = fresh_topic(1).await;
    let gateway = TestGateway::start(gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()])).await;
    let sku = unique("watch");
    gateway.load_sale(&sku, 3, 2, 25_000).await;

    let first = gateway.place(1, &sku, 2, "a").await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let limit = gateway.place(1, &sku, 1, "b").await;
    assert_eq!((limit.status, limit.json["error"].as_str()), (StatusCode::CONFLICT, Some("purchase_limit_exceeded")));
    let short = gateway.place(2, &sku, 2, "c").await;
    assert_eq!(short.status, StatusCode::CONFLICT);
    assert_eq!((short.json["error"].as_str(), short.json["available"].as_i64()), (Some("insufficient_stock"), Some(1)));
    assert_eq!(gateway.place(2, &sku, 1, "d").await.status, StatusCode::ACCEPTED);
    let gone = gateway.place(3, &sku, 1, "e").await;
    assert_eq!((gone.status, gone.json["error"].as_str()), (StatusCode::CONFLICT, Some("sold_out")));

    let unknown = gateway.place(1, &unique("nothing"), 1, "f").await;
    assert_eq!((unknown.status, unknown.json["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_sku")));

    // Restocking the live sale clears the local sold-out mark at once.
    let restock = gateway.admin(Method::PATCH, &format!("/admin/skus/{sku}"), r#"{"add_units": 1}"#).await;
    assert_eq!(restock.status, StatusCode::OK, "{}", restock.json);
    assert_eq!(gateway.place(3, &sku, 1, "g").await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn buckets_limit_users_and_say_when_to_retry() {
    let topic = fresh_topic(1).await;
    let mut config = gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()]);
    let limits = RouteLimits { user: Some(bucket(1, 2)), ..RouteLimits::default() };
    config.traffic.routes.insert(LimitedRoute::PlaceOrder, limits);
    let gateway = TestGateway::start(config).await;
    let sku = unique("shoe");
    gateway.load_sale(&sku, 100, 100, 100).await;

    assert_eq!(gateway.place(5, &sku, 1, "1").await.status, StatusCode::ACCEPTED);
    assert_eq!(gateway.place(5, &sku, 1, "2").await.status, StatusCode::ACCEPTED);
    let limited = gateway.place(5, &sku, 1, "3").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json, serde_json::json!({"error": "rate_limited", "scope": "user"}));
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(gateway.place(6, &sku, 1, "4").await.status, StatusCode::ACCEPTED, "other users are not limited");
    assert_eq!(gateway.sale(&sku).await["stock"], 97, "a limited request takes no stock");
}

#[tokio::test]
async fn the_global_bucket_sheds_everyone_past_its_burst() {
    let topic = fresh_topic(1).await;
    let mut config = gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()]);
    let limits = RouteLimits { global: Some(bucket(1, 3)), ..RouteLimits::default() };
    config.traffic.routes.insert(LimitedRoute::PlaceOrder, limits);
    let gateway = TestGateway::start(config).await;
    let sku = unique("bag");
    gateway.load_sale(&sku, 100, 100, 100).await;
    let keys: Vec<String> = (1..=5).map(|user| format!("k{user}")).collect();
    let answers = join_all(keys.iter().zip(1..).map(|(key, user)| gateway.place(user, &sku, 1, key))).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::ACCEPTED).count(), 3);
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 2);
}

#[tokio::test]
async fn admin_needs_the_token_and_ops_endpoints_answer() {
    let topic = fresh_topic(1).await;
    let gateway = TestGateway::start(gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()])).await;
    let sku = unique("tv");
    let body = r#"{"stock": 5, "per_user_limit": 1, "price_cents": 100}"#;
    for auth in [None, Some("Bearer wrong-token"), Some("test-admin-token")] {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("authorization", a), ("content-type", "application/json")]).unwrap_or_default();
        let answer = gateway.request(Method::PUT, &format!("/admin/skus/{sku}"), &headers, body).await;
        assert_eq!((answer.status, answer.json["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    }
    let bad = gateway
        .admin(Method::PUT, &format!("/admin/skus/{sku}"), r#"{"stock": -1, "per_user_limit": 1, "price_cents": 1}"#)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    gateway.load_sale(&sku, 5, 1, 100).await;
    let mut sale = gateway.sale(&sku).await;
    assert!(sale["loaded_ms"].as_i64().is_some_and(|at| at > 1_700_000_000_000), "{sale}");
    sale.as_object_mut().unwrap().remove("loaded_ms");
    assert_eq!(
        sale,
        serde_json::json!({
            "stock": 5, "reserved": 0, "sold": 0, "total": 5, "per_user_limit": 1, "price_cents": 100,
            "starts_at": null, "ends_at": null, "deduction": "on_order", "open": 0, "kind": "flash"
        })
    );
    let missing = gateway.admin(Method::GET, &format!("/admin/skus/{}", unique("none")), "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    assert_eq!(gateway.request(Method::GET, "/healthz", &[], "").await.status, StatusCode::OK);
    let ready = gateway.request(Method::GET, "/readyz", &[], "").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.json);
    gateway.place(1, &sku, 1, "m").await;
    let metrics = gateway.request(Method::GET, "/metrics", &[], "").await;
    let text = metrics.json.as_str().unwrap();
    for name in [
        "gateway_requests_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_reservations_total",
        "gateway_kafka_produce_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn order_lookups_refuse_bad_ids_and_miss_unknown_ones() {
    let topic = fresh_topic(1).await;
    let shards = fresh_shards(2).await;
    let gateway = TestGateway::start(gateway_config(&topic, &shards)).await;
    let bad = gateway.request(Method::GET, "/v1/orders/not-a-number", &[], "").await;
    assert_eq!((bad.status, bad.json["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    let unknown = gateway.request(Method::GET, "/v1/orders/123456789", &[], "").await;
    assert_eq!((unknown.status, unknown.json["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_order")));
    drop_shards(&shards).await;
}

#[tokio::test]
async fn shutdown_finishes_the_requests_in_flight() {
    let topic = fresh_topic(1).await;
    let mut config = gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()]);
    // The producer holds each event 300 ms: the shutdown lands while they wait.
    config.kafka.linger_ms = 300;
    let gateway = Arc::new(TestGateway::start(config).await);
    let sku = unique("drain");
    gateway.load_sale(&sku, 1_000, 1, 100).await;

    let requests: Vec<_> = (1..=300u64)
        .map(|user| {
            let (gateway, sku) = (gateway.clone(), sku.clone());
            tokio::spawn(async move { gateway.try_place(user, &sku, 1, &format!("k{user}")).await })
        })
        .collect();
    // Shut down once orders are reserved and waiting for the broker.
    eventually(Duration::from_secs(10), "reservations", || async {
        let sale = gateway.app.center.sales.sale_status(&sku).await.unwrap().unwrap();
        (sale.reserved > 0).then_some(())
    })
    .await;
    gateway.shutdown().await;

    let mut accepted = 0;
    for request in requests {
        // A request the gateway had not started on may fail (HTTP/1 has no
        // way to say "going away"); one it started is answered.
        if let Ok(answer) = request.await.unwrap() {
            assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
            accepted += 1;
        }
    }
    let sale = gateway.app.center.sales.sale_status(&sku).await.unwrap().unwrap();
    assert_eq!(sale.reserved, accepted, "every reservation was answered");
}

#[tokio::test]
async fn a_retry_after_the_sell_out_still_gets_its_order() {
    let topic = fresh_topic(1).await;
    let gateway = TestGateway::start(gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()])).await;
    let sku = unique("last_unit");
    gateway.load_sale(&sku, 1, 1, 100).await;
    let first = gateway.place(1, &sku, 1, "last").await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(gateway.place(2, &sku, 1, "other").await.json["error"], "sold_out", "the SKU is marked sold out");

    let retry = gateway.place(1, &sku, 1, "last").await;
    assert_eq!((retry.status, retry.header("idempotent-replayed")), (StatusCode::OK, Some("true")));
    assert_eq!(retry.json, first.json);
    assert_eq!(gateway.place(3, &sku, 1, "last").await.status, StatusCode::UNPROCESSABLE_ENTITY);
}
