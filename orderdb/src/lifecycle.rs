//! Moves of an order that start in MySQL (fulfilment, cancellation after
//! payment, auto-completion): the state machine's table decides, then one
//! transaction in the order's shard holds the conditional update, its
//! history row, any refund row and the event in the outbox. The settler's
//! relay sends the outbox to Kafka ([`ShardPools::outbox`]).

use chrono::{DateTime, NaiveDateTime, Utc};
use order::event::{CancelReason, OrderCreated, OrderEvent, OrderStatusChanged, Refund, Shipment};
use order::id::OrderId;
use order::lifecycle::{self, Action, Actor, Effect, Refused};
use order::status::OrderStatus;
use serde::Serialize;
use sqlx::{MySql, Transaction};

use crate::orders::status;
use crate::refunds::{record_refund, NewRefund};
use crate::shards::ShardPools;

/// A move asked for.
#[derive(Debug, Clone)]
pub struct Move {
    pub order_id: OrderId,
    pub action: Action,
    pub actor: Actor,
    /// The buyer it must belong to, for a buyer's move: anyone else's order
    /// is answered as unknown.
    pub owner: Option<u64>,
    /// The parcel, for `ship`.
    pub shipment: Option<Shipment>,
    /// The warehouse intercepted the order: a cancellation of a pushed
    /// order is made only then.
    pub intercepted: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug)]
pub enum Moved {
    Done(Box<OrderStatusChanged>),
    Refused(Refused),
    /// No such order (or not the owner's).
    Unknown,
    /// The order was pushed to the warehouse since the caller read it: the
    /// warehouse must intercept it before it can be cancelled.
    NeedsInterception,
}

/// A row of an order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub cause: String,
    pub at: DateTime<Utc>,
}

/// An event waiting in a shard's outbox.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub id: i64,
    pub order_id: i64,
    pub user_id: u64,
    pub payload: Vec<u8>,
}

/// An order as the lifecycle reads it, locked for its move.
struct Locked {
    order: OrderCreated,
    status: OrderStatus,
    payment_id: Option<String>,
}

impl ShardPools {
    /// The status of the order now, for a caller that must act before the
    /// move (the warehouse's interception); the move itself checks again.
    pub async fn status_of(&self, order_id: OrderId, owner: Option<u64>) -> Result<Option<OrderStatus>, sqlx::Error> {
        let row: Option<(u64, String)> = sqlx::query_as("SELECT user_id, status FROM orders WHERE order_id = ?")
            .bind(order_id.raw() as i64)
            .fetch_optional(self.for_order(order_id))
            .await?;
        match row {
            Some((user_id, name)) if owner.is_none_or(|owner| owner == user_id) => Ok(Some(status(&name)?)),
            _ => Ok(None),
        }
    }

    /// Makes `request` if the table allows it from the order's status, in
    /// one transaction; decided once however many ask at the same time.
    pub async fn transition(&self, request: &Move) -> Result<Moved, sqlx::Error> {
        let mut tx = self.for_order(request.order_id).begin().await?;
        let moved = transition_in(&mut tx, request).await?;
        if matches!(moved, Moved::Done(_)) {
            tx.commit().await?;
        }
        Ok(moved)
    }

    /// The order's moves, oldest first.
    pub async fn history(&self, order_id: OrderId) -> Result<Vec<HistoryEntry>, sqlx::Error> {
        type Row = (Option<String>, String, Option<String>, Option<String>, String, NaiveDateTime);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT from_status, to_status, action, actor, cause, at FROM order_status_history \
             WHERE order_id = ? ORDER BY id",
        )
        .bind(order_id.raw() as i64)
        .fetch_all(self.for_order(order_id))
        .await?;
        rows.into_iter()
            .map(|(from, to, action, actor, cause, at)| {
                Ok(HistoryEntry {
                    from: from.as_deref().map(status).transpose()?,
                    to: status(&to)?,
                    action,
                    actor,
                    cause,
                    at: at.and_utc(),
                })
            })
            .collect()
    }

    /// Shipped orders of shard `shard` not confirmed since before `cutoff`,
    /// at most `limit`: the sweeper completes them.
    pub async fn shipped_before(
        &self,
        shard: usize,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OrderId>, sqlx::Error> {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT order_id FROM orders WHERE status = 'SHIPPED' AND shipped_at < ? LIMIT ?")
                .bind(cutoff.naive_utc())
                .bind(limit)
                .fetch_all(&self.pools[shard])
                .await?;
        Ok(rows.into_iter().map(|(id,)| OrderId::from_raw(id as u64)).collect())
    }

    /// The oldest `limit` events in shard `shard`'s outbox.
    pub async fn outbox(&self, shard: usize, limit: u32) -> Result<Vec<OutboxEntry>, sqlx::Error> {
        let rows: Vec<(i64, i64, u64, Vec<u8>)> =
            sqlx::query_as("SELECT id, order_id, user_id, payload FROM order_outbox ORDER BY id LIMIT ?")
                .bind(limit)
                .fetch_all(&self.pools[shard])
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, order_id, user_id, payload)| OutboxEntry { id, order_id, user_id, payload })
            .collect())
    }

    /// Drops outbox entries whose events the broker acknowledged.
    pub async fn outbox_sent(&self, shard: usize, ids: &[i64]) -> Result<(), sqlx::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut delete = sqlx::QueryBuilder::new("DELETE FROM order_outbox WHERE id IN (");
        let mut list = delete.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        delete.push(")");
        delete.build().execute(&self.pools[shard]).await?;
        Ok(())
    }
}

