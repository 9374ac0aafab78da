//! `loadtest queries`: order reads at peak, with a sale taking orders
//! beside them, against floors measured in the same run: a plain Redis read
//! of an order-sized cached view (the one `MGET` a cache hit asks of Redis,
//! through the gateway's client), a plain primary-key SELECT on a shard
//! (the first of a cache miss's reads), and a bare hyper server answering
//! every GET (what HTTP alone costs).
//!
//! Phases, each `--concurrency` calls in flight:
//! - `get_order, cache emptied`: every order read once after its cached
//!   view was dropped: each read goes to its shard and caches the view;
//! - `get_order, hot`: reads round the same orders, from the cache;
//! - `list_orders`: each buyer's first page (`GET /v1/orders?limit=20`);
//! - `search`: the merchant's search over every shard, a tenth as many.
//!
//! The cache hit ratio of a phase is read from the gateway's `/metrics`
//! (`gateway_order_cache_total`) before and after it.
//!
//! With `backlog` and the settler's pid, the reads run while the settler
//! drains: the settler is paused while that many orders are placed on a
//! SKU of their own, and let go just before the first phase.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use order::id::OrderId;
use orderdb::ShardPools;
use serde::Serialize;
use stock::{OrderCache, Redis, RedisConfig};

use crate::bench::cpu::signal;
use crate::bench::floors::{timed_calls, Calls, HyperFloor};
use crate::client::Gateway;
use crate::report::Latency;
use crate::workers::burst;

pub struct Queries {
    pub gateway: Gateway,
    pub sku: String,
    pub first_user: u64,
    pub buyers: u64,
    pub reads: u64,
    pub concurrency: usize,
    /// The gateway's Redis (URL and namespace): its cache is emptied before the cold phase.
    pub redis: RedisConfig,
    pub shards: Vec<String>,
    /// Orders a second placed on another SKU while the reads run.
    pub sale_rate: f64,
    pub settle: Duration,
    /// Orders placed with the settler paused, drained beside the reads.
    pub backlog: u64,
    pub settler_pid: Option<u32>,
}

