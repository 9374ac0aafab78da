//! After-sale requests in the buyer's shard: opened against a locked order,
//! moved by their own table (`order::after_sale`), each move in one
//! transaction with its history row and its event in the outbox. Reaching
//! AWAITING_REFUND refunds at once, in the same transaction: a refund before
//! shipment cancels the order (the order's own move, with its refund); a
//! return refunds its share of the order's amount as a row of its own,
//! and the last units returned close the order.

use chrono::{DateTime, NaiveDateTime, Utc};
use order::after_sale::{self, Action, Kind, Refused, Status};
use order::event::{AfterSaleChanged, OrderEvent, Refund};
use order::id::OrderId;
use order::lifecycle::{self, Actor};
use order::status::OrderStatus;
use serde::Serialize;
use sqlx::{MySql, Transaction};

use crate::moves::{transition_in, Move, Moved};
use crate::orders::status as order_status;
use crate::points::{points_back, Back};
use crate::refunds::{record_refund, refund_id, NewRefund};
use crate::shards::ShardPools;

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AfterSaleView {
    pub after_sale_id: OrderId,
    pub order_id: OrderId,
    pub user_id: u64,
    pub kind: Kind,
    pub qty: u32,
    pub reason: String,
    pub status: Status,
    pub return_address: Option<String>,
    pub reject_reason: Option<String>,
    pub refund_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A request the buyer makes.
#[derive(Debug, Clone)]
pub struct NewAfterSale {
    pub after_sale_id: OrderId,
    pub order_id: OrderId,
    pub owner: u64,
    pub kind: Kind,
    pub qty: u32,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug)]
pub enum Opened {
    Done(AfterSaleView),
    /// The order's status does not allow this kind of request.
    NotNow {
        status: OrderStatus,
    },
    /// More units than the order has left to return.
    TooMany {
        left: u32,
    },
    Unknown,
}

/// A move asked for.
#[derive(Debug, Clone)]
pub struct AfterSaleMove {
    pub after_sale_id: OrderId,
    pub action: Action,
    pub actor: Actor,
    /// Given on approval of a return or exchange.
    pub return_address: Option<String>,
    /// Given on rejection.
    pub reject_reason: Option<String>,
    /// The warehouse intercepted the order (a refund before shipment of a pushed order).
    pub intercepted: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug)]
pub enum AfterSaleMoved {
    Done(AfterSaleView),
    Refused(Refused),
    /// The request's move needs a move of the order that its table refuses.
    OrderRefused(lifecycle::Refused),
    Unknown,
    /// The order was pushed to the warehouse since the caller read it: the
    /// warehouse must intercept it first.
    NeedsInterception,
}

/// The order, locked, as a request needs it.
struct LockedOrder {
    user_id: u64,
    sku: String,
    qty: u32,
    amount_cents: i64,
    status: OrderStatus,
    payment_id: Option<String>,
    /// The channel the payment came through (`""`: the default).
    payment_channel: String,
}

const COLUMNS: &str = "after_sale_id, order_id, user_id, kind, qty, reason, status, return_address, reject_reason, \
                       refund_id, created_at";

type Row = (i64, i64, u64, String, u32, String, String, Option<String>, Option<String>, Option<String>, NaiveDateTime);

fn view(row: Row) -> Result<AfterSaleView, sqlx::Error> {
    let (
        after_sale_id,
        order_id,
        user_id,
        kind,
        qty,
        reason,
        status,
        return_address,
        reject_reason,
        refund_id,
        created_at,
    ) = row;
    let bad = |what: &str, name: &str| sqlx::Error::Decode(format!("unknown after-sale {what} {name:?}").into());
    Ok(AfterSaleView {
        after_sale_id: OrderId::from_raw(after_sale_id as u64),
        order_id: OrderId::from_raw(order_id as u64),
        user_id,
        kind: Kind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        qty,
        reason,
        status: Status::parse(&status).ok_or_else(|| bad("status", &status))?,
        return_address,
        reject_reason,
        refund_id,
        created_at: created_at.and_utc(),
    })
}

