//! Criterion benchmarks of the order path's pieces: request validation, id
//! minting, shard routing, event encoding, traffic decisions, and the
//! reserve script through a real Redis (`REDIS_URL`, default
//! 127.0.0.1:6379; skipped with a message when none answers).
//! `cargo bench -p benches`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gateway::config::{LimitedRoute, RouteLimits, Traffic};
use gateway::traffic::buckets::bucket;
use gateway::traffic::TrafficPolicy;
use order::event::{OrderCreated, OrderEvent};
use order::id::IdGenerator;
use order::request::PlaceOrder;
use order::shard::{bucket_for_user, ShardRouter};
use stock::{ConfirmWindows, RedisConfig, ReserveRequest, SaleStore, SaleTerms};

fn request_parsing(c: &mut Criterion) {
    let body = br#"{"user_id": 1234567, "sku": "iphone-17-pro-256", "qty": 1}"#;
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_and_validate", |b| b.iter(|| PlaceOrder::from_json(black_box(body), 1).unwrap()));
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
        sale_generation: 0,
        warehouse: None,
        channel: None,
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
            policy.admit_ip(LimitedRoute::PlaceOrder, black_box(ip)).unwrap();
            policy.admit_global(LimitedRoute::PlaceOrder).unwrap();
            policy.admit_user(LimitedRoute::PlaceOrder, black_box(user)).unwrap();
        })
    });
    group.finish();
}

fn reserve_script(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let config = RedisConfig { url: url.clone(), namespace: "bench:".into(), ..RedisConfig::default() };
    let store = runtime.block_on(async {
        let store = SaleStore::connect(&config).ok()?;
        store.redis().wait_connected(Duration::from_secs(2)).await.then_some(store)
    });
    let Some(store) = store else {
        eprintln!("skipping reserve_script: no Redis answers at {url}");
        return;
    };
    let sku = format!("bench_{}", std::process::id());
    let terms = SaleTerms { stock: i64::MAX / 2, per_user_limit: i64::MAX / 2, price_cents: 100, ..Default::default() };
    runtime.block_on(store.load_sale(&sku, &terms)).expect("loading the bench sale");
    let ids = IdGenerator::new(2).unwrap();
    let mut n = 0u64;
    let mut group = c.benchmark_group("redis");
    group.throughput(Throughput::Elements(1));
    // One call at a time: the round trip plus the script; the load
    // generator's floor measures the pipelined throughput.
    group.bench_function("reserve_lua_round_trip", |b| {
        b.iter(|| {
            n += 1;
            let key = format!("k{n}");
            let req = ReserveRequest {
                sku: sku.as_str().into(),
                idempotency_key: key.into(),
                user_id: n,
                qty: 1,
                order_id: ids.next(bucket_for_user(n), 1_790_000_000_000),
                now_ms: 1_790_000_000_000,
                pay_by_ms: 1_790_000_900_000,
                idempotency_ttl_secs: 60,
                confirm_windows: ConfirmWindows { confirm_ms: 30_000, in_flight_ms: 7_000 },
                warehouses: stock::ANY_WAREHOUSE.into(),
                channel_share: None,
            };
            runtime.block_on(store.reserve(&req)).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, request_parsing, ids_and_shards, event_encoding, limiter, reserve_script);
criterion_main!(benches);
