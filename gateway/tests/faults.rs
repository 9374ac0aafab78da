//! Faults nobody names in a happy-path test, against real services: a
//! broker that stalls past the message timeout and then delivers late, an
//! idempotency key reused after its record expired, a poison event, and a
//! retry that lands on another gateway after the sell-out. Each ends with
//! the same promises: no oversell, no accepted order lost, no unit stuck,
//! no halted pipeline.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use futures::future::join_all;
use hyper::StatusCode;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use support::*;

/// The sale's counters in Redis: (stock, reserved, sold, total).
async fn counters(gateway: &TestGateway, sku: &str) -> (i64, i64, i64, i64) {
    let sale = gateway.sale(sku).await;
    let field = |name: &str| sale[name].as_i64().unwrap();
    (field("stock"), field("reserved"), field("sold"), field("total"))
}

/// Waits until Redis and MySQL agree on the sale: the units add up, every
/// order MySQL holds live is held in Redis (reserved + sold) and nothing
/// else is; returns the stored statuses.
async fn settled(gateway: &TestGateway, shards: &[String], sku: &str) -> HashMap<i64, String> {
    eventually(Duration::from_secs(60), "Redis and MySQL to agree on the sale", || async {
        let (stock, reserved, sold, total) = counters(gateway, sku).await;
        assert_eq!(stock + reserved + sold, total, "units created or lost");
        let statuses = order_statuses(shards, sku).await;
        let live = statuses.values().filter(|status| *status != "CANCELLED").count() as i64;
        (live == reserved + sold).then_some(statuses)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_stalled_past_the_message_timeout_neither_oversells_nor_stays_broken() {
    let _ = tracing_subscriber::fmt().with_env_filter("info,rdkafka=info").try_init();
    let broker = TestBroker::start().await;
    let topic = unique("stall");
    settler::setup::ensure_topics(
        &broker.bootstrap,
        &[settler::setup::TopicSpec::new(&topic, 2), settler::setup::TopicSpec::new(format!("{topic}.dlq"), 1)],
    )
    .await
    .unwrap();
    let shards = fresh_shards(2).await;
    let mut config = gateway_config(&topic, &shards);
    config.kafka.bootstrap = broker.bootstrap.clone();
    config.kafka.message_timeout_ms = 1_500;
    config.orders.confirm_window_secs = 5;
    let gateway = Arc::new(TestGateway::start(config).await);
    let mut settler_config = settler_config(&topic, &shards);
    settler_config.kafka.bootstrap = broker.bootstrap.clone();
    let settler = TestSettler::start(settler_config.clone());
    let (stop_sweeping, sweeping) = tokio::sync::oneshot::channel::<()>();
    let sweeper = tokio::spawn(sweeper(&settler_config, Duration::from_millis(100), 100).run(async {
        let _ = sweeping.await;
    }));

    let sku = unique("stall");
    gateway.load_sale(&sku, 40, 1, 100).await;
    let mut accepted = HashMap::new();
    for user in 1..=5u64 {
        let answer = gateway.place(user, &sku, 1, &format!("k{user}")).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
        accepted.insert(user, answer.json["order_id"].as_str().unwrap().to_owned());
    }

    // Orders sent into a stalled broker: their outcome is unknown.
    broker.stall().await;
    let during: Vec<_> = (6..=15u64)
        .map(|user| {
            let gateway = gateway.clone();
            let sku = sku.clone();
            tokio::spawn(async move { (user, gateway.place(user, &sku, 1, &format!("k{user}")).await) })
        })
        .collect();
    let during = join_all(during).await;
    broker.resume().await;
    let mut unknown = Vec::new();
    for answer in during {
        let (user, answer) = answer.unwrap();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.json);
        assert!(answer.header("retry-after").is_some());
        if answer.json["error"] == "outcome_unknown" {
            unknown.push(user);
        }
    }
    assert!(!unknown.is_empty(), "a stall past the message timeout leaves outcomes unknown");

    // The gateway heals without a restart: new orders are accepted again.
    let healed = eventually(Duration::from_secs(30), "an order accepted after the stall", || {
        let gateway = gateway.clone();
        let sku = sku.clone();
        async move {
            let user = 100 + rand::random::<u32>() as u64 % 1_000_000;
            let answer = gateway.place(user, &sku, 1, &format!("after-{user}")).await;
            (answer.status == StatusCode::ACCEPTED)
                .then(|| (user, answer.json["order_id"].as_str().unwrap().to_owned()))
        }
    })
    .await;
    accepted.insert(healed.0, healed.1);

    // Half of the buyers left in doubt retry with their key: they get their
    // order (the same one, or a fresh one if it was already cancelled).
    let (retried, abandoned) = unknown.split_at(unknown.len() / 2);
    for user in retried {
        let order_id = eventually(Duration::from_secs(30), "a retry answered", || {
            let gateway = gateway.clone();
            let sku = sku.clone();
            async move {
                let answer = gateway.place(*user, &sku, 1, &format!("k{user}")).await;
                matches!(answer.status, StatusCode::OK | StatusCode::ACCEPTED)
                    .then(|| answer.json["order_id"].as_str().unwrap().to_owned())
            }
        })
        .await;
        accepted.insert(*user, order_id);
    }

    // Past the confirm deadline the abandoned ones are cancelled, whether
    // or not their creation reached MySQL; every answered order is live.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let statuses = settled(&gateway, &shards, &sku).await;
    for (user, order_id) in &accepted {
        let status = statuses.get(&order_id.parse::<i64>().unwrap());
        assert_eq!(status.map(String::as_str), Some("PENDING_PAYMENT"), "accepted order of user {user}");
    }
    let (_, reserved, sold, _) = counters(&gateway, &sku).await;
    assert_eq!(reserved + sold, accepted.len() as i64, "exactly the answered orders hold units");
    eprintln!("{} outcomes unknown, {} retried, {} abandoned", unknown.len(), retried.len(), abandoned.len());

    let _ = stop_sweeping.send(());
    sweeper.await.unwrap();
    settler.stop().await;
    gateway.shutdown().await;
    drop_shards(&shards).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_reused_after_its_record_expired_is_a_new_order_and_a_poison_event_never_halts_the_settler() {
    let topic = fresh_topic(1).await;
    settler::setup::ensure_topics(&kafka_bootstrap(), &[settler::setup::TopicSpec::new(format!("{topic}.dlq"), 1)])
        .await
        .unwrap();
    let shards = fresh_shards(2).await;
    let gateway = TestGateway::start(gateway_config(&topic, &shards)).await;
    let settler = TestSettler::start(settler_config(&topic, &shards));
    let sku = unique("reuse");
    gateway.load_sale(&sku, 10, 5, 100).await;

    let first = gateway.place(7, &sku, 1, "user7-daily").await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.json);
    // The record's TTL passes (a storefront deriving keys from user + SKU
    // sends the same key the next day).
    let redis = Builder::from_config(Config::from_url(&redis_url()).unwrap()).build().unwrap();
    redis.init().await.unwrap();
    let deleted: i64 = redis.del(format!("{}idem:{{{sku}}}:user7-daily", namespace(&topic))).await.unwrap();
    assert_eq!(deleted, 1);
    let second = gateway.place(7, &sku, 1, "user7-daily").await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.json);
    assert_ne!(first.json["order_id"], second.json["order_id"]);

    // A poison event: an order no shard accepts (its SKU is too long for the column).
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", kafka_bootstrap()).create().unwrap();
    let now = chrono::Utc::now();
    let poison = order::event::OrderEvent::OrderCreated(order::event::OrderCreated {
        order_id: order::id::IdGenerator::new(9)
            .unwrap()
            .next(order::shard::bucket_for_user(8), now.timestamp_millis()),
        user_id: 8,
        sku: "x".repeat(200),
        qty: 1,
        amount_cents: 100,
        idempotency_key: "poison".into(),
        created_at: now,
        pay_by: now,
        sale_generation: 0,
        warehouse: None,
        channel: None,
    });
    let payload = poison.encode();
    let record = FutureRecord::to(&topic).key("8").payload(&payload);
    producer.send(record, Timeout::After(Duration::from_secs(10))).await.unwrap();

    let after = gateway.place(9, &sku, 1, "after-poison").await;
    assert_eq!(after.status, StatusCode::ACCEPTED, "{}", after.json);
    let statuses = settled(&gateway, &shards, &sku).await;
    for answer in [&first, &second, &after] {
        let order_id: i64 = answer.json["order_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(statuses.get(&order_id).map(String::as_str), Some("PENDING_PAYMENT"), "order {order_id}");
    }
    assert_eq!(counters(&gateway, &sku).await, (7, 3, 0, 10));

    settler.stop().await;
    gateway.shutdown().await;
    drop_shards(&shards).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_reaching_another_gateway_after_the_sell_out_gets_its_order() {
    let topic = fresh_topic(1).await;
    let shards = fresh_shards(1).await;
    let mut second_config = gateway_config(&topic, &shards);
    second_config.server.node_id = 1;
    let (a, b) = (TestGateway::start(gateway_config(&topic, &shards)).await, TestGateway::start(second_config).await);
    let sku = unique("last_unit");
    a.load_sale(&sku, 1, 1, 100).await;

    let bought = a.place(1, &sku, 1, "click-1").await;
    assert_eq!(bought.status, StatusCode::ACCEPTED, "{}", bought.json);
    let late = b.place(2, &sku, 1, "click-2").await;
    assert_eq!(late.json["error"], "sold_out", "B now knows the SKU is sold out");
    let retry = b.place(1, &sku, 1, "click-1").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.json);
    assert_eq!(retry.json["order_id"], bought.json["order_id"]);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    // Somebody else sending that key is not shown the order.
    let stranger = b.place(3, &sku, 1, "click-1").await;
    assert_eq!(
        (stranger.status, stranger.json["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused"))
    );
    assert!(stranger.json.get("order_id").is_none());

    a.shutdown().await;
    b.shutdown().await;
    drop_shards(&shards).await;
}

/// B answers a sold-out SKU's clicks from the SKU's used keys in memory.
/// The unit coming back through A (a cancellation) and being sold again
/// there must drop B's snapshot, or the new order's retry on B would be
/// told "sold out".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_unit_sold_again_through_another_gateway_is_found_by_its_retry() {
    let topic = fresh_topic(1).await;
    let shards = fresh_shards(1).await;
    let mut second_config = gateway_config(&topic, &shards);
    second_config.server.node_id = 1;
    // B keeps its sold-out mark: only the snapshot's drop lets the retry through.
    second_config.orders.sold_out_recheck_ms = 600_000;
    let (a, b) = (TestGateway::start(gateway_config(&topic, &shards)).await, TestGateway::start(second_config).await);
    let sku = unique("resold");
    a.load_sale(&sku, 1, 1, 100).await;

    let first = a.place(1, &sku, 1, "click-1").await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.json);
    answered_from_memory(&b, &sku, 3, "late-3").await;
    assert_eq!(b.app.center.used_keys.contains(&sku, "click-1"), Some(true));

    let order_id = first.json["order_id"].as_str().unwrap();
    let body = serde_json::json!({"user_id": 1, "sku": sku}).to_string();
    let cancel = format!("/v1/orders/{order_id}/cancel");
    let cancelled = a.request(hyper::Method::POST, &cancel, &[("content-type", "application/json")], body).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.json);
    let resold = a.place(4, &sku, 1, "click-4").await;
    assert_eq!(resold.status, StatusCode::ACCEPTED, "{}", resold.json);

    let retry = b.place(4, &sku, 1, "click-4").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.json);
    assert_eq!(retry.json["order_id"], resold.json["order_id"]);

    // An operator restocking the live sale through A drops B's snapshot too.
    answered_from_memory(&b, &sku, 5, "late-5").await;
    let restocked = a.admin(hyper::Method::PATCH, &format!("/admin/skus/{sku}"), r#"{"add_units": 1}"#).await;
    assert_eq!(restocked.status, StatusCode::OK, "{}", restocked.json);
    let restock_order = a.place(6, &sku, 1, "click-6").await;
    assert_eq!(restock_order.status, StatusCode::ACCEPTED, "{}", restock_order.json);
    let retry = b.place(6, &sku, 1, "click-6").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.json);
    assert_eq!(retry.json["order_id"], restock_order.json["order_id"]);

    a.shutdown().await;
    b.shutdown().await;
    drop_shards(&shards).await;
}

