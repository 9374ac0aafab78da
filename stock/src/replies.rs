//! What the scripts answer, typed, and the parsers of their raw replies.

use order::event::CancelReason;
use order::fallback::SaleKind;
use order::sale::{Deduction, SaleWindow};
use serde::{Deserialize, Serialize};

use crate::records::{parse_closed, IdempotencyRecord, ReservationRecord};
use crate::units::Units;

/// What `reserve.lua` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    Reserved {
        amount_cents: i64,
        stock_left: i64,
        /// The sale's generation (its `loaded_ms`), recorded on the order.
        sale_generation: i64,
        /// The warehouse the units were placed in, for a sale split over
        /// warehouses.
        warehouse: Option<String>,
    },
    /// The key was answered before, or its first request is over (an
    /// unacknowledged record then means: send the order again).
    Duplicate(IdempotencyRecord),
    /// The key's first request may still be waiting for the broker.
    InProgress(IdempotencyRecord),
    /// The order id is taken (another instance minted it): mint another.
    IdTaken,
    UnknownSku,
    /// Fewer than the asked units are left (0: sold out).
    OutOfStock {
        stock_left: i64,
    },
    /// The sale deducts at payment and its orders awaiting payment already
    /// count for all its open-order cap allows.
    Capped {
        stock_left: i64,
        open: i64,
    },
    /// A sale split over warehouses with units left, none of them in a
    /// warehouse serving the buyer.
    RegionSoldOut {
        stock_left: i64,
    },
    /// No open warehouse of the sale serves the buyer's region.
    NoWarehouse,
    LimitExceeded,
    /// The storefront channel's share of the sale is taken: it holds or
    /// has bought `held` units.
    ChannelShareTaken {
        held: i64,
    },
    /// Outside the sale's window (it has not started or has ended).
    OutsideWindow(SaleWindow),
}

/// What `release.lua` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Released {
        stock: i64,
    },
    /// The order held no reservation (released or ended before).
    NotHeld,
    /// The in-flight window has passed: a retry may be re-sending the
    /// order, so its units stay until the confirm deadline.
    TooLate,
}

/// What `sweep.lua` did to one sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub cancelled: u64,
    /// Reservations still held (their deadline is ahead).
    pub reservations_left: u64,
}

/// What `cancel.lua` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancellation {
    /// Cancelled; the outbox entry waits for the event to be acknowledged.
    Cancelled {
        outbox_entry: String,
        reservation: ReservationRecord,
    },
    /// The user's order, but already paid or cancelled.
    NotPending {
        paid: bool,
    },
    NotFound,
}

/// What `confirm.lua` decided about a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// The reserved units are sold.
    Paid(ReservationRecord),
    /// The order was cancelled before the money came: refund it.
    Refund { reason: CancelReason, reservation: ReservationRecord },
    /// The sale deducts at payment and its units were gone: the order is
    /// cancelled now (its cancellation waits in the outbox) and the payment
    /// is to be refunded.
    SoldOut { outbox_entry: String, reservation: ReservationRecord },
    /// This payment was seen before.
    Duplicate { refund: bool, reservation: ReservationRecord, acknowledged: bool },
    /// The order was paid by another payment: refund this one.
    SecondPayment(ReservationRecord),
    /// No such order in this sale (released unseen, sale replaced, record
    /// lost): refund the payment. Recorded, so repeats are duplicates.
    Orphan,
    /// The amount differs from the order's; nothing changed.
    AmountMismatch { expected: i64 },
}

/// What `load_sale.lua` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleLoad {
    Loaded,
    /// A sale with orders still moving is not replaced; nothing changed.
    Busy {
        reservations: u64,
        outbox: u64,
        unsettled_payments: u64,
    },
}

/// What `update_sale.lua` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleUpdate {
    Updated,
    UnknownSku,
    /// Removing that many would take units that are reserved or sold.
    TooFewUnits {
        stock: i64,
    },
    /// `if_total` did not match: the sale changed since (maybe by this
    /// very change, retried); nothing was applied.
    TotalChanged {
        total: i64,
    },
    /// A sale split over warehouses takes units into one of them
    /// ([`WarehouseChange::Add`](crate::WarehouseChange)).
    WarehouseRequired,
}

/// What `warehouses.lua` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseChanged {
    /// Done; the warehouse's stock after.
    Done {
        stock: i64,
    },
    UnknownSku,
    UnknownWarehouse(String),
    /// It has fewer units for sale than the change takes.
    TooFewUnits {
        stock: i64,
    },
}

impl WarehouseChanged {
    pub(crate) fn parse(reply: &[String]) -> Option<Self> {
        let number = |text: &String| text.parse::<i64>().ok();
        Some(match reply {
            [tag, stock] if tag == "done" => Self::Done { stock: number(stock)? },
            [tag] if tag == "unknown_sku" => Self::UnknownSku,
            [tag, name] if tag == "unknown_warehouse" => Self::UnknownWarehouse(name.clone()),
            [tag, stock] if tag == "too_few_units" => Self::TooFewUnits { stock: number(stock)? },
            _ => return None,
        })
    }
}

