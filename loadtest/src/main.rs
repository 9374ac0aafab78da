//! `loadtest`: drives the gateway with flash-sale traffic on loopback and
//! checks the stock invariants afterwards. Exits non-zero when one fails.
//!
//! Layout: the scenarios [`flash_sale`], [`open_loop`] (steady, ramp),
//! [`storm`] (idempotency), [`mixed`], [`cart`] (checkouts against single orders) and
//! [`queries`] (order reads against their floors); [`chaos`] the buyers and the
//! invariant check of `scripts/chaos.sh`; [`burst`] the closed-loop generator; [`bench`]
//! the floors; [`client`] the HTTP calls; [`report`] and [`timeline`] the
//! figures and the chart; [`shards`] the MySQL counts.
//!
//! Buyers present tokens signed with `BUYER_TOKEN_SECRET` (key id
//! `BUYER_TOKEN_KID`), by default the gateway's development key (`dev`).

mod after_payment;
mod bench;
mod burst;
mod cart;
mod chaos;
mod client;
mod flash_sale;
mod mixed;
mod open_loop;
mod queries;
mod report;
mod shards;
mod storm;
mod timeline;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "Flash-sale load generator for the order gateway (loopback only)")]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
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
struct TokenArgs {
    #[arg(long)]
    user: u64,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Gateway base URL; must be a loopback address. Run it without token
    /// buckets (scripts/bench.sh does), or they measure themselves.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    target: String,
    #[arg(long, env = "ADMIN_TOKEN", default_value = "dev-admin-token")]
    admin_token: String,
    /// Requests per HTTP phase, and calls of the Redis floor.
    #[arg(long, default_value_t = 50_000)]
    requests: u64,
    /// Connections (calls in flight), the same for every phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Orders the database floor and the settler write.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    kafka: String,
    /// MySQL server DSN without a database; the bench makes its own.
    #[arg(long, env = "MYSQL_URL", default_value = "mysql://flashsale:flashsale@127.0.0.1:3306")]
    mysql: String,
    /// The gateway's pid, to read its CPU time and peak RSS.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// The stack's settler: its CPU time is read, and it is paused
    /// (SIGSTOP) for one accepted phase, to show what its drain costs.
    #[arg(long)]
    settler_pid: Option<u32>,
    /// The broker's, Redis's and MySQL's pids, to read their CPU time.
    #[arg(long)]
    broker_pid: Option<u32>,
    #[arg(long)]
    redis_pid: Option<u32>,
    #[arg(long)]
    mysql_pid: Option<u32>,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Only the accepted path, this many rounds in a row on one sale (the
    /// broker comparison of `BENCH=brokers scripts/bench.sh`).
    #[arg(long)]
    accepted_rounds: Option<u32>,
}

#[derive(clap::Args)]
struct QueriesArgs {
    /// Gateway base URL; must be a loopback address. Run it without token
    /// buckets (scripts/bench.sh does), or they measure themselves.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    target: String,
    #[arg(long, env = "ADMIN_TOKEN", default_value = "dev-admin-token")]
    admin_token: String,
    /// Buyers, one order each: the orders read.
    #[arg(long, default_value_t = 2_000)]
    buyers: u64,
    /// Calls per phase (the search makes a tenth as many), and per floor.
    #[arg(long, default_value_t = 20_000)]
    reads: u64,
    /// Calls in flight, the same for every phase and floor.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Orders a second the sale beside the reads places.
    #[arg(long, default_value_t = 200.0)]
    sale_rate: f64,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// The gateway's `redis.namespace`, to empty its cache before the cold phase.
    #[arg(long, env = "GATEWAY_REDIS__NAMESPACE", default_value = "")]
    namespace: String,
    /// Shard DSNs (the settler's list); or MYSQL_SHARDS, comma-separated.
    #[arg(long = "shard", env = "MYSQL_SHARDS", value_delimiter = ',', default_values_t = orderdb::shards::local_dsns())]
    shards: Vec<String>,
    /// How long to wait for the settler to store the orders, seconds.
    #[arg(long, default_value_t = 120)]
    settle_secs: u64,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ChaosBuyersArgs {
    /// Gateway base URLs (loopback); clicks go round robin, retries to the next one.
    #[arg(long = "target", env = "GATEWAY_URL", value_delimiter = ',', required = true)]
    targets: Vec<String>,
    #[arg(long)]
    sku: String,
    /// Distinct buyers, one click each.
    #[arg(long, default_value_t = 2_000)]
    buyers: u64,
    /// Clicks per second.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Clicks in flight at most.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// How long one click keeps being retried, seconds.
    #[arg(long, default_value_t = 60)]
    retry_secs: u64,
    /// The first buyer's user id.
    #[arg(long, default_value_t = 1)]
    first_user: u64,
    /// Where the answers go (JSON), for chaos-check.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct ChaosCheckArgs {
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    target: String,
    #[arg(long, env = "ADMIN_TOKEN", default_value = "dev-admin-token")]
    admin_token: String,
    /// The answers chaos-buyers wrote.
    #[arg(long)]
    answers: PathBuf,
    /// Shard DSNs (the settler's list); or MYSQL_SHARDS, comma-separated.
    #[arg(long = "shard", env = "MYSQL_SHARDS", value_delimiter = ',', default_values_t = orderdb::shards::local_dsns())]
    shards: Vec<String>,
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    kafka: String,
    #[arg(long, default_value = "order-events")]
    topic: String,
    /// The settlers' consumer group.
    #[arg(long, default_value = "settler")]
    group: String,
    /// How long to wait for every invariant to hold, seconds.
    #[arg(long, default_value_t = 90)]
    settle_secs: u64,
}

#[derive(clap::Args)]
struct Common {
    /// Gateway base URL; must be a loopback address.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Admin token of the gateway (to load the sale and read its counters).
    #[arg(long, env = "ADMIN_TOKEN", default_value = "dev-admin-token")]
    admin_token: String,
    /// SKU to sell; a fresh one per run when not given.
    #[arg(long)]
    sku: Option<String>,
    /// Upper bound on the run, seconds; it stops by itself then.
    #[arg(long, default_value_t = 60)]
    max_secs: u64,
    /// Shard DSNs to count stored orders in (the settler's list); or
    /// MYSQL_SHARDS, comma-separated.
    #[arg(long = "shard", env = "MYSQL_SHARDS", value_delimiter = ',', default_values_t = orderdb::shards::local_dsns())]
    shards: Vec<String>,
    /// How long to wait for the settler (and payments, timeouts), seconds.
    #[arg(long, default_value_t = 120)]
    settle_secs: u64,
    #[command(flatten)]
    output: Output,
}

impl Common {
    /// A fresh run id: names the SKU and spaces out user ids between runs,
    /// so per-user limits of earlier runs do not apply.
    fn run_id() -> anyhow::Result<u64> {
        Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
    }

