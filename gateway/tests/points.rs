//! Member points (seed 002's third discount) against real Redis, broker and
//! MariaDB: granted once per grant id, spent by checkouts of one buyer
//! racing for one balance without ever overdrawing it, given back whole
//! when a checkout is cancelled, and in proportion when units are returned.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use gateway::config::LimitedRoute;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;

struct Stack {
    shards: Vec<String>,
    gateway: Arc<TestGateway>,
    settler: TestSettler,
    paysim: String,
}

impl Stack {
    async fn start() -> Self {
        let topic = fresh_topic(2).await;
        let shards = fresh_shards(2).await;
        let paysim = start_paysim().await;
        let mut config = gateway_config(&topic, &shards);
        payment_channel(&mut config, &paysim);
        // One buyer's checkouts race here: no per-buyer bucket in the way.
        config.traffic.routes.remove(&LimitedRoute::Checkout);
        config.warehouse.url = paysim.clone();
        let gateway = Arc::new(TestGateway::start(config).await);
        let settler = TestSettler::start(settler_config(&topic, &shards));
        Self { shards, gateway, settler, paysim }
    }

    async fn stop(self) {
        self.settler.stop().await;
        self.gateway.shutdown().await;
        drop_shards(&self.shards).await;
    }

    async fn grant(&self, user: u64, grant_id: &str, points: u64) -> Value {
        let body = json!({"grant_id": grant_id, "points": points}).to_string();
        let answer = self.gateway.admin(Method::POST, &format!("/admin/points/{user}"), body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        answer.json
    }

    async fn balance(&self, user: u64) -> u64 {
        let answer = self.buyer(Method::GET, "/v1/points", user, "").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        answer.json["balance"].as_u64().unwrap()
    }

    async fn buyer(&self, method: Method, path: &str, user: u64, body: impl Into<String>) -> Answer {
        let auth = format!("Bearer {}", buyer_token(user));
        let headers = [("content-type", "application/json"), ("authorization", auth.as_str())];
        self.gateway.request(method, path, &headers, body.into()).await
    }

    async fn checkout(&self, user: u64, key: &str, sku: &str, qty: u32, points: u64) -> Answer {
        let auth = format!("Bearer {}", buyer_token(user));
        let headers =
            [("content-type", "application/json"), ("idempotency-key", key), ("authorization", auth.as_str())];
        let body = json!({"lines": [{"sku": sku, "qty": qty}], "points": points});
        self.gateway.request(Method::POST, "/v1/checkout", &headers, body.to_string()).await
    }

    async fn stored_status(&self, order_id: &str, want: &str) {
        let shards = pools(&self.shards);
        let id: order::id::OrderId = order_id.parse().unwrap();
        eventually(Duration::from_secs(30), &format!("order {order_id} {want}"), || async {
            let stored = shards.get(id).await.unwrap()?;
            (stored.status.as_str() == want).then_some(())
        })
        .await;
        shards.close().await;
    }

    async fn eventually_balance(&self, user: u64, want: u64, what: &str) {
        eventually(Duration::from_secs(30), what, || async { (self.balance(user).await == want).then_some(()) }).await;
    }
}

fn item_ids(checkout: &Value) -> Vec<String> {
    checkout["sub_orders"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|sub| sub["items"].as_array().unwrap())
        .map(|item| item["order_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Ten checkouts of one buyer at once, each spending 300 of 1,000 points:
/// three get them, the others are refused with 409 and hold nothing; a
/// cancelled checkout's points come back once, and a repeated grant grants
/// nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checkouts_of_one_buyer_never_spend_more_points_than_the_balance() {
    let stack = Stack::start().await;
    let sku = unique("points");
    stack.gateway.load_sale(&sku, 100, 100, 1_000).await;
    let user = 71;
    assert_eq!(stack.grant(user, "welcome", 1_000).await["granted"], true);
    let again = stack.grant(user, "welcome", 1_000).await;
    assert_eq!((again["granted"].as_bool(), again["balance"].as_u64()), (Some(false), Some(1_000)));

    let keys: Vec<String> = (0..10).map(|n| format!("race-{n}")).collect();
    let answers = join_all(keys.iter().map(|key| stack.checkout(user, key, &sku, 1, 300))).await;
    let mut accepted = Vec::new();
    for answer in &answers {
        match answer.status {
            StatusCode::CREATED => {
                assert_eq!(
                    (answer.json["points"].as_u64(), answer.json["payable_cents"].as_i64()),
                    (Some(300), Some(700))
                );
                accepted.push(answer.json.clone());
            }
            StatusCode::CONFLICT => {
                assert_eq!(answer.json["error"], "insufficient_points", "{}", answer.json);
                assert!(answer.json["balance"].as_u64().unwrap() < 300, "{}", answer.json);
            }
            status => panic!("{status}: {}", answer.json),
        }
    }
    assert_eq!(accepted.len(), 3, "1,000 points pay for three spends of 300");
    assert_eq!(stack.balance(user).await, 100);
    let sale = stack.gateway.sale(&sku).await;
    assert_eq!(sale["reserved"].as_i64(), Some(3), "the refused checkouts hold nothing: {sale}");

    // The buyer cancels one: its points come back, once.
    let parent = accepted[0]["order_id"].as_str().unwrap().to_owned();
    let cancelled = stack.buyer(Method::POST, &format!("/v1/checkouts/{parent}/cancel"), user, "").await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.json);
    for item in item_ids(&accepted[0]) {
        stack.stored_status(&item, "CANCELLED").await;
    }
    stack.eventually_balance(user, 400, "the cancelled checkout's points back").await;
    let again = stack.buyer(Method::POST, &format!("/v1/checkouts/{parent}/cancel"), user, "").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.json);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.balance(user).await, 400, "given back once");
    stack.stop().await;
}

