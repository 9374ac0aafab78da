//! `loadtest bench`: the floors ([`floors`]), measured in the same run on
//! the same machine, and the gateway's and the settler's figures as ratios
//! against them; each phase's CPU time per 1,000 operations for every
//! process of the stack ([`cpu`]); the gateway's and the settler's peak
//! RSS. A report, not a test: nothing here asserts a timing.

pub mod cpu;
pub mod floors;
pub mod table;

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use self::cpu::{peak_rss_mib, signal, InstructionCount, ProcessCpu, Watched};
use self::floors::{Calls, HyperFloor, RedisFloor, PLENTY};
use crate::client::Gateway;
use crate::group_lag::GroupLag;
use crate::report::Latency;
use crate::timeline::latency_histogram;
use crate::workers::burst;

pub struct Bench {
    pub gateway: Gateway,
    pub requests: u64,
    pub concurrency: usize,
    pub rows: u64,
    pub redis_url: String,
    pub kafka_bootstrap: String,
    pub mysql_server: String,
    pub gateway_pid: Option<u32>,
    /// The stack's settler: watched, and paused for one accepted phase.
    pub settler_pid: Option<u32>,
    pub broker_pid: Option<u32>,
    pub redis_pid: Option<u32>,
    pub mysql_pid: Option<u32>,
    pub settler_bin: PathBuf,
}

/// One measured phase.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub operations: u64,
    /// Operations that did not get the answer the phase is about (a 409 on
    /// the sold-out path, a 202 on the accepted path, a reservation or an
    /// acknowledgement on a floor).
    pub unexpected: u64,
    pub per_second: f64,
    pub latency: Option<Latency>,
    /// CPU time per 1,000 operations, by process.
    pub cpu: Vec<ProcessCpu>,
    /// Instructions per operation of the process doing the work, where
    /// `perf stat` counts them.
    pub instructions_per_op: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub http_floor: Phase,
    pub sold_out_path: Phase,
    pub redis_floor: Phase,
    pub produce_floor: Phase,
    pub composed_floor: Phase,
    pub database_floor: Phase,
    /// An ordinary sale's orders while Redis is down, against `redis_floor`.
    pub fallback_path: Phase,
    pub settler_drain: Phase,
    pub accepted_path: Phase,
    pub accepted_path_settler_paused: Option<Phase>,
    pub gateway_peak_rss_mib: Option<f64>,
    pub settler_peak_rss_mib: Option<f64>,
}

const RUN_LIMIT: Duration = Duration::from_secs(120);
/// Longest wait for the stack to go quiet before a phase.
const QUIET_LIMIT: Duration = Duration::from_secs(15);

