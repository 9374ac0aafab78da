//! Regional stock: a sale split over warehouses, each with its own counts
//! in the sale's hash (see `stock/lua/lib/units.lua`); the operator's
//! changes to one (`warehouses.lua`), their counts read back, and an order
//! moved when its buyer changes the delivery region (`readdress.lua`).

use fred::prelude::*;

use crate::error::StoreError;
use order::id::OrderId;

use crate::replies::{Readdressed, WarehouseChanged, WarehouseStatus};
use crate::requests::WarehouseChange;
use crate::store::SaleStore;

/// Where a cart line's units would come from ([`SaleStore::warehouse_for`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseChoice {
    /// The sale is not split over warehouses.
    OnePool,
    Warehouse(String),
    /// No warehouse serving the region is open with the units.
    NoneAble,
}

/// Each warehouse's fields, in the order read.
const COUNTS: [&str; 6] = ["stock", "reserved", "sold", "total", "open", "closed"];

impl SaleStore {
    /// Closes or opens a warehouse, moves units between two, or adds some.
    pub async fn change_warehouse(&self, sku: &str, change: &WarehouseChange) -> Result<WarehouseChanged, StoreError> {
        let reply: Vec<String> = self
            .redis
            .scripts
            .warehouses
            .evalsha_with_reload(self.redis.pool.next(), self.redis.keys(sku).warehouses(), change.args())
            .await?;
        WarehouseChanged::parse(&reply).ok_or(StoreError::Reply { script: "warehouses.lua", reply })
    }

    /// Runs the scheduling again for an order awaiting payment whose buyer
    /// changed the delivery region: `warehouses` serve the new one, best
    /// first, comma-separated.
    pub async fn readdress(
        &self,
        sku: &str,
        order_id: OrderId,
        user_id: u64,
        warehouses: &str,
    ) -> Result<Readdressed, StoreError> {
        // The record's key is the reservation's: read it first (the script
        // finds the reservation again, as it is then). With none, a key
        // nothing writes: the script says why there is none.
        let key = match self.reservation(sku, order_id).await? {
            Some(reservation) => reservation.idempotency_key,
            None => format!("readdress.{order_id}"),
        };
        let reply: Vec<String> = self
            .redis
            .scripts
            .readdress
            .evalsha_with_reload(
                self.redis.pool.next(),
                self.redis.keys(sku).readdress(&key),
                vec![order_id.to_string(), user_id.to_string(), warehouses.to_owned()],
            )
            .await?;
        Readdressed::parse(&reply).ok_or(StoreError::Reply { script: "readdress.lua", reply })
    }

    /// Where a cart's `qty` units of `sku` would be taken now: the first of
    /// `ranked` (the warehouses serving the buyer's region, best first,
    /// comma-separated, or [`crate::ANY_WAREHOUSE`]: the sale's own, in its
    /// order) that is the sale's, open and has them for sale. A read: the
    /// cart is split by it, and its Try takes the units there or is refused.
    pub async fn warehouse_for(&self, sku: &str, ranked: &str, qty: u32) -> Result<WarehouseChoice, StoreError> {
        let own = self.warehouse_status(sku).await?;
        if own.is_empty() {
            return Ok(WarehouseChoice::OnePool);
        }
        let names: Vec<&str> = if ranked == crate::ANY_WAREHOUSE {
            own.iter().map(|w| w.warehouse.as_str()).collect()
        } else {
            ranked.split(',').collect()
        };
        let able = names
            .iter()
            .find_map(|name| own.iter().find(|w| w.warehouse == *name && !w.closed && w.stock >= i64::from(qty)));
        Ok(able.map_or(WarehouseChoice::NoneAble, |w| WarehouseChoice::Warehouse(w.warehouse.clone())))
    }

    /// The counts of each warehouse of `sku`'s sale; none for a sale in one pool.
    pub(crate) async fn warehouse_status(&self, sku: &str) -> Result<Vec<WarehouseStatus>, StoreError> {
        let sale = self.redis.keys(sku).sale;
        let client = self.redis.pool.next();
        let Some(list): Option<String> = client.hget(&sale, "warehouses").await? else {
            return Ok(Vec::new());
        };
        let names: Vec<&str> = list.split(',').collect();
        let fields: Vec<String> =
            names.iter().flat_map(|name| COUNTS.iter().map(move |count| format!("wh:{name}:{count}"))).collect();
        let values: Vec<Option<i64>> = client.hmget(&sale, fields).await?;
        Ok(names
            .iter()
            .zip(values.chunks(COUNTS.len()))
            .map(|(name, counts)| {
                let count = |i: usize| counts.get(i).copied().flatten().unwrap_or(0);
                WarehouseStatus {
                    warehouse: (*name).to_owned(),
                    stock: count(0),
                    reserved: count(1),
                    sold: count(2),
                    total: count(3),
                    open: count(4),
                    closed: count(5) == 1,
                }
            })
            .collect())
    }
}
