//! The flash-sale gateway: the HTTP front door that takes an order from a
//! shopper's click to an acknowledged event on Kafka in milliseconds.
//!
//! Layout, in the order imports run (each layer uses only those below it):
//! - HTTP: [`server`] (the hyper accept loop, header timeouts and graceful
//!   drain), [`connections`] (caps on open connections), [`write_timeout`]
//!   (clients that stop reading), [`routes`]
//!   (parse, call a workflow, map its outcome), [`http`] (bodies and
//!   replies), [`error`] (every refusal and its HTTP status, in one place).
//! - Workflows: [`placement`] (the hot path), [`cancellation`] (a buyer
//!   cancels, before or after paying), [`fulfilment`] (push, ship,
//!   receive), [`after_sales`] (refund-only, return, exchange requests),
//!   [`payments`] (starting and settling payments),
//!   [`payment_queries`] (asking the channel about late notifications),
//!   [`checkout`] (a cart: priced, tried SKU by SKU, accepted or cancelled)
//!   and [`checkout_payments`] (its one payment, and its cancellation),
//!   [`queries`] (a buyer's orders, the merchant's search over the shards),
//!   [`reload`] (hot reload of the traffic section); their answers and
//!   errors are in [`outcomes`].
//! - Shared state: [`app`] (what every request needs, built once),
//!   [`order_views`] (an order as the API shows it, through the hot-order
//!   cache), [`replicas`] (the read replicas and whether each keeps up).
//! - Local decisions: [`traffic`] (token buckets, deny lists, client IPs,
//!   circuit breakers), [`shedding`] (the in-flight cap), [`sold_out`],
//!   [`sale_windows`] and [`recent_orders`] (what is answered from memory),
//!   [`single_flight`] (one placement per key in flight), [`node_lease`]
//!   (this instance's node id, leased in Redis); their refusals are one
//!   type, [`refusal`].
//! - [`config`]: TOML + environment configuration, validated once;
//!   [`metrics`]: the Prometheus recorder.
//! - Elsewhere: the Redis scripts in the `stock` crate, the orders database
//!   in `orderdb`, the event producer in `events`, the channel's and the
//!   warehouse's clients in `paychannel`, the domain types and the state
//!   machine in `order`.

pub mod after_sales;
pub mod answers;
pub mod app;
pub mod auth;
pub mod cancellation;
pub mod checkout;
pub mod checkout_payments;
pub mod config;
pub mod connections;
pub mod error;
pub mod fulfilment;
pub mod group_commit;
pub mod http;
pub mod metrics;
pub mod node_lease;
pub mod order_views;
pub mod outcomes;
pub mod payment_queries;
pub mod payments;
pub mod placement;
pub mod queries;
pub mod recent_orders;
pub mod refusal;
pub mod reload;
pub mod replicas;
pub mod routes;
pub mod sale_windows;
pub mod server;
pub mod shedding;
pub mod single_flight;
pub mod sold_out;
pub mod traffic;
pub mod write_timeout;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use app::App;
use node_lease::NodeIdTaken;

/// How often idle per-user buckets are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// Runs the gateway on `listener` until `shutdown` resolves, then drains open
/// requests and flushes the producer, so no acknowledged order is lost.
/// With `config_file`, its traffic section is reloaded when it changes and
/// on SIGHUP. Stops with an error if another live instance holds this
/// instance's node id.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    config_file: Option<PathBuf>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeIdTaken> {
    let pruner = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PRUNE_EVERY);
            loop {
                every.tick().await;
                app.traffic.load().prune();
                app.recent_orders.prune();
            }
        })
    };
    let (taken_tx, taken_rx) = tokio::sync::oneshot::channel();
    let lease = {
        let app = app.clone();
        tokio::spawn(async move {
            let _ = taken_tx.send(app.node.keep(&app.node_leases).await);
        })
    };
    let lookups = tokio::spawn(payment_queries::run(app.clone()));
    let replica_checks = {
        let app = app.clone();
        let max_lag = Duration::from_secs(app.config.queries.replica_max_lag_secs);
        let every = Duration::from_millis(app.config.queries.replica_check_ms);
        tokio::spawn(async move { app.replicas.watch(max_lag, every).await })
    };
    let reloads = config_file.map(|path| tokio::spawn(reload::watch(app.clone(), path)));
    let clash = std::sync::Mutex::new(None);
    let stop = async {
        tokio::select! {
            _ = shutdown => {}
            Ok(taken) = taken_rx => {
                tracing::error!(error = %taken, "stopping");
                *clash.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(taken);
            }
        }
    };
    server::serve(listener, app.clone(), stop, app.config.shutdown_grace()).await;
    pruner.abort();
    lookups.abort();
    replica_checks.abort();
    lease.abort();
    if let Some(reloads) = reloads {
        reloads.abort();
    }
    if let Err(err) = app.events.flush(app.config.shutdown_grace()).await {
        tracing::error!(error = %err, "producer flush did not finish");
    }
    match clash.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()) {
        Some(taken) => Err(taken),
        None => {
            app.node.release(&app.node_leases).await;
            Ok(())
        }
    }
}
