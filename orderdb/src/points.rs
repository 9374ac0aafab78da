//! Member points: a buyer's balance, granted by an operator, spent by a
//! checkout on its items (`points_spent`, one row per item), and given back
//! as items are cancelled or returned. Every move of the balance is in one
//! transaction with the row that records it, and each is made to a target
//! (what should be back by now), so a redone move changes nothing.

use chrono::{DateTime, Utc};
use order::id::OrderId;
use sqlx::{MySql, Transaction};

use crate::ShardPools;

/// A checkout's spend, as it came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// Taken from the balance now, or by an earlier try of the same checkout.
    Done,
    /// The balance holds fewer points than the checkout spends.
    Short { balance: u64 },
}

/// How many of an item's points should be back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Back {
    /// All of them: the item was cancelled, or refunded whole.
    All,
    /// Those of `units` of its `qty` units (returned so far, this return
    /// included); all of them once every unit is back.
    Units { units: u32, qty: u32 },
}

impl ShardPools {
    /// The buyer's balance (0 if never granted any).
    pub async fn points_balance(&self, user_id: u64) -> Result<u64, sqlx::Error> {
        let balance: Option<(u64,)> = sqlx::query_as("SELECT balance FROM member_points WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(self.for_user(user_id))
            .await?;
        Ok(balance.map_or(0, |(balance,)| balance))
    }

    /// Grants `points` to the buyer under `grant_id`, once: a repeat of the
    /// id grants nothing more. The balance after it, and whether it was new.
    pub async fn grant_points(&self, user_id: u64, grant_id: &str, points: u64) -> Result<(u64, bool), sqlx::Error> {
        let mut tx = self.for_user(user_id).begin().await?;
        let granted =
            sqlx::query("INSERT IGNORE INTO points_grants (user_id, grant_id, points, at) VALUES (?, ?, ?, ?)")
                .bind(user_id)
                .bind(grant_id)
                .bind(points)
                .bind(Utc::now().naive_utc())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        if granted {
            credit(&mut tx, user_id, points).await?;
        }
        let balance = locked_balance(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok((balance, granted))
    }

    /// Takes the points checkout `parent` spends on its `items` (order id,
    /// points) from the buyer's balance, once: an earlier try of the same
    /// checkout took them already. Under the balance's row lock, so
    /// concurrent checkouts of one buyer never spend more than it holds.
    pub async fn spend_points(
        &self,
        user_id: u64,
        parent: OrderId,
        items: &[(OrderId, u64)],
    ) -> Result<Spent, sqlx::Error> {
        let total: u64 = items.iter().map(|(_, points)| points).sum();
        let mut tx = self.for_user(user_id).begin().await?;
        let balance = locked_balance(&mut tx, user_id).await?;
        let (spent_before,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM points_spent WHERE parent = ?")
            .bind(parent.raw() as i64)
            .fetch_one(&mut *tx)
            .await?;
        if spent_before > 0 {
            return Ok(Spent::Done);
        }
        if balance < total {
            return Ok(Spent::Short { balance });
        }
        sqlx::query("UPDATE member_points SET balance = balance - ? WHERE user_id = ?")
            .bind(total)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let now = Utc::now().naive_utc();
        for (order_id, points) in items.iter().filter(|(_, points)| *points > 0) {
            sqlx::query(
                "INSERT INTO points_spent (order_id, parent, user_id, points, spent_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(order_id.raw() as i64)
            .bind(parent.raw() as i64)
            .bind(user_id)
            .bind(points)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Spent::Done)
    }

    /// Gives back every point spent on `items` of the buyer's that nothing
    /// holds any more (a refused checkout's, or items no order row names:
    /// one that has a row by now keeps its points, as its moves decide);
    /// the points given back now.
    pub async fn give_back_points(&self, user_id: u64, items: &[OrderId]) -> Result<u64, sqlx::Error> {
        let mut tx = self.for_user(user_id).begin().await?;
        // The balance first, as a spend takes it: the two never wait on each other's locks.
        locked_balance(&mut tx, user_id).await?;
        let mut back = 0;
        for item in items {
            let row: Option<(i64,)> =
                sqlx::query_as("SELECT order_id FROM orders WHERE order_id = ? LOCK IN SHARE MODE")
                    .bind(item.raw() as i64)
                    .fetch_optional(&mut *tx)
                    .await?;
            if row.is_none() {
                back += points_back(&mut tx, *item, Back::All).await?;
            }
        }
        tx.commit().await?;
        Ok(back)
    }

    /// Items of shard `shard` whose points were spent in `spent` and are
    /// not all back, though no order row names them: their checkout never
    /// got as far as MySQL (its request died, or its outcome stayed unknown
    /// and nothing tried its units). At most `limit`, as (buyer, item).
    pub async fn points_of_lost_items(
        &self,
        shard: usize,
        spent: std::ops::Range<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<(u64, OrderId)>, sqlx::Error> {
        let rows: Vec<(u64, i64)> = sqlx::query_as(
            "SELECT p.user_id, p.order_id FROM points_spent p LEFT JOIN orders o ON o.order_id = p.order_id \
             WHERE p.spent_at >= ? AND p.spent_at < ? AND p.returned < p.points AND o.order_id IS NULL LIMIT ?",
        )
        .bind(spent.start.naive_utc())
        .bind(spent.end.naive_utc())
        .bind(limit)
        .fetch_all(&self.pools[shard])
        .await?;
        Ok(rows.into_iter().map(|(user_id, order_id)| (user_id, OrderId::from_raw(order_id as u64))).collect())
    }
}

/// Brings the points back on item `order_id` up to `back`, in `tx`: the
/// points given back now (0 if they were already, or none were spent on it).
pub(crate) async fn points_back(
    tx: &mut Transaction<'_, MySql>,
    order_id: OrderId,
    back: Back,
) -> Result<u64, sqlx::Error> {
    // Most orders spent none: a plain read says so without a gap lock (the
    // row, if any, was written before the order could move).
    let spent: Option<(i64,)> = sqlx::query_as("SELECT order_id FROM points_spent WHERE order_id = ?")
        .bind(order_id.raw() as i64)
        .fetch_optional(&mut **tx)
        .await?;
    if spent.is_none() {
        return Ok(0);
    }
    let (user_id, points, returned): (u64, u64, u64) =
        sqlx::query_as("SELECT user_id, points, returned FROM points_spent WHERE order_id = ? FOR UPDATE")
            .bind(order_id.raw() as i64)
            .fetch_one(&mut **tx)
            .await?;
    let target = match back {
        Back::Units { units, qty } if units < qty && qty > 0 => points * u64::from(units) / u64::from(qty),
        Back::All | Back::Units { .. } => points,
    };
    if target <= returned {
        return Ok(0);
    }
    sqlx::query("UPDATE points_spent SET returned = ? WHERE order_id = ?")
        .bind(target)
        .bind(order_id.raw() as i64)
        .execute(&mut **tx)
        .await?;
    credit(tx, user_id, target - returned).await?;
    Ok(target - returned)
}

async fn credit(tx: &mut Transaction<'_, MySql>, user_id: u64, points: u64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO member_points (user_id, balance) VALUES (?, ?) ON DUPLICATE KEY UPDATE balance = balance + ?",
    )
    .bind(user_id)
    .bind(points)
    .bind(points)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The balance, its row locked (created at 0 if the buyer has none, so
/// two first spends still meet on one lock). The upsert takes the row's
/// exclusive lock at once: an `INSERT IGNORE` would take a shared one, and
/// two spends upgrading theirs would deadlock.
async fn locked_balance(tx: &mut Transaction<'_, MySql>, user_id: u64) -> Result<u64, sqlx::Error> {
    sqlx::query("INSERT INTO member_points (user_id, balance) VALUES (?, 0) ON DUPLICATE KEY UPDATE balance = balance")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    let (balance,): (u64,) = sqlx::query_as("SELECT balance FROM member_points WHERE user_id = ? FOR UPDATE")
        .bind(user_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(balance)
}
