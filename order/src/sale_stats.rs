//! A SKU's sale figures, counted from its order events: what one event adds
//! ([`SaleStats::of`]), sums, and the drift between two counts (live, from
//! the event stream, against recomputed, from the orders database). The
//! figures cover every sale of the SKU.

use serde::Serialize;

use crate::event::{CancelReason, OrderCreated, OrderEvent};
use crate::status::OrderStatus;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SaleStats {
    /// Orders created (accepted, and those whose outcome was unknown).
    pub accepted: i64,
    pub accepted_cents: i64,
    pub paid: i64,
    /// Gross merchandise value: what was paid for orders.
    pub paid_cents: i64,
    pub cancelled_user: i64,
    pub cancelled_timeout: i64,
    pub cancelled_unconfirmed: i64,
    pub cancelled_after_payment: i64,
    /// Paid for when the units were gone (a sale deducting at payment).
    pub cancelled_sold_out: i64,
    /// Taken by the database fallback under a key a retry had used in Redis.
    pub cancelled_duplicate_key: i64,
    /// Refunds the channel confirmed.
    pub refunded: i64,
    pub refunded_cents: i64,
}

impl SaleStats {
    /// What `event` adds to its SKU's figures; `None` for events that add
    /// nothing (or name no SKU).
    pub fn of(event: &OrderEvent) -> Option<(&str, Self)> {
        let mut stats = Self::default();
        let sku = match event {
            OrderEvent::OrderCreated(order) => return Some(Self::of_created(order)),
            OrderEvent::OrderPaid(paid) => {
                stats.paid = 1;
                stats.paid_cents = paid.order.amount_cents;
                &paid.order.sku
            }
            OrderEvent::OrderCancelled(cancelled) => {
                *stats.cancelled(cancelled.reason) = 1;
                &cancelled.order.sku
            }
            OrderEvent::OrderStatusChanged(changed) if changed.to == OrderStatus::Cancelled => {
                stats.cancelled_after_payment = 1;
                &changed.order.sku
            }
            OrderEvent::RefundCompleted(refund) if !refund.sku.is_empty() => {
                stats.refunded = 1;
                stats.refunded_cents = refund.amount_cents;
                &refund.sku
            }
            _ => return None,
        };
        Some((sku, stats))
    }

    /// What a new order adds.
    pub fn of_created(order: &OrderCreated) -> (&str, Self) {
        (&order.sku, Self { accepted: 1, accepted_cents: order.amount_cents, ..Self::default() })
    }

    pub fn cancelled(&mut self, reason: CancelReason) -> &mut i64 {
        match reason {
            CancelReason::User => &mut self.cancelled_user,
            CancelReason::Timeout => &mut self.cancelled_timeout,
            CancelReason::Unconfirmed => &mut self.cancelled_unconfirmed,
            CancelReason::AfterPayment => &mut self.cancelled_after_payment,
            CancelReason::SoldOut => &mut self.cancelled_sold_out,
            CancelReason::DuplicateKey => &mut self.cancelled_duplicate_key,
        }
    }

    /// Every figure by name, in a fixed order (Redis hash fields, metrics labels).
    pub fn fields(&self) -> [(&'static str, i64); 12] {
        [
            ("accepted", self.accepted),
            ("accepted_cents", self.accepted_cents),
            ("paid", self.paid),
            ("paid_cents", self.paid_cents),
            ("cancelled_user", self.cancelled_user),
            ("cancelled_timeout", self.cancelled_timeout),
            ("cancelled_unconfirmed", self.cancelled_unconfirmed),
            ("cancelled_after_payment", self.cancelled_after_payment),
            ("cancelled_sold_out", self.cancelled_sold_out),
            ("cancelled_duplicate_key", self.cancelled_duplicate_key),
            ("refunded", self.refunded),
            ("refunded_cents", self.refunded_cents),
        ]
    }

    /// Figures read back by name; unknown names are ignored.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, i64)>) -> Self {
        let mut stats = Self::default();
        for (name, value) in fields {
            let figure = match name {
                "accepted" => &mut stats.accepted,
                "accepted_cents" => &mut stats.accepted_cents,
                "paid" => &mut stats.paid,
                "paid_cents" => &mut stats.paid_cents,
                "cancelled_user" => &mut stats.cancelled_user,
                "cancelled_timeout" => &mut stats.cancelled_timeout,
                "cancelled_unconfirmed" => &mut stats.cancelled_unconfirmed,
                "cancelled_after_payment" => &mut stats.cancelled_after_payment,
                "cancelled_sold_out" => &mut stats.cancelled_sold_out,
                "cancelled_duplicate_key" => &mut stats.cancelled_duplicate_key,
                "refunded" => &mut stats.refunded,
                "refunded_cents" => &mut stats.refunded_cents,
                _ => continue,
            };
            *figure = value;
        }
        stats
    }

    pub fn add(&mut self, other: &Self) {
        let sum: Vec<(&str, i64)> =
            self.fields().iter().zip(other.fields()).map(|((name, a), (_, b))| (*name, a + b)).collect();
        *self = Self::from_fields(sum);
    }

    /// Paid orders per created order.
    pub fn conversion(&self) -> Option<f64> {
        (self.accepted > 0).then(|| self.paid as f64 / self.accepted as f64)
    }

    /// The figures that differ: (name, this count, `other`'s).
    pub fn drift(&self, other: &Self) -> Vec<(&'static str, i64, i64)> {
        self.fields()
            .iter()
            .zip(other.fields())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((name, a), (_, b))| (*name, *a, b))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::event::{OrderCancelled, OrderPaid, RefundCompleted};
    use crate::id::OrderId;

    fn created(amount_cents: i64) -> OrderCreated {
        OrderCreated {
            order_id: OrderId::from_raw(1),
            user_id: 7,
            sku: "tv".into(),
            qty: 1,
            amount_cents,
            idempotency_key: "k".into(),
            created_at: Utc::now(),
            pay_by: Utc::now(),
            sale_generation: 0,
            warehouse: None,
            channel: None,
        }
    }

    #[test]
    fn each_event_adds_its_figures_and_the_names_read_back() {
        let events = [
            OrderEvent::OrderCreated(created(500)),
            OrderEvent::OrderCreated(created(300)),
            OrderEvent::OrderPaid(OrderPaid {
                order: created(500),
                payment_channel: "card".into(),
                payment_id: "p".into(),
                paid_at: Utc::now(),
            }),
            OrderEvent::OrderCancelled(OrderCancelled {
                order: created(300),
                reason: CancelReason::Timeout,
                cancelled_at: Utc::now(),
            }),
            OrderEvent::RefundCompleted(RefundCompleted {
                refund_id: "rf".into(),
                order_id: OrderId::from_raw(1),
                user_id: 7,
                sku: "tv".into(),
                payment_id: "p".into(),
                amount_cents: 500,
                at: Utc::now(),
            }),
        ];
        let mut total = SaleStats::default();
        for event in &events {
            let (sku, stats) = SaleStats::of(event).unwrap();
            assert_eq!(sku, "tv");
            total.add(&stats);
        }
        let expected = SaleStats {
            accepted: 2,
            accepted_cents: 800,
            paid: 1,
            paid_cents: 500,
            cancelled_timeout: 1,
            refunded: 1,
            refunded_cents: 500,
            ..SaleStats::default()
        };
        assert_eq!(total, expected);
        assert_eq!(total.conversion(), Some(0.5));
        assert_eq!(SaleStats::from_fields(total.fields()), total);
        let recomputed = SaleStats { paid: 2, ..expected };
        assert_eq!(total.drift(&recomputed), [("paid", 1, 2)]);
    }
}
