use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The flash-sale order gateway.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML config file; every value can also be set by GATEWAY_* variables.
    #[arg(long, env = "GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration, print it (secrets masked) as TOML and exit.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = gateway::config::Config::load(args.config.as_deref())?;
    if args.check_config {
        print!("{}", toml::to_string_pretty(&config)?);
        return Ok(());
    }
    let _telemetry = telemetry::init("gateway", &config.tracing)?;

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let app = Arc::new(gateway::App::new(config, args.config.clone())?);
    if !app.center.sales.redis().wait_connected(std::time::Duration::from_secs(2)).await {
        tracing::warn!("redis not reachable yet; answering 503 until it is");
    }
    tracing::info!(listen = %listener.local_addr()?, "gateway listening");
    gateway::run(listener, app, args.config, startup::shutdown_signal()).await?;
    Ok(())
}
