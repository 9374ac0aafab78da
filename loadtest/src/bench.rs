//! `loadtest bench`: the floors, measured in the same run on the same
//! machine, and the gateway's and settler's figures as ratios against them.
//!
//! | floor | against |
//! |---|---|
//! | a bare hyper server answering the sold-out body, same generator | the gateway's sold-out path |
//! | `reserve.lua` called through a pipelined client (fred), no HTTP | the gateway's accepted path |
//! | a plain batched `INSERT` into the shard tables | the settler's drain rate |
//!
//! Plus the gateway's and the settler's peak RSS. A report, not a test:
//! nothing here asserts a timing.

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures::stream::{self, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use order::event::{OrderCreated, OrderEvent};
use order::id::IdGenerator;
use order::shard::bucket_for_user;
use orderdb::orders::insert_plain;
use orderdb::ShardPools;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::Serialize;
use stock::{RedisConfig, Reservation, ReserveRequest, SaleStore, SaleTerms, Windows};

use crate::burst::burst;
use crate::client::Gateway;
use crate::report::Latency;
use crate::timeline::latency_histogram;

pub struct Bench {
    pub gateway: Gateway,
    pub requests: u64,
    pub concurrency: usize,
    pub rows: u64,
    pub redis_url: String,
    pub kafka_bootstrap: String,
    pub mysql_server: String,
    pub gateway_pid: Option<u32>,
    pub settler_bin: PathBuf,
}

/// One measured phase.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub operations: u64,
    /// Operations that did not get the answer the phase is about (a 409 on
    /// the sold-out path, a 202 on the accepted path, an `ok` from Redis).
    pub unexpected: u64,
    pub per_second: f64,
    pub latency: Option<Latency>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub http_floor: Phase,
    pub sold_out_path: Phase,
    pub redis_floor: Phase,
    pub accepted_path: Phase,
    pub database_floor: Phase,
    pub settler_drain: Phase,
    pub gateway_peak_rss_mib: Option<f64>,
    pub settler_peak_rss_mib: Option<f64>,
}

const RUN_LIMIT: Duration = Duration::from_secs(120);
/// Stock that never runs out in a bench (and stays exact in Lua's doubles).
const PLENTY: i64 = 1_000_000_000_000;

impl Bench {
    pub async fn run(self) -> anyhow::Result<BenchReport> {
        let run = Utc::now().timestamp_millis() as u64;
        let first_user = run * 1_000;

        let floor = start_floor_server().await?;
        let floor_client = Gateway::new(&floor, "unused", self.concurrency)?;
        let http_floor = self.http_phase("bare hyper server", &floor_client, "floor", first_user, "409").await?;

        let sold_out = format!("bench_soldout_{run}");
        self.gateway.load_sale(&sold_out, 0, 1, 100).await?;
        let sold_out_path =
            self.http_phase("gateway, sold-out path", &self.gateway, &sold_out, first_user, "409").await?;

        let redis_floor = self.redis_floor(run).await?;
        let plenty = format!("bench_accept_{run}");
        self.gateway.load_sale(&plenty, PLENTY, 1, 100).await?;
        let accepted_path = self
            .http_phase("gateway, accepted path", &self.gateway, &plenty, first_user + self.requests, "202")
            .await?;

        let shards = self.fresh_shards(run).await?;
        let database_floor = plain_insert(&shards, self.rows).await?;
        let (settler_drain, settler_rss) = self.settler_drain(run, &shards).await?;
        orderdb::shards::drop_databases(&shards).await?;

        Ok(BenchReport {
            http_floor,
            sold_out_path,
            redis_floor,
            accepted_path,
            database_floor,
            settler_drain,
            gateway_peak_rss_mib: self.gateway_pid.and_then(peak_rss_mib),
            settler_peak_rss_mib: settler_rss,
        })
    }

    async fn http_phase(
        &self,
        name: &'static str,
        target: &Gateway,
        sku: &str,
        first_user: u64,
        expected_status: &str,
    ) -> anyhow::Result<Phase> {
        let started = Instant::now();
        let tally = burst(target, sku, first_user, self.requests, self.concurrency, RUN_LIMIT).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let expected = tally.count(expected_status);
        let latency = tally.latency.unwrap_or_else(latency_histogram);
        Ok(Phase {
            name,
            operations: latency.len(),
            unexpected: latency.len() - expected,
            per_second: latency.len() as f64 / elapsed,
            latency: Some(Latency::from_histogram(&latency)),
        })
    }

