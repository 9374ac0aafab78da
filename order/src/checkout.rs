//! A cart checkout's plan, before any unit is taken: the catalogue's terms
//! (each SKU's shipping facts, promotions, the coupon, freight templates),
//! the discounts spread over the lines ([`crate::allocation`]), the lines
//! split into packages ([`crate::splitting`]), each package's freight, and
//! the member points spent on the items ([`points`]).
//!
//! The plan's unit is the *item*: one SKU's units in one package (a line
//! may lie in several packages). An item is reserved, paid, cancelled,
//! shipped and returned like a single order, with its own order id; a
//! package (a sub-order) is the items that ship together. What an item
//! costs its buyer is its goods, less its part of the line's discounts,
//! less the member points spent on it, plus its part of its package's
//! freight: the parts of each add up exactly to the whole, so the items'
//! amounts add up to what the buyer pays.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::allocation::{allocate, shares, AllocationError, Coupon, Promotion};
use crate::id::OrderId;
use crate::splitting::{split, FreightTemplate, Handling, Item, Limits, SplitError};
use crate::status::OrderStatus;

/// Where a SKU ships from and how it packs (the admin API's catalogue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingFacts {
    pub store: String,
    pub warehouse: String,
    #[serde(default = "regular")]
    pub handling: Handling,
    pub weight_grams: u64,
    pub volume_cm3: u64,
}

fn regular() -> Handling {
    Handling::Regular
}

impl ShippingFacts {
    /// A SKU the catalogue does not list: store and warehouse "default",
    /// regular handling, no weight or volume.
    pub fn unlisted() -> Self {
        Self {
            store: "default".into(),
            warehouse: "default".into(),
            handling: Handling::Regular,
            weight_grams: 0,
            volume_cm3: 0,
        }
    }
}

/// "Spend X, save Y" over some SKUs, possibly of several stores. A SKU is
/// in one promotion at most (the admin API refuses a second).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionTerms {
    pub threshold_cents: i64,
    pub discount_cents: i64,
    pub skus: Vec<String>,
}

/// A fixed-amount coupon with a minimum spend, used once per buyer; for
/// the buyers it names, or anyone if it names none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponTerms {
    pub discount_cents: i64,
    pub min_spend_cents: i64,
    #[serde(default)]
    pub users: Vec<u64>,
}

impl CouponTerms {
    pub fn is_for(&self, user_id: u64) -> bool {
        self.users.is_empty() || self.users.contains(&user_id)
    }
}

/// A cart line with its sale's price and its SKU's shipping facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub sku: String,
    pub qty: u32,
    pub unit_price_cents: i64,
    /// For a sale split over warehouses (regional stock), the facts'
    /// warehouse is the one the scheduling rules chose for the buyer's
    /// region; it packs and ships from there.
    pub facts: ShippingFacts,
    /// Whether the sale is split over warehouses: its items then hold their
    /// units in `facts.warehouse` and record it.
    pub regional: bool,
}