impl ShardPools {
    /// Opens a request on an order of its buyer, if the order's status
    /// allows its kind and enough units are left to return.
    pub async fn open_after_sale(&self, new: &NewAfterSale) -> Result<Opened, sqlx::Error> {
        let mut tx = self.for_order(new.order_id).begin().await?;
        let Some(order) = lock_order(&mut tx, new.order_id).await? else { return Ok(Opened::Unknown) };
        if order.user_id != new.owner {
            return Ok(Opened::Unknown);
        }
        let allowed = match new.kind {
            Kind::RefundOnly => matches!(order.status, OrderStatus::Paid | OrderStatus::InWarehouse),
            Kind::ReturnRefund | Kind::Exchange => {
                matches!(order.status, OrderStatus::Shipped | OrderStatus::Completed)
            }
        };
        if !allowed {
            return Ok(Opened::NotNow { status: order.status });
        }
        let (taken,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(qty), 0) AS SIGNED) FROM after_sales WHERE order_id = ? AND status <> 'REJECTED'",
        )
        .bind(new.order_id.raw() as i64)
        .fetch_one(&mut *tx)
        .await?;
        let left = (order.qty as i64 - taken).max(0) as u32;
        // A refund before shipment is of the whole order.
        let whole = new.kind != Kind::RefundOnly || new.qty == order.qty;
        if new.qty == 0 || new.qty > left || !whole {
            return Ok(Opened::TooMany { left });
        }
        sqlx::query(
            "INSERT INTO after_sales (after_sale_id, order_id, user_id, kind, qty, reason, status, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.after_sale_id.raw() as i64)
        .bind(new.order_id.raw() as i64)
        .bind(new.owner)
        .bind(new.kind.as_str())
        .bind(new.qty)
        .bind(&new.reason)
        .bind(Status::PendingReview.as_str())
        .bind(new.at.naive_utc())
        .execute(&mut *tx)
        .await?;
        let request = read_locked(&mut tx, new.after_sale_id).await?.expect("just inserted");
        record_move(&mut tx, &request, &order.sku, None, None, Actor::Buyer, None, new.at).await?;
        tx.commit().await?;
        Ok(Opened::Done(request))
    }

    /// Makes `request` if the table allows it; reaching AWAITING_REFUND
    /// refunds in the same transaction.
    pub async fn after_sale_move(&self, request: &AfterSaleMove) -> Result<AfterSaleMoved, sqlx::Error> {
        // The order first, then the request, as everywhere: no lock cycles.
        let Some(unlocked) = self.after_sale(request.after_sale_id).await? else { return Ok(AfterSaleMoved::Unknown) };
        let mut tx = self.for_order(request.after_sale_id).begin().await?;
        let Some(order) = lock_order(&mut tx, unlocked.order_id).await? else { return Ok(AfterSaleMoved::Unknown) };
        let current = read_locked(&mut tx, request.after_sale_id).await?.expect("requests are never deleted");
        let transition = match after_sale::next(current.kind, current.status, request.action, request.actor) {
            Ok(transition) => transition,
            Err(refused) => return Ok(AfterSaleMoved::Refused(refused)),
        };
        sqlx::query(
            "UPDATE after_sales SET status = ?, return_address = COALESCE(?, return_address), \
             reject_reason = COALESCE(?, reject_reason) WHERE after_sale_id = ?",
        )
        .bind(transition.to.as_str())
        .bind(&request.return_address)
        .bind(&request.reject_reason)
        .bind(request.after_sale_id.raw() as i64)
        .execute(&mut *tx)
        .await?;
        let mut moved = read_locked(&mut tx, request.after_sale_id).await?.expect("locked above");
        let by = Some(request.action);
        record_move(&mut tx, &moved, &order.sku, Some(current.status), by, request.actor, None, request.at).await?;
        if moved.status == Status::AwaitingRefund {
            let refund = match refund(&mut tx, &moved, &order, request).await? {
                Refunded::Done(refund) => refund,
                Refunded::Refused(refused) => return Ok(AfterSaleMoved::OrderRefused(refused)),
                Refunded::NeedsInterception => return Ok(AfterSaleMoved::NeedsInterception),
            };
            let id = refund_id(moved.order_id, &refund.payment_id, &refund_cause(&moved));
            sqlx::query("UPDATE after_sales SET status = ?, refund_id = ? WHERE after_sale_id = ?")
                .bind(Status::Refunded.as_str())
                .bind(&id)
                .bind(moved.after_sale_id.raw() as i64)
                .execute(&mut *tx)
                .await?;
            let awaiting = moved.status;
            moved = read_locked(&mut tx, request.after_sale_id).await?.expect("locked above");
            let by = Some(Action::Refund);
            record_move(&mut tx, &moved, &order.sku, Some(awaiting), by, Actor::System, Some(refund), request.at)
                .await?;
        }
        tx.commit().await?;
        Ok(AfterSaleMoved::Done(moved))
    }

    /// The order's requests, oldest first.
    pub async fn after_sales_of(&self, order_id: OrderId) -> Result<Vec<AfterSaleView>, sqlx::Error> {
        let rows: Vec<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM after_sales WHERE order_id = ? ORDER BY after_sale_id"))
                .bind(order_id.raw() as i64)
                .fetch_all(self.for_order(order_id))
                .await?;
        rows.into_iter().map(view).collect()
    }

    /// One request.
    pub async fn after_sale(&self, after_sale_id: OrderId) -> Result<Option<AfterSaleView>, sqlx::Error> {
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM after_sales WHERE after_sale_id = ?"))
            .bind(after_sale_id.raw() as i64)
            .fetch_optional(self.for_order(after_sale_id))
            .await?;
        row.map(view).transpose()
    }

    /// Requests of shard `shard` still awaiting review since before `cutoff`.
    pub async fn reviews_due(
        &self,
        shard: usize,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OrderId>, sqlx::Error> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT after_sale_id FROM after_sales WHERE status = 'PENDING_REVIEW' AND created_at < ? \
             ORDER BY created_at LIMIT ?",
        )
        .bind(cutoff.naive_utc())
        .bind(limit)
        .fetch_all(&self.pools[shard])
        .await?;
        Ok(rows.into_iter().map(|(id,)| OrderId::from_raw(id as u64)).collect())
    }
}

