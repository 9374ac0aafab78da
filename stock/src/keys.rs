//! Redis key names, and the key list of each script in the order its header
//! (`-- KEYS[n] name`) gives: one Rust mirror per header, checked by the
//! test below. Every key of one SKU carries the hash tag `{sku}`, so each
//! script touches one cluster slot. Every key starts with the configured
//! namespace (empty by default; e.g. `staging:` to share one Redis between
//! deployments).

use order::id::OrderId;

/// The SKU whose sale key (`sale:{sku}` behind `namespace`) is `key`: the
/// message of the unit ledger's `units_back` channel.
pub fn sku_of_sale_key<'a>(namespace: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(namespace)?.strip_prefix("sale:{")?.strip_suffix('}')
}

/// The keys of one SKU's sale.
pub struct SaleKeys {
    /// Hash: `stock`, `reserved`, `sold`, `total`, `per_user_limit`, `price_cents`.
    pub sale: String,
    /// Hash: user id → units reserved or bought.
    pub buyers: String,
    /// Hash: order id → reservation.
    pub reservations: String,
    /// Sorted set: order id by payment deadline (ms).
    pub deadlines: String,
    /// Hash: order id → its first payment, taken or to refund;
    /// `<order id>:<payment id>` → any other payment (to refund).
    pub payments: String,
    /// Hash: `<order id>:<payment id>` → 1 once the payment's event is acknowledged.
    pub payment_events: String,
    /// Hash: order id → cancelled order.
    pub closed: String,
    /// List: cancellations whose event is not acknowledged yet.
    pub outbox: String,
    /// Hash: order id → units of a paid order cancelled, once they left `sold`.
    pub returned: String,
    /// Hash: the SKU's live sale figures (`order::sale_stats`), by name.
    pub stats: String,
    /// Set: every idempotency key that reserved units (`used_keys.lua`).
    pub used_keys: String,
    /// Hash: order id → what `adopt.lua` decided for a database fallback's order.
    pub adopted: String,
    /// Prefix of the SKU's idempotency records.
    idempotency_prefix: String,
}

impl SaleKeys {
    /// The keys of `sku`'s sale, each behind `namespace` (`redis.namespace`).
    pub fn new(namespace: &str, sku: &str) -> Self {
        Self {
            sale: format!("{namespace}sale:{{{sku}}}"),
            buyers: format!("{namespace}buyers:{{{sku}}}"),
            reservations: format!("{namespace}resv:{{{sku}}}"),
            deadlines: format!("{namespace}deadlines:{{{sku}}}"),
            payments: format!("{namespace}payments:{{{sku}}}"),
            payment_events: format!("{namespace}payment_events:{{{sku}}}"),
            closed: format!("{namespace}closed:{{{sku}}}"),
            outbox: format!("{namespace}outbox:{{{sku}}}"),
            returned: format!("{namespace}returned:{{{sku}}}"),
            stats: format!("{namespace}stats:{{{sku}}}"),
            used_keys: format!("{namespace}used_keys:{{{sku}}}"),
            adopted: format!("{namespace}adopted:{{{sku}}}"),
            idempotency_prefix: format!("{namespace}idem:{{{sku}}}:"),
        }
    }

