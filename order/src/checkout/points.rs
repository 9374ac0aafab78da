//! Member points over a cart's items: the third discount, after the
//! promotions and the coupon.

use crate::allocation::shares;

use super::{CheckoutItem, SubOrder};

/// Member points offered to a cart (seed 002's virtual currency, the third
/// discount, after promotions and the coupon): how many the buyer asks to
/// spend, what one is worth, and the most one checkout may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointsOffer {
    pub asked: u64,
    pub cents_per_point: i64,
    pub max_per_order: u64,
}

/// Spends up to `offer.asked` points on the items (at most `max_per_order`,
/// and on no item more than its goods less its discounts are worth): over
/// the lines by the largest-remainder rule, weighted by what each can
/// take, then over each line's items the same way. Sets each item's points
/// and takes their worth off its amount; the points spent per line.
pub(super) fn spend(sub_orders: &mut [SubOrder], lines: usize, offer: PointsOffer) -> Vec<u64> {
    let worth = offer.cents_per_point.max(1);
    // Every item keeps at least a cent to pay: a payment and a refund of
    // nothing are not what a channel takes.
    let capacity = |item: &CheckoutItem| (item.goods_cents - item.discount_cents - 1).max(0) / worth;
    let mut line_capacity = vec![0i64; lines];
    for item in sub_orders.iter().flat_map(|sub| &sub.items) {
        line_capacity[item.line] += capacity(item);
    }
    let spendable = offer.asked.min(offer.max_per_order).min(line_capacity.iter().sum::<i64>() as u64);
    let line_points = shares(spendable as i64, &line_capacity);
    for (line, &points) in line_points.iter().enumerate() {
        let mut items: Vec<&mut CheckoutItem> =
            sub_orders.iter_mut().flat_map(|sub| sub.items.iter_mut()).filter(|item| item.line == line).collect();
        let weights: Vec<i64> = items.iter().map(|item| capacity(item)).collect();
        for (item, part) in items.iter_mut().zip(shares(points, &weights)) {
            item.points = part as u64;
            item.points_cents = part * worth;
            item.amount_cents -= item.points_cents;
        }
    }
    line_points.into_iter().map(|points| points as u64).collect()
}
