//! Reading orders, against real Redis, broker and MariaDB (and a real
//! replicated pair from `scripts/replica.sh`): an order is readable from
//! its 202 on, before the settler stored it; a buyer pages through their
//! own orders; the merchant's search merges the shards and marks a shard
//! that does not answer in time; lists read a replica that keeps up and
//! the primary when it lags or is down.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use hyper::{Method, StatusCode};
use order::id::OrderId;
use serde_json::json;
use sqlx::Connection;
use support::*;

async fn get(gateway: &TestGateway, path: &str, user: u64) -> Answer {
    let auth = format!("Bearer {}", buyer_token(user));
    gateway.request(Method::GET, path, &[("authorization", auth.as_str())], "").await
}

/// The ids of a list answer, in order.
fn ids(answer: &Answer) -> Vec<String> {
    answer.json["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()).collect()
}

/// Every page of a list, walked by cursor from `first` (a path with its query).
async fn walk(first: &str, mut page: impl AsyncFnMut(&str) -> Answer) -> Vec<String> {
    let mut listed = Vec::new();
    let mut path = first.to_owned();
    loop {
        let answer = page(&path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.json);
        listed.extend(ids(&answer));
        match answer.json["next_cursor"].as_str() {
            Some(cursor) => path = format!("{first}&cursor={cursor}"),
            None => return listed,
        }
    }
}

/// Placed with no settler running, the order is read from its 202 on. A
/// cancellation, which reaches MySQL only through Kafka, is read at once,
/// also when the order's view is no longer cached and the shard still says
/// pending; once the settler applied it, the read and the shard agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_readable_from_its_202_and_its_cancellation_at_once() {
    let topic = fresh_topic(1).await;
    let shards = fresh_shards(2).await;
    let gateway = TestGateway::start(gateway_config(&topic, &shards)).await;
    let sku = unique("read");
    gateway.load_sale(&sku, 10, 5, 1_250).await;

    // No settler yet: the order is only in Redis and on the topic.
    let placed = gateway.place(7, &sku, 2, &unique("k")).await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{}", placed.json);
    let order_id = placed.json["order_id"].as_str().unwrap();
    let path = format!("/v1/orders/{order_id}");
    let read = get(&gateway, &path, 7).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.json);
    assert_eq!(read.json["status"], "PENDING_PAYMENT");
    assert_eq!(read.json["qty"], 2);
    assert_eq!(read.json["amount_cents"], 2_500);
    assert_eq!(read.json["pay_by"], placed.json["pay_by"]);
    let id: OrderId = order_id.parse().unwrap();
    assert!(gateway.app.center.view_from_shard(id).await.unwrap().is_none(), "not stored yet");
    let theirs = get(&gateway, &path, 8).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "another buyer's order is unknown to them");

    // Stored, then the settler stops and the cached view goes (as at its TTL).
    let settler = TestSettler::start(settler_config(&topic, &shards));
    let stored = eventually(Duration::from_secs(20), "the order stored", || async {
        gateway.app.center.view_from_shard(id).await.unwrap()
    })
    .await;
    settler.stop().await;
    gateway.app.center.order_cache.forget_orders(&[id]).await.unwrap();
    assert_eq!(get(&gateway, &path, 7).await.json, stored, "read from the shard");

    let body = json!({"sku": sku, "user_id": 7}).to_string();
    let cancel =
        gateway.request(Method::POST, &format!("{path}/cancel"), &[("content-type", "application/json")], body).await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.json);
    let read = get(&gateway, &path, 7).await;
    assert_eq!(read.json["status"], "CANCELLED", "the cancellation, read at once");
    let shard = gateway.app.center.view_from_shard(id).await.unwrap().unwrap();
    assert_eq!(shard["status"], "PENDING_PAYMENT", "MySQL has not heard of it yet");

    // Once the settler applied it, the read and the shard agree.
    let settler = TestSettler::start(settler_config(&topic, &shards));
    let stored = eventually(Duration::from_secs(20), "the cancellation stored", || async {
        gateway.app.center.view_from_shard(id).await.unwrap().filter(|view| view["status"] == "CANCELLED")
    })
    .await;
    let read = eventually(Duration::from_secs(10), "the read to show the stored order", || async {
        let read = get(&gateway, &path, 7).await;
        (read.json == stored).then_some(read)
    })
    .await;
    assert_eq!(read.json["history"][0]["to"], "CANCELLED", "{}", read.json);
    settler.stop().await;
    drop_shards(&shards).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_pages_through_their_own_orders_newest_first() {
    let topic = fresh_topic(2).await;
    let shards = fresh_shards(2).await;
    let gateway = TestGateway::start(gateway_config(&topic, &shards)).await;
    let settler = TestSettler::start(settler_config(&topic, &shards));
    let sku = unique("mine");
    gateway.load_sale(&sku, 100, 100, 100).await;
    let (buyer, other) = (21, 22);
    let mut placed = Vec::new();
    for _ in 0..7 {
        let answer = gateway.place(buyer, &sku, 1, &unique("k")).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
        placed.push(answer.json["order_id"].as_str().unwrap().to_owned());
    }
    for _ in 0..3 {
        assert_eq!(gateway.place(other, &sku, 1, &unique("k")).await.status, StatusCode::ACCEPTED);
    }
    let body = json!({"sku": sku, "user_id": buyer}).to_string();
    for order_id in &placed[..2] {
        let path = format!("/v1/orders/{order_id}/cancel");
        let answer = gateway.request(Method::POST, &path, &[("content-type", "application/json")], body.clone()).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
    eventually(Duration::from_secs(20), "the orders stored and the cancellations applied", || async {
        let statuses = order_statuses(&shards, &sku).await;
        (statuses.len() == 10 && statuses.values().filter(|s| *s == "CANCELLED").count() == 2).then_some(())
    })
    .await;

    let listed = walk("/v1/orders?limit=3", async |path| get(&gateway, path, buyer).await).await;
    let mut newest_first = placed.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first, "each of the buyer's orders once, newest first, none of another's");
    let cancelled = walk("/v1/orders?status=CANCELLED&limit=1", async |path| get(&gateway, path, buyer).await).await;
    assert_eq!(cancelled, [placed[1].clone(), placed[0].clone()]);

    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=abc",
        "status=LOST",
        "user_id=22",
        "sku=tv",
        "status=PAID&status=CANCELLED",
    ] {
        let answer = get(&gateway, &format!("/v1/orders?{bad}"), buyer).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {}", answer.json);
        assert_eq!(answer.json["error"], "invalid_request", "{bad}");
    }
    let anonymous = gateway.request(Method::GET, "/v1/orders", &[("authorization", "Bearer nope")], "").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    settler.stop().await;
    drop_shards(&shards).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_merchant_search_merges_the_shards_and_marks_a_slow_one_partial() {
    let topic = fresh_topic(2).await;
    let shards = fresh_shards(3).await;
    let mut config = gateway_config(&topic, &shards);
    config.queries.shard_timeout_ms = 500;
    let gateway = TestGateway::start(config).await;
    let settler = TestSettler::start(settler_config(&topic, &shards));
    let sku = unique("search");
    gateway.load_sale(&sku, 100, 100, 300).await;
    for user in 1..=24 {
        let answer = gateway.place(user, &sku, 1 + (user % 3) as u32, &unique("k")).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
    }
    let stored = eventually(Duration::from_secs(20), "the orders stored", || async {
        let stored = stored_orders(&shards, &sku).await;
        (stored.iter().map(Vec::len).sum::<usize>() == 24).then_some(stored)
    })
    .await;
    let search = |query: String| {
        let gateway = &gateway;
        async move { gateway.admin(Method::GET, &format!("/admin/orders?{query}"), "").await }
    };

    // Brute force: every stored order of the SKU with two or three units, newest first.
    let shard_pools = pools(&shards);
    let mut expected: Vec<(u64, String)> = Vec::new();
    for per_shard in &stored {
        for (order_id, _) in per_shard {
            let order = shard_pools.get(OrderId::from_raw(*order_id as u64)).await.unwrap().unwrap();
            if order.qty >= 2 {
                expected.push((*order_id as u64, order_id.to_string()));
            }
        }
    }
    expected.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    let first = format!("sku={sku}&min_amount_cents=600&limit=4");
    let merged = walk(&format!("/admin/orders?{first}"), async |path| {
        let answer = gateway.admin(Method::GET, path, "").await;
        assert_eq!(answer.json["partial"], false, "{}", answer.json);
        answer
    })
    .await;
    assert_eq!(merged, expected);

    // A shard whose table is locked does not answer: the others do, and say so.
    let mut locker = sqlx::MySqlConnection::connect(&shards[1]).await.unwrap();
    sqlx::query("LOCK TABLES orders WRITE").execute(&mut locker).await.unwrap();
    let answer = search(format!("sku={sku}&limit=100")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["partial"], true);
    assert_eq!(answer.json["missing_shards"], json!([1]));
    let on_shard_1: BTreeSet<String> = stored[1].iter().map(|(id, _)| id.to_string()).collect();
    let answered: BTreeSet<String> = ids(&answer).into_iter().collect();
    assert_eq!(answered.len(), 24 - on_shard_1.len());
    assert!(answered.is_disjoint(&on_shard_1));
    sqlx::query("UNLOCK TABLES").execute(&mut locker).await.unwrap();
    let answer = search(format!("sku={sku}&limit=100")).await;
    assert_eq!((answer.json["partial"].clone(), ids(&answer).len()), (json!(false), 24));

    let bad_searches = [
        "limit=0",
        "from=yesterday",
        "from=0000-01-01T00:00:00%2B01:00",
        "to=9999-12-31T23:59:59-01:00",
        "min_amount_cents=1.5",
        "status=nope",
        "sku=a%20b",
        "colour=red",
        "limit=5&limit=6",
    ];
    for bad in bad_searches {
        let answer = search(bad.to_owned()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {}", answer.json);
    }
    let anonymous = gateway.request(Method::GET, "/admin/orders", &[], "").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    shard_pools.close().await;
    settler.stop().await;
    drop_shards(&shards).await;
}

/// The ids of the buyer's first page.
async fn listed(gateway: &TestGateway, buyer: u64) -> Vec<String> {
    let answer = get(gateway, "/v1/orders", buyer).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    ids(&answer)
}

/// The replicated pair `scripts/replica.sh` starts.
fn replication() -> (String, String) {
    let primary = std::env::var("MYSQL_REPLICATION_PRIMARY")
        .unwrap_or_else(|_| "mysql://flashsale:flashsale@127.0.0.1:3307".into());
    let replica =
        std::env::var("MYSQL_REPLICA").unwrap_or_else(|_| "mysql://flashsale:flashsale@127.0.0.1:3308".into());
    (primary, replica)
}

async fn replica_sql(replica: &str, statement: &str) {
    let mut connection = sqlx::MySqlConnection::connect(replica)
        .await
        .unwrap_or_else(|err| panic!("the replica of scripts/replica.sh at {replica}: {err}"));
    sqlx::query(statement).execute(&mut connection).await.unwrap();
}

fn order_of(minter: &order::id::IdGenerator, user_id: u64, sku: &str) -> order::event::OrderCreated {
    let now = chrono::Utc::now();
    order::event::OrderCreated {
        order_id: minter.next(order::shard::bucket_for_user(user_id), now.timestamp_millis()),
        user_id,
        sku: sku.into(),
        qty: 1,
        amount_cents: 100,
        idempotency_key: unique("k"),
        created_at: now,
        pay_by: now,
        sale_generation: 0,
        warehouse: None,
        channel: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_read_a_replica_that_keeps_up_and_the_primary_when_it_lags_or_is_down() {
    let (primary, replica) = replication();
    let name = unique("t");
    let on_primary = vec![format!("{primary}/{name}_0")];
    let on_replica = vec![format!("{replica}/{name}_0")];
    orderdb::shards::create_databases(&on_primary).await.expect("the primary of scripts/replica.sh");
    let primary_pools = pools(&on_primary);
    primary_pools.migrate().await.unwrap();
    let topic = fresh_topic(1).await;
    let mut config = gateway_config(&topic, &on_primary);
    config.mysql.replicas = on_replica.clone();
    config.queries.replica_check_ms = 100;
    let gateway = TestGateway::start(config).await;

    let minter = order::id::IdGenerator::new(9).unwrap();
    let sku = unique("replicated");
    let buyer = 5;
    let first = order_of(&minter, buyer, &sku);
    primary_pools.insert_new(&[&first]).await.unwrap();
    // An order only the replica has: a list that shows it was read there.
    let planted = order_of(&minter, buyer, &sku);
    let replica_pools = pools(&on_replica);
    eventually(Duration::from_secs(20), "the schema and the first order replicated", || async {
        replica_pools.get(first.order_id).await.ok().flatten()
    })
    .await;
    replica_pools.insert_new(&[&planted]).await.unwrap();
    let (first_id, planted_id) = (first.order_id.to_string(), planted.order_id.to_string());
    eventually(Duration::from_secs(10), "a list served by the replica", || async {
        (listed(&gateway, buyer).await == [planted_id.clone(), first_id.clone()]).then_some(())
    })
    .await;
    // A read of one order never goes to a replica.
    let read = get(&gateway, &format!("/v1/orders/{planted_id}"), buyer).await;
    assert_eq!(read.status, StatusCode::NOT_FOUND);

    // Replication stopped (the replica falls behind with no bound): the primary answers,
    // with an order the replica has not seen.
    replica_sql(&replica, "STOP SLAVE SQL_THREAD").await;
    let second = order_of(&minter, buyer, &sku);
    primary_pools.insert_new(&[&second]).await.unwrap();
    let second_id = second.order_id.to_string();
    eventually(Duration::from_secs(10), "a list served by the primary", || async {
        (listed(&gateway, buyer).await == [second_id.clone(), first_id.clone()]).then_some(())
    })
    .await;
    replica_sql(&replica, "START SLAVE SQL_THREAD").await;
    eventually(Duration::from_secs(10), "the replica caught up and read again", || async {
        (listed(&gateway, buyer).await == [second_id.clone(), planted_id.clone(), first_id.clone()]).then_some(())
    })
    .await;
    gateway.shutdown().await;

    // A replica that is down: the primary answers from the first request on.
    let mut config = gateway_config(&topic, &on_primary);
    config.mysql.replicas = vec![format!("mysql://flashsale:flashsale@127.0.0.1:1/{name}_0")];
    config.queries.replica_check_ms = 100;
    let without_replica = TestGateway::start(config).await;
    assert_eq!(listed(&without_replica, buyer).await, [second_id.clone(), first_id.clone()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(listed(&without_replica, buyer).await, [second_id, first_id]);
    without_replica.shutdown().await;

    replica_pools.close().await;
    primary_pools.close().await;
    // Dropped on the primary, the drop replicates (the planted row goes with it).
    drop_shards(&on_primary).await;
}

/// With Redis down, a read goes to the shard; with the shard gone, a cached
/// order is still read, and one that is not is a 503 naming MySQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_on_with_the_cache_or_the_shard_down() {
    let shards = fresh_shards(1).await;
    let minter = order::id::IdGenerator::new(8).unwrap();
    let (cached, uncached) = (order_of(&minter, 3, "down"), order_of(&minter, 3, "down"));
    let shard_pools = pools(&shards);
    shard_pools.insert_new(&[&cached, &uncached]).await.unwrap();
    shard_pools.close().await;

    let topic = unique("unused");
    let mut config = gateway_config(&topic, &shards);
    config.redis.url = "redis://127.0.0.1:1".into();
    config.redis.command_timeout_ms = 200;
    let without_redis = TestGateway::start(config).await;
    let read = get(&without_redis, &format!("/v1/orders/{}", cached.order_id), 3).await;
    assert_eq!((read.status, read.json["status"].as_str()), (StatusCode::OK, Some("PENDING_PAYMENT")), "{}", read.json);
    without_redis.shutdown().await;

    // The cache holds one order's view; then the shard goes away.
    let gateway = TestGateway::start(gateway_config(&topic, &shards)).await;
    let read = get(&gateway, &format!("/v1/orders/{}", cached.order_id), 3).await;
    assert_eq!(read.status, StatusCode::OK);
    gateway.shutdown().await;
    drop_shards(&shards).await;
    let gateway = TestGateway::start(gateway_config(&topic, &shards)).await;
    let again = get(&gateway, &format!("/v1/orders/{}", cached.order_id), 3).await;
    assert_eq!((again.status, &again.json), (StatusCode::OK, &read.json), "read from the cache");
    let missing = get(&gateway, &format!("/v1/orders/{}", uncached.order_id), 3).await;
    assert_eq!(missing.status, StatusCode::SERVICE_UNAVAILABLE, "{}", missing.json);
    assert_eq!(missing.json["dependency"], "mysql");
    gateway.shutdown().await;
}
