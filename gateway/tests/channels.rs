//! Storefront channels against real Redis, broker and MariaDB: every order
//! records the channel whose key it came with (a single order, each item of
//! a checkout), the merchant's figures per channel count them, and the
//! answers are counted per channel in `/metrics`.

mod support;

use std::time::Duration;

use gateway::config::{Channel, Channels};
use hyper::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::*;

fn channel(key: &str) -> Channel {
    Channel { key_sha256: vec![hex::encode(Sha256::digest(key.as_bytes()))], ..Channel::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_records_its_channel_and_the_figures_count_them_per_channel() {
    let topic = fresh_topic(2).await;
    let shards = fresh_shards(2).await;
    let mut config = gateway_config(&topic, &shards);
    config.traffic.channels = Channels {
        required: false,
        list: [("web".to_owned(), channel("web-key")), ("partner".to_owned(), channel("partner-key"))].into(),
    };
    let gateway = TestGateway::start(config).await;
    let settler = TestSettler::start(settler_config(&topic, &shards));
    let sku = unique("by_channel");
    gateway.load_sale(&sku, 100, 5, 1_000).await;

    let mut placed = Vec::new();
    for (user, key) in [(1, Some("web-key")), (2, Some("web-key")), (3, Some("partner-key")), (4, None)] {
        let auth = format!("Bearer {}", buyer_token(user));
        let idempotency = format!("k{user}");
        let mut headers = vec![
            ("content-type", "application/json"),
            ("idempotency-key", idempotency.as_str()),
            ("authorization", auth.as_str()),
        ];
        if let Some(key) = key {
            headers.push(("x-channel-key", key));
        }
        let body = json!({"sku": sku, "qty": 1}).to_string();
        let answer = gateway.request(Method::POST, "/v1/orders", &headers, body).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
        placed.push(answer.json["order_id"].as_str().unwrap().to_owned());
    }
    // A partner's cart: each item records the partner.
    let auth = format!("Bearer {}", buyer_token(5));
    let headers = [
        ("content-type", "application/json"),
        ("idempotency-key", "cart-1"),
        ("authorization", auth.as_str()),
        ("x-channel-key", "partner-key"),
    ];
    let cart = json!({"lines": [{"sku": sku, "qty": 2}]}).to_string();
    let checkout = gateway.request(Method::POST, "/v1/checkout", &headers, cart).await;
    assert_eq!(checkout.status, StatusCode::CREATED, "{}", checkout.json);
    assert_eq!(checkout.json["channel"], "partner");
    let item = checkout.json["sub_orders"][0]["items"][0]["order_id"].as_str().unwrap().to_owned();

    let stored = |order_id: String| {
        let shards = pools(&shards);
        async move {
            let id: order::id::OrderId = order_id.parse().unwrap();
            let channel = eventually(Duration::from_secs(30), "the order stored", || async {
                let row: Option<(Option<String>,)> = sqlx::query_as("SELECT channel FROM orders WHERE order_id = ?")
                    .bind(id.raw() as i64)
                    .fetch_optional(shards.for_order(id))
                    .await
                    .unwrap();
                row
            })
            .await
            .0;
            shards.close().await;
            channel
        }
    };
    let mut channels = Vec::new();
    for order_id in placed.iter().cloned().chain([item]) {
        channels.push(stored(order_id).await);
    }
    let web = Some("web".to_owned());
    let partner = Some("partner".to_owned());
    assert_eq!(channels, [web.clone(), web, partner.clone(), None, partner]);

    let figures = gateway.admin(Method::GET, "/admin/channels/partner/stats", "").await;
    assert_eq!(figures.status, StatusCode::OK, "{}", figures.json);
    assert_eq!(
        figures.json["orders"]["PENDING_PAYMENT"],
        json!({"count": 2, "amount_cents": 3_000}),
        "the partner's order and its cart's item: {}",
        figures.json
    );
    let unknown = gateway.admin(Method::GET, "/admin/channels/nobody/stats", "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // The recorder is the process's: other tests of this file count too.
    let metrics = gateway.request(Method::GET, "/metrics", &[], "").await.json.as_str().unwrap().to_owned();
    let count = |series: &str| {
        metrics.lines().find_map(|line| line.strip_prefix(series)).map_or(0.0, |n| n.trim().parse::<f64>().unwrap())
    };
    assert!(
        count("gateway_channel_orders_total{channel=\"web\",route=\"place_order\",status=\"202\"}") >= 2.0,
        "{metrics}"
    );
    assert!(count("gateway_channel_orders_total{channel=\"partner\",route=\"checkout\",status=\"201\"}") >= 1.0);
    assert!(count("process_resident_memory_bytes") > 0.0, "the process's figures are served beside");
    settler.stop().await;
    drop_shards(&shards).await;
}

/// A partner with a share of 3 units: its orders and carts together hold
/// at most 3 of the sale; another channel is not held by it; a cancelled
/// order's unit comes back to the share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_gets_at_most_its_share_of_a_sale() {
    let topic = fresh_topic(2).await;
    let shards = fresh_shards(2).await;
    let mut config = gateway_config(&topic, &shards);
    let partner = Channel { max_units_per_sale: Some(3), ..channel("partner-key") };
    config.traffic.channels = Channels {
        required: false,
        list: [("web".to_owned(), channel("web-key")), ("partner".to_owned(), partner)].into(),
    };
    let gateway = TestGateway::start(config).await;
    let settler = TestSettler::start(settler_config(&topic, &shards));
    let sku = unique("share");
    gateway.load_sale(&sku, 100, 5, 1_000).await;
    let send = |path: &'static str, user: u64, key: &'static str, idempotency: String, body: serde_json::Value| {
        let gateway = &gateway;
        async move {
            let auth = format!("Bearer {}", buyer_token(user));
            let headers = [
                ("content-type", "application/json"),
                ("idempotency-key", idempotency.as_str()),
                ("authorization", auth.as_str()),
                ("x-channel-key", key),
            ];
            gateway.request(Method::POST, path, &headers, body.to_string()).await
        }
    };
    let order =
        |user: u64, key: &'static str| send("/v1/orders", user, key, format!("o{user}"), json!({"sku": sku, "qty": 1}));
    let cart = |user: u64, qty: u32| {
        send("/v1/checkout", user, "partner-key", format!("c{user}"), json!({"lines": [{"sku": sku, "qty": qty}]}))
    };

    let first = order(1, "partner-key").await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.json);
    assert_eq!(order(2, "partner-key").await.status, StatusCode::ACCEPTED);
    let refused = cart(3, 2).await;
    assert_eq!(
        (refused.status, refused.json["error"].as_str(), refused.json["sku"].as_str()),
        (StatusCode::CONFLICT, Some("channel_share_taken"), Some(sku.as_str())),
        "{}",
        refused.json
    );
    assert_eq!(cart(4, 1).await.status, StatusCode::CREATED, "one unit of the share is left");
    let over = order(5, "partner-key").await;
    assert_eq!(
        (over.status, over.json["error"].as_str(), over.json["held"].as_i64()),
        (StatusCode::CONFLICT, Some("channel_share_taken"), Some(3))
    );
    assert_eq!(order(6, "web-key").await.status, StatusCode::ACCEPTED, "the web is not held by the partner's share");

    let order_id = first.json["order_id"].as_str().unwrap();
    let auth = format!("Bearer {}", buyer_token(1));
    let headers = [("content-type", "application/json"), ("authorization", auth.as_str())];
    let body = json!({"sku": sku}).to_string();
    let cancelled = gateway.request(Method::POST, &format!("/v1/orders/{order_id}/cancel"), &headers, body).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.json);
    assert_eq!(order(7, "partner-key").await.status, StatusCode::ACCEPTED, "the cancelled unit is the partner's again");
    settler.stop().await;
    drop_shards(&shards).await;
}