/// What `readdress.lua` did with an order whose delivery region changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readdressed {
    /// It stays where it is (`None`: a sale in one pool).
    Kept(Option<String>),
    /// It moved to this warehouse, its units with it.
    Moved(String),
    /// Paid (`true`) or cancelled already.
    NotPending { paid: bool },
    /// No such order of this user in the sale.
    NotFound,
    /// Not acknowledged by the broker yet.
    Unacknowledged,
    /// No warehouse serving the new region can take it.
    NoWarehouse,
    /// An item of a cart: it ships in its package.
    CartItem,
}

impl Readdressed {
    pub(crate) fn parse(reply: &[String]) -> Option<Self> {
        Some(match reply {
            [tag, warehouse] if tag == "kept" => Self::Kept((!warehouse.is_empty()).then(|| warehouse.clone())),
            [tag, warehouse] if tag == "moved" => Self::Moved(warehouse.clone()),
            [tag, state] if tag == "not_pending" => Self::NotPending { paid: state == "paid" },
            [tag] if tag == "not_found" => Self::NotFound,
            [tag] if tag == "unacknowledged" => Self::Unacknowledged,
            [tag] if tag == "no_warehouse" => Self::NoWarehouse,
            [tag] if tag == "cart_item" => Self::CartItem,
            _ => return None,
        })
    }
}

/// What `repair_sale.lua` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// The counters as set.
    Repaired(Units),
    UnknownSku,
}

/// What `return_units.lua` did with a cancelled paid order's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitsReturned {
    /// Back on sale; `stock` is the sale's stock after.
    Restocked { stock: i64 },
    /// Out of the sale (it ended, or the operator keeps them off).
    Withdrawn,
    /// Done before, for this order.
    Already,
    /// The order belongs to an earlier sale of the SKU.
    OtherSale,
}

impl UnitsReturned {
    pub(crate) fn parse(reply: &[String]) -> Option<Self> {
        match reply {
            [tag, stock] if tag == "restocked" => stock.parse().ok().map(|stock| Self::Restocked { stock }),
            [tag, _] if tag == "withdrawn" => Some(Self::Withdrawn),
            [tag, _] if tag == "already" => Some(Self::Already),
            [tag, _] if tag == "other_sale" => Some(Self::OtherSale),
            _ => None,
        }
    }
}

/// A sale's counters (units left to sell, held by unpaid orders, paid for,
/// loaded in all, and ordered by unpaid orders holding none) and terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleStatus {
    pub stock: i64,
    pub reserved: i64,
    pub sold: i64,
    pub total: i64,
    pub per_user_limit: i64,
    pub price_cents: i64,
    #[serde(flatten)]
    pub window: SaleWindow,
    /// When this sale was loaded (Redis clock, Unix ms); the orders of the
    /// SKU created before it belong to earlier sales.
    pub loaded_ms: i64,
    pub deduction: Deduction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_orders_cap_pct: Option<u32>,
    pub open: i64,
    /// Regional stock: each warehouse's counts, in the sale's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warehouses: Vec<WarehouseStatus>,
    pub kind: SaleKind,
    /// An ordinary sale's database share as loaded: units kept in the
    /// inventory database beside the counts above (Redis's share), sold
    /// only while Redis cannot be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_units: Option<i64>,
}

/// One warehouse of a sale split over warehouses: its counts, which add up
/// as a sale's do, and whether it takes new orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarehouseStatus {
    pub warehouse: String,
    pub stock: i64,
    pub reserved: i64,
    pub sold: i64,
    pub total: i64,
    pub open: i64,
    pub closed: bool,
}

impl WarehouseStatus {
    pub fn units(&self) -> Units {
        Units { stock: self.stock, reserved: self.reserved, sold: self.sold, total: self.total, open: self.open }
    }
}

impl SaleStatus {
    pub fn units(&self) -> Units {
        Units { stock: self.stock, reserved: self.reserved, sold: self.sold, total: self.total, open: self.open }
    }
}

impl Reservation {
    pub(crate) fn parse(reply: &[String]) -> Option<Self> {
        let number = |text: &String| text.parse::<i64>().ok();
        Some(match reply {
            [tag, amount, left, generation, _first, warehouse] if tag == "ok" => Self::Reserved {
                amount_cents: number(amount)?,
                stock_left: number(left)?,
                sale_generation: number(generation)?,
                warehouse: (!warehouse.is_empty()).then(|| warehouse.clone()),
            },
            [tag, record] if tag == "dup" => Self::Duplicate(IdempotencyRecord::parse(record)?),
            [tag, record] if tag == "in_progress" => Self::InProgress(IdempotencyRecord::parse(record)?),
            [tag] if tag == "id_taken" => Self::IdTaken,
            [tag] if tag == "unknown_sku" => Self::UnknownSku,
            [tag, left] if tag == "sold_out" => Self::OutOfStock { stock_left: number(left)? },
            [tag, left, open] if tag == "capped" => Self::Capped { stock_left: number(left)?, open: number(open)? },
            [tag, left] if tag == "region_sold_out" => Self::RegionSoldOut { stock_left: number(left)? },
            [tag] if tag == "no_warehouse" => Self::NoWarehouse,
            [tag, _held] if tag == "limit" => Self::LimitExceeded,
            [tag, held] if tag == "channel_share" => Self::ChannelShareTaken { held: number(held)? },
            [tag, starts, ends] if tag == "not_started" || tag == "ended" => {
                Self::OutsideWindow(SaleWindow::from_ms(number(starts)?, number(ends)?))
            }
            _ => return None,
        })
    }
}

