//! [`SaleStore`]: a pool of pipelining Redis connections and the scripts,
//! loaded once and called by SHA (loaded again on `NOSCRIPT`, e.g. after a
//! restart or failover).

use std::time::Duration;

use fred::prelude::*;
use fred::types::scripts::Script;
use order::event::CancelReason;
use order::id::OrderId;
use order::sale::SaleWindow;
use serde::{Deserialize, Serialize};

use crate::keys::{GlobalKeys, SaleKeys};
use crate::records::{parse_closed, IdempotencyRecord, ReservationRecord};

/// The helpers of the scripts that make or end reservations, loaded in front of them.
const RESERVATION_LIB: &str = include_str!("../../lua/lib/reservation.lua");
pub const RESERVE_LUA: &str = include_str!("../../lua/reserve.lua");
const RELEASE_LUA: &str = include_str!("../../lua/release.lua");
const CANCEL_LUA: &str = include_str!("../../lua/cancel.lua");
const SWEEP_LUA: &str = include_str!("../../lua/sweep.lua");
const CONFIRM_LUA: &str = include_str!("../../lua/confirm.lua");
const LOAD_SALE_LUA: &str = include_str!("../../lua/load_sale.lua");
const CLAIM_QUERIES_LUA: &str = include_str!("../../lua/claim_queries.lua");
const ACKNOWLEDGE_LUA: &str = include_str!("../../lua/acknowledge.lua");
const UPDATE_SALE_LUA: &str = include_str!("../../lua/update_sale.lua");
const NODE_LEASE_LUA: &str = include_str!("../../lua/node_lease.lua");
const REPAIR_SALE_LUA: &str = include_str!("../../lua/repair_sale.lua");

/// Where Redis is and how long to wait for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`; `redis-cluster://host:port?node=...` for a cluster.
    pub url: String,
    /// Connections in the pool; each one pipelines many requests.
    pub pool_size: usize,
    /// A command slower than this fails (and a request gets a 503), ms.
    pub command_timeout_ms: u64,
    /// Prefix of every key, to share one Redis between deployments (`staging:`).
    pub namespace: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: "redis://127.0.0.1:6379".into(), pool_size: 4, command_timeout_ms: 500, namespace: String::new() }
    }
}

/// What `reserve.lua` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    Reserved {
        amount_cents: i64,
        stock_left: i64,
        /// The sale's generation (its `loaded_ms`), recorded on the order.
        sale_generation: i64,
    },
    /// The key was answered before, or its first request is over (an
    /// unacknowledged record then means: send the order again).
    Duplicate(IdempotencyRecord),
    /// The key's first request may still be waiting for the broker.
    InProgress(IdempotencyRecord),
    /// The order id is taken (another instance minted it): mint another.
    IdTaken,
    UnknownSku,
    /// Fewer than the asked units are left (0: sold out).
    OutOfStock {
        stock_left: i64,
    },
    LimitExceeded,
    /// Outside the sale's window (it has not started or has ended).
    OutsideWindow(SaleWindow),
}

/// The windows of an order the broker has not acknowledged yet, ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// How long it may hold its units before the sweeper cancels it as
    /// unconfirmed.
    pub confirm_ms: u64,
    /// How long the request that reserved it may still be waiting for the
    /// broker: a repeat of its key within it is answered in progress.
    pub in_flight_ms: u64,
}

/// What `release.lua` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Released {
        stock: i64,
    },
    /// The order held no reservation (released or ended before).
    NotHeld,
    /// The in-flight window has passed: a retry may be re-sending the
    /// order, so its units stay until the confirm deadline.
    TooLate,
}

/// What `sweep.lua` did to one sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub cancelled: u64,
    /// Reservations still held (their deadline is ahead).
    pub reservations_left: u64,
}

