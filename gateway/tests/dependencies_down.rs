//! A failed dependency gets a 503 with `Retry-After`, and a failed request
//! keeps no stock.

mod support;

use hyper::{Method, StatusCode};
use support::*;

#[tokio::test]
async fn broker_down_answers_503_and_gives_the_units_back() {
    // Redis is real; the broker address is a closed port.
    let mut config = gateway_config("order-events", &["mysql://unused@127.0.0.1:1/x".into()]);
    config.kafka.bootstrap = "127.0.0.1:1".into();
    config.kafka.message_timeout_ms = 1_000;
    let gateway = TestGateway::start(config).await;
    let sku = unique("kafka_down");
    gateway.load_sale(&sku, 10, 5, 500).await;

    for user in 1..=3u64 {
        let answer = gateway.place(user, &sku, 2, &format!("k{user}")).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.json);
        assert_eq!(answer.json, serde_json::json!({"error": "unavailable", "dependency": "kafka"}));
        assert_eq!(answer.header("retry-after"), Some("1"));
    }
    let sale = gateway.sale(&sku).await;
    assert_eq!((sale["stock"].as_i64(), sale["reserved"].as_i64()), (Some(10), Some(0)), "no unit stays locked");

    // The client's retry with the same key is a fresh attempt, not a replay.
    let retry = gateway.place(1, &sku, 2, "k1").await;
    assert_eq!(retry.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.json["dependency"], "kafka");

    let ready = gateway.request(Method::GET, "/readyz", &[], "").await;
    assert_eq!((ready.status, ready.json["kafka"].as_bool()), (StatusCode::SERVICE_UNAVAILABLE, Some(false)));
}

#[tokio::test]
async fn redis_down_answers_503_fast() {
    let mut config = gateway_config("order-events", &["mysql://unused@127.0.0.1:1/x".into()]);
    config.redis.url = "redis://127.0.0.1:1".into();
    config.redis.command_timeout_ms = 200;
    let gateway = TestGateway::start(config).await;

    let answer = gateway.place(1, "any_sku", 1, "k").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.json);
    assert_eq!(answer.json, serde_json::json!({"error": "unavailable", "dependency": "redis"}));

    let admin = gateway.admin(Method::GET, "/admin/skus/any_sku", "").await;
    assert_eq!(admin.status, StatusCode::SERVICE_UNAVAILABLE);
    let ready = gateway.request(Method::GET, "/readyz", &[], "").await;
    assert_eq!((ready.status, ready.json["redis"].as_bool()), (StatusCode::SERVICE_UNAVAILABLE, Some(false)));
}