/// Sends sold-out clicks of `user` with `key` to `gateway` until it answers
/// them from its snapshot of the SKU's used keys.
async fn answered_from_memory(gateway: &TestGateway, sku: &str, user: u64, key: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gateway.app.center.used_keys.contains(sku, key) != Some(false) {
        assert!(std::time::Instant::now() < deadline, "the gateway never read the SKU's used keys");
        assert_eq!(gateway.place(user, sku, 1, key).await.json["error"], "sold_out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_changing_a_live_sale_never_touches_its_orders() {
    let topic = fresh_topic(1).await;
    let shards = fresh_shards(1).await;
    let gateway = TestGateway::start(gateway_config(&topic, &shards)).await;
    let settler = TestSettler::start(settler_config(&topic, &shards));
    let sku = unique("live");
    gateway.load_sale(&sku, 5, 1, 100).await;
    let mut orders = Vec::new();
    for user in 1..=3u64 {
        let answer = gateway.place(user, &sku, 1, &format!("k{user}")).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
        orders.push((user, answer.json["order_id"].as_str().unwrap().to_owned()));
    }
    let path = format!("/admin/skus/{sku}");
    let patch = |body: serde_json::Value| gateway.admin(hyper::Method::PATCH, &path, body.to_string());

    // Replacing a sale with pending orders would wipe them: refused.
    let replace = serde_json::json!({"stock": 100, "per_user_limit": 1, "price_cents": 100}).to_string();
    let refused = gateway.admin(hyper::Method::PUT, &format!("/admin/skus/{sku}"), replace.clone()).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.json);
    assert_eq!((refused.json["error"].as_str(), refused.json["reservations"].as_u64()), (Some("sale_busy"), Some(3)));
    assert_eq!(counters(&gateway, &sku).await, (2, 3, 0, 5));

    // Restock, raise the limit, change the price: the orders keep theirs.
    let changed = patch(serde_json::json!({"add_units": 10, "per_user_limit": 2, "price_cents": 250})).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.json);
    assert_eq!(counters(&gateway, &sku).await, (12, 3, 0, 15));
    let second = gateway.place(1, &sku, 1, "k1-again").await;
    assert_eq!((second.status, second.json["amount_cents"].as_i64()), (StatusCode::ACCEPTED, Some(250)));
    orders.push((1, second.json["order_id"].as_str().unwrap().to_owned()));

    // A restock retried after a lost answer is applied once.
    let once = serde_json::json!({"add_units": 5, "if_total": 15});
    assert_eq!(patch(once.clone()).await.status, StatusCode::OK);
    let retried = patch(once).await;
    assert_eq!((retried.status, retried.json["error"].as_str()), (StatusCode::CONFLICT, Some("sale_changed")));
    assert_eq!(counters(&gateway, &sku).await, (16, 4, 0, 20));
    assert_eq!(patch(serde_json::json!({"add_units": -5})).await.status, StatusCode::OK);

    // Units that are reserved or sold cannot be taken away.
    let too_many = patch(serde_json::json!({"add_units": -12})).await;
    assert_eq!((too_many.status, too_many.json["stock"].as_i64()), (StatusCode::CONFLICT, Some(11)));
    let withdrawn = patch(serde_json::json!({"add_units": -11})).await;
    assert_eq!(withdrawn.status, StatusCode::OK, "{}", withdrawn.json);
    assert_eq!(gateway.place(9, &sku, 1, "k9").await.json["error"], "sold_out");
    assert_eq!(patch(serde_json::json!({"add_units": -1})).await.status, StatusCode::CONFLICT);
    assert_eq!(patch(serde_json::json!({"stock": 3})).await.status, StatusCode::BAD_REQUEST, "unknown fields refused");

    // Every order is still there to pay or cancel; once none is
    // outstanding the sale may be replaced.
    let statuses = settled(&gateway, &shards, &sku).await;
    assert_eq!(statuses.len(), 4);
    for (user, order_id) in &orders {
        let body = serde_json::json!({"user_id": user, "sku": sku}).to_string();
        let cancelled = gateway
            .request(
                hyper::Method::POST,
                &format!("/v1/orders/{order_id}/cancel"),
                &[("content-type", "application/json")],
                body,
            )
            .await;
        assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.json);
    }
    assert_eq!(counters(&gateway, &sku).await, (4, 0, 0, 4));
    let replaced = gateway.admin(hyper::Method::PUT, &format!("/admin/skus/{sku}"), replace).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.json);

    settler.stop().await;
    gateway.shutdown().await;
    drop_shards(&shards).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_never_mint_ids_with_one_node_id() {
    let topic = fresh_topic(1).await;
    let shards = fresh_shards(1).await;
    let first = TestGateway::start(gateway_config(&topic, &shards)).await;
    let second = TestGateway::start(gateway_config(&topic, &shards)).await;
    let sku = unique("nodes");
    first.load_sale(&sku, 10, 5, 100).await;
    assert!(first.app.center.node.held() && !second.app.center.node.held(), "one lease per node id");
    assert_eq!(first.place(1, &sku, 1, "a").await.status, StatusCode::ACCEPTED);
    let refused = second.place(2, &sku, 1, "b").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.json);

    // The first one stops and gives its lease up: the second takes over.
    first.shutdown().await;
    let taken_over = eventually(Duration::from_secs(10), "the second gateway taking orders", || async {
        let answer = second.place(2, &sku, 1, "b").await;
        (answer.status == StatusCode::ACCEPTED).then_some(answer)
    })
    .await;
    assert_eq!(taken_over.json["qty"], 1);
    assert_eq!(counters(&second, &sku).await, (8, 2, 0, 10), "the refused attempt took nothing");
    second.shutdown().await;
    drop_shards(&shards).await;
}
