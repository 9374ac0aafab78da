//! Traffic control, rebuilt on every config reload and swapped in whole:
//! token buckets per route and scope, deny lists, the client-IP rule and
//! the storefront channels with their quotas.
//! The request path reads a snapshot, never a lock. (The circuit breakers
//! of the same section are the order center's: `ordercenter::breaker`.)
//!
//! Layout: [`buckets`] (governor), [`client_ip`], [`channels`].

pub mod buckets;
pub mod channels;
pub mod client_ip;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{self, LimitedRoute, Traffic};
use buckets::RouteBuckets;
use channels::ChannelGate;
use ordercenter::refusal::{Refusal, Scope};

pub struct TrafficPolicy {
    pub config: config::Traffic,
    routes: BTreeMap<LimitedRoute, RouteBuckets>,
    denied_users: HashSet<u64>,
    pub channels: ChannelGate,
}

impl TrafficPolicy {
    /// Builds the policy for `config`, keeping from `previous` every bucket
    /// whose settings did not change, with its state.
    pub fn build(config: config::Traffic, previous: Option<&TrafficPolicy>) -> Self {
        let routes = config
            .routes
            .iter()
            .map(|(route, limits)| {
                let kept = previous.and_then(|p| p.routes.get(route));
                (*route, RouteBuckets::build(*route, limits, kept))
            })
            .collect();
        let channels = ChannelGate::build(&config.channels, previous.map(|p| &p.channels));
        Self { denied_users: config.deny.users.iter().copied().collect(), routes, channels, config }
    }

    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        client_ip::client_ip(peer, forwarded_for, &self.config.trusted_proxies)
    }

    /// The client's own checks, before anything else: the IP deny list,
    /// then the route's per-IP bucket.
    pub fn admit_ip(&self, route: LimitedRoute, ip: IpAddr) -> Result<(), Refusal> {
        if self.config.deny.ips.iter().any(|net: &IpNet| net.contains(&ip)) {
            metrics::counter!("gateway_denied_total", "scope" => "ip").increment(1);
            return Err(Refusal::Denied { scope: Scope::Ip });
        }
        match self.routes.get(&route) {
            Some(buckets) => buckets.check_ip(ip),
            None => Ok(()),
        }
    }

    /// The route's global bucket: taken only by requests that passed the
    /// client's checks and authentication, so a flood without tokens does
    /// not empty it for the buyers.
    pub fn admit_global(&self, route: LimitedRoute) -> Result<(), Refusal> {
        match self.routes.get(&route) {
            Some(buckets) => buckets.check_global(),
            None => Ok(()),
        }
    }

    /// Once the user is known: the user deny list, then the user's bucket.
    pub fn admit_user(&self, route: LimitedRoute, user_id: u64) -> Result<(), Refusal> {
        if self.denied_users.contains(&user_id) {
            metrics::counter!("gateway_denied_total", "scope" => "user").increment(1);
            return Err(Refusal::Denied { scope: Scope::User });
        }
        match self.routes.get(&route) {
            Some(buckets) => buckets.check_user(user_id),
            None => Ok(()),
        }
    }

    /// Forgets idle keys of the keyed buckets.
    pub fn prune(&self) {
        self.routes.values().for_each(RouteBuckets::prune);
    }
}

/// What `/admin/config` shows about the config in force.
#[derive(Debug, Clone, Serialize)]
pub struct Loaded {
    pub loaded_at: DateTime<Utc>,
    /// SHA-256 of the traffic section in force, shortened.
    pub traffic_hash: String,
    pub source: Option<PathBuf>,
}

impl Loaded {
    pub fn new(traffic: &Traffic, source: Option<PathBuf>) -> Self {
        let loaded = Self { loaded_at: Utc::now(), traffic_hash: hash(traffic), source };
        metrics::gauge!("gateway_config_info", "hash" => loaded.traffic_hash.clone()).set(1.0);
        loaded
    }
}

fn hash(traffic: &Traffic) -> String {
    let json = serde_json::to_vec(traffic).expect("the traffic config serialises");
    hex::encode(&Sha256::digest(&json)[..8])
}
