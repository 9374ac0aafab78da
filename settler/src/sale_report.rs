//! The daily sale report: each SKU's live figures (counted by the settler
//! from what each batch changed) next to the same figures recomputed from
//! MySQL, and where they differ. MySQL is the truth. Live figures miss a
//! batch whose count did not reach Redis (Redis down, or the settler killed
//! between its commit and the count), count an outbox event the relay sent
//! twice (killed between sending and deleting it) twice, and do not count
//! as created an order whose creation never reached the broker (cancelled
//! `unconfirmed`: MySQL holds it from its cancellation). Orders still on
//! their way to MySQL show as drift for a moment.

use order::sale_stats::SaleStats;
use orderdb::ShardPools;
use serde::Serialize;
use stock::{SaleFigures, SaleStore, StoreError};

#[derive(Debug, Serialize)]
pub struct SaleReport {
    pub sku: String,
    pub live: SaleStats,
    pub recomputed: SaleStats,
    /// Paid orders per order created, recomputed.
    pub conversion: Option<f64>,
    pub drift: Vec<Drift>,
}

#[derive(Debug, Serialize)]
pub struct Drift {
    pub figure: &'static str,
    pub live: i64,
    pub recomputed: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("redis: {0}")]
    Redis(#[from] StoreError),
    #[error("mysql: {0}")]
    Mysql(#[from] sqlx::Error),
}

/// The report of `sku`, or of every SKU with a sale loaded.
pub async fn report(
    shards: &ShardPools,
    store: &SaleStore,
    sku: Option<String>,
) -> Result<Vec<SaleReport>, ReportError> {
    let mut skus = match sku {
        Some(sku) => vec![sku],
        None => store.sales().await?,
    };
    skus.sort();
    let mut reports = Vec::with_capacity(skus.len());
    for sku in skus {
        let live = SaleFigures::new(store.redis().clone()).sale_stats(&sku).await?;
        let recomputed = shards.sale_stats(&sku).await?;
        let drift = live
            .drift(&recomputed)
            .into_iter()
            .map(|(figure, live, recomputed)| Drift { figure, live, recomputed })
            .collect();
        reports.push(SaleReport { sku, live, recomputed, conversion: recomputed.conversion(), drift });
    }
    Ok(reports)
}
