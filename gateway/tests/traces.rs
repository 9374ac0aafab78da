//! One order followed across the pipeline: the gateway and settler binaries
//! run as processes with `[tracing]` pointed at an OTLP/HTTP receiver in
//! this test, against the real Redis, Kafka and MariaDB; an order placed
//! and then cancelled gives two traces, each one trace across both
//! processes (the trace context crosses in the Kafka message's headers);
//! an order left unpaid expires in a trace the settler's sweeper starts; a
//! message with a header key that is not UTF-8 does not stop the settler.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use rdkafka::config::ClientConfig;
use rdkafka::message::{BorrowedHeaders, Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use support::{
    drop_shards, eventually, fresh_shards, fresh_topic, json_request, kafka_bootstrap, namespace, redis_url, unique,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: HashMap<String, String>,
    start_unix_nano: u64,
    duration: Duration,
}

fn text(values: &[KeyValue]) -> HashMap<String, String> {
    values
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => s.clone(),
                AnyValue::IntValue(i) => i.to_string(),
                other => format!("{other:?}"),
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

/// An OTLP/HTTP traces receiver on 127.0.0.1: every span exported to it.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let spans = Arc::new(Mutex::new(Vec::new()));
    let store = spans.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let store = store.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let store = store.clone();
                async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    let export = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
                    for resource_spans in export.resource_spans {
                        let resource = text(&resource_spans.resource.map(|r| r.attributes).unwrap_or_default());
                        for span in resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans) {
                            store.lock().unwrap().push(Received {
                                service: resource.get("service.name").cloned().unwrap_or_default(),
                                name: span.name,
                                attributes: text(&span.attributes),
                                start_unix_nano: span.start_time_unix_nano,
                                duration: Duration::from_nanos(span.end_time_unix_nano - span.start_time_unix_nano),
                                trace_id: span.trace_id,
                                span_id: span.span_id,
                                parent_span_id: span.parent_span_id,
                            });
                        }
                    }
                    let reply = Response::builder().header("content-type", "application/x-protobuf");
                    Ok::<_, hyper::Error>(reply.body(Full::new(Bytes::new())).unwrap())
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (url, spans)
}

/// A sampled trace context a client sends: the gateway does not follow it
/// (a client must not choose what is traced at peak).
const CLIENT_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// A message whose header key is not UTF-8 (any Kafka client may write
/// one; rdkafka's header iterator panics on it) and whose payload is not an
/// event: the settler sets it aside and goes on.
async fn send_poison(topic: &str) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", kafka_bootstrap()).create().unwrap();
    let headers = OwnedHeaders::new().insert(Header { key: "tracestate", value: Some("x") });
    // rdkafka takes keys as &str: the raw key goes in through librdkafka, on
    // the headers' native pointer (a `BorrowedHeaders` is that pointer, as
    // rdkafka itself casts it).
    let native = headers.as_borrowed() as *const BorrowedHeaders as *mut rdkafka_sys::rd_kafka_headers_t;
    let key = [0xff_u8, 0xfe];
    // SAFETY: `native` is the live headers' pointer; name and value are valid for the sizes given.
    unsafe { rdkafka_sys::rd_kafka_header_add(native, key.as_ptr().cast(), 2, b"v".as_ptr().cast(), 1) };
    let record = FutureRecord::<str, str>::to(topic).key("7").payload("not an order event").headers(headers);
    producer.send(record, Duration::from_secs(10)).await.expect("sending the poison message");
}

/// The binaries of this build: the gateway's, and the settler's beside it.
fn binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_gateway")).with_file_name(name);
    assert!(path.exists(), "{} missing: build the workspace (cargo build) first", path.display());
    path
}

/// Starts `binary` with `config` and returns it once it logged `ready` and
/// the address on that line.
async fn start(binary: &Path, config: &Path, ready: &str) -> (Child, String) {
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info,rdkafka=warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(ready) {
                let field = line.split_whitespace().find_map(|word| word.strip_prefix("listen="));
                return field.unwrap_or_default().to_owned();
            }
        }
        panic!("{} exited before logging {ready:?}", binary.display());
    })
    .await
    .unwrap_or_else(|_| panic!("{} did not log {ready:?}", binary.display()));
    // Keep reading, so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, address)
}