    /// `reserve.lua` straight through fred, `concurrency` calls in flight.
    async fn redis_floor(&self, run: u64) -> anyhow::Result<Phase> {
        let config = RedisConfig { url: self.redis_url.clone(), namespace: "bench:".into(), ..RedisConfig::default() };
        let store = SaleStore::connect(&config)?;
        store.wait_connected(Duration::from_secs(5)).await;
        let sku = format!("bench_redis_{run}");
        let terms = SaleTerms { stock: PLENTY, per_user_limit: 1, price_cents: 100, window: Default::default() };
        store.load_sale(&sku, &terms).await?;
        let ids = IdGenerator::new(15).expect("valid node");
        let now = Utc::now().timestamp_millis();
        let mut latency = latency_histogram();
        let started = Instant::now();
        let calls = stream::iter(0..self.requests)
            .map(|n| {
                let (store, ids, sku) = (&store, &ids, &sku);
                async move {
                    let key = format!("k{n}");
                    let sent = Instant::now();
                    let req = ReserveRequest {
                        sku,
                        idempotency_key: &key,
                        user_id: n + 1,
                        qty: 1,
                        order_id: ids.next(bucket_for_user(n + 1), now),
                        now_ms: now,
                        pay_by_ms: now + 900_000,
                        idempotency_ttl_secs: 60,
                        windows: Windows { confirm_ms: 30_000, in_flight_ms: 7_000 },
                    };
                    match store.reserve(&req).await {
                        Ok(Reservation::Reserved { .. }) => Ok(sent.elapsed()),
                        Ok(other) => Err(format!("{other:?}")),
                        Err(err) => Err(err.to_string()),
                    }
                }
            })
            .buffer_unordered(self.concurrency);
        let took: Vec<_> = calls.collect().await;
        let elapsed = started.elapsed().as_secs_f64();
        if let Some(Err(err)) = took.iter().find(|call| call.is_err()) {
            eprintln!("some reserve calls failed, e.g.: {err}");
        }
        let operations = took.len() as u64;
        for duration in took.into_iter().flatten() {
            latency.saturating_record(duration.as_micros() as u64);
        }
        Ok(Phase {
            name: "reserve.lua, pipelined client",
            operations,
            unexpected: operations - latency.len(),
            per_second: latency.len() as f64 / elapsed,
            latency: Some(Latency::from_histogram(&latency)),
        })
    }

    async fn fresh_shards(&self, run: u64) -> anyhow::Result<Vec<String>> {
        let dsns: Vec<String> = (0..4).map(|i| format!("{}/bench_{run}_{i}", self.mysql_server)).collect();
        orderdb::shards::create_databases(&dsns).await?;
        let pools = ShardPools::connect_lazy(&dsns, 1, Duration::from_secs(5))?;
        pools.migrate().await?;
        pools.close().await;
        Ok(dsns)
    }

    /// Produces `rows` orders to a fresh topic, starts a settler on it and
    /// times until every order is in MySQL.
    async fn settler_drain(&self, run: u64, shards: &[String]) -> anyhow::Result<(Phase, Option<f64>)> {
        let topic = format!("bench_{run}");
        settler::setup::create_topics(&self.kafka_bootstrap, &[(&topic, 8), (&format!("{topic}.dlq"), 1)]).await?;
        produce_orders(&self.kafka_bootstrap, &topic, self.rows).await?;
        let mut settler = tokio::process::Command::new(&self.settler_bin)
            .env("SETTLER_KAFKA__BOOTSTRAP", &self.kafka_bootstrap)
            .env("SETTLER_KAFKA__TOPIC", &topic)
            .env("SETTLER_KAFKA__DLQ_TOPIC", format!("{topic}.dlq"))
            .env("SETTLER_KAFKA__GROUP_ID", format!("bench_{run}"))
            .env(
                "SETTLER_MYSQL__SHARDS",
                format!("[{}]", shards.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(",")),
            )
            .env("SETTLER_SWEEPER__ENABLED", "false")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        // The clock starts at the first stored row: the group join is not drain time.
        let deadline = Instant::now() + RUN_LIMIT;
        let mut started = None;
        let mut stored = 0;
        while stored < self.rows && Instant::now() < deadline {
            stored = count_rows(shards).await?;
            if stored > 0 && started.is_none() {
                started = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.map_or(f64::NAN, |at| at.elapsed().as_secs_f64());
        let rss = settler.id().and_then(peak_rss_mib);
        settler.start_kill()?;
        settler.wait().await?;
        let phase = Phase {
            name: "settler drain",
            operations: stored,
            unexpected: self.rows - stored.min(self.rows),
            per_second: stored as f64 / elapsed,
            latency: None,
        };
        Ok((phase, rss))
    }
}

/// A hyper server that answers every request with the gateway's sold-out answer.
async fn start_floor_server() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
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
    });
    Ok(format!("http://{addr}"))
}

