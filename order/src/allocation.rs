//! Discount allocation: an order's discounts spread over the lines they
//! cover, in cents, so each line knows what was paid for it (a refund of a
//! returned line gives back exactly that).
//!
//! Each discount is split in proportion to the amounts of the lines it
//! covers, by the largest remainder: every line gets the floor of its exact
//! share, and the cents left go one each to the lines with the largest
//! remainders, ties to the earlier line. The parts add up exactly to the
//! discount, none is negative or above its line's amount, and the same
//! cart always splits the same way. Promotions apply first, each on its
//! own lines' amounts; the coupon then applies to what every line has left.

/// A "spend X, save Y" promotion over some of the cart's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The lines' amounts together must reach this, cents.
    pub threshold_cents: i64,
    pub discount_cents: i64,
    /// The lines it covers, by index into the cart.
    pub lines: Vec<usize>,
}

/// A fixed-amount coupon over the whole cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coupon {
    pub discount_cents: i64,
    /// What the cart must come to after promotions, cents.
    pub min_spend_cents: i64,
}

/// What each line was given off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineDiscount {
    pub promotions_cents: i64,
    pub coupon_cents: i64,
}

impl LineDiscount {
    pub fn total_cents(&self) -> i64 {
        self.promotions_cents + self.coupon_cents
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// One per line, in the cart's order.
    pub lines: Vec<LineDiscount>,
    /// The promotions that applied (their thresholds were reached), by index.
    pub applied: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("a line amount or discount is negative")]
    Negative,
    #[error("promotion {0} names a line the cart does not have, or a line twice")]
    UnknownLine(usize),
    #[error("line {line} is in two promotions")]
    TwoPromotions { line: usize },
    #[error("promotion {0} gives more off than its lines cost")]
    PromotionAboveAmount(usize),
    #[error("the cart comes to {left_cents} after promotions, below the coupon's minimum spend")]
    BelowMinimumSpend { left_cents: i64 },
    #[error("the coupon gives more off than the cart costs after promotions")]
    CouponAboveAmount,
}

/// Spreads the promotions (those whose threshold the lines reach), then
/// the coupon, over a cart of `amounts` (cents per line).
pub fn allocate(
    amounts: &[i64],
    promotions: &[Promotion],
    coupon: Option<Coupon>,
) -> Result<Allocation, AllocationError> {
    if amounts.iter().any(|amount| *amount < 0) {
        return Err(AllocationError::Negative);
    }
    let mut lines = vec![LineDiscount::default(); amounts.len()];
    let mut promoted = vec![false; amounts.len()];
    let mut applied = Vec::new();
    for (index, promotion) in promotions.iter().enumerate() {
        if promotion.discount_cents < 0 || promotion.threshold_cents < 0 {
            return Err(AllocationError::Negative);
        }
        let mut covered = Vec::with_capacity(promotion.lines.len());
        for &line in &promotion.lines {
            if line >= amounts.len() || covered.contains(&line) {
                return Err(AllocationError::UnknownLine(index));
            }
            if promoted[line] {
                return Err(AllocationError::TwoPromotions { line });
            }
            covered.push(line);
        }
        let covered_amounts: Vec<i64> = covered.iter().map(|&line| amounts[line]).collect();
        if covered_amounts.iter().sum::<i64>() < promotion.threshold_cents {
            continue;
        }
        let parts =
            spread(promotion.discount_cents, &covered_amounts).ok_or(AllocationError::PromotionAboveAmount(index))?;
        for (&line, part) in covered.iter().zip(parts) {
            lines[line].promotions_cents = part;
            promoted[line] = true;
        }
        applied.push(index);
    }
    if let Some(coupon) = coupon {
        if coupon.discount_cents < 0 || coupon.min_spend_cents < 0 {
            return Err(AllocationError::Negative);
        }
        let left: Vec<i64> = amounts.iter().zip(&lines).map(|(amount, line)| amount - line.promotions_cents).collect();
        let left_cents = left.iter().sum::<i64>();
        if left_cents < coupon.min_spend_cents {
            return Err(AllocationError::BelowMinimumSpend { left_cents });
        }
        let parts = spread(coupon.discount_cents, &left).ok_or(AllocationError::CouponAboveAmount)?;
        for (line, part) in lines.iter_mut().zip(parts) {
            line.coupon_cents = part;
        }
    }
    Ok(Allocation { lines, applied })
}

