//! The money-and-stock loop end to end: the payment channel simulator,
//! signed notifications, lookups for lost ones, buyer and timeout
//! cancellation, races between them, and reconciliation. Real Redis,
//! broker and MariaDB; the simulator as the channel.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use hyper::{Method, StatusCode};
use order::event::OrderEvent;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use sqlx::mysql::MySqlPool;
use support::*;

struct Stack {
    topic: String,
    shards: Vec<String>,
    gateway: Arc<TestGateway>,
    settler: TestSettler,
    paysim: String,
}

impl Stack {
    async fn start(payment_window_secs: u64) -> Self {
        Self::start_configured(payment_window_secs, |_| {}).await
    }

    async fn start_configured(payment_window_secs: u64, tweak: impl FnOnce(&mut gateway::config::Config)) -> Self {
        let topic = fresh_topic(2).await;
        let shards = fresh_shards(2).await;
        let paysim = start_paysim().await;
        let mut config = gateway_config(&topic, &shards);
        payment_channel(&mut config, &paysim);
        config.payments.query_every_secs = 1;
        config.orders.payment_window_secs = payment_window_secs;
        if payment_window_secs < 10 {
            // A short window, and the config's rule kept: in-flight window
            // (2.5 s here) < confirm window < payment window.
            config.kafka.message_timeout_ms = 1_000;
            config.redis.command_timeout_ms = 250;
            config.orders.confirm_window_secs = 3;
            assert!(payment_window_secs > 3, "the payment window must exceed the confirm window");
        }
        config.orders.idempotency_ttl_secs = payment_window_secs.max(600);
        tweak(&mut config);
        let gateway = Arc::new(TestGateway::start(config).await);
        let settler = TestSettler::start(settler_config(&topic, &shards));
        Self { topic, shards, gateway, settler, paysim }
    }

    async fn stop(self) {
        self.settler.stop().await;
        drop_shards(&self.shards).await;
    }

    async fn order(&self, user: u64, sku: &str) -> String {
        let answer = self.gateway.place(user, sku, 1, &format!("buy-{user}")).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
        answer.json["order_id"].as_str().unwrap().to_owned()
    }

    async fn pay(&self, order_id: &str, user: u64, sku: &str) -> Value {
        let answer = self.owner_request(order_id, "pay", user, sku).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        answer.json
    }

    async fn owner_request(&self, order_id: &str, action: &str, user: u64, sku: &str) -> Answer {
        let body = json!({"user_id": user, "sku": sku}).to_string();
        let path = format!("/v1/orders/{order_id}/{action}");
        self.gateway.request(Method::POST, &path, &[("content-type", "application/json")], body).await
    }

    /// The shopper pays at the channel; `plan` says how it notifies.
    async fn complete(&self, payment_id: &str, plan: Value) {
        let (status, body) =
            paysim(&self.paysim, Method::POST, &format!("/v1/payments/{payment_id}/complete"), plan).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// A notification as the channel would send it, signed with `secret`.
    async fn notify(&self, body: &Value, secret: &str) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = paychannel::signature::sign(secret.as_bytes(), &bytes);
        let headers = [("content-type", "application/json"), ("x-pay-signature", signature.as_str())];
        self.gateway.request(Method::POST, "/v1/payments/notify", &headers, bytes).await
    }

    async fn counters(&self, sku: &str) -> (i64, i64, i64) {
        let sale = self.gateway.sale(sku).await;
        let (stock, reserved, sold) =
            (sale["stock"].as_i64().unwrap(), sale["reserved"].as_i64().unwrap(), sale["sold"].as_i64().unwrap());
        assert_eq!(stock + reserved + sold, sale["total"].as_i64().unwrap(), "units add up: {sale}");
        (stock, reserved, sold)
    }

    /// The order's status in MySQL, once it is `want`.
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

