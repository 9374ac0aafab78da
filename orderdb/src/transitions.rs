//! Applies the events that move an order on: paid, cancelled, refund
//! required. Each is a conditional update (`WHERE status = 'PENDING_PAYMENT'`)
//! in its own transaction with its history row, so a replayed or late event
//! is a no-op and an order never moves backwards.
//!
//! An event for an order the shard has not seen (its `OrderCreated` was
//! never sent because the gateway died after reserving) is not dropped:
//! every event carries the whole order, so the order is inserted straight
//! into its final status, with a history row saying so.

use chrono::NaiveDateTime;
use order::event::{OrderCreated, OrderEvent, RefundRequired};
use order::status::OrderStatus;
use sqlx::mysql::MySqlPool;
use sqlx::{MySql, Transaction};

use crate::orders::insert;

/// Applies one non-create event to the shard of its user.
pub async fn apply(pool: &MySqlPool, event: &OrderEvent) -> Result<(), sqlx::Error> {
    match event {
        OrderEvent::OrderCreated(_) => Ok(()),
        OrderEvent::OrderPaid(paid) => {
            let change = Change {
                to: OrderStatus::Paid,
                cause: format!("payment {}", paid.payment_id),
                at: paid.paid_at.naive_utc(),
                set: "payment_id = ?, paid_at = ?",
                detail: paid.payment_id.clone(),
            };
            move_order(pool, &paid.order, &change).await
        }
        OrderEvent::OrderCancelled(cancelled) => {
            let change = Change {
                to: OrderStatus::Cancelled,
                cause: format!("cancelled: {}", cancelled.reason.as_str()),
                at: cancelled.cancelled_at.naive_utc(),
                set: "cancel_reason = ?, cancelled_at = ?",
                detail: cancelled.reason.as_str().to_owned(),
            };
            move_order(pool, &cancelled.order, &change).await
        }
        OrderEvent::RefundRequired(refund) => record_refund(pool, refund).await,
    }
}

/// A move out of `PENDING_PAYMENT`, with the two columns it sets.
struct Change {
    to: OrderStatus,
    cause: String,
    /// When it happened; also the value of the second column.
    at: NaiveDateTime,
    /// `detail_column = ?, time_column = ?`.
    set: &'static str,
    /// The value of the first column (payment id, cancel reason).
    detail: String,
}

async fn move_order(pool: &MySqlPool, order: &OrderCreated, change: &Change) -> Result<(), sqlx::Error> {
    let order_id = order.order_id.raw() as i64;
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(&format!(
        "UPDATE orders SET status = ?, {} WHERE order_id = ? AND status = 'PENDING_PAYMENT'",
        change.set
    ))
    .bind(change.to.as_str())
    .bind(&change.detail)
    .bind(change.at)
    .bind(order_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 1 {
        history(&mut tx, order_id, Some(OrderStatus::PendingPayment), change.to, &change.cause, change.at).await?;
    } else {
        let known: Option<(String,)> = sqlx::query_as("SELECT status FROM orders WHERE order_id = ? FOR UPDATE")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            insert_in_status(&mut tx, order, change).await?;
            let cause = format!("{} (the order's creation was never seen)", change.cause);
            history(&mut tx, order_id, None, change.to, &cause, change.at).await?;
        }
        // Otherwise the order has moved on already: a replay, or a loser of a race.
    }
    tx.commit().await
}

async fn insert_in_status(
    tx: &mut Transaction<'_, MySql>,
    order: &OrderCreated,
    change: &Change,
) -> Result<(), sqlx::Error> {
    insert(&[order], change.to).build().execute(&mut **tx).await?;
    sqlx::query(&format!("UPDATE orders SET {} WHERE order_id = ?", change.set))
        .bind(&change.detail)
        .bind(change.at)
        .bind(order.order_id.raw() as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn history(
    tx: &mut Transaction<'_, MySql>,
    order_id: i64,
    from: Option<OrderStatus>,
    to: OrderStatus,
    cause: &str,
    at: NaiveDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_status_history (order_id, from_status, to_status, cause, at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(order_id)
    .bind(from.map(OrderStatus::as_str))
    .bind(to.as_str())
    .bind(cause)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A refund is its own row, once per payment; the order is not touched.
async fn record_refund(pool: &MySqlPool, refund: &RefundRequired) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refunds (order_id, payment_id, user_id, sku, amount_cents, reason, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE order_id = order_id",
    )
    .bind(refund.order_id.raw() as i64)
    .bind(&refund.payment_id)
    .bind(refund.user_id)
    .bind(&refund.sku)
    .bind(refund.amount_cents)
    .bind(&refund.reason)
    .bind(refund.at.naive_utc())
    .execute(pool)
    .await?;
    Ok(())
}
