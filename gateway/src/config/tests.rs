use super::*;
use figment::providers::{Format, Toml};
use figment::Figment;
use std::io::Write;

#[test]
fn the_example_file_is_the_defaults() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/gateway.example.toml");
    let loaded: Config = Figment::new().merge(Toml::file_exact(example)).extract().unwrap();
    assert_eq!(loaded, Config::default());
}

#[test]
fn development_secrets_are_refused_outside_development_mode() {
    let mut config = Config::default();
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("admin.tokens holds the development token"), "{err}");
    config.admin.tokens = [("ops".to_owned(), Secret::from("a-real-admin-token-0123"))].into();
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("auth.keys holds the development signing key"), "{err}");
    config.auth.keys[0].secret = Some(Secret::from("an-issuer-secret-of-32-bytes-or-more"));
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("payments.channels card.secret is the development secret"), "{err}");
    config.payments.channels.get_mut("card").unwrap().secret = Secret::from("the-channel-secret-0123");
    config.validate().unwrap();
    config.admin.tokens.insert("short".to_owned(), Secret::from("too-short"));
    assert!(config.validate().is_err(), "a short token outside development mode");
    config.server.development = true;
    config.validate().unwrap();
}

#[test]
fn printed_and_serialized_config_masks_every_secret() {
    let mut config = Config::default();
    config.admin.tokens = [("ops".to_owned(), Secret::from("admin-token-aaaa1111"))].into();
    config.payments.channels.get_mut("card").unwrap().secret = Secret::from("channel-secret-bbbb2222");
    config.mysql.shards = vec!["mysql://orders:db-password-cccc3333@10.0.0.5:3306/orders_0".into()];
    config.redis.url = "redis://:redis-password-dddd4444@10.0.0.6:6379".into();
    let shown =
        [toml::to_string_pretty(&config).unwrap(), serde_json::to_string(&config).unwrap(), format!("{config:?}")];
    for text in shown {
        for secret in ["aaaa1111", "bbbb2222", "cccc3333", "dddd4444"] {
            assert!(!text.contains(secret), "{secret} shown in {text}");
        }
        assert!(text.contains("***"));
    }
}

#[test]
fn the_local_stack_file_loads_without_an_ip_bucket() {
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/gateway.local.toml");
    let config = Config::load(Some(Path::new(local))).unwrap();
    let place_order = config.traffic.routes[&LimitedRoute::PlaceOrder];
    assert!(place_order.ip.is_none() && place_order.user.is_some());
}

#[test]
fn a_file_overrides_defaults_and_typos_are_refused() {
    let mut file = tempfile();
    writeln!(file.1, "[traffic.routes.place_order]\nuser = {{ per_second = 1, burst = 3 }}\n").unwrap();
    let config = Config::load(Some(&file.0)).unwrap();
    let place_order = config.traffic.routes[&LimitedRoute::PlaceOrder];
    assert_eq!(place_order.user.unwrap().burst.get(), 3);
    assert_eq!(place_order.global, None, "a route's table replaces the default one");
    assert_eq!(config.traffic.max_in_flight, Config::default().traffic.max_in_flight);

    writeln!(file.1, "[traffic.deny]\nusres = [5]").unwrap();
    let err = Config::load(Some(&file.0)).unwrap_err().to_string();
    assert!(err.contains("usres"), "{err}");
}

#[test]
fn zero_rates_unknown_routes_and_bad_breakers_are_refused() {
    for bad in [
        "[traffic.routes.place_order]\nglobal = { per_second = 0, burst = 3 }",
        "[traffic.routes.place_order]\nglobal = { per_second = 1, burst = 0 }",
        "[traffic.routes.teleport]\nglobal = { per_second = 1, burst = 1 }",
        "[traffic.breakers.redis]\nfailure_ratio = 1.5",
        "[traffic.deny]\nips = [\"not-an-ip\"]",
    ] {
        let mut file = tempfile();
        writeln!(file.1, "{bad}").unwrap();
        assert!(Config::load(Some(&file.0)).is_err(), "{bad}");
    }
}

/// A config file of a development set-up, to append to.
fn tempfile() -> (std::path::PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!("gateway-config-{}.toml", rand::random::<u64>()));
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "[server]\ndevelopment = true\n").unwrap();
    (path, file)
}

#[test]
fn a_channel_id_fits_the_orders_column_and_a_share_is_at_least_one_unit() {
    let mut config = Config { server: Server { development: true, ..Server::default() }, ..Config::default() };
    let channel = |share| Channel { max_units_per_sale: share, ..Channel::default() };
    config.traffic.channels.list = [("a".repeat(32), channel(Some(1)))].into();
    config.validate().unwrap();
    config.traffic.channels.list = [("a".repeat(33), channel(None))].into();
    assert!(config.validate().unwrap_err().to_string().contains("1 to 32"));
    config.traffic.channels.list = [("partner".to_owned(), channel(Some(0)))].into();
    assert!(config.validate().unwrap_err().to_string().contains("max_units_per_sale must be at least 1"));
}
