//! Bad input gets a 4xx with a JSON error naming the problem, never a 5xx,
//! and the gateway stays up. Nothing here reaches Redis or Kafka.

mod support;

use hyper::{Method, StatusCode};
use rand::{Rng, SeedableRng};
use support::*;

async fn gateway() -> TestGateway {
    // Bad input is refused before any dependency is used: point the
    // gateway at nothing to prove it.
    let mut config = gateway_config("unused", &["mysql://unused@127.0.0.1:1/x".into()]);
    config.redis.url = "redis://127.0.0.1:1".into();
    config.kafka.bootstrap = "127.0.0.1:1".into();
    TestGateway::start(config).await
}

const JSON: (&str, &str) = ("content-type", "application/json");
const KEY: (&str, &str) = ("idempotency-key", "key-1");

#[tokio::test]
async fn each_malformed_request_gets_its_status_and_error() {
    let gateway = gateway().await;
    let good = r#"{"user_id": 1, "sku": "tv", "qty": 1}"#;
    let long_key = "k".repeat(65);
    // (case, headers, body, status, error code)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, String, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        ("malformed json", vec![JSON, KEY], "{\"user_id\": 1,".into(), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            "wrong type",
            vec![JSON, KEY],
            r#"{"user_id": "1", "sku": "tv", "qty": 1}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "missing field",
            vec![JSON, KEY],
            r#"{"user_id": 1, "qty": 1}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "zero qty",
            vec![JSON, KEY],
            r#"{"user_id": 1, "sku": "tv", "qty": 0}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "negative qty",
            vec![JSON, KEY],
            r#"{"user_id": 1, "sku": "tv", "qty": -2}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "qty too large",
            vec![JSON, KEY],
            r#"{"user_id": 1, "sku": "tv", "qty": 101}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "bad sku",
            vec![JSON, KEY],
            r#"{"user_id": 1, "sku": "t v", "qty": 1}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        ("no key", vec![JSON], good.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("bad key", vec![JSON, ("idempotency-key", "a b")], good.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            "long key",
            vec![JSON, ("idempotency-key", long_key.as_str())],
            good.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "not json",
            vec![("content-type", "text/plain"), KEY],
            good.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        ("no content type", vec![KEY], good.into(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (
            "too large",
            vec![JSON, KEY],
            format!(r#"{{"user_id": 1, "sku": "tv", "qty": 1, "pad": "{}"}}"#, "x".repeat(20_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (name, headers, body, status, error) in cases {
        let answer = gateway.request(Method::POST, "/v1/orders", &headers, body).await;
        assert_eq!(answer.status, status, "{name}: {}", answer.json);
        assert_eq!(answer.json["error"], error, "{name}");
        assert_eq!(answer.header("content-type"), Some("application/json"), "{name}");
        if status == StatusCode::BAD_REQUEST {
            assert!(answer.json["detail"].as_str().is_some_and(|d| !d.is_empty()), "{name}: no detail");
        }
    }
    let detail = gateway.request(Method::POST, "/v1/orders", &[JSON, KEY], r#"{"user_id": 1, "qty": 1}"#).await;
    assert!(detail.json["detail"].as_str().unwrap().contains("sku"), "the detail names the field");

    let wrong_method = gateway.request(Method::DELETE, "/v1/orders", &[], "").await;
    assert_eq!(
        (wrong_method.status, wrong_method.header("allow")),
        (StatusCode::METHOD_NOT_ALLOWED, Some("GET, POST"))
    );
    let nowhere = gateway.request(Method::GET, "/v2/anything", &[], "").await;
    assert_eq!((nowhere.status, nowhere.json["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

#[tokio::test]
async fn thousands_of_random_bodies_get_4xx_and_the_gateway_stays_up() {
    let gateway = gateway().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let fragments = [
        "{",
        "}",
        "[",
        "]",
        "\"user_id\"",
        "\"sku\"",
        "\"qty\"",
        ":",
        ",",
        "1",
        "-1",
        "0",
        "1e9",
        "null",
        "true",
        "\"tv\"",
        "\"\\u0000\"",
        "18446744073709551616",
        "\"qty\": 1",
        "\u{1F4A5}",
        " ",
        "\"",
        "\\",
    ];
    for round in 0..3_000 {
        let body: Vec<u8> = if round % 3 == 0 {
            (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect()
        } else {
            (0..rng.gen_range(1..12))
                .map(|_| fragments[rng.gen_range(0..fragments.len())])
                .collect::<String>()
                .into_bytes()
        };
        let answer = gateway.request(Method::POST, "/v1/orders", &[JSON, KEY], body.clone()).await;
        assert!(
            answer.status.is_client_error(),
            "body {:?} got {}: {}",
            String::from_utf8_lossy(&body),
            answer.status,
            answer.json
        );
        assert!(answer.json["error"].is_string());
    }
    assert_eq!(gateway.request(Method::GET, "/healthz", &[], "").await.status, StatusCode::OK);
}

/// Sends raw HTTP/1.1 bytes and returns the status line and the body.
async fn raw_exchange(gateway: &TestGateway, head: &str, chunks: &[Vec<u8>]) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in chunks {
        // The server may answer and close before the body is all sent.
        if stream.write_all(chunk).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_refused_with_413() {
    let gateway = gateway().await;
    // No Content-Length: the limit must hold while streaming.
    let head = &format!(
        "POST /v1/orders HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {}\r\nIdempotency-Key: chunky\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        buyer_token(1)
    );
    let chunk = |size: usize| [format!("{size:x}\r\n").into_bytes(), vec![b' '; size], b"\r\n".to_vec()].concat();
    let chunks: Vec<Vec<u8>> = (0..20).map(|_| chunk(1_024)).chain([b"0\r\n\r\n".to_vec()]).collect();
    let (status, body) = raw_exchange(&gateway, head, &chunks).await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(body.contains("payload_too_large"), "{body}");

    // Just under the limit, the same stream is read and judged on its content.
    let small: Vec<Vec<u8>> = (0..15).map(|_| chunk(1_024)).chain([b"0\r\n\r\n".to_vec()]).collect();
    let (status, body) = raw_exchange(&gateway, head, &small).await;
    assert!(status.contains(" 400 "), "{status}: {body}");
}

#[tokio::test]
async fn malformed_bodies_on_the_notify_and_admin_routes_get_400() {
    let gateway = gateway().await;
    let secret = gateway.app.config.payments.channels["card"].secret.clone();
    for body in ["{\"payment_id\":", "{\"unexpected\": 1}", "[]", "\u{0}"] {
        // Signed, so the refusal is about the body itself.
        let signature = paychannel::signature::sign(secret.expose().as_bytes(), body.as_bytes());
        let headers = [JSON, ("x-pay-signature", signature.as_str())];
        let answer = gateway.request(Method::POST, "/v1/payments/notify", &headers, body).await;
        assert_eq!(
            (answer.status, answer.json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{body}"
        );
    }
    for (method, body) in [
        (Method::PUT, "{\"stock\": 1,"),
        (Method::PUT, r#"{"stock": 1, "per_user_limit": 1, "price_cents": 1, "colour": "red"}"#),
        (Method::PUT, r#"{"stock": "many", "per_user_limit": 1, "price_cents": 1}"#),
        (Method::PATCH, "{\"add_units\":"),
        (Method::PATCH, r#"{"add_units": 1.5}"#),
        (Method::PATCH, r#"{"window": {"starts_at": "yesterday"}}"#),
    ] {
        let answer = gateway.admin(method.clone(), "/admin/skus/tv", body).await;
        assert_eq!(
            (answer.status, answer.json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{method} {body}"
        );
    }
}