/// What a request's refund is for (part of the refund's id).
fn refund_cause(request: &AfterSaleView) -> String {
    match request.kind {
        // The order's own cancellation refunds it.
        Kind::RefundOnly => "cancel".into(),
        _ => format!("after-sale {}", request.after_sale_id),
    }
}

/// What a request's refund came to.
enum Refunded {
    Done(Refund),
    /// The order's move it needs is refused by the order's table.
    Refused(lifecycle::Refused),
    NeedsInterception,
}

/// The refund a request reaching AWAITING_REFUND makes, in `tx`: a refund
/// before shipment cancels the order (its move records the refund); a
/// return refunds its share, the last one what is left, and closes the order.
async fn refund(
    tx: &mut Transaction<'_, MySql>,
    request: &AfterSaleView,
    order: &LockedOrder,
    asked: &AfterSaleMove,
) -> Result<Refunded, sqlx::Error> {
    let at = asked.at;
    let payment_id = order.payment_id.clone().unwrap_or_default();
    if request.kind == Kind::RefundOnly {
        let cancel = Move {
            order_id: request.order_id,
            action: lifecycle::Action::Cancel,
            actor: Actor::Buyer,
            owner: None,
            shipment: None,
            intercepted: asked.intercepted,
            at,
        };
        return Ok(match transition_in(tx, &cancel).await? {
            Moved::Done(changed) => Refunded::Done(changed.refund.expect("a paid order's cancellation refunds")),
            Moved::Refused(refused) => Refunded::Refused(refused),
            Moved::NeedsInterception => Refunded::NeedsInterception,
            Moved::Unknown => unreachable!("the order is locked"),
        });
    }
    let (returned_qty, refunded_cents): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(a.qty), 0) AS SIGNED), CAST(COALESCE(SUM(r.amount_cents), 0) AS SIGNED) \
         FROM after_sales a JOIN refunds r ON r.refund_id = a.refund_id \
         WHERE a.order_id = ? AND a.status = 'REFUNDED' AND a.kind = 'RETURN_REFUND'",
    )
    .bind(request.order_id.raw() as i64)
    .fetch_one(&mut **tx)
    .await?;
    let last = returned_qty + request.qty as i64 == order.qty as i64;
    let amount_cents = if last {
        order.amount_cents - refunded_cents
    } else {
        order.amount_cents * request.qty as i64 / order.qty as i64
    };
    let refund = Refund { payment_id: payment_id.clone(), amount_cents };
    let cause = refund_cause(request);
    let new = NewRefund {
        order_id: request.order_id,
        user_id: order.user_id,
        sku: &order.sku,
        payment_id: &payment_id,
        channel: &order.payment_channel,
        amount_cents,
        cause: &cause,
        reason: "after-sale return",
        at: at.naive_utc(),
    };
    record_refund(tx, &new).await?;
    let units = (returned_qty + i64::from(request.qty)) as u32;
    points_back(tx, request.order_id, Back::Units { units, qty: order.qty }).await?;
    if last {
        let close = Move {
            order_id: request.order_id,
            action: lifecycle::Action::Close,
            actor: Actor::System,
            owner: None,
            shipment: None,
            intercepted: false,
            at,
        };
        match transition_in(tx, &close).await? {
            Moved::Done(_) => {}
            Moved::Refused(refused) => return Ok(Refunded::Refused(refused)),
            Moved::NeedsInterception | Moved::Unknown => {
                unreachable!("the order is locked; closing intercepts nothing")
            }
        }
    }
    Ok(Refunded::Done(refund))
}

