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
        regional: false,
    }
}

const LIMITS: Limits = Limits { max_weight_grams: 10_000, max_volume_cm3: 100_000 };

/// No member points.
const NO_POINTS: PointsOffer = PointsOffer { asked: 0, cents_per_point: 1, max_per_order: 0 };

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
/// Seed 002's cart: A to E from two stores; A and D in "spend 200, save
/// 40", B and C in "spend 100, save 10"; a 100 cash coupon.
fn seed_cart() -> ([PricedLine; 5], [(String, PromotionTerms); 2], CouponTerms) {
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
    (lines, promotions, coupon)
}

/// As the seed has it: free shipping. Each item pays its goods less its
/// part of the discounts.
#[test]
fn the_seed_cart_ships_free_and_plans_to_the_cent() {
    let (lines, promotions, coupon) = seed_cart();
    let plan = plan(&lines, &promotions, Some(&coupon), NO_POINTS, &HashMap::new(), LIMITS, ids()).unwrap();
    assert_eq!(
        (plan.goods_cents, plan.promotions_cents, plan.coupon_cents, plan.freight_cents, plan.payable_cents),
        (40_000, 5_000, 10_000, 0, 25_000)
    );
    let amounts: Vec<i64> = plan.sub_orders.iter().flat_map(|p| &p.items).map(|i| i.amount_cents).collect();
    assert_eq!(amounts, [7_013, 3_896, 3_247, 5_844, 5_000]);
}

/// The same cart with each store's freight template.
#[test]
fn the_seed_cart_with_freight_templates_plans_to_the_cent() {
    let (lines, promotions, coupon) = seed_cart();
    let freight = HashMap::from([
        ("s1".to_owned(), FreightTemplate { free_over_cents: 10_000, fee_cents: 600 }),
        ("s2".to_owned(), FreightTemplate { free_over_cents: 30_000, fee_cents: 800 }),
    ]);
    let plan = plan(&lines, &promotions, Some(&coupon), NO_POINTS, &freight, LIMITS, ids()).unwrap();
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
        let points = PointsOffer {
            asked: rng.gen_range(0..100_000),
            cents_per_point: rng.gen_range(1..=100),
            max_per_order: rng.gen_range(0..50_000),
        };
        let Ok(plan) = plan(&lines, &promotions, coupon.as_ref(), points, &freight, LIMITS, ids()) else { continue };
        let items: Vec<&CheckoutItem> = plan.sub_orders.iter().flat_map(|p| &p.items).collect();
        assert_eq!(items.iter().map(|i| i.amount_cents).sum::<i64>(), plan.payable_cents);
        for (index, line) in plan.lines.iter().enumerate() {
            let of_line: Vec<&&CheckoutItem> = items.iter().filter(|i| i.line == index).collect();
            assert_eq!(of_line.iter().map(|i| i.qty).sum::<u32>(), line.qty);
            assert_eq!(of_line.iter().map(|i| i.goods_cents).sum::<i64>(), line.goods_cents);
            let discount = line.promotions_cents + line.coupon_cents;
            assert_eq!(of_line.iter().map(|i| i.discount_cents).sum::<i64>(), discount);
            assert!(of_line.iter().all(|i| (0..=i.goods_cents).contains(&i.discount_cents)), "{of_line:?}");
            assert_eq!(of_line.iter().map(|i| i.points_cents).sum::<i64>(), line.points_cents);
            let worth = |i: &&&CheckoutItem| i.points as i64 * points.cents_per_point == i.points_cents;
            assert!(of_line.iter().all(worth), "{of_line:?}");
            let leaves_a_cent = |i: &&&CheckoutItem| i.points == 0 || i.discount_cents + i.points_cents < i.goods_cents;
            assert!(of_line.iter().all(leaves_a_cent), "{of_line:?}");
        }
        assert!(plan.points <= points.asked.min(points.max_per_order));
        assert_eq!(items.iter().map(|i| i.points).sum::<u64>(), plan.points);
        assert_eq!(plan.points as i64 * points.cents_per_point, plan.points_cents);
        for package in &plan.sub_orders {
            assert_eq!(package.items.iter().map(|i| i.freight_cents).sum::<i64>(), package.freight_cents);
            assert!(package.items.iter().all(|i| i.freight_cents >= 0 && i.amount_cents >= 0));
        }
    }
}

/// Points are the third discount: after the promotions and the coupon,
/// over the lines by what each can take, capped per order and by the
/// cart's amount.
#[test]
fn points_spend_after_the_other_discounts_within_the_cap() {
    let (lines, promotions, coupon) = seed_cart();
    let offer = |asked, max_per_order| PointsOffer { asked, cents_per_point: 10, max_per_order };
    let without = plan(&lines, &promotions, Some(&coupon), NO_POINTS, &HashMap::new(), LIMITS, ids()).unwrap();
    let with = plan(&lines, &promotions, Some(&coupon), offer(1_000, 5_000), &HashMap::new(), LIMITS, ids()).unwrap();
    assert_eq!((with.points, with.points_cents), (1_000, 10_000));
    assert_eq!(with.payable_cents, without.payable_cents - 10_000);
    let line_points: Vec<i64> = with.lines.iter().map(|line| line.points_cents).collect();
    assert_eq!(line_points.iter().sum::<i64>(), 10_000);
    assert!(line_points.iter().all(|&cents| cents > 0 && cents % 10 == 0), "{line_points:?}");
    let capped = plan(&lines, &promotions, Some(&coupon), offer(1_000, 300), &HashMap::new(), LIMITS, ids()).unwrap();
    assert_eq!(capped.points, 300, "the cap per order");
    let all = plan(&lines, &promotions, Some(&coupon), offer(u64::MAX, u64::MAX), &HashMap::new(), LIMITS, ids());
    let all = all.unwrap();
    assert_eq!(all.payable_cents, without.payable_cents - all.points_cents);
    assert!((5..5 + 10 * 5).contains(&all.payable_cents), "a cent an item, and what no whole point covers");
}

#[test]
fn a_regional_lines_items_record_the_warehouse_chosen_and_pack_from_it() {
    let mut east = line("tv", 2, 1_000, "s1", Handling::Regular, 100);
    east.facts.warehouse = "shanghai".into();
    east.regional = true;
    let lamp = line("lamp", 1, 500, "s1", Handling::Regular, 100);
    let plan = plan(&[east, lamp], &[], None, NO_POINTS, &HashMap::new(), LIMITS, ids()).unwrap();
    let warehouses: Vec<(&str, Option<&str>)> = plan
        .sub_orders
        .iter()
        .flat_map(|sub| sub.items.iter().map(move |item| (sub.warehouse.as_str(), item.warehouse.as_deref())))
        .collect();
    assert_eq!(warehouses, [("shanghai", Some("shanghai")), ("s1-wh", None)], "split by the warehouse chosen");
}

#[test]
fn a_checkout_stands_as_its_items_do() {
    use OrderStatus::*;
    assert_eq!(checkout_status(&[PendingPayment, PendingPayment]), PendingPayment);
    assert_eq!(checkout_status(&[Paid, PendingPayment]), PendingPayment, "its payment is still settling");
    assert_eq!(checkout_status(&[Cancelled, Cancelled]), Cancelled);
    assert_eq!(checkout_status(&[Paid, Cancelled]), Paid, "paid, one item cancelled since");
    assert_eq!(checkout_status(&[Shipped, Completed]), Paid);
}
