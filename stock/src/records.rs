//! The values the scripts store, parsed: reservations, idempotency records,
//! payments and cancellations. Their formats are documented in `stock/lua/`.

use chrono::{DateTime, Utc};
use order::event::{CancelReason, OrderCancelled, OrderCreated};
use order::id::OrderId;

/// `<user>:<qty>:<amount cents>:<created ms>:<pay by ms>:<sale generation>:<idempotency key>`,
/// then `:<warehouse>` for a sale split over warehouses: the value of a
/// reservation (see `stock/lua/lib/reservation.lua`). Reservations made
/// before generations were recorded lack that field: generation 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRecord {
    pub user_id: u64,
    pub qty: u32,
    pub amount_cents: i64,
    pub created_ms: i64,
    pub pay_by_ms: i64,
    /// The sale's `loaded_ms` when the order was placed.
    pub sale_generation: i64,
    pub idempotency_key: String,
    /// The warehouse its units are in, for a sale split over warehouses.
    pub warehouse: Option<String>,
}

impl ReservationRecord {
    pub fn parse(text: &str) -> Option<Self> {
        // Idempotency keys hold no ':', so six fields are the older format.
        let parts: Vec<&str> = text.split(':').collect();
        let (sale_generation, idempotency_key, warehouse) = match parts.as_slice() {
            [_, _, _, _, _, generation, key, warehouse] => (generation.parse().ok()?, *key, Some(*warehouse)),
            [_, _, _, _, _, generation, key] => (generation.parse().ok()?, *key, None),
            [_, _, _, _, _, key] => (0, *key, None),
            _ => return None,
        };
        Some(Self {
            user_id: parts[0].parse().ok()?,
            qty: parts[1].parse().ok()?,
            amount_cents: parts[2].parse().ok()?,
            created_ms: parts[3].parse().ok()?,
            pay_by_ms: parts[4].parse().ok()?,
            sale_generation,
            idempotency_key: idempotency_key.to_owned(),
            warehouse: warehouse.map(str::to_owned),
        })
    }

    /// The order this reservation was made for, as its events describe it.
    pub fn order(&self, order_id: OrderId, sku: &str) -> OrderCreated {
        OrderCreated {
            order_id,
            user_id: self.user_id,
            sku: sku.to_owned(),
            qty: self.qty,
            amount_cents: self.amount_cents,
            idempotency_key: self.idempotency_key.clone(),
            created_at: from_ms(self.created_ms),
            pay_by: from_ms(self.pay_by_ms),
            sale_generation: self.sale_generation,
            warehouse: self.warehouse.clone(),
            channel: None,
        }
    }
}

/// The first answer to an idempotency key, as `reserve.lua` stores it:
/// `"<R|A>:<user>:<qty>:<order id>:<amount cents>:<pay by ms>:<created ms>:<sale generation>"`
/// (the generation missing in records from before it was recorded: 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The broker acknowledged the order's `OrderCreated` event.
    pub acknowledged: bool,
    pub user_id: u64,
    pub qty: u32,
    pub order_id: OrderId,
    pub amount_cents: i64,
    pub pay_by_ms: i64,
    pub created_ms: i64,
    pub sale_generation: i64,
    /// The warehouse its units are in, for a sale split over warehouses.
    pub warehouse: Option<String>,
}

impl IdempotencyRecord {
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let acknowledged = match parts.next()? {
            "A" => true,
            "R" => false,
            _ => return None,
        };
        let record = Self {
            acknowledged,
            user_id: parts.next()?.parse().ok()?,
            qty: parts.next()?.parse().ok()?,
            order_id: parts.next()?.parse().ok()?,
            amount_cents: parts.next()?.parse().ok()?,
            pay_by_ms: parts.next()?.parse().ok()?,
            created_ms: parts.next()?.parse().ok()?,
            sale_generation: match parts.next() {
                Some(generation) => generation.parse().ok()?,
                None => 0,
            },
            warehouse: parts.next().map(str::to_owned),
        };
        parts.next().is_none().then_some(record)
    }
}

/// `<reason>:<reservation>`: a cancelled order (`closed:{sku}`).
pub fn parse_closed(text: &str) -> Option<(CancelReason, ReservationRecord)> {
    let (reason, reservation) = text.split_once(':')?;
    Some((CancelReason::parse(reason)?, ReservationRecord::parse(reservation)?))
}

/// `<order id>:<reason>:<reservation>`: a cancellation waiting in the outbox
/// for its event. `at_ms` is when it is sent.
pub fn parse_outbox_entry(text: &str, sku: &str, at_ms: i64) -> Option<OrderCancelled> {
    let (order_id, closed) = text.split_once(':')?;
    let (reason, reservation) = parse_closed(closed)?;
    let order_id: OrderId = order_id.parse().ok()?;
    Some(OrderCancelled { order: reservation.order(order_id, sku), reason, cancelled_at: from_ms(at_ms) })
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_records_parse() {
        let text = "R:42:2:81234567:39800:1790000900000:1790000000000:1789999000000";
        let record = IdempotencyRecord::parse(text).unwrap();
        assert!(!record.acknowledged);
        assert_eq!((record.order_id.raw(), record.sale_generation), (81234567, 1789999000000));
        // From before generations were recorded: generation 0.
        let older = IdempotencyRecord::parse("R:42:2:81234567:39800:1790000900000:1790000000000").unwrap();
        assert_eq!(older.sale_generation, 0);
        let regional = "A:42:2:81234567:39800:1790000900000:1790000000000:1789999000000:shanghai";
        let record = IdempotencyRecord::parse(regional).unwrap();
        assert_eq!(record.warehouse.as_deref(), Some("shanghai"));
        for bad in ["", "X:1:1:1:1:1:1", "R:1:1:1:1:1", "R:1:1:1:1:1:1:1:1:1", "R:a:1:1:1:1:1", "R:1:1:1:1:1:1:x"] {
            assert_eq!(IdempotencyRecord::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn outbox_entries_become_cancellations() {
        let entry = "81234567:timeout:42:2:39800:1790000000000:1790000900000:1789999000000:key-1";
        let cancelled = parse_outbox_entry(entry, "tv", 1_790_000_900_500).unwrap();
        assert_eq!(cancelled.reason, CancelReason::Timeout);
        assert_eq!(cancelled.order.sale_generation, 1789999000000);
        let older = "81234567:timeout:42:2:39800:1790000000000:1790000900000:key-1";
        assert_eq!(parse_outbox_entry(older, "tv", 0).unwrap().order.idempotency_key, "key-1");
        assert_eq!(cancelled.order.order_id.raw(), 81234567);
        assert_eq!((cancelled.order.user_id, cancelled.order.qty, cancelled.order.amount_cents), (42, 2, 39800));
        assert_eq!(cancelled.order.idempotency_key, "key-1");
        assert_eq!(cancelled.order.sku, "tv");
        assert!(parse_outbox_entry("81234567:lost:42:2:1:1:1:k", "tv", 0).is_none());
        let regional = format!("{entry}:shanghai");
        assert_eq!(parse_outbox_entry(&regional, "tv", 0).unwrap().order.warehouse.as_deref(), Some("shanghai"));
    }
}
