//! What paid orders do next, through the API: each gets a fate — shipped
//! and received, cancelled before shipping (refunded), returned whole
//! (refunded, closed), exchanged, a return request rejected, or left in
//! the warehouse — and afterwards the invariants are read from MySQL:
//! every order in exactly the status its fate leads to, as many history
//! rows as moves, refunds never above the payment, every refund confirmed
//! by the channel; and the sale's live figures equal to MySQL's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use order::status::OrderStatus;
use orderdb::ShardPools;
use serde_json::json;

use crate::client::Gateway;
use crate::report::{check, Check};

/// What becomes of one paid order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fate {
    /// Pushed, shipped, received: completed.
    Completed,
    /// Cancelled by the buyer before the push: refunded, units back.
    CancelledAfterPaying,
    /// Shipped, returned whole: refunded, closed.
    Returned,
    /// Received, then exchanged: the replacement ships.
    Exchanged,
    /// Shipped; a return request is rejected, the order carries on.
    ReturnRejected,
    /// Pushed to the warehouse, not shipped yet.
    InWarehouse,
}

impl Fate {
    /// The i-th paid order's fate: 40% completed, 10% of each of the
    /// others, 20% left in the warehouse.
    pub fn of(i: usize) -> Self {
        match i % 10 {
            0..=3 => Self::Completed,
            4 => Self::CancelledAfterPaying,
            5 => Self::Returned,
            6 => Self::Exchanged,
            7 => Self::ReturnRejected,
            _ => Self::InWarehouse,
        }
    }

    /// The status it ends in, and the order's moves from its creation.
    fn ends(self) -> (OrderStatus, u64) {
        match self {
            Self::Completed | Self::Exchanged => (OrderStatus::Completed, 4),
            Self::CancelledAfterPaying => (OrderStatus::Cancelled, 2),
            Self::Returned => (OrderStatus::Closed, 4),
            Self::ReturnRejected => (OrderStatus::Shipped, 3),
            Self::InWarehouse => (OrderStatus::InWarehouse, 2),
        }
    }

    fn refunds(self) -> bool {
        matches!(self, Self::CancelledAfterPaying | Self::Returned)
    }
}

/// How many paid orders met each fate.
pub type Fates = BTreeMap<Fate, u64>;

/// Runs each paid order's fate through the gateway, `concurrency` at a
/// time; the fates met and the calls that failed.
pub async fn drive(gateway: &Gateway, sku: &str, paid: &[(String, u64)], concurrency: usize) -> (Fates, u64) {
    let outcomes = stream::iter(paid.iter().enumerate())
        .map(|(i, (order_id, user))| async move {
            let fate = Fate::of(i);
            (fate, live(gateway, sku, order_id, *user, fate).await)
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut fates = Fates::new();
    let mut failed = 0;
    for (fate, outcome) in outcomes {
        match outcome {
            Ok(()) => *fates.entry(fate).or_default() += 1,
            Err(err) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("a paid order's {fate:?} failed: {err:#}");
                }
            }
        }
    }
    (fates, failed)
}

async fn live(gateway: &Gateway, sku: &str, order_id: &str, user: u64, fate: Fate) -> anyhow::Result<()> {
    if fate == Fate::CancelledAfterPaying {
        let status = gateway.cancel(order_id, user, sku).await?;
        anyhow::ensure!(status.is_success(), "cancelling {order_id} after paying: {status}");
        return Ok(());
    }
    gateway.merchant(order_id, "push").await?;
    if fate == Fate::InWarehouse {
        return Ok(());
    }
    gateway.merchant(order_id, "ship").await?;
    match fate {
        Fate::Completed => gateway.receive(order_id, user).await,
        Fate::Returned => {
            let request = gateway.after_sale(order_id, user, "RETURN_REFUND", 1).await?;
            gateway.review(&request, "approve", json!({"return_address": "Dock 4"})).await?;
            gateway.review(&request, "receive", json!({})).await.map(|_| ())
        }
        Fate::Exchanged => {
            gateway.receive(order_id, user).await?;
            let request = gateway.after_sale(order_id, user, "EXCHANGE", 1).await?;
            gateway.review(&request, "approve", json!({"return_address": "Dock 4"})).await?;
            gateway.review(&request, "receive", json!({})).await?;
            gateway
                .review(&request, "ship", json!({"carrier": "sf", "tracking_no": format!("X{order_id}")}))
                .await
                .map(|_| ())
        }
        Fate::ReturnRejected => {
            let request = gateway.after_sale(order_id, user, "RETURN_REFUND", 1).await?;
            gateway.review(&request, "reject", json!({"reason": "outside the return window"})).await.map(|_| ())
        }
        Fate::CancelledAfterPaying | Fate::InWarehouse => unreachable!("handled above"),
    }
}