/// A line of the plan, with its discounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedLine {
    pub sku: String,
    pub qty: u32,
    pub unit_price_cents: i64,
    pub goods_cents: i64,
    pub promotions_cents: i64,
    pub coupon_cents: i64,
    /// What the member points spent on its items are worth.
    #[serde(default)]
    pub points_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub goods_cents: i64,
    pub promotions_cents: i64,
    pub coupon_cents: i64,
    /// The member points spent, and what they are worth.
    pub points: u64,
    pub points_cents: i64,
    pub freight_cents: i64,
    /// goods + freight − discounts − points: the one payment that covers the cart.
    pub payable_cents: i64,
    pub lines: Vec<PlannedLine>,
    /// The packages, numbered from 1, their items' ids minted.
    pub sub_orders: Vec<SubOrder>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Allocation(#[from] AllocationError),
    #[error(transparent)]
    Split(#[from] SplitError),
}

/// Plans a cart of `lines` with the promotions (by id; each applies to the
/// cart's lines of its SKUs), the coupon, the member points offered, each
/// store's freight template (a store without one ships free) and the
/// package limits; its items' ids minted by `next_id`, in cart order.
pub fn plan(
    lines: &[PricedLine],
    promotions: &[(String, PromotionTerms)],
    coupon: Option<&CouponTerms>,
    points: PointsOffer,
    freight: &HashMap<String, FreightTemplate>,
    limits: Limits,
    mut next_id: impl FnMut() -> OrderId,
) -> Result<Plan, PlanError> {
    let goods: Vec<i64> = lines.iter().map(|line| line.unit_price_cents * i64::from(line.qty)).collect();
    let mut ordered: Vec<&(String, PromotionTerms)> = promotions.iter().collect();
    ordered.sort_by(|a, b| a.0.cmp(&b.0));
    let mut covered = vec![false; lines.len()];
    let mut cart_promotions = Vec::new();
    for (_, terms) in ordered {
        let of_it: Vec<usize> =
            (0..lines.len()).filter(|&line| !covered[line] && terms.skus.contains(&lines[line].sku)).collect();
        if of_it.is_empty() {
            continue;
        }
        of_it.iter().for_each(|&line| covered[line] = true);
        cart_promotions.push(Promotion {
            threshold_cents: terms.threshold_cents,
            discount_cents: terms.discount_cents,
            lines: of_it,
        });
    }
    let coupon =
        coupon.map(|terms| Coupon { discount_cents: terms.discount_cents, min_spend_cents: terms.min_spend_cents });
    let allocation = allocate(&goods, &cart_promotions, coupon)?;

    let split_items: Vec<Item> = lines
        .iter()
        .map(|line| Item {
            store: line.facts.store.clone(),
            warehouse: line.facts.warehouse.clone(),
            handling: line.facts.handling,
            qty: line.qty,
            weight_grams: line.facts.weight_grams,
            volume_cm3: line.facts.volume_cm3,
        })
        .collect();
    let packages = split(&split_items, limits)?;

    // Each line's discount over its items, by units (a line's units cost alike).
    let mut line_units: Vec<Vec<i64>> = vec![Vec::new(); lines.len()];
    for package in &packages {
        for &(line, units) in &package.lines {
            line_units[line].push(i64::from(units));
        }
    }
    let mut item_discounts: Vec<std::vec::IntoIter<i64>> = line_units
        .iter()
        .zip(&allocation.lines)
        .map(|(units, discount)| shares(discount.total_cents(), units).into_iter())
        .collect();

    // Each store's freight over its packages, by goods.
    let package_goods: Vec<i64> = packages
        .iter()
        .map(|package| package.lines.iter().map(|&(line, units)| lines[line].unit_price_cents * i64::from(units)).sum())
        .collect();
    let mut package_freight = vec![0; packages.len()];
    let mut stores: Vec<&str> = packages.iter().map(|package| package.store.as_str()).collect();
    stores.dedup();
    for store in stores {
        let Some(template) = freight.get(store) else { continue };
        let of_store: Vec<usize> = (0..packages.len()).filter(|&p| packages[p].store == store).collect();
        let parts = template.shared(&of_store.iter().map(|&p| package_goods[p]).collect::<Vec<_>>());
        for (&p, part) in of_store.iter().zip(parts) {
            package_freight[p] = part;
        }
    }

    let mut sub_orders: Vec<SubOrder> = packages
        .iter()
        .zip(&package_freight)
        .zip(1..)
        .map(|((package, &freight_cents), sub_order)| {
            let goods: Vec<i64> =
                package.lines.iter().map(|&(line, units)| lines[line].unit_price_cents * i64::from(units)).collect();
            let freights = shares(freight_cents, &goods);
            let items = package
                .lines
                .iter()
                .zip(goods.iter().zip(freights))
                .map(|(&(line, units), (&goods_cents, freight_cents))| {
                    let discount_cents = item_discounts[line].next().expect("a discount part per item");
                    CheckoutItem {
                        order_id: next_id(),
                        line,
                        sku: lines[line].sku.clone(),
                        qty: units,
                        goods_cents,
                        discount_cents,
                        points: 0,
                        points_cents: 0,
                        freight_cents,
                        amount_cents: goods_cents - discount_cents + freight_cents,
                        sale_generation: 0,
                        warehouse: lines[line].regional.then(|| lines[line].facts.warehouse.clone()),
                    }
                })
                .collect();
            SubOrder {
                sub_order,
                store: package.store.clone(),
                warehouse: package.warehouse.clone(),
                handling: package.handling,
                freight_cents,
                items,
            }
        })
        .collect();

    let line_points = points::spend(&mut sub_orders, lines.len(), points);
    let planned_lines: Vec<PlannedLine> = lines
        .iter()
        .zip(goods.iter().zip(&allocation.lines))
        .zip(&line_points)
        .map(|((line, (&goods_cents, discount)), &line_points)| PlannedLine {
            sku: line.sku.clone(),
            qty: line.qty,
            unit_price_cents: line.unit_price_cents,
            goods_cents,
            promotions_cents: discount.promotions_cents,
            coupon_cents: discount.coupon_cents,
            points_cents: line_points as i64 * points.cents_per_point,
        })
        .collect();
    let goods_cents: i64 = goods.iter().sum();
    let promotions_cents: i64 = allocation.lines.iter().map(|line| line.promotions_cents).sum();
    let coupon_cents: i64 = allocation.lines.iter().map(|line| line.coupon_cents).sum();
    let spent: u64 = line_points.iter().sum();
    let points_cents = spent as i64 * points.cents_per_point;
    let freight_cents: i64 = package_freight.iter().sum();
    Ok(Plan {
        goods_cents,
        promotions_cents,
        coupon_cents,
        points: spent,
        points_cents,
        freight_cents,
        payable_cents: goods_cents - promotions_cents - coupon_cents - points_cents + freight_cents,
        lines: planned_lines,
        sub_orders,
    })
}

/// A placed checkout: the parent order as the buyer is answered, as its
/// `CheckoutCreated` event carries it and as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutOrder {
    /// The parent order's id; the one payment is for it.
    pub order_id: OrderId,
    pub user_id: u64,
    pub idempotency_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
    pub created_at: DateTime<Utc>,
    pub pay_by: DateTime<Utc>,
    pub goods_cents: i64,
    pub promotions_cents: i64,
    pub coupon_cents: i64,
    /// The member points asked for (part of what a repeat of the key must
    /// ask again), those spent, and what the spent ones are worth.
    #[serde(default)]
    pub points_asked: u64,
    #[serde(default)]
    pub points: u64,
    #[serde(default)]
    pub points_cents: i64,
    pub freight_cents: i64,
    pub payable_cents: i64,
    pub lines: Vec<PlannedLine>,
    pub sub_orders: Vec<SubOrder>,
    /// The storefront channel it came through, which its items record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// A package of the checkout, numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubOrder {
    pub sub_order: u32,
    pub store: String,
    pub warehouse: String,
    pub handling: Handling,
    pub freight_cents: i64,
    pub items: Vec<CheckoutItem>,
}