    fn sku(&self, scenario: &str, run_id: u64) -> String {
        self.sku.clone().unwrap_or_else(|| format!("{scenario}_{run_id}"))
    }

    fn gateway(&self, connections: usize) -> anyhow::Result<client::Gateway> {
        client::Gateway::new(&self.target, &self.admin_token, connections)
    }

    /// Prints and writes the report; an error if an invariant failed.
    fn finish(&self, report: report::Report) -> anyhow::Result<()> {
        report.print();
        report.write(self.output.json.as_deref(), self.output.chart.as_deref(), self.output.compare.as_deref())?;
        if !report.passed() {
            anyhow::bail!("an invariant failed");
        }
        Ok(())
    }
}

#[derive(clap::Args)]
struct FlashSaleArgs {
    #[command(flatten)]
    common: Common,
    /// Units on sale.
    #[arg(long, default_value_t = 1_000)]
    stock: i64,
    /// Distinct buyers, one request each.
    #[arg(long, default_value_t = 20_000)]
    buyers: u64,
    /// Connections sending at once.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Share of accepted orders that then pay (0 to 1); the rest wait for
    /// their payment window to pass, and a second wave buys the units back.
    #[arg(long, default_value_t = 0.0)]
    pay_fraction: f64,
    /// The payment channel (simulator) the payers pay at.
    #[arg(long, env = "PAYSIM_URL", default_value = "http://127.0.0.1:9700")]
    channel: String,
}

#[derive(clap::Args)]
struct RateArgs {
    #[command(flatten)]
    common: Common,
    /// Offered rate, requests per second (for ramp: the start).
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Ramp only: the rate at the end.
    #[arg(long, default_value_t = 5_000.0)]
    to_rate: f64,
    /// How long requests are sent, seconds.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// At most this many requests.
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: u64,
    /// Requests awaiting an answer at most; past it due requests are dropped (and reported).
    #[arg(long, default_value_t = 4_096)]
    max_in_flight: usize,
    /// Ramp only: the knee is the highest offered rate whose second kept p99 under this, ms.
    #[arg(long, default_value_t = 50.0)]
    knee_p99_ms: f64,
}

#[derive(clap::Args)]
struct MixedArgs {
    #[command(flatten)]
    common: Common,
    /// Buyer sessions.
    #[arg(long, default_value_t = 2_000)]
    sessions: u64,
    /// Connections sending at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The payment channel (simulator) the payers pay at.
    #[arg(long, env = "PAYSIM_URL", default_value = "http://127.0.0.1:9700")]
    channel: String,
}

#[derive(clap::Args)]
struct CartArgs {
    #[command(flatten)]
    common: Common,
    /// Buyers, one checkout each (and as many single orders for the floor).
    #[arg(long, default_value_t = 2_000)]
    buyers: u64,
    /// SKUs the carts pick from.
    #[arg(long, default_value_t = 6)]
    skus: usize,
    /// Units of each SKU: carts run out of some.
    #[arg(long, default_value_t = 600)]
    stock: i64,
    /// Connections sending at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Share of the accepted checkouts cancelled.
    #[arg(long, default_value_t = 0.2)]
    cancel_fraction: f64,
    /// Share of the others paid.
    #[arg(long, default_value_t = 0.5)]
    pay_fraction: f64,
    /// The payment channel (simulator) the payers pay at.
    #[arg(long, env = "PAYSIM_URL", default_value = "http://127.0.0.1:9700")]
    channel: String,
}

#[derive(clap::Args)]
struct StormArgs {
    #[command(flatten)]
    common: Common,
    /// Distinct clicks (idempotency keys), one user each.
    #[arg(long, default_value_t = 200)]
    keys: u64,
    /// Times each key is sent.
    #[arg(long, default_value_t = 50)]
    retries: u64,
    /// Connections sending at once.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
}

/// Where the report goes besides the terminal.
#[derive(clap::Args)]
struct Output {
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw throughput and latency over time into this SVG.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Print the change against this earlier JSON report.
    #[arg(long)]
    compare: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().scenario {
        Scenario::FlashSale(args) => flash_sale(args).await,
        Scenario::Steady(args) => rate(args, "steady").await,
        Scenario::Ramp(args) => rate(args, "ramp").await,
        Scenario::IdempotencyStorm(args) => storm(args).await,
        Scenario::Cart(args) => cart(args).await,
        Scenario::Mixed(args) => mixed(args).await,
        Scenario::Bench(args) => bench(args).await,
        Scenario::Queries(args) => query_bench(args).await,
        Scenario::HyperFloor => bench::floors::serve_hyper_floor().await,
        Scenario::ChaosBuyers(args) => chaos_buyers(args).await,
        Scenario::ChaosCheck(args) => chaos_check(args).await,
        Scenario::Token(args) => {
            println!("{}", client::Signer::from_env().token(args.user));
            Ok(())
        }
    }
}

async fn query_bench(args: QueriesArgs) -> anyhow::Result<()> {
    let run = Common::run_id()?;
    let report = queries::Queries {
        gateway: client::Gateway::new(&args.target, &args.admin_token, args.concurrency * 2)?,
        sku: format!("queries_{run}"),
        // Clear of the ids earlier runs used, as the other scenarios' are.
        first_user: run * 1_000_000,
        buyers: args.buyers,
        reads: args.reads,
        concurrency: args.concurrency,
        redis: stock::RedisConfig { url: args.redis, namespace: args.namespace, ..Default::default() },
        shards: args.shards,
        sale_rate: args.sale_rate,
        settle: Duration::from_secs(args.settle_secs),
    }
    .run()
    .await?;
    report.print();
    if let Some(path) = args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

async fn chaos_buyers(args: ChaosBuyersArgs) -> anyhow::Result<()> {
    let gateways = args
        .targets
        .iter()
        .map(|target| client::Gateway::new(target, "", args.concurrency))
        .collect::<Result<_, _>>()?;
    let answers = chaos::Buyers {
        gateways,
        sku: args.sku,
        first_user: args.first_user,
        buyers: args.buyers,
        rate_per_sec: args.rate,
        concurrency: args.concurrency,
        retry_for: Duration::from_secs(args.retry_secs),
    }
    .run()
    .await;
    println!(
        "{} clicks: {} orders answered, finals {:?}, {} retries, {} unanswered, longest gap without an acceptance {} ms",
        args.buyers,
        answers.accepted.len(),
        answers.finals,
        answers.retries,
        answers.unanswered,
        answers.longest_gap_ms()
    );
    std::fs::write(&args.out, serde_json::to_vec_pretty(&answers)?)?;
    Ok(())
}

async fn chaos_check(args: ChaosCheckArgs) -> anyhow::Result<()> {
    let answers: chaos::Answers = serde_json::from_slice(&std::fs::read(&args.answers)?)?;
    let invariants = chaos::Check {
        gateway: client::Gateway::new(&args.target, &args.admin_token, 4)?,
        shards: args.shards,
        bootstrap: args.kafka,
        topic: args.topic,
        group: args.group,
        settle_timeout: Duration::from_secs(args.settle_secs),
    }
    .run(&answers)
    .await?;
    for invariant in &invariants {
        println!("[{}] {}: {}", if invariant.held { " ok " } else { "FAIL" }, invariant.name, invariant.detail);
    }
    if invariants.iter().any(|invariant| !invariant.held) {
        anyhow::bail!("an invariant failed");
    }
    Ok(())
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let settler_bin = std::env::current_exe()?.with_file_name("settler");
    let bench = bench::Bench {
        gateway: client::Gateway::new(&args.target, &args.admin_token, args.concurrency)?,
        requests: args.requests,
        concurrency: args.concurrency.max(1),
        rows: args.rows,
        redis_url: args.redis,
        kafka_bootstrap: args.kafka,
        mysql_server: args.mysql,
        gateway_pid: args.gateway_pid,
        settler_pid: args.settler_pid,
        broker_pid: args.broker_pid,
        redis_pid: args.redis_pid,
        mysql_pid: args.mysql_pid,
        settler_bin,
    };
    if let Some(rounds) = args.accepted_rounds {
        let phases = bench.accepted_rounds(rounds).await?;
        bench::table::print_rounds(&phases);
        if let Some(path) = args.json {
            std::fs::write(&path, serde_json::to_vec_pretty(&phases)?)?;
        }
        return Ok(());
    }
    let report = bench.run().await?;
    report.print();
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

async fn flash_sale(args: FlashSaleArgs) -> anyhow::Result<()> {
    let run_id = Common::run_id()?;
    client::require_loopback(&args.channel)?;
    let report = flash_sale::FlashSale {
        gateway: args.common.gateway(args.concurrency)?,
        sku: args.common.sku("flash", run_id),
        stock: args.stock,
        buyers: args.buyers,
        first_user: run_id * 1_000_000,
        concurrency: args.concurrency.max(1),
        max_duration: Duration::from_secs(args.common.max_secs),
        shards: args.common.shards.clone(),
        settle_timeout: Duration::from_secs(args.common.settle_secs),
        pay_fraction: args.pay_fraction.clamp(0.0, 1.0),
        channel_url: args.channel,
    }
    .run()
    .await?;
    args.common.finish(report)
}

async fn rate(args: RateArgs, scenario: &'static str) -> anyhow::Result<()> {
    let run_id = Common::run_id()?;
    let end_rps = if scenario == "ramp" { args.to_rate } else { args.rate };
    let duration = Duration::from_secs(args.duration_secs.clamp(1, args.common.max_secs.max(1)));
    let report = open_loop::RateRun {
        scenario,
        gateway: args.common.gateway(args.max_in_flight.min(1_024))?,
        sku: args.common.sku(scenario, run_id),
        first_user: run_id * 1_000_000,
        start_rps: args.rate.max(1.0),
        end_rps: end_rps.max(1.0),
        duration,
        max_requests: args.max_requests,
        max_in_flight: args.max_in_flight.max(1),
        shards: args.common.shards.clone(),
        settle_timeout: Duration::from_secs(args.common.settle_secs),
        knee_p99_ms: args.knee_p99_ms,
    }
    .run()
    .await?;
    args.common.finish(report)
}

async fn cart(args: CartArgs) -> anyhow::Result<()> {
    let run_id = Common::run_id()?;
    client::require_loopback(&args.channel)?;
    let report = cart::Cart {
        gateway: args.common.gateway(args.concurrency)?,
        run: args.common.sku("cart", run_id),
        first_user: run_id * 1_000_000,
        buyers: args.buyers,
        skus: args.skus.clamp(2, 50),
        stock_per_sku: args.stock,
        concurrency: args.concurrency.max(1),
        max_duration: Duration::from_secs(args.common.max_secs),
        cancel_fraction: args.cancel_fraction.clamp(0.0, 1.0),
        pay_fraction: args.pay_fraction.clamp(0.0, 1.0),
        channel_url: args.channel,
        shards: args.common.shards.clone(),
        settle_timeout: Duration::from_secs(args.common.settle_secs),
    }
    .run()
    .await?;
    args.common.finish(report)
}

async fn storm(args: StormArgs) -> anyhow::Result<()> {
    let run_id = Common::run_id()?;
    let report = storm::Storm {
        gateway: args.common.gateway(args.concurrency)?,
        sku: args.common.sku("storm", run_id),
        first_user: run_id * 1_000_000,
        keys: args.keys.max(1),
        retries: args.retries.max(1),
        concurrency: args.concurrency.max(1),
        max_duration: Duration::from_secs(args.common.max_secs),
        shards: args.common.shards.clone(),
        settle_timeout: Duration::from_secs(args.common.settle_secs),
    }
    .run()
    .await?;
    args.common.finish(report)
}

async fn mixed(args: MixedArgs) -> anyhow::Result<()> {
    let run_id = Common::run_id()?;
    client::require_loopback(&args.channel)?;
    let report = mixed::Mixed {
        gateway: args.common.gateway(args.concurrency)?,
        channel_url: args.channel,
        sku: args.common.sku("mixed", run_id),
        first_user: run_id * 1_000_000,
        sessions: args.sessions,
        concurrency: args.concurrency.max(1),
        max_duration: Duration::from_secs(args.common.max_secs),
        shards: args.common.shards.clone(),
        settle_timeout: Duration::from_secs(args.common.settle_secs),
    }
    .run()
    .await?;
    args.common.finish(report)
}
