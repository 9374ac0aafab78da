//! Applies the events that move an order on: paid, cancelled, refund
//! required, and the moves made in MySQL itself (`OrderStatusChanged`).
//! Each is a move of the state machine's table, made by [`crate::moves`]
//! (a conditional update with its history row) in its own transaction, so
//! a replayed or late event is a no-op and an order never moves backwards.
//!
//! An event for an order the shard has not seen (its `OrderCreated` was
//! never sent because the gateway died after reserving) is not dropped:
//! every event carries the whole order, so the order is inserted straight
//! into its final status, with a history row saying so.

use chrono::NaiveDateTime;
use order::event::{CancelReason, OrderCreated, OrderEvent, OrderReaddressed, OrderStatusChanged, RefundRequired};
use order::lifecycle::{self, Action, Actor};
use order::status::OrderStatus;
use sqlx::mysql::MySqlPool;

use crate::moves::{columns_of, step, Step};
use crate::orders::insert;
use crate::points::{points_back, Back};
use crate::refunds::{record_refund, NewRefund};

/// Applies one non-create event to the shard of its user; true if it
/// changed the shard (false for a replay, a loser of a race, or an event
/// recorded where it was decided).
pub async fn apply(pool: &MySqlPool, event: &OrderEvent) -> Result<bool, sqlx::Error> {
    match event {
        OrderEvent::OrderCreated(_) => Ok(false),
        OrderEvent::OrderPaid(paid) => {
            let change = Change {
                by: (Action::Pay, Actor::Channel),
                cause: format!("payment {}", paid.payment_id),
                at: paid.paid_at.naive_utc(),
                columns: vec![
                    ("payment_id", paid.payment_id.clone()),
                    ("payment_channel", paid.payment_channel.clone()),
                ],
                points_back: false,
            };
            move_order(pool, &paid.order, change).await
        }
        OrderEvent::OrderCancelled(cancelled) => {
            let by = match cancelled.reason {
                CancelReason::User | CancelReason::AfterPayment => (Action::Cancel, Actor::Buyer),
                CancelReason::Timeout
                | CancelReason::Unconfirmed
                | CancelReason::SoldOut
                | CancelReason::DuplicateKey => (Action::Expire, Actor::System),
            };
            let change = Change {
                by,
                cause: format!("cancelled: {}", cancelled.reason.as_str()),
                at: cancelled.cancelled_at.naive_utc(),
                columns: vec![("cancel_reason", cancelled.reason.as_str().to_owned())],
                points_back: true,
            };
            move_order(pool, &cancelled.order, change).await
        }
        OrderEvent::RefundRequired(refund) => refund_required(pool, refund).await,
        OrderEvent::OrderStatusChanged(changed) => replay(pool, changed).await,
        // Recorded where they were decided, in this shard.
        OrderEvent::RefundCompleted(_) | OrderEvent::AfterSaleChanged(_) => Ok(false),
        // Stored whole by `insert_checkout`.
        OrderEvent::CheckoutCreated(_) => Ok(false),
        OrderEvent::OrderReaddressed(readdressed) => readdress(pool, readdressed).await,
    }
}

/// The warehouse of an order awaiting payment, as its buyer's new region
/// put it. Whatever the order's status by now: its payment or cancellation
/// records the warehouse it ended in as well.
async fn readdress(pool: &MySqlPool, readdressed: &OrderReaddressed) -> Result<bool, sqlx::Error> {
    let Some(warehouse) = &readdressed.warehouse else {
        return Ok(false);
    };
    let updated = sqlx::query("UPDATE orders SET warehouse = ? WHERE order_id = ? AND status = 'PENDING_PAYMENT'")
        .bind(warehouse)
        .bind(readdressed.order_id.raw() as i64)
        .execute(pool)
        .await?;
    Ok(updated.rows_affected() > 0)
}

