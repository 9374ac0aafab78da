//! Cart checkout end to end against real Redis, broker and MariaDB: the
//! seed's cart priced to the cent and stored in one shard, every bad cart
//! refused with its 4xx and holding nothing, carts racing for the last
//! units, a stalled broker, a retry landing on another gateway.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;

struct Stack {
    shards: Vec<String>,
    gateway: Arc<TestGateway>,
    settler: TestSettler,
    paysim: String,
    topic: String,
}

impl Stack {
    async fn start() -> Self {
        Self::start_configured(|_| {}).await
    }

    async fn start_configured(tweak: impl FnOnce(&mut gateway::config::Config)) -> Self {
        let topic = fresh_topic(2).await;
        let shards = fresh_shards(2).await;
        let paysim = start_paysim().await;
        let mut config = gateway_config(&topic, &shards);
        payment_channel(&mut config, &paysim);
        tweak(&mut config);
        let gateway = Arc::new(TestGateway::start(config).await);
        let settler = TestSettler::start(settler_config(&topic, &shards));
        Self { shards, gateway, settler, paysim, topic }
    }

    async fn buyer(&self, user: u64, path: &str) -> Answer {
        let auth = format!("Bearer {}", buyer_token(user));
        self.gateway.request(Method::POST, path, &[("authorization", auth.as_str())], "").await
    }

    async fn stop(self) {
        self.settler.stop().await;
        self.gateway.shutdown().await;
        drop_shards(&self.shards).await;
    }

    async fn catalogue(&self, kind: &str, id: &str, entry: Value) {
        let answer = self.gateway.admin(Method::PUT, &format!("/admin/catalogue/{kind}/{id}"), entry.to_string()).await;
        assert_eq!(answer.status, StatusCode::OK, "{kind}/{id}: {}", answer.json);
    }

    /// SKUs of this test's own, each with a sale of `stock` units at its price.
    async fn sales(&self, prices: &[i64], stock: i64) -> Vec<String> {
        let mut skus = Vec::new();
        for price in prices {
            let sku = unique("cart");
            self.gateway.load_sale(&sku, stock, 100, *price).await;
            skus.push(sku);
        }
        skus
    }
}

async fn checkout(gateway: &TestGateway, user: u64, key: &str, body: Value) -> Answer {
    let auth = format!("Bearer {}", buyer_token(user));
    let headers = [("content-type", "application/json"), ("idempotency-key", key), ("authorization", auth.as_str())];
    gateway.request(Method::POST, "/v1/checkout", &headers, body.to_string()).await
}

fn cart(lines: &[(&str, u32)]) -> Value {
    json!({"lines": lines.iter().map(|(sku, qty)| json!({"sku": sku, "qty": qty})).collect::<Vec<_>>()})
}

/// (stock, reserved, sold), checked to add up.
async fn counters(gateway: &TestGateway, sku: &str) -> (i64, i64, i64) {
    let sale = gateway.sale(sku).await;
    let figure = |name: &str| sale[name].as_i64().unwrap();
    assert_eq!(figure("stock") + figure("reserved") + figure("sold"), figure("total"), "units add up: {sale}");
    (figure("stock"), figure("reserved"), figure("sold"))
}

