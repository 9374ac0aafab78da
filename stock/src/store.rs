//! [`SaleStore`]: a sale's units and reservations (reserve, release,
//! acknowledge, cancel, confirm, load, update, repair, return); the
//! sweeper's calls are in [`crate::sweeps`]. Each call builds its script's
//! keys with the builder of the same name in [`crate::keys`] and parses
//! the reply with [`crate::replies`].

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use fred::prelude::*;
use order::event::OrderCreated;
use order::fallback::SaleKind;
use order::id::OrderId;
use order::sale::{Deduction, SaleWindow};

use crate::config::RedisConfig;
use crate::error::StoreError;
use crate::records::ReservationRecord;
use crate::redis::Redis;
use crate::replies::{
    Cancellation, Confirmation, Release, Repair, Reservation, SaleLoad, SaleStatus, SaleUpdate, UnitsReturned,
};
use crate::requests::{Acknowledgement, ChannelShare, ConfirmWindows, ReserveRequest, SaleChange, SaleTerms};

/// How often a sale that keeps taking reservations is added to
/// `active_sales` again by this store, so an add lost to a timeout or a
/// failover is made good within this, not at the sweeper's next rescan.
const REACTIVATE_EVERY: Duration = Duration::from_secs(1);

/// The sales: their units and reservations, through the unit ledger's
/// scripts; each decision about a reservation is one script.
pub struct SaleStore {
    pub(crate) redis: Redis,
    /// When this store last added each SKU to `active_sales`.
    activated: Mutex<HashMap<String, Instant>>,
}

impl SaleStore {
    pub fn new(redis: Redis) -> Self {
        Self { redis, activated: Mutex::new(HashMap::new()) }
    }

    /// A store of its own connection.
    pub fn connect(config: &RedisConfig) -> Result<Self, StoreError> {
        Ok(Self::new(Redis::connect(config)?))
    }

