//! Who the buyer is: only a token signed by a configured key names a buyer,
//! a body cannot speak for another user, and an order is seen, paid or
//! cancelled only by its buyer (anyone else gets 404, so ids leak nothing).

mod support;

use std::time::Duration;

use gateway::config::{AuthMode, KeyAlgorithm, TokenKey, DEV_TOKEN_SECRET};
use hyper::{Method, StatusCode};
use serde_json::json;
use support::*;

const JSON: (&str, &str) = ("content-type", "application/json");

/// A test key pair for ES256 (the issuer's private key, our public key).
const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkScxYXlpVoO9jEYF
tzRtDfkXlJVhGuctrHGK0Gd4Nm+hRANCAATIygLqigIhiqP83ANWOCTn37Sw2j1f
zfst8CypcXYAgohmYIxjs/+IwdzMzs5LF1ppVBrV/FKX03Clzpye9hO2
-----END PRIVATE KEY-----
";
const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEyMoC6ooCIYqj/NwDVjgk59+0sNo9
X837LfAsqXF2AIKIZmCMY7P/iMHczM7OSxdaaVQa1fxSl9Nwpc6cnvYTtg==
-----END PUBLIC KEY-----
";

async fn place_with(gateway: &TestGateway, auth: Option<String>, body: serde_json::Value) -> Answer {
    // An empty Authorization stands for none (the test client adds one otherwise).
    let auth = auth.map_or(String::new(), |token| format!("Bearer {token}"));
    let headers = [JSON, ("idempotency-key", "auth-1"), ("authorization", &auth)];
    gateway.request(Method::POST, "/v1/orders", &headers, body.to_string()).await
}

/// `header.claims` encoded, unsigned.
fn unsigned(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    use base64::Engine;
    let part = |value: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}", part(header), part(claims))
}

/// A token with any header, HS256-signed with `secret` whatever the header says.
fn token(header: serde_json::Value, claims: serde_json::Value, secret: &str) -> String {
    let signing_input = unsigned(&header, &claims);
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    format!("{signing_input}.{signature}")
}

#[tokio::test]
async fn only_a_valid_token_names_a_buyer() {
    // Refused before anything reaches Redis: point the gateway at nothing.
    let mut config = gateway_config("unused", &["mysql://unused@127.0.0.1:1/x".into()]);
    config.redis.url = "redis://127.0.0.1:1".into();
    let gateway = TestGateway::start(config).await;
    let body = json!({"sku": "tv", "qty": 1});
    let now = chrono::Utc::now().timestamp();
    let hs = json!({"alg": "HS256", "typ": "JWT", "kid": "dev"});
    let cases = [
        ("no token", None),
        ("not a JWT", Some("not-a-token".to_owned())),
        ("forged: signed with another key", Some(sign_token(1, 600, "someone-elses-signing-key"))),
        ("expired past the leeway", Some(sign_token(1, -60, DEV_TOKEN_SECRET))),
        (
            "unknown key id",
            Some(token(json!({"alg": "HS256", "kid": "old"}), json!({"sub": "1", "exp": now + 600}), DEV_TOKEN_SECRET)),
        ),
        (
            "alg none",
            Some(format!(
                "{}.",
                unsigned(&json!({"alg": "none", "kid": "dev"}), &json!({"sub": "1", "exp": now + 600}))
            )),
        ),
        ("no exp", Some(token(hs.clone(), json!({"sub": "1"}), DEV_TOKEN_SECRET))),
        ("no sub", Some(token(hs.clone(), json!({"exp": now + 600}), DEV_TOKEN_SECRET))),
        ("sub not a user id", Some(token(hs.clone(), json!({"sub": "alice", "exp": now + 600}), DEV_TOKEN_SECRET))),
        ("sub zero", Some(token(hs.clone(), json!({"sub": "0", "exp": now + 600}), DEV_TOKEN_SECRET))),
    ];
    for (case, auth) in cases {
        let answer = place_with(&gateway, auth, body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{case}: {}", answer.json);
        assert_eq!(answer.json["error"], "unauthenticated", "{case}");
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"), "{case}");
    }
    // A good token with another user's id in the body: 403, whoever signed.
    let answer = place_with(&gateway, Some(buyer_token(1)), json!({"user_id": 2, "sku": "tv", "qty": 1})).await;
    assert_eq!((answer.status, answer.json["error"].as_str()), (StatusCode::FORBIDDEN, Some("user_mismatch")));
    // A good token gets past auth (and finds Redis away: 503, not 401).
    let answer = place_with(&gateway, Some(buyer_token(1)), body.clone()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.json);
}

#[tokio::test]
async fn es256_keys_verify_and_several_keys_rotate_by_kid() {
    let mut config = gateway_config("unused", &["mysql://unused@127.0.0.1:1/x".into()]);
    config.redis.url = "redis://127.0.0.1:1".into();
    config.auth.keys.push(TokenKey {
        kid: "issuer-2026".into(),
        algorithm: KeyAlgorithm::ES256,
        secret: None,
        public_key_pem: Some(EC_PUBLIC.into()),
    });
    let gateway = TestGateway::start(config).await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("issuer-2026".into());
    let claims = json!({"sub": "42", "exp": chrono::Utc::now().timestamp() + 600});
    let es =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap())
            .unwrap();
    for auth in [es.clone(), buyer_token(42)] {
        let answer = place_with(&gateway, Some(auth), json!({"sku": "tv", "qty": 1})).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "both keys verify: {}", answer.json);
    }
    // The ES256 key's id with an HS256 signature made with its public key: refused.
    let confused = token(json!({"alg": "HS256", "kid": "issuer-2026"}), claims, EC_PUBLIC);
    let answer = place_with(&gateway, Some(confused), json!({"sku": "tv", "qty": 1})).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
}