/// The seed's cart (items A–E from two stores; 40 off over 200 on A and D,
/// 10 off over 100 on B and C; a 100 coupon), priced as
/// `order::checkout`'s unit test works it by hand, then stored whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_cart_is_priced_to_the_cent_split_and_stored_in_the_buyers_shard() {
    let stack = Stack::start().await;
    let skus = stack.sales(&[12_000, 6_000, 5_000, 10_000, 7_000], 10).await;
    let (a, b, c, d, e) = (&skus[0], &skus[1], &skus[2], &skus[3], &skus[4]);
    let (s1, s2) = (unique("store"), unique("store"));
    for (sku, store, handling) in
        [(a, &s1, "regular"), (b, &s1, "fragile"), (c, &s2, "regular"), (d, &s2, "regular"), (e, &s2, "regular")]
    {
        let facts = json!({"store": store, "warehouse": format!("{store}-wh"), "handling": handling, "weight_grams": 500, "volume_cm3": 1_000});
        stack.catalogue("skus", sku, facts).await;
    }
    let (p1, p2, coupon) = (unique("promo"), unique("promo"), unique("coupon"));
    stack
        .catalogue("promotions", &p1, json!({"threshold_cents": 20_000, "discount_cents": 4_000, "skus": [a, d]}))
        .await;
    stack
        .catalogue("promotions", &p2, json!({"threshold_cents": 10_000, "discount_cents": 1_000, "skus": [b, c]}))
        .await;
    stack
        .catalogue("coupons", &coupon, json!({"discount_cents": 10_000, "min_spend_cents": 20_000, "users": [7]}))
        .await;
    stack.catalogue("freight", &s1, json!({"free_over_cents": 10_000, "fee_cents": 600})).await;
    stack.catalogue("freight", &s2, json!({"free_over_cents": 30_000, "fee_cents": 800})).await;

    let mut body = cart(&[(a, 1), (b, 1), (c, 1), (d, 1), (e, 1)]);
    body["coupon"] = json!(coupon);
    let answer = checkout(&stack.gateway, 7, "seed-cart", body.clone()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    let placed = answer.json;
    let discounts: Vec<(i64, i64)> = placed["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| (line["promotions_cents"].as_i64().unwrap(), line["coupon_cents"].as_i64().unwrap()))
        .collect();
    assert_eq!(discounts, [(2_182, 2_805), (545, 1_559), (455, 1_298), (1_818, 2_338), (0, 2_000)]);
    let total = |name: &str| placed[name].as_i64().unwrap();
    assert_eq!(
        [
            total("goods_cents"),
            total("promotions_cents"),
            total("coupon_cents"),
            total("freight_cents"),
            total("payable_cents")
        ],
        [40_000, 5_000, 10_000, 800, 25_800]
    );
    let subs = placed["sub_orders"].as_array().unwrap();
    let shape: Vec<(&str, &str, i64, usize)> = subs
        .iter()
        .map(|sub| {
            (
                sub["store"].as_str().unwrap(),
                sub["handling"].as_str().unwrap(),
                sub["freight_cents"].as_i64().unwrap(),
                sub["items"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [(s1.as_str(), "regular", 0, 1), (s1.as_str(), "fragile", 0, 1), (s2.as_str(), "regular", 800, 3)]
    );
    let items: Vec<&Value> = subs.iter().flat_map(|sub| sub["items"].as_array().unwrap()).collect();
    assert_eq!(items.iter().map(|item| item["amount_cents"].as_i64().unwrap()).sum::<i64>(), 25_800);
    for sku in &skus {
        assert_eq!(counters(&stack.gateway, sku).await, (9, 1, 0), "{sku}: one unit held");
    }

    // A repeat of the key: the same checkout; another cart under it: 422.
    let again = checkout(&stack.gateway, 7, "seed-cart", body).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (StatusCode::OK, Some("true")));
    assert_eq!(again.json, placed);
    let other = checkout(&stack.gateway, 7, "seed-cart", cart(&[(a, 2)])).await;
    assert_eq!(
        (other.status, other.json["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused"))
    );
    for sku in &skus {
        assert_eq!(counters(&stack.gateway, sku).await, (9, 1, 0), "{sku}: nothing taken twice");
    }

    // Stored once, parent, lines, sub-orders and items, in user 7's shard;
    // each item an order of its own awaiting the one payment.
    let parent: i64 = placed["order_id"].as_str().unwrap().parse().unwrap();
    let shards = pools(&stack.shards);
    let pool = shards.for_user(7);
    eventually(Duration::from_secs(30), "the checkout stored", || async {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM checkouts WHERE order_id = ?")
            .bind(parent)
            .fetch_one(pool)
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    let count = |table: &'static str| async move {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table} WHERE order_id = ?"))
            .bind(parent)
            .fetch_one(pool)
            .await
            .unwrap();
        n
    };
    assert_eq!((count("checkout_lines").await, count("sub_orders").await, count("checkout_items").await), (5, 3, 5));
    let stored = shards.checkout_items(placed["order_id"].as_str().unwrap().parse().unwrap()).await.unwrap();
    assert_eq!(stored.len(), 5);
    for (stored, item) in stored.iter().zip(&items) {
        assert_eq!(stored.order.order_id.to_string(), item["order_id"].as_str().unwrap());
        assert_eq!(stored.order.amount_cents, item["amount_cents"].as_i64().unwrap());
        assert_eq!(stored.order.status.as_str(), "PENDING_PAYMENT");
    }
    shards.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_cart_gets_its_4xx_and_holds_nothing() {
    let stack = Stack::start().await;
    let skus = stack.sales(&[5_000, 3_000], 10).await;
    let (a, b) = (&skus[0], &skus[1]);
    let later = stack.sales(&[1_000], 10).await.remove(0);
    let starts_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let window = json!({"stock": 10, "per_user_limit": 5, "price_cents": 1_000, "starts_at": starts_at});
    assert_eq!(
        stack.gateway.admin(Method::PUT, &format!("/admin/skus/{later}"), window.to_string()).await.status,
        StatusCode::OK
    );
    let (mine, theirs) = (unique("coupon"), unique("coupon"));
    stack.catalogue("coupons", &mine, json!({"discount_cents": 500, "min_spend_cents": 6_000})).await;
    stack.catalogue("coupons", &theirs, json!({"discount_cents": 500, "min_spend_cents": 1_000, "users": [99]})).await;
    let with_coupon = |lines: &[(&str, u32)], code: &str| {
        let mut body = cart(lines);
        body["coupon"] = json!(code);
        body
    };

    let too_many: Vec<Value> = (0..51).map(|i| json!({"sku": format!("s{i}"), "qty": 1})).collect();
    let cases = [
        (cart(&[(a, 1), (a, 2)]), StatusCode::BAD_REQUEST, "invalid_request"),
        (json!({"lines": too_many}), StatusCode::BAD_REQUEST, "invalid_request"),
        (json!({"lines": []}), StatusCode::BAD_REQUEST, "invalid_request"),
        (cart(&[(a, 0)]), StatusCode::BAD_REQUEST, "invalid_request"),
        (json!({"lines": [{"sku": a, "qty": 1}], "user_id": 8}), StatusCode::FORBIDDEN, "user_mismatch"),
        (cart(&[(a, 1), ("no-such-sku", 1)]), StatusCode::NOT_FOUND, "unknown_sku"),
        (with_coupon(&[(a, 1)], "no-such-coupon"), StatusCode::NOT_FOUND, "unknown_coupon"),
        (with_coupon(&[(a, 2)], &theirs), StatusCode::FORBIDDEN, "coupon_not_yours"),
        (with_coupon(&[(a, 1)], &mine), StatusCode::UNPROCESSABLE_ENTITY, "below_minimum_spend"),
        (cart(&[(a, 1), (&later, 1)]), StatusCode::CONFLICT, "sale_not_started"),
        (cart(&[(a, 1), (b, 11)]), StatusCode::CONFLICT, "insufficient_stock"),
    ];
    for (i, (body, status, code)) in cases.into_iter().enumerate() {
        let answer = checkout(&stack.gateway, 7, &format!("bad-{i}"), body.clone()).await;
        assert_eq!((answer.status, answer.json["error"].as_str()), (status, Some(code)), "{body}: {}", answer.json);
    }
    let refused_on = checkout(&stack.gateway, 7, "window", cart(&[(a, 1), (&later, 1)])).await;
    assert_eq!(refused_on.json["sku"].as_str(), Some(later.as_str()), "the refusal names the SKU");
    for sku in [a, b, &later] {
        assert_eq!(counters(&stack.gateway, sku).await.1, 0, "{sku}: nothing held");
    }

    // A coupon is frozen by the checkout that uses it, refused to a second
    // one, and free again once the first is cancelled.
    let first = checkout(&stack.gateway, 7, "c1", with_coupon(&[(a, 2)], &mine)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json);
    assert_eq!(first.json["coupon_cents"], 500);
    let second = checkout(&stack.gateway, 7, "c2", with_coupon(&[(a, 2)], &mine)).await;
    assert_eq!((second.status, second.json["error"].as_str()), (StatusCode::CONFLICT, Some("coupon_used")));
    let parent = first.json["order_id"].as_str().unwrap();
    let auth = format!("Bearer {}", buyer_token(7));
    let headers = [("authorization", auth.as_str())];
    let stranger = format!("Bearer {}", buyer_token(8));
    let cancel = stack
        .gateway
        .request(Method::POST, &format!("/v1/checkouts/{parent}/cancel"), &[("authorization", stranger.as_str())], "")
        .await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND, "another buyer's checkout is unknown to them");
    let cancel = stack.gateway.request(Method::POST, &format!("/v1/checkouts/{parent}/cancel"), &headers, "").await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.json);
    assert_eq!(counters(&stack.gateway, a).await, (10, 0, 0), "the cancelled checkout's units are back");
    let third = checkout(&stack.gateway, 7, "c3", with_coupon(&[(a, 2)], &mine)).await;
    assert_eq!(third.status, StatusCode::CREATED, "{}", third.json);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_whose_third_line_is_sold_out_holds_nothing_and_its_key_places_it_later() {
    let stack = Stack::start().await;
    let skus = stack.sales(&[1_000, 2_000], 5).await;
    let gone = stack.sales(&[3_000], 0).await.remove(0);
    let body = cart(&[(&skus[0], 2), (&skus[1], 3), (&gone, 1)]);
    let answer = checkout(&stack.gateway, 7, "third", body.clone()).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.json);
    assert_eq!((answer.json["error"].as_str(), answer.json["sku"].as_str()), (Some("sold_out"), Some(gone.as_str())));
    for sku in skus.iter().chain([&gone]) {
        assert_eq!(counters(&stack.gateway, sku).await.1, 0, "{sku}: nothing held");
    }
    assert_eq!(counters(&stack.gateway, &skus[1]).await, (5, 0, 0));
    // The refusal freed the key: once there is stock, the same key checks out.
    let change = json!({"add_units": 1});
    assert_eq!(
        stack.gateway.admin(Method::PATCH, &format!("/admin/skus/{gone}"), change.to_string()).await.status,
        StatusCode::OK
    );
    let answer = checkout(&stack.gateway, 7, "third", body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    assert_eq!(counters(&stack.gateway, &gone).await, (0, 1, 0));
    stack.stop().await;
}

/// Two buyers each want the last unit of X and of Y, one cart listing X
/// first, the other Y: never a deadlock, never both, never a unit left
/// held by the loser, never more sold than there is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn carts_racing_in_opposite_order_for_the_last_units_leave_no_partial_hold() {
    let stack = Stack::start().await;
    let mut wins = 0;
    for round in 0..20 {
        let skus = stack.sales(&[1_000, 1_000], 1).await;
        let (x, y) = (skus[0].clone(), skus[1].clone());
        let carts = [(1, cart(&[(&x, 1), (&y, 1)])), (2, cart(&[(&y, 1), (&x, 1)]))];
        let answers = join_all(carts.into_iter().map(|(user, body)| {
            let gateway = stack.gateway.clone();
            async move { checkout(&gateway, user, &format!("race-{round}"), body).await }
        }))
        .await;
        let won: Vec<&Answer> = answers.iter().filter(|answer| answer.status == StatusCode::CREATED).collect();
        for answer in &answers {
            assert!(matches!(answer.status, StatusCode::CREATED | StatusCode::CONFLICT), "{}", answer.json);
        }
        assert!(
            won.len() <= 1,
            "both carts got the last units: {:?}",
            answers.iter().map(|a| &a.json).collect::<Vec<_>>()
        );
        let held = u64::from(won.len() == 1);
        for sku in [&x, &y] {
            let (stock, reserved, _) = counters(&stack.gateway, sku).await;
            assert_eq!((stock, reserved), (1 - held as i64, held as i64), "round {round}, {sku}: a partial hold");
        }
        wins += won.len();
    }
    eprintln!("{wins} of 20 rounds had a winner");
    stack.stop().await;
}

/// A retry of the key landing on another gateway while the first is still
/// at it is told it is in progress; after the first answered, a replay.
/// Either way the units are taken once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_on_another_gateway_never_takes_the_units_twice() {
    let stack = Stack::start().await;
    let mut other_config = stack.gateway.app.config.clone();
    other_config.server.node_id = 1;
    let other = Arc::new(TestGateway::start(other_config).await);
    let skus = stack.sales(&[1_000, 2_000, 3_000], 10).await;
    let body = cart(&[(&skus[0], 1), (&skus[1], 2), (&skus[2], 3)]);
    let answers = join_all([stack.gateway.clone(), other.clone()].into_iter().map(|gateway| {
        let body = body.clone();
        async move { checkout(&gateway, 7, "twice", body).await }
    }))
    .await;
    let placed: Vec<&Answer> = answers.iter().filter(|a| a.status.is_success()).collect();
    assert!(!placed.is_empty(), "{:?}", answers.iter().map(|a| &a.json).collect::<Vec<_>>());
    for answer in &answers {
        assert!(
            answer.status.is_success() || answer.json["error"] == "request_in_progress",
            "{}: {}",
            answer.status,
            answer.json
        );
    }
    let again = checkout(&other, 7, "twice", body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.json);
    assert_eq!(again.json["order_id"], placed[0].json["order_id"]);
    for (sku, qty) in skus.iter().zip([1, 2, 3]) {
        assert_eq!(counters(&stack.gateway, sku).await, (10 - qty, qty, 0), "{sku}");
    }
    other.shutdown().await;
    stack.stop().await;
}

/// The broker stalls while a checkout is sent: the buyer is told the
/// outcome is unknown, its items hold until their confirm deadline and no
/// longer (the sweeper cancels them), and the checkout stored late is
/// cancelled item by item in MySQL too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkout_the_broker_stalled_on_holds_nothing_past_its_confirm_deadline() {
    let broker = TestBroker::start().await;
    let topic = unique("cart_stall");
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
    let gateway = TestGateway::start(config).await;
    let mut settler_config = settler_config(&topic, &shards);
    settler_config.kafka.bootstrap = broker.bootstrap.clone();
    let settler = TestSettler::start(settler_config.clone());
    let (stop_sweeping, sweeping) = tokio::sync::oneshot::channel::<()>();
    let sweeper = tokio::spawn(sweeper(&settler_config, Duration::from_millis(100), 100).run(async {
        let _ = sweeping.await;
    }));

    let mut skus = Vec::new();
    for price in [1_000, 2_000] {
        let sku = unique("cart_stall");
        gateway.load_sale(&sku, 10, 10, price).await;
        skus.push(sku);
    }
    // Connected first, so the stall catches the event after it was sent.
    let warm = checkout(&gateway, 8, "warm", cart(&[(&skus[0], 1)])).await;
    assert_eq!(warm.status, StatusCode::CREATED, "{}", warm.json);
    broker.stall().await;
    let answer = checkout(&gateway, 7, "stalled", cart(&[(&skus[0], 1), (&skus[1], 2)])).await;
    broker.resume().await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.json);
    match answer.json["error"].as_str() {
        // It may have reached the broker: held until the confirm deadline.
        Some("outcome_unknown") => {
            assert_eq!(counters(&gateway, &skus[1]).await.1, 2, "held while unknown");
            // Not accepted: it cannot be paid.
            let (path, auth) = (
                format!("/v1/checkouts/{}/pay", answer.json["order_id"].as_str().unwrap()),
                format!("Bearer {}", buyer_token(7)),
            );
            let pay = gateway.request(Method::POST, &path, &[("authorization", auth.as_str())], "").await;
            assert_eq!((pay.status, pay.json["error"].as_str()), (StatusCode::CONFLICT, Some("order_not_pending")));
        }
        // It certainly did not: given back at once.
        Some("unavailable") => assert_eq!(counters(&gateway, &skus[1]).await, (10, 0, 0)),
        other => panic!("{other:?}: {}", answer.json),
    }
    let (path, auth) = (
        format!("/v1/checkouts/{}/cancel", warm.json["order_id"].as_str().unwrap()),
        format!("Bearer {}", buyer_token(8)),
    );
    assert_eq!(
        gateway.request(Method::POST, &path, &[("authorization", auth.as_str())], "").await.status,
        StatusCode::OK
    );
    for sku in &skus {
        eventually(Duration::from_secs(30), "the items released at their confirm deadline", || async {
            (counters(&gateway, sku).await == (10, 0, 0)).then_some(())
        })
        .await;
    }
    // Whatever reached MySQL is cancelled there: no item left pending.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for sku in &skus {
        let statuses = order_statuses(&shards, sku).await;
        assert!(statuses.values().all(|status| status == "CANCELLED"), "{sku}: {statuses:?}");
    }
    let _ = stop_sweeping.send(());
    sweeper.await.unwrap();
    settler.stop().await;
    gateway.shutdown().await;
    drop_shards(&shards).await;
}

