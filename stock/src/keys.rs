//! Redis key names. Every key of one SKU carries the hash tag `{sku}`, so
//! each script touches one cluster slot.

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
    /// Hash: order id → the payment taken or to refund.
    pub payments: String,
    /// Hash: order id → 1 once the payment's event is acknowledged.
    pub payment_events: String,
    /// Hash: order id → cancelled order.
    pub closed: String,
    /// List: cancellations whose event is not acknowledged yet.
    pub outbox: String,
}

impl SaleKeys {
    pub fn new(sku: &str) -> Self {
        Self {
            sale: format!("sale:{{{sku}}}"),
            buyers: format!("buyers:{{{sku}}}"),
            reservations: format!("resv:{{{sku}}}"),
            deadlines: format!("deadlines:{{{sku}}}"),
            payments: format!("payments:{{{sku}}}"),
            payment_events: format!("payment_events:{{{sku}}}"),
            closed: format!("closed:{{{sku}}}"),
            outbox: format!("outbox:{{{sku}}}"),
        }
    }

    /// Idempotency keys are scoped to the SKU: the key names one press of one
    /// SKU's buy button, and sharing the SKU's slot keeps the script atomic.
    pub fn idempotency(sku: &str, key: &str) -> String {
        format!("idem:{{{sku}}}:{key}")
    }
}

/// Set of the SKUs with a sale loaded: what the sweeper visits.
pub const SALES: &str = "sales";

/// Sorted set of payments to ask the channel about, `<sku>:<order id>:<started ms>`
/// scored by when the next query is due (ms).
pub const PAYMENT_QUERIES: &str = "payment_queries";
