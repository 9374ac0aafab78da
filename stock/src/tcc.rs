//! The Try and the Cancel of a cart checkout, one SKU per call
//! (`tcc_try.lua`, `tcc_cancel.lua`), and the acknowledgement that moves
//! an accepted cart's items on to its payment deadline. The Confirm is a
//! payment's `confirm.lua`, item by item.

use order::id::OrderId;
use order::sale::SaleWindow;

use crate::error::StoreError;
use crate::requests::{ChannelShare, ConfirmWindows};
use crate::store::SaleStore;

/// One item of a cart: some units of one SKU in one package, reserved and
/// later paid, cancelled or returned like a single order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TccItem {
    pub order_id: OrderId,
    pub qty: u32,
    /// What the item costs its buyer: goods less discounts plus its freight.
    pub amount_cents: i64,
    /// Recorded as the reservation's key: `cart.<parent id>.<package>`.
    pub key: String,
}

/// A cart's Try for one SKU: every item of that SKU.
#[derive(Debug, Clone)]
pub struct TryRequest<'a> {
    pub user_id: u64,
    /// The unit price the cart was priced at; the Try is refused if the
    /// sale's price changed since.
    pub unit_price_cents: i64,
    pub now_ms: i64,
    pub pay_by_ms: i64,
    pub confirm_ms: u64,
    /// A sale split over warehouses: the one the checkout chose for every
    /// item of the SKU (the Try takes the units there or is refused).
    pub warehouse: Option<&'a str>,
    /// The storefront channel's share of the sale, if it has one.
    pub channel_share: Option<ChannelShare<'a>>,
    pub items: &'a [TccItem],
}

/// What `tcc_try.lua` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tried {
    /// Every item holds its units (now, or since an earlier Try).
    Held {
        sale_generation: i64,
    },
    /// The item was cancelled first: a hanging Try, refused.
    Cancelled(OrderId),
    UnknownSku,
    OutsideWindow(SaleWindow),
    PriceChanged {
        price_cents: i64,
    },
    OutOfStock {
        stock_left: i64,
    },
    /// The sale deducts at payment and its orders awaiting payment already
    /// count for all its open-order cap allows: units free up as they are
    /// paid or expire.
    Capped,
    /// The sale is split over warehouses and the checkout chose none (it
    /// was priced while the sale was in one pool).
    Regional,
    /// The warehouse chosen is closed, not the sale's, or short of units.
    NoWarehouse,
    LimitExceeded,
    /// The storefront channel's share of the sale is taken.
    ChannelShareTaken,
}

/// What `tcc_cancel.lua` did with one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelledItem {
    /// Its units came back.
    Released,
    /// It held nothing (an empty Cancel): its Try will now be refused.
    Empty,
    /// Cancelled before.
    Closed,
    Paid,
    /// The in-flight window has passed: left to the sweeper.
    TooLate,
}

impl Tried {
    fn parse(reply: &[String]) -> Option<(Self, bool)> {
        let number = |text: &String| text.parse::<i64>().ok();
        Some(match reply {
            [tag, generation, first] if tag == "held" => {
                (Self::Held { sale_generation: number(generation)? }, first == "1")
            }
            [tag, item] if tag == "cancelled" => (Self::Cancelled(item.parse().ok()?), false),
            [tag] if tag == "unknown_sku" => (Self::UnknownSku, false),
            [tag, starts, ends] if tag == "not_started" || tag == "ended" => {
                (Self::OutsideWindow(SaleWindow::from_ms(number(starts)?, number(ends)?)), false)
            }
            [tag, price] if tag == "price_changed" => (Self::PriceChanged { price_cents: number(price)? }, false),
            [tag, left] if tag == "sold_out" => (Self::OutOfStock { stock_left: number(left)? }, false),
            [tag, _left, _open] if tag == "capped" => (Self::Capped, false),
            [tag] if tag == "regional" => (Self::Regional, false),
            [tag] if tag == "no_warehouse" => (Self::NoWarehouse, false),
            [tag, _left] if tag == "region_sold_out" => (Self::NoWarehouse, false),
            [tag, _held] if tag == "limit" => (Self::LimitExceeded, false),
            [tag, _held] if tag == "channel_share" => (Self::ChannelShareTaken, false),
            _ => return None,
        })
    }
}