impl Bench {
    pub async fn run(self) -> anyhow::Result<BenchReport> {
        let run = Utc::now().timestamp_millis() as u64;
        let first_user = run * 1_000;

        let hyper = HyperFloor::start().await?;
        let hyper_client = Gateway::new(&hyper.url, "unused", self.concurrency)?;
        let hyper_pid = hyper.child.id().expect("running");
        let http_floor = self
            .http_phase("bare hyper server", ("hyper", hyper_pid), &hyper_client, "floor", first_user, "409")
            .await?;
        drop(hyper);

        let gateway = ("gateway", self.gateway_pid.unwrap_or(0));
        let sold_out = format!("bench_soldout_{run}");
        self.gateway.load_sale(&sold_out, 0, 1, 100).await?;
        let sold_out_path =
            self.http_phase("gateway, sold-out path", gateway, &self.gateway, &sold_out, first_user, "409").await?;

        // The floors run inside this process: it is the one doing their work.
        let this = ("loadtest", std::process::id());
        let redis = RedisFloor::connect(&self.redis_url, run).await?;
        self.quiet().await;
        let redis_floor = self
            .phase("reserve.lua, gateway's Redis client", this, async {
                Ok(floors::redis_floor(&redis, first_user, self.requests, self.concurrency).await)
            })
            .await?;
        let topic = format!("bench_floor_{run}");
        settler::setup::ensure_topics(&self.kafka_bootstrap, &[settler::setup::TopicSpec::new(&topic, 8)]).await?;
        let producer = floors::floor_producer(&self.kafka_bootstrap, &topic)?;
        self.quiet().await;
        let produce_floor = self
            .phase("produce, gateway's Kafka producer", this, async {
                Ok(floors::produce_floor(&producer, first_user, self.requests, self.concurrency).await)
            })
            .await?;
        self.quiet().await;
        let composed_floor = self
            .phase("reserve.lua + produce, no HTTP", this, async {
                Ok(floors::composed_floor(
                    &redis,
                    &producer,
                    first_user + self.requests,
                    self.requests,
                    self.concurrency,
                )
                .await)
            })
            .await?;

        let floor_shards = self.fresh_shards(&format!("{run}_floor")).await?;
        self.quiet().await;
        let database_floor =
            self.phase("plain batched INSERT", this, floors::plain_insert(&floor_shards, self.rows)).await?;
        self.quiet().await;
        let fallback_path = self
            .phase(
                "database fallback (row lock), no HTTP",
                this,
                floors::fallback_path(&floor_shards, first_user, self.requests, self.concurrency),
            )
            .await?;
        let settler_shards = self.fresh_shards(&run.to_string()).await?;
        let (settler_drain, settler_rss) = self.settler_drain(run, &settler_shards).await?;
        orderdb::shards::drop_databases(&floor_shards).await?;
        orderdb::shards::drop_databases(&settler_shards).await?;

        let plenty = format!("bench_accept_{run}");
        self.gateway.load_sale(&plenty, PLENTY, 1, 100).await?;
        let accepted_path = self
            .http_phase("gateway, accepted path", gateway, &self.gateway, &plenty, first_user + self.requests, "202")
            .await?;
        let accepted_path_settler_paused = match self.settler_pid {
            Some(pid) => {
                signal(pid, "STOP").await?;
                let paused = self
                    .http_phase(
                        "gateway, accepted path, settler paused",
                        gateway,
                        &self.gateway,
                        &plenty,
                        first_user + 2 * self.requests,
                        "202",
                    )
                    .await;
                signal(pid, "CONT").await?;
                Some(paused?)
            }
            None => None,
        };

        Ok(BenchReport {
            http_floor,
            sold_out_path,
            redis_floor,
            produce_floor,
            composed_floor,
            database_floor,
            fallback_path,
            settler_drain,
            accepted_path,
            accepted_path_settler_paused,
            gateway_peak_rss_mib: self.gateway_pid.and_then(peak_rss_mib),
            settler_peak_rss_mib: settler_rss,
        })
    }

    /// The accepted path `rounds` times in a row on one sale, the settler
    /// draining beside it: whether the stack (the broker above all) keeps
    /// its rate and CPU per order as the log fills.
    pub async fn accepted_rounds(&self, rounds: u32) -> anyhow::Result<Vec<Phase>> {
        let run = Utc::now().timestamp_millis() as u64;
        let plenty = format!("bench_rounds_{run}");
        self.gateway.load_sale(&plenty, PLENTY, 1, 100).await?;
        let gateway = ("gateway", self.gateway_pid.unwrap_or(0));
        let mut phases = Vec::new();
        for round in 0..rounds as u64 {
            let first_user = run * 1_000 + round * self.requests;
            phases.push(self.http_phase("accepted path", gateway, &self.gateway, &plenty, first_user, "202").await?);
        }
        Ok(phases)
    }