/// The spans of the trace whose `request` span names `route` and `order_id`,
/// once they include every span in `expected`.
async fn trace_of(spans: &Mutex<Vec<Received>>, route: &str, order_id: &str, expected: &[&str]) -> Vec<Received> {
    eventually(Duration::from_secs(30), &format!("the spans of {route} {order_id}"), || async {
        let spans = spans.lock().unwrap().clone();
        let root = spans
            .iter()
            .find(|s| s.name == route && s.attributes.get("order_id").map(String::as_str) == Some(order_id))?;
        let trace: Vec<Received> = spans.iter().filter(|s| s.trace_id == root.trace_id).cloned().collect();
        expected.iter().all(|name| trace.iter().any(|s| s.name == *name)).then_some(trace)
    })
    .await
}

fn span<'a>(trace: &'a [Received], name: &str, service: &str) -> &'a Received {
    trace
        .iter()
        .find(|s| s.name == name && s.service == service)
        .unwrap_or_else(|| panic!("no {name} span from the {service}: {trace:#?}"))
}

/// The spans in the order they started.
fn print(trace: &[Received]) {
    let mut trace = trace.to_vec();
    trace.sort_by_key(|s| s.start_unix_nano);
    for s in &trace {
        eprintln!(
            "  {:8} {:16} {:>9.3} ms  {:?}",
            s.service,
            s.name,
            s.duration.as_secs_f64() * 1e3,
            s.attributes.get("event")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_orders_spans_form_one_trace_across_the_gateway_and_the_settler() {
    let (endpoint, spans) = otlp_receiver().await;
    let topic = fresh_topic(1).await;
    let shards = fresh_shards(2).await;
    let dir = std::env::temp_dir().join(unique("traces"));
    std::fs::create_dir_all(&dir).unwrap();
    let tracing = format!("[tracing]\notlp_endpoint = \"{endpoint}\"\nsample_ratio = 1.0\nexport_interval_ms = 100\n");
    let common = format!(
        "[redis]\nurl = \"{}\"\nnamespace = \"{}\"\n[mysql]\nshards = {}\n{tracing}",
        redis_url(),
        namespace(&topic),
        serde_json::to_string(&shards).unwrap()
    );
    let gateway_config = dir.join("gateway.toml");
    std::fs::write(
        &gateway_config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndevelopment = true\n[admin.tokens]\ntests = \"{}\"\n\
             [orders]\npayment_window_secs = 6\nconfirm_window_secs = 4\n\
             [kafka]\nbootstrap = \"{}\"\ntopic = \"{topic}\"\nmessage_timeout_ms = 1000\n{common}",
            support::ADMIN_TOKEN,
            kafka_bootstrap()
        ),
    )
    .unwrap();
    let settler_config = dir.join("settler.toml");
    std::fs::write(
        &settler_config,
        format!(
            "[ops]\nlisten = \"127.0.0.1:0\"\n[kafka]\nbootstrap = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{topic}.dlq\"\n\
             group_id = \"{}\"\n{common}",
            kafka_bootstrap(),
            unique("settler_test")
        ),
    )
    .unwrap();
    let (mut settler, _) = start(&binary("settler"), &settler_config, "settler starting").await;
    let (gateway, address) = start(&binary("gateway"), &gateway_config, "gateway listening").await;
    let base = format!("http://{address}");

    send_poison(&topic).await;
    let sku = unique("sku");
    let admin = format!("Bearer {}", support::ADMIN_TOKEN);
    let sale = json!({"stock": 10, "per_user_limit": 1, "price_cents": 1_000});
    let (status, answer) =
        json_request(&base, Method::PUT, &format!("/admin/skus/{sku}"), &[("authorization", &admin)], sale).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The node id lease comes shortly after the start: retried until taken.
    let buyer = format!("Bearer {}", support::buyer_token(7));
    let order = json!({"sku": sku, "qty": 1});
    let (status, answer) = eventually(Duration::from_secs(10), "an accepted order", || async {
        let answer = json_request(
            &base,
            Method::POST,
            "/v1/orders",
            &[("idempotency-key", "trace-1"), ("authorization", &buyer), ("traceparent", CLIENT_TRACEPARENT)],
            order.clone(),
        )
        .await;
        (answer.0 == StatusCode::ACCEPTED).then_some(answer)
    })
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let order_id = answer["order_id"].as_str().unwrap().to_owned();

    let pipeline = ["traffic.admit", "stock.reserve", "kafka.produce", "settler.consume", "shard.write"];
    let placed = trace_of(&spans, "place_order", &order_id, &pipeline).await;
    eprintln!("trace of the order {order_id}:");
    print(&placed);
    let request = span(&placed, "place_order", "gateway");
    assert!(request.parent_span_id.is_empty(), "the request is the trace's root");
    assert!(!CLIENT_TRACEPARENT.contains(&hex::encode(&request.trace_id)), "a client's traceparent is not followed");
    for name in ["traffic.admit", "stock.reserve", "kafka.produce"] {
        assert_eq!(span(&placed, name, "gateway").parent_span_id, request.span_id, "{name} is the request's child");
    }
    let produce = span(&placed, "kafka.produce", "gateway");
    let consume = span(&placed, "settler.consume", "settler");
    assert_eq!(consume.parent_span_id, produce.span_id, "the settler continues the produce span");
    assert_eq!(consume.attributes.get("order_id"), Some(&order_id));
    assert_eq!(span(&placed, "shard.write", "settler").parent_span_id, consume.span_id);
    eventually(Duration::from_secs(10), "the order stored", || async {
        support::order_statuses(&shards, &sku).await.values().next().cloned()
    })
    .await;

    // A cancellation: its event carries its own request's trace.
    let path = format!("/v1/orders/{order_id}/cancel");
    let (status, answer) =
        json_request(&base, Method::POST, &path, &[("authorization", &buyer)], json!({"sku": sku})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let cancelled = trace_of(&spans, "cancel_order", &order_id, &["kafka.produce", "settler.consume"]).await;
    eprintln!("trace of its cancellation:");
    print(&cancelled);
    let consume = span(&cancelled, "settler.consume", "settler");
    assert_eq!(consume.parent_span_id, span(&cancelled, "kafka.produce", "gateway").span_id);
    assert_eq!(consume.attributes.get("event").map(String::as_str), Some("OrderCancelled"));
    assert_ne!(cancelled[0].trace_id, placed[0].trace_id, "each request is a trace of its own");

    // An order left unpaid: the settler's sweeper cancels it at its
    // deadline, in a trace of its own that its own consumer continues.
    let buyer = format!("Bearer {}", support::buyer_token(8));
    let headers = [("idempotency-key", "trace-2"), ("authorization", buyer.as_str())];
    let (status, answer) = json_request(&base, Method::POST, "/v1/orders", &headers, order.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let unpaid = answer["order_id"].as_str().unwrap().to_owned();
    let expected = ["kafka.produce", "settler.consume", "shard.write"];
    let expired = trace_of(&spans, "cancellation.send", &unpaid, &expected).await;
    eprintln!("trace of the unpaid order's expiry:");
    print(&expired);
    let root = span(&expired, "cancellation.send", "settler");
    assert_eq!(root.attributes.get("reason").map(String::as_str), Some("timeout"));
    assert_eq!(span(&expired, "kafka.produce", "settler").parent_span_id, root.span_id);

    assert!(settler.try_wait().unwrap().is_none(), "the settler is still running after the poison message");
    drop((gateway, settler));
    drop_shards(&shards).await;
    let _ = std::fs::remove_dir_all(dir);
}