/// The statuses the fates lead to.
pub fn expected(fates: &Fates) -> Vec<(OrderStatus, u64)> {
    let mut by_status: BTreeMap<OrderStatus, u64> = BTreeMap::new();
    for (fate, n) in fates {
        *by_status.entry(fate.ends().0).or_default() += n;
    }
    by_status.into_iter().collect()
}

/// Waits (up to `timeout`) for every refund of `sku` to be confirmed, then
/// checks the history, refunds and money against the fates.
pub async fn checks(shards: &[String], sku: &str, fates: &Fates, timeout: Duration) -> anyhow::Result<Vec<Check>> {
    let pools = ShardPools::connect_lazy(shards, 1, Duration::from_secs(5))?;
    let refunds_due: u64 = fates.iter().filter(|(fate, _)| fate.refunds()).map(|(_, n)| n).sum();
    let deadline = Instant::now() + timeout;
    let done = loop {
        let done = count(&pools, sku, REFUNDS_DONE).await?;
        if done >= refunds_due || Instant::now() > deadline {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let moves: u64 = fates.iter().map(|(fate, n)| fate.ends().1 * n).sum();
    let history = count(&pools, sku, HISTORY_OF_PAID).await?;
    let over_refunded = count(&pools, sku, OVER_REFUNDED).await?;
    pools.close().await;
    Ok(vec![
        check("every refund confirmed by the channel", done == refunds_due, format!("{done} of {refunds_due} done")),
        check("history rows = moves of the paid orders", history == moves, format!("{history} rows for {moves} moves")),
        check("refunds never above the payment", over_refunded == 0, format!("{over_refunded} orders over-refunded")),
    ])
}

/// Waits (up to `timeout`) for the sale's live figures
/// (`GET /admin/sales/{sku}/stats`, counted from the events) to equal
/// those recomputed from MySQL, and checks that they do.
pub async fn figures_check(
    gateway: &Gateway,
    shards: &[String],
    sku: &str,
    timeout: Duration,
) -> anyhow::Result<Check> {
    let pools = ShardPools::connect_lazy(shards, 1, Duration::from_secs(5))?;
    let deadline = Instant::now() + timeout;
    let (live, recomputed) = loop {
        let recomputed = serde_json::to_value(pools.sale_stats(sku).await?)?;
        let (_, body) = gateway.get(&format!("/admin/sales/{sku}/stats"), None).await?;
        let mut live: serde_json::Value = serde_json::from_slice(&body)?;
        if let Some(figures) = live.as_object_mut() {
            figures.remove("sku");
            figures.remove("conversion");
        }
        if live == recomputed || Instant::now() > deadline {
            break (live, recomputed);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    pools.close().await;
    let figure = |name: &str| live[name].as_i64().unwrap_or_default();
    let detail = format!(
        "{} orders, {} paid, GMV {:.2}, {} refunded",
        figure("accepted"),
        figure("paid"),
        figure("paid_cents") as f64 / 100.0,
        figure("refunded")
    );
    Ok(check("live sale figures = MySQL's", live == recomputed, detail))
}

async fn count(pools: &ShardPools, sku: &str, sql: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    for pool in &pools.pools {
        let (n,): (i64,) = sqlx::query_as(sql).bind(sku).fetch_one(pool).await?;
        total += n as u64;
    }
    Ok(total)
}

const REFUNDS_DONE: &str = "SELECT COUNT(*) FROM refunds r JOIN refund_jobs j ON j.refund_id = r.refund_id \
                            WHERE r.sku = ? AND j.state = 'DONE'";
const HISTORY_OF_PAID: &str = "SELECT COUNT(*) FROM order_status_history h JOIN orders o ON o.order_id = h.order_id \
                               WHERE o.sku = ? AND o.payment_id IS NOT NULL";
const OVER_REFUNDED: &str = "SELECT COUNT(*) FROM orders o WHERE o.sku = ? AND o.amount_cents < \
                             (SELECT COALESCE(SUM(r.amount_cents), 0) FROM refunds r WHERE r.order_id = o.order_id)";
