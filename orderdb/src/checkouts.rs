//! Cart checkouts in the buyer's shard: the parent, its lines, sub-orders
//! and items, and each item's order row, written in one transaction.

use order::checkout::{CheckoutOrder, PlannedLine};
use order::event::OrderCreated;
use order::id::OrderId;
use order::status::OrderStatus;
use sqlx::{MySql, QueryBuilder};

use crate::orders::{insert, StoredOrder};
use crate::shards::ShardPools;

/// A stored checkout's item with its order's status now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredItem {
    pub sub_order: u32,
    pub line_no: u32,
    pub goods_cents: i64,
    pub discount_cents: i64,
    pub freight_cents: i64,
    pub order: StoredOrder,
}

impl ShardPools {
    /// Stores a checkout and its items' orders, once: a redelivered event
    /// changes nothing, and an item's order a later event recorded first
    /// (an item cancelled at its confirm deadline) is left as it is. The
    /// item orders this call stored.
    pub async fn insert_checkout(&self, checkout: &CheckoutOrder) -> Result<Vec<OrderId>, sqlx::Error> {
        let mut tx = self.for_user(checkout.user_id).begin().await?;
        let parent = checkout.order_id.raw() as i64;
        let inserted = sqlx::query(
            "INSERT IGNORE INTO checkouts (order_id, user_id, idempotency_key, coupon, goods_cents, promotions_cents, \
             coupon_cents, freight_cents, payable_cents, created_at, pay_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(parent)
        .bind(checkout.user_id)
        .bind(&checkout.idempotency_key)
        .bind(&checkout.coupon)
        .bind(checkout.goods_cents)
        .bind(checkout.promotions_cents)
        .bind(checkout.coupon_cents)
        .bind(checkout.freight_cents)
        .bind(checkout.payable_cents)
        .bind(checkout.created_at.naive_utc())
        .bind(checkout.pay_by.naive_utc())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(Vec::new());
        }

        let mut lines = QueryBuilder::<MySql>::new(
            "INSERT INTO checkout_lines (order_id, line_no, sku, qty, unit_price_cents, goods_cents, \
             promotions_cents, coupon_cents) ",
        );
        lines.push_values(checkout.lines.iter().enumerate(), |mut row, (line_no, line): (usize, &PlannedLine)| {
            row.push_bind(parent)
                .push_bind(line_no as u32)
                .push_bind(&line.sku)
                .push_bind(line.qty)
                .push_bind(line.unit_price_cents)
                .push_bind(line.goods_cents)
                .push_bind(line.promotions_cents)
                .push_bind(line.coupon_cents);
        });
        lines.build().execute(&mut *tx).await?;

        let mut subs = QueryBuilder::<MySql>::new(
            "INSERT INTO sub_orders (order_id, sub_order, store, warehouse, handling, freight_cents) ",
        );
        subs.push_values(&checkout.sub_orders, |mut row, sub| {
            row.push_bind(parent)
                .push_bind(sub.sub_order)
                .push_bind(&sub.store)
                .push_bind(&sub.warehouse)
                .push_bind(sub.handling.as_str())
                .push_bind(sub.freight_cents);
        });
        subs.build().execute(&mut *tx).await?;

        let mut items = QueryBuilder::<MySql>::new(
            "INSERT INTO checkout_items (item_id, order_id, sub_order, line_no, goods_cents, discount_cents, \
             freight_cents) ",
        );
        items.push_values(checkout.items(), |mut row, (sub_order, item)| {
            row.push_bind(item.order_id.raw() as i64)
                .push_bind(parent)
                .push_bind(sub_order)
                .push_bind(item.line as u32)
                .push_bind(item.goods_cents)
                .push_bind(item.discount_cents)
                .push_bind(item.freight_cents);
        });
        items.build().execute(&mut *tx).await?;

        let orders: Vec<OrderCreated> =
            checkout.items().map(|(sub, item)| OrderCreated::of_checkout_item(checkout, sub, item)).collect();
        let mut known = QueryBuilder::<MySql>::new("SELECT order_id FROM orders WHERE order_id IN (");
        let mut ids = known.separated(", ");
        for order in &orders {
            ids.push_bind(order.order_id.raw() as i64);
        }
        known.push(") FOR UPDATE");
        let known: Vec<(i64,)> = known.build_query_as().fetch_all(&mut *tx).await?;
        let rows: Vec<&OrderCreated> = orders.iter().collect();
        let mut statement = insert(&rows, OrderStatus::PendingPayment);
        statement.push(" ON DUPLICATE KEY UPDATE order_id = order_id");
        statement.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(orders
            .iter()
            .map(|order| order.order_id)
            .filter(|id| !known.iter().any(|(raw,)| *raw == id.raw() as i64))
            .collect())
    }

    /// Whether a stored checkout's items were paid by `payment_id`.
    pub async fn checkout_paid_by(&self, parent: OrderId, payment_id: &str) -> Result<bool, sqlx::Error> {
        let (paid,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM checkout_items i JOIN orders o ON o.order_id = i.item_id \
             WHERE i.order_id = ? AND o.payment_id = ?",
        )
        .bind(parent.raw() as i64)
        .bind(payment_id)
        .fetch_one(self.for_order(parent))
        .await?;
        Ok(paid > 0)
    }

    /// A stored checkout's items with their orders, in sub-order then line order.
    pub async fn checkout_items(&self, parent: OrderId) -> Result<Vec<StoredItem>, sqlx::Error> {
        let rows: Vec<(u32, u32, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT sub_order, line_no, goods_cents, discount_cents, freight_cents, item_id FROM checkout_items \
             WHERE order_id = ? ORDER BY sub_order, line_no, item_id",
        )
        .bind(parent.raw() as i64)
        .fetch_all(self.for_order(parent))
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for (sub_order, line_no, goods_cents, discount_cents, freight_cents, item_id) in rows {
            let order = self.get(OrderId::from_raw(item_id as u64)).await?.ok_or(sqlx::Error::RowNotFound)?;
            items.push(StoredItem { sub_order, line_no, goods_cents, discount_cents, freight_cents, order });
        }
        Ok(items)
    }
}
