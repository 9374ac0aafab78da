//! The floors: the same work as a gateway path with the gateway left out,
//! measured by the same process, in the same run.
//!
//! | floor | the work | against |
//! |---|---|---|
//! | bare hyper | a hyper server (its own process) answering the sold-out body | the sold-out path |
//! | Redis | `reserve.lua` through the gateway's store client | – |
//! | Kafka | `OrderCreated` through the gateway's producer, same settings | – |
//! | composed | `reserve.lua`, then the produce, per order; no HTTP | the accepted path |
//! | MySQL | the orders in multi-row INSERTs of 500 | the settler's drain |
//!
//! Beside them, the database fallback's path (an ordinary sale's order
//! while Redis is down: its units taken under the database share's row
//! lock, the order recorded in the same transaction), against the Redis
//! floor.

use std::convert::Infallible;
use std::future::Future;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use events::producer::{EventProducer, KafkaConfig};
use futures::stream::{self, StreamExt};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use order::event::{OrderCreated, OrderEvent};
use order::id::IdGenerator;
use order::sale::SaleWindow;
use order::shard::bucket_for_user;
use orderdb::fallback_orders::{Take, TakeRequest};
use orderdb::inventory::DatabaseShare;
use orderdb::orders::insert_plain;
use orderdb::ShardPools;
use stock::{ConfirmWindows, RedisConfig, Reservation, ReserveRequest, SaleStore, SaleTerms};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::timeline::latency_histogram;

/// Stock that never runs out in a bench (and stays exact in Lua's doubles).
pub const PLENTY: i64 = 1_000_000_000_000;

/// `loadtest hyper-floor`: a hyper server on a free loopback port that
/// answers every request with the gateway's sold-out answer; prints its
/// address, then serves until killed.
pub async fn serve_hyper_floor() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
            // Read the body as the gateway does.
            let _ = req.into_body().collect().await;
            let mut answer = Response::new(Full::new(Bytes::from_static(br#"{"error":"sold_out"}"#)));
            *answer.status_mut() = StatusCode::CONFLICT;
            answer.headers_mut().insert("content-type", "application/json".parse().expect("valid"));
            Ok::<_, Infallible>(answer)
        });
        tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    }
}

/// The bare hyper floor, running as a child process so its CPU is its own.
pub struct HyperFloor {
    pub child: Child,
    pub url: String,
}

impl HyperFloor {
    pub async fn start() -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("hyper-floor")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let addr = BufReader::new(stdout)
            .lines()
            .next_line()
            .await?
            .ok_or_else(|| anyhow::anyhow!("hyper floor printed no address"))?;
        Ok(Self { child, url: format!("http://{addr}") })
    }
}