fn orders(rows: u64) -> Vec<OrderCreated> {
    let ids = IdGenerator::new(14).expect("valid node");
    let now = Utc::now();
    (1..=rows)
        .map(|user| OrderCreated {
            order_id: ids.next(bucket_for_user(user), now.timestamp_millis()),
            user_id: user,
            sku: "bench".into(),
            qty: 1,
            amount_cents: 100,
            idempotency_key: format!("bench-{user}"),
            created_at: now,
            pay_by: now,
            sale_generation: 0,
        })
        .collect()
}

async fn produce_orders(bootstrap: &str, topic: &str, rows: u64) -> anyhow::Result<()> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()?;
    let sends = orders(rows).into_iter().map(|order| {
        let producer = producer.clone();
        async move {
            let event = OrderEvent::OrderCreated(order);
            let (key, payload) = (event.key(), event.encode());
            producer.send(FutureRecord::to(topic).key(&key).payload(&payload), Timeout::Never).await.map(|_| ())
        }
    });
    for sent in futures::future::join_all(sends).await {
        sent.map_err(|(err, _)| err)?;
    }
    Ok(())
}

/// The database floor: the same rows in multi-row INSERTs of 500, one
/// statement at a time per shard, shards in parallel. Writes into the
/// tables the settler is measured against afterwards, then empties them.
async fn plain_insert(shards: &[String], rows: u64) -> anyhow::Result<Phase> {
    let pools = ShardPools::connect_lazy(shards, 1, Duration::from_secs(5))?;
    let orders = orders(rows);
    let mut per_shard: Vec<Vec<&OrderCreated>> = vec![Vec::new(); shards.len()];
    for order in &orders {
        per_shard[pools.router.shard_for_user(order.user_id)].push(order);
    }
    let started = Instant::now();
    let writes = per_shard.iter().zip(&pools.pools).map(|(orders, pool)| insert_plain(pool, orders, 500));
    futures::future::try_join_all(writes).await?;
    let elapsed = started.elapsed().as_secs_f64();
    for pool in &pools.pools {
        sqlx::query("DELETE FROM orders").execute(pool).await?;
    }
    pools.close().await;
    Ok(Phase {
        name: "plain batched INSERT",
        operations: rows,
        unexpected: 0,
        per_second: rows as f64 / elapsed,
        latency: None,
    })
}

async fn count_rows(shards: &[String]) -> anyhow::Result<u64> {
    let pools = ShardPools::connect_lazy(shards, 1, Duration::from_secs(5))?;
    let counted = pools.count_all().await;
    pools.close().await;
    Ok(counted?)
}

/// A process's peak resident memory (VmHWM), MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

impl BenchReport {
    pub fn print(&self) {
        println!("\n| measurement | ops | unexpected | per second | p50 ms | p99 ms | ratio to its floor | target |");
        println!("|---|---:|---:|---:|---:|---:|---:|---|");
        let row = |phase: &Phase, ratio: Option<f64>, target: &str| {
            let (p50, p99) = phase
                .latency
                .as_ref()
                .map_or(("–".into(), "–".into()), |l| (format!("{:.2}", l.p50_ms), format!("{:.2}", l.p99_ms)));
            let ratio = ratio.map_or("floor".into(), |r| format!("{r:.2}"));
            println!(
                "| {} | {} | {} | {:.0} | {p50} | {p99} | {ratio} | {target} |",
                phase.name, phase.operations, phase.unexpected, phase.per_second
            );
        };
        row(&self.http_floor, None, "");
        row(&self.sold_out_path, Some(self.sold_out_path.per_second / self.http_floor.per_second), "≥ 0.8");
        row(&self.redis_floor, None, "");
        row(&self.accepted_path, Some(self.accepted_path.per_second / self.redis_floor.per_second), "≥ 0.5");
        row(&self.database_floor, None, "");
        row(&self.settler_drain, Some(self.settler_drain.per_second / self.database_floor.per_second), "≥ 0.5");
        let mib = |v: Option<f64>| v.map_or("unknown".into(), |v| format!("{v:.1} MiB"));
        println!(
            "\ngateway peak RSS {} (target < 64 MiB), settler peak RSS {}",
            mib(self.gateway_peak_rss_mib),
            mib(self.settler_peak_rss_mib)
        );
    }
}
