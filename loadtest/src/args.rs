//! The command line: a subcommand per scenario, each with its arguments;
//! [`Common`] holds what the sale scenarios share.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use order::sale::Deduction;

use crate::workers::SaleRun;
use crate::{client, report};

#[derive(Parser)]
#[command(version, about = "Flash-sale load generator for the order gateway (loopback only)")]
pub struct Args {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Subcommand)]
pub enum Scenario {
    /// Many distinct buyers, little stock, one click each, as fast as possible.
    FlashSale(FlashSaleArgs),
    /// A fixed arrival rate (open loop) of distinct buyers, stock never running out.
    Steady(RateArgs),
    /// An arrival rate rising from --rate to --to-rate, to find the knee.
    Ramp(RateArgs),
    /// Cart checkouts of 2 to 4 SKUs racing for stock, then cancels and
    /// payments, against single orders placed in the same run.
    Cart(CartArgs),
    /// Many racing retries of few idempotency keys.
    IdempotencyStorm(StormArgs),
    /// Sessions that order, then pay, cancel or walk away, and look the order up.
    Mixed(MixedArgs),
    /// Buyers ordering and paying while a payment channel fails for a while
    /// mid-sale; then every order read back from MySQL.
    ChannelOutage(ChannelOutageArgs),
    /// Chaos: buyers who retry with their key across gateways; writes what they were told.
    ChaosBuyers(ChaosBuyersArgs),
    /// Chaos: waits for the stack to settle and checks the invariants against the buyers' answers.
    ChaosCheck(ChaosCheckArgs),
    /// The floors (bare HTTP, Redis, Kafka, the two composed, plain INSERT)
    /// and the stack's figures as ratios against them, with CPU per 1,000
    /// operations, in one run.
    Bench(BenchArgs),
    /// Order reads (one order, a buyer's list, the merchant's search) with a
    /// sale beside them, against a plain Redis GET and a plain primary-key
    /// SELECT measured in the same run, with the cache hit ratio.
    Queries(QueriesArgs),
    /// The bench's bare hyper floor: serves the sold-out answer on a free
    /// loopback port, printed first; runs until killed.
    #[command(hide = true)]
    HyperFloor,
    /// Prints a buyer token for `--user`, signed like the scenarios' (for curl).
    Token(TokenArgs),
}