impl CancelledItem {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "released" => Self::Released,
            "empty" => Self::Empty,
            "closed" => Self::Closed,
            "paid" => Self::Paid,
            "too_late" => Self::TooLate,
            _ => return None,
        })
    }
}

impl SaleStore {
    /// The Try of `sku`'s items of one cart.
    pub async fn tcc_try(&self, sku: &str, req: &TryRequest<'_>) -> Result<Tried, StoreError> {
        let mut args = vec![
            req.user_id.to_string(),
            req.unit_price_cents.to_string(),
            req.now_ms.to_string(),
            req.pay_by_ms.to_string(),
            req.confirm_ms.to_string(),
            req.warehouse.unwrap_or_default().to_owned(),
        ];
        args.extend(ChannelShare::args(req.channel_share.as_ref()));
        for item in req.items {
            args.extend([
                item.order_id.to_string(),
                item.qty.to_string(),
                item.amount_cents.to_string(),
                item.key.clone(),
            ]);
        }
        let reply: Vec<String> = self
            .redis
            .scripts
            .tcc_try
            .evalsha_with_reload(self.redis.pool.next(), self.redis.keys(sku).tcc(), args)
            .await?;
        let (tried, first) = Tried::parse(&reply).ok_or(StoreError::Reply { script: "tcc_try.lua", reply })?;
        // As for single orders (`reserve_many`): the sweeper must visit a
        // sale once it holds items, to cancel them if the cart is never accepted.
        if matches!(tried, Tried::Held { .. }) && self.activation_due(sku, first) {
            if let Err(err) = self.set_active(sku, true).await {
                tracing::warn!(sku, error = %err, "sale not marked active; the next rescan finds it");
            }
        }
        Ok(tried)
    }

    /// The Cancel of `sku`'s items of one cart; what became of each, in order.
    pub async fn tcc_cancel(
        &self,
        sku: &str,
        items: &[OrderId],
        confirm_windows: &ConfirmWindows,
    ) -> Result<Vec<CancelledItem>, StoreError> {
        let mut args = vec![confirm_windows.confirm_ms.to_string(), confirm_windows.in_flight_ms.to_string()];
        args.extend(items.iter().map(OrderId::to_string));
        let reply: Vec<String> = self
            .redis
            .scripts
            .tcc_cancel
            .evalsha_with_reload(self.redis.pool.next(), self.redis.keys(sku).tcc(), args)
            .await?;
        let outcomes: Option<Vec<CancelledItem>> = reply.iter().map(|word| CancelledItem::parse(word)).collect();
        match outcomes {
            Some(outcomes) if outcomes.len() == items.len() => Ok(outcomes),
            _ => Err(StoreError::Reply { script: "tcc_cancel.lua", reply }),
        }
    }

    /// The broker acknowledged the cart's creation: `sku`'s items now hold
    /// until `pay_by_ms`. False when one was cancelled as unconfirmed
    /// first (by the sweeper, or a Cancel): the cart must not be answered 201.
    pub async fn acknowledge_items(&self, sku: &str, items: &[OrderId], pay_by_ms: i64) -> Result<bool, StoreError> {
        let mut args = Vec::with_capacity(2 * items.len());
        for item in items {
            args.extend([item.to_string(), pay_by_ms.to_string()]);
        }
        let keys = self.redis.keys(sku).acknowledge_items(items);
        let stands: Vec<i64> =
            self.redis.scripts.acknowledge.evalsha_with_reload(self.redis.pool.next(), keys, args).await?;
        if stands.len() != items.len() {
            return Err(StoreError::numbers("acknowledge.lua", &stands));
        }
        Ok(stands.iter().all(|stands| *stands == 1))
    }
}