/// The orders the settler drains while the reads run.
#[derive(Debug, Serialize)]
pub struct Backlog {
    pub accepted: u64,
    /// Of them, stored when the reads began and when they ended.
    pub stored_at_start: u64,
    pub stored_at_end: u64,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub name: &'static str,
    pub operations: u64,
    pub errors: u64,
    pub per_second: f64,
    pub latency: Option<Latency>,
    /// The floor this row is compared with, and the ratio of their rates.
    pub floor: Option<&'static str>,
    pub ratio: Option<f64>,
    /// Of a gateway phase: its rate over the bare HTTP floor's.
    pub http_ratio: Option<f64>,
    pub cache_hit_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct QueriesReport {
    pub rows: Vec<Row>,
    /// Orders the sale beside the reads took, of those it sent.
    pub sale_accepted: u64,
    pub sale_sent: u64,
    pub backlog: Option<Backlog>,
}

/// The backlog's buyers, clear of the readers' and the sale's.
const BACKLOG_USERS: u64 = 500_000;
/// Longest the orders read (or the backlog) take to place.
const PLACING_BOUND: Duration = Duration::from_secs(300);

const REDIS_FLOOR: &str = "Redis read floor";
const SELECT_FLOOR: &str = "primary-key SELECT floor";
const HTTP_FLOOR: &str = "bare HTTP floor";

impl Queries {
    pub async fn run(self) -> anyhow::Result<QueriesReport> {
        let orders = self.place().await?;
        let pools = ShardPools::connect_lazy(&self.shards, self.concurrency as u32, Duration::from_secs(5))?;
        self.wait_stored(&pools, orders.len()).await?;

        let mut rows = vec![self.http_floor().await?, self.redis_floor(&orders).await?];
        rows.push(row(SELECT_FLOOR, self.select_floor(&pools, &orders).await, None));

        let mut sale = Sale::start(
            self.gateway.clone(),
            format!("{}_sale", self.sku),
            self.sale_rate,
            self.first_user + self.buyers,
        );
        sale.load().await?;
        let redis = Redis::connect(&self.redis)?;
        redis.wait_connected(Duration::from_secs(5)).await;
        let cache = OrderCache::new(redis);
        let ids: Vec<OrderId> = orders.iter().map(|(_, id)| id.parse()).collect::<Result<_, _>>()?;
        for chunk in ids.chunks(500) {
            cache.forget_orders(chunk).await?;
        }
        let backlog_sku = format!("{}_backlog", self.sku);
        let backlog = self.place_backlog(&backlog_sku).await?;
        let stored_at_start = stored(&pools, &backlog_sku).await?;
        let gateway = &self.gateway;
        let get = |n: u64| {
            let (user, order_id) = &orders[n as usize % orders.len()];
            let path = format!("/v1/orders/{order_id}");
            async move { expect_ok(gateway.get(&path, Some(*user)).await) }
        };
        rows.push(
            self.measured(
                "get_order, cache emptied",
                REDIS_FLOOR,
                timed_calls(orders.len() as u64, self.concurrency, get),
            )
            .await?,
        );
        rows.push(self.measured("get_order, hot", REDIS_FLOOR, timed_calls(self.reads, self.concurrency, get)).await?);
        let list = |n: u64| {
            let user = orders[n as usize % orders.len()].0;
            async move { expect_ok(gateway.get("/v1/orders?limit=20", Some(user)).await) }
        };
        rows.push(self.measured("list_orders", SELECT_FLOOR, timed_calls(self.reads, self.concurrency, list)).await?);
        let path = format!("/admin/orders?sku={}&limit=20", self.sku);
        let search = |_| async { expect_ok(gateway.get(&path, None).await) };
        rows.push(self.measured("search", SELECT_FLOOR, timed_calls(self.reads / 10, self.concurrency, search)).await?);
        let (sale_accepted, sale_sent) = sale.stop().await;
        let stored_at_end = stored(&pools, &backlog_sku).await?;
        let backlog = backlog.map(|accepted| Backlog { accepted, stored_at_start, stored_at_end });
        pools.close().await;

        let rate_of = |name: &str| rows.iter().find(|r| r.name == name).map_or(0.0, |r| r.per_second);
        let ratios: Vec<(Option<f64>, Option<f64>)> = rows
            .iter()
            .map(|row| {
                let over = |floor: f64| (floor > 0.0).then(|| row.per_second / floor);
                (row.floor.and_then(|floor| over(rate_of(floor))), row.floor.and_then(|_| over(rate_of(HTTP_FLOOR))))
            })
            .collect();
        for (row, (ratio, http_ratio)) in rows.iter_mut().zip(ratios) {
            (row.ratio, row.http_ratio) = (ratio, http_ratio);
        }
        Ok(QueriesReport { rows, sale_accepted, sale_sent, backlog })
    }

    /// With a backlog: the settler paused while its orders are placed (as
    /// fast as the connections allow), then let go; how many were accepted.
    async fn place_backlog(&self, sku: &str) -> anyhow::Result<Option<u64>> {
        if self.backlog == 0 {
            return Ok(None);
        }
        let pid = self.settler_pid.ok_or_else(|| anyhow::anyhow!("a backlog needs the settler's pid"))?;
        self.gateway.load_sale(sku, self.backlog as i64, 1, 1_000).await?;
        signal(pid, "STOP").await?;
        let first_user = self.first_user + BACKLOG_USERS;
        let placed =
            burst(&self.gateway, sku, first_user, self.backlog, self.concurrency, Duration::from_secs(300)).await;
        signal(pid, "CONT").await?;
        Ok(Some(placed?.count("202")))
    }