impl Release {
    pub(crate) fn parse(reply: &[i64]) -> Option<Self> {
        match reply {
            [1, stock] => Some(Self::Released { stock: *stock }),
            [0, _] => Some(Self::NotHeld),
            [2, _] => Some(Self::TooLate),
            _ => None,
        }
    }
}

impl Swept {
    pub(crate) fn parse(reply: &[u64]) -> Option<Self> {
        match reply {
            [cancelled, left] => Some(Self { cancelled: *cancelled, reservations_left: *left }),
            _ => None,
        }
    }
}

impl Cancellation {
    pub(crate) fn parse(reply: &[String]) -> Option<Self> {
        match reply {
            // The entry is "<reason>:<order id>:<reservation>".
            [tag, entry] if tag == "cancelled" => entry
                .splitn(3, ':')
                .nth(2)
                .and_then(ReservationRecord::parse)
                .map(|reservation| Self::Cancelled { outbox_entry: entry.clone(), reservation }),
            [tag, state] if tag == "not_pending" => Some(Self::NotPending { paid: state == "paid" }),
            [tag] if tag == "not_found" => Some(Self::NotFound),
            _ => None,
        }
    }
}

impl Confirmation {
    pub(crate) fn parse(reply: &[String]) -> Option<Self> {
        Some(match reply {
            [tag, reservation] if tag == "paid" => Self::Paid(ReservationRecord::parse(reservation)?),
            [tag, closed] if tag == "refund" => {
                let (reason, reservation) = parse_closed(closed)?;
                Self::Refund { reason, reservation }
            }
            [tag, payment, acknowledged] if tag == "dup" => {
                // "<paid|refund>:<payment id>:<reservation>"
                let mut parts = payment.splitn(3, ':');
                let refund = parts.next()? == "refund";
                let reservation = ReservationRecord::parse(parts.nth(1)?)?;
                Self::Duplicate { refund, reservation, acknowledged: acknowledged == "1" }
            }
            [tag, entry] if tag == "sold_out" => Self::SoldOut {
                reservation: ReservationRecord::parse(entry.splitn(3, ':').nth(2)?)?,
                outbox_entry: entry.clone(),
            },
            [tag, expected] if tag == "amount_mismatch" => Self::AmountMismatch { expected: expected.parse().ok()? },
            [tag, reservation] if tag == "second_payment" => {
                Self::SecondPayment(ReservationRecord::parse(reservation)?)
            }
            [tag] if tag == "orphan" => Self::Orphan,
            _ => return None,
        })
    }
}

impl SaleLoad {
    pub(crate) fn parse(reply: &[String]) -> Option<Self> {
        let number = |text: &String| text.parse::<u64>().ok();
        match reply {
            [tag, _] if tag == "loaded" => Some(Self::Loaded),
            [tag, reservations, outbox, payments] if tag == "busy" => Some(Self::Busy {
                reservations: number(reservations)?,
                outbox: number(outbox)?,
                unsettled_payments: number(payments)?,
            }),
            _ => None,
        }
    }
}

impl SaleUpdate {
    pub(crate) fn parse(reply: &[String]) -> Option<Self> {
        let number = |text: &String| text.parse::<i64>().ok();
        match reply {
            [tag, left] if tag == "updated" => number(left).map(|_| Self::Updated),
            [tag, left] if tag == "too_few_units" => number(left).map(|stock| Self::TooFewUnits { stock }),
            [tag, total] if tag == "total_changed" => number(total).map(|total| Self::TotalChanged { total }),
            [tag] if tag == "unknown_sku" => Some(Self::UnknownSku),
            [tag] if tag == "warehouse_required" => Some(Self::WarehouseRequired),
            _ => None,
        }
    }
}

impl Repair {
    pub(crate) fn parse(reply: &[String]) -> Option<Self> {
        let numbers: Vec<i64> = reply.iter().filter_map(|n| n.parse().ok()).collect();
        match (reply, numbers.as_slice()) {
            ([tag], _) if tag == "unknown_sku" => Some(Self::UnknownSku),
            (_, &[stock, reserved, open, sold, total]) => {
                Some(Self::Repaired(Units { stock, reserved, sold, total, open }))
            }
            _ => None,
        }
    }
}