    /// The stack's processes, and `worker` (the one doing the phase's work).
    fn watched(&self, worker: (&'static str, u32)) -> Vec<Watched> {
        let stack = [
            ("settler", self.settler_pid),
            ("redis", self.redis_pid),
            ("broker", self.broker_pid),
            ("mysql", self.mysql_pid),
        ];
        let mut watched = vec![Watched { name: worker.0, pid: worker.1 }];
        if worker.0 != "loadtest" {
            watched.push(Watched { name: "loadtest", pid: std::process::id() });
        }
        watched.extend(stack.into_iter().filter_map(|(name, pid)| Some(Watched { name, pid: pid? })));
        watched
    }

    /// Waits for the stack to finish what the last phase left it doing.
    async fn quiet(&self) {
        cpu::wait_quiet(&self.watched(("loadtest", std::process::id())), QUIET_LIMIT).await;
    }

    /// Runs `work` with the CPU of every process and the worker's
    /// instructions counted around it. Callers first let the stack go
    /// quiet ([`Self::quiet`]).
    async fn phase(
        &self,
        name: &'static str,
        worker: (&'static str, u32),
        work: impl Future<Output = anyhow::Result<Calls>>,
    ) -> anyhow::Result<Phase> {
        let cpu = cpu::start(&self.watched(worker));
        let instructions = InstructionCount::start(worker.1);
        let calls = work.await?;
        let instructions_per_op = match instructions {
            Some(count) => count.per_operation(calls.operations).await,
            None => None,
        };
        Ok(Phase {
            name,
            operations: calls.operations,
            unexpected: calls.failed,
            per_second: (calls.operations - calls.failed) as f64 / calls.elapsed.as_secs_f64(),
            latency: (!calls.latency.is_empty()).then(|| Latency::from_histogram(&calls.latency)),
            cpu: cpu.per_thousand(calls.operations),
            instructions_per_op,
        })
    }

    /// A burst of distinct buyers against `target`; answers other than
    /// `expected_status` are counted as unexpected.
    async fn http_phase(
        &self,
        name: &'static str,
        worker: (&'static str, u32),
        target: &Gateway,
        sku: &str,
        first_user: u64,
        expected_status: &str,
    ) -> anyhow::Result<Phase> {
        self.quiet().await;
        self.phase(name, worker, async {
            let started = Instant::now();
            let tally = burst(target, sku, first_user, self.requests, self.concurrency, RUN_LIMIT).await?;
            let elapsed = started.elapsed();
            let latency = tally.latency.clone().unwrap_or_else(latency_histogram);
            let operations = latency.len();
            Ok(Calls { operations, failed: operations - tally.count(expected_status), elapsed, latency })
        })
        .await
    }

    /// Four empty shard databases `bench_<name>_<n>`.
    async fn fresh_shards(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let dsns: Vec<String> = (0..4).map(|i| format!("{}/bench_{name}_{i}", self.mysql_server)).collect();
        orderdb::shards::create_databases(&dsns).await?;
        let pools = orderdb::ShardPools::connect_lazy(&dsns, 1, Duration::from_secs(5))?;
        pools.migrate().await?;
        pools.close().await;
        Ok(dsns)
    }

    /// Produces `rows` orders to a fresh topic, starts a settler on it and
    /// times until every order is in MySQL.
    async fn settler_drain(&self, run: u64, shards: &[String]) -> anyhow::Result<(Phase, Option<f64>)> {
        let topic = format!("bench_{run}");
        settler::setup::ensure_topics(
            &self.kafka_bootstrap,
            &[settler::setup::TopicSpec::new(&topic, 8), settler::setup::TopicSpec::new(format!("{topic}.dlq"), 1)],
        )
        .await?;
        let producer = floors::floor_producer(&self.kafka_bootstrap, &topic)?;
        let produced = floors::produce_floor(&producer, 1, self.rows, 1_024).await;
        anyhow::ensure!(produced.failed == 0, "{} of the settler's orders were not produced", produced.failed);
        self.quiet().await;
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
            .env("SETTLER_OPS__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pid = settler.id().expect("running");
        // Progress is the group's committed offsets (the settler commits a
        // batch once its shards have it): counting rows as they go in
        // would load the database the drain is timed on. The clock starts
        // at the first commit: the group join is not drain time.
        let lag = GroupLag::connect(&self.kafka_bootstrap, &topic, &format!("bench_{run}"))?;
        let rows = self.rows as i64;
        let deadline = Instant::now() + RUN_LIMIT;
        while lag.lag().await? >= rows && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let phase = self
            .phase("settler drain", ("settler", pid), async {
                let started = Instant::now();
                while lag.lag().await.unwrap_or(rows) > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let elapsed = started.elapsed();
                let counted = orderdb::ShardPools::connect_lazy(shards, 1, Duration::from_secs(5))?;
                let stored = counted.count_all().await?;
                counted.close().await;
                let failed = self.rows - stored.min(self.rows);
                Ok(Calls { operations: self.rows, failed, elapsed, latency: latency_histogram() })
            })
            .await?;
        let rss = peak_rss_mib(pid);
        settler.start_kill()?;
        settler.wait().await?;
        Ok((phase, rss))
    }
}
