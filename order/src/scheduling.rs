//! Which warehouses serve a buyer's region, best first (seed 002: regional
//! stock is locked by scheduling rules before the order splits by
//! warehouse). The rules are the hours each warehouse takes to deliver to
//! each region it ships to, and the delivery time promised to buyers: a
//! region is served by the warehouses that deliver within the promise,
//! nearest (fewest hours) first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::request::{check_token, InvalidRequest};

/// The scheduling rules (`[scheduling]` in the gateway's config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulingRules {
    /// The delivery time promised to buyers, hours: a warehouse slower to a
    /// region does not serve it.
    pub promised_hours: u32,
    /// Warehouse → region → hours to deliver there.
    pub delivery_hours: BTreeMap<String, BTreeMap<String, u32>>,
}

impl Default for SchedulingRules {
    fn default() -> Self {
        Self { promised_hours: 72, delivery_hours: BTreeMap::new() }
    }
}

impl SchedulingRules {
    /// The warehouses serving `region`, nearest first (ties by name).
    pub fn rank(&self, region: &str) -> Vec<&str> {
        let mut serving: Vec<(u32, &str)> = self
            .delivery_hours
            .iter()
            .filter_map(|(warehouse, regions)| regions.get(region).map(|hours| (*hours, warehouse.as_str())))
            .filter(|(hours, _)| *hours <= self.promised_hours)
            .collect();
        serving.sort_unstable();
        serving.into_iter().map(|(_, warehouse)| warehouse).collect()
    }

    /// Names are tokens (they go into Redis fields and log lines as they are).
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        for (warehouse, regions) in &self.delivery_hours {
            check_token("scheduling warehouse", warehouse)?;
            for region in regions.keys() {
                check_token("scheduling region", region)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> SchedulingRules {
        let hours = |pairs: &[(&str, u32)]| pairs.iter().map(|(r, h)| (r.to_string(), *h)).collect();
        SchedulingRules {
            promised_hours: 48,
            delivery_hours: [
                ("shanghai".to_string(), hours(&[("east", 12), ("north", 36), ("south", 60)])),
                ("beijing".to_string(), hours(&[("north", 12), ("east", 36)])),
                ("guangzhou".to_string(), hours(&[("south", 12), ("east", 36)])),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn a_region_is_served_nearest_first_within_the_promise() {
        let rules = rules();
        assert_eq!(rules.rank("east"), ["shanghai", "beijing", "guangzhou"]);
        assert_eq!(rules.rank("north"), ["beijing", "shanghai"]);
        assert_eq!(rules.rank("south"), ["guangzhou"], "shanghai takes longer than promised");
        assert!(rules.rank("west").is_empty());
        assert!(rules.validate().is_ok());
    }

    #[test]
    fn names_must_be_tokens() {
        let mut rules = rules();
        rules.delivery_hours.insert("a:b".into(), BTreeMap::new());
        assert!(rules.validate().is_err());
    }
}
