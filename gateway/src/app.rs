//! Everything a request needs, built once from the config.

use std::time::Duration;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use events::producer::EventProducer;
use futures::future::BoxFuture;
use futures::FutureExt;
use metrics_exporter_prometheus::PrometheusHandle;
use order::event::OrderEvent;
use order::id::IdGenerator;
use orderdb::ShardPools;
use paychannel::client::{HttpChannel, PaymentChannel};
use paychannel::warehouse::HttpWarehouse;
use stock::{
    Checkouts, IdempotencyRecord, NodeLeases, OrderCache, PaymentQueries, Redis, Reservation, ReserveRequest,
    SaleFigures, SaleStore, StoreError, Strikes, Windows,
};

use crate::auth::Verifier;
use crate::config::{self, Config};
use crate::group_commit::{GroupCommit, Unanswered};
use crate::node_lease::NodeLease;
use crate::outcomes::{PlaceError, Placed, SettleError, Settled, Unpublished};
use crate::recent_orders::RecentOrders;
use crate::replicas::Replicas;
use crate::sale_windows::SaleWindows;
use crate::shedding::InFlight;
use crate::single_flight::SingleFlight;
use crate::sold_out::SoldOutCache;
use crate::traffic::{Loaded, TrafficPolicy};

pub struct App {
    /// The config the gateway started with; its reloadable sections are
    /// superseded by [`App::traffic`] and [`App::admin`] on every reload.
    pub config: Config,
    pub traffic: ArcSwap<TrafficPolicy>,
    /// The admin tokens in force.
    pub admin: ArcSwap<config::Admin>,
    /// How buyers are identified, as in force.
    pub auth: ArcSwap<Verifier>,
    /// When and from what the traffic policy in force was loaded.
    pub loaded: ArcSwap<Loaded>,
    pub in_flight: InFlight,
    pub sale_windows: SaleWindows,
    /// Sales: their units and reservations.
    pub sales: Arc<SaleStore>,
    /// The other stores in Redis, on the same connection, one per job.
    pub order_cache: OrderCache,
    pub checkouts: Checkouts,
    pub payment_queries: PaymentQueries,
    pub strikes: Strikes,
    pub sale_figures: SaleFigures,
    pub node_leases: NodeLeases,
    /// Reservations (`reserve.lua`): one script call per SKU for the
    /// requests that arrive together.
    pub reservations: RedisBatch<ReserveRequest<'static>, Reservation>,
    /// Acknowledgements of accepted orders (`acknowledge.lua`), (idempotency
    /// key, record) → whether the order stands; grouped the same way.
    pub acknowledgements: RedisBatch<(String, IdempotencyRecord), bool>,
    /// Whether idempotency keys were used, for retries that arrive after
    /// their SKU sold out: one `MGET` per SKU for those that arrive together.
    pub key_lookups: RedisBatch<String, bool>,
    pub events: EventProducer,
    /// The orders database: lookups, and the moves after payment.
    pub orders: ShardPools,
    /// Pools of their own on the same primaries for reads (an order, a
    /// list), so a flood of reads cannot take the connections moves need.
    pub reads: ShardPools,
    /// The shards' read replicas, for lists and searches.
    pub replicas: Replicas,
    pub channel: Arc<dyn PaymentChannel>,
    pub warehouse: HttpWarehouse,
    pub sold_out: SoldOutCache,
    pub recent_orders: RecentOrders,
    pub ids: IdGenerator,
    /// The lease on `server.node_id`: ids are minted only while it is held.
    pub node: NodeLease,
    /// Order placements in progress, by SKU and idempotency key.
    pub placing: SingleFlight<Result<Placed, PlaceError>>,
    /// Payments being settled, by order and payment id: copies of one
    /// notification arriving together settle once and share the answer.
    pub settling: SingleFlight<Result<Settled, SettleError>>,
    pub metrics: PrometheusHandle,
}

/// Why a batched Redis call gave one item no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Redis(Arc<StoreError>),
    #[error("it waited longer than the Redis command timeout for its batch and was not sent")]
    Expired,
    #[error("its batch ended without an answer")]
    Lost,
}

/// Calls of one script for one SKU, grouped (see [`GroupCommit`]).
pub struct RedisBatch<I, T>(GroupCommit<I, Result<T, BatchError>>);

impl<I: Send + 'static, T: Clone + Send + 'static> RedisBatch<I, T> {
    /// `call` runs one batch for one SKU: one answer per item, in order.
    /// An item that waited `max_wait` for its batch is not sent.
    fn new<F>(sales: Arc<SaleStore>, max_wait: Duration, call: F) -> Self
    where
        F: for<'a> Fn(&'a SaleStore, &'a str, &'a [I]) -> BoxFuture<'a, Result<Vec<T>, StoreError>>
            + Send
            + Sync
            + 'static,
    {
        let call = Arc::new(call);
        Self(GroupCommit::new(REDIS_BATCH, max_wait, move |sku, items: Vec<I>| {
            let (sales, call) = (sales.clone(), call.clone());
            async move {
                match call(&sales, &sku, &items).await {
                    Ok(answers) => answers.into_iter().map(Ok).collect(),
                    Err(err) => vec![Err(BatchError::Redis(Arc::new(err))); items.len()],
                }
            }
            .boxed()
        }))
    }

    /// `item`'s answer, from its SKU's next batch.
    pub async fn call(&self, sku: &str, item: I) -> Result<T, BatchError> {
        match self.0.call(sku, item).await {
            Ok(answer) => answer,
            Err(Unanswered::Expired) => Err(BatchError::Expired),
            Err(Unanswered::Lost) => Err(BatchError::Lost),
        }
    }
}

