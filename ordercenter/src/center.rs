//! [`OrderCenter`]: what every workflow needs, built once: the settings,
//! the clients of the services, the stores in Redis, and what this
//! instance remembers between requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use events::producer::EventProducer;
use futures::FutureExt;
use order::event::OrderEvent;
use order::id::IdGenerator;
use order::scheduling::SchedulingRules;
use orderdb::ShardPools;
use paychannel::channels::Channels;
use paychannel::client::{ChannelError, PaymentChannel};
use paychannel::messages::{CreatePayment, CreatedPayment, PaymentState};
use paychannel::warehouse::HttpWarehouse;
use stock::{
    Acknowledgement, Checkouts, ConfirmWindows, NodeLeases, OrderCache, PaymentLookups, Redis, Reservation,
    ReserveRequest, SaleFigures, SaleStore, Strikes,
};
use tracing::Instrument;

use crate::batch::RedisBatch;
use crate::breakers::Breakers;
use crate::node_lease::NodeLease;
use crate::outcomes::{PaymentError, PlaceError, Placed, Settled, Unpublished};
use crate::rate_breaker::RateBreaker;
use crate::recent_orders::RecentOrders;
use crate::refusal::{down, Dependency};
use crate::replicas::Replicas;
use crate::sale_windows::SaleWindows;
use crate::settings::{self, Settings};
use crate::share_lookups::ShareLookups;
use crate::single_flight::SingleFlight;
use crate::sold_out::SoldOutCache;
use crate::used_keys::UsedKeys;

/// The services the order center talks to besides Redis, each client
/// built by the caller.
pub struct Services {
    pub events: EventProducer,
    /// The orders database: lookups, and the moves after payment.
    pub orders: ShardPools,
    /// Pools of their own on the same primaries for reads (an order, a
    /// list), so a flood of reads cannot take the connections moves need.
    pub reads: ShardPools,
    /// The shards' read replicas, for lists and searches.
    pub replicas: Replicas,
    /// The payment channels, by id.
    pub channels: Channels,
    pub warehouse: HttpWarehouse,
}

pub struct OrderCenter {
    pub settings: Settings,
    /// Around Redis and Kafka; replaced by [`OrderCenter::reload_breakers`].
    pub breakers: ArcSwap<Breakers>,
    /// Which warehouses of a regional sale serve a buyer's region; replaced
    /// when the config is reloaded.
    pub scheduling: ArcSwap<SchedulingRules>,
    /// Sales: their units and reservations.
    pub sales: Arc<SaleStore>,
    /// The other stores in Redis, on the same connection, one per job.
    pub order_cache: OrderCache,
    pub checkouts: Checkouts,
    pub payment_lookups: PaymentLookups,
    pub strikes: Strikes,
    pub sale_figures: SaleFigures,
    pub node_leases: NodeLeases,
    /// Reservations (`reserve.lua`): one script call per SKU for the
    /// requests that arrive together.
    pub reservations: RedisBatch<ReserveRequest<'static>, Reservation>,
    /// Acknowledgements of accepted orders (`acknowledge.lua`) → whether
    /// the order stands; grouped the same way.
    pub acknowledgements: RedisBatch<Acknowledgement, bool>,
    /// Whether idempotency keys were used, for requests that arrive after
    /// their SKU sold out and that no snapshot of its used keys answers:
    /// one `MGET` per SKU for those that arrive together.
    pub key_lookups: RedisBatch<String, bool>,
    pub services: Services,
    pub sale_windows: SaleWindows,
    pub sold_out: SoldOutCache,
    /// Sold-out SKUs' used idempotency keys, to answer their requests from memory.
    pub used_keys: Arc<UsedKeys>,
    pub recent_orders: RecentOrders,
    pub ids: IdGenerator,
    /// Ids of the orders the database fallback takes (`order::fallback`).
    pub database_ids: IdGenerator,
    /// Whether SKUs have a database share, as the fallback last found.
    pub share_lookups: ShareLookups,
    /// The lease on this instance's node id: ids are minted only while it is held.
    pub node: NodeLease,
    /// Order placements in progress, by SKU and idempotency key.
    pub placing: SingleFlight<Result<Placed, PlaceError>>,
    /// Payments being settled, by order and payment id: copies of one
    /// notification arriving together settle once and share the answer.
    pub settling: SingleFlight<Result<Settled, PaymentError>>,
}

impl OrderCenter {
    /// None of the clients waits for its service: the center is built (and
    /// its callers report not ready) while a dependency is still down.
    pub fn new(
        settings: Settings,
        breakers: &settings::Breakers,
        scheduling: SchedulingRules,
        redis: Redis,
        services: Services,
    ) -> Self {
        let sales = Arc::new(SaleStore::new(redis.clone()));
        // As long as a call of its own could take: the in-flight window
        // counts the acknowledgement's wait for its batch as one more
        // Redis timeout (`Config::in_flight_window_ms`).
        let max_wait = redis.command_timeout();
        Self {
            breakers: ArcSwap::from_pointee(Breakers::build(breakers, services.channels.ids(), None)),
            scheduling: ArcSwap::from_pointee(scheduling),
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
            payment_lookups: PaymentLookups::new(redis.clone()),
            strikes: Strikes::new(redis.clone()),
            sale_figures: SaleFigures::new(redis.clone()),
            node_leases: NodeLeases::new(redis),
            services,
            sale_windows: SaleWindows::default(),
            sold_out: SoldOutCache::new(Duration::from_millis(settings.orders.sold_out_recheck_ms)),
            used_keys: Arc::default(),
            recent_orders: RecentOrders::new(Duration::from_secs(settings.orders.payment_window_secs)),
            ids: IdGenerator::new(settings.node_id).expect("validated node id"),
            database_ids: IdGenerator::for_database(),
            share_lookups: ShareLookups::default(),
            node: NodeLease::new(settings.node_id),
            placing: SingleFlight::new(),
            settling: SingleFlight::new(),
            settings,
        }
    }

