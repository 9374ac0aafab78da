//! The flash-sale gateway: the HTTP front door that takes an order from a
//! shopper's click to an acknowledged event on Kafka in milliseconds.
//!
//! Layout:
//! - [`config`]: TOML + environment configuration, validated once.
//! - [`server`]: the hyper accept loop and graceful drain; [`routes`]: the API.
//! - [`limits`]: governor token buckets; [`sold_out`]: the local sold-out mark;
//!   [`single_flight`]: one placement per idempotency key in flight.
//! - [`payments`]: settling a payment; [`payment_queries`]: asking the
//!   channel about payments whose notification is late.
//! - [`order_store`]: order lookups in MySQL. The Redis scripts live in the
//!   `stock` crate, the event producer in `service`, the channel client in `paychannel`.
//! - [`error`]: every refusal and its HTTP status; [`http`]: response helpers.
//! - [`metrics`]: the Prometheus recorder.

pub mod app;
pub mod config;
pub mod error;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod order_store;
pub mod payment_queries;
pub mod payments;
pub mod routes;
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
    let lookups = tokio::spawn(payment_queries::run(app.clone()));
    server::serve(listener, app.clone(), shutdown, app.config.shutdown_grace()).await;
    pruner.abort();
    lookups.abort();
    if let Err(err) = app.events.flush(app.config.shutdown_grace()).await {
        tracing::error!(error = %err, "producer flush did not finish");
    }
}