/// An item: an order of its own (`order_id`) in the buyer's shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutItem {
    pub order_id: OrderId,
    /// Index of its line in `lines`.
    pub line: usize,
    pub sku: String,
    pub qty: u32,
    pub goods_cents: i64,
    pub discount_cents: i64,
    /// Member points spent on it, and what they are worth: given back in
    /// proportion to the units cancelled or returned.
    #[serde(default)]
    pub points: u64,
    #[serde(default)]
    pub points_cents: i64,
    pub freight_cents: i64,
    /// goods − discount − points + freight: what its payment and its refund are.
    pub amount_cents: i64,
    /// The sale the units were reserved from (0 until its Try held them).
    #[serde(default)]
    pub sale_generation: i64,
    /// A sale split over warehouses: the warehouse holding its units (its
    /// sub-order's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
}

impl CheckoutOrder {
    /// The checkout of `plan`.
    pub fn new(
        plan: Plan,
        order_id: OrderId,
        user_id: u64,
        idempotency_key: String,
        (coupon, points_asked): (Option<String>, u64),
        created_at: DateTime<Utc>,
        pay_by: DateTime<Utc>,
    ) -> Self {
        Self {
            order_id,
            user_id,
            idempotency_key,
            coupon,
            created_at,
            pay_by,
            goods_cents: plan.goods_cents,
            promotions_cents: plan.promotions_cents,
            coupon_cents: plan.coupon_cents,
            points_asked,
            points: plan.points,
            points_cents: plan.points_cents,
            freight_cents: plan.freight_cents,
            payable_cents: plan.payable_cents,
            lines: plan.lines,
            sub_orders: plan.sub_orders,
            channel: None,
        }
    }

    /// Every item, with the number of its sub-order.
    pub fn items(&self) -> impl Iterator<Item = (u32, &CheckoutItem)> {
        self.sub_orders.iter().flat_map(|sub| sub.items.iter().map(move |item| (sub.sub_order, item)))
    }

    /// Whether a repeat of the request asks for the same cart.
    pub fn is_same_request(&self, user_id: u64, lines: &[(String, u32)], coupon: Option<&str>, points: u64) -> bool {
        self.user_id == user_id
            && self.coupon.as_deref() == coupon
            && self.points_asked == points
            && self.lines.len() == lines.len()
            && self.lines.iter().zip(lines).all(|(line, (sku, qty))| line.sku == *sku && line.qty == *qty)
    }
}

/// Where a checkout stands, from its items' statuses (each item is an
/// order of its own): awaiting its payment while any item is, cancelled
/// once every item is, else paid (its items may have moved on since, each
/// as its own status says).
pub fn checkout_status(items: &[OrderStatus]) -> OrderStatus {
    if items.contains(&OrderStatus::PendingPayment) {
        OrderStatus::PendingPayment
    } else if !items.is_empty() && items.iter().all(|status| *status == OrderStatus::Cancelled) {
        OrderStatus::Cancelled
    } else {
        OrderStatus::Paid
    }
}

/// The key an item's reservation and order row carry.
pub fn item_key(parent: OrderId, sub_order: u32) -> String {
    format!("cart.{parent}.{sub_order}")
}

mod points;

pub use points::PointsOffer;

#[cfg(test)]
mod tests;
