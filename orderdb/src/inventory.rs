//! An ordinary sale's database fallback (`order::fallback`), in the first
//! shard (the inventory database): the units of its database share
//! (`inventory`), and the orders taken from them while Redis was down
//! (`fallback_orders`) until Redis adopts them.

use chrono::{DateTime, NaiveDateTime};
use order::fallback::FallbackOrder;
use order::id::OrderId;
use order::sale::SaleWindow;
use sqlx::mysql::MySqlPool;
use sqlx::{MySql, Transaction};

use crate::orders::is_duplicate;
use crate::shards::ShardPools;

/// An ordinary sale's database share, as the admin loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseShare {
    pub units: i64,
    pub per_user_limit: i64,
    pub price_cents: i64,
    pub window: SaleWindow,
    /// The Redis sale's generation (its `loaded_ms`), carried by the orders.
    pub sale_generation: i64,
}

/// A sale's database share now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareStatus {
    /// Units still for sale there.
    pub units: i64,
    /// Orders taken from it that Redis has not adopted yet.
    pub pending_orders: i64,
}

/// One order to take from the database share.
#[derive(Debug, Clone)]
pub struct TakeRequest<'a> {
    pub sku: &'a str,
    pub idempotency_key: &'a str,
    pub user_id: u64,
    pub qty: u32,
    pub order_id: OrderId,
    pub now_ms: i64,
    pub pay_by_ms: i64,
}

/// What taking an order from the database share did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    Taken(FallbackOrder),
    /// The key's order, taken before and not adopted yet.
    Existing(FallbackOrder),
    /// The SKU has no database share: a flash sale, or none at all.
    NoShare,
    OutsideWindow(SaleWindow),
    /// Fewer units left than asked for.
    SoldOut {
        units: i64,
    },
    /// The buyer's orders from the share would pass the per-user limit.
    LimitExceeded,
    /// Another gateway's fallback minted this order id: mint another.
    IdTaken,
}

/// The columns of a [`FallbackOrder`], as [`FallbackRow`] reads them.
const COLUMNS: &str = "order_id, sku, idempotency_key, user_id, qty, amount_cents, sale_generation, \
     created_at, pay_by, state";
type FallbackRow = (i64, String, String, u64, u32, i64, i64, NaiveDateTime, NaiveDateTime, String);

fn fallback_order(row: FallbackRow) -> FallbackOrder {
    let (order_id, sku, idempotency_key, user_id, qty, amount_cents, sale_generation, created_at, pay_by, state) = row;
    FallbackOrder {
        order_id: OrderId::from_raw(order_id as u64),
        sku,
        idempotency_key,
        user_id,
        qty,
        amount_cents,
        sale_generation,
        created_ms: created_at.and_utc().timestamp_millis(),
        pay_by_ms: pay_by.and_utc().timestamp_millis(),
        accepted: state == "accepted",
    }
}

fn at(ms: i64) -> NaiveDateTime {
    DateTime::from_timestamp_millis(ms).unwrap_or_default().naive_utc()
}

fn window_at(window: SaleWindow) -> (Option<NaiveDateTime>, Option<NaiveDateTime>) {
    (window.starts_at.map(|at| at.naive_utc()), window.ends_at.map(|at| at.naive_utc()))
}

impl ShardPools {
    fn inventory(&self) -> &MySqlPool {
        &self.pools[0]
    }

