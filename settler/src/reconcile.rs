//! Stock truth: a sale's counters in Redis against its orders in MySQL.
//!
//! MySQL holds every order once it is settled, so after a Redis failover
//! that lost acknowledged writes the database says what the counters must
//! be: `reserved` = units of pending orders (`open` for a sale deducting at
//! payment, whose pending orders hold none), `sold` = units of paid (and
//! later) orders, `stock` = units loaded − reserved − sold. Only orders of
//! the current sale count: those carrying its generation (`loaded_ms`), or,
//! for orders from before generations were recorded, created since it was
//! loaded. Orders still
//! on their way to MySQL show as drift for a moment: reconcile when the
//! sale is quiet, or run it twice.
//!
//! The repair (`repair_sale.lua`, one script, so it races no reservation or
//! payment) takes `sold` from MySQL and `reserved` (or `open`) from the
//! reservations Redis holds, since those are what the sweeper and payments
//! act on; for a regional sale, per warehouse (MySQL records each order's).

use std::collections::BTreeMap;

use order::sale::Deduction;
use order::status::OrderStatus;
use orderdb::ShardPools;
use serde::Serialize;
use stock::{Repair, SaleStatus, SaleStore, Units};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub stock: i64,
    pub reserved: i64,
    pub open: i64,
    pub sold: i64,
}

impl From<Units> for Counters {
    fn from(units: Units) -> Self {
        Self { stock: units.stock, reserved: units.reserved, open: units.open, sold: units.sold }
    }
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
    #[error("{0} is split over warehouses, and MySQL holds sold orders of it without one: not repaired")]
    NoWarehouse(String),
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
    let (mut pending, mut sold) = (0i64, 0i64);
    let mut sold_in: BTreeMap<Option<String>, i64> = BTreeMap::new();
    for ((order_status, warehouse), qty) in shards.units_of_sale(sku, status.loaded_ms).await? {
        if order_status == OrderStatus::PendingPayment {
            pending += qty;
        } else if order_status.is_sold() {
            sold += qty;
            *sold_in.entry(warehouse).or_default() += qty;
        }
    }
    let (reserved, open) = match status.deduction {
        Deduction::OnOrder => (pending, 0),
        Deduction::OnPayment => (0, pending),
    };
    let mut reconciliation = Reconciliation {
        sku: sku.to_owned(),
        total: status.total,
        redis: status.units().into(),
        mysql: Counters { stock: status.total - reserved - sold, reserved, open, sold },
        repaired: false,
    };
    if repair && reconciliation.drifted() {
        // A regional sale's sold units, per warehouse: every one of its
        // orders records its warehouse.
        let sold_per_warehouse: Vec<(String, i64)> = if status.warehouses.is_empty() {
            Vec::new()
        } else {
            let mut split = Vec::new();
            for (warehouse, units) in sold_in {
                split.push((warehouse.ok_or_else(|| ReconcileError::NoWarehouse(sku.to_owned()))?, units));
            }
            split
        };
        let repaired = store
            .repair_counters(
                sku,
                reconciliation.mysql.sold,
                &sold_per_warehouse,
                &shards.cancelled_after_payment(sku, status.loaded_ms).await?,
            )
            .await?;
        let units = match repaired {
            Repair::Repaired(units) => units,
            Repair::UnknownSku => return Err(ReconcileError::UnknownSku(sku.to_owned())),
        };
        reconciliation.redis = units.into();
        reconciliation.repaired = true;
    }
    Ok(reconciliation)
}
