//! The flash-sale gateway: the HTTP front door that takes an order from a
//! shopper's click to an acknowledged event on Kafka in milliseconds.
//!
//! Layout, in the order imports run (each layer uses only those below it):
//! - HTTP: [`server`] (the hyper accept loop, header timeouts and graceful
//!   drain), [`connections`] (caps on open connections), [`write_timeout`]
//!   (clients that stop reading), [`routes`] (parse, call one workflow of
//!   the `ordercenter` crate, map its outcome), [`http`] (bodies and
//!   replies), [`error`] and [`answers`] (every refusal and its HTTP
//!   status, in one place).
//! - The front door's own decisions: [`auth`] (who the buyer is),
//!   [`traffic`] (token buckets, deny lists, client IPs), [`shedding`]
//!   (the in-flight cap), [`reload`] (hot reload of the traffic section).
//! - Shared state: [`app`] (the order center and the front door's state,
//!   built once).
//! - [`config`]: TOML + environment configuration, validated once;
//!   [`metrics`]: the Prometheus recorder.
//! - Elsewhere: the workflows in `ordercenter`, the Redis scripts in
//!   `stock`, the orders database in `orderdb`, the event producer in
//!   `events`, the channel's and the warehouse's clients in `paychannel`,
//!   the domain types and the state machine in `order`.

pub mod answers;
pub mod app;
pub mod auth;
pub mod config;
pub mod connections;
pub mod error;
pub mod http;
pub mod metrics;
pub mod reload;
pub mod routes;
pub mod server;
pub mod shedding;
pub mod traffic;
pub mod write_timeout;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use app::App;
use ordercenter::node_lease::NodeIdTaken;
use ordercenter::payment_lookups;

/// How often idle per-user and per-IP buckets are forgotten: a sale's
/// crowd is mostly buyers who click once, and a bucket is full again (so
/// forgettable) within its burst over its rate, a few seconds. Pruned every
/// 30 s, a million distinct buyers in half a minute took the gateway's peak
/// RSS to 77 MiB; every second, 43 MiB.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

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
                app.center.recent_orders.prune();
                app.center.used_keys.prune();
                app.center.share_lookups.prune();
            }
        })
    };
    let used_keys_watch =
        tokio::spawn(ordercenter::used_keys::keep_fresh(app.center.used_keys.clone(), app.center.sales.clone()));
    let (taken_tx, taken_rx) = tokio::sync::oneshot::channel();
    let lease = {
        let app = app.clone();
        tokio::spawn(async move {
            let _ = taken_tx.send(app.center.node.keep(&app.center.node_leases).await);
        })
    };
    let lookups = tokio::spawn(payment_lookups::run(app.center.clone()));
    let adoptions = tokio::spawn(ordercenter::adoption::run(app.center.clone()));
    let replica_checks = {
        let app = app.clone();
        let max_lag = Duration::from_secs(app.config.queries.replica_max_lag_secs);
        let every = Duration::from_millis(app.config.queries.replica_check_ms);
        tokio::spawn(async move { app.center.services.replicas.watch(max_lag, every).await })
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
    used_keys_watch.abort();
    lookups.abort();
    adoptions.abort();
    replica_checks.abort();
    lease.abort();
    if let Some(reloads) = reloads {
        reloads.abort();
    }
    if let Err(err) = app.center.services.events.flush(app.config.shutdown_grace()).await {
        tracing::error!(error = %err, "producer flush did not finish");
    }
    match clash.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()) {
        Some(taken) => Err(taken),
        None => {
            app.center.node.release(&app.center.node_leases).await;
            Ok(())
        }
    }
}
