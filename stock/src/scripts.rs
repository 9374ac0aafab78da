//! The Lua scripts, embedded at build time from `stock/lua/`. Every script
//! that moves units runs with the unit ledger (`stock/lua/lib/units.lua`)
//! in front, and those that make or end reservations with
//! `stock/lua/lib/reservation.lua` after it.

use fred::types::scripts::Script;

/// The one place units move between stock, reserved and sold.
const UNITS_LIB: &str = include_str!("../lua/lib/units.lua");
/// The helpers of the scripts that make or end reservations.
const RESERVATION_LIB: &str = include_str!("../lua/lib/reservation.lua");
pub const RESERVE_LUA: &str = include_str!("../lua/reserve.lua");

/// Every script by file name, as written (without the lib).
const SOURCES: [(&str, &str); 18] = [
    ("reserve.lua", RESERVE_LUA),
    ("release.lua", include_str!("../lua/release.lua")),
    ("acknowledge.lua", include_str!("../lua/acknowledge.lua")),
    ("cancel.lua", include_str!("../lua/cancel.lua")),
    ("sweep.lua", include_str!("../lua/sweep.lua")),
    ("confirm.lua", include_str!("../lua/confirm.lua")),
    ("load_sale.lua", include_str!("../lua/load_sale.lua")),
    ("update_sale.lua", include_str!("../lua/update_sale.lua")),
    ("warehouses.lua", include_str!("../lua/warehouses.lua")),
    ("readdress.lua", include_str!("../lua/readdress.lua")),
    ("repair_sale.lua", include_str!("../lua/repair_sale.lua")),
    ("return_units.lua", include_str!("../lua/return_units.lua")),
    ("tcc_try.lua", include_str!("../lua/tcc_try.lua")),
    ("tcc_cancel.lua", include_str!("../lua/tcc_cancel.lua")),
    ("node_lease.lua", include_str!("../lua/node_lease.lua")),
    ("claim_queries.lua", include_str!("../lua/claim_queries.lua")),
    ("used_keys.lua", include_str!("../lua/used_keys.lua")),
    ("adopt.lua", include_str!("../lua/adopt.lua")),
];

/// The source of a script by file name; panics on a name not in `stock/lua/`.
pub(crate) fn source(name: &str) -> &'static str {
    SOURCES.iter().find(|(file, _)| *file == name).map(|(_, source)| *source).expect("a script in lua/")
}

/// The scripts, ready to call by SHA.
pub(crate) struct Scripts {
    pub reserve: Script,
    pub release: Script,
    pub acknowledge: Script,
    pub cancel: Script,
    pub sweep: Script,
    pub confirm: Script,
    pub load_sale: Script,
    pub update_sale: Script,
    pub warehouses: Script,
    pub readdress: Script,
    pub repair_sale: Script,
    pub return_units: Script,
    pub tcc_try: Script,
    pub tcc_cancel: Script,
    pub node_lease: Script,
    pub claim_queries: Script,
    pub used_keys: Script,
    pub adopt: Script,
}

impl Scripts {
    pub fn new() -> Self {
        let with_lib = |name| Script::from_lua(format!("{UNITS_LIB}\n{RESERVATION_LIB}\n{}", source(name)));
        let with_units = |name| Script::from_lua(format!("{UNITS_LIB}\n{}", source(name)));
        let alone = |name| Script::from_lua(source(name));
        Self {
            reserve: with_lib("reserve.lua"),
            release: with_lib("release.lua"),
            acknowledge: alone("acknowledge.lua"),
            cancel: with_lib("cancel.lua"),
            sweep: with_lib("sweep.lua"),
            confirm: with_lib("confirm.lua"),
            load_sale: with_lib("load_sale.lua"),
            update_sale: with_units("update_sale.lua"),
            warehouses: with_units("warehouses.lua"),
            readdress: with_lib("readdress.lua"),
            repair_sale: with_units("repair_sale.lua"),
            return_units: with_units("return_units.lua"),
            tcc_try: with_lib("tcc_try.lua"),
            tcc_cancel: with_lib("tcc_cancel.lua"),
            node_lease: alone("node_lease.lua"),
            claim_queries: alone("claim_queries.lua"),
            used_keys: alone("used_keys.lua"),
            adopt: with_lib("adopt.lua"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line of Lua that writes one of the ledger's four counts.
    fn writes_a_count(line: &str) -> bool {
        let writes = ["'HINCRBY'", "'HSET'", "'HINCRBYFLOAT'", "'HDEL'"].iter().any(|command| line.contains(command));
        writes && ["'stock'", "'reserved'", "'sold'", "'total'"].iter().any(|count| line.contains(count))
    }

    #[test]
    fn only_the_unit_ledger_moves_units() {
        let others =
            SOURCES.iter().map(|(name, source)| (*name, *source)).chain([("lib/reservation.lua", RESERVATION_LIB)]);
        for (name, source) in others {
            for line in source.lines().filter(|line| !line.trim_start().starts_with("--")) {
                assert!(!writes_a_count(line), "{name} moves units itself; call lib/units.lua instead: {line}");
            }
        }
        assert!(UNITS_LIB.lines().any(writes_a_count), "the ledger writes the counts");
    }
}