    /// Idempotency keys are scoped to the SKU: the key names one press of one
    /// SKU's buy button, and sharing the SKU's slot keeps the script atomic.
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}{key}", self.idempotency_prefix)
    }

    /// The sale's keys, then one idempotency record per order.
    pub fn reserve<'a>(self, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
        let records: Vec<String> = keys.map(|key| self.idempotency(key)).collect();
        let mut all = vec![self.sale, self.buyers, self.reservations, self.deadlines, self.closed, self.used_keys];
        all.extend(records);
        all
    }

    pub fn used_keys(self) -> Vec<String> {
        vec![self.sale, self.used_keys]
    }

    pub fn release(self, key: &str) -> Vec<String> {
        let idempotency = self.idempotency(key);
        vec![self.sale, self.buyers, self.reservations, self.deadlines, idempotency]
    }

    /// The sale's keys, then one idempotency record per order.
    pub fn acknowledge<'a>(self, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
        let records: Vec<String> = keys.map(|key| self.idempotency(key)).collect();
        let mut all = vec![self.reservations, self.deadlines, self.closed, self.payments];
        all.extend(records);
        all
    }

    pub fn cancel(self) -> Vec<String> {
        vec![self.sale, self.buyers, self.reservations, self.deadlines, self.payments, self.closed, self.outbox]
    }

    pub fn sweep(self) -> Vec<String> {
        vec![self.sale, self.buyers, self.reservations, self.deadlines, self.closed, self.outbox]
    }

    pub fn confirm(self) -> Vec<String> {
        vec![
            self.sale,
            self.buyers,
            self.reservations,
            self.deadlines,
            self.payments,
            self.closed,
            self.payment_events,
            self.outbox,
        ]
    }

    pub fn tcc(self) -> Vec<String> {
        vec![self.sale, self.buyers, self.reservations, self.deadlines, self.closed, self.payments]
    }

    /// `acknowledge.lua` for cart items: they have no idempotency record of
    /// their own (the cart's lies in the buyer's slot), so each gets a key
    /// in this slot that is never written.
    pub fn acknowledge_items(self, items: &[OrderId]) -> Vec<String> {
        let unused: Vec<String> = items.iter().map(|item| self.idempotency(&format!("cart-item.{item}"))).collect();
        self.acknowledge(unused.iter().map(String::as_str))
    }

    pub fn load_sale(self) -> Vec<String> {
        vec![
            self.sale,
            self.buyers,
            self.reservations,
            self.deadlines,
            self.payments,
            self.closed,
            self.payment_events,
            self.outbox,
        ]
    }

    pub fn update_sale(self) -> Vec<String> {
        vec![self.sale]
    }

    pub fn warehouses(self) -> Vec<String> {
        vec![self.sale]
    }

    pub fn readdress(self, idempotency_key: &str) -> Vec<String> {
        let record = self.idempotency(idempotency_key);
        vec![self.sale, self.buyers, self.reservations, self.deadlines, self.payments, self.closed, record]
    }

    pub fn adopt(self, idempotency_key: &str) -> Vec<String> {
        let idempotency = self.idempotency(idempotency_key);
        vec![
            self.sale,
            self.buyers,
            self.reservations,
            self.deadlines,
            self.closed,
            self.used_keys,
            self.adopted,
            idempotency,
        ]
    }

    pub fn repair_sale(self) -> Vec<String> {
        vec![self.sale, self.reservations, self.returned]
    }

    pub fn return_units(self) -> Vec<String> {
        vec![self.sale, self.buyers, self.returned]
    }
}

/// The keys that span sales.
pub struct GlobalKeys {
    namespace: String,
    /// Set of the SKUs with a sale loaded.
    pub sales: String,
    /// Set of the SKUs that may hold reservations or unsent cancellations:
    /// what the sweeper visits each round. A SKU joins when it reserves
    /// and leaves when the sweeper finds nothing left to do.
    pub active_sales: String,
    /// Sorted set of payments to ask the channel about,
    /// `<sku>:<order id>:<started ms>` scored by when the next query is due (ms).
    pub payment_queries: String,
}

