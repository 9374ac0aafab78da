//! Order splitting: a cart's lines into packages, each a sub-order that
//! ships, is received and is returned on its own. Lines split by store,
//! then warehouse, then handling (fragile and oversized goods are packed
//! apart from the rest), then by the carrier's per-package weight and
//! volume limits, which may put a line's units into several packages.
//! Each store's freight, from its template, is shared over its packages in
//! proportion to their goods.

use serde::{Deserialize, Serialize};

use crate::allocation::shares;

/// How a line's goods must be packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    Regular,
    Fragile,
    Oversized,
}

impl Handling {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regular => "regular",
            Self::Fragile => "fragile",
            Self::Oversized => "oversized",
        }
    }
}

/// One cart line as splitting sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub store: String,
    pub warehouse: String,
    pub handling: Handling,
    pub qty: u32,
    pub weight_grams: u64,
    pub volume_cm3: u64,
}

/// The carrier's limits per package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_weight_grams: u64,
    pub max_volume_cm3: u64,
}

/// Units of some lines of one store, warehouse and handling, within the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub store: String,
    pub warehouse: String,
    pub handling: Handling,
    /// (line index into the cart, units), in cart order.
    pub lines: Vec<(usize, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("one unit of line {line} is heavier or larger than a package may be")]
    UnitTooLarge { line: usize },
}

/// The cart's packages: groups in the order their first line comes in the
/// cart; within a group, lines in cart order, each filling the open
/// package as far as the limits allow before the next one opens.
pub fn split(items: &[Item], limits: Limits) -> Result<Vec<Package>, SplitError> {
    let mut groups: Vec<Vec<Package>> = Vec::new();
    for (line, item) in items.iter().enumerate() {
        if item.weight_grams > limits.max_weight_grams || item.volume_cm3 > limits.max_volume_cm3 {
            return Err(SplitError::UnitTooLarge { line });
        }
        let same = |package: &Package| {
            package.store == item.store && package.warehouse == item.warehouse && package.handling == item.handling
        };
        let group = match groups.iter().position(|group| same(&group[0])) {
            Some(group) => group,
            None => {
                groups.push(vec![empty(item)]);
                groups.len() - 1
            }
        };
        let packages = &mut groups[group];
        let mut left = item.qty;
        while left > 0 {
            let open = packages.last_mut().expect("a group has a package");
            let (weight, volume) = load(open, items);
            let fit = fits(limits.max_weight_grams - weight, item.weight_grams)
                .min(fits(limits.max_volume_cm3 - volume, item.volume_cm3))
                .min(u64::from(left)) as u32;
            if fit == 0 {
                packages.push(empty(item));
                continue;
            }
            open.lines.push((line, fit));
            left -= fit;
        }
    }
    Ok(groups.into_iter().flatten().collect())
}

fn empty(item: &Item) -> Package {
    Package { store: item.store.clone(), warehouse: item.warehouse.clone(), handling: item.handling, lines: Vec::new() }
}

/// Units of `per_unit` that fit in `room` (any number if they weigh nothing).
fn fits(room: u64, per_unit: u64) -> u64 {
    room.checked_div(per_unit).unwrap_or(u64::MAX)
}

/// (grams, cm³) a package holds.
fn load(package: &Package, items: &[Item]) -> (u64, u64) {
    package.lines.iter().fold((0, 0), |(weight, volume), &(line, units)| {
        let item = &items[line];
        (weight + item.weight_grams * u64::from(units), volume + item.volume_cm3 * u64::from(units))
    })
}

/// A store's freight: free once its goods reach `free_over_cents`, else `fee_cents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreightTemplate {
    pub free_over_cents: i64,
    pub fee_cents: i64,
}

