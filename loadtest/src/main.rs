//! `loadtest`: drives the gateway with flash-sale traffic on loopback and
//! checks the stock invariants afterwards. Exits non-zero when one fails.
//!
//! Layout: the scenarios [`flash_sale`] (and [`pay_race`], a sale deducting
//! at payment), [`open_loop`] (steady, ramp),
//! [`storm`] (idempotency), [`mixed`], [`cart`] (checkouts against single
//! orders), [`channel_outage`] (a payment channel failing mid-sale) and
//! [`queries`] (order reads against their floors), with
//! [`after_payment`] (what paid orders go on to do); [`chaos`] the buyers and
//! the invariant check of `scripts/chaos.sh`; [`workers`] the harness they run on;
//! [`bench`] the floors; [`client`] the HTTP calls; [`report`] and
//! [`timeline`] the figures and the chart; [`shards`] the MySQL counts;
//! [`group_lag`] what the settlers have not committed; [`args`] the command line.
//!
//! Buyers present tokens signed with `BUYER_TOKEN_SECRET` (key id
//! `BUYER_TOKEN_KID`), by default the gateway's development key (`dev`).

mod after_payment;
mod args;
mod bench;
mod cart;
mod channel_outage;
mod chaos;
mod client;
mod flash_sale;
mod group_lag;
mod mixed;
mod open_loop;
mod pay_race;
mod queries;
mod report;
mod shards;
mod storm;
mod timeline;
mod workers;

use std::time::Duration;

use args::{
    Args, BenchArgs, CartArgs, ChannelOutageArgs, ChaosBuyersArgs, ChaosCheckArgs, Common, FlashSaleArgs, MixedArgs,
    QueriesArgs, RateArgs, Scenario, StormArgs,
};
use clap::Parser;
use order::sale::Deduction;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().scenario {
        Scenario::FlashSale(args) => flash_sale(args).await,
        Scenario::Steady(args) => rate(args, "steady").await,
        Scenario::Ramp(args) => rate(args, "ramp").await,
        Scenario::IdempotencyStorm(args) => storm(args).await,
        Scenario::Cart(args) => cart(args).await,
        Scenario::Mixed(args) => mixed(args).await,
        Scenario::ChannelOutage(args) => channel_outage(args).await,
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

async fn channel_outage(args: ChannelOutageArgs) -> anyhow::Result<()> {
    let mut channels = std::collections::BTreeMap::new();
    for channel in &args.channels {
        let (id, url) = channel.split_once('=').ok_or_else(|| anyhow::anyhow!("--channel {channel}: <id>=<url>"))?;
        client::require_loopback(url)?;
        channels.insert(id.to_owned(), url.to_owned());
    }
    anyhow::ensure!(channels.contains_key(&args.failing), "--failing {} is not among --channel", args.failing);
    let sale = args.common.sale("outage", 256)?;
    let checks = channel_outage::ChannelOutage {
        gateway: sale.gateway,
        sku: sale.sku,
        first_user: sale.first_user,
        shards: sale.shards,
        channels,
        failing: args.failing,
        buyers_per_sec: args.buyers_per_sec,
        run: Duration::from_secs(args.run_secs.min(args.common.max_secs.max(1))),
        outage_at: Duration::from_secs(args.outage_at_secs),
        outage: Duration::from_secs(args.outage_secs),
        settle: sale.settle_timeout,
    }
    .run()
    .await?;
    let mut passed = true;
    for check in &checks {
        println!("{} {}: {}", if check.ok { "ok  " } else { "FAIL" }, check.name, check.detail);
        passed &= check.ok;
    }
    anyhow::ensure!(passed, "an invariant failed");
    Ok(())
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
        backlog: args.backlog,
        settler_pid: args.settler_pid,
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
        .map(|target| client::Gateway::new(target, "", args.concurrency).map(|g| g.in_regions(args.regions)))
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
    client::require_loopback(&args.channel)?;
    if args.strategy == Deduction::OnPayment {
        let report = pay_race::PayRace {
            sale: args.common.sale("flash", args.concurrency)?,
            stock: args.stock,
            buyers: args.buyers,
            concurrency: args.concurrency.max(1),
            open_orders_cap_pct: args.open_orders_cap_pct,
            channel_url: args.channel,
        }
        .run()
        .await?;
        return args.common.finish(report);
    }
    let mut sale = args.common.sale("flash", args.concurrency)?;
    sale.gateway = sale.gateway.in_regions(args.regions);
    let report = flash_sale::FlashSale {
        sale,
        stock: args.stock,
        buyers: args.buyers,
        concurrency: args.concurrency.max(1),
        pay_fraction: args.pay_fraction.clamp(0.0, 1.0),
        channel_url: args.channel,
        regions: args.regions,
    }
    .run()
    .await?;
    args.common.finish(report)
}

async fn rate(args: RateArgs, scenario: &'static str) -> anyhow::Result<()> {
    let end_rps = if scenario == "ramp" { args.to_rate } else { args.rate };
    let duration = Duration::from_secs(args.duration_secs.clamp(1, args.common.max_secs.max(1)));
    let report = open_loop::RateRun {
        scenario,
        sale: args.common.sale(scenario, args.max_in_flight.min(1_024))?,
        start_rps: args.rate.max(1.0),
        end_rps: end_rps.max(1.0),
        duration,
        max_requests: args.max_requests,
        max_in_flight: args.max_in_flight.max(1),
        knee_p99_ms: args.knee_p99_ms,
    }
    .run()
    .await?;
    args.common.finish(report)
}

async fn cart(args: CartArgs) -> anyhow::Result<()> {
    client::require_loopback(&args.channel)?;
    let report = cart::Cart {
        sale: args.common.sale("cart", args.concurrency)?,
        buyers: args.buyers,
        skus: args.skus.clamp(2, 50),
        stock_per_sku: args.stock,
        concurrency: args.concurrency.max(1),
        cancel_fraction: args.cancel_fraction.clamp(0.0, 1.0),
        pay_fraction: args.pay_fraction.clamp(0.0, 1.0),
        channel_url: args.channel,
    }
    .run()
    .await?;
    args.common.finish(report)
}

async fn storm(args: StormArgs) -> anyhow::Result<()> {
    let report = storm::Storm {
        sale: args.common.sale("storm", args.concurrency)?,
        keys: args.keys.max(1),
        retries: args.retries.max(1),
        concurrency: args.concurrency.max(1),
    }
    .run()
    .await?;
    args.common.finish(report)
}

async fn mixed(args: MixedArgs) -> anyhow::Result<()> {
    client::require_loopback(&args.channel)?;
    let report = mixed::Mixed {
        sale: args.common.sale("mixed", args.concurrency)?,
        channel_url: args.channel,
        sessions: args.sessions,
        concurrency: args.concurrency.max(1),
    }
    .run()
    .await?;
    args.common.finish(report)
}