    async fn query_shards<T>(&self, sql: &str, order_id: &str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow> + Send + Unpin,
    {
        let mut rows = Vec::new();
        for dsn in &self.shards {
            let pool = MySqlPool::connect(dsn).await.unwrap();
            rows.extend(
                sqlx::query_as::<_, T>(sql).bind(order_id.parse::<i64>().unwrap()).fetch_all(&pool).await.unwrap(),
            );
            pool.close().await;
        }
        rows
    }

    async fn history(&self, order_id: &str) -> Vec<(Option<String>, String)> {
        self.query_shards(
            "SELECT from_status, to_status FROM order_status_history WHERE order_id = ? ORDER BY id",
            order_id,
        )
        .await
    }

    async fn refunds(&self, order_id: &str) -> Vec<(String, i64)> {
        self.query_shards("SELECT payment_id, amount_cents FROM refunds WHERE order_id = ?", order_id).await
    }

    fn sweeper(&self) -> settler::sweeper::Sweeper {
        sweeper(&settler_config(&self.topic, &self.shards), Duration::from_millis(200), 7)
    }
}

fn notification(order_id: &str, sku: &str, payment_id: &str, amount_cents: i64) -> Value {
    json!({
        "payment_id": payment_id, "merchant_order_id": order_id, "attach": sku,
        "amount_cents": amount_cents, "status": "SUCCESS", "paid_at": "2026-11-24T12:00:00Z"
    })
}

#[tokio::test]
async fn a_paid_order_is_sold_and_stored_paid() {
    let stack = Stack::start(900).await;
    let sku = unique("pay");
    stack.gateway.load_sale(&sku, 10, 2, 4_999).await;
    let order_id = stack.order(1, &sku).await;

    let payment = stack.pay(&order_id, 1, &sku).await;
    assert_eq!(payment["amount_cents"], 4_999);
    assert!(payment["pay_url"].as_str().is_some_and(|url| !url.is_empty()));
    stack.complete(payment["payment_id"].as_str().unwrap(), json!({})).await;

    eventually(Duration::from_secs(10), "the sale", || async {
        (stack.counters(&sku).await == (9, 0, 1)).then_some(())
    })
    .await;
    stack.stored_status(&order_id, "PAID").await;
    assert_eq!(stack.history(&order_id).await, vec![(Some("PENDING_PAYMENT".into()), "PAID".into())]);
    let stored = stack.gateway.request(Method::GET, &format!("/v1/orders/{order_id}"), &[], "").await;
    assert_eq!(stored.json["status"], "PAID");

    // Paying a paid order is refused (cancelling one is tests/lifecycle.rs's).
    assert_eq!(stack.owner_request(&order_id, "pay", 1, &sku).await.status, StatusCode::CONFLICT);
    stack.stop().await;
}

/// The security check before an order: cancellations (counted by the
/// gateway) and expiries (counted by the sweeper) add up; past the limit the
/// buyer is refused with the time left, and nobody else is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_who_cancels_and_lets_orders_expire_cools_down() {
    let stack = Stack::start_configured(4, |config| config.abuse.max_strikes = 2).await;
    let sku = unique("strikes");
    stack.gateway.load_sale(&sku, 100, 100, 100).await;
    let place = |user: u64, key: &str| {
        let (gateway, sku, key) = (&stack.gateway, sku.clone(), key.to_owned());
        async move { gateway.place(user, &sku, 1, &key).await }
    };
    for key in ["c1", "c2"] {
        let placed = place(31, key).await;
        assert_eq!(placed.status, StatusCode::ACCEPTED, "{}", placed.json);
        let order_id = placed.json["order_id"].as_str().unwrap().to_owned();
        assert_eq!(stack.owner_request(&order_id, "cancel", 31, &sku).await.status, StatusCode::OK);
    }
    assert_eq!(place(31, "at-the-limit").await.status, StatusCode::ACCEPTED, "two strikes are allowed");