/// [`ShardPools::transition`] inside `tx`, which the caller commits (with
/// more writes of its own) if the move was made, and drops otherwise.
pub(crate) async fn transition_in(tx: &mut Transaction<'_, MySql>, request: &Move) -> Result<Moved, sqlx::Error> {
    let Some(locked) = lock(tx, request.order_id).await? else { return Ok(Moved::Unknown) };
    if request.owner.is_some_and(|owner| owner != locked.order.user_id) {
        return Ok(Moved::Unknown);
    }
    let transition = match lifecycle::next(locked.status, request.action, request.actor) {
        Ok(transition) => transition,
        Err(refused) => return Ok(Moved::Refused(refused)),
    };
    if transition.effect == Effect::InterceptThenRefund && !request.intercepted {
        return Ok(Moved::NeedsInterception);
    }
    let at = request.at.naive_utc();
    let order_id = request.order_id.raw() as i64;
    let (set, value): (&str, Option<String>) = match transition.to {
        OrderStatus::InWarehouse => ("pushed_at = ?", None),
        OrderStatus::Shipped => ("shipped_at = ?", None),
        OrderStatus::Completed => ("completed_at = ?", None),
        OrderStatus::Closed => ("closed_at = ?", None),
        OrderStatus::Cancelled => {
            ("cancelled_at = ?, cancel_reason = ?", Some(CancelReason::AfterPayment.as_str().into()))
        }
        other => unreachable!("no move into {other} starts in MySQL"),
    };
    let statement = format!("UPDATE orders SET status = ?, {set} WHERE order_id = ? AND status = ?");
    let mut update = sqlx::query(&statement).bind(transition.to.as_str()).bind(at);
    if let Some(value) = value {
        update = update.bind(value);
    }
    update.bind(order_id).bind(transition.from.as_str()).execute(&mut **tx).await?;
    if let Some(shipment) = &request.shipment {
        sqlx::query("UPDATE orders SET carrier = ?, tracking_no = ? WHERE order_id = ?")
            .bind(&shipment.carrier)
            .bind(&shipment.tracking_no)
            .bind(order_id)
            .execute(&mut **tx)
            .await?;
    }
    let cause = format!("{} by {}", request.action.as_str(), request.actor.as_str());
    history(tx, order_id, Some(transition.from), transition.to, Some((request.action, request.actor)), &cause, at)
        .await?;
    let refund = match (transition.effect, &locked.payment_id) {
        (Effect::None, _) => None,
        (_, Some(payment_id)) => {
            Some(Refund { payment_id: payment_id.clone(), amount_cents: locked.order.amount_cents })
        }
        (_, None) => {
            return Err(sqlx::Error::Decode(format!("paid order {} has no payment id", request.order_id).into()));
        }
    };
    if let Some(refund) = &refund {
        let new = NewRefund {
            order_id: request.order_id,
            user_id: locked.order.user_id,
            sku: &locked.order.sku,
            payment_id: &refund.payment_id,
            amount_cents: refund.amount_cents,
            cause: "cancel",
            reason: "cancelled after payment",
            at,
        };
        record_refund(tx, &new).await?;
    }
    let changed = OrderStatusChanged {
        order: locked.order,
        from: transition.from,
        to: transition.to,
        action: request.action,
        actor: request.actor,
        shipment: request.shipment.clone(),
        refund,
        at: request.at,
    };
    let event = OrderEvent::OrderStatusChanged(changed.clone());
    sqlx::query("INSERT INTO order_outbox (order_id, user_id, payload, created_at) VALUES (?, ?, ?, ?)")
        .bind(order_id)
        .bind(changed.order.user_id)
        .bind(event.encode())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(Moved::Done(Box::new(changed)))
}

async fn lock(tx: &mut Transaction<'_, MySql>, order_id: OrderId) -> Result<Option<Locked>, sqlx::Error> {
    type Row = (u64, String, u32, i64, String, String, NaiveDateTime, NaiveDateTime, i64, Option<String>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT user_id, sku, qty, amount_cents, status, idempotency_key, created_at, pay_by, sale_generation, \
         payment_id FROM orders WHERE order_id = ? FOR UPDATE",
    )
    .bind(order_id.raw() as i64)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((user_id, sku, qty, amount_cents, name, idempotency_key, created_at, pay_by, sale_generation, payment_id)) =
        row
    else {
        return Ok(None);
    };
    Ok(Some(Locked {
        order: OrderCreated {
            order_id,
            user_id,
            sku,
            qty,
            amount_cents,
            idempotency_key,
            created_at: created_at.and_utc(),
            pay_by: pay_by.and_utc(),
            sale_generation,
        },
        status: status(&name)?,
        payment_id,
    }))
}

/// One row of an order's history.
pub(crate) async fn history(
    tx: &mut Transaction<'_, MySql>,
    order_id: i64,
    from: Option<OrderStatus>,
    to: OrderStatus,
    by: Option<(Action, Actor)>,
    cause: &str,
    at: NaiveDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_status_history (order_id, from_status, to_status, action, actor, cause, at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(order_id)
    .bind(from.map(OrderStatus::as_str))
    .bind(to.as_str())
    .bind(by.map(|(action, _)| action.as_str()))
    .bind(by.map(|(_, actor)| actor.as_str()))
    .bind(cause)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
