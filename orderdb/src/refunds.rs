//! Refunds: money going back through the payment channel.
//!
//! A refund row is written once, in the transaction that decided it (a
//! cancellation after payment, a payment no order could take), with a job
//! row. The settler's refund driver asks the channel for it, and asks
//! again (by lookup first) while its outcome is unknown; every attempt is
//! an appended `refund_attempts` row, never an edit of the refund. The
//! channel's signed notification, or a lookup, settles it once: the job is
//! DONE and `RefundCompleted` goes to the outbox. Out of attempts, the job
//! is STUCK until an operator retries it (`/admin/refunds`).

use chrono::{DateTime, NaiveDateTime, Utc};
use order::event::{OrderEvent, RefundCompleted};
use order::id::OrderId;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{MySql, Transaction};

use crate::shards::ShardPools;

/// The id of the refund of `payment_id` for `cause` (`cancel`, `payment`,
/// an after-sale id): the same inputs name the same refund, so a redone
/// insert finds the first. It names the order, so its shard.
pub fn refund_id(order_id: OrderId, payment_id: &str, cause: &str) -> String {
    let digest = Sha256::digest(format!("{payment_id}\n{cause}"));
    format!("rf{order_id}-{}", &hex::encode(digest)[..8])
}

/// The order a refund id names.
pub fn refund_order(refund_id: &str) -> Option<OrderId> {
    refund_id.strip_prefix("rf")?.split_once('-')?.0.parse().ok()
}

/// A refund to record.
#[derive(Debug, Clone)]
pub struct NewRefund<'a> {
    pub order_id: OrderId,
    pub user_id: u64,
    pub sku: &'a str,
    pub payment_id: &'a str,
    /// The channel the payment came through (`""`: the default).
    pub channel: &'a str,
    pub amount_cents: i64,
    /// What it refunds (part of its id).
    pub cause: &'a str,
    pub reason: &'a str,
    pub at: NaiveDateTime,
}

/// A refund with what became of it, for operators and buyers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundView {
    pub refund_id: String,
    pub order_id: OrderId,
    pub payment_id: String,
    pub amount_cents: i64,
    pub reason: String,
    /// PENDING, STUCK or DONE.
    pub state: String,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
}

/// A refund the driver should ask the channel about now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRefund {
    pub refund_id: String,
    pub order_id: OrderId,
    pub payment_id: String,
    /// The channel it goes back through (`""`: the default).
    pub channel: String,
    pub amount_cents: i64,
    /// Attempts before this one.
    pub attempts: u32,
}

/// How a notification or lookup's outcome was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Recorded now.
    Recorded,
    /// Done before (a second notification, a lookup that lost the race).
    AlreadyDone,
    /// No such refund here.
    Unknown,
}

/// Writes the refund and its job, once (a second insert of the same id is a
/// no-op). Never more than was paid: the refunds of one payment add up to
/// at most the order's amount when it is the order's own payment, else to
/// that payment's amount (the first refund of it asked for all of it); a
/// refund past that is not written (logged), as that money went back already.
pub(crate) async fn record_refund(
    tx: &mut Transaction<'_, MySql>,
    refund: &NewRefund<'_>,
) -> Result<String, sqlx::Error> {
    let refund_id = refund_id(refund.order_id, refund.payment_id, refund.cause);
    let order: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT amount_cents, payment_id FROM orders WHERE order_id = ? FOR UPDATE")
            .bind(refund.order_id.raw() as i64)
            .fetch_optional(&mut **tx)
            .await?;
    let (refunded, largest): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS SIGNED), CAST(COALESCE(MAX(amount_cents), 0) AS SIGNED) \
         FROM refunds WHERE order_id = ? AND payment_id = ? AND refund_id <> ?",
    )
    .bind(refund.order_id.raw() as i64)
    .bind(refund.payment_id)
    .bind(&refund_id)
    .fetch_one(&mut **tx)
    .await?;
    let paid = match order {
        Some((amount, Some(payment_id))) if payment_id == refund.payment_id => amount,
        _ => largest.max(refund.amount_cents),
    };
    if refunded + refund.amount_cents > paid {
        tracing::error!(
            refund_id,
            refunded,
            asked = refund.amount_cents,
            paid,
            "a refund past what the payment paid is not written: that money went back already"
        );
        return Ok(refund_id);
    }
    let inserted = sqlx::query(
        "INSERT IGNORE INTO refunds \
         (refund_id, order_id, payment_id, channel, user_id, sku, amount_cents, reason, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&refund_id)
    .bind(refund.order_id.raw() as i64)
    .bind(refund.payment_id)
    .bind(refund.channel)
    .bind(refund.user_id)
    .bind(refund.sku)
    .bind(refund.amount_cents)
    .bind(refund.reason)
    .bind(refund.at)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        sqlx::query("INSERT IGNORE INTO refund_jobs (refund_id, state, attempts, next_at) VALUES (?, 'PENDING', 0, ?)")
            .bind(&refund_id)
            .bind(refund.at)
            .execute(&mut **tx)
            .await?;
    }
    Ok(refund_id)
}

