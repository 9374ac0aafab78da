//! What every binary does at start: layered config loading and the
//! shutdown signal; [`secret`]: config values that print masked. (Logs and
//! traces are set up by the `telemetry` crate.)

pub mod secret;

use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;

/// Why a config file or variable could not be read.
pub use figment::Error as ConfigFileError;
use serde::de::DeserializeOwned;

/// Loads `T` from `file` (if given), overlaid by variables
/// `<env_prefix><SECTION>__<FIELD>` (e.g. `GATEWAY_REDIS__URL`). What
/// neither sets is `T`'s default: every section must be
/// `#[serde(default)]`. (The defaults are not a layer of their own: secrets
/// serialize masked, so a serialized copy of them would not load back.)
/// Tables merge key by key; arrays replace
/// (`GATEWAY_MYSQL__SHARDS='["mysql://…", …]'`). Variables with the prefix
/// but no `__` (`GATEWAY_CONFIG`, the scripts' `GATEWAY_PORT`) are not
/// settings and are left alone.
pub fn load_config<T: DeserializeOwned>(file: Option<&Path>, env_prefix: &str) -> Result<T, Box<ConfigFileError>> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    let settings = Env::prefixed(env_prefix).filter(|key| key.as_str().contains("__")).split("__");
    figment.merge(settings).extract().map_err(Box::new)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Settings {
        server: Server,
    }

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Server {
        listen: String,
        shards: Vec<String>,
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail dictates the closure's error type
    fn script_variables_with_the_prefix_are_not_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("APP_PORT", "8091");
            jail.set_env("APP_CONFIG", "/nowhere.toml");
            jail.set_env("APP_SERVER__LISTEN", "127.0.0.1:8091");
            jail.set_env("APP_SERVER__SHARDS", r#"["mysql://a:b@127.0.0.1:3391/orders_0", "mysql://x"]"#);
            let loaded: Settings = load_config(None, "APP_").map_err(|e| e.to_string())?;
            assert_eq!(loaded.server.listen, "127.0.0.1:8091");
            assert_eq!(loaded.server.shards, ["mysql://a:b@127.0.0.1:3391/orders_0", "mysql://x"]);
            Ok(())
        });
    }
}