/// A move out of `PENDING_PAYMENT` and the columns it sets besides its time.
struct Change {
    by: (Action, Actor),
    cause: String,
    at: NaiveDateTime,
    /// The payment's id and channel, or the cancel reason.
    columns: Vec<(&'static str, String)>,
    /// Whether the member points spent on it go back (a cancellation).
    points_back: bool,
}

async fn move_order(pool: &MySqlPool, order: &OrderCreated, change: Change) -> Result<bool, sqlx::Error> {
    let (action, actor) = change.by;
    let to =
        lifecycle::next(OrderStatus::PendingPayment, action, actor).map_err(|refused| poison(refused.to_string()))?.to;
    let order_id = order.order_id.raw() as i64;
    // The warehouse the order ends in, which a change of region may have
    // moved it to since it was created.
    let mut columns = change.columns;
    if let Some(warehouse) = &order.warehouse {
        columns.push(("warehouse", warehouse.clone()));
    }
    let made = Step {
        order_id,
        from: Some(OrderStatus::PendingPayment),
        to,
        by: change.by,
        cause: &change.cause,
        at: change.at,
        columns: &columns,
        announce: None,
    };
    let mut tx = pool.begin().await?;
    let mut changed = step(&mut tx, &made).await?;
    if !changed {
        let known: Option<(String,)> = sqlx::query_as("SELECT status FROM orders WHERE order_id = ? FOR UPDATE")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            insert(&[order], to).build().execute(&mut *tx).await?;
            let cause = format!("{} (the order's creation was never seen)", change.cause);
            changed = step(&mut tx, &Step { from: None, cause: &cause, ..made }).await?;
        }
        // Otherwise the order has moved on already: a replay, or a loser of a race.
    }
    if changed && change.points_back {
        points_back(&mut tx, order.order_id, Back::All).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// An event naming a move the table refuses: it fails the same way on
/// every retry (the settler sets it aside), like a row the shard refuses.
fn poison(reason: String) -> sqlx::Error {
    sqlx::Error::Decode(reason.into())
}

/// A refund is its own row, once per payment, driven through the channel
/// like every other; the order is not touched.
async fn refund_required(pool: &MySqlPool, refund: &RefundRequired) -> Result<bool, sqlx::Error> {
    let new = NewRefund {
        order_id: refund.order_id,
        user_id: refund.user_id,
        sku: &refund.sku,
        payment_id: &refund.payment_id,
        channel: &refund.payment_channel,
        amount_cents: refund.amount_cents,
        cause: "payment",
        reason: &refund.reason,
        at: refund.at.naive_utc(),
    };
    let mut tx = pool.begin().await?;
    record_refund(&mut tx, &new).await?;
    tx.commit().await?;
    Ok(false)
}

/// A move made in MySQL (by this shard, or by another deployment's): made
/// here too unless the order is past it already. An order this shard does
/// not hold is left alone: the move was made where the order lives.
async fn replay(pool: &MySqlPool, changed: &OrderStatusChanged) -> Result<bool, sqlx::Error> {
    let allowed =
        lifecycle::next(changed.from, changed.action, changed.actor).map_err(|refused| poison(refused.to_string()))?;
    if allowed.to != changed.to {
        return Err(poison(format!("{:?} by {:?} leads to {}", changed.action, changed.actor, allowed.to)));
    }
    let cause = format!("{} by {} (replayed)", changed.action.as_str(), changed.actor.as_str());
    let columns = columns_of(changed.to, changed.shipment.as_ref());
    let made = Step {
        order_id: changed.order.order_id.raw() as i64,
        from: Some(changed.from),
        to: changed.to,
        by: (changed.action, changed.actor),
        cause: &cause,
        at: changed.at.naive_utc(),
        columns: &columns,
        announce: None,
    };
    let mut tx = pool.begin().await?;
    let moved = step(&mut tx, &made).await?;
    tx.commit().await?;
    Ok(moved)
}
