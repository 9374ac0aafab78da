//! The flash-sale gateway: the HTTP front door that takes an order from a
//! shopper's click to an acknowledged event on Kafka in milliseconds.
//!
//! Layout:
//! - [`config`]: TOML + environment configuration, validated once.
//! - [`server`]: the hyper accept loop and graceful drain; [`routes`]: the API.
//! - [`limits`]: governor token buckets; [`sold_out`]: the local sold-out mark;
//!   [`single_flight`]: one placement per idempotency key in flight.
//! - [`sale_store`]: the Redis Lua scripts (`lua/`) that reserve and release units.
//! - [`kafka`]: the order-event producer; [`order_store`]: order lookups in MySQL.
//! - [`error`]: every refusal and its HTTP status; [`http`]: response helpers.
//! - [`metrics`]: the Prometheus recorder.

pub mod app;
pub mod config;
pub mod error;
pub mod http;
pub mod kafka;
pub mod limits;
pub mod metrics;
pub mod order_store;
pub mod routes;
pub mod sale_store;
pub mod server;
pub mod single_flight;
pub mod sold_out;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use app::App;

/// How often idle per-user buckets are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// Runs the gateway on `listener` until `shutdown` resolves, then drains open
/// requests and flushes the producer, so no acknowledged order is lost.
pub async fn run(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let pruner = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PRUNE_EVERY);
            loop {
                every.tick().await;
                app.limits.prune();
            }
        })
    };
    server::serve(listener, app.clone(), shutdown, app.config.shutdown_grace()).await;
    pruner.abort();
    if let Err(err) = app.events.flush(app.config.shutdown_grace()).await {
        tracing::error!(error = %err, "producer flush did not finish");
    }
}
