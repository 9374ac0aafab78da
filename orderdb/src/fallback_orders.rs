//! The orders an ordinary sale's database share took while Redis could not
//! be reached (`fallback_orders`, beside [`crate::inventory`]), from the
//! take under the share's row lock to Redis's adoption. Each move is a
//! compare-and-set on the order's state, so the request that took an order
//! and an adopter never both decide it: once an adopter claimed it
//! (`adopting`), the request can neither accept it nor give its units back.

use chrono::{DateTime, NaiveDateTime};
use order::fallback::FallbackOrder;
use order::id::OrderId;
use order::sale::{Phase, SaleWindow};
use sqlx::{MySql, Transaction};

use crate::inventory::{locked_share, PENDING_STATES};
use crate::orders::is_duplicate;
use crate::shards::ShardPools;

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
    /// How long the request that took an order may still be waiting for the
    /// broker (the gateway's in-flight window).
    pub in_flight_ms: u64,
    /// How long a key names its order (`orders.idempotency_ttl_secs`).
    pub idempotency_ttl_secs: u64,
}

/// What taking an order from the database share did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    Taken(FallbackOrder),
    /// The key named this order before, in the state given.
    Existing(FallbackOrder, Earlier),
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

/// Where the key's earlier order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Earlier {
    /// Its request may still be waiting for the broker.
    InFlight,
    /// Past its in-flight window, its event unacknowledged: send it again.
    Unacknowledged,
    /// Its buyer was answered 202.
    Accepted,
    /// Redis holds it (or is being handed it) and alone knows more; or it
    /// was cancelled as a duplicate of the key's order in Redis.
    InRedis,
}

/// The columns of a [`FallbackOrder`], as inserted.
const COLUMNS: &str = "order_id, sku, idempotency_key, user_id, qty, amount_cents, sale_generation, \
     created_at, pay_by, accepted";
/// The same columns as [`FallbackRow`] reads them (the binary-collated
/// text read back as text).
const READ_COLUMNS: &str = "order_id, CONVERT(sku USING utf8mb4), CONVERT(idempotency_key USING utf8mb4), \
     user_id, qty, amount_cents, sale_generation, created_at, pay_by, accepted";
type FallbackRow = (i64, String, String, u64, u32, i64, i64, NaiveDateTime, NaiveDateTime, bool);

fn fallback_order(row: FallbackRow) -> FallbackOrder {
    let (order_id, sku, idempotency_key, user_id, qty, amount_cents, sale_generation, created_at, pay_by, accepted) =
        row;
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
        accepted,
    }
}

fn at(ms: i64) -> NaiveDateTime {
    DateTime::from_timestamp_millis(ms).unwrap_or_default().naive_utc()
}

/// Whether the row was taken less than `in_flight_ms` ago, on the database's clock.
const YOUNG: &str = "taken_at >= NOW(3) - INTERVAL ? MICROSECOND";

