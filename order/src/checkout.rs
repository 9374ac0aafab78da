//! A cart checkout's plan, before any unit is taken: the catalogue's terms
//! (each SKU's shipping facts, promotions, the coupon, freight templates),
//! the discounts spread over the lines ([`crate::allocation`]), the lines
//! split into packages ([`crate::splitting`]), and each package's freight.
//!
//! The plan's unit is the *item*: one SKU's units in one package (a line
//! may lie in several packages). An item is reserved, paid, cancelled,
//! shipped and returned like a single order, with its own order id; a
//! package (a sub-order) is the items that ship together. What an item
//! costs its buyer is its goods, less its part of the line's discounts,
//! plus its part of its package's freight: the parts of each add up
//! exactly to the whole, so the items' amounts add up to what the buyer pays.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::allocation::{allocate, shares, AllocationError, Coupon, Promotion};
use crate::id::OrderId;
use crate::splitting::{split, FreightTemplate, Handling, Item, Limits, SplitError};

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
    pub facts: ShippingFacts,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub goods_cents: i64,
    pub promotions_cents: i64,
    pub coupon_cents: i64,
    pub freight_cents: i64,
    /// goods + freight − discounts: the one payment that covers the cart.
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
/// cart's lines of its SKUs), the coupon, each store's freight template (a
/// store without one ships free) and the package limits; its items' ids
/// minted by `next_id`, in cart order.
pub fn plan(
    lines: &[PricedLine],
    promotions: &[(String, PromotionTerms)],
    coupon: Option<&CouponTerms>,
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

    let sub_orders: Vec<SubOrder> = packages
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
                        freight_cents,
                        amount_cents: goods_cents - discount_cents + freight_cents,
                        sale_generation: 0,
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

    let planned_lines: Vec<PlannedLine> = lines
        .iter()
        .zip(goods.iter().zip(&allocation.lines))
        .map(|(line, (&goods_cents, discount))| PlannedLine {
            sku: line.sku.clone(),
            qty: line.qty,
            unit_price_cents: line.unit_price_cents,
            goods_cents,
            promotions_cents: discount.promotions_cents,
            coupon_cents: discount.coupon_cents,
        })
        .collect();
    let goods_cents: i64 = goods.iter().sum();
    let promotions_cents: i64 = allocation.lines.iter().map(|line| line.promotions_cents).sum();
    let coupon_cents: i64 = allocation.lines.iter().map(|line| line.coupon_cents).sum();
    let freight_cents: i64 = package_freight.iter().sum();
    Ok(Plan {
        goods_cents,
        promotions_cents,
        coupon_cents,
        freight_cents,
        payable_cents: goods_cents - promotions_cents - coupon_cents + freight_cents,
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
    pub freight_cents: i64,
    pub payable_cents: i64,
    pub lines: Vec<PlannedLine>,
    pub sub_orders: Vec<SubOrder>,
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
    pub freight_cents: i64,
    /// goods − discount + freight: what its payment and its refund are.
    pub amount_cents: i64,
    /// The sale the units were reserved from (0 until its Try held them).
    #[serde(default)]
    pub sale_generation: i64,
}

impl CheckoutOrder {
    /// The checkout of `plan`.
    pub fn new(
        plan: Plan,
        order_id: OrderId,
        user_id: u64,
        idempotency_key: String,
        coupon: Option<String>,
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
            freight_cents: plan.freight_cents,
            payable_cents: plan.payable_cents,
            lines: plan.lines,
            sub_orders: plan.sub_orders,
        }
    }

    /// Every item, with the number of its sub-order.
    pub fn items(&self) -> impl Iterator<Item = (u32, &CheckoutItem)> {
        self.sub_orders.iter().flat_map(|sub| sub.items.iter().map(move |item| (sub.sub_order, item)))
    }

    /// Whether a repeat of the request asks for the same cart.
    pub fn is_same_request(&self, user_id: u64, lines: &[(String, u32)], coupon: Option<&str>) -> bool {
        self.user_id == user_id
            && self.coupon.as_deref() == coupon
            && self.lines.len() == lines.len()
            && self.lines.iter().zip(lines).all(|(line, (sku, qty))| line.sku == *sku && line.qty == *qty)
    }
}

/// The key an item's reservation and order row carry.
pub fn item_key(parent: OrderId, sub_order: u32) -> String {
    format!("cart.{parent}.{sub_order}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, qty: u32, price: i64, store: &str, handling: Handling, weight_grams: u64) -> PricedLine {
        PricedLine {
            sku: sku.into(),
            qty,
            unit_price_cents: price,
            facts: ShippingFacts {
                store: store.into(),
                warehouse: format!("{store}-wh"),
                handling,
                weight_grams,
                volume_cm3: 1_000,
            },
        }
    }

    const LIMITS: Limits = Limits { max_weight_grams: 10_000, max_volume_cm3: 100_000 };

    /// Item ids 1, 2, 3, ...
    fn ids() -> impl FnMut() -> OrderId {
        let mut next = 0;
        move || {
            next += 1;
            OrderId::from_raw(next)
        }
    }

    /// The seed's cart: A–E from two stores, 40 off over 200 on A and D,
    /// 10 off over 100 on B and C, a 100 coupon; store 1 ships free over
    /// 100, store 2 charges 8 under 300. Worked by hand in the comments.
    #[test]
    fn the_seed_cart_plans_to_the_cent() {
        let lines = [
            line("A", 1, 12_000, "s1", Handling::Regular, 500),
            line("B", 1, 6_000, "s1", Handling::Fragile, 500),
            line("C", 1, 5_000, "s2", Handling::Regular, 500),
            line("D", 1, 10_000, "s2", Handling::Regular, 500),
            line("E", 1, 7_000, "s2", Handling::Regular, 500),
        ];
        let promotions = [
            (
                "p1".to_owned(),
                PromotionTerms { threshold_cents: 20_000, discount_cents: 4_000, skus: vec!["A".into(), "D".into()] },
            ),
            (
                "p2".to_owned(),
                PromotionTerms { threshold_cents: 10_000, discount_cents: 1_000, skus: vec!["B".into(), "C".into()] },
            ),
        ];
        let coupon = CouponTerms { discount_cents: 10_000, min_spend_cents: 20_000, users: vec![] };
        let freight = HashMap::from([
            ("s1".to_owned(), FreightTemplate { free_over_cents: 10_000, fee_cents: 600 }),
            ("s2".to_owned(), FreightTemplate { free_over_cents: 30_000, fee_cents: 800 }),
        ]);
        let plan = plan(&lines, &promotions, Some(&coupon), &freight, LIMITS, ids()).unwrap();
        // Promotions: A,D 220 ≥ 200 → 40 as 120:100 → 21.82 / 18.18 → 2181.8 → 2181 + 1 = 2182, 1818.
        // B,C 110 ≥ 100 → 10 as 60:50 → 5.45 / 4.55 → 545, 455.
        // Left: A 9818, B 5455, C 4545, D 8182, E 7000 = 35000; the 100 coupon ≥ min 200:
        // A 2805.14, B 1558.57, C 1298.57, D 2337.71, E 2000 → floors leave 2 cents:
        // D (.71) and then B (ties with C at .57; the earlier line).
        let discounts: Vec<(i64, i64)> = plan.lines.iter().map(|l| (l.promotions_cents, l.coupon_cents)).collect();
        assert_eq!(discounts, [(2_182, 2_805), (545, 1_559), (455, 1_298), (1_818, 2_338), (0, 2_000)]);
        // Packages: s1 regular (A), s1 fragile (B), s2 regular (C, D, E).
        // s1's goods 180 ≥ 100: free. s2's 220 < 300: 8.
        let shape: Vec<(&str, Handling, i64, usize)> =
            plan.sub_orders.iter().map(|p| (p.store.as_str(), p.handling, p.freight_cents, p.items.len())).collect();
        assert_eq!(
            shape,
            [("s1", Handling::Regular, 0, 1), ("s1", Handling::Fragile, 0, 1), ("s2", Handling::Regular, 800, 3)]
        );
        // s2's 800 over C, D, E by goods 50:100:70 → 181.8, 363.6, 254.5 → floors 798, +1 to C and D.
        let freights: Vec<i64> = plan.sub_orders[2].items.iter().map(|i| i.freight_cents).collect();
        assert_eq!(freights, [182, 364, 254]);
        assert_eq!(
            (plan.goods_cents, plan.promotions_cents, plan.coupon_cents, plan.freight_cents, plan.payable_cents),
            (40_000, 5_000, 10_000, 800, 25_800)
        );
        let amounts: i64 = plan.sub_orders.iter().flat_map(|p| &p.items).map(|i| i.amount_cents).sum();
        assert_eq!(amounts, plan.payable_cents, "the items' amounts are the payment");
    }

    /// Random carts, promotions, coupons and templates: the parts always
    /// add up, to the payment and within each line and package.
    #[test]
    fn random_plans_add_up() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(17);
        let handlings = [Handling::Regular, Handling::Fragile, Handling::Oversized];
        for _ in 0..2_000 {
            let n = rng.gen_range(1..=8);
            let lines: Vec<PricedLine> = (0..n)
                .map(|i| {
                    let store = format!("s{}", rng.gen_range(0..3));
                    let handling = handlings[rng.gen_range(0..3)];
                    line(
                        &format!("k{i}"),
                        rng.gen_range(1..=20),
                        rng.gen_range(0..50_000),
                        &store,
                        handling,
                        rng.gen_range(0..4_000),
                    )
                })
                .collect();
            let promotions: Vec<(String, PromotionTerms)> = (0..rng.gen_range(0..3))
                .map(|p| {
                    let skus = (0..n).filter(|_| rng.gen_bool(0.5)).map(|i| format!("k{i}")).collect();
                    (
                        format!("p{p}"),
                        PromotionTerms {
                            threshold_cents: rng.gen_range(0..100_000),
                            discount_cents: rng.gen_range(0..5_000),
                            skus,
                        },
                    )
                })
                .collect();
            let coupon = rng.gen_bool(0.5).then(|| CouponTerms {
                discount_cents: rng.gen_range(0..20_000),
                min_spend_cents: rng.gen_range(0..50_000),
                users: vec![],
            });
            let freight = HashMap::from([
                (
                    "s0".to_owned(),
                    FreightTemplate { free_over_cents: rng.gen_range(0..200_000), fee_cents: rng.gen_range(0..2_000) },
                ),
                ("s1".to_owned(), FreightTemplate { free_over_cents: 0, fee_cents: 900 }),
            ]);
            let Ok(plan) = plan(&lines, &promotions, coupon.as_ref(), &freight, LIMITS, ids()) else { continue };
            let items: Vec<&CheckoutItem> = plan.sub_orders.iter().flat_map(|p| &p.items).collect();
            assert_eq!(items.iter().map(|i| i.amount_cents).sum::<i64>(), plan.payable_cents);
            for (index, line) in plan.lines.iter().enumerate() {
                let of_line: Vec<&&CheckoutItem> = items.iter().filter(|i| i.line == index).collect();
                assert_eq!(of_line.iter().map(|i| i.qty).sum::<u32>(), line.qty);
                assert_eq!(of_line.iter().map(|i| i.goods_cents).sum::<i64>(), line.goods_cents);
                let discount = line.promotions_cents + line.coupon_cents;
                assert_eq!(of_line.iter().map(|i| i.discount_cents).sum::<i64>(), discount);
                assert!(of_line.iter().all(|i| (0..=i.goods_cents).contains(&i.discount_cents)), "{of_line:?}");
            }
            for package in &plan.sub_orders {
                assert_eq!(package.items.iter().map(|i| i.freight_cents).sum::<i64>(), package.freight_cents);
                assert!(package.items.iter().all(|i| i.freight_cents >= 0 && i.amount_cents >= 0));
            }
        }
    }
}