/// One buyer sends the same coupon in several checkouts at once (other
/// keys, other gateways' worth of races): one of them gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coupon_sent_in_concurrent_checkouts_is_used_once() {
    let stack = Stack::start().await;
    let sku = stack.sales(&[5_000], 100).await.remove(0);
    let code = unique("coupon");
    stack.catalogue("coupons", &code, json!({"discount_cents": 1_000, "min_spend_cents": 5_000})).await;
    let answers = join_all((0..8).map(|i| {
        let gateway = stack.gateway.clone();
        let body = json!({"lines": [{"sku": sku, "qty": 1}], "coupon": code});
        async move { checkout(&gateway, 7, &format!("coupon-{i}"), body).await }
    }))
    .await;
    let used: Vec<&Answer> = answers.iter().filter(|a| a.status == StatusCode::CREATED).collect();
    assert_eq!(used.len(), 1, "{:?}", answers.iter().map(|a| &a.json).collect::<Vec<_>>());
    assert!(answers.iter().all(|a| a.status == StatusCode::CREATED || a.json["error"] == "coupon_used"));
    assert_eq!(counters(&stack.gateway, &sku).await, (99, 1, 0), "the refused ones hold nothing");
    stack.stop().await;
}

/// A checkout paid with a coupon uses it for good: not after its record
/// is gone, nor after it is cancelled. A payment cannot start before its
/// checkout is accepted, and a repeat of the payment's notification days
/// later (its record gone) changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_checkouts_coupon_stays_used_and_a_late_repeat_of_its_payment_changes_nothing() {
    let stack = Stack::start().await;
    let skus = stack.sales(&[5_000, 3_000], 10).await;
    let code = unique("coupon");
    stack.catalogue("coupons", &code, json!({"discount_cents": 1_000, "min_spend_cents": 5_000})).await;
    let mut body = cart(&[(&skus[0], 1), (&skus[1], 1)]);
    body["coupon"] = json!(code);
    let placed = checkout(&stack.gateway, 7, "paid", body.clone()).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.json);
    let parent = placed.json["order_id"].as_str().unwrap().to_owned();
    assert_eq!(placed.json["payable_cents"], 7_000);

    let started = stack.buyer(7, &format!("/v1/checkouts/{parent}/pay")).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.json);
    assert_eq!(stack.buyer(8, &format!("/v1/checkouts/{parent}/pay")).await.status, StatusCode::NOT_FOUND);
    let payment_id = started.json["payment_id"].as_str().unwrap().to_owned();
    let (status, reply) =
        paysim(&stack.paysim, Method::POST, &format!("/v1/payments/{payment_id}/complete"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    for sku in &skus {
        eventually(Duration::from_secs(30), "the items sold", || async {
            (counters(&stack.gateway, sku).await == (9, 0, 1)).then_some(())
        })
        .await;
    }
    let shards = pools(&stack.shards);
    for sub in placed.json["sub_orders"].as_array().unwrap() {
        for item in sub["items"].as_array().unwrap() {
            let id: order::id::OrderId = item["order_id"].as_str().unwrap().parse().unwrap();
            eventually(Duration::from_secs(30), "the items stored paid", || async {
                (shards.get(id).await.unwrap()?.status.as_str() == "PAID").then_some(())
            })
            .await;
        }
    }
    // Gone from Redis as it is days later: the coupon stays used...
    let redis =
        fred::prelude::Builder::from_config(fred::prelude::Config::from_url(&redis_url()).unwrap()).build().unwrap();
    fred::prelude::ClientLike::init(&redis).await.unwrap();
    let namespace = &stack.gateway.app.config.redis.namespace;
    let _: i64 = fred::prelude::KeysInterface::del(&redis, format!("{namespace}cart:{{o{parent}}}")).await.unwrap();
    let again = checkout(&stack.gateway, 7, "again", body.clone()).await;
    assert_eq!((again.status, again.json["error"].as_str()), (StatusCode::CONFLICT, Some("coupon_used")));
    // ...and the channel's repeat of its notification is answered, not refunded.
    let notification = json!({
        "payment_id": payment_id, "merchant_order_id": parent, "attach": "checkout",
        "amount_cents": 7_000, "status": "SUCCESS", "paid_at": "2026-11-24T12:00:00Z"
    });
    let bytes = serde_json::to_vec(&notification).unwrap();
    let signature = paychannel::signature::sign(PAYMENT_SECRET.as_bytes(), &bytes);
    let headers = [("content-type", "application/json"), ("x-pay-signature", signature.as_str())];
    let answer = stack.gateway.request(Method::POST, "/v1/payments/notify", &headers, bytes).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (refunds,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM refunds").fetch_one(shards.for_user(7)).await.unwrap();
    assert_eq!(refunds, 0, "a settled payment is not refunded");
    shards.close().await;
    stack.stop().await;
}

/// A gateway SIGKILLed after its Tries, before the event: what it leaves
/// is the key's claim, the stored checkout and the held items. A retry
/// within the in-flight window is told it is in progress; the sweeper
/// frees the items at their confirm deadline; a retry after that is told
/// the checkout is gone, and frees the key; the next one checks out
/// afresh, taking the units once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_whose_gateway_died_after_its_tries_holds_nothing_past_the_confirm_deadline() {
    use order::checkout::{plan, CheckoutOrder, PricedLine, ShippingFacts};
    use order::shard::bucket_for_user;
    use stock::{CheckoutRecord, TccItem, Tried, TryRequest};

    let topic = fresh_topic(2).await;
    let shards = fresh_shards(2).await;
    let mut config = gateway_config(&topic, &shards);
    config.kafka.message_timeout_ms = 1_000;
    config.redis.command_timeout_ms = 250;
    config.orders.confirm_window_secs = 3;
    let gateway = TestGateway::start(config).await;
    let settler_config = settler_config(&topic, &shards);
    let settler = TestSettler::start(settler_config.clone());
    let (stop_sweeping, sweeping) = tokio::sync::oneshot::channel::<()>();
    let sweeper = tokio::spawn(sweeper(&settler_config, Duration::from_millis(100), 100).run(async {
        let _ = sweeping.await;
    }));
    let mut skus = Vec::new();
    for price in [1_000, 2_000] {
        let sku = unique("cart_killed");
        gateway.load_sale(&sku, 10, 10, price).await;
        skus.push(sku);
    }

    // What the dead gateway did: claimed the key, stored the checkout, tried each SKU.
    let (app, user, key) = (&gateway.app, 7, "killed");
    let lines: Vec<PricedLine> = skus
        .iter()
        .zip([1_000, 2_000])
        .map(|(sku, price)| PricedLine {
            sku: sku.clone(),
            qty: 2,
            unit_price_cents: price,
            facts: ShippingFacts::unlisted(),
            regional: false,
        })
        .collect();
    let now_ms = app.center.sales.redis().now_ms().await.unwrap();
    let next_id = || app.center.ids.next(bucket_for_user(user), now_ms);
    let plan = plan(
        &lines,
        &[],
        None,
        app.config.checkout.points_offer(0),
        &Default::default(),
        app.config.checkout.limits(),
        next_id,
    )
    .unwrap();
    let at = stock::records::from_ms(now_ms);
    let dead = CheckoutOrder::new(plan, next_id(), user, key.into(), (None, 0), at, at + chrono::Duration::minutes(15));
    let claim = CheckoutRecord { accepted: false, parent: dead.order_id, created_ms: now_ms };
    assert_eq!(app.center.checkouts.claim_checkout(user, key, &claim, app.center.checkout_ttl()).await.unwrap(), None);
    app.center
        .checkouts
        .save_checkout(dead.order_id, &serde_json::to_string(&dead).unwrap(), app.center.checkout_ttl())
        .await
        .unwrap();
    for (sub_order, item) in dead.items() {
        let items = [TccItem {
            order_id: item.order_id,
            qty: item.qty,
            amount_cents: item.amount_cents,
            key: order::checkout::item_key(dead.order_id, sub_order),
        }];
        let request = TryRequest {
            user_id: user,
            unit_price_cents: dead.lines[item.line].unit_price_cents,
            now_ms,
            pay_by_ms: dead.pay_by.timestamp_millis(),
            confirm_ms: app.center.confirm_windows().confirm_ms,
            warehouse: None,
            items: &items,
            channel_share: None,
        };
        assert!(matches!(app.center.sales.tcc_try(&item.sku, &request).await.unwrap(), Tried::Held { .. }));
    }
    let body = cart(&[(&skus[0], 2), (&skus[1], 2)]);
    let soon = checkout(&gateway, user, key, body.clone()).await;
    assert_eq!((soon.status, soon.json["error"].as_str()), (StatusCode::CONFLICT, Some("request_in_progress")));
    assert_eq!(counters(&gateway, &skus[0]).await, (8, 2, 0), "held while it may be in flight");

    for sku in &skus {
        eventually(Duration::from_secs(30), "the dead checkout's items released", || async {
            (counters(&gateway, sku).await == (10, 0, 0)).then_some(())
        })
        .await;
    }
    let late = checkout(&gateway, user, key, body.clone()).await;
    assert_eq!(
        (late.status, late.json["error"].as_str()),
        (StatusCode::CONFLICT, Some("checkout_cancelled")),
        "{}",
        late.json
    );
    assert_eq!(counters(&gateway, &skus[1]).await, (10, 0, 0), "its late Tries were refused");
    let fresh = checkout(&gateway, user, key, body).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.json);
    assert_ne!(fresh.json["order_id"].as_str().unwrap(), dead.order_id.to_string());
    for sku in &skus {
        assert_eq!(counters(&gateway, sku).await, (8, 2, 0), "{sku}: taken once");
    }

    let _ = stop_sweeping.send(());
    sweeper.await.unwrap();
    settler.stop().await;
    gateway.shutdown().await;
    drop_shards(&shards).await;
}

