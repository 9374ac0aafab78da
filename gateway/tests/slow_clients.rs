//! Slow, idle and oversized clients against real sockets: each is closed
//! on time (or answered), none holds an in-flight slot, and a buyer orders
//! while they hang on. No timing is asserted, only that closes happen and
//! within a generous bound.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hyper::StatusCode;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far above the gateway's timeouts below: a close must come before it.
const CLOSED_WITHIN: Duration = Duration::from_secs(20);

async fn gateway(shards: &[String], tweak: impl FnOnce(&mut gateway::config::Config)) -> TestGateway {
    let topic = fresh_topic(1).await;
    let mut config = gateway_config(&topic, shards);
    config.server.header_read_timeout_ms = 500;
    config.server.body_read_timeout_ms = 500;
    tweak(&mut config);
    TestGateway::start(config).await
}

/// Reads until the peer closes; what it sent, or `None` if it did not close in time.
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(CLOSED_WITHIN, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|_| String::from_utf8_lossy(&seen).into_owned())
}

/// The head of an order of user 1 with a 100-byte body.
fn order_head() -> String {
    format!(
        "POST /v1/orders HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {}\r\nIdempotency-Key: slow-1\r\nContent-Length: 100\r\n\r\n",
        buyer_token(1)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_and_never_keep_a_buyer_out() {
    let shards = fresh_shards(1).await;
    // As many in-flight slots as slow bodies: if a slow body held one, the
    // buyer below would be turned away with 503 overloaded.
    let gateway = gateway(&shards, |config| config.traffic.max_in_flight = 20).await;
    let sku = unique("slow");
    gateway.load_sale(&sku, 10, 10, 100).await;

    let head = order_head();
    let mut slow_headers = Vec::new();
    let mut slow_bodies = Vec::new();
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
        stream.write_all(&head.as_bytes()[..20]).await.unwrap();
        slow_headers.push(stream);
        let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(b"{").await.unwrap();
        slow_bodies.push(stream);
        idle.push(TcpStream::connect(gateway.addr).await.unwrap());
    }
    // The slow header keeps dribbling, a byte at a time.
    let dribble = tokio::spawn(async move {
        for i in 20..head.len() {
            for stream in &mut slow_headers {
                if stream.write_all(&head.as_bytes()[i..i + 1]).await.is_err() {
                    return slow_headers;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        slow_headers
    });

    let answer = gateway.place(1, &sku, 1, "buyer-1").await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "a buyer orders while 60 slow sockets hang on: {}", answer.json);

    for mut stream in slow_bodies {
        let seen = read_until_closed(&mut stream).await.expect("a slow body is closed");
        assert!(seen.starts_with("HTTP/1.1 408"), "a slow body gets 408: {seen}");
        assert!(seen.contains("request_timeout"), "{seen}");
    }
    for mut stream in idle {
        assert!(read_until_closed(&mut stream).await.is_some(), "an idle connection is closed");
    }
    for mut stream in dribble.await.unwrap() {
        let seen = read_until_closed(&mut stream).await.expect("a slow header is closed");
        assert!(!seen.contains(" 202 "), "a slow header never got through: {seen}");
    }
    let metrics = gateway.request(hyper::Method::GET, "/metrics", &[], "").await.json.as_str().unwrap().to_owned();
    assert!(metrics.contains("gateway_slow_clients_total{stage=\"body\"}"), "slow bodies are counted");
    drop_shards(&shards).await;
}

/// A client that pipelines requests and never reads the answers is dropped
/// once the socket buffers are full and the gateway's write stalls.
#[tokio::test]
async fn a_client_that_stops_reading_is_dropped() {
    let gateway = gateway(&["mysql://unused@127.0.0.1:1/x".into()], |config| {
        config.server.write_timeout_ms = 500;
        config.server.header_read_timeout_ms = 60_000;
    })
    .await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    // Far more answer than loopback buffers hold (each /openapi.json is ~20 KiB).
    let request = b"GET /openapi.json HTTP/1.1\r\nHost: gateway\r\n\r\n";
    for _ in 0..2_000 {
        if stream.write_all(request).await.is_err() {
            break;
        }
    }
    let metrics =
        || async { gateway.request(hyper::Method::GET, "/metrics", &[], "").await.json.as_str().unwrap().to_owned() };
    eventually(Duration::from_secs(20), "the stalled write given up", || async {
        metrics().await.contains("gateway_slow_clients_total{stage=\"write\"}").then_some(())
    })
    .await;
    drop(stream);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_answer() {
    let gateway = gateway(&["mysql://unused@127.0.0.1:1/x".into()], |_| {}).await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n").await.unwrap();
    let seen = read_until_closed(&mut stream).await.expect("closed once idle past the header timeout");
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
}

#[tokio::test]
async fn an_oversized_body_always_gets_its_413() {
    let gateway = gateway(&["mysql://unused@127.0.0.1:1/x".into()], |config| {
        config.server.body_read_timeout_ms = 10_000;
    })
    .await;
    let body = vec![b' '; 1024 * 1024];
    for attempt in 0..5 {
        let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
        let head = format!(
            "POST /v1/orders HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {}\r\nIdempotency-Key: big-{attempt}\r\nContent-Length: {}\r\n\r\n",
            buyer_token(1),
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // As a phone sends: in pieces, so the answer could come before the end.
        for piece in body.chunks(64 * 1024) {
            stream.write_all(piece).await.expect("the whole body is taken in, not reset");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let seen = read_until_closed(&mut stream).await.expect("answered and closed");
        assert!(seen.starts_with("HTTP/1.1 413"), "attempt {attempt}: {seen:?}");
        assert!(seen.contains("payload_too_large"), "{seen}");
    }
}

#[tokio::test]
async fn connections_past_the_per_address_cap_are_closed_at_once() {
    let gateway = gateway(&["mysql://unused@127.0.0.1:1/x".into()], |config| {
        config.server.header_read_timeout_ms = 30_000;
        config.server.max_connections_per_ip = 5;
    })
    .await;
    let open: Vec<TcpStream> = futures::future::join_all((0..5).map(|_| TcpStream::connect(gateway.addr)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // Each of the five is served: a request on it is answered.
    let addr: SocketAddr = gateway.addr;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n").await;
    let seen = read_until_closed(&mut extra).await.expect("the sixth is closed");
    assert!(seen.starts_with("HTTP/1.1 503"), "the sixth is told and closed: {seen}");
    assert!(seen.contains("too_many_connections"), "{seen}");

    drop(open);
    let answered = eventually(Duration::from_secs(10), "a place to free up", || async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n").await.ok()?;
        let seen = read_until_closed(&mut stream).await?;
        seen.starts_with("HTTP/1.1 200").then_some(seen)
    })
    .await;
    assert!(answered.contains("ok"));
}