    /// One order per buyer; (buyer, order id) of those accepted.
    async fn place(&self) -> anyhow::Result<Vec<(u64, String)>> {
        self.gateway.load_sale(&self.sku, self.buyers as i64, 1, 1_000).await?;
        let tally =
            burst(&self.gateway, &self.sku, self.first_user, self.buyers, self.concurrency, PLACING_BOUND).await?;
        let placed: Vec<(u64, String)> = tally.accepted.into_iter().map(|(order_id, user)| (user, order_id)).collect();
        anyhow::ensure!(!placed.is_empty(), "no order was accepted");
        Ok(placed)
    }

    async fn wait_stored(&self, pools: &ShardPools, placed: usize) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + self.settle;
        while pools.orders_of_sku(&self.sku).await?.len() < placed {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the settler did not store {placed} orders in time"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// GETs answered by a bare hyper server (its own process), through the same client.
    async fn http_floor(&self) -> anyhow::Result<Row> {
        let floor = HyperFloor::start().await?;
        let client = Gateway::new(&floor.url, "", self.concurrency * 2)?;
        let calls = timed_calls(self.reads, self.concurrency, |_| async {
            client.get("/v1/orders/1", Some(1)).await.map(|_| ()).map_err(|err| err.to_string())
        })
        .await;
        Ok(row(HTTP_FLOOR, calls, None))
    }

    /// Reads of one cached view of a real order's size, through the gateway's Redis client.
    async fn redis_floor(&self, orders: &[(u64, String)]) -> anyhow::Result<Row> {
        let (user, order_id) = &orders[0];
        let (_, view) = self.gateway.get(&format!("/v1/orders/{order_id}"), Some(*user)).await?;
        let redis = Redis::connect(&RedisConfig { namespace: "bench:queries:".into(), ..self.redis.clone() })?;
        redis.wait_connected(Duration::from_secs(5)).await;
        let store = OrderCache::new(redis);
        let key = OrderId::from_raw(1);
        store.cache_order(key, &String::from_utf8_lossy(&view), Duration::from_secs(600)).await?;
        let calls = timed_calls(self.reads, self.concurrency, |_| async {
            match store.cached_order(key).await {
                Ok((Some(_), _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        Ok(row(REDIS_FLOOR, calls, None))
    }

    async fn select_floor(&self, pools: &ShardPools, orders: &[(u64, String)]) -> Calls {
        timed_calls(self.reads, self.concurrency, |n| async move {
            let order_id: OrderId = orders[n as usize % orders.len()].1.parse().map_err(|e| format!("{e}"))?;
            match pools.get(order_id).await {
                Ok(Some(_)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    /// A phase through the gateway, with the cache hit ratio it saw.
    async fn measured(
        &self,
        name: &'static str,
        floor: &'static str,
        calls: impl std::future::Future<Output = Calls>,
    ) -> anyhow::Result<Row> {
        let hits = r#"gateway_order_cache_total{outcome="hit"}"#;
        let misses = r#"gateway_order_cache_total{outcome="miss"}"#;
        let (hits_before, misses_before) = (self.gateway.metric(hits).await?, self.gateway.metric(misses).await?);
        let calls = calls.await;
        let hit = self.gateway.metric(hits).await? - hits_before;
        let miss = self.gateway.metric(misses).await? - misses_before;
        let mut row = row(name, calls, Some(floor));
        row.cache_hit_ratio = (hit + miss > 0.0).then(|| hit / (hit + miss));
        Ok(row)
    }
}

/// Orders of `sku` in MySQL.
async fn stored(pools: &ShardPools, sku: &str) -> anyhow::Result<u64> {
    Ok(pools.count_by_status(sku).await?.values().sum())
}

fn row(name: &'static str, calls: Calls, floor: Option<&'static str>) -> Row {
    Row {
        name,
        operations: calls.operations,
        errors: calls.failed,
        per_second: (calls.operations - calls.failed) as f64 / calls.elapsed.as_secs_f64(),
        latency: (!calls.latency.is_empty()).then(|| Latency::from_histogram(&calls.latency)),
        floor,
        ratio: None,
        http_ratio: None,
        cache_hit_ratio: None,
    }
}

fn expect_ok(answer: anyhow::Result<(StatusCode, bytes::Bytes)>) -> Result<(), String> {
    match answer {
        Ok((StatusCode::OK, _)) => Ok(()),
        Ok((status, body)) => Err(format!("{status} {}", String::from_utf8_lossy(&body))),
        Err(err) => Err(err.to_string()),
    }
}

/// Orders placed on another SKU at a steady rate while the reads run:
/// distinct buyers, one click each, until stopped (at most ten minutes).
struct Sale {
    gateway: Gateway,
    sku: String,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    task: Option<tokio::task::JoinHandle<()>>,
    rate: f64,
    first_user: u64,
}

impl Sale {
    fn start(gateway: Gateway, sku: String, rate: f64, first_user: u64) -> Self {
        Self {
            gateway,
            sku,
            stop: Arc::default(),
            accepted: Arc::default(),
            sent: Arc::default(),
            task: None,
            rate,
            first_user,
        }
    }

    async fn load(&mut self) -> anyhow::Result<()> {
        let most = (self.rate * 600.0) as u64;
        self.gateway.load_sale(&self.sku, most as i64 + 1, 1, 1_000).await?;
        let (gateway, sku, stop, accepted, sent) =
            (self.gateway.clone(), self.sku.clone(), self.stop.clone(), self.accepted.clone(), self.sent.clone());
        let first_user = self.first_user;
        let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / self.rate.max(0.1)));
        self.task = Some(tokio::spawn(async move {
            let mut clicks = tokio::task::JoinSet::new();
            for n in 0..most {
                every.tick().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (gateway, sku, accepted) = (gateway.clone(), sku.clone(), accepted.clone());
                sent.fetch_add(1, Ordering::Relaxed);
                clicks.spawn(async move {
                    if let Ok((StatusCode::ACCEPTED, _)) =
                        gateway.place(first_user + n, &sku, 1, &format!("s{n}")).await
                    {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            while clicks.join_next().await.is_some() {}
        }));
        Ok(())
    }

    /// Stops the sale; (accepted, sent).
    async fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        (self.accepted.load(Ordering::Relaxed), self.sent.load(Ordering::Relaxed))
    }
}

impl QueriesReport {
    pub fn print(&self) {
        println!(
            "\n| measurement | ops | errors | per second | p50 ms | p99 ms | ratio to its floor | ratio to bare HTTP | cache hit ratio |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in &self.rows {
            let (p50, p99) = row
                .latency
                .as_ref()
                .map_or(("–".into(), "–".into()), |l| (format!("{:.2}", l.p50_ms), format!("{:.2}", l.p99_ms)));
            let ratio = match (row.ratio, row.floor) {
                (Some(ratio), Some(floor)) => format!("{ratio:.2} of the {floor}"),
                _ => "floor".into(),
            };
            let http = row.http_ratio.map_or("–".into(), |ratio| format!("{ratio:.2}"));
            let hits = row.cache_hit_ratio.map_or("–".into(), |ratio| format!("{ratio:.2}"));
            println!(
                "| {} | {} | {} | {:.0} | {p50} | {p99} | {ratio} | {http} | {hits} |",
                row.name, row.operations, row.errors, row.per_second
            );
        }
        println!("\nThe sale beside the reads: {} orders accepted of {} sent.", self.sale_accepted, self.sale_sent);
        if let Some(backlog) = &self.backlog {
            println!(
                "The backlog the settler drained beside them: {} orders, {} stored when the reads began, {} when they ended.",
                backlog.accepted, backlog.stored_at_start, backlog.stored_at_end
            );
        }
    }
}