/// What `cancel.lua` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancellation {
    /// Cancelled; the outbox entry waits for the event to be acknowledged.
    Cancelled {
        outbox_entry: String,
        reservation: ReservationRecord,
    },
    /// The user's order, but already paid or cancelled.
    NotPending {
        paid: bool,
    },
    NotFound,
}

/// What `confirm.lua` decided about a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// The reserved units are sold.
    Paid(ReservationRecord),
    /// The order was cancelled before the money came: refund it.
    Refund { reason: CancelReason, reservation: ReservationRecord },
    /// This payment was seen before.
    Duplicate { refund: bool, reservation: ReservationRecord, acknowledged: bool },
    /// The order was paid by another payment: refund this one.
    SecondPayment(ReservationRecord),
    /// No such order in this sale (released unseen, sale replaced, record
    /// lost): refund the payment. Recorded, so repeats are duplicates.
    Orphan,
    /// The amount differs from the order's; nothing changed.
    AmountMismatch { expected: i64 },
}

/// A payment the channel is to be asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentQuery {
    pub sku: String,
    pub order_id: OrderId,
    pub started_ms: i64,
}

impl PaymentQuery {
    fn member(&self) -> String {
        format!("{}:{}:{}", self.sku, self.order_id, self.started_ms)
    }

    fn parse(member: &str) -> Option<Self> {
        let mut parts = member.split(':');
        let query = Self {
            sku: parts.next()?.to_owned(),
            order_id: parts.next()?.parse().ok()?,
            started_ms: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(query)
    }
}

/// One reservation request, as the gateway hands it to `reserve.lua`.
pub struct ReserveRequest<'a> {
    pub sku: &'a str,
    pub idempotency_key: &'a str,
    pub user_id: u64,
    pub qty: u32,
    pub order_id: OrderId,
    pub now_ms: i64,
    pub pay_by_ms: i64,
    pub idempotency_ttl_secs: u64,
    pub windows: Windows,
}

/// A sale as loaded by the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleTerms {
    pub stock: i64,
    pub per_user_limit: i64,
    pub price_cents: i64,
    #[serde(flatten)]
    pub window: SaleWindow,
}

/// What `load_sale.lua` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleLoad {
    Loaded,
    /// A sale with orders still moving is not replaced; nothing changed.
    Busy {
        reservations: u64,
        outbox: u64,
        unsettled_payments: u64,
    },
}

/// A change to a live sale (the body of the admin API's PATCH); `None`
/// leaves a term as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleChange {
    /// Units to add; negative removes units still for sale.
    pub add_units: Option<i64>,
    pub per_user_limit: Option<i64>,
    /// The price of orders placed from now on.
    pub price_cents: Option<i64>,
    /// Replaces the whole window: `{"starts_at"?, "ends_at"?}`.
    pub window: Option<SaleWindow>,
    /// Apply only while the sale's total is this: a retry after a lost
    /// answer cannot apply the change twice.
    pub if_total: Option<i64>,
}

/// What `update_sale.lua` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleUpdate {
    Updated,
    UnknownSku,
    /// Removing that many would take units that are reserved or sold.
    TooFewUnits {
        stock: i64,
    },
    /// `if_total` did not match: the sale changed since (maybe by this
    /// very change, retried); nothing was applied.
    TotalChanged {
        total: i64,
    },
}

/// A sale's counters: units left to sell, held by unpaid orders, paid for,
/// and loaded in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleStatus {
    pub stock: i64,
    pub reserved: i64,
    pub sold: i64,
    pub total: i64,
    pub per_user_limit: i64,
    pub price_cents: i64,
    #[serde(flatten)]
    pub window: SaleWindow,
    /// When this sale was loaded (Redis clock, Unix ms); the orders of the
    /// SKU created before it belong to earlier sales.
    pub loaded_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from {script}: {reply:?}")]
    Reply { script: &'static str, reply: Vec<String> },
}

