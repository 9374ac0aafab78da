//! Everything a request needs, built once from the config: the order
//! center (the workflows' state) and the front door's own (traffic policy,
//! tokens, the in-flight cap, the metrics recorder).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use events::producer::EventProducer;
use metrics_exporter_prometheus::PrometheusHandle;
use ordercenter::replicas::Replicas;
use ordercenter::{OrderCenter, Services};
use orderdb::ShardPools;
use paychannel::channels::Channels;
use paychannel::warehouse::HttpWarehouse;
use stock::Redis;

use crate::auth::Verifier;
use crate::config::{self, Config};
use crate::shedding::InFlight;
use crate::traffic::{Loaded, TrafficPolicy};

pub struct App {
    /// The config the gateway started with; its reloadable sections are
    /// superseded by [`App::traffic`], [`App::admin`], [`App::auth`] and the
    /// center's breakers on every reload.
    pub config: Config,
    /// The workflows and everything they need.
    pub center: Arc<OrderCenter>,
    pub traffic: ArcSwap<TrafficPolicy>,
    /// The admin tokens in force.
    pub admin: ArcSwap<config::Admin>,
    /// How buyers are identified, as in force.
    pub auth: ArcSwap<Verifier>,
    /// When and from what the traffic policy in force was loaded.
    pub loaded: ArcSwap<Loaded>,
    pub in_flight: InFlight,
    pub metrics: PrometheusHandle,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Redis(#[from] stock::StoreError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("mysql: {0}")]
    Mysql(#[from] sqlx::Error),
}

impl App {
    /// Builds the clients. None of them waits for its service, so the gateway
    /// comes up (and reports not ready) while a dependency is still down.
    /// `source` is the file the config came from, if any (shown by `/admin/config`).
    pub fn new(config: Config, source: Option<PathBuf>) -> Result<Self, StartError> {
        // First: what the constructors below record must reach the recorder.
        let metrics = crate::metrics::handle();
        let redis = Redis::connect(&config.redis)?;
        let services = Services {
            events: EventProducer::new(&config.kafka)?,
            orders: ShardPools::connect_lazy(&config.mysql.shards, 8, Duration::from_secs(2))?,
            reads: ShardPools::connect_lazy(&config.mysql.shards, 4, Duration::from_secs(1))?,
            replicas: Replicas::connect_lazy(&config.mysql.replicas, 4, Duration::from_secs(1))?,
            channels: Channels::over_http(
                &config.payments.channels,
                &config.payments.default_channel,
                Duration::from_millis(config.payments.channel_timeout_ms),
            ),
            warehouse: HttpWarehouse::new(&config.warehouse.url, Duration::from_millis(config.warehouse.timeout_ms)),
        };
        let center = OrderCenter::new(
            config.center_settings(),
            &config.traffic.breakers,
            config.scheduling.clone(),
            redis,
            services,
        );
        Ok(Self {
            center: Arc::new(center),
            traffic: ArcSwap::from_pointee(TrafficPolicy::build(config.traffic.clone(), None)),
            admin: ArcSwap::from_pointee(config.admin.clone()),
            auth: ArcSwap::from_pointee(
                Verifier::build(&config.auth, config.server.development).expect("validated with the config"),
            ),
            loaded: ArcSwap::from_pointee(Loaded::new(&config.traffic, source)),
            in_flight: InFlight::default(),
            metrics,
            config,
        })
    }
}