async fn attempt(
    tx: &mut Transaction<'_, MySql>,
    refund_id: &str,
    outcome: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let detail: String = detail.chars().take(255).collect();
    sqlx::query("INSERT INTO refund_attempts (refund_id, outcome, detail, at) VALUES (?, ?, ?, ?)")
        .bind(refund_id)
        .bind(outcome)
        .bind(detail)
        .bind(Utc::now().naive_utc())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl ShardPools {
    /// Moves a pending refund's next attempt to `next_at`, counting no attempt.
    pub async fn defer_refund(&self, refund_id: &str, next_at: DateTime<Utc>) -> Result<(), sqlx::Error> {
        let Some(order_id) = refund_order(refund_id) else { return Ok(()) };
        sqlx::query("UPDATE refund_jobs SET next_at = ? WHERE refund_id = ? AND state = 'PENDING'")
            .bind(next_at.naive_utc())
            .bind(refund_id)
            .execute(self.for_order(order_id))
            .await?;
        Ok(())
    }

    /// Up to `limit` pending refunds of shard `shard` whose next attempt is due.
    pub async fn due_refunds(&self, shard: usize, limit: u32) -> Result<Vec<DueRefund>, sqlx::Error> {
        let rows: Vec<(String, i64, String, String, i64, u32)> = sqlx::query_as(
            "SELECT j.refund_id, r.order_id, r.payment_id, r.channel, r.amount_cents, CAST(j.attempts AS UNSIGNED) \
             FROM refund_jobs j JOIN refunds r ON r.refund_id = j.refund_id \
             WHERE j.state = 'PENDING' AND j.next_at <= ? ORDER BY j.next_at LIMIT ?",
        )
        .bind(Utc::now().naive_utc())
        .bind(limit)
        .fetch_all(&self.pools[shard])
        .await?;
        Ok(rows
            .into_iter()
            .map(|(refund_id, order_id, payment_id, channel, amount_cents, attempts)| DueRefund {
                refund_id,
                order_id: OrderId::from_raw(order_id as u64),
                payment_id,
                channel,
                amount_cents,
                attempts,
            })
            .collect())
    }

    /// Takes the next attempt of a due refund, unless another driver took
    /// it first: its next attempt is due at `next_at`; past `max_attempts`
    /// it is STUCK instead (false).
    pub async fn claim_refund(
        &self,
        due: &DueRefund,
        next_at: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.for_order(due.order_id).begin().await?;
        if due.attempts >= max_attempts {
            let stuck = sqlx::query(
                "UPDATE refund_jobs SET state = 'STUCK' WHERE refund_id = ? AND state = 'PENDING' AND attempts = ?",
            )
            .bind(&due.refund_id)
            .bind(due.attempts)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if stuck == 1 {
                attempt(&mut tx, &due.refund_id, "STUCK", &format!("no outcome after {max_attempts} attempts")).await?;
            }
            tx.commit().await?;
            return Ok(false);
        }
        let claimed = sqlx::query(
            "UPDATE refund_jobs SET attempts = attempts + 1, next_at = ? \
             WHERE refund_id = ? AND state = 'PENDING' AND attempts = ?",
        )
        .bind(next_at.naive_utc())
        .bind(&due.refund_id)
        .bind(due.attempts)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(claimed == 1)
    }

    /// Appends what one attempt found (REQUESTED, FAILED, UNKNOWN).
    pub async fn refund_attempted(&self, refund_id: &str, outcome: &str, detail: &str) -> Result<(), sqlx::Error> {
        let Some(order_id) = refund_order(refund_id) else { return Ok(()) };
        let mut tx = self.for_order(order_id).begin().await?;
        attempt(&mut tx, refund_id, outcome, detail).await?;
        tx.commit().await
    }

    /// A channel says the refund succeeded (`succeeded`) or failed for
    /// good: recorded once. A success closes the job and puts
    /// `RefundCompleted` in the outbox; a failure makes the next attempt due
    /// now. Only the refund's own channel settles it: `channels` are the
    /// ids the refund may carry for the one that speaks (its id, and `""`
    /// if it is the default); another's refund is unknown to it.
    pub async fn refund_settled(
        &self,
        refund_id: &str,
        channels: &[&str],
        succeeded: bool,
        detail: &str,
    ) -> Result<Settled, sqlx::Error> {
        let Some(order_id) = refund_order(refund_id) else { return Ok(Settled::Unknown) };
        let mut tx = self.for_order(order_id).begin().await?;
        let job: Option<(String, String)> = sqlx::query_as(
            "SELECT j.state, r.channel FROM refund_jobs j JOIN refunds r ON r.refund_id = j.refund_id \
             WHERE j.refund_id = ? FOR UPDATE",
        )
        .bind(refund_id)
        .fetch_optional(&mut *tx)
        .await?;
        match job {
            Some((_, channel)) if !channels.contains(&channel.as_str()) => return Ok(Settled::Unknown),
            None => return Ok(Settled::Unknown),
            Some((state, _)) if state == "DONE" => return Ok(Settled::AlreadyDone),
            Some(_) => {}
        }
        let now = Utc::now();
        if !succeeded {
            attempt(&mut tx, refund_id, "FAILED", detail).await?;
            sqlx::query("UPDATE refund_jobs SET next_at = ? WHERE refund_id = ?")
                .bind(now.naive_utc())
                .bind(refund_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Settled::Recorded);
        }
        attempt(&mut tx, refund_id, "SUCCEEDED", detail).await?;
        sqlx::query("UPDATE refund_jobs SET state = 'DONE' WHERE refund_id = ?")
            .bind(refund_id)
            .execute(&mut *tx)
            .await?;
        let (user_id, sku, payment_id, amount_cents): (u64, String, String, i64) =
            sqlx::query_as("SELECT user_id, sku, payment_id, amount_cents FROM refunds WHERE refund_id = ?")
                .bind(refund_id)
                .fetch_one(&mut *tx)
                .await?;
        let event = OrderEvent::RefundCompleted(RefundCompleted {
            refund_id: refund_id.to_owned(),
            order_id,
            user_id,
            sku,
            payment_id,
            amount_cents,
            at: now,
        });
        sqlx::query("INSERT INTO order_outbox (order_id, user_id, payload, created_at) VALUES (?, ?, ?, ?)")
            .bind(order_id.raw() as i64)
            .bind(user_id)
            .bind(event.encode())
            .bind(now.naive_utc())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Settled::Recorded)
    }

    /// An operator's retry of a STUCK refund: pending again, attempts from
    /// zero, due now. False if it is not stuck.
    pub async fn retry_refund(&self, refund_id: &str, operator: &str) -> Result<bool, sqlx::Error> {
        let Some(order_id) = refund_order(refund_id) else { return Ok(false) };
        let mut tx = self.for_order(order_id).begin().await?;
        let retried = sqlx::query(
            "UPDATE refund_jobs SET state = 'PENDING', attempts = 0, next_at = ? WHERE refund_id = ? AND state = 'STUCK'",
        )
        .bind(Utc::now().naive_utc())
        .bind(refund_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if retried == 1 {
            attempt(&mut tx, refund_id, "RETRIED", &format!("by {operator}")).await?;
        }
        tx.commit().await?;
        Ok(retried == 1)
    }

    /// Refunds in `state` over every shard, oldest first, at most `limit` per shard.
    pub async fn refunds_in_state(&self, state: &str, limit: u32) -> Result<Vec<RefundView>, sqlx::Error> {
        let mut found = Vec::new();
        for pool in &self.pools {
            let rows = sqlx::query_as(&format!("{VIEW} WHERE j.state = ? ORDER BY r.created_at LIMIT ?"))
                .bind(state)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            found.extend(rows.into_iter().map(view));
        }
        Ok(found)
    }

    /// The refunds of one order, oldest first.
    pub async fn refunds_of(&self, order_id: OrderId) -> Result<Vec<RefundView>, sqlx::Error> {
        let rows = sqlx::query_as(&format!("{VIEW} WHERE r.order_id = ? ORDER BY r.created_at, r.refund_id"))
            .bind(order_id.raw() as i64)
            .fetch_all(self.for_order(order_id))
            .await?;
        Ok(rows.into_iter().map(view).collect())
    }
}

const VIEW: &str = "SELECT r.refund_id, r.order_id, r.payment_id, r.amount_cents, r.reason, j.state, \
                    CAST(j.attempts AS UNSIGNED), r.created_at FROM refunds r JOIN refund_jobs j ON j.refund_id = r.refund_id";

type ViewRow = (String, i64, String, i64, String, String, u32, NaiveDateTime);

fn view((refund_id, order_id, payment_id, amount_cents, reason, state, attempts, created_at): ViewRow) -> RefundView {
    RefundView {
        refund_id,
        order_id: OrderId::from_raw(order_id as u64),
        payment_id,
        amount_cents,
        reason,
        state,
        attempts,
        created_at: created_at.and_utc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_id_names_its_order_and_what_it_refunds() {
        let order_id = OrderId::from_raw(386_603_384_286_294_016);
        let id = refund_id(order_id, "pay_1", "cancel");
        assert_eq!(refund_order(&id), Some(order_id));
        assert_eq!(id, refund_id(order_id, "pay_1", "cancel"), "the same refund, the same id");
        assert_ne!(id, refund_id(order_id, "pay_1", "payment"));
        assert_ne!(id, refund_id(order_id, "pay_2", "cancel"));
        assert!(id.len() <= 40 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{id}");
        assert_eq!(refund_order("rfnope-1"), None);
    }
}