impl StoreError {
    /// An unexpected reply of numbers.
    fn numbers(script: &'static str, reply: &[impl ToString]) -> Self {
        Self::Reply { script, reply: reply.iter().map(ToString::to_string).collect() }
    }
}

/// Sales in Redis, through a pool of pipelining connections.
pub struct SaleStore {
    pool: Pool,
    namespace: String,
    global: GlobalKeys,
    reserve: Script,
    release: Script,
    cancel: Script,
    sweep: Script,
    confirm: Script,
    load_sale: Script,
    claim_queries: Script,
    acknowledge: Script,
    update_sale: Script,
    node_lease: Script,
    repair_sale: Script,
}

fn with_lib(script: &str) -> Script {
    Script::from_lua(format!("{RESERVATION_LIB}\n{script}"))
}

impl SaleStore {
    /// Builds the pool and starts connecting. Does not wait for Redis: a
    /// service started while Redis is down fails its calls fast (and says
    /// so in `/readyz`) until the reconnect loop gets through.
    pub fn connect(config: &RedisConfig) -> Result<Self, StoreError> {
        let timeout = Duration::from_millis(config.command_timeout_ms);
        let mut redis_config = Config::from_url(&config.url)?;
        redis_config.fail_fast = false;
        let pool = Builder::from_config(redis_config)
            .with_performance_config(|perf| perf.default_command_timeout = timeout)
            .with_connection_config(|conn| {
                conn.connection_timeout = timeout;
                // A retried script could run twice; one attempt, and the
                // idempotency records answer the caller's retry.
                conn.max_command_attempts = 1;
            })
            .set_policy(ReconnectPolicy::new_constant(0, 250))
            .build_pool(config.pool_size.max(1))?;
        pool.connect_pool();
        Ok(Self {
            pool,
            namespace: config.namespace.clone(),
            global: GlobalKeys::new(&config.namespace),
            reserve: with_lib(RESERVE_LUA),
            release: with_lib(RELEASE_LUA),
            cancel: with_lib(CANCEL_LUA),
            sweep: with_lib(SWEEP_LUA),
            confirm: with_lib(CONFIRM_LUA),
            load_sale: with_lib(LOAD_SALE_LUA),
            claim_queries: Script::from_lua(CLAIM_QUERIES_LUA),
            acknowledge: Script::from_lua(ACKNOWLEDGE_LUA),
            update_sale: Script::from_lua(UPDATE_SALE_LUA),
            node_lease: Script::from_lua(NODE_LEASE_LUA),
            repair_sale: Script::from_lua(REPAIR_SALE_LUA),
        })
    }

    fn keys(&self, sku: &str) -> SaleKeys {
        SaleKeys::new(&self.namespace, sku)
    }