/// Most items one batched Redis call takes.
const REDIS_BATCH: usize = 256;

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
        let sales = Arc::new(SaleStore::new(redis.clone()));
        // As long as a call of its own could take: the in-flight window
        // counts the acknowledgement's wait for its batch as one more
        // Redis timeout (`Config::in_flight_window_ms`).
        let max_wait = Duration::from_millis(config.redis.command_timeout_ms);
        Ok(Self {
            traffic: ArcSwap::from_pointee(TrafficPolicy::build(config.traffic.clone(), None)),
            admin: ArcSwap::from_pointee(config.admin.clone()),
            auth: ArcSwap::from_pointee(
                Verifier::build(&config.auth, config.server.development).expect("validated with the config"),
            ),
            loaded: ArcSwap::from_pointee(Loaded::new(&config.traffic, source)),
            in_flight: InFlight::default(),
            sale_windows: SaleWindows::default(),
            reservations: RedisBatch::new(sales.clone(), max_wait, |sales, sku, requests| {
                sales.reserve_many(sku, requests).boxed()
            }),
            acknowledgements: RedisBatch::new(sales.clone(), max_wait, |sales, sku, orders| {
                sales.acknowledge_many(sku, orders).boxed()
            }),
            key_lookups: RedisBatch::new(sales.clone(), max_wait, |sales, sku, keys| {
                sales.idempotency_keys_used(sku, keys).boxed()
            }),
            sales,
            order_cache: OrderCache::new(redis.clone()),
            checkouts: Checkouts::new(redis.clone()),
            payment_queries: PaymentQueries::new(redis.clone()),
            strikes: Strikes::new(redis.clone()),
            sale_figures: SaleFigures::new(redis.clone()),
            node_leases: NodeLeases::new(redis),
            events: EventProducer::new(&config.kafka)?,
            orders: ShardPools::connect_lazy(&config.mysql.shards, 8, Duration::from_secs(2))?,
            reads: ShardPools::connect_lazy(&config.mysql.shards, 4, Duration::from_secs(1))?,
            replicas: Replicas::connect_lazy(&config.mysql.replicas, 4, Duration::from_secs(1))?,
            channel: Arc::new(HttpChannel::new(
                &config.payments.channel_url,
                Duration::from_millis(config.payments.channel_timeout_ms),
                config.payments.secret.expose().as_bytes(),
            )),
            warehouse: HttpWarehouse::new(&config.warehouse.url, Duration::from_millis(config.warehouse.timeout_ms)),
            sold_out: SoldOutCache::new(Duration::from_millis(config.orders.sold_out_recheck_ms)),
            recent_orders: RecentOrders::new(Duration::from_secs(config.orders.payment_window_secs)),
            ids: IdGenerator::new(config.server.node_id).expect("validated node id"),
            node: NodeLease::new(config.server.node_id),
            placing: SingleFlight::new(),
            settling: SingleFlight::new(),
            metrics,
            config,
        })
    }

    /// Sends an event and waits for the broker. An open breaker fails at
    /// once, before sending.
    pub async fn publish(&self, event: &OrderEvent) -> Result<(), Unpublished> {
        let breaker = self.traffic.load().kafka.clone();
        breaker.permit().map_err(|_| Unpublished { delivered_maybe: false })?;
        let started = Instant::now();
        let sent = self.events.send(event).await;
        metrics::histogram!("gateway_kafka_produce_seconds").record(started.elapsed());
        breaker.record(&sent);
        sent.map_err(|err| {
            let outcome = if err.delivered_maybe { "unknown" } else { "not_delivered" };
            metrics::counter!("gateway_produce_failures_total", "outcome" => outcome).increment(1);
            Unpublished { delivered_maybe: err.delivered_maybe }
        })
    }

    /// How long after its reservation an unacknowledged order may still be
    /// in flight in another request. Past this, the request that made it has
    /// certainly finished or died.
    /// How long a checkout's records live: past its payment window and
    /// its key's TTL by a day, so a late payment still finds its items (to
    /// refund them) and a late repeat of the key its answer.
    pub fn checkout_ttl(&self) -> Duration {
        let orders = &self.config.orders;
        Duration::from_secs(orders.payment_window_secs.max(orders.idempotency_ttl_secs) + 86_400)
    }

    pub fn in_flight_window(&self) -> Duration {
        Duration::from_millis(self.config.in_flight_window_ms())
    }

    /// The windows of an unacknowledged order, as the scripts take them.
    pub fn windows(&self) -> Windows {
        Windows {
            confirm_ms: self.config.orders.confirm_window_secs * 1_000,
            in_flight_ms: self.config.in_flight_window_ms(),
        }
    }
}
