use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Moves accepted orders from Kafka into sharded MySQL.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML config file; every value can also be set by SETTLER_* variables.
    #[arg(long, env = "SETTLER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume order events and persist them (the default).
    Run,
    /// Create the shard databases, apply migrations, create the topics. Idempotent.
    Setup,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::init_logging();
    let args = Args::parse();
    let config = settler::config::Config::load(args.config.as_deref())?;
    match args.command.unwrap_or(Command::Run) {
        Command::Setup => {
            settler::setup::run(&config).await?;
            tracing::info!(shards = config.mysql.shards.len(), topic = %config.kafka.topic, "set-up done");
        }
        Command::Run => {
            settler::shards::ShardPools::connect_lazy(&config.mysql.shards, 1)?.migrate().await?;
            tracing::info!(topic = %config.kafka.topic, group = %config.kafka.group_id, "settler starting");
            settler::Settler::new(config)?.run(service::shutdown_signal()).await?;
        }
    }
    Ok(())
}