#[tokio::test]
async fn a_user_header_is_believed_only_from_a_trusted_proxy() {
    let mut config = gateway_config("unused", &["mysql://unused@127.0.0.1:1/x".into()]);
    config.redis.url = "redis://127.0.0.1:1".into();
    config.auth.mode = AuthMode::TrustedHeader;
    let untrusted = TestGateway::start(config.clone()).await;
    config.traffic.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let behind_proxy = TestGateway::start(config).await;
    let headers = [JSON, ("idempotency-key", "hdr-1"), ("x-user-id", "7"), ("authorization", "none")];
    let body = json!({"sku": "tv", "qty": 1}).to_string();
    let answer = untrusted.request(Method::POST, "/v1/orders", &headers, body.clone()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "from an untrusted peer: {}", answer.json);
    let answer = behind_proxy.request(Method::POST, "/v1/orders", &headers, body.clone()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "from the proxy: {}", answer.json);
    // A client's own header in front of the proxy's is not believed.
    let twice = [JSON, ("idempotency-key", "hdr-2"), ("x-user-id", "8"), ("x-user-id", "7"), ("authorization", "none")];
    let answer = behind_proxy.request(Method::POST, "/v1/orders", &twice, body).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "two user headers: {}", answer.json);
}

#[tokio::test]
async fn a_configured_issuer_and_audience_must_be_in_the_token() {
    let mut config = gateway_config("unused", &["mysql://unused@127.0.0.1:1/x".into()]);
    config.redis.url = "redis://127.0.0.1:1".into();
    config.auth.issuer = Some("shop".into());
    config.auth.audience = Some("flash-sale".into());
    let gateway = TestGateway::start(config).await;
    let exp = chrono::Utc::now().timestamp() + 600;
    let hs = json!({"alg": "HS256", "kid": "dev"});
    let body = json!({"sku": "tv", "qty": 1});
    for (case, claims, status) in [
        ("neither", json!({"sub": "1", "exp": exp}), StatusCode::UNAUTHORIZED),
        ("no aud", json!({"sub": "1", "exp": exp, "iss": "shop"}), StatusCode::UNAUTHORIZED),
        (
            "another issuer",
            json!({"sub": "1", "exp": exp, "iss": "other", "aud": "flash-sale"}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "not valid yet",
            json!({"sub": "1", "exp": exp, "iss": "shop", "aud": "flash-sale", "nbf": exp}),
            StatusCode::UNAUTHORIZED,
        ),
        ("both", json!({"sub": "1", "exp": exp, "iss": "shop", "aud": "flash-sale"}), StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let answer = place_with(&gateway, Some(token(hs.clone(), claims, DEV_TOKEN_SECRET)), body.clone()).await;
        assert_eq!(answer.status, status, "{case}: {}", answer.json);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_its_buyer_sees_pays_or_cancels_an_order() {
    let topic = fresh_topic(1).await;
    let shards = fresh_shards(1).await;
    let gateway = TestGateway::start(gateway_config(&topic, &shards)).await;
    let settler = TestSettler::start(settler_config(&topic, &shards));
    let sku = unique("mine");
    gateway.load_sale(&sku, 10, 10, 100).await;
    let placed = place_with(&gateway, Some(buyer_token(1)), json!({"sku": sku, "qty": 1})).await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{}", placed.json);
    let order_id = placed.json["order_id"].as_str().unwrap().to_owned();
    let as_user = |user: u64| format!("Bearer {}", buyer_token(user));
    let get = |user: u64| {
        let (gateway, path, auth) = (&gateway, format!("/v1/orders/{order_id}"), as_user(user));
        async move { gateway.request(Method::GET, &path, &[("authorization", &auth)], "").await }
    };
    eventually(Duration::from_secs(30), "the order stored", || async {
        (get(1).await.status == StatusCode::OK).then_some(())
    })
    .await;
    let theirs = get(2).await;
    assert_eq!((theirs.status, theirs.json["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_order")));

    let body = json!({"sku": sku}).to_string();
    for action in ["pay", "cancel"] {
        let path = format!("/v1/orders/{order_id}/{action}");
        let answer = gateway.request(Method::POST, &path, &[JSON, ("authorization", &as_user(2))], body.clone()).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "another buyer's {action}: {}", answer.json);
    }
    let path = format!("/v1/orders/{order_id}/cancel");
    let answer = gateway.request(Method::POST, &path, &[JSON, ("authorization", &as_user(1))], body.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "its buyer cancels: {}", answer.json);

    // No longer held: its buyer is told why, anyone else learns nothing.
    let path = format!("/v1/orders/{order_id}/pay");
    let status_for = |user: u64| {
        let (gateway, path, body, auth) = (&gateway, path.clone(), body.clone(), as_user(user));
        async move { gateway.request(Method::POST, &path, &[JSON, ("authorization", &auth)], body).await }
    };
    let mine = eventually(Duration::from_secs(30), "the cancellation stored", || async {
        let answer = status_for(1).await;
        (answer.status == StatusCode::CONFLICT && answer.json["status"] == "CANCELLED").then_some(answer)
    })
    .await;
    assert_eq!(mine.json["error"], "order_not_pending");
    assert_eq!(status_for(2).await.status, StatusCode::NOT_FOUND, "another buyer cannot tell");
    settler.stop().await;
    drop_shards(&shards).await;
}