    /// The warehouses that may serve a buyer in `region`, best first, as the
    /// scripts take them (a sale in one pool ignores them); any, for a buyer
    /// naming no region.
    pub fn serving_warehouses(&self, region: Option<&str>) -> String {
        match region {
            Some(region) => self.scheduling.load().rank(region).join(","),
            None => stock::ANY_WAREHOUSE.to_owned(),
        }
    }

    /// Swaps in breakers for new settings, keeping those that did not change.
    pub fn reload_breakers(&self, settings: &settings::Breakers) {
        let current = self.breakers.load_full();
        let channels = self.services.channels.ids();
        self.breakers.store(Arc::new(Breakers::build(settings, channels, Some(&current))));
    }

    /// Sends an event and waits for the broker. An open breaker fails at
    /// once, before sending.
    pub async fn publish(&self, event: &OrderEvent) -> Result<(), Unpublished> {
        let breaker = self.breakers.load().kafka.clone();
        breaker.permit().map_err(|_| Unpublished { delivered_maybe: false })?;
        let started = Instant::now();
        let sent = self.services.events.send(event).await;
        metrics::histogram!("gateway_kafka_produce_seconds").record(started.elapsed());
        breaker.record(&sent);
        sent.map_err(|err| {
            let outcome = if err.delivered_maybe { "unknown" } else { "not_delivered" };
            metrics::counter!("gateway_produce_failures_total", "outcome" => outcome).increment(1);
            Unpublished { delivered_maybe: err.delivered_maybe }
        })
    }

    /// Payment channel `id`'s client and breaker (`""`: [`Channels::resolve`]).
    pub fn payment_channel(&self, id: &str) -> Option<(Arc<dyn PaymentChannel>, Arc<RateBreaker>)> {
        let channel = self.services.channels.get(id)?.clone();
        let breaker = self.breakers.load().payment_channels.get(Channels::resolve(id))?.clone();
        Some((channel, breaker))
    }

    /// Creates a payment at channel `id`, through its breaker: refused at
    /// once while the breaker is open.
    pub async fn create_payment(&self, id: &str, payment: &CreatePayment) -> Result<CreatedPayment, Dependency> {
        let (channel, breaker) = self.payment_channel(id).ok_or(Dependency::PaymentChannel)?;
        breaker.permit().map_err(|_| Dependency::PaymentChannel)?;
        // Its own task: a client hanging up must not leave the call
        // uncounted (a probe of the breaker would hold it half-open).
        let payment = payment.clone();
        let created = tokio::spawn(
            async move {
                let created = channel.create(&payment).await;
                breaker.record_success(channel_answered(&created));
                created
            }
            .instrument(tracing::info_span!("payment.create", channel = Channels::resolve(id))),
        )
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "payment creation task failed");
            Dependency::PaymentChannel
        })?;
        created.map_err(down(Dependency::PaymentChannel, "creating the payment"))
    }

    /// Asks channel `id` about the payment of `merchant_order_id`, through
    /// its breaker: refused at once while the breaker is open.
    pub async fn query_payment(&self, id: &str, merchant_order_id: &str) -> Result<Option<PaymentState>, Dependency> {
        let (channel, breaker) = self.payment_channel(id).ok_or(Dependency::PaymentChannel)?;
        breaker.permit().map_err(|_| Dependency::PaymentChannel)?;
        let found = channel.query(merchant_order_id).await;
        breaker.record_success(channel_answered(&found));
        found.map_err(down(Dependency::PaymentChannel, "asking about a payment"))
    }

    /// How long a checkout's records live: past its payment window and
    /// its key's TTL by a day, so a late payment still finds its items (to
    /// refund them) and a late repeat of the key its answer.
    pub fn checkout_ttl(&self) -> Duration {
        let orders = &self.settings.orders;
        Duration::from_secs(orders.payment_window_secs.max(orders.idempotency_ttl_secs) + 86_400)
    }

    pub fn in_flight_window(&self) -> Duration {
        self.settings.in_flight_window
    }

    /// The windows of an unacknowledged order, as the scripts take them.
    pub fn confirm_windows(&self) -> ConfirmWindows {
        ConfirmWindows {
            confirm_ms: self.settings.orders.confirm_window_secs * 1_000,
            in_flight_ms: self.settings.in_flight_window.as_millis() as u64,
        }
    }
}

/// Whether a call to the payment channel found it working: an answer, or a
/// refusal of the request itself (what its breaker counts as a success).
fn channel_answered<T>(outcome: &Result<T, ChannelError>) -> bool {
    outcome.as_ref().map_or_else(|err| !err.is_channel_fault(), |_| true)
}