/// What a floor's calls gave.
pub struct Calls {
    pub operations: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

/// Runs `call(0..count)` with `concurrency` in flight, timing each.
pub async fn timed_calls<F, Fut>(count: u64, concurrency: usize, call: F) -> Calls
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    let took: Vec<_> = stream::iter(0..count)
        .map(|n| {
            let call = &call;
            async move {
                let sent = Instant::now();
                call(n).await.map(|()| sent.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    if let Some(Err(err)) = took.iter().find(|call| call.is_err()) {
        eprintln!("some floor calls failed, e.g.: {err}");
    }
    let mut latency = latency_histogram();
    for duration in took.iter().flatten() {
        latency.saturating_record(duration.as_micros() as u64);
    }
    Calls { operations: count, failed: count - latency.len(), elapsed, latency }
}

/// The Redis side of the floors: a sale with plenty of stock in its own
/// namespace, reserved through the gateway's client.
pub struct RedisFloor {
    store: SaleStore,
    sku: String,
    ids: IdGenerator,
}

impl RedisFloor {
    pub async fn connect(redis_url: &str, run: u64) -> anyhow::Result<Self> {
        let config = RedisConfig { url: redis_url.to_owned(), namespace: "bench:".into(), ..RedisConfig::default() };
        let store = SaleStore::connect(&config)?;
        store.redis().wait_connected(Duration::from_secs(5)).await;
        let sku = format!("bench_redis_{run}");
        let terms = SaleTerms { stock: PLENTY, per_user_limit: 1, price_cents: 100, ..Default::default() };
        store.load_sale(&sku, &terms).await?;
        Ok(Self { store, sku, ids: IdGenerator::new(13).expect("valid node") })
    }

    /// Reserves one unit for `user` under key `key`; the order it minted.
    async fn reserve(&self, user: u64, key: &str) -> Result<OrderCreated, String> {
        let now = Utc::now();
        let now_ms = now.timestamp_millis();
        let order_id = self.ids.next(bucket_for_user(user), now_ms);
        let req = ReserveRequest {
            sku: self.sku.as_str().into(),
            idempotency_key: key.into(),
            user_id: user,
            qty: 1,
            order_id,
            now_ms,
            pay_by_ms: now_ms + 900_000,
            idempotency_ttl_secs: 60,
            confirm_windows: ConfirmWindows { confirm_ms: 30_000, in_flight_ms: 7_000 },
            warehouses: stock::ANY_WAREHOUSE.into(),
            channel_share: None,
        };
        match self.store.reserve(&req).await {
            Ok(Reservation::Reserved { amount_cents, .. }) => Ok(OrderCreated {
                order_id,
                user_id: user,
                sku: self.sku.clone(),
                qty: 1,
                amount_cents,
                idempotency_key: key.to_owned(),
                created_at: now,
                pay_by: now,
                sale_generation: 0,
                warehouse: None,
                channel: None,
            }),
            Ok(other) => Err(format!("{other:?}")),
            Err(err) => Err(err.to_string()),
        }
    }
}

/// `reserve.lua` alone, `concurrency` calls in flight.
pub async fn redis_floor(redis: &RedisFloor, first_user: u64, count: u64, concurrency: usize) -> Calls {
    timed_calls(count, concurrency, |n| async move {
        redis.reserve(first_user + n, &format!("redis-{n}")).await.map(|_| ())
    })
    .await
}

/// The gateway's producer (same settings: idempotent, `acks=all`, its
/// linger) on a topic of its own.
pub fn floor_producer(bootstrap: &str, topic: &str) -> anyhow::Result<EventProducer> {
    Ok(EventProducer::new(&KafkaConfig {
        bootstrap: bootstrap.to_owned(),
        topic: topic.to_owned(),
        ..KafkaConfig::default()
    })?)
}

/// `OrderCreated` events of the gateway's size, produced and acknowledged.
pub async fn produce_floor(producer: &EventProducer, first_user: u64, count: u64, concurrency: usize) -> Calls {
    let ids = IdGenerator::new(14).expect("valid node");
    timed_calls(count, concurrency, |n| {
        let event = OrderEvent::OrderCreated(order(&ids, first_user + n));
        async move { producer.send(&event).await.map_err(|err| err.to_string()) }
    })
    .await
}

/// Per order: `reserve.lua`, then its event produced and acknowledged.
pub async fn composed_floor(
    redis: &RedisFloor,
    producer: &EventProducer,
    first_user: u64,
    count: u64,
    concurrency: usize,
) -> Calls {
    timed_calls(count, concurrency, |n| async move {
        let order = redis.reserve(first_user + n, &format!("composed-{n}")).await?;
        producer.send(&OrderEvent::OrderCreated(order)).await.map_err(|err| err.to_string())
    })
    .await
}

/// One order as the gateway would send it.
pub fn order(ids: &IdGenerator, user: u64) -> OrderCreated {
    let now = Utc::now();
    OrderCreated {
        order_id: ids.next(bucket_for_user(user), now.timestamp_millis()),
        user_id: user,
        sku: "bench".into(),
        qty: 1,
        amount_cents: 100,
        idempotency_key: format!("bench-{user}"),
        created_at: now,
        pay_by: now,
        sale_generation: 0,
        warehouse: None,
        channel: None,
    }
}

/// The database floor: `rows` orders in multi-row INSERTs of 500, one
/// statement at a time per shard, shards in parallel, into shard databases
/// like the settler's.
pub async fn plain_insert(shards: &[String], rows: u64) -> anyhow::Result<Calls> {
    let pools = ShardPools::connect_lazy(shards, 1, Duration::from_secs(5))?;
    let ids = IdGenerator::new(14).expect("valid node");
    let orders: Vec<OrderCreated> = (1..=rows).map(|user| order(&ids, user)).collect();
    let mut per_shard: Vec<Vec<&OrderCreated>> = vec![Vec::new(); shards.len()];
    for order in &orders {
        per_shard[pools.router.shard_for_user(order.user_id)].push(order);
    }
    let started = Instant::now();
    let writes = per_shard.iter().zip(&pools.pools).map(|(orders, pool)| insert_plain(pool, orders, 500));
    futures::future::try_join_all(writes).await?;
    let elapsed = started.elapsed();
    pools.close().await;
    Ok(Calls { operations: rows, failed: 0, elapsed, latency: latency_histogram() })
}

/// The database fallback's path: `count` orders of one unit taken from an
/// ordinary sale's database share in the inventory database (the first of
/// `shards`), `concurrency` in flight, each one transaction under the
/// share's row lock.
pub async fn fallback_path(
    shards: &[String],
    first_user: u64,
    count: u64,
    concurrency: usize,
) -> anyhow::Result<Calls> {
    let pools = ShardPools::connect_lazy(&shards[..1], concurrency as u32, Duration::from_secs(10))?;
    let sku = "bench_fallback";
    let share = DatabaseShare {
        units: PLENTY,
        per_user_limit: 1,
        price_cents: 100,
        window: SaleWindow::default(),
        sale_generation: 0,
    };
    pools.set_database_share(sku, Some(&share)).await?;
    let ids = IdGenerator::for_database();
    let calls = timed_calls(count, concurrency, |n| {
        let (pools, ids) = (&pools, &ids);
        async move {
            let user = first_user + n;
            let now_ms = Utc::now().timestamp_millis();
            let key = format!("fallback-{n}");
            let request = TakeRequest {
                sku,
                idempotency_key: &key,
                user_id: user,
                qty: 1,
                order_id: ids.next(bucket_for_user(user), now_ms),
                now_ms,
                pay_by_ms: now_ms + 900_000,
                in_flight_ms: 7_000,
                idempotency_ttl_secs: 60,
            };
            match pools.take_from_database(&request).await {
                Ok(Take::Taken(_)) => Ok(()),
                Ok(other) => Err(format!("{other:?}")),
                Err(err) => Err(err.to_string()),
            }
        }
    })
    .await;
    pools.close().await;
    Ok(calls)
}