    /// Sets `sku`'s database share (`None`: it has none), unless orders
    /// taken from the current one still wait for Redis: then their count.
    pub async fn set_database_share(
        &self,
        sku: &str,
        share: Option<&DatabaseShare>,
    ) -> Result<Option<i64>, sqlx::Error> {
        let mut tx = self.inventory().begin().await?;
        // The row's lock first: no order is taken from it meanwhile.
        let _: Option<(i64,)> = sqlx::query_as("SELECT units FROM inventory WHERE sku = ? FOR UPDATE")
            .bind(sku)
            .fetch_optional(&mut *tx)
            .await?;
        let pending = pending_count(&mut tx, sku).await?;
        if pending > 0 {
            return Ok(Some(pending));
        }
        match share {
            Some(share) => {
                let (starts_at, ends_at) = window_at(share.window);
                sqlx::query(
                    "REPLACE INTO inventory (sku, units, per_user_limit, price_cents, starts_at, ends_at, \
                     sale_generation) VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(sku)
                .bind(share.units)
                .bind(share.per_user_limit)
                .bind(share.price_cents)
                .bind(starts_at)
                .bind(ends_at)
                .bind(share.sale_generation)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM inventory WHERE sku = ?").bind(sku).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(None)
    }

    /// A live change of an ordinary sale's limit, price or window, made in
    /// its database share too (its units stay as they are).
    pub async fn change_database_share(
        &self,
        sku: &str,
        per_user_limit: Option<i64>,
        price_cents: Option<i64>,
        window: Option<SaleWindow>,
    ) -> Result<(), sqlx::Error> {
        let (starts_at, ends_at) = window.map(window_at).unzip();
        sqlx::query(
            "UPDATE inventory SET per_user_limit = COALESCE(?, per_user_limit), \
             price_cents = COALESCE(?, price_cents), \
             starts_at = IF(?, ?, starts_at), ends_at = IF(?, ?, ends_at) WHERE sku = ?",
        )
        .bind(per_user_limit)
        .bind(price_cents)
        .bind(window.is_some())
        .bind(starts_at.flatten())
        .bind(window.is_some())
        .bind(ends_at.flatten())
        .bind(sku)
        .execute(self.inventory())
        .await?;
        Ok(())
    }

    /// `sku`'s database share now; `None` for a sale with none.
    pub async fn database_share(&self, sku: &str) -> Result<Option<ShareStatus>, sqlx::Error> {
        let units: Option<(i64,)> = sqlx::query_as("SELECT units FROM inventory WHERE sku = ?")
            .bind(sku)
            .fetch_optional(self.inventory())
            .await?;
        let Some((units,)) = units else {
            return Ok(None);
        };
        let (pending_orders,): (i64,) = sqlx::query_as(PENDING).bind(sku).fetch_one(self.inventory()).await?;
        Ok(Some(ShareStatus { units, pending_orders }))
    }

    /// Takes an order's units from the database share under its row lock
    /// and records the order, in one transaction; or answers the key's
    /// earlier order, or why not. The per-user limit counts the buyer's
    /// orders from the share in this sale (Redis's cannot be read).
    pub async fn take_from_database(&self, req: &TakeRequest<'_>) -> Result<Take, sqlx::Error> {
        let mut tx = self.inventory().begin().await?;
        let share: Option<(i64, i64, i64, Option<NaiveDateTime>, Option<NaiveDateTime>, i64)> = sqlx::query_as(
            "SELECT units, per_user_limit, price_cents, starts_at, ends_at, sale_generation \
             FROM inventory WHERE sku = ? FOR UPDATE",
        )
        .bind(req.sku)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((units, limit, price_cents, starts_at, ends_at, generation)) = share else {
            return Ok(Take::NoShare);
        };
        let earlier: Option<FallbackRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM fallback_orders WHERE sku = ? AND live_key = ?"))
                .bind(req.sku)
                .bind(req.idempotency_key)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = earlier {
            return Ok(Take::Existing(fallback_order(row)));
        }
        let window =
            SaleWindow { starts_at: starts_at.map(|at| at.and_utc()), ends_at: ends_at.map(|at| at.and_utc()) };
        let now = DateTime::from_timestamp_millis(req.now_ms).unwrap_or_default();
        if window.phase(now) != order::sale::Phase::Open {
            return Ok(Take::OutsideWindow(window));
        }
        let (held,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(qty), 0) AS SIGNED) FROM fallback_orders \
             WHERE sku = ? AND user_id = ? AND sale_generation = ? AND state <> 'dropped'",
        )
        .bind(req.sku)
        .bind(req.user_id)
        .bind(generation)
        .fetch_one(&mut *tx)
        .await?;
        if held + i64::from(req.qty) > limit {
            return Ok(Take::LimitExceeded);
        }
        if units < i64::from(req.qty) {
            return Ok(Take::SoldOut { units });
        }
        let order = FallbackOrder {
            order_id: req.order_id,
            sku: req.sku.to_owned(),
            idempotency_key: req.idempotency_key.to_owned(),
            user_id: req.user_id,
            qty: req.qty,
            amount_cents: price_cents * i64::from(req.qty),
            sale_generation: generation,
            created_ms: req.now_ms,
            pay_by_ms: req.pay_by_ms,
            accepted: false,
        };
        let inserted = sqlx::query(&format!(
            "INSERT INTO fallback_orders ({COLUMNS}, live_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'reserved', ?)"
        ))
        .bind(order.order_id.raw() as i64)
        .bind(&order.sku)
        .bind(&order.idempotency_key)
        .bind(order.user_id)
        .bind(order.qty)
        .bind(order.amount_cents)
        .bind(order.sale_generation)
        .bind(at(order.created_ms))
        .bind(at(order.pay_by_ms))
        .bind(&order.idempotency_key)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(err) if is_duplicate(&err) => return Ok(Take::IdTaken),
            Err(err) => return Err(err),
        }
        sqlx::query("UPDATE inventory SET units = units - ? WHERE sku = ?")
            .bind(req.qty)
            .bind(req.sku)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Take::Taken(order))
    }

    /// The broker acknowledged the order's event: false when Redis adopted
    /// it meanwhile (then Redis holds its acknowledgement to make).
    pub async fn fallback_accepted(&self, order_id: OrderId) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("UPDATE fallback_orders SET state = 'accepted' WHERE order_id = ? AND state = 'reserved'")
                .bind(order_id.raw() as i64)
                .execute(self.inventory())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Redis holds the order now: its key is Redis's to answer.
    pub async fn fallback_adopted(&self, order_id: OrderId) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE fallback_orders SET state = 'adopted', live_key = NULL \
             WHERE order_id = ? AND state IN ('reserved', 'accepted')",
        )
        .bind(order_id.raw() as i64)
        .execute(self.inventory())
        .await?;
        Ok(())
    }

    /// Drops a pending order and gives its units back to the database
    /// share: an accepted one only when `accepted_too` (its cancellation is
    /// then the caller's to have published first). False when it is not
    /// pending in that state (adopted or dropped meanwhile).
    pub async fn fallback_dropped(&self, order_id: OrderId, accepted_too: bool) -> Result<bool, sqlx::Error> {
        let mut tx = self.inventory().begin().await?;
        let row: Option<(String, u32, String)> =
            sqlx::query_as("SELECT sku, qty, state FROM fallback_orders WHERE order_id = ? FOR UPDATE")
                .bind(order_id.raw() as i64)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((sku, qty, state)) = row else {
            return Ok(false);
        };
        if !(state == "reserved" || (accepted_too && state == "accepted")) {
            return Ok(false);
        }
        sqlx::query("UPDATE fallback_orders SET state = 'dropped', live_key = NULL WHERE order_id = ?")
            .bind(order_id.raw() as i64)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE inventory SET units = units + ? WHERE sku = ?")
            .bind(qty)
            .bind(&sku)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Up to `limit` orders Redis has not adopted yet, oldest first.
    pub async fn pending_fallback_orders(&self, limit: u32) -> Result<Vec<FallbackOrder>, sqlx::Error> {
        let rows: Vec<FallbackRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM fallback_orders WHERE state IN ('reserved', 'accepted') ORDER BY order_id LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(self.inventory())
        .await?;
        Ok(rows.into_iter().map(fallback_order).collect())
    }

    /// The order, if the fallback took it and Redis has not adopted it.
    pub async fn pending_fallback_order(&self, order_id: OrderId) -> Result<Option<FallbackOrder>, sqlx::Error> {
        let row: Option<FallbackRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM fallback_orders WHERE order_id = ? AND state IN ('reserved', 'accepted')"
        ))
        .bind(order_id.raw() as i64)
        .fetch_optional(self.inventory())
        .await?;
        Ok(row.map(fallback_order))
    }
}

/// How many of a SKU's orders wait for Redis.
const PENDING: &str = "SELECT COUNT(*) FROM fallback_orders WHERE sku = ? AND live_key IS NOT NULL";

async fn pending_count(tx: &mut Transaction<'_, MySql>, sku: &str) -> Result<i64, sqlx::Error> {
    let (pending,): (i64,) = sqlx::query_as(PENDING).bind(sku).fetch_one(&mut **tx).await?;
    Ok(pending)
}
