//! Sale windows: before the start and after the end the answer is a 409
//! from the gateway's memory, without a Redis call. One test in its own
//! binary, so the process's metrics count only its own Redis calls.

mod support;

use chrono::{Duration as Span, SecondsFormat, Utc};
use hyper::{Method, StatusCode};
use support::*;

/// How many times this process ran `reserve.lua`.
async fn reserve_calls(gateway: &TestGateway) -> f64 {
    let text = gateway.request(Method::GET, "/metrics", &[], "").await.json.as_str().unwrap().to_owned();
    text.lines()
        .filter(|line| line.starts_with("gateway_reservations_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn load_window(gateway: &TestGateway, sku: &str, starts: Span, ends: Span) {
    let at = |offset: Span| (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Millis, true);
    let body = serde_json::json!({
        "stock": 10, "per_user_limit": 5, "price_cents": 100, "starts_at": at(starts), "ends_at": at(ends)
    });
    let answer = gateway.admin(Method::PUT, &format!("/admin/skus/{sku}"), body.to_string()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

#[tokio::test]
async fn outside_its_window_a_sale_is_refused_from_memory() {
    let topic = fresh_topic(1).await;
    let config = gateway_config(&topic, &["mysql://unused@127.0.0.1/x".into()]);
    let gateway = TestGateway::start(config.clone()).await;

    let early = unique("early");
    load_window(&gateway, &early, Span::hours(1), Span::hours(2)).await;
    let before = gateway.place(1, &early, 1, "e1").await;
    assert_eq!((before.status, before.json["error"].as_str()), (StatusCode::CONFLICT, Some("sale_not_started")));
    assert!(before.json["starts_at"].as_str().is_some_and(|at| at.ends_with('Z')));

    let late = unique("late");
    load_window(&gateway, &late, Span::hours(-2), Span::hours(-1)).await;
    let after = gateway.place(1, &late, 1, "l1").await;
    assert_eq!(after.json, serde_json::json!({"error": "sale_ended"}));
    assert_eq!(reserve_calls(&gateway).await, 0.0, "no Redis trip for either");

    let open = unique("open");
    load_window(&gateway, &open, Span::hours(-1), Span::hours(1)).await;
    assert_eq!(gateway.place(1, &open, 1, "o1").await.status, StatusCode::ACCEPTED);
    assert_eq!(reserve_calls(&gateway).await, 1.0);
    assert_eq!(gateway.sale(&early).await["stock"], 10, "nothing was taken outside the window");

    // A second gateway that did not load the sale learns the window from
    // Redis's refusal once, then answers from memory.
    let other = TestGateway::start(gateway::config::Config {
        server: gateway::config::Server { node_id: 1, ..config.server.clone() },
        ..config
    })
    .await;
    assert_eq!(other.place(2, &early, 1, "e2").await.json["error"], "sale_not_started");
    assert_eq!(reserve_calls(&other).await, 2.0, "one trip to learn the window");
    assert_eq!(other.place(3, &early, 1, "e3").await.json["error"], "sale_not_started");
    assert_eq!(reserve_calls(&other).await, 2.0, "then none");

    let bad = gateway
        .admin(Method::PUT, &format!("/admin/skus/{}", unique("bad")), r#"{"stock": 1, "per_user_limit": 1, "price_cents": 1, "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}"#)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