/// Each item's status in a checkout's answer, in its order.
fn item_statuses(answer: &Value) -> Vec<String> {
    answer["sub_orders"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|sub| sub["items"].as_array().unwrap().iter().map(|item| item["status"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn a_checkout_left_unpaid_shows_each_item_cancelled_and_its_key_is_answered_so() {
    let stack = Stack::start_configured(|config| {
        // A short payment window, the config's rule kept: in-flight
        // window < confirm window < payment window.
        config.orders.payment_window_secs = 4;
        config.orders.confirm_window_secs = 3;
        config.kafka.message_timeout_ms = 1_000;
        config.redis.command_timeout_ms = 250;
    })
    .await;
    let skus = stack.sales(&[1_000, 2_000], 10).await;
    let (user, body) = (31, cart(&[(&skus[0], 1), (&skus[1], 2)]));
    let placed = checkout(&stack.gateway, user, "unpaid", body.clone()).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.json);
    assert_eq!(placed.json["status"], "PENDING_PAYMENT");
    assert!(item_statuses(&placed.json).iter().all(|status| status == "PENDING_PAYMENT"));
    let parent = placed.json["order_id"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {}", buyer_token(user));
    let read = || async {
        let path = format!("/v1/checkouts/{parent}");
        stack.gateway.request(Method::GET, &path, &[("authorization", auth.as_str())], "").await
    };
    let pending = read().await;
    assert_eq!((pending.status, &pending.json["status"]), (StatusCode::OK, &json!("PENDING_PAYMENT")));

    // Its window passes unpaid: the sweeper cancels every item.
    let (stop_sweeping, sweeping) = tokio::sync::oneshot::channel::<()>();
    let config = settler_config(&stack.topic, &stack.shards);
    let sweeper = tokio::spawn(sweeper(&config, Duration::from_millis(100), 100).run(async {
        let _ = sweeping.await;
    }));
    let cancelled = eventually(Duration::from_secs(30), "every item cancelled", || async {
        let answer = read().await;
        (answer.json["status"] == "CANCELLED").then_some(answer)
    })
    .await;
    assert!(item_statuses(&cancelled.json).iter().all(|status| status == "CANCELLED"), "{}", cancelled.json);
    let again = checkout(&stack.gateway, user, "unpaid", body.clone()).await;
    assert_eq!((again.status, again.json["error"].as_str()), (StatusCode::CONFLICT, Some("checkout_cancelled")));
    // The key is free: it places a fresh checkout.
    let fresh = checkout(&stack.gateway, user, "unpaid", body).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.json);
    assert_ne!(fresh.json["order_id"], json!(parent));
    let _ = stop_sweeping.send(());
    sweeper.await.unwrap();
    stack.stop().await;
}