async fn lock_order(tx: &mut Transaction<'_, MySql>, order_id: OrderId) -> Result<Option<LockedOrder>, sqlx::Error> {
    type Row = (u64, String, u32, i64, String, Option<String>, String);
    let row: Option<Row> = sqlx::query_as(
        "SELECT user_id, sku, qty, amount_cents, status, payment_id, payment_channel FROM orders \
         WHERE order_id = ? FOR UPDATE",
    )
    .bind(order_id.raw() as i64)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((user_id, sku, qty, amount_cents, status, payment_id, payment_channel)) = row else { return Ok(None) };
    let status = order_status(&status)?;
    Ok(Some(LockedOrder { user_id, sku, qty, amount_cents, status, payment_id, payment_channel }))
}

async fn read_locked(
    tx: &mut Transaction<'_, MySql>,
    after_sale_id: OrderId,
) -> Result<Option<AfterSaleView>, sqlx::Error> {
    let row: Option<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM after_sales WHERE after_sale_id = ? FOR UPDATE"))
            .bind(after_sale_id.raw() as i64)
            .fetch_optional(&mut **tx)
            .await?;
    row.map(view).transpose()
}

/// The history row and the outbox event of a request's move into its
/// current status.
#[allow(clippy::too_many_arguments)]
async fn record_move(
    tx: &mut Transaction<'_, MySql>,
    request: &AfterSaleView,
    sku: &str,
    from: Option<Status>,
    action: Option<Action>,
    actor: Actor,
    refund: Option<Refund>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let id = request.after_sale_id.raw() as i64;
    sqlx::query(
        "INSERT INTO after_sale_history (after_sale_id, from_status, to_status, action, actor, at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(from.map(Status::as_str))
    .bind(request.status.as_str())
    .bind(action.map_or("request", Action::as_str))
    .bind(actor.as_str())
    .bind(at.naive_utc())
    .execute(&mut **tx)
    .await?;
    let event = OrderEvent::AfterSaleChanged(AfterSaleChanged {
        after_sale_id: request.after_sale_id,
        order_id: request.order_id,
        user_id: request.user_id,
        sku: sku.to_owned(),
        kind: request.kind,
        qty: request.qty,
        from,
        to: request.status,
        action,
        actor,
        refund,
        at,
    });
    sqlx::query("INSERT INTO order_outbox (order_id, user_id, payload, created_at) VALUES (?, ?, ?, ?)")
        .bind(request.order_id.raw() as i64)
        .bind(request.user_id)
        .bind(event.encode())
        .bind(at.naive_utc())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