    /// Waits up to `timeout` for the first connections.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.pool.wait_for_connect()).await.is_ok_and(|r| r.is_ok())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.pool.next().ping(None).await?;
        Ok(())
    }

    pub async fn reserve(&self, req: &ReserveRequest<'_>) -> Result<Reservation, StoreError> {
        let keys = self.keys(req.sku);
        let reply: Vec<String> = self
            .reserve
            .evalsha_with_reload(
                self.pool.next(),
                vec![
                    keys.sale,
                    keys.buyers,
                    keys.reservations,
                    keys.deadlines,
                    SaleKeys::idempotency(&self.namespace, req.sku, req.idempotency_key),
                    keys.closed,
                ],
                vec![
                    req.user_id.to_string(),
                    req.qty.to_string(),
                    req.order_id.to_string(),
                    req.now_ms.to_string(),
                    req.pay_by_ms.to_string(),
                    req.idempotency_ttl_secs.to_string(),
                    req.idempotency_key.to_string(),
                    req.windows.confirm_ms.to_string(),
                    req.windows.in_flight_ms.to_string(),
                ],
            )
            .await?;
        let reservation = parse_reservation(&reply).ok_or(StoreError::Reply { script: "reserve.lua", reply })?;
        if let Reservation::Reserved { .. } = reservation {
            // After the reservation exists, so a sweeper that just found the
            // sale idle and dropped it sees the SKU again (see `sweep`). The
            // units are taken either way: a failure here must not fail the
            // order; the sweeper's rescan finds the sale.
            if let Err(err) = self.set_active(req.sku, true).await {
                tracing::warn!(sku = req.sku, error = %err, "sale not marked active; the next rescan finds it");
            }
        }
        Ok(reservation)
    }

    /// Gives an unqueued order's units back, unless the in-flight window
    /// since its reservation has passed (`release.lua`).
    pub async fn release(
        &self,
        sku: &str,
        idempotency_key: &str,
        order_id: OrderId,
        windows: &Windows,
    ) -> Result<Release, StoreError> {
        let keys = self.keys(sku);
        let reply: Vec<i64> = self
            .release
            .evalsha_with_reload(
                self.pool.next(),
                vec![
                    keys.sale,
                    keys.buyers,
                    keys.reservations,
                    keys.deadlines,
                    SaleKeys::idempotency(&self.namespace, sku, idempotency_key),
                ],
                vec![order_id.to_string(), windows.confirm_ms.to_string(), windows.in_flight_ms.to_string()],
            )
            .await?;
        match reply.as_slice() {
            [1, stock] => Ok(Release::Released { stock: *stock }),
            [0, _] => Ok(Release::NotHeld),
            [2, _] => Ok(Release::TooLate),
            _ => Err(StoreError::numbers("release.lua", &reply)),
        }
    }

    /// The broker acknowledged the order's creation: its reservation now
    /// holds until the payment deadline and its idempotency record is
    /// marked acknowledged (keeping its TTL). False when the order was
    /// cancelled as unconfirmed or released first: it must not be answered 202.
    pub async fn acknowledge(
        &self,
        sku: &str,
        idempotency_key: &str,
        record: &IdempotencyRecord,
    ) -> Result<bool, StoreError> {
        let keys = self.keys(sku);
        let acknowledged = IdempotencyRecord { acknowledged: true, ..record.clone() };
        let stands: i64 = self
            .acknowledge
            .evalsha_with_reload(
                self.pool.next(),
                vec![
                    keys.reservations,
                    keys.deadlines,
                    SaleKeys::idempotency(&self.namespace, sku, idempotency_key),
                    keys.closed,
                    keys.payments,
                ],
                vec![record.order_id.to_string(), record.pay_by_ms.to_string(), acknowledged.encode()],
            )
            .await?;
        Ok(stands == 1)
    }

    /// Claims or renews the lease on a gateway node id for `lease_ms` (0
    /// gives it up). `Err(ms)`: another holder's lease has that long to run.
    pub async fn lease_node(&self, node_id: u8, token: &str, lease_ms: u64) -> Result<Result<(), i64>, StoreError> {
        let reply: Vec<i64> = self
            .node_lease
            .evalsha_with_reload(
                self.pool.next(),
                vec![self.global.node_lease(node_id)],
                vec![token.to_owned(), lease_ms.to_string()],
            )
            .await?;
        match reply.as_slice() {
            [1, _] => Ok(Ok(())),
            [0, left_ms] => Ok(Err(*left_ms)),
            _ => Err(StoreError::numbers("node_lease.lua", &reply)),
        }
    }

    /// Redis's clock, Unix ms: the one clock every gateway and sweeper
    /// compares deadlines against.
    pub async fn now_ms(&self) -> Result<i64, StoreError> {
        let time = fred::types::CustomCommand::new_static("TIME", None, false);
        let reply: Vec<String> = self.pool.next().custom(time, Vec::<String>::new()).await?;
        match reply.iter().map(|part| part.parse::<i64>()).collect::<Result<Vec<_>, _>>().as_deref() {
            Ok([secs, micros]) => Ok(secs * 1_000 + micros / 1_000),
            _ => Err(StoreError::Reply { script: "TIME", reply }),
        }
    }

    /// Whether an idempotency key of `sku` has a record (an order was
    /// placed with it, on any gateway).
    pub async fn idempotency_key_used(&self, sku: &str, idempotency_key: &str) -> Result<bool, StoreError> {
        let found: i64 = self.pool.next().exists(SaleKeys::idempotency(&self.namespace, sku, idempotency_key)).await?;
        Ok(found == 1)
    }

    /// The buyer cancels a pending order of theirs.
    pub async fn cancel(&self, sku: &str, order_id: OrderId, user_id: u64) -> Result<Cancellation, StoreError> {
        let keys = self.keys(sku);
        let reply: Vec<String> = self
            .cancel
            .evalsha_with_reload(
                self.pool.next(),
                vec![
                    keys.sale,
                    keys.buyers,
                    keys.reservations,
                    keys.deadlines,
                    keys.payments,
                    keys.closed,
                    keys.outbox,
                ],
                vec![order_id.to_string(), user_id.to_string()],
            )
            .await?;
        let parsed = match reply.as_slice() {
            [tag, entry] if tag == "cancelled" => entry
                .splitn(3, ':')
                .nth(2)
                .and_then(ReservationRecord::parse)
                .map(|reservation| Cancellation::Cancelled { outbox_entry: entry.clone(), reservation }),
            [tag, state] if tag == "not_pending" => Some(Cancellation::NotPending { paid: state == "paid" }),
            [tag] if tag == "not_found" => Some(Cancellation::NotFound),
            _ => None,
        };
        parsed.ok_or(StoreError::Reply { script: "cancel.lua", reply })
    }

    /// Cancels up to `max` orders of `sku` whose deadline is before `now_ms`.
    /// Their cancellations join the outbox.
    ///
    /// A sweeper takes the SKU out of the active set *before* sweeping and
    /// puts it back if reservations or outbox entries are left; `reserve`
    /// adds it *after* reserving. So a reservation made at any moment is
    /// either seen by this sweep or puts the SKU back in the set.
    pub async fn sweep(&self, sku: &str, now_ms: i64, max: usize) -> Result<Swept, StoreError> {
        let keys = self.keys(sku);
        let reply: Vec<u64> = self
            .sweep
            .evalsha_with_reload(
                self.pool.next(),
                vec![keys.sale, keys.buyers, keys.reservations, keys.deadlines, keys.closed, keys.outbox],
                vec![now_ms.to_string(), max.to_string()],
            )
            .await?;
        match reply.as_slice() {
            [cancelled, left] => Ok(Swept { cancelled: *cancelled, reservations_left: *left }),
            _ => Err(StoreError::numbers("sweep.lua", &reply)),
        }
    }

    /// Adds `sku` to the sales the sweeper visits, or takes it out.
    pub async fn set_active(&self, sku: &str, active: bool) -> Result<(), StoreError> {
        let client = self.pool.next();
        let _: i64 = if active {
            client.sadd(&self.global.active_sales, sku).await?
        } else {
            client.srem(&self.global.active_sales, sku).await?
        };
        Ok(())
    }

    /// The SKUs the sweeper visits: those that may hold reservations or
    /// unsent cancellations.
    pub async fn active_sales(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.pool.next().smembers(&self.global.active_sales).await?)
    }

    /// Puts back in the active set every sale that holds reservations or
    /// outbox entries, whatever was lost (a failed add, a Redis failover);
    /// pipelined, a few hundred sales per round trip. Returns how many.
    pub async fn activate_pending_sales(&self) -> Result<usize, StoreError> {
        let mut found = 0;
        for chunk in self.sales().await?.chunks(256) {
            let pipeline = self.pool.next().pipeline();
            for sku in chunk {
                let keys = self.keys(sku);
                let () = pipeline.zcard(keys.deadlines).await?;
                let () = pipeline.llen(keys.outbox).await?;
            }
            let counts: Vec<i64> = pipeline.all().await?;
            for (sku, pending) in chunk.iter().zip(counts.chunks(2)) {
                if pending.iter().any(|n| *n > 0) {
                    self.set_active(sku, true).await?;
                    found += 1;
                }
            }
        }
        Ok(found)
    }

    /// Cancellations of `sku` whose events are not acknowledged yet, oldest first.
    pub async fn outbox(&self, sku: &str, max: usize) -> Result<Vec<String>, StoreError> {
        Ok(self.pool.next().lrange(self.keys(sku).outbox, 0, max as i64 - 1).await?)
    }

    /// Drops an outbox entry once its event is acknowledged.
    pub async fn remove_from_outbox(&self, sku: &str, entry: &str) -> Result<(), StoreError> {
        let _: i64 = self.pool.next().lrem(self.keys(sku).outbox, 1, entry).await?;
        Ok(())
    }

    /// A payment of `amount_cents` arrived for the order.
    pub async fn confirm(
        &self,
        sku: &str,
        order_id: OrderId,
        payment_id: &str,
        amount_cents: i64,
    ) -> Result<Confirmation, StoreError> {
        let keys = self.keys(sku);
        let reply: Vec<String> = self
            .confirm
            .evalsha_with_reload(
                self.pool.next(),
                vec![
                    keys.sale,
                    keys.buyers,
                    keys.reservations,
                    keys.deadlines,
                    keys.payments,
                    keys.closed,
                    keys.payment_events,
                ],
                vec![order_id.to_string(), payment_id.to_owned(), amount_cents.to_string()],
            )
            .await?;
        parse_confirmation(&reply).ok_or(StoreError::Reply { script: "confirm.lua", reply })
    }

    /// Records that the event of a payment was acknowledged.
    pub async fn mark_payment_event(&self, sku: &str, order_id: OrderId, payment_id: &str) -> Result<(), StoreError> {
        let field = format!("{order_id}:{payment_id}");
        let _: i64 = self.pool.next().hset(self.keys(sku).payment_events, (field, 1)).await?;
        Ok(())
    }

    /// The reservation an order holds, if it still holds one.
    pub async fn reservation(&self, sku: &str, order_id: OrderId) -> Result<Option<ReservationRecord>, StoreError> {
        let value: Option<String> = self.pool.next().hget(self.keys(sku).reservations, order_id.to_string()).await?;
        Ok(value.as_deref().and_then(ReservationRecord::parse))
    }

    /// Loads a sale, or replaces one with nothing outstanding; see
    /// `load_sale.lua` for what a replace resets.
    pub async fn load_sale(&self, sku: &str, terms: &SaleTerms) -> Result<SaleLoad, StoreError> {
        // First, so a sale whose load timed out is still rescanned.
        let _: i64 = self.pool.next().sadd(&self.global.sales, sku).await?;
        let keys = self.keys(sku);
        let (starts_ms, ends_ms) = terms.window.to_ms();
        let reply: Vec<String> = self
            .load_sale
            .evalsha_with_reload(
                self.pool.next(),
                vec![
                    keys.sale,
                    keys.buyers,
                    keys.reservations,
                    keys.deadlines,
                    keys.payments,
                    keys.closed,
                    keys.payment_events,
                    keys.outbox,
                ],
                vec![terms.stock, terms.per_user_limit, terms.price_cents, starts_ms, ends_ms],
            )
            .await?;
        let number = |text: &String| text.parse::<u64>().ok();
        let load = match reply.as_slice() {
            [tag, _] if tag == "loaded" => SaleLoad::Loaded,
            [tag, reservations, outbox, payments] if tag == "busy" => SaleLoad::Busy {
                reservations: number(reservations).unwrap_or(0),
                outbox: number(outbox).unwrap_or(0),
                unsettled_payments: number(payments).unwrap_or(0),
            },
            _ => return Err(StoreError::Reply { script: "load_sale.lua", reply }),
        };
        Ok(load)
    }

    /// Changes a live sale's units, limit, price or window; its orders stay
    /// as they are (`update_sale.lua`).
    pub async fn update_sale(&self, sku: &str, change: &SaleChange) -> Result<SaleUpdate, StoreError> {
        let text = |value: Option<i64>| value.map_or(String::new(), |v| v.to_string());
        let (starts_ms, ends_ms) = change.window.map_or((String::new(), String::new()), |window| {
            let (starts, ends) = window.to_ms();
            (starts.to_string(), ends.to_string())
        });
        let reply: Vec<String> = self
            .update_sale
            .evalsha_with_reload(
                self.pool.next(),
                vec![self.keys(sku).sale],
                vec![
                    text(change.add_units),
                    text(change.per_user_limit),
                    text(change.price_cents),
                    starts_ms,
                    ends_ms,
                    text(change.if_total),
                ],
            )
            .await?;
        let stock = |text: &String| text.parse::<i64>().ok();
        let update = match reply.as_slice() {
            [tag, left] if tag == "updated" => stock(left).map(|_| SaleUpdate::Updated),
            [tag, left] if tag == "too_few_units" => stock(left).map(|stock| SaleUpdate::TooFewUnits { stock }),
            [tag, total] if tag == "total_changed" => stock(total).map(|total| SaleUpdate::TotalChanged { total }),
            [tag] if tag == "unknown_sku" => Some(SaleUpdate::UnknownSku),
            _ => None,
        };
        update.ok_or(StoreError::Reply { script: "update_sale.lua", reply })
    }

    /// The SKUs with a sale loaded.
    pub async fn sales(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.pool.next().smembers(&self.global.sales).await?)
    }

    pub async fn sale_status(&self, sku: &str) -> Result<Option<SaleStatus>, StoreError> {
        let fields: Vec<Option<i64>> = self
            .pool
            .next()
            .hmget(
                self.keys(sku).sale,
                vec![
                    "stock",
                    "reserved",
                    "sold",
                    "total",
                    "per_user_limit",
                    "price_cents",
                    "starts_ms",
                    "ends_ms",
                    "loaded_ms",
                ],
            )
            .await?;
        Ok(match fields.as_slice() {
            [Some(stock), reserved, sold, total, per_user_limit, price_cents, starts_ms, ends_ms, loaded_ms] => {
                Some(SaleStatus {
                    stock: *stock,
                    reserved: reserved.unwrap_or(0),
                    sold: sold.unwrap_or(0),
                    total: total.unwrap_or(0),
                    per_user_limit: per_user_limit.unwrap_or(0),
                    price_cents: price_cents.unwrap_or(0),
                    window: SaleWindow::from_ms(starts_ms.unwrap_or(0), ends_ms.unwrap_or(0)),
                    loaded_ms: loaded_ms.unwrap_or(0),
                })
            }
            _ => None,
        })
    }

    /// Reconciliation's repair: `sold` as MySQL says, `reserved` as the
    /// reservations held now, `stock` the rest (`repair_sale.lua`). Returns
    /// (stock, reserved, sold) as set, `None` for an unknown SKU.
    pub async fn repair_counters(&self, sku: &str, sold: i64) -> Result<Option<(i64, i64, i64)>, StoreError> {
        let keys = self.keys(sku);
        let reply: Vec<String> = self
            .repair_sale
            .evalsha_with_reload(self.pool.next(), vec![keys.sale, keys.reservations], vec![sold.to_string()])
            .await?;
        let numbers: Vec<i64> = reply.iter().filter_map(|n| n.parse().ok()).collect();
        match (reply.as_slice(), numbers.as_slice()) {
            ([tag], _) if tag == "unknown_sku" => Ok(None),
            (_, [stock, reserved, sold]) => Ok(Some((*stock, *reserved, *sold))),
            _ => Err(StoreError::Reply { script: "repair_sale.lua", reply }),
        }
    }

    /// Asks for the channel to be queried about a payment from `due_ms` on.
    pub async fn queue_payment_query(&self, query: &PaymentQuery, due_ms: i64) -> Result<(), StoreError> {
        let _: i64 = self
            .pool
            .next()
            .zadd(&self.global.payment_queries, None, None, false, false, (due_ms as f64, query.member()))
            .await?;
        Ok(())
    }

    /// Claims up to `max` queries due at `now_ms`, pushing them to `next_due_ms`.
    pub async fn claim_payment_queries(
        &self,
        now_ms: i64,
        next_due_ms: i64,
        max: usize,
    ) -> Result<Vec<PaymentQuery>, StoreError> {
        let members: Vec<String> = self
            .claim_queries
            .evalsha_with_reload(
                self.pool.next(),
                vec![self.global.payment_queries.clone()],
                vec![now_ms.to_string(), next_due_ms.to_string(), max.to_string()],
            )
            .await?;
        Ok(members.iter().filter_map(|member| PaymentQuery::parse(member)).collect())
    }

    /// Stops querying about a payment (settled, or given up on).
    pub async fn drop_payment_query(&self, query: &PaymentQuery) -> Result<(), StoreError> {
        let _: i64 = self.pool.next().zrem(&self.global.payment_queries, query.member()).await?;
        Ok(())
    }
}