#[derive(clap::Args)]
pub struct TokenArgs {
    #[arg(long)]
    pub user: u64,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Gateway base URL; must be a loopback address. Run it without token
    /// buckets (scripts/bench.sh does), or they measure themselves.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    pub target: String,
    #[arg(long, env = "ADMIN_TOKEN", default_value = "dev-admin-token")]
    pub admin_token: String,
    /// Requests per HTTP phase, and calls of the Redis floor.
    #[arg(long, default_value_t = 50_000)]
    pub requests: u64,
    /// Connections (calls in flight), the same for every phase.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Orders the database floor and the settler write.
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub kafka: String,
    /// MySQL server DSN without a database; the bench makes its own.
    #[arg(long, env = "MYSQL_URL", default_value = "mysql://flashsale:flashsale@127.0.0.1:3306")]
    pub mysql: String,
    /// The gateway's pid, to read its CPU time and peak RSS.
    #[arg(long)]
    pub gateway_pid: Option<u32>,
    /// The stack's settler: its CPU time is read, and it is paused
    /// (SIGSTOP) for one accepted phase, to show what its drain costs.
    #[arg(long)]
    pub settler_pid: Option<u32>,
    /// The broker's, Redis's and MySQL's pids, to read their CPU time.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    #[arg(long)]
    pub redis_pid: Option<u32>,
    #[arg(long)]
    pub mysql_pid: Option<u32>,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Only the accepted path, this many rounds in a row on one sale (the
    /// broker comparison of `BENCH=brokers scripts/bench.sh`).
    #[arg(long)]
    pub accepted_rounds: Option<u32>,
}

#[derive(clap::Args)]
pub struct QueriesArgs {
    /// Gateway base URL; must be a loopback address. Run it without token
    /// buckets (scripts/bench.sh does), or they measure themselves.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    pub target: String,
    #[arg(long, env = "ADMIN_TOKEN", default_value = "dev-admin-token")]
    pub admin_token: String,
    /// Buyers, one order each: the orders read.
    #[arg(long, default_value_t = 2_000)]
    pub buyers: u64,
    /// Calls per phase (the search makes a tenth as many), and per floor.
    #[arg(long, default_value_t = 20_000)]
    pub reads: u64,
    /// Calls in flight, the same for every phase and floor.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Orders a second the sale beside the reads places.
    #[arg(long, default_value_t = 200.0)]
    pub sale_rate: f64,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// The gateway's `redis.namespace`, to empty its cache before the cold phase.
    #[arg(long, env = "GATEWAY_REDIS__NAMESPACE", default_value = "")]
    pub namespace: String,
    /// Shard DSNs (the settler's list); or MYSQL_SHARDS, comma-separated.
    #[arg(long = "shard", env = "MYSQL_SHARDS", value_delimiter = ',', default_values_t = orderdb::shards::local_dsns())]
    pub shards: Vec<String>,
    /// How long to wait for the settler to store the orders, seconds.
    #[arg(long, default_value_t = 120)]
    pub settle_secs: u64,
    /// Orders placed with the settler paused (SIGSTOP), so the reads run
    /// while it drains them; needs --settler-pid.
    #[arg(long, default_value_t = 0)]
    pub backlog: u64,
    /// The stack's settler.
    #[arg(long)]
    pub settler_pid: Option<u32>,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ChaosBuyersArgs {
    /// Gateway base URLs (loopback); clicks go round robin, retries to the next one.
    #[arg(long = "target", env = "GATEWAY_URL", value_delimiter = ',', required = true)]
    pub targets: Vec<String>,
    #[arg(long)]
    pub sku: String,
    /// Distinct buyers, one click each.
    #[arg(long, default_value_t = 2_000)]
    pub buyers: u64,
    /// Clicks per second.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Clicks in flight at most.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// How long one click keeps being retried, seconds.
    #[arg(long, default_value_t = 60)]
    pub retry_secs: u64,
    /// The first buyer's user id.
    #[arg(long, default_value_t = 1)]
    pub first_user: u64,
    /// Buyers live in this many regions (r1..), each order naming its
    /// buyer's (a regional sale); 0: orders name none.
    #[arg(long, default_value_t = 0)]
    pub regions: u32,
    /// Where the answers go (JSON), for chaos-check.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct ChaosCheckArgs {
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    pub target: String,
    #[arg(long, env = "ADMIN_TOKEN", default_value = "dev-admin-token")]
    pub admin_token: String,
    /// The answers chaos-buyers wrote.
    #[arg(long)]
    pub answers: PathBuf,
    /// Shard DSNs (the settler's list); or MYSQL_SHARDS, comma-separated.
    #[arg(long = "shard", env = "MYSQL_SHARDS", value_delimiter = ',', default_values_t = orderdb::shards::local_dsns())]
    pub shards: Vec<String>,
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub kafka: String,
    #[arg(long, default_value = "order-events")]
    pub topic: String,
    /// The settlers' consumer group.
    #[arg(long, default_value = "settler")]
    pub group: String,
    /// How long to wait for every invariant to hold, seconds.
    #[arg(long, default_value_t = 90)]
    pub settle_secs: u64,
}

#[derive(clap::Args)]
pub struct Common {
    /// Gateway base URL; must be a loopback address.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Admin token of the gateway (to load the sale and read its counters).
    #[arg(long, env = "ADMIN_TOKEN", default_value = "dev-admin-token")]
    pub admin_token: String,
    /// SKU to sell; a fresh one per run when not given.
    #[arg(long)]
    pub sku: Option<String>,
    /// Upper bound on the run, seconds; it stops by itself then.
    #[arg(long, default_value_t = 60)]
    pub max_secs: u64,
    /// Shard DSNs to count stored orders in (the settler's list); or
    /// MYSQL_SHARDS, comma-separated.
    #[arg(long = "shard", env = "MYSQL_SHARDS", value_delimiter = ',', default_values_t = orderdb::shards::local_dsns())]
    pub shards: Vec<String>,
    /// How long to wait for the settler (and payments, timeouts), seconds.
    #[arg(long, default_value_t = 120)]
    pub settle_secs: u64,
    #[command(flatten)]
    pub output: Output,
}

impl Common {
    /// A fresh run id: names the SKU and spaces out user ids between runs,
    /// so per-user limits of earlier runs do not apply.
    pub fn run_id() -> anyhow::Result<u64> {
        Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
    }

    /// The run's gateway (`connections` at most), sale and buyers.
    pub fn sale(&self, scenario: &str, connections: usize) -> anyhow::Result<SaleRun> {
        let run_id = Self::run_id()?;
        Ok(SaleRun {
            gateway: client::Gateway::new(&self.target, &self.admin_token, connections)?,
            sku: self.sku.clone().unwrap_or_else(|| format!("{scenario}_{run_id}")),
            first_user: run_id * 1_000_000,
            max_duration: Duration::from_secs(self.max_secs),
            shards: self.shards.clone(),
            settle_timeout: Duration::from_secs(self.settle_secs),
        })
    }

