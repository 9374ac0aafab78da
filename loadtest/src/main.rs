//! `loadtest`: drives the gateway with flash-sale traffic on loopback and
//! checks the stock invariants afterwards. Exits non-zero when one fails.
//!
//! Layout: [`flash_sale`] the scenario, [`client`] the HTTP calls,
//! [`report`] histogram and report, [`shards`] the MySQL count.

mod bench;
mod burst;
mod client;
mod flash_sale;
mod report;
mod shards;

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
    /// The floors (bare HTTP, pipelined Redis, plain INSERT) and the stack's
    /// figures as ratios against them, in one run, as one table.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Gateway base URL; must be a loopback address. Run it without token
    /// buckets (scripts/bench.sh does), or they measure themselves.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    #[arg(long, env = "GATEWAY_ADMIN__TOKEN", default_value = "dev-admin-token")]
    admin_token: String,
    /// Requests per HTTP phase, and calls of the Redis floor.
    #[arg(long, default_value_t = 50_000)]
    requests: u64,
    /// Connections (calls in flight), the same for every phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Orders the database floor and the settler write.
    #[arg(long, default_value_t = 20_000)]
    rows: u64,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    kafka: String,
    /// MySQL server DSN without a database; the bench makes its own.
    #[arg(long, env = "MYSQL_URL", default_value = "mysql://flashsale:flashsale@127.0.0.1:3306")]
    mysql: String,
    /// The gateway's pid, to read its peak RSS.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct FlashSaleArgs {
    /// Gateway base URL; must be a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Admin token of the gateway (to load the sale and read its counters).
    #[arg(long, env = "GATEWAY_ADMIN__TOKEN", default_value = "dev-admin-token")]
    admin_token: String,
    /// SKU to sell; a fresh one per run when not given.
    #[arg(long)]
    sku: Option<String>,
    /// Units on sale.
    #[arg(long, default_value_t = 1_000)]
    stock: i64,
    /// Distinct buyers, one request each.
    #[arg(long, default_value_t = 20_000)]
    buyers: u64,
    /// Connections sending at once.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Upper bound on the run, seconds; it stops by itself then.
    #[arg(long, default_value_t = 60)]
    max_secs: u64,
    /// Shard DSNs to count stored orders in (the settler's list).
    #[arg(long = "shard", default_values_t = default_shards())]
    shards: Vec<String>,
    /// How long to wait for the settler, payments and timeouts, seconds.
    #[arg(long, default_value_t = 120)]
    settle_secs: u64,
    /// Share of accepted orders that then pay (0 to 1); the rest wait for
    /// their payment window to pass, and a second wave buys the units back.
    #[arg(long, default_value_t = 0.0)]
    pay_fraction: f64,
    /// The payment channel (simulator) the payers pay at.
    #[arg(long, default_value = "http://127.0.0.1:9700")]
    channel: String,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn default_shards() -> Vec<String> {
    (0..4).map(|i| format!("mysql://flashsale:flashsale@127.0.0.1:3306/orders_{i}")).collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().scenario {
        Scenario::FlashSale(args) => flash_sale(args).await,
        Scenario::Bench(args) => bench(args).await,
    }
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let settler_bin = std::env::current_exe()?.with_file_name("settler");
    let report = bench::Bench {
        gateway: client::Gateway::new(&args.target, &args.admin_token, args.concurrency)?,
        requests: args.requests,
        concurrency: args.concurrency.max(1),
        rows: args.rows,
        redis_url: args.redis,
        kafka_bootstrap: args.kafka,
        mysql_server: args.mysql,
        gateway_pid: args.gateway_pid,
        settler_bin,
    }
    .run()
    .await?;
    report.print();
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

async fn flash_sale(args: FlashSaleArgs) -> anyhow::Result<()> {
    let run_id = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let sku = args.sku.unwrap_or_else(|| format!("flash_{run_id}"));
    client::require_loopback(&args.channel)?;
    let report = flash_sale::FlashSale {
        gateway: client::Gateway::new(&args.target, &args.admin_token, args.concurrency)?,
        sku,
        stock: args.stock,
        buyers: args.buyers,
        // Fresh user ids per run, so per-user limits of earlier runs do not apply.
        first_user: run_id * 1_000_000,
        concurrency: args.concurrency.max(1),
        max_duration: Duration::from_secs(args.max_secs),
        shards: args.shards,
        settle_timeout: Duration::from_secs(args.settle_secs),
        pay_fraction: args.pay_fraction.clamp(0.0, 1.0),
        channel_url: args.channel,
    }
    .run()
    .await?;
    report.print();
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
        println!("report written to {}", path.display());
    }
    if !report.passed() {
        anyhow::bail!("an invariant failed");
    }
    Ok(())
}
