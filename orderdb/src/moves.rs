//! The moves of an order in its shard. One function writes every move
//! ([`step`]): the conditional update of the status, the status's time
//! column (from [`ENTERED_AT`]), the columns the move sets, its history row
//! and, for a move made in MySQL, its event in the outbox. The events the
//! settler applies ([`crate::transitions`]) and the moves asked for here
//! ([`ShardPools::transition`]: fulfilment, cancellation after payment,
//! auto-completion, an after-sale's cancellation or closing) both go
//! through it; the state machine's table decides each one before.

use chrono::{DateTime, NaiveDateTime, Utc};
use order::event::{CancelReason, OrderCreated, OrderEvent, OrderStatusChanged, Refund, Shipment};
use order::id::OrderId;
use order::lifecycle::{self, Action, Actor, Effect, Refused};
use order::status::OrderStatus;
use serde::Serialize;
use sqlx::{MySql, QueryBuilder, Transaction};

use crate::orders::status;
use crate::outbox;
use crate::points::{points_back, Back};
use crate::refunds::{record_refund, NewRefund};
use crate::shards::ShardPools;

/// The column each status stamps with the time an order entered it.
pub const ENTERED_AT: [(OrderStatus, &str); 6] = [
    (OrderStatus::Paid, "paid_at"),
    (OrderStatus::InWarehouse, "pushed_at"),
    (OrderStatus::Shipped, "shipped_at"),
    (OrderStatus::Completed, "completed_at"),
    (OrderStatus::Cancelled, "cancelled_at"),
    (OrderStatus::Closed, "closed_at"),
];

/// One move of the table, applied to one order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step<'a> {
    pub order_id: i64,
    /// The status the order must be in; `None` for an order just inserted
    /// in `to` (its history row then has no `from`).
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    pub by: (Action, Actor),
    pub cause: &'a str,
    pub at: NaiveDateTime,
    /// Columns the move sets besides the status and its time (payment id,
    /// cancel reason, parcel).
    pub columns: &'a [(&'static str, String)],
    /// The event announcing a move made in MySQL, for the outbox.
    pub announce: Option<&'a OrderEvent>,
}

/// Applies `step` in `tx`; false (and nothing written) when the order was
/// not in `step.from`: a replay, or the loser of a race.
pub(crate) async fn step(tx: &mut Transaction<'_, MySql>, step: &Step<'_>) -> Result<bool, sqlx::Error> {
    let mut update = QueryBuilder::<MySql>::new("UPDATE orders SET status = ");
    update.push_bind(step.to.as_str());
    if let Some((_, column)) = ENTERED_AT.iter().find(|(status, _)| *status == step.to) {
        update.push(format_args!(", {column} = ")).push_bind(step.at);
    }
    for (column, value) in step.columns {
        update.push(format_args!(", {column} = ")).push_bind(value);
    }
    update.push(" WHERE order_id = ").push_bind(step.order_id);
    if let Some(from) = step.from {
        update.push(" AND status = ").push_bind(from.as_str());
    }
    let updated = update.build().execute(&mut **tx).await?.rows_affected();
    if step.from.is_some() && updated == 0 {
        return Ok(false);
    }
    history(tx, step.order_id, step.from, step.to, step.by, step.cause, step.at).await?;
    if let Some(event) = step.announce {
        outbox::put(tx, step.order_id, event.user_id(), event, step.at).await?;
    }
    Ok(true)
}

/// The columns a move into `to` sets besides its time: a cancellation's
/// reason (a move made in MySQL cancels a paid order), a shipment's parcel.
pub(crate) fn columns_of(to: OrderStatus, shipment: Option<&Shipment>) -> Vec<(&'static str, String)> {
    let mut columns = Vec::new();
    if to == OrderStatus::Cancelled {
        columns.push(("cancel_reason", CancelReason::AfterPayment.as_str().to_owned()));
    }
    if let Some(shipment) = shipment {
        columns.push(("carrier", shipment.carrier.clone()));
        columns.push(("tracking_no", shipment.tracking_no.clone()));
    }
    columns
}

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

/// An order as a move reads it, locked for the move.
struct Locked {
    order: OrderCreated,
    status: OrderStatus,
    payment_id: Option<String>,
    /// The channel the payment came through (`""`: the default).
    payment_channel: String,
}

impl ShardPools {
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
            channel: &locked.payment_channel,
            amount_cents: refund.amount_cents,
            cause: "cancel",
            reason: "cancelled after payment",
            at,
        };
        record_refund(tx, &new).await?;
        // Refunded whole: every point spent on it goes back too.
        points_back(tx, request.order_id, Back::All).await?;
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
    let cause = format!("{} by {}", request.action.as_str(), request.actor.as_str());
    let columns = columns_of(transition.to, request.shipment.as_ref());
    let made = Step {
        order_id: request.order_id.raw() as i64,
        from: Some(transition.from),
        to: transition.to,
        by: (request.action, request.actor),
        cause: &cause,
        at,
        columns: &columns,
        announce: Some(&event),
    };
    // The row is locked in `transition.from`: the step is made.
    step(tx, &made).await?;
    Ok(Moved::Done(Box::new(changed)))
}

async fn lock(tx: &mut Transaction<'_, MySql>, order_id: OrderId) -> Result<Option<Locked>, sqlx::Error> {
    type Row = (
        u64,
        String,
        u32,
        i64,
        String,
        String,
        NaiveDateTime,
        NaiveDateTime,
        i64,
        Option<String>,
        String,
        Option<String>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT user_id, sku, qty, amount_cents, status, idempotency_key, created_at, pay_by, sale_generation, \
         payment_id, payment_channel, warehouse FROM orders WHERE order_id = ? FOR UPDATE",
    )
    .bind(order_id.raw() as i64)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((
        user_id,
        sku,
        qty,
        amount_cents,
        name,
        idempotency_key,
        created_at,
        pay_by,
        sale_generation,
        payment_id,
        payment_channel,
        warehouse,
    )) = row
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
            warehouse,
            channel: None,
        },
        status: status(&name)?,
        payment_id,
        payment_channel,
    }))
}

/// One row of an order's history.
async fn history(
    tx: &mut Transaction<'_, MySql>,
    order_id: i64,
    from: Option<OrderStatus>,
    to: OrderStatus,
    (action, actor): (Action, Actor),
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
    .bind(action.as_str())
    .bind(actor.as_str())
    .bind(cause)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