impl ShardPools {
    /// Takes an order's units from the database share under its row lock
    /// and records the order, in one transaction; or answers the key's
    /// earlier order, or why not. The per-user limit counts the buyer's
    /// orders from the share in this sale (Redis's cannot be read).
    pub async fn take_from_database(&self, req: &TakeRequest<'_>) -> Result<Take, sqlx::Error> {
        let mut tx = self.inventory().begin().await?;
        let Some(share) = locked_share(&mut tx, req.sku).await? else {
            return Ok(Take::NoShare);
        };
        if let Some(earlier) = earlier_order(&mut tx, req).await? {
            tx.commit().await?;
            return Ok(earlier);
        }
        let now = DateTime::from_timestamp_millis(req.now_ms).unwrap_or_default();
        if share.window.phase(now) != Phase::Open {
            return Ok(Take::OutsideWindow(share.window));
        }
        let (held,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(qty), 0) AS SIGNED) FROM fallback_orders \
             WHERE sku = ? AND user_id = ? AND sale_generation = ? AND state NOT IN ('dropped', 'duplicate')",
        )
        .bind(req.sku)
        .bind(req.user_id)
        .bind(share.sale_generation)
        .fetch_one(&mut *tx)
        .await?;
        if held + i64::from(req.qty) > share.per_user_limit {
            return Ok(Take::LimitExceeded);
        }
        if share.units < i64::from(req.qty) {
            return Ok(Take::SoldOut { units: share.units });
        }
        let order = FallbackOrder {
            order_id: req.order_id,
            sku: req.sku.to_owned(),
            idempotency_key: req.idempotency_key.to_owned(),
            user_id: req.user_id,
            qty: req.qty,
            amount_cents: share.price_cents * i64::from(req.qty),
            sale_generation: share.sale_generation,
            created_ms: req.now_ms,
            pay_by_ms: req.pay_by_ms,
            accepted: false,
        };
        let inserted = sqlx::query(&format!(
            "INSERT INTO fallback_orders ({COLUMNS}, live_key, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 'reserved')"
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

    /// The broker acknowledged the order's event: false when an adopter
    /// claimed it first (then Redis holds the acknowledgement to make).
    pub async fn fallback_accepted(&self, order_id: OrderId) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE fallback_orders SET state = 'accepted', accepted = 1 WHERE order_id = ? AND state = 'reserved'",
        )
        .bind(order_id.raw() as i64)
        .execute(self.inventory())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The order's event certainly never reached the broker: its units go
    /// back to the share and its key is free. Only within the in-flight
    /// window and before any adopter claimed it (as `release.lua` refuses
    /// past it): false otherwise, when a retry may be sending it again.
    pub async fn fallback_dropped(&self, order_id: OrderId, in_flight_ms: u64) -> Result<bool, sqlx::Error> {
        let condition = format!("state = 'reserved' AND {YOUNG}");
        self.end_in_database(order_id, &condition, Some(in_flight_ms * 1_000), "dropped").await
    }

    /// Claims the order for adoption: an accepted one, one being adopted
    /// (a claim that died, or a Redis order that has to settle first), or
    /// a reserved one past its in-flight window. From then on its request
    /// can neither accept nor drop it. The order as claimed (`accepted`
    /// as its state says), or `None` when it may not be adopted now.
    pub async fn claim_for_adoption(
        &self,
        order_id: OrderId,
        in_flight_ms: u64,
    ) -> Result<Option<FallbackOrder>, sqlx::Error> {
        let mut tx = self.inventory().begin().await?;
        let row: Option<FallbackRow> = sqlx::query_as(&format!(
            "SELECT {READ_COLUMNS} FROM fallback_orders WHERE order_id = ? \
             AND (state IN ('accepted', 'adopting') OR (state = 'reserved' AND NOT ({YOUNG}))) FOR UPDATE"
        ))
        .bind(order_id.raw() as i64)
        .bind(in_flight_ms * 1_000)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        sqlx::query("UPDATE fallback_orders SET state = 'adopting' WHERE order_id = ?")
            .bind(order_id.raw() as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(fallback_order(row)))
    }

    /// Redis holds the claimed order now. Its key keeps naming it here, so
    /// a retry on a gateway cut off from Redis does not take another.
    pub async fn fallback_adopted(&self, order_id: OrderId) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE fallback_orders SET state = 'adopted' WHERE order_id = ? AND state = 'adopting'")
            .bind(order_id.raw() as i64)
            .execute(self.inventory())
            .await?;
        Ok(())
    }

    /// The claimed order's key placed another order in Redis, and its
    /// cancellation is on the broker: its units go back to the share.
    pub async fn fallback_duplicate(&self, order_id: OrderId) -> Result<(), sqlx::Error> {
        self.end_in_database(order_id, "state = 'adopting'", None, "duplicate").await.map(drop)
    }

    /// Up to `limit` orders Redis has not adopted yet, past `after`, by id.
    pub async fn pending_fallback_orders(&self, after: i64, limit: u32) -> Result<Vec<OrderId>, sqlx::Error> {
        let ids: Vec<(i64,)> = sqlx::query_as(&format!(
            "SELECT order_id FROM fallback_orders WHERE state IN {PENDING_STATES} AND order_id > ? \
             ORDER BY order_id LIMIT ?"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(self.inventory())
        .await?;
        Ok(ids.into_iter().map(|(id,)| OrderId::from_raw(id as u64)).collect())
    }

    /// Whether the fallback took the order (of `user_id`, when named) and
    /// Redis has not adopted it yet.
    pub async fn is_pending_fallback_order(
        &self,
        order_id: OrderId,
        user_id: Option<u64>,
    ) -> Result<bool, sqlx::Error> {
        let found: Option<(i64,)> = sqlx::query_as(&format!(
            "SELECT 1 FROM fallback_orders WHERE order_id = ? AND state IN {PENDING_STATES} \
             AND (? IS NULL OR user_id = ?)"
        ))
        .bind(order_id.raw() as i64)
        .bind(user_id)
        .bind(user_id)
        .fetch_optional(self.inventory())
        .await?;
        Ok(found.is_some())
    }
}

/// The order the key names, if it names one still: how it stands. A key
/// older than its TTL names nothing any more (as in Redis), and is freed.
async fn earlier_order(tx: &mut Transaction<'_, MySql>, req: &TakeRequest<'_>) -> Result<Option<Take>, sqlx::Error> {
    let row: Option<(FallbackRow, String, bool, bool)> = sqlx::query_as(&format!(
        "SELECT {READ_COLUMNS}, state, {YOUNG}, taken_at >= NOW(3) - INTERVAL ? SECOND \
         FROM fallback_orders WHERE sku = ? AND live_key = ? FOR UPDATE"
    ))
    .bind(req.in_flight_ms * 1_000)
    .bind(req.idempotency_ttl_secs)
    .bind(req.sku)
    .bind(req.idempotency_key)
    .fetch_optional(&mut **tx)
    .await?
    .map(|(a, b, c, d, e, f, g, h, i, j, state, young, live)| ((a, b, c, d, e, f, g, h, i, j), state, young, live));
    let Some((row, state, young, live)) = row else {
        return Ok(None);
    };
    let order = fallback_order(row);
    if !live {
        sqlx::query("UPDATE fallback_orders SET live_key = NULL WHERE order_id = ?")
            .bind(order.order_id.raw() as i64)
            .execute(&mut **tx)
            .await?;
        return Ok(None);
    }
    let earlier = match state.as_str() {
        _ if order.accepted && state != "duplicate" => Earlier::Accepted,
        "reserved" if young => Earlier::InFlight,
        "reserved" => Earlier::Unacknowledged,
        _ => Earlier::InRedis,
    };
    Ok(Some(Take::Existing(order, earlier)))
}

impl ShardPools {
    /// Ends an order in the database if `condition` (SQL on its row, with
    /// `bind` for its one `?`, if any) holds: `state`, its key freed when
    /// dropped, its units back in the share. The share's row is locked
    /// first, as a take locks it, so the two never wait on each other.
    async fn end_in_database(
        &self,
        order_id: OrderId,
        condition: &str,
        bind: Option<u64>,
        state: &str,
    ) -> Result<bool, sqlx::Error> {
        let id = order_id.raw() as i64;
        let sku: Option<(String,)> =
            sqlx::query_as("SELECT CONVERT(sku USING utf8mb4) FROM fallback_orders WHERE order_id = ?")
                .bind(id)
                .fetch_optional(self.inventory())
                .await?;
        let Some((sku,)) = sku else {
            return Ok(false);
        };
        let mut tx = self.inventory().begin().await?;
        locked_share(&mut tx, &sku).await?;
        let sql = format!("SELECT qty FROM fallback_orders WHERE order_id = ? AND {condition} FOR UPDATE");
        let mut select = sqlx::query_as::<_, (u32,)>(&sql).bind(id);
        if let Some(bind) = bind {
            select = select.bind(bind);
        }
        let Some((qty,)) = select.fetch_optional(&mut *tx).await? else {
            return Ok(false);
        };
        let key = if state == "dropped" { "NULL" } else { "live_key" };
        sqlx::query(&format!("UPDATE fallback_orders SET state = ?, live_key = {key} WHERE order_id = ?"))
            .bind(state)
            .bind(id)
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
}