    // That order is left unpaid: the sweeper's expiry is the third strike.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(stack.sweeper().run(async move {
        let _ = stopped.changed().await;
    }));
    let refused = eventually(Duration::from_secs(30), "the third strike", || async {
        let answer = place(31, "after").await;
        (answer.status == StatusCode::FORBIDDEN).then_some(answer)
    })
    .await;
    assert_eq!(refused.json["error"], "cooling_down", "{}", refused.json);
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3_600).contains(&wait), "{wait}");
    assert_eq!(place(32, "someone-else").await.status, StatusCode::ACCEPTED, "other buyers are not affected");
    let _ = stop.send(true);
    sweeper.await.unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn forged_tampered_and_mismatched_notifications_change_nothing() {
    let stack = Stack::start(900).await;
    let sku = unique("forged");
    stack.gateway.load_sale(&sku, 10, 2, 1_000).await;
    let order_id = stack.order(1, &sku).await;
    let good = notification(&order_id, &sku, "pay_x", 1_000);

    let forged = stack.notify(&good, "not-the-secret").await;
    assert_eq!((forged.status, forged.json["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("bad_signature")));
    let unsigned = stack
        .gateway
        .request(Method::POST, "/v1/payments/notify", &[("content-type", "application/json")], good.to_string())
        .await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    // Signed, then changed on the way.
    let signature = paychannel::signature::sign(PAYMENT_SECRET.as_bytes(), good.to_string().as_bytes());
    let tampered = good.to_string().replace("1000", "1");
    let headers = [("content-type", "application/json"), ("x-pay-signature", signature.as_str())];
    assert_eq!(
        stack.gateway.request(Method::POST, "/v1/payments/notify", &headers, tampered).await.status,
        StatusCode::UNAUTHORIZED
    );

    let wrong_amount = stack.notify(&notification(&order_id, &sku, "pay_x", 1), PAYMENT_SECRET).await;
    assert_eq!(
        (wrong_amount.status, wrong_amount.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("amount_mismatch"))
    );
    // A verified payment for an order the sale does not know takes nothing
    // and is not forgotten: acknowledged, and recorded as a refund.
    let unknown = stack.notify(&notification("123456789", &sku, "pay_y", 1_000), PAYMENT_SECRET).await;
    assert_eq!(unknown.status, StatusCode::OK, "{}", unknown.json);

    assert_eq!(stack.counters(&sku).await, (9, 1, 0), "still reserved, nothing sold");
    assert_eq!(stack.notify(&good, PAYMENT_SECRET).await.status, StatusCode::OK, "the genuine one still works");
    assert_eq!(stack.counters(&sku).await, (9, 0, 1));
    // The buyer paid twice: the second payment is to be refunded.
    let twice = stack.notify(&notification(&order_id, &sku, "pay_x2", 1_000), PAYMENT_SECRET).await;
    assert_eq!(twice.status, StatusCode::OK, "{}", twice.json);
    assert_eq!(stack.counters(&sku).await, (9, 0, 1), "sold once");
    eventually(Duration::from_secs(30), "both refunds recorded", || async {
        let stranger = stack.refunds("123456789").await;
        let second = stack.refunds(&order_id).await;
        (stranger == [("pay_y".to_owned(), 1_000)] && second == [("pay_x2".to_owned(), 1_000)]).then_some(())
    })
    .await;
    stack.stop().await;
}

#[tokio::test]
async fn ten_copies_of_a_notification_make_one_transition_and_one_event() {
    let stack = Stack::start(900).await;
    let sku = unique("dups");
    stack.gateway.load_sale(&sku, 10, 2, 700).await;
    let order_id = stack.order(3, &sku).await;
    let payment = stack.pay(&order_id, 3, &sku).await;
    stack.complete(payment["payment_id"].as_str().unwrap(), json!({"copies": 10})).await;
    stack.stored_status(&order_id, "PAID").await;

    eventually(Duration::from_secs(10), "all copies acknowledged", || async {
        let (_, stats) = paysim(&stack.paysim, Method::GET, "/v1/stats", Value::Null).await;
        (stats["notifications_acknowledged"] == 10).then_some(())
    })
    .await;
    assert_eq!(stack.counters(&sku).await, (9, 0, 1));
    assert_eq!(stack.history(&order_id).await.len(), 1, "one transition");
    let paid_events =
        events_of(&stack.topic, &order_id).await.iter().filter(|e| matches!(e, OrderEvent::OrderPaid(_))).count();
    assert_eq!(paid_events, 1, "one OrderPaid event");
    stack.stop().await;
}

#[tokio::test]
async fn a_lost_notification_is_found_by_asking_the_channel() {
    let stack = Stack::start(900).await;
    let sku = unique("lost");
    stack.gateway.load_sale(&sku, 10, 2, 300).await;
    let order_id = stack.order(4, &sku).await;
    let payment = stack.pay(&order_id, 4, &sku).await;
    stack.complete(payment["payment_id"].as_str().unwrap(), json!({"drop": true})).await;

    stack.stored_status(&order_id, "PAID").await;
    assert_eq!(stack.counters(&sku).await, (9, 0, 1));
    let (_, stats) = paysim(&stack.paysim, Method::GET, "/v1/stats", Value::Null).await;
    assert_eq!(stats["notifications_attempted"], 0, "no notification was ever sent");
    stack.stop().await;
}

#[tokio::test]
async fn unpaid_orders_time_out_once_and_their_units_sell_again() {
    let stack = Stack::start(4).await;
    let sku = unique("timeout");
    stack.gateway.load_sale(&sku, 5, 1, 100).await;
    let first: Vec<String> = join_all((1..=5u64).map(|user| stack.order(user, &sku))).await;
    assert_eq!(stack.gateway.place(6, &sku, 1, "late").await.status, StatusCode::CONFLICT, "sold out for now");

    // Two sweepers at once, as on two settlers.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sweepers: Vec<_> = (0..2)
        .map(|_| {
            let mut stopped = stopped.clone();
            tokio::spawn(stack.sweeper().run(async move {
                let _ = stopped.changed().await;
            }))
        })
        .collect();
    for order_id in &first {
        stack.stored_status(order_id, "CANCELLED").await;
    }
    assert_eq!(stack.counters(&sku).await, (5, 0, 0), "every unit back, once");
    for order_id in &first {
        assert_eq!(stack.history(order_id).await, vec![(Some("PENDING_PAYMENT".into()), "CANCELLED".into())]);
        let cancels = events_of(&stack.topic, order_id)
            .await
            .iter()
            .filter(|e| matches!(e, OrderEvent::OrderCancelled(_)))
            .count();
        assert!(cancels >= 1);
    }

    // No undersell: the next buyers get the units back, once the gateway's
    // sold-out mark is rechecked.
    eventually(Duration::from_secs(10), "the first unit sold again", || async {
        (stack.gateway.place(11, &sku, 1, "again-11").await.status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    let keys: Vec<String> = (11..=15).map(|user| format!("again-{user}")).collect();
    let again = join_all(keys.iter().zip(11..).map(|(key, user)| stack.gateway.place(user, &sku, 1, key))).await;
    // The first is the replay of the click above.
    assert!(
        again.iter().all(|a| a.status == StatusCode::ACCEPTED || a.status == StatusCode::OK),
        "{:?}",
        again.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let _ = stop.send(true);
    for sweeper in sweepers {
        sweeper.await.unwrap();
    }
    stack.stop().await;
}

#[tokio::test]
async fn the_buyer_cancels_a_pending_order_and_nobody_else_can() {
    let stack = Stack::start(900).await;
    let sku = unique("cancel");
    stack.gateway.load_sale(&sku, 1, 1, 100).await;
    let order_id = stack.order(21, &sku).await;

    let stranger = stack.owner_request(&order_id, "cancel", 22, &sku).await;
    assert_eq!((stranger.status, stranger.json["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_order")));
    let cancelled = stack.owner_request(&order_id, "cancel", 21, &sku).await;
    assert_eq!((cancelled.status, cancelled.json["status"].as_str()), (StatusCode::OK, Some("CANCELLED")));
    assert_eq!(stack.counters(&sku).await, (1, 0, 0));
    let twice = stack.owner_request(&order_id, "cancel", 21, &sku).await;
    assert_eq!((twice.status, twice.json["status"].as_str()), (StatusCode::CONFLICT, Some("CANCELLED")));
    stack.stored_status(&order_id, "CANCELLED").await;

    // The unit is for sale again at once: the cancel cleared the sold-out mark.
    assert_eq!(stack.gateway.place(23, &sku, 1, "next").await.status, StatusCode::ACCEPTED);
    let bad = stack
        .gateway
        .request(Method::POST, &format!("/v1/orders/{order_id}/cancel"), &[("content-type", "application/json")], "{}")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    stack.stop().await;
}

#[tokio::test]
async fn pay_and_cancel_racing_never_corrupt_stock() {
    let stack = Arc::new(Stack::start(900).await);
    let sku = unique("race");
    stack.gateway.load_sale(&sku, 40, 1, 250).await;
    let orders: Vec<(u64, String)> = join_all((1..=40u64).map(|user| {
        let stack = stack.clone();
        let sku = sku.clone();
        async move { (user, stack.order(user, &sku).await) }
    }))
    .await;

    let races = orders.iter().map(|(user, order_id)| {
        let (stack, sku, order_id, user) = (stack.clone(), sku.clone(), order_id.clone(), *user);
        async move {
            let paid = notification(&order_id, &sku, &format!("pay_{order_id}"), 250);
            let (notified, cancelled) =
                tokio::join!(stack.notify(&paid, PAYMENT_SECRET), stack.owner_request(&order_id, "cancel", user, &sku));
            assert_eq!(notified.status, StatusCode::OK, "{}", notified.json);
            (order_id, cancelled.status == StatusCode::OK)
        }
    });
    let outcomes = join_all(races).await;
    let cancelled = outcomes.iter().filter(|(_, cancelled)| *cancelled).count() as i64;
    assert_eq!(stack.counters(&sku).await, (cancelled, 0, 40 - cancelled));

    for (order_id, was_cancelled) in &outcomes {
        if *was_cancelled {
            stack.stored_status(order_id, "CANCELLED").await;
            let refunds = eventually(Duration::from_secs(30), "the refund", || async {
                let refunds = stack.refunds(order_id).await;
                (!refunds.is_empty()).then_some(refunds)
            })
            .await;
            assert_eq!(refunds, vec![(format!("pay_{order_id}"), 250)], "the late payment goes back");
        } else {
            stack.stored_status(order_id, "PAID").await;
            assert!(stack.refunds(order_id).await.is_empty());
        }
    }
    Arc::into_inner(stack).unwrap().stop().await;
}

#[tokio::test]
async fn reconcile_finds_and_repairs_a_drifted_counter() {
    let stack = Stack::start(900).await;
    let sku = unique("drift");
    stack.gateway.load_sale(&sku, 10, 3, 100).await;
    let paid = stack.order(1, &sku).await;
    let payment = stack.pay(&paid, 1, &sku).await;
    stack.complete(payment["payment_id"].as_str().unwrap(), json!({})).await;
    let pending = stack.order(2, &sku).await;
    stack.stored_status(&paid, "PAID").await;
    stack.stored_status(&pending, "PENDING_PAYMENT").await;

    let config = settler_config(&stack.topic, &stack.shards);
    let store = stock::SaleStore::connect(&config.redis).unwrap();
    assert!(store.redis().wait_connected(Duration::from_secs(5)).await, "redis at {}", config.redis.url);
    let shards = pools(&stack.shards);
    let clean = settler::reconcile::reconcile(&shards, &store, &sku, false).await.unwrap();
    assert!(!clean.drifted(), "{clean:?}");

    // A failover lost two acknowledged decrements.
    let redis =
        fred::prelude::Builder::from_config(fred::prelude::Config::from_url(&redis_url()).unwrap()).build().unwrap();
    fred::prelude::ClientLike::init(&redis).await.unwrap();
    let sale_key = format!("{}sale:{{{sku}}}", namespace(&stack.topic));
    let () = fred::prelude::HashesInterface::hset(&redis, &sale_key, ("stock", 10)).await.unwrap();
    let drift = settler::reconcile::reconcile(&shards, &store, &sku, false).await.unwrap();
    assert!(drift.drifted());
    assert_eq!((drift.redis.stock, drift.mysql.stock), (10, 8));
    let repaired = settler::reconcile::reconcile(&shards, &store, &sku, true).await.unwrap();
    assert!(repaired.repaired);
    assert_eq!(stack.counters(&sku).await, (8, 1, 1));

    // The next sale of the SKU is compared with its own orders only.
    let cancel = stack.owner_request(&pending, "cancel", 2, &sku).await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.json);
    stack.stored_status(&pending, "CANCELLED").await;
    stack.gateway.load_sale(&sku, 5, 3, 100).await;
    let next = settler::reconcile::reconcile(&shards, &store, &sku, false).await.unwrap();
    assert!(!next.drifted(), "earlier sales' orders are not counted: {next:?}");
    assert_eq!((next.mysql.sold, next.mysql.stock), (0, 5));
    assert!(!settler::reconcile::reconcile(&shards, &store, &sku, false).await.unwrap().drifted());
    stack.stop().await;
}

/// Every event about `order_id` on the topic so far: reads each partition
/// from the start up to its high watermark.
async fn events_of(topic: &str, order_id: &str) -> Vec<OrderEvent> {
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", unique("events_reader"))
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut remaining = HashMap::new();
    for partition in metadata.topics()[0].partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), timeout).unwrap();
        if high > low {
            remaining.insert(partition.id(), high);
        }
        assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut events = Vec::new();
    while !remaining.is_empty() {
        let message =
            tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.expect("events arrive").unwrap();
        if remaining.get(&message.partition()).is_some_and(|high| message.offset() + 1 >= *high) {
            remaining.remove(&message.partition());
        }
        let event = OrderEvent::decode(message.payload().unwrap_or_default()).unwrap();
        if event.order_id().to_string() == order_id {
            events.push(event);
        }
    }
    events
}

/// A sale deducting at payment with more payers than units: its orders are
/// capped at twice the stock, every payer is sold a unit or refunded (the
/// order cancelled as sold out), stock never goes below zero, and MySQL
/// ends with one paid order per unit and one refund per extra payer.
#[tokio::test]
async fn a_sale_deducting_at_payment_refunds_the_payers_who_came_after_its_last_unit() {
    let stack = Arc::new(Stack::start(900).await);
    let sku = unique("onpay");
    let terms = json!({
        "stock": 10, "per_user_limit": 1, "price_cents": 300, "deduction": "on_payment", "open_orders_cap_pct": 200
    });
    let loaded = stack.gateway.admin(Method::PUT, &format!("/admin/skus/{sku}"), terms.to_string()).await;
    assert_eq!(loaded.status, StatusCode::OK, "{}", loaded.json);
    let orders: Vec<String> = join_all((1..=20u64).map(|user| {
        let (stack, sku) = (stack.clone(), sku.clone());
        async move { stack.order(user, &sku).await }
    }))
    .await;
    let capped = stack.gateway.place(21, &sku, 1, "buy-21").await;
    assert_eq!(capped.status, StatusCode::CONFLICT, "{}", capped.json);
    assert_eq!(capped.json["error"], "open_orders_capped");
    assert_eq!(capped.header("retry-after"), Some("5"));
    let sale = stack.gateway.sale(&sku).await;
    assert_eq!((sale["deduction"].as_str(), sale["open"].as_i64()), (Some("on_payment"), Some(20)), "{sale}");
    assert_eq!(stack.counters(&sku).await, (10, 0, 0), "placing took no unit");

    let notified =
        join_all(
            orders.iter().map(|order_id| {
                let (stack, sku) = (stack.clone(), sku.clone());
                async move {
                    stack.notify(&notification(order_id, &sku, &format!("pay_{order_id}"), 300), PAYMENT_SECRET).await
                }
            }),
        )
        .await;
    assert!(notified.iter().all(|answer| answer.status == StatusCode::OK), "every payment is taken in");
    assert_eq!(stack.counters(&sku).await, (0, 0, 10));
    assert_eq!(stack.gateway.sale(&sku).await["open"], 0);

    let shards = pools(&stack.shards);
    let settled = eventually(Duration::from_secs(30), "every order paid or cancelled", || async {
        let mut paid = Vec::new();
        let mut sold_out = Vec::new();
        for order_id in &orders {
            let stored = shards.get(order_id.parse().unwrap()).await.unwrap()?;
            match stored.status.as_str() {
                "PAID" => paid.push(order_id.clone()),
                "CANCELLED" => sold_out.push(order_id.clone()),
                _ => return None,
            }
        }
        Some((paid, sold_out))
    })
    .await;
    assert_eq!((settled.0.len(), settled.1.len()), (10, 10));
    for order_id in &settled.1 {
        let reason: Vec<(Option<String>,)> =
            stack.query_shards("SELECT cancel_reason FROM orders WHERE order_id = ?", order_id).await;
        assert_eq!(reason, vec![(Some("sold_out".to_owned()),)]);
        let refunds = eventually(Duration::from_secs(30), "the refund", || async {
            let refunds = stack.refunds(order_id).await;
            (!refunds.is_empty()).then_some(refunds)
        })
        .await;
        assert_eq!(refunds, vec![(format!("pay_{order_id}"), 300)], "the payment that found no unit goes back");
    }
    for order_id in &settled.0 {
        assert!(stack.refunds(order_id).await.is_empty());
    }
    let store = stock::SaleStore::connect(&settler_config(&stack.topic, &stack.shards).redis).unwrap();
    assert!(store.redis().wait_connected(Duration::from_secs(5)).await);
    let reconciled = settler::reconcile::reconcile(&shards, &store, &sku, false).await.unwrap();
    assert!(!reconciled.drifted(), "{reconciled:?}");
    shards.close().await;
    Arc::into_inner(stack).unwrap().stop().await;
}

/// Seed 000's breaker on the payment channel: a channel failing a tenth of
/// its calls opens it (past 5 %); while it is open, starting a payment is
/// a 503 at once and the gateway stays ready for orders; a payment the
/// channel notifies meanwhile is still recorded; once the channel heals, a
/// probe closes it.
#[tokio::test]
async fn a_failing_payment_channel_opens_its_breaker_and_a_healed_one_closes_it() {
    let stack = Stack::start_configured(900, |config| {
        config.traffic.breakers.payment_channel = gateway::config::Breaker {
            enabled: true,
            failure_ratio: 0.05,
            min_requests: 20,
            window_secs: 1,
            open_ms: 1_000,
        };
    })
    .await;
    let sku = unique("channel_breaker");
    stack.gateway.load_sale(&sku, 100, 1, 1_000).await;
    let mut orders = Vec::new();
    for user in 1..=60u64 {
        orders.push((user, stack.order(user, &sku).await));
    }
    // The policy's window must have run once before it may open the breaker.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let faults =
        |fail_every: u32| paysim(&stack.paysim, Method::POST, "/v1/faults/payments", json!({"fail_every": fail_every}));
    assert_eq!(faults(10).await.0, StatusCode::OK);

    let breaker = || stack.gateway.app.center.breakers.load().payment_channels["card"].state().as_str();
    let mut started: Vec<(u64, String, String)> = Vec::new();
    for round in orders.chunks(20) {
        let answers = join_all(round.iter().map(|(user, order_id)| {
            let (stack, sku) = (&stack, &sku);
            async move { (*user, order_id.clone(), stack.owner_request(order_id, "pay", *user, sku).await) }
        }))
        .await;
        for (user, order_id, answer) in answers {
            match answer.status {
                StatusCode::OK => {
                    started.push((user, order_id, answer.json["payment_id"].as_str().unwrap().to_owned()))
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(answer.json["dependency"], "payment_channel")
                }
                status => panic!("{status}: {}", answer.json),
            }
        }
        if breaker() == "open" {
            break;
        }
    }
    assert_eq!(breaker(), "open", "a tenth of the calls failing opens it");
    let (user, order_id) = orders.last().unwrap();
    let refused = stack.owner_request(order_id, "pay", *user, &sku).await;
    assert_eq!(
        (refused.status, &refused.json["dependency"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("payment_channel"))
    );
    let metrics = stack.gateway.request(Method::GET, "/metrics", &[], "").await.json.as_str().unwrap().to_owned();
    assert!(metrics.contains("gateway_breaker_state{dependency=\"payment_channel\",channel=\"card\"} 2"), "{metrics}");
    let ready = stack.gateway.request(Method::GET, "/readyz", &[], "").await;
    assert_eq!(ready.status, StatusCode::OK, "orders still flow: {}", ready.json);

    // A payment made before it opened is notified while it is open: recorded.
    let (_, paid_order, payment_id) = started.first().cloned().expect("some payments started before it opened");
    stack.complete(&payment_id, json!({})).await;
    stack.stored_status(&paid_order, "PAID").await;

    // The channel heals: after the open time a probe closes the breaker.
    assert_eq!(faults(0).await.0, StatusCode::OK);
    let (user, order_id) = orders.last().unwrap();
    eventually(Duration::from_secs(15), "payments to start again", || async {
        let answer = stack.owner_request(order_id, "pay", *user, &sku).await;
        (answer.status == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(breaker(), "closed");
    assert_eq!(stack.counters(&sku).await, (40, 59, 1), "one paid, the others still held in their window");
    stack.stop().await;
}
