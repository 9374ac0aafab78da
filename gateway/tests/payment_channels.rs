//! Two payment channels, "card" (the default) and "wallet" (the fallback),
//! each its own simulator with its own secret: a payment, its lookups,
//! its notifications and its refunds all stay with the channel it was
//! created at, and a failing card sends new payments to the wallet.

mod support;

use std::time::Duration;

use futures::future::join_all;
use hyper::{Method, StatusCode};
use paychannel::channels::Channels;
use paychannel::client::PaymentChannel;
use serde_json::{json, Value};
use sqlx::MySqlPool;
use support::*;

const WALLET_SECRET: &str = "test-wallet-secret-0123";

struct Stack {
    shards: Vec<String>,
    gateway: TestGateway,
    settler: TestSettler,
    card: String,
    wallet: String,
}

impl Stack {
    async fn start() -> Self {
        let topic = fresh_topic(2).await;
        let shards = fresh_shards(2).await;
        let (card, wallet) = (start_paysim().await, start_paysim_signing(WALLET_SECRET).await);
        let mut config = gateway_config(&topic, &shards);
        payment_channels(&mut config, &[("card", &card, PAYMENT_SECRET), ("wallet", &wallet, WALLET_SECRET)]);
        config.payments.fallback_channel = "wallet".into();
        config.payments.query_every_secs = 1;
        config.traffic.breakers.payment_channel = gateway::config::Breaker {
            enabled: true,
            failure_ratio: 0.05,
            min_requests: 20,
            window_secs: 1,
            open_ms: 1_000,
        };
        let gateway = TestGateway::start(config).await;
        let settler = TestSettler::start(settler_config(&topic, &shards));
        Self { shards, gateway, settler, card, wallet }
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

    /// `/pay`, at `channel` if one is named.
    async fn pay(&self, order_id: &str, user: u64, sku: &str, channel: Option<&str>) -> Answer {
        let mut body = json!({"user_id": user, "sku": sku});
        if let Some(channel) = channel {
            body["channel"] = channel.into();
        }
        let path = format!("/v1/orders/{order_id}/pay");
        self.gateway.request(Method::POST, &path, &[("content-type", "application/json")], body.to_string()).await
    }

    /// The shopper pays at the simulator `url`; `plan` says how it notifies.
    async fn complete(&self, url: &str, payment_id: &str, plan: Value) {
        let (status, body) = paysim(url, Method::POST, &format!("/v1/payments/{payment_id}/complete"), plan).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    fn card_breaker(&self) -> &'static str {
        self.gateway.app.center.breakers.load().payment_channels["card"].state().as_str()
    }

    /// The order's (status, payment channel) in MySQL, once its status is `want`.
    async fn stored(&self, order_id: &str, want: &str) -> (String, String) {
        eventually(Duration::from_secs(30), &format!("order {order_id} {want}"), || async {
            let rows: Vec<(String, String)> =
                self.query("SELECT status, payment_channel FROM orders WHERE order_id = ?", order_id).await;
            rows.into_iter().find(|(status, _)| status == want)
        })
        .await
    }

    async fn query<T>(&self, sql: &str, order_id: &str) -> Vec<T>
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
}

/// Seed 000's fallback: the card channel failing a tenth of its calls opens
/// its breaker; a buyer naming no channel then pays at the wallet, one
/// naming the card gets 503 with the wallet offered; a card payment whose
/// notification was lost while the breaker was open is settled by its
/// lookups once the card heals; each channel's notifications verify only
/// with its own secret; the breaker closes again.
#[tokio::test]
async fn a_failing_card_sends_new_payments_to_the_wallet_and_its_own_settle_once_it_heals() {
    let stack = Stack::start().await;
    let sku = unique("fallback");
    stack.gateway.load_sale(&sku, 100, 1, 1_500).await;
    let mut orders = Vec::new();
    for user in 1..=60u64 {
        orders.push((user, stack.order(user, &sku).await));
    }
    // Paid at the card before it fails; its notification will be lost.
    let (first_user, first_order) = orders[0].clone();
    let first = stack.pay(&first_order, first_user, &sku, None).await;
    assert_eq!((first.status, first.json["channel"].as_str()), (StatusCode::OK, Some("card")), "{}", first.json);
    // The breaker's window must have run once before it may open.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let faults =
        |fail_every: u32| paysim(&stack.card, Method::POST, "/v1/faults/payments", json!({"fail_every": fail_every}));
    assert_eq!(faults(10).await.0, StatusCode::OK);

    let mut next = 1;
    while stack.card_breaker() != "open" && next < orders.len() - 2 {
        let round = &orders[next..(next + 20).min(orders.len() - 2)];
        next += round.len();
        let answers = join_all(round.iter().map(|(user, order_id)| stack.pay(order_id, *user, &sku, None))).await;
        for answer in answers {
            match answer.status {
                StatusCode::OK => assert!(["card", "wallet"].contains(&answer.json["channel"].as_str().unwrap())),
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(answer.json["error"], "payment_channel_unavailable");
                    assert_eq!(
                        (&answer.json["channel"], &answer.json["available_channels"]),
                        (&json!("card"), &json!(["wallet"]))
                    );
                    assert!(answer.header("retry-after").is_some());
                }
                status => panic!("{status}: {}", answer.json),
            }
        }
    }
    assert_eq!(stack.card_breaker(), "open", "a tenth of the card's calls failing opens its breaker");
    stack.complete(&stack.card, first.json["payment_id"].as_str().unwrap(), json!({"drop": true})).await;

