//! Criterion benchmarks of the pure pieces of the order path: request
//! validation, id minting, shard routing, event encoding, limiter decisions.
//! `cargo bench -p benches`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gateway::config::{LimitedRoute, RouteLimits, Traffic};
use gateway::traffic::buckets::bucket;
use gateway::traffic::TrafficPolicy;
use order::event::{OrderCreated, OrderEvent};
use order::id::IdGenerator;
use order::request::PlaceOrder;
use order::shard::{bucket_for_user, ShardRouter};

fn request_parsing(c: &mut Criterion) {
    let body = br#"{"user_id": 1234567, "sku": "iphone-17-pro-256", "qty": 1}"#;
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_and_validate", |b| b.iter(|| PlaceOrder::from_json(black_box(body)).unwrap()));
    group.finish();
}

fn ids_and_shards(c: &mut Criterion) {
    let ids = IdGenerator::new(1).unwrap();
    let router = ShardRouter::new(4).unwrap();
    let mut group = c.benchmark_group("ids");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mint_order_id", |b| {
        b.iter(|| ids.next(bucket_for_user(black_box(42)), black_box(1_790_000_000_000)))
    });
    group.bench_function("shard_for_user", |b| b.iter(|| router.shard_for_user(black_box(987_654_321))));
    group.finish();
}

fn event_encoding(c: &mut Criterion) {
    let now = chrono::DateTime::from_timestamp_millis(1_790_000_000_000).unwrap();
    let event = OrderEvent::OrderCreated(OrderCreated {
        order_id: IdGenerator::new(0).unwrap().next(bucket_for_user(42), now.timestamp_millis()),
        user_id: 42,
        sku: "iphone-17-pro-256".into(),
        qty: 1,
        amount_cents: 99_900,
        idempotency_key: "0b7e3c1a-9f4e-4c5e-b0a1-3f2a1e9d8c7b".into(),
        created_at: now,
        pay_by: now + chrono::Duration::minutes(15),
    });
    let encoded = event.encode();
    let mut group = c.benchmark_group("event");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_order_created", |b| b.iter(|| black_box(&event).encode()));
    group.bench_function("decode_order_created", |b| b.iter(|| OrderEvent::decode(black_box(&encoded)).unwrap()));
    group.finish();
}

fn limiter(c: &mut Criterion) {
    // Buckets large enough never to refuse: this measures the decision itself.
    let huge = Some(bucket(u32::MAX, u32::MAX));
    let mut traffic = Traffic::default();
    traffic.routes.insert(LimitedRoute::PlaceOrder, RouteLimits { global: huge, ip: huge, user: huge });
    let policy = TrafficPolicy::build(traffic, None);
    let ip = "203.0.113.9".parse().unwrap();
    let mut user = 0u64;
    let mut group = c.benchmark_group("traffic");
    group.throughput(Throughput::Elements(1));
    group.bench_function("admit_ip_then_user", |b| {
        b.iter(|| {
            user = (user + 1) % 100_000;
            policy.admit(LimitedRoute::PlaceOrder, black_box(ip)).unwrap();
            policy.admit_user(LimitedRoute::PlaceOrder, black_box(user)).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, request_parsing, ids_and_shards, event_encoding, limiter);
criterion_main!(benches);