impl GlobalKeys {
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            sales: format!("{namespace}sales"),
            active_sales: format!("{namespace}active_sales"),
            payment_queries: format!("{namespace}payment_queries"),
        }
    }

    /// `node_lease.lua`: the lease on a gateway's node id, holding the holder's token.
    pub fn node_lease(&self, node_id: u8) -> Vec<String> {
        vec![format!("{}gateway_node:{node_id}", self.namespace)]
    }

    /// String: a buyer's strikes (orders they cancelled or let expire) in
    /// the window that began with the first; its TTL is the window's rest.
    pub fn strikes(&self, user_id: u64) -> String {
        format!("{}strikes:{{u{user_id}}}", self.namespace)
    }

    /// String: an order's view as the API answers it (`order_cache`).
    pub fn cached_order(&self, order_id: OrderId) -> String {
        format!("{}order:{{o{order_id}}}", self.namespace)
    }

    /// String: the status a pending order moved to in Redis (paid,
    /// cancelled), until the settler applied the move (`order_cache`).
    /// Same slot as the order's view.
    pub fn order_move(&self, order_id: OrderId) -> String {
        format!("{}order_move:{{o{order_id}}}", self.namespace)
    }

    /// String: a buyer's checkout under one idempotency key:
    /// `"<R|A>:<parent order id>:<created ms>"` (see `checkout_records`).
    pub fn checkout_key(&self, user_id: u64, key: &str) -> String {
        format!("{}checkout:{{u{user_id}}}:{key}", self.namespace)
    }

    /// Hash: a buyer's coupons, code → `<parent>` (frozen by that checkout)
    /// or `used:<parent>` (it was paid).
    pub fn coupon_uses(&self, user_id: u64) -> String {
        format!("{}coupon_uses:{{u{user_id}}}", self.namespace)
    }

    /// String: a checkout as answered, with its items (JSON), for its
    /// payment and its cancellation.
    pub fn checkout(&self, parent: OrderId) -> String {
        format!("{}cart:{{o{parent}}}", self.namespace)
    }

    /// Hashes of the catalogue a checkout prices with (JSON values):
    /// SKU → its shipping facts, promotion id → promotion, coupon code →
    /// coupon, store → freight template.
    pub fn catalogue(&self) -> [String; 4] {
        ["catalogue", "promotions", "coupons", "freight"].map(|name| format!("{}{name}", self.namespace))
    }

    pub fn claim_queries(&self) -> Vec<String> {
        vec![self.payment_queries.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::source;

    /// The `KEYS[n] name` pairs of a script's header, in order.
    fn header_keys(script: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for line in source(script).lines().take_while(|line| line.starts_with("--")) {
            let mut words = line.split_whitespace().peekable();
            while let Some(word) = words.next() {
                if let Some(n) = word.strip_prefix("KEYS[").and_then(|rest| rest.strip_suffix(']')) {
                    assert_eq!(n.parse::<usize>().unwrap(), keys.len() + 1, "{script}: KEYS out of order");
                    keys.push(words.next().expect("a key name after KEYS[n]").to_owned());
                }
            }
        }
        keys
    }

    #[test]
    fn each_script_gets_the_keys_its_header_names_in_that_order() {
        let sale = || SaleKeys::new("", "sku");
        let global = GlobalKeys::new("");
        let built: [(&str, Vec<String>); 18] = [
            ("reserve.lua", sale().reserve(["<key>"].into_iter())),
            ("used_keys.lua", sale().used_keys()),
            ("release.lua", sale().release("<key>")),
            ("acknowledge.lua", sale().acknowledge(["<key>"].into_iter())),
            ("cancel.lua", sale().cancel()),
            ("sweep.lua", sale().sweep()),
            ("confirm.lua", sale().confirm()),
            ("load_sale.lua", sale().load_sale()),
            ("update_sale.lua", sale().update_sale()),
            ("warehouses.lua", sale().warehouses()),
            ("readdress.lua", sale().readdress("<key>")),
            ("repair_sale.lua", sale().repair_sale()),
            ("adopt.lua", sale().adopt("<key>")),
            ("return_units.lua", sale().return_units()),
            ("tcc_try.lua", sale().tcc()),
            ("tcc_cancel.lua", sale().tcc()),
            ("node_lease.lua", global.node_lease(7)),
            ("claim_queries.lua", global.claim_queries()),
        ];
        for (script, keys) in built {
            let named = header_keys(script);
            assert!(!named.is_empty(), "{script}: no KEYS in its header");
            let keys: Vec<String> =
                keys.into_iter().map(|k| k.replace("gateway_node:7", "gateway_node:<id>")).collect();
            assert_eq!(keys, named, "{script}: the Rust key list differs from the header");
        }
    }

    #[test]
    fn keys_carry_the_namespace_and_the_hash_tag() {
        let keys = SaleKeys::new("staging:", "tv");
        assert_eq!(keys.idempotency("k1"), "staging:idem:{tv}:k1");
        assert!(keys.cancel().iter().all(|key| key.starts_with("staging:") && key.ends_with("{tv}")));
    }

    #[test]
    fn a_sale_key_names_its_sku_in_its_namespace_only() {
        let key = SaleKeys::new("staging:", "tv:55").sale;
        assert_eq!(sku_of_sale_key("staging:", &key), Some("tv:55"));
        assert_eq!(sku_of_sale_key("", &key), None);
        assert_eq!(sku_of_sale_key("staging:", "staging:resv:{tv}"), None);
    }
}
