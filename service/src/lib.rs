//! What the gateway and settler binaries share: layered config loading,
//! log set-up, the shutdown signal and the order-event producer.

pub mod producer;

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;

/// Why a config file or variable could not be read.
pub use figment::Error as ConfigFileError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Loads `T`: `defaults`, overlaid by `file` (if given), then by variables
/// `<env_prefix><SECTION>__<FIELD>` (e.g. `GATEWAY_REDIS__URL`). Tables
/// merge key by key; arrays replace.
pub fn load_config<T>(defaults: T, file: Option<&Path>, env_prefix: &str) -> Result<T, Box<ConfigFileError>>
where
    T: Serialize + DeserializeOwned,
{
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    // `<PREFIX>CONFIG` names the file itself, it is not a setting.
    figment.merge(Env::prefixed(env_prefix).split("__").ignore(&["config"])).extract().map_err(Box::new)
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info, librdkafka's warnings).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .init();
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
