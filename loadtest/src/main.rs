//! `loadtest`: drives the gateway with flash-sale traffic on loopback and
//! checks the stock invariants afterwards. Exits non-zero when one fails.
//!
//! Layout: [`flash_sale`] the scenario, [`client`] the HTTP calls,
//! [`report`] histogram and report, [`shards`] the MySQL count.

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
    let Scenario::FlashSale(args) = Args::parse().scenario;
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