    // Open: a buyer naming no channel pays at the wallet; one naming the card is told of the wallet.
    let (wallet_user, wallet_order) = orders[orders.len() - 2].clone();
    let at_wallet = stack.pay(&wallet_order, wallet_user, &sku, None).await;
    assert_eq!(
        (at_wallet.status, at_wallet.json["channel"].as_str()),
        (StatusCode::OK, Some("wallet")),
        "{}",
        at_wallet.json
    );
    let (card_user, card_order) = orders[orders.len() - 1].clone();
    let refused = stack.pay(&card_order, card_user, &sku, Some("card")).await;
    assert_eq!(
        (refused.status, refused.json["error"].as_str(), &refused.json["available_channels"]),
        (StatusCode::SERVICE_UNAVAILABLE, Some("payment_channel_unavailable"), &json!(["wallet"])),
        "{}",
        refused.json
    );
    let unknown = stack.pay(&card_order, card_user, &sku, Some("cash")).await;
    assert_eq!(
        (unknown.status, unknown.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_payment_channel"))
    );

    // The wallet's notification, signed with the wallet's secret, reaches
    // its own path; the card's secret there is refused.
    let wallet_payment = at_wallet.json["payment_id"].as_str().unwrap();
    let forged = json!({
        "payment_id": wallet_payment, "merchant_order_id": wallet_order, "attach": sku,
        "amount_cents": 1_500, "status": "SUCCESS", "paid_at": "2026-12-07T12:00:00Z"
    })
    .to_string();
    let signature = paychannel::signature::sign(PAYMENT_SECRET.as_bytes(), forged.as_bytes());
    let headers = [("content-type", "application/json"), ("x-pay-signature", signature.as_str())];
    let answer = stack.gateway.request(Method::POST, "/v1/payments/notify/wallet", &headers, forged).await;
    assert_eq!((answer.status, answer.json["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("bad_signature")));
    stack.complete(&stack.wallet, wallet_payment, json!({})).await;
    assert_eq!(stack.stored(&wallet_order, "PAID").await.1, "wallet");

    // The card heals: its breaker closes, and the lost notification's
    // payment is found by asking the card.
    assert_eq!(faults(0).await.0, StatusCode::OK);
    eventually(Duration::from_secs(15), "the card's breaker to close", || async {
        let answer = stack.pay(&card_order, card_user, &sku, Some("card")).await;
        (answer.status == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(stack.card_breaker(), "closed");
    assert_eq!(stack.stored(&first_order, "PAID").await.1, "card");
    let metrics = stack.gateway.request(Method::GET, "/metrics", &[], "").await.json.as_str().unwrap().to_owned();
    assert!(metrics.contains("gateway_payment_fallbacks_total{from=\"card\",to=\"wallet\"}"), "{metrics}");
    assert!(
        metrics
            .contains("gateway_breaker_transitions_total{dependency=\"payment_channel\",channel=\"card\",to=\"open\"}"),
        "{metrics}"
    );
    stack.stop().await;
}

/// A second payment of an order already paid, made at the other channel,
/// is refunded through that channel: the refund row names it, the settler's
/// driver asks that channel, and only that channel's signed notification
/// settles it.
#[tokio::test]
async fn a_refund_goes_back_through_the_channel_its_payment_came_through() {
    let stack = Stack::start().await;
    let sku = unique("refund_channel");
    stack.gateway.load_sale(&sku, 10, 1, 2_000).await;
    let order_id = stack.order(1, &sku).await;
    let at_card = stack.pay(&order_id, 1, &sku, None).await;
    let at_wallet = stack.pay(&order_id, 1, &sku, Some("wallet")).await;
    assert_eq!(
        (at_card.status, at_wallet.status),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        at_card.json,
        at_wallet.json
    );
    assert_eq!(at_wallet.json["channel"], "wallet");
    stack.complete(&stack.card, at_card.json["payment_id"].as_str().unwrap(), json!({})).await;
    assert_eq!(stack.stored(&order_id, "PAID").await.1, "card");
    let wallet_payment = at_wallet.json["payment_id"].as_str().unwrap().to_owned();
    stack.complete(&stack.wallet, &wallet_payment, json!({})).await;
    let refunds: Vec<(String, String, String)> =
        eventually(Duration::from_secs(30), "the second payment's refund", || async {
            let rows: Vec<(String, String, String)> =
                stack.query("SELECT refund_id, payment_id, channel FROM refunds WHERE order_id = ?", &order_id).await;
            (!rows.is_empty()).then_some(rows)
        })
        .await;
    let (refund_id, payment_id, channel) = refunds[0].clone();
    assert_eq!((payment_id.as_str(), channel.as_str()), (wallet_payment.as_str(), "wallet"));

    // The card's signed word on it is not taken: the refund is not the card's.
    let done = json!({
        "refund_id": refund_id, "payment_id": wallet_payment, "merchant_order_id": order_id,
        "amount_cents": 2_000, "status": "SUCCESS", "finished_at": "2026-12-07T12:00:00Z"
    })
    .to_string();
    let signature = paychannel::signature::sign(PAYMENT_SECRET.as_bytes(), done.as_bytes());
    let headers = [("content-type", "application/json"), ("x-pay-signature", signature.as_str())];
    let answer = stack.gateway.request(Method::POST, "/v1/refunds/notify/card", &headers, done).await;
    assert_eq!(answer.status, StatusCode::OK, "the card is answered, and nothing is recorded: {}", answer.json);
    let state = || async {
        let rows: Vec<(String,)> = stack
            .query(
                "SELECT j.state FROM refund_jobs j JOIN refunds r ON r.refund_id = j.refund_id WHERE r.order_id = ?",
                &order_id,
            )
            .await;
        rows[0].0.clone()
    };
    assert_eq!(state().await, "PENDING");

    // The settler's driver asks the wallet; the wallet's notification settles it.
    let channels = Channels::over_http(&stack.gateway.app.config.payments.channels, "card", Duration::from_secs(3));
    let driver = settler::refunds::RefundDriver {
        channels,
        notify_url: format!("http://{}/v1/refunds/notify", stack.gateway.addr),
        retry_every: Duration::from_millis(300),
        max_attempts: 5,
    };
    let shards = pools(&stack.shards);
    eventually(Duration::from_secs(30), "the refund settled", || async {
        for shard in 0..stack.shards.len() {
            driver.round(&shards, shard).await.unwrap();
        }
        (state().await == "DONE").then_some(())
    })
    .await;
    let card = paychannel::client::HttpChannel::new(&stack.card, Duration::from_secs(3), PAYMENT_SECRET.as_bytes());
    let wallet = paychannel::client::HttpChannel::new(&stack.wallet, Duration::from_secs(3), WALLET_SECRET.as_bytes());
    assert!(card.query_refund(&refund_id).await.unwrap().is_none(), "the card never heard of it");
    assert!(wallet.query_refund(&refund_id).await.unwrap().is_some());
    shards.close().await;
    stack.stop().await;
}

/// The refund driver's retry budget: with the card failing every refund,
/// one round asks it about at most five of a shard's due refunds; the rest
/// stay due with their attempts unspent.
#[tokio::test]
async fn a_failing_channel_is_asked_at_most_five_times_a_round() {
    let stack = Stack::start().await;
    let sku = unique("refund_budget");
    stack.gateway.load_sale(&sku, 50, 1, 500).await;
    let mut orders = Vec::new();
    for user in 1..=12u64 {
        let order_id = stack.order(user, &sku).await;
        let started = stack.pay(&order_id, user, &sku, None).await;
        assert_eq!(started.status, StatusCode::OK, "{}", started.json);
        stack.complete(&stack.card, started.json["payment_id"].as_str().unwrap(), json!({})).await;
        orders.push((user, order_id));
    }
    let (status, body) = paysim(&stack.card, Method::POST, "/v1/faults/refunds", json!({"fail_first": 1_000})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (user, order_id) in &orders {
        stack.stored(order_id, "PAID").await;
        let body = json!({"user_id": user, "sku": sku}).to_string();
        let path = format!("/v1/orders/{order_id}/cancel");
        let answer = stack.gateway.request(Method::POST, &path, &[("content-type", "application/json")], body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
    let channels = Channels::over_http(&stack.gateway.app.config.payments.channels, "card", Duration::from_secs(3));
    let notify_url = format!("http://{}/v1/refunds/notify", stack.gateway.addr);
    let driver =
        settler::refunds::RefundDriver { channels, notify_url, retry_every: Duration::from_secs(60), max_attempts: 5 };
    let shards = pools(&stack.shards);
    let count = |shard: usize, sql: &'static str| {
        let (pool, sku) = (shards.pools[shard].clone(), sku.clone());
        async move {
            let (n,): (i64,) = sqlx::query_as(sql).bind(sku).fetch_one(&pool).await.unwrap();
            n
        }
    };
    const DUE: &str = "SELECT COUNT(*) FROM refunds WHERE sku = ?";
    const STILL_DUE: &str = "SELECT COUNT(*) FROM refund_jobs j JOIN refunds r ON r.refund_id = j.refund_id \
                             WHERE r.sku = ? AND j.next_at <= UTC_TIMESTAMP(3)";
    const ASKED: &str =
        "SELECT COUNT(*) FROM refund_attempts a JOIN refunds r ON r.refund_id = a.refund_id WHERE r.sku = ?";
    for shard in 0..stack.shards.len() {
        let due = count(shard, DUE).await;
        driver.round(&shards, shard).await.unwrap();
        assert_eq!(count(shard, ASKED).await, due.min(5), "shard {shard}: {due} due, the channel failing every call");
        assert_eq!(count(shard, STILL_DUE).await, 0, "the ones not asked moved back behind other channels' refunds");
    }
    shards.close().await;
    stack.stop().await;
}