    /// The connection, for the other stores to share.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    pub async fn reserve(&self, req: &ReserveRequest<'_>) -> Result<Reservation, StoreError> {
        let mut reservations = self.reserve_many(&req.sku, std::slice::from_ref(req)).await?;
        Ok(reservations.remove(0))
    }

    /// [`Self::reserve`] for several requests for `sku` in one script call,
    /// one after the other in their order; a reservation each, in order.
    pub async fn reserve_many(
        &self,
        sku: &str,
        requests: &[ReserveRequest<'_>],
    ) -> Result<Vec<Reservation>, StoreError> {
        let mut args = Vec::with_capacity(12 * requests.len());
        for req in requests {
            debug_assert_eq!(req.sku, sku, "one SKU per call");
            args.extend([
                req.user_id.to_string(),
                req.qty.to_string(),
                req.order_id.to_string(),
                req.now_ms.to_string(),
                req.pay_by_ms.to_string(),
                req.idempotency_ttl_secs.to_string(),
                req.idempotency_key.to_string(),
                req.confirm_windows.confirm_ms.to_string(),
                req.confirm_windows.in_flight_ms.to_string(),
                req.warehouses.to_string(),
            ]);
            args.extend(ChannelShare::args(req.channel_share.as_ref()));
        }
        let keys = self.redis.keys(sku).reserve(requests.iter().map(|req| req.idempotency_key.as_ref()));
        let replies: Vec<Vec<String>> =
            self.redis.scripts.reserve.evalsha_with_reload(self.redis.pool.next(), keys, args).await?;
        if replies.len() != requests.len() {
            return Err(StoreError::Reply { script: "reserve.lua", reply: replies.concat() });
        }
        let mut first_held = false;
        let mut reservations = Vec::with_capacity(replies.len());
        for reply in replies {
            first_held |= reply.get(4).is_some_and(|first| first == "1");
            reservations.push(Reservation::parse(&reply).ok_or(StoreError::Reply { script: "reserve.lua", reply })?);
        }
        // The sale goes into the active sales after its reservations exist.
        // A reservation that found its sale holding none always adds it (a
        // sweeper drops a sale only when it holds none, and re-adds it
        // otherwise, see `sweep`); other batches add it at most once a
        // second, in case an add was lost. The units are taken either way:
        // a failure here must not fail the order; the rescan finds the sale.
        let reserved = reservations.iter().any(|reservation| matches!(reservation, Reservation::Reserved { .. }));
        if reserved && self.activation_due(sku, first_held) {
            if let Err(err) = self.set_active(sku, true).await {
                tracing::warn!(sku, error = %err, "sale not marked active; the next rescan finds it");
            }
        }
        Ok(reservations)
    }

    /// Whether a batch that reserved should add `sku` to the active sales
    /// now; notes the add if so.
    pub(crate) fn activation_due(&self, sku: &str, first_held: bool) -> bool {
        let mut activated = self.activated.lock().unwrap_or_else(PoisonError::into_inner);
        let due = first_held || activated.get(sku).is_none_or(|at| at.elapsed() >= REACTIVATE_EVERY);
        if due {
            activated.insert(sku.to_owned(), Instant::now());
        }
        due
    }

    /// Gives an unqueued order's units back, unless the in-flight window
    /// since its reservation has passed (`release.lua`).
    pub async fn release(
        &self,
        sku: &str,
        idempotency_key: &str,
        order_id: OrderId,
        confirm_windows: &ConfirmWindows,
    ) -> Result<Release, StoreError> {
        let reply: Vec<i64> = self
            .redis
            .scripts
            .release
            .evalsha_with_reload(
                self.redis.pool.next(),
                self.redis.keys(sku).release(idempotency_key),
                vec![
                    order_id.to_string(),
                    confirm_windows.confirm_ms.to_string(),
                    confirm_windows.in_flight_ms.to_string(),
                ],
            )
            .await?;
        Release::parse(&reply).ok_or_else(|| StoreError::numbers("release.lua", &reply))
    }

    /// The broker acknowledged the order's creation: its reservation now
    /// holds until the payment deadline and its idempotency record is
    /// marked acknowledged (keeping its TTL). False when the order was
    /// cancelled as unconfirmed or released first: it must not be answered 202.
    pub async fn acknowledge(
        &self,
        sku: &str,
        idempotency_key: &str,
        order_id: OrderId,
        pay_by_ms: i64,
    ) -> Result<bool, StoreError> {
        let order = Acknowledgement { idempotency_key: idempotency_key.to_owned(), order_id, pay_by_ms };
        let stands = self.acknowledge_many(sku, &[order]).await?;
        Ok(stands == [true])
    }

    /// [`Self::acknowledge`] for several orders of one SKU in one script
    /// call; whether each stands, in order.
    pub async fn acknowledge_many(&self, sku: &str, orders: &[Acknowledgement]) -> Result<Vec<bool>, StoreError> {
        let mut args = Vec::with_capacity(2 * orders.len());
        for order in orders {
            args.extend([order.order_id.to_string(), order.pay_by_ms.to_string()]);
        }
        let keys = self.redis.keys(sku).acknowledge(orders.iter().map(|order| order.idempotency_key.as_str()));
        let stands: Vec<i64> =
            self.redis.scripts.acknowledge.evalsha_with_reload(self.redis.pool.next(), keys, args).await?;
        if stands.len() != orders.len() {
            return Err(StoreError::numbers("acknowledge.lua", &stands));
        }
        Ok(stands.into_iter().map(|stands| stands == 1).collect())
    }

    /// Whether each idempotency key of `sku` has a record (an order was
    /// placed with it, on any gateway), in one `MGET` (the records share
    /// the SKU's slot).
    pub async fn idempotency_keys_used(&self, sku: &str, keys: &[String]) -> Result<Vec<bool>, StoreError> {
        let sale = self.redis.keys(sku);
        let records: Vec<String> = keys.iter().map(|key| sale.idempotency(key)).collect();
        let found: Vec<Option<String>> = self.redis.pool.next().mget(records).await?;
        Ok(found.iter().map(Option::is_some).collect())
    }

    /// Every idempotency key that reserved units of `sku`, read while it is
    /// sold out (`used_keys.lua`); `None` while it has stock (or no sale),
    /// when it was loaded before its keys were kept, or when it has more
    /// than `most` keys.
    pub async fn used_keys(&self, sku: &str, most: usize) -> Result<Option<HashSet<String>>, StoreError> {
        let mut reply: Vec<String> = self
            .redis
            .scripts
            .used_keys
            .evalsha_with_reload(self.redis.pool.next(), self.redis.keys(sku).used_keys(), vec![most.to_string()])
            .await?;
        match reply.first().map(String::as_str) {
            Some("sold_out") => Ok(Some(reply.drain(1..).collect())),
            Some("in_stock" | "untracked" | "too_many") => Ok(None),
            _ => Err(StoreError::Reply { script: "used_keys.lua", reply }),
        }
    }

    /// The buyer cancels a pending order of theirs.
    pub async fn cancel(&self, sku: &str, order_id: OrderId, user_id: u64) -> Result<Cancellation, StoreError> {
        let reply: Vec<String> = self
            .redis
            .scripts
            .cancel
            .evalsha_with_reload(
                self.redis.pool.next(),
                self.redis.keys(sku).cancel(),
                vec![order_id.to_string(), user_id.to_string()],
            )
            .await?;
        Cancellation::parse(&reply).ok_or(StoreError::Reply { script: "cancel.lua", reply })
    }

    /// A payment of `amount_cents` arrived for the order.
    pub async fn confirm(
        &self,
        sku: &str,
        order_id: OrderId,
        payment_id: &str,
        amount_cents: i64,
    ) -> Result<Confirmation, StoreError> {
        let reply: Vec<String> = self
            .redis
            .scripts
            .confirm
            .evalsha_with_reload(
                self.redis.pool.next(),
                self.redis.keys(sku).confirm(),
                vec![order_id.to_string(), payment_id.to_owned(), amount_cents.to_string()],
            )
            .await?;
        Confirmation::parse(&reply).ok_or(StoreError::Reply { script: "confirm.lua", reply })
    }

    /// Records that the event of a payment was acknowledged.
    pub async fn mark_payment_event(&self, sku: &str, order_id: OrderId, payment_id: &str) -> Result<(), StoreError> {
        let field = format!("{order_id}:{payment_id}");
        let _: i64 = self.redis.pool.next().hset(self.redis.keys(sku).payment_events, (field, 1)).await?;
        Ok(())
    }

    /// The reservation an order holds, if it still holds one.
    pub async fn reservation(&self, sku: &str, order_id: OrderId) -> Result<Option<ReservationRecord>, StoreError> {
        let value: Option<String> =
            self.redis.pool.next().hget(self.redis.keys(sku).reservations, order_id.to_string()).await?;
        Ok(value.as_deref().and_then(ReservationRecord::parse))
    }

    /// Loads a sale, or replaces one with nothing outstanding; see
    /// `load_sale.lua` for what a replace resets.
    pub async fn load_sale(&self, sku: &str, terms: &SaleTerms) -> Result<SaleLoad, StoreError> {
        // First, so a sale whose load timed out is still rescanned.
        let _: i64 = self.redis.pool.next().sadd(&self.redis.global.sales, sku).await?;
        let (starts_ms, ends_ms) = terms.window.to_ms();
        let reply: Vec<String> = self
            .redis
            .scripts
            .load_sale
            .evalsha_with_reload(
                self.redis.pool.next(),
                self.redis.keys(sku).load_sale(),
                vec![
                    (terms.stock - terms.database_units()).to_string(),
                    terms.per_user_limit.to_string(),
                    terms.price_cents.to_string(),
                    starts_ms.to_string(),
                    ends_ms.to_string(),
                    i64::from(terms.deduction.open_cap_pct(terms.open_orders_cap_pct)).to_string(),
                    terms.warehouse_list(),
                    terms.database_units().to_string(),
                ],
            )
            .await?;
        SaleLoad::parse(&reply).ok_or(StoreError::Reply { script: "load_sale.lua", reply })
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
            .redis
            .scripts
            .update_sale
            .evalsha_with_reload(
                self.redis.pool.next(),
                self.redis.keys(sku).update_sale(),
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
        SaleUpdate::parse(&reply).ok_or(StoreError::Reply { script: "update_sale.lua", reply })
    }

    /// Takes a cancelled paid order's units out of `sold`, once: back on
    /// sale if `back_on_sale` and the sale still runs, else out of it
    /// (`return_units.lua`).
    pub async fn return_units(&self, order: &OrderCreated, back_on_sale: bool) -> Result<UnitsReturned, StoreError> {
        let reply: Vec<String> = self
            .redis
            .scripts
            .return_units
            .evalsha_with_reload(
                self.redis.pool.next(),
                self.redis.keys(&order.sku).return_units(),
                vec![
                    order.order_id.to_string(),
                    order.user_id.to_string(),
                    order.qty.to_string(),
                    order.sale_generation.to_string(),
                    if back_on_sale { "1" } else { "0" }.to_owned(),
                    order.warehouse.clone().unwrap_or_default(),
                ],
            )
            .await?;
        UnitsReturned::parse(&reply).ok_or(StoreError::Reply { script: "return_units.lua", reply })
    }

    /// The SKUs with a sale loaded.
    pub async fn sales(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.redis.pool.next().smembers(&self.redis.global.sales).await?)
    }

    /// A sale's counters and terms, with its warehouses' (regional stock).
    pub async fn sale_status(&self, sku: &str) -> Result<Option<SaleStatus>, StoreError> {
        let Some(mut status) = self.sale_counters(sku).await? else {
            return Ok(None);
        };
        status.warehouses = self.warehouse_status(sku).await?;
        Ok(Some(status))
    }

    async fn sale_counters(&self, sku: &str) -> Result<Option<SaleStatus>, StoreError> {
        let fields: Vec<Option<i64>> = self
            .redis
            .pool
            .next()
            .hmget(
                self.redis.keys(sku).sale,
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
                    "open",
                    "open_cap_pct",
                    "database_units",
                ],
            )
            .await?;
        Ok(match fields.as_slice() {
            [Some(stock), reserved, sold, total, per_user_limit, price_cents, starts_ms, ends_ms, loaded_ms, open, open_cap_pct, database_units] =>
            {
                let (deduction, open_orders_cap_pct) =
                    Deduction::from_open_cap_pct(open_cap_pct.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32);
                Some(SaleStatus {
                    stock: *stock,
                    reserved: reserved.unwrap_or(0),
                    sold: sold.unwrap_or(0),
                    total: total.unwrap_or(0),
                    per_user_limit: per_user_limit.unwrap_or(0),
                    price_cents: price_cents.unwrap_or(0),
                    window: SaleWindow::from_ms(starts_ms.unwrap_or(0), ends_ms.unwrap_or(0)),
                    loaded_ms: loaded_ms.unwrap_or(0),
                    deduction,
                    open_orders_cap_pct,
                    open: open.unwrap_or(0),
                    warehouses: Vec::new(),
                    kind: if database_units.unwrap_or(0) > 0 { SaleKind::Ordinary } else { SaleKind::Flash },
                    database_units: database_units.filter(|units| *units > 0),
                })
            }
            _ => None,
        })
    }

    /// Reconciliation's repair: `sold` as MySQL says, `reserved` (or `open`)
    /// as the reservations held now, `stock` the rest (`repair_sale.lua`);
    /// the sale's orders cancelled after payment (`returned`: id, units)
    /// are marked as returned, as MySQL's `sold` counts them out already.
    /// A regional sale's are set per warehouse too, with `sold_per_warehouse`.
    pub async fn repair_counters(
        &self,
        sku: &str,
        sold: i64,
        sold_per_warehouse: &[(String, i64)],
        returned: &[(OrderId, u32)],
    ) -> Result<Repair, StoreError> {
        let split: Vec<String> = sold_per_warehouse.iter().map(|(w, units)| format!("{w}={units}")).collect();
        let mut args = vec![sold.to_string(), split.join(",")];
        for (order_id, units) in returned {
            args.extend([order_id.to_string(), units.to_string()]);
        }
        let reply: Vec<String> = self
            .redis
            .scripts
            .repair_sale
            .evalsha_with_reload(self.redis.pool.next(), self.redis.keys(sku).repair_sale(), args)
            .await?;
        Repair::parse(&reply).ok_or(StoreError::Reply { script: "repair_sale.lua", reply })
    }
}
