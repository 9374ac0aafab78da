//! Stock truth: a sale's counters in Redis against its orders in MySQL.
//!
//! MySQL holds every order once it is settled, so after a Redis failover
//! that lost acknowledged writes the database says what the counters must
//! be: `reserved` = units of pending orders, `sold` = units of paid (and
//! later) orders, `stock` = units loaded − reserved − sold. Only orders of
//! the current sale count: those carrying its generation (`loaded_ms`), or,
//! for orders from before generations were recorded, created since it was
//! loaded. Orders still
//! on their way to MySQL show as drift for a moment: reconcile when the
//! sale is quiet, or run it twice.
//!
//! The repair (`repair_sale.lua`, one script, so it races no reservation or
//! payment) takes `sold` from MySQL and `reserved` from the reservations
//! Redis holds, since those are what the sweeper and payments act on.

use order::status::OrderStatus;
use orderdb::ShardPools;
use serde::Serialize;
use stock::{SaleStatus, SaleStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub stock: i64,
    pub reserved: i64,
    pub sold: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reconciliation {
    pub sku: String,
    /// Units loaded for the sale.
    pub total: i64,
    pub redis: Counters,
    /// What the orders in MySQL say the counters must be.
    pub mysql: Counters,
    pub repaired: bool,
}

impl Reconciliation {
    pub fn drifted(&self) -> bool {
        self.redis != self.mysql
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("no sale of {0} in redis")]
    UnknownSku(String),
    #[error(transparent)]
    Redis(#[from] stock::StoreError),
    #[error("mysql: {0}")]
    Mysql(#[from] sqlx::Error),
}

/// Compares, and with `repair` overwrites Redis's counters with MySQL's.
pub async fn reconcile(
    shards: &ShardPools,
    store: &SaleStore,
    sku: &str,
    repair: bool,
) -> Result<Reconciliation, ReconcileError> {
    let status: SaleStatus = store.sale_status(sku).await?.ok_or_else(|| ReconcileError::UnknownSku(sku.to_owned()))?;
    let (mut reserved, mut sold) = (0i64, 0i64);
    for (order_status, qty) in shards.units_of_sale(sku, status.loaded_ms).await? {
        if order_status == OrderStatus::PendingPayment {
            reserved += qty;
        } else if order_status.is_sold() {
            sold += qty;
        }
    }
    let mut reconciliation = Reconciliation {
        sku: sku.to_owned(),
        total: status.total,
        redis: Counters { stock: status.stock, reserved: status.reserved, sold: status.sold },
        mysql: Counters { stock: status.total - reserved - sold, reserved, sold },
        repaired: false,
    };
    if repair && reconciliation.drifted() {
        let (stock, reserved, sold) = store
            .repair_counters(
                sku,
                reconciliation.mysql.sold,
                &shards.cancelled_after_payment(sku, status.loaded_ms).await?,
            )
            .await?
            .ok_or_else(|| ReconcileError::UnknownSku(sku.to_owned()))?;
        reconciliation.redis = Counters { stock, reserved, sold };
        reconciliation.repaired = true;
    }
    Ok(reconciliation)
}