/// Three units bought with 1,000 points, returned one then two: the first
/// return gives back the points of one unit (333), the last what is left
/// (667), beside the money of each; the balance ends where it began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_return_gives_back_exactly_the_points_allocated_to_the_returned_units() {
    let stack = Stack::start().await;
    let sku = unique("points_return");
    stack.gateway.load_sale(&sku, 10, 10, 1_000).await;
    let user = 72;
    stack.grant(user, "spring", 1_500).await;
    let placed = stack.checkout(user, "three-units", &sku, 3, 1_000).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.json);
    assert_eq!((placed.json["points"].as_u64(), placed.json["payable_cents"].as_i64()), (Some(1_000), Some(2_000)));
    assert_eq!(stack.balance(user).await, 500);
    let item = item_ids(&placed.json).pop().unwrap();

    let parent = placed.json["order_id"].as_str().unwrap();
    let started = stack.buyer(Method::POST, &format!("/v1/checkouts/{parent}/pay"), user, "").await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.json);
    let payment_id = started.json["payment_id"].as_str().unwrap();
    let (status, body) =
        paysim(&stack.paysim, Method::POST, &format!("/v1/payments/{payment_id}/complete"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    stack.stored_status(&item, "PAID").await;
    for (action, body) in [("push", json!({})), ("ship", json!({"carrier": "sf", "tracking_no": "SF1"}))] {
        let answer =
            stack.gateway.admin(Method::POST, &format!("/admin/orders/{item}/{action}"), body.to_string()).await;
        assert_eq!(answer.status, StatusCode::OK, "{action}: {}", answer.json);
    }
    stack.stored_status(&item, "SHIPPED").await;

    let mut balances = Vec::new();
    for qty in [1, 2] {
        let body = json!({"kind": "RETURN_REFUND", "qty": qty, "reason": "too many"}).to_string();
        let opened = stack.buyer(Method::POST, &format!("/v1/orders/{item}/after-sales"), user, body).await;
        assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.json);
        let request = opened.json["after_sale_id"].as_str().unwrap().to_owned();
        for (action, body) in [("approve", json!({"return_address": "Dock 4"})), ("receive", json!({}))] {
            let path = format!("/admin/after-sales/{request}/{action}");
            let answer = stack.gateway.admin(Method::POST, &path, body.to_string()).await;
            assert_eq!(answer.status, StatusCode::OK, "{action}: {}", answer.json);
        }
        balances.push(stack.balance(user).await);
    }
    assert_eq!(balances, [500 + 333, 1_500], "a third of the points, then the rest");
    let shards = pools(&stack.shards);
    let id: order::id::OrderId = item.parse().unwrap();
    let refunds: Vec<(i64,)> =
        sqlx::query_as("SELECT amount_cents FROM refunds WHERE order_id = ? ORDER BY amount_cents")
            .bind(id.raw() as i64)
            .fetch_all(shards.for_order(id))
            .await
            .unwrap();
    assert_eq!(refunds, [(666,), (1_334,)], "the money of each return beside its points");
    shards.close().await;
    stack.stop().await;
}
