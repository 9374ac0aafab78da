//! An ordinary sale's database share (`order::fallback`), in the first
//! shard (the inventory database): the units Redis does not hold, sold
//! only while Redis cannot be reached. The orders taken from it are in
//! [`crate::fallback_orders`].

use chrono::NaiveDateTime;
use order::sale::SaleWindow;
use sqlx::mysql::MySqlPool;
use sqlx::{MySql, Transaction};

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

/// What taking a share off sale did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suspended {
    /// Off sale; the share it had, if any.
    Off(Option<DatabaseShare>),
    /// Not: this many orders taken from it wait for Redis.
    Pending(i64),
}

/// The states of an order Redis has not adopted yet (see the migration).
pub(crate) const PENDING_STATES: &str = "('reserved', 'accepted', 'adopting')";

fn window_at(window: SaleWindow) -> (Option<NaiveDateTime>, Option<NaiveDateTime>) {
    (window.starts_at.map(|at| at.naive_utc()), window.ends_at.map(|at| at.naive_utc()))
}

impl ShardPools {
    pub(crate) fn inventory(&self) -> &MySqlPool {
        &self.pools[0]
    }

    /// Takes `sku`'s share off sale before its sale is replaced, unless
    /// orders taken from it still wait for Redis; with the share it had, to
    /// put back if the replace does not happen. With no row, no fallback
    /// order can be taken while Redis is loaded.
    pub async fn suspend_database_share(&self, sku: &str) -> Result<Suspended, sqlx::Error> {
        let mut tx = self.inventory().begin().await?;
        let previous = locked_share(&mut tx, sku).await?;
        let pending = pending_count(&mut tx, sku).await?;
        if pending > 0 {
            return Ok(Suspended::Pending(pending));
        }
        sqlx::query("DELETE FROM inventory WHERE sku = ?").bind(sku).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Suspended::Off(previous))
    }

    /// Puts `sku`'s share on sale (`None`: it has none).
    pub async fn set_database_share(&self, sku: &str, share: Option<&DatabaseShare>) -> Result<(), sqlx::Error> {
        let Some(share) = share else {
            sqlx::query("DELETE FROM inventory WHERE sku = ?").bind(sku).execute(self.inventory()).await?;
            return Ok(());
        };
        let (starts_at, ends_at) = window_at(share.window);
        sqlx::query(
            "REPLACE INTO inventory (sku, units, per_user_limit, price_cents, starts_at, ends_at, sale_generation) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(sku)
        .bind(share.units)
        .bind(share.per_user_limit)
        .bind(share.price_cents)
        .bind(starts_at)
        .bind(ends_at)
        .bind(share.sale_generation)
        .execute(self.inventory())
        .await?;
        Ok(())
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
        let (pending_orders,): (i64,) = sqlx::query_as(&pending_query()).bind(sku).fetch_one(self.inventory()).await?;
        Ok(Some(ShareStatus { units, pending_orders }))
    }

    /// Whether `sku` has a database share: a plain read, no lock, so a
    /// flash crowd asking about a flash SKU locks nothing.
    pub async fn has_database_share(&self, sku: &str) -> Result<bool, sqlx::Error> {
        let found: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM inventory WHERE sku = ?").bind(sku).fetch_optional(self.inventory()).await?;
        Ok(found.is_some())
    }
}

/// The columns of a [`DatabaseShare`], as [`ShareRow`] reads them.
type ShareRow = (i64, i64, i64, Option<NaiveDateTime>, Option<NaiveDateTime>, i64);

/// `sku`'s share, its row locked for the rest of `tx`.
pub(crate) async fn locked_share(
    tx: &mut Transaction<'_, MySql>,
    sku: &str,
) -> Result<Option<DatabaseShare>, sqlx::Error> {
    let row: Option<ShareRow> = sqlx::query_as(
        "SELECT units, per_user_limit, price_cents, starts_at, ends_at, sale_generation \
         FROM inventory WHERE sku = ? FOR UPDATE",
    )
    .bind(sku)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(units, per_user_limit, price_cents, starts_at, ends_at, sale_generation)| DatabaseShare {
        units,
        per_user_limit,
        price_cents,
        window: SaleWindow { starts_at: starts_at.map(|at| at.and_utc()), ends_at: ends_at.map(|at| at.and_utc()) },
        sale_generation,
    }))
}

fn pending_query() -> String {
    format!("SELECT COUNT(*) FROM fallback_orders WHERE sku = ? AND state IN {PENDING_STATES}")
}

async fn pending_count(tx: &mut Transaction<'_, MySql>, sku: &str) -> Result<i64, sqlx::Error> {
    let (pending,): (i64,) = sqlx::query_as(&pending_query()).bind(sku).fetch_one(&mut **tx).await?;
    Ok(pending)
}