impl FreightTemplate {
    /// The freight of a store's goods, shared over its packages in
    /// proportion to their goods (cents each, adding up to the freight).
    pub fn shared(&self, package_goods_cents: &[i64]) -> Vec<i64> {
        let goods: i64 = package_goods_cents.iter().sum();
        let freight = if goods >= self.free_over_cents { 0 } else { self.fee_cents };
        shares(freight, package_goods_cents)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn item(store: &str, warehouse: &str, handling: Handling, qty: u32, weight_grams: u64) -> Item {
        Item { store: store.into(), warehouse: warehouse.into(), handling, qty, weight_grams, volume_cm3: 1_000 }
    }

    const LIMITS: Limits = Limits { max_weight_grams: 10_000, max_volume_cm3: 100_000 };

    #[test]
    fn lines_split_by_store_then_warehouse_then_handling_then_weight() {
        let cart = [
            item("a", "sh", Handling::Regular, 1, 500),
            item("b", "bj", Handling::Regular, 1, 500),
            item("a", "sh", Handling::Fragile, 2, 500),
            item("a", "gz", Handling::Regular, 1, 500),
            item("a", "sh", Handling::Regular, 5, 4_000),
            item("b", "bj", Handling::Oversized, 1, 9_000),
        ];
        let packages = split(&cart, LIMITS).unwrap();
        type Shape<'a> = (&'a str, &'a str, Handling, Vec<(usize, u32)>);
        let shape: Vec<Shape> =
            packages.iter().map(|p| (p.store.as_str(), p.warehouse.as_str(), p.handling, p.lines.clone())).collect();
        assert_eq!(
            shape,
            [
                // 0.5 kg + two 4 kg units fill the first box (8.5 kg), then 2 and 1 more.
                ("a", "sh", Handling::Regular, vec![(0, 1), (4, 2)]),
                ("a", "sh", Handling::Regular, vec![(4, 2)]),
                ("a", "sh", Handling::Regular, vec![(4, 1)]),
                ("b", "bj", Handling::Regular, vec![(1, 1)]),
                ("a", "sh", Handling::Fragile, vec![(2, 2)]),
                ("a", "gz", Handling::Regular, vec![(3, 1)]),
                ("b", "bj", Handling::Oversized, vec![(5, 1)]),
            ]
        );
        let too_heavy = [item("a", "sh", Handling::Oversized, 1, 10_001)];
        assert_eq!(split(&too_heavy, LIMITS), Err(SplitError::UnitTooLarge { line: 0 }));
    }

    #[test]
    fn freight_is_free_over_the_threshold_and_shared_to_the_cent() {
        let template = FreightTemplate { free_over_cents: 9_900, fee_cents: 1_000 };
        assert_eq!(template.shared(&[5_000, 4_900]), [0, 0]);
        assert_eq!(template.shared(&[3_000, 1_000, 2_000]), [500, 167, 333]);
        assert_eq!(template.shared(&[0, 0]), [500, 500]);
    }

    /// Random carts: every unit of every line is in exactly one package,
    /// no package is over a limit or mixes stores, warehouses or handling.
    #[test]
    fn every_unit_is_packed_once_within_the_limits() {
        let mut rng = StdRng::seed_from_u64(5);
        let handlings = [Handling::Regular, Handling::Fragile, Handling::Oversized];
        for _ in 0..5_000 {
            let cart: Vec<Item> = (0..rng.gen_range(1..=50))
                .map(|_| Item {
                    store: ["a", "b", "c"][rng.gen_range(0..3)].into(),
                    warehouse: ["sh", "bj"][rng.gen_range(0..2)].into(),
                    handling: handlings[rng.gen_range(0..3)],
                    qty: rng.gen_range(1..=20),
                    weight_grams: rng.gen_range(0..=10_000),
                    volume_cm3: rng.gen_range(0..=100_000),
                })
                .collect();
            let packages = split(&cart, LIMITS).unwrap();
            let mut packed = vec![0; cart.len()];
            for package in &packages {
                assert!(!package.lines.is_empty());
                let (weight, volume) = load(package, &cart);
                assert!(weight <= LIMITS.max_weight_grams && volume <= LIMITS.max_volume_cm3);
                for &(line, units) in &package.lines {
                    let item = &cart[line];
                    assert_eq!(
                        (&item.store, &item.warehouse, item.handling),
                        (&package.store, &package.warehouse, package.handling)
                    );
                    packed[line] += units;
                }
            }
            assert_eq!(packed, cart.iter().map(|item| item.qty).collect::<Vec<_>>());
        }
    }
}