    /// Prints and writes the report; an error if an invariant failed.
    pub fn finish(&self, report: report::Report) -> anyhow::Result<()> {
        report.print();
        report.write(self.output.json.as_deref(), self.output.chart.as_deref(), self.output.compare.as_deref())?;
        if !report.passed() {
            anyhow::bail!("an invariant failed");
        }
        Ok(())
    }
}

#[derive(clap::Args)]
pub struct FlashSaleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Units on sale.
    #[arg(long, default_value_t = 1_000)]
    pub stock: i64,
    /// Distinct buyers, one request each.
    #[arg(long, default_value_t = 20_000)]
    pub buyers: u64,
    /// Connections sending at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Share of accepted orders that then pay (0 to 1); the rest wait for
    /// their payment window to pass, and a second wave buys the units back.
    #[arg(long, default_value_t = 0.0)]
    pub pay_fraction: f64,
    /// The payment channel (simulator) the payers pay at.
    #[arg(long, env = "PAYSIM_URL", default_value = "http://127.0.0.1:9700")]
    pub channel: String,
    /// When the sale's units leave its stock: on_order (held from the 202)
    /// or on_payment (every buyer pays; the fastest get the units, the
    /// others are refunded; --pay-fraction does not apply).
    #[arg(long, default_value = "on_order", value_parser = deduction)]
    pub strategy: Deduction,
    /// With on_payment: orders awaiting payment allowed, in % of the stock.
    #[arg(long, default_value_t = Deduction::DEFAULT_OPEN_ORDERS_CAP_PCT)]
    pub open_orders_cap_pct: u32,
    /// With on_order: split the units over this many warehouses (wh1..), buyers over as
    /// many regions (r1..), each order naming its buyer's; the gateway's
    /// [scheduling] rules (config/gateway.local.toml has them for up to 4)
    /// decide which warehouse serves it. 0: one pool.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub regions: u32,
}

fn deduction(name: &str) -> Result<Deduction, String> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| format!("{name}: the strategy is on_order or on_payment"))
}

#[derive(clap::Args)]
pub struct RateArgs {
    #[command(flatten)]
    pub common: Common,
    /// Offered rate, requests per second (for ramp: the start).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Ramp only: the rate at the end.
    #[arg(long, default_value_t = 5_000.0)]
    pub to_rate: f64,
    /// How long requests are sent, seconds.
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,
    /// At most this many requests.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_requests: u64,
    /// Requests awaiting an answer at most; past it due requests are dropped (and reported).
    #[arg(long, default_value_t = 4_096)]
    pub max_in_flight: usize,
    /// Ramp only: the knee is the highest offered rate whose second kept p99 under this, ms.
    #[arg(long, default_value_t = 50.0)]
    pub knee_p99_ms: f64,
}

#[derive(clap::Args)]
pub struct MixedArgs {
    #[command(flatten)]
    pub common: Common,
    /// Buyer sessions.
    #[arg(long, default_value_t = 2_000)]
    pub sessions: u64,
    /// Connections sending at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// The payment channel (simulator) the payers pay at.
    #[arg(long, env = "PAYSIM_URL", default_value = "http://127.0.0.1:9700")]
    pub channel: String,
}

#[derive(clap::Args)]
pub struct ChannelOutageArgs {
    #[command(flatten)]
    pub common: Common,
    /// Buyers arriving each second (each places one order).
    #[arg(long, default_value_t = 20)]
    pub buyers_per_sec: u64,
    /// Seconds buyers keep arriving.
    #[arg(long, default_value_t = 150)]
    pub run_secs: u64,
    /// When the channel starts failing, seconds from the start.
    #[arg(long, default_value_t = 30)]
    pub outage_at_secs: u64,
    /// How long it fails every payment call, seconds.
    #[arg(long, default_value_t = 60)]
    pub outage_secs: u64,
    /// The failing channel's id and its simulator (loopback).
    #[arg(long, default_value = "card")]
    pub failing: String,
    /// Every channel as `<id>=<simulator URL>` (loopback).
    #[arg(long = "channel", value_delimiter = ',', default_values_t = ["card=http://127.0.0.1:9700".to_owned(), "wallet=http://127.0.0.1:9701".to_owned()])]
    pub channels: Vec<String>,
}

#[derive(clap::Args)]
pub struct CartArgs {
    #[command(flatten)]
    pub common: Common,
    /// Buyers, one checkout each (and as many single orders for the floor).
    #[arg(long, default_value_t = 2_000)]
    pub buyers: u64,
    /// SKUs the carts pick from.
    #[arg(long, default_value_t = 6)]
    pub skus: usize,
    /// Units of each SKU: carts run out of some.
    #[arg(long, default_value_t = 600)]
    pub stock: i64,
    /// Connections sending at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Share of the accepted checkouts cancelled.
    #[arg(long, default_value_t = 0.2)]
    pub cancel_fraction: f64,
    /// Share of the others paid.
    #[arg(long, default_value_t = 0.5)]
    pub pay_fraction: f64,
    /// The payment channel (simulator) the payers pay at.
    #[arg(long, env = "PAYSIM_URL", default_value = "http://127.0.0.1:9700")]
    pub channel: String,
}

#[derive(clap::Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: Common,
    /// Distinct clicks (idempotency keys), one user each.
    #[arg(long, default_value_t = 200)]
    pub keys: u64,
    /// Times each key is sent.
    #[arg(long, default_value_t = 50)]
    pub retries: u64,
    /// Connections sending at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
}

/// Where the report goes besides the terminal.
#[derive(clap::Args)]
pub struct Output {
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw throughput and latency over time into this SVG.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Print the change against this earlier JSON report.
    #[arg(long)]
    pub compare: Option<PathBuf>,
}
