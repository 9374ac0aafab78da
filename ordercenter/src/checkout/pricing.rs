//! A cart priced and planned from the catalogue (sale prices, shipping
//! facts, promotions, freight, the buyer's coupon), stored as a checkout
//! with its coupon frozen, before any unit is taken.

use std::collections::HashMap;

use order::allocation::AllocationError;
use order::cart::Checkout;
use order::checkout::{plan, CheckoutOrder, CouponTerms, PlanError, PricedLine, PromotionTerms, ShippingFacts};
use order::id::OrderId;
use order::shard::bucket_for_user;
use order::splitting::{FreightTemplate, SplitError};
use stock::catalogue::Catalogue;
use stock::WarehouseChoice;

use super::coupons::freeze_coupon;
use super::{redis_down, save};
use crate::center::OrderCenter;
use crate::outcomes::CheckoutError;
use crate::refusal::Dependency;

/// Prices and plans the cart from the catalogue, stores the checkout and
/// freezes its coupon, before any unit is taken.
pub(super) async fn priced(
    center: &OrderCenter,
    cart: &Checkout,
    key: &str,
    parent: OrderId,
    now_ms: i64,
) -> Result<CheckoutOrder, CheckoutError> {
    let skus: Vec<String> = cart.lines.iter().map(|line| line.sku.clone()).collect();
    let prices = center.checkouts.sale_prices(&skus).await.map_err(redis_down)?;
    let facts = center.checkouts.catalogue_entries(Catalogue::Skus, &skus).await.map_err(redis_down)?;
    let ranked = center.serving_warehouses(cart.region.as_deref());
    let mut lines = Vec::with_capacity(cart.lines.len());
    for ((line, price), facts) in cart.lines.iter().zip(prices).zip(facts) {
        let sale = price.ok_or_else(|| CheckoutError::UnknownSku { sku: line.sku.clone() })?;
        let mut facts = match facts {
            Some(json) => parse_entry::<ShippingFacts>(&json, &line.sku)?,
            None => ShippingFacts::unlisted(),
        };
        // Regional stock: the line packs and ships from the warehouse the
        // scheduling rules choose for the buyer's region.
        let choice = if sale.regional {
            center.sales.warehouse_for(&line.sku, &ranked, line.qty).await.map_err(redis_down)?
        } else {
            WarehouseChoice::OnePool
        };
        let regional = match choice {
            // A sale in one pool (or reloaded into one since its price was read).
            WarehouseChoice::OnePool => false,
            WarehouseChoice::Warehouse(warehouse) => {
                facts.warehouse = warehouse;
                true
            }
            WarehouseChoice::NoneAble => return Err(CheckoutError::NoWarehouse { sku: line.sku.clone() }),
        };
        let (sku, qty, unit_price_cents) = (line.sku.clone(), line.qty, sale.price_cents);
        lines.push(PricedLine { sku, qty, unit_price_cents, facts, regional });
    }
    let promotions = parsed_all::<PromotionTerms>(center, Catalogue::Promotions).await?;
    let freight: HashMap<String, FreightTemplate> =
        parsed_all::<FreightTemplate>(center, Catalogue::Freight).await?.into_iter().collect();
    let coupon = match &cart.coupon {
        Some(code) => Some(coupon_terms(center, cart.user_id, code).await?),
        None => None,
    };
    let next_id = || center.ids.next(bucket_for_user(cart.user_id), now_ms);
    let limits = center.settings.checkout.limits();
    let points = center.settings.checkout.points_offer(cart.points);
    let plan =
        plan(&lines, &promotions, coupon.as_ref(), points, &freight, limits, next_id).map_err(|err| match err {
            PlanError::Allocation(AllocationError::BelowMinimumSpend { left_cents }) => {
                CheckoutError::BelowMinimumSpend { left_cents }
            }
            PlanError::Split(SplitError::UnitTooLarge { line }) => {
                CheckoutError::TooLarge { sku: lines[line].sku.clone() }
            }
            PlanError::Allocation(err) => {
                tracing::error!(error = %err, "the catalogue's promotions do not price this cart");
                CheckoutError::Unavailable(Dependency::Redis)
            }
        })?;
    let pay_by_ms = now_ms + center.settings.orders.payment_window_secs as i64 * 1_000;
    let mut order = CheckoutOrder::new(
        plan,
        parent,
        cart.user_id,
        key.to_owned(),
        (cart.coupon.clone(), cart.points),
        stock::records::from_ms(now_ms),
        stock::records::from_ms(pay_by_ms),
    );
    order.channel = cart.channel.as_ref().map(|channel| channel.id.clone());
    // Stored before the coupon is frozen: a checkout holding a coupon
    // always has a record, which is what others judge the hold by.
    save(center, &order).await?;
    if let Some(code) = &cart.coupon {
        freeze_coupon(center, cart.user_id, code, parent).await?;
    }
    Ok(order)
}

fn parse_entry<T: serde::de::DeserializeOwned>(json: &str, id: &str) -> Result<T, CheckoutError> {
    serde_json::from_str(json).map_err(|err| {
        tracing::error!(id, error = %err, "catalogue entry unreadable");
        CheckoutError::Unavailable(Dependency::Redis)
    })
}

async fn parsed_all<T: serde::de::DeserializeOwned>(
    center: &OrderCenter,
    catalogue: Catalogue,
) -> Result<Vec<(String, T)>, CheckoutError> {
    let entries = center.checkouts.catalogue_all(catalogue).await.map_err(redis_down)?;
    entries.into_iter().map(|(id, json)| parse_entry(&json, &id).map(|entry| (id, entry))).collect()
}

/// The coupon's terms, if it is the buyer's to use.
async fn coupon_terms(center: &OrderCenter, user_id: u64, code: &str) -> Result<CouponTerms, CheckoutError> {
    let found = center.checkouts.catalogue_entries(Catalogue::Coupons, &[code.to_owned()]).await.map_err(redis_down)?;
    let terms: CouponTerms = match found.into_iter().next().flatten() {
        Some(json) => parse_entry(&json, code)?,
        None => return Err(CheckoutError::UnknownCoupon),
    };
    if !terms.is_for(user_id) {
        return Err(CheckoutError::CouponNotYours);
    }
    Ok(terms)
}
