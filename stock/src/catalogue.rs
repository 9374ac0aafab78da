//! What a cart checkout prices and splits with, beside the sales: each
//! SKU's shipping facts, the promotions, the coupons and each store's
//! freight template. One hash each, values in JSON (their types are the
//! `order` crate's); the admin API writes them, each checkout reads them.

use std::collections::HashMap;

use fred::prelude::*;

use crate::checkouts::Checkouts;
use crate::error::StoreError;

/// A sale as a cart prices it ([`Checkouts::sale_prices`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SalePrice {
    pub price_cents: i64,
    /// Split over warehouses: the cart's line needs one chosen for it.
    pub regional: bool,
}

/// One of the catalogue's hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catalogue {
    /// SKU → `order::catalogue::ShippingFacts`.
    Skus = 0,
    /// Promotion id → `order::catalogue::PromotionTerms`.
    Promotions = 1,
    /// Coupon code → `order::catalogue::CouponTerms`.
    Coupons = 2,
    /// Store → `order::splitting::FreightTemplate`.
    Freight = 3,
}

impl Checkouts {
    fn catalogue_key(&self, catalogue: Catalogue) -> String {
        self.redis.global.catalogue()[catalogue as usize].clone()
    }

    /// Writes one entry (`None` removes it).
    pub async fn put_catalogue(&self, catalogue: Catalogue, id: &str, json: Option<&str>) -> Result<(), StoreError> {
        let key = self.catalogue_key(catalogue);
        let _: i64 = match json {
            Some(json) => self.redis.pool.next().hset(key, (id, json)).await?,
            None => self.redis.pool.next().hdel(key, id).await?,
        };
        Ok(())
    }

    /// The entries of `ids`, in order.
    pub async fn catalogue_entries(
        &self,
        catalogue: Catalogue,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.redis.pool.next().hmget(self.catalogue_key(catalogue), ids.to_vec()).await?)
    }

    /// Every entry.
    pub async fn catalogue_all(&self, catalogue: Catalogue) -> Result<HashMap<String, String>, StoreError> {
        Ok(self.redis.pool.next().hgetall(self.catalogue_key(catalogue)).await?)
    }
}

impl Checkouts {
    /// Each SKU's sale as a cart prices it (`None`: no sale loaded),
    /// pipelined: its unit price, and whether it is split over warehouses.
    pub async fn sale_prices(&self, skus: &[String]) -> Result<Vec<Option<SalePrice>>, StoreError> {
        let pipeline = self.redis.pool.next().pipeline();
        for sku in skus {
            let () = pipeline.hmget(self.redis.keys(sku).sale, vec!["price_cents", "warehouses"]).await?;
        }
        let sales: Vec<(Option<i64>, Option<String>)> = pipeline.all().await?;
        Ok(sales
            .into_iter()
            .map(|(price, warehouses)| {
                price.map(|price_cents| SalePrice { price_cents, regional: warehouses.is_some() })
            })
            .collect())
    }

    /// Whether any of a checkout's items (SKU, item id) is still held or
    /// was paid: whether the checkout still counts as using its coupon.
    pub async fn any_item_live(&self, items: &[(String, order::id::OrderId)]) -> Result<bool, StoreError> {
        let pipeline = self.redis.pool.next().pipeline();
        for (sku, item) in items {
            let keys = self.redis.keys(sku);
            let () = pipeline.hexists(keys.reservations, item.to_string()).await?;
            let () = pipeline.hexists(keys.payments, item.to_string()).await?;
        }
        let found: Vec<bool> = pipeline.all().await?;
        Ok(found.into_iter().any(|found| found))
    }
}