fn parse_reservation(reply: &[String]) -> Option<Reservation> {
    let number = |text: &String| text.parse::<i64>().ok();
    Some(match reply {
        [tag, amount, left, generation] if tag == "ok" => Reservation::Reserved {
            amount_cents: number(amount)?,
            stock_left: number(left)?,
            sale_generation: number(generation)?,
        },
        [tag, record] if tag == "dup" => Reservation::Duplicate(IdempotencyRecord::parse(record)?),
        [tag, record] if tag == "in_progress" => Reservation::InProgress(IdempotencyRecord::parse(record)?),
        [tag] if tag == "id_taken" => Reservation::IdTaken,
        [tag] if tag == "unknown_sku" => Reservation::UnknownSku,
        [tag, left] if tag == "sold_out" => Reservation::OutOfStock { stock_left: number(left)? },
        [tag, _held] if tag == "limit" => Reservation::LimitExceeded,
        [tag, starts, ends] if tag == "not_started" || tag == "ended" => {
            Reservation::OutsideWindow(SaleWindow::from_ms(number(starts)?, number(ends)?))
        }
        _ => return None,
    })
}

fn parse_confirmation(reply: &[String]) -> Option<Confirmation> {
    Some(match reply {
        [tag, reservation] if tag == "paid" => Confirmation::Paid(ReservationRecord::parse(reservation)?),
        [tag, closed] if tag == "refund" => {
            let (reason, reservation) = parse_closed(closed)?;
            Confirmation::Refund { reason, reservation }
        }
        [tag, payment, acknowledged] if tag == "dup" => {
            // "<paid|refund>:<payment id>:<reservation>"
            let mut parts = payment.splitn(3, ':');
            let refund = parts.next()? == "refund";
            let reservation = ReservationRecord::parse(parts.nth(1)?)?;
            Confirmation::Duplicate { refund, reservation, acknowledged: acknowledged == "1" }
        }
        [tag, expected] if tag == "amount_mismatch" => {
            Confirmation::AmountMismatch { expected: expected.parse().ok()? }
        }
        [tag, reservation] if tag == "second_payment" => {
            Confirmation::SecondPayment(ReservationRecord::parse(reservation)?)
        }
        [tag] if tag == "orphan" => Confirmation::Orphan,
        _ => return None,
    })
}
