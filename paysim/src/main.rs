//! `paysim`: the payment channel and warehouse simulator, for the demo and for storefront
//! developers. See the library (`src/lib.rs`) for its API.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use paysim::{Simulator, DEFAULT_RETRY_SCHEDULE_MS};

#[derive(Parser)]
#[command(
    version,
    about = "Payment channel and warehouse simulator: payments and refunds with signed notifications, retries, lookups and faults on request; a warehouse that ships or intercepts"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9700")]
    listen: SocketAddr,
    /// Shared secret for the notification signatures (the gateway's `payments.secret`).
    #[arg(long, env = "PAYSIM_SECRET", default_value = "dev-payment-secret")]
    secret: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _logs = telemetry::init("paysim", &telemetry::TracingConfig::default())?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let schedule: Vec<Duration> = DEFAULT_RETRY_SCHEDULE_MS.iter().map(|ms| Duration::from_millis(*ms)).collect();
    tracing::info!(listen = %args.listen, "payment channel simulator listening");
    Simulator::new(args.secret.as_bytes(), &schedule).serve(listener, startup::shutdown_signal()).await;
    Ok(())
}
