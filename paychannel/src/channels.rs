//! The payment channels by id ("card", "wallet"): where each is reached and
//! the secret it signs with, as configured, and their clients. A payment,
//! its lookups, its notifications and its refunds all go through the
//! channel it was created at.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use startup::secret::Secret;

use crate::client::{HttpChannel, PaymentChannel};

/// The secret of the development set-up's channels (refused outside
/// development mode).
pub const DEV_PAYMENT_SECRET: &str = "dev-payment-secret";

/// The default configuration's channel, and the one every payment recorded
/// before there were several (channel `""`) was made at: such a payment's
/// lookups, refunds and notifications (on the bare notify paths) go to the
/// channel of this id, whichever channel is the default now.
pub const DEFAULT_CHANNEL: &str = "card";

/// Where a channel is reached and the secret it signs notifications and
/// lookup answers with (HMAC-SHA256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Base URL of the channel's API.
    pub url: String,
    /// The development secret if left out (which the gateway refuses
    /// outside development mode), so a variable can move a channel's URL alone.
    #[serde(default = "development_secret")]
    pub secret: Secret,
}

fn development_secret() -> Secret {
    Secret::from(DEV_PAYMENT_SECRET)
}

/// The development set-up's one channel: the simulator on its default port.
pub fn development_endpoints() -> BTreeMap<String, Endpoint> {
    let card = Endpoint { url: "http://127.0.0.1:9700".into(), secret: development_secret() };
    BTreeMap::from([(DEFAULT_CHANNEL.to_owned(), card)])
}

/// Whether `id` may name a channel: 1 to 16 of `a-z`, `0-9`, `_`.
pub fn valid_id(id: &str) -> bool {
    (1..=16).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks a gateway's channels: the endpoints ([`check_endpoints`]), and
/// `default` and a non-empty `fallback` among them, and not the same.
pub fn check(
    endpoints: &BTreeMap<String, Endpoint>,
    default: &str,
    fallback: &str,
    development: bool,
) -> Result<(), String> {
    check_endpoints(endpoints, development)?;
    if !endpoints.contains_key(default) {
        return Err(format!("the default channel {default:?} is not among them"));
    }
    if !fallback.is_empty() && (!endpoints.contains_key(fallback) || fallback == default) {
        return Err(format!("the fallback channel {fallback:?} must be another of them"));
    }
    Ok(())
}

/// Checks configured channels: at least one; each id valid, each URL
/// http(s), each secret at least 16 characters (8 in development, where
/// the development secret is allowed).
pub fn check_endpoints(endpoints: &BTreeMap<String, Endpoint>, development: bool) -> Result<(), String> {
    if endpoints.is_empty() {
        return Err("must name at least one channel".into());
    }
    let shortest = if development { 8 } else { 16 };
    for (id, endpoint) in endpoints {
        if !valid_id(id) {
            return Err(format!("{id:?}: an id is 1 to 16 of a-z, 0-9 and _"));
        }
        if !endpoint.url.starts_with("http://") && !endpoint.url.starts_with("https://") {
            return Err(format!("{id}.url must be an http(s) URL"));
        }
        let secret = endpoint.secret.expose();
        if !development && secret == DEV_PAYMENT_SECRET {
            return Err(format!(
                "{id}.secret is the development secret: set the channel's (or server.development = true on a laptop)"
            ));
        }
        if secret.len() < shortest {
            return Err(format!("{id}.secret must be at least 16 characters"));
        }
    }
    Ok(())
}

/// The clients of the configured channels, and which one a payment the
/// buyer names none for goes to.
pub struct Channels {
    default: String,
    by_id: BTreeMap<String, Arc<dyn PaymentChannel>>,
}

impl Channels {
    /// HTTP clients of `endpoints`, each call bounded by `timeout`.
    /// `default` must be one of them (the configs check it).
    pub fn over_http(endpoints: &BTreeMap<String, Endpoint>, default: &str, timeout: Duration) -> Self {
        let by_id = endpoints
            .iter()
            .map(|(id, endpoint)| {
                let client: Arc<dyn PaymentChannel> =
                    Arc::new(HttpChannel::new(&endpoint.url, timeout, endpoint.secret.expose().as_bytes()));
                (id.clone(), client)
            })
            .collect();
        Self { default: default.to_owned(), by_id }
    }

    /// The channel's own id for `id` (`""`: [`DEFAULT_CHANNEL`], the one
    /// channel there was).
    pub fn resolve(id: &str) -> &str {
        if id.is_empty() {
            DEFAULT_CHANNEL
        } else {
            id
        }
    }

    /// The client of channel `id` (`""`: [`DEFAULT_CHANNEL`]), if configured.
    pub fn get(&self, id: &str) -> Option<&Arc<dyn PaymentChannel>> {
        self.by_id.get(Self::resolve(id))
    }

    /// The ids a record made through channel `id` may carry: its own, and
    /// `""` (records from before there were several) for [`DEFAULT_CHANNEL`].
    pub fn recorded_as(id: &str) -> Vec<&str> {
        let id = Self::resolve(id);
        if id == DEFAULT_CHANNEL {
            vec![id, ""]
        } else {
            vec![id]
        }
    }

    pub fn default_id(&self) -> &str {
        &self.default
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_lowercase_words() {
        for good in ["card", "wallet", "a", "pay_2", "abcdefghijklmnop"] {
            assert!(valid_id(good), "{good}");
        }
        for bad in ["", "Card", "we b", "a-b", "abcdefghijklmnopq", "../x", "é"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_config_names_its_default_and_fallback_among_its_channels() {
        let mut endpoints = development_endpoints();
        assert_eq!(check(&endpoints, "card", "", true), Ok(()));
        assert!(check(&endpoints, "card", "", false).unwrap_err().contains("development secret"));
        assert!(check(&endpoints, "wallet", "", true).unwrap_err().contains("default"));
        assert!(check(&endpoints, "card", "card", true).unwrap_err().contains("fallback"));
        let wallet = Endpoint { url: "http://127.0.0.1:9701".into(), secret: Secret::from("wallet-secret-0123456") };
        endpoints.insert("wallet".into(), wallet.clone());
        assert_eq!(check(&endpoints, "card", "wallet", true), Ok(()));
        endpoints.insert("Bad".into(), wallet.clone());
        assert!(check(&endpoints, "card", "wallet", true).unwrap_err().contains("Bad"));
        endpoints.remove("Bad");
        endpoints.insert("short".into(), Endpoint { secret: Secret::from("short"), ..wallet });
        assert!(check(&endpoints, "card", "wallet", true).unwrap_err().contains("short.secret"));
        assert!(check(&BTreeMap::new(), "card", "", true).is_err());
    }

    #[test]
    fn an_empty_id_is_the_one_channel_there_was_whatever_the_default() {
        let mut endpoints = development_endpoints();
        let wallet = Endpoint { url: "http://127.0.0.1:9701".into(), secret: Secret::from("wallet-secret-0123456") };
        endpoints.insert("wallet".into(), wallet);
        let channels = Channels::over_http(&endpoints, "wallet", Duration::from_secs(1));
        assert_eq!(channels.default_id(), "wallet");
        assert_eq!((Channels::resolve(""), Channels::resolve("wallet")), ("card", "wallet"));
        assert!(channels.get("").is_some() && channels.get("cash").is_none());
        assert_eq!(channels.ids().collect::<Vec<_>>(), ["card", "wallet"]);
        assert_eq!(Channels::recorded_as("card"), ["card", ""]);
        assert_eq!(Channels::recorded_as(""), ["card", ""]);
        assert_eq!(Channels::recorded_as("wallet"), ["wallet"]);
    }
}
