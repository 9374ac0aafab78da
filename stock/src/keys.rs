//! Redis key names. Every key of one SKU carries the hash tag `{sku}`, so
//! each script touches one cluster slot. Every key starts with the
//! configured namespace (empty by default; e.g. `staging:` to share one
//! Redis between deployments).

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
        }
    }

    /// Idempotency keys are scoped to the SKU: the key names one press of one
    /// SKU's buy button, and sharing the SKU's slot keeps the script atomic.
    pub fn idempotency(namespace: &str, sku: &str, key: &str) -> String {
        format!("{namespace}idem:{{{sku}}}:{key}")
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
    /// The lease on a gateway's node id: the holder's token.
    pub fn node_lease(&self, node_id: u8) -> String {
        format!("{}gateway_node:{node_id}", self.namespace)
    }

    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            sales: format!("{namespace}sales"),
            active_sales: format!("{namespace}active_sales"),
            payment_queries: format!("{namespace}payment_queries"),
        }
    }
}