/// `discount` split over `amounts` by the largest remainder; `None` if it
/// is more than they come to.
pub fn spread(discount: i64, amounts: &[i64]) -> Option<Vec<i64>> {
    (discount <= amounts.iter().sum()).then(|| shares(discount, amounts))
}

/// `total` (not negative) split in proportion to `weights` (not
/// negative) by the largest remainder, ties to the earlier one; evenly if
/// the weights are all zero. The parts add up exactly to `total` (no parts
/// for no weights).
pub fn shares(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i64 = weights.iter().sum();
    if weights.is_empty() {
        return Vec::new();
    }
    if sum == 0 {
        return shares(total, &vec![1; weights.len()]);
    }
    let (total_wide, sum) = (i128::from(total), i128::from(sum));
    let mut parts: Vec<i64> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
    for (index, &weight) in weights.iter().enumerate() {
        let exact = total_wide * i128::from(weight);
        parts.push((exact / sum) as i64);
        remainders.push((exact % sum, index));
    }
    let left = total - parts.iter().sum::<i64>();
    // Largest remainder first; ties to the earlier one.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, index) in remainders.iter().take(left as usize) {
        parts[index] += 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// The seed's example: items A–E from two stores; "spend 200, save 40"
    /// across the stores on A and D, "spend 100, save 10" on B and C, and a
    /// 100 coupon. Prices chosen here: A 120, B 60, C 50, D 100, E 70 (in
    /// cents below). Worked by hand:
    /// - promotion 1, 4000 over A 12000 and D 10000 (22000): A 2181.8, D 1818.2
    ///   → floors 2181 + 1818 = 3999, the cent left to A (remainder .8): A 2182, D 1818;
    /// - promotion 2, 1000 over B 6000 and C 5000 (11000): B 545.45, C 454.55
    ///   → 545 + 454 = 999, the cent to C (.55 over .45): B 545, C 455;
    /// - the coupon, 10000 over what is left, A 9818, B 5455, C 4545,
    ///   D 8182, E 7000 (35000): A 2805.14, B 1558.57, C 1298.57, D 2337.71,
    ///   E 2000 → floors come to 9998; the two cents go to D (.71) and, of B
    ///   and C tied at .5714, to B, the earlier line: A 2805, B 1559,
    ///   C 1298, D 2338, E 2000.
    ///
    /// Each line: A 4987, B 2104, C 1753, D 4156, E 2000 = 15000, the 150 off.
    #[test]
    fn the_seeds_example_worked_by_hand() {
        let amounts = [12_000, 6_000, 5_000, 10_000, 7_000];
        let promotions = [
            Promotion { threshold_cents: 20_000, discount_cents: 4_000, lines: vec![0, 3] },
            Promotion { threshold_cents: 10_000, discount_cents: 1_000, lines: vec![1, 2] },
        ];
        let coupon = Coupon { discount_cents: 10_000, min_spend_cents: 0 };
        let allocation = allocate(&amounts, &promotions, Some(coupon)).unwrap();
        let promotions_cents: Vec<i64> = allocation.lines.iter().map(|l| l.promotions_cents).collect();
        let coupon_cents: Vec<i64> = allocation.lines.iter().map(|l| l.coupon_cents).collect();
        let totals: Vec<i64> = allocation.lines.iter().map(LineDiscount::total_cents).collect();
        assert_eq!(promotions_cents, [2_182, 545, 455, 1_818, 0]);
        assert_eq!(coupon_cents, [2_805, 1_559, 1_298, 2_338, 2_000]);
        assert_eq!(totals, [4_987, 2_104, 1_753, 4_156, 2_000]);
        assert_eq!(totals.iter().sum::<i64>(), 15_000);
        assert_eq!(allocation.applied, [0, 1]);
    }

    #[test]
    fn a_promotion_below_its_threshold_gives_nothing_and_bad_input_is_refused() {
        let amounts = [9_000, 1_000];
        let spend_200 = Promotion { threshold_cents: 20_000, discount_cents: 4_000, lines: vec![0, 1] };
        let allocation = allocate(&amounts, std::slice::from_ref(&spend_200), None).unwrap();
        assert_eq!((allocation.applied.len(), allocation.lines[0].total_cents()), (0, 0));
        let coupon = Coupon { discount_cents: 500, min_spend_cents: 20_000 };
        assert_eq!(
            allocate(&amounts, &[], Some(coupon)),
            Err(AllocationError::BelowMinimumSpend { left_cents: 10_000 })
        );
        let too_much = Coupon { discount_cents: 10_001, min_spend_cents: 0 };
        assert_eq!(allocate(&amounts, &[], Some(too_much)), Err(AllocationError::CouponAboveAmount));
        let twice = Promotion { threshold_cents: 0, discount_cents: 1, lines: vec![0, 0] };
        assert_eq!(allocate(&amounts, &[twice], None), Err(AllocationError::UnknownLine(0)));
        let overlapping = [
            Promotion { threshold_cents: 0, discount_cents: 1, lines: vec![0] },
            Promotion { threshold_cents: 0, discount_cents: 1, lines: vec![0, 1] },
        ];
        assert_eq!(allocate(&amounts, &overlapping, None), Err(AllocationError::TwoPromotions { line: 0 }));
    }

    /// Random carts, promotions and coupons: every discount's parts add up
    /// to it exactly, no part is negative or above what its line had left,
    /// and the same cart always splits the same way.
    #[test]
    fn parts_always_add_up_and_stay_within_each_line() {
        let mut rng = StdRng::seed_from_u64(17);
        for _ in 0..20_000 {
            let lines = rng.gen_range(1..=50);
            let amounts: Vec<i64> = (0..lines).map(|_| rng.gen_range(0..=1_000_000)).collect();
            let mut free: Vec<usize> = (0..lines).collect();
            let mut promotions = Vec::new();
            while !free.is_empty() && rng.gen_bool(0.6) {
                let take = rng.gen_range(1..=free.len());
                let covered: Vec<usize> = free.drain(..take).collect();
                let sum: i64 = covered.iter().map(|&line| amounts[line]).sum();
                let threshold_cents = rng.gen_range(0..=sum.max(1) * 2);
                promotions.push(Promotion { threshold_cents, discount_cents: rng.gen_range(0..=sum), lines: covered });
            }
            let allocation = allocate(&amounts, &promotions, None).unwrap();
            let left: i64 = amounts.iter().zip(&allocation.lines).map(|(a, l)| a - l.promotions_cents).sum();
            let coupon = Coupon { discount_cents: rng.gen_range(0..=left), min_spend_cents: 0 };
            let allocation = allocate(&amounts, &promotions, Some(coupon)).unwrap();
            assert_eq!(allocate(&amounts, &promotions, Some(coupon)).unwrap(), allocation, "deterministic");
            for (index, promotion) in promotions.iter().enumerate() {
                let given: i64 = promotion.lines.iter().map(|&line| allocation.lines[line].promotions_cents).sum();
                let want = if allocation.applied.contains(&index) { promotion.discount_cents } else { 0 };
                assert_eq!(given, want, "promotion {index}");
            }
            assert_eq!(allocation.lines.iter().map(|l| l.coupon_cents).sum::<i64>(), coupon.discount_cents);
            for (amount, line) in amounts.iter().zip(&allocation.lines) {
                assert!(line.promotions_cents >= 0 && line.coupon_cents >= 0, "{line:?}");
                assert!(line.total_cents() <= *amount, "{line:?} over {amount}");
            }
        }
    }
}
