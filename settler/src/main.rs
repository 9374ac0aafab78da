use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use settler::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Moves accepted orders from Kafka into sharded MySQL and cancels orders
/// whose payment window passed.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML config file; every value can also be set by SETTLER_* variables.
    #[arg(long, env = "SETTLER_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration, print it (secrets masked) as TOML and exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume order events and persist them, and sweep expired orders (the default).
    Run,
    /// Create the shard databases, apply migrations, create the topics. Idempotent.
    Setup,
    /// Compare a sale's counters in Redis with its orders in MySQL; exit 1 on drift.
    Reconcile {
        #[arg(long)]
        sku: String,
        /// Make Redis match MySQL.
        #[arg(long)]
        repair: bool,
    },
    /// The daily sale report: live sale figures against the same recomputed
    /// from MySQL, as JSON; exit 1 if any differ.
    SaleReport {
        /// One SKU (default: every SKU with a sale loaded).
        #[arg(long)]
        sku: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::load(args.config.as_deref())?;
    if args.check_config {
        print!("{}", toml::to_string_pretty(&config)?);
        return Ok(());
    }
    let _telemetry = telemetry::init("settler", &config.tracing)?;
    match args.command.unwrap_or(Command::Run) {
        Command::Setup => {
            settler::setup::run(&config).await?;
            tracing::info!(shards = config.mysql.shards.len(), topic = %config.kafka.topic, "set-up done");
        }
        Command::Run => run(config).await?,
        Command::Reconcile { sku, repair } => {
            let shards = config.mysql.connect_lazy()?;
            let store = stock::SaleStore::connect(&config.redis)?;
            store.redis().wait_connected(Duration::from_secs(5)).await;
            let result = settler::reconcile::reconcile(&shards, &store, &sku, repair).await?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            if result.drifted() && !result.repaired {
                std::process::exit(1);
            }
        }
        Command::SaleReport { sku } => {
            let shards = config.mysql.connect_lazy()?;
            let store = stock::SaleStore::connect(&config.redis)?;
            store.redis().wait_connected(Duration::from_secs(5)).await;
            let reports = settler::sale_report::report(&shards, &store, sku).await?;
            println!("{}", serde_json::to_string_pretty(&reports)?);
            if reports.iter().any(|report| !report.drift.is_empty()) {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// The consumer and the sweeper, until SIGTERM or SIGINT; each finishes
/// what it is doing first.
async fn run(config: Config) -> anyhow::Result<()> {
    let (ops_listener, metrics) = settler::ops::bind(config.ops.listen).await?;
    tracing::info!(listen = %ops_listener.local_addr()?, "health and metrics endpoint");
    let ops = tokio::spawn(settler::ops::serve(ops_listener, metrics));
    config.mysql.connect_lazy()?.migrate().await?;
    let sweeper = settler::sweeper::Sweeper {
        store: stock::SaleStore::connect(&config.redis)?,
        events: events::producer::EventProducer::new(&config.producer())?,
        every: Duration::from_millis(config.sweeper.every_ms),
        rescan_every: Duration::from_millis(config.sweeper.rescan_every_ms),
        batch: config.sweeper.batch,
        strike_window_secs: config.abuse.window_secs,
    };
    let lifecycle = settler::timers::Timers {
        shards: config.mysql.connect_lazy()?,
        store: stock::SaleStore::connect(&config.redis)?,
        events: events::producer::EventProducer::new(&config.producer())?,
        every: Duration::from_millis(config.lifecycle.every_ms),
        auto_complete_after: Duration::from_secs(config.lifecycle.auto_complete_after_secs),
        restock: config.lifecycle.restock_cancelled_paid,
        warehouse: paychannel::warehouse::HttpWarehouse::new(
            &config.lifecycle.warehouse_url,
            Duration::from_millis(config.lifecycle.warehouse_timeout_ms),
        ),
        review_within: Duration::from_secs(config.lifecycle.review_within_secs),
        escalate_unreviewed: config.lifecycle.unreviewed == settler::config::Unreviewed::Escalate,
        lost_points: settler::timers::LostPoints::after(Duration::from_secs(config.lifecycle.lost_points_after_secs)),
        refunds: settler::refunds::RefundDriver {
            channels: paychannel::channels::Channels::over_http(
                &config.refunds.channels,
                paychannel::channels::DEFAULT_CHANNEL,
                Duration::from_millis(config.refunds.channel_timeout_ms),
            ),
            notify_url: config.refunds.notify_url.clone(),
            retry_every: Duration::from_millis(config.refunds.retry_every_ms),
            max_attempts: config.refunds.max_attempts,
        },
    };
    let sweep = config.sweeper.enabled;
    tracing::info!(topic = %config.kafka.topic, group = %config.kafka.group_id, sweep, "settler starting");
    let consumer = settler::Settler::new(config)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.changed().await;
    };
    let sweeping = sweep.then(|| tokio::spawn(sweeper.run(until_stopped(stopped.clone()))));
    let relaying = tokio::spawn(lifecycle.run(until_stopped(stopped.clone())));
    let mut consuming = tokio::spawn(consumer.run(until_stopped(stopped)));
    // The consumer ends only when asked to; ending on its own (an error, a
    // panic) means nothing is being stored: exit non-zero so a supervisor
    // restarts the settler.
    tokio::select! {
        _ = startup::shutdown_signal() => {}
        ended = &mut consuming => {
            let why = match ended {
                Ok(Ok(())) => "it returned".to_owned(),
                Ok(Err(err)) => err.to_string(),
                Err(err) => err.to_string(),
            };
            anyhow::bail!("the consumer stopped on its own: {why}");
        }
    }
    let _ = stop.send(true);
    ops.abort();
    if let Some(sweeping) = sweeping {
        sweeping.await?;
    }
    relaying.await?;
    consuming.await??;
    Ok(())
}
