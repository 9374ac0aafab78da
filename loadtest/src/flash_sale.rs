//! The flash-sale scenario: many more distinct buyers than units, each
//! pressing "buy" once, as fast as `concurrency` connections allow. With
//! `pay_fraction`, the order lifecycle follows: that share of the buyers
//! pays through the channel, the rest let their payment window pass, the
//! sweeper gives their units back, and a second wave of buyers buys them.
//! Then the paid orders live on (`after_payment`): shipped and received,
//! cancelled before shipping, returned, exchanged, a return rejected, left
//! in the warehouse. Then the invariants: nothing oversold or stuck, every
//! order in MySQL exactly once in the status it should have, Redis's
//! counters adding up, refunds confirmed and never above the payment.
//! With `regions`, the units are split over as many warehouses (`wh1`, ...)
//! and each buyer's order names their region (`r1`, ...): every
//! warehouse's counts add up too, and to the sale's.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use futures::stream::{self, StreamExt};
use order::status::OrderStatus;
use serde_json::json;

use stock::Units;

use crate::after_payment::{self, Fate};

use crate::report::{check, Check, Lifecycle, Report};
use crate::shards::{at_least, describe, exactly, wait_for_orders, StatusCounts};
use crate::workers::{burst, SaleRun, Tally};

pub struct FlashSale {
    /// The gateway, the sale, its buyers and its bounds.
    pub sale: SaleRun,
    pub stock: i64,
    pub buyers: u64,
    pub concurrency: usize,
    /// Share of accepted orders that pay (0 skips the lifecycle).
    pub pay_fraction: f64,
    /// The payment channel (simulator) the payers pay at.
    pub channel_url: String,
    /// Warehouses the units are split over, buyers' regions; 0: one pool.
    pub regions: u32,
}

impl FlashSale {
    pub async fn run(self) -> anyhow::Result<Report> {
        self.load().await.context("loading the sale")?;
        let tally = self.burst(self.sale.first_user, self.buyers).await?;
        let accepted = tally.count("202");
        let distinct: HashSet<&String> = tally.accepted.iter().map(|(id, _)| id).collect();
        let mut checks = vec![
            check("no oversell", accepted as i64 <= self.stock, format!("{accepted} accepted of {} units", self.stock)),
            check(
                "no order id twice",
                distinct.len() == tally.accepted.len(),
                format!("{} distinct ids in {} answers", distinct.len(), tally.accepted.len()),
            ),
        ];

        let mut lifecycle = if self.pay_fraction > 0.0 { Some(self.lifecycle(&tally).await?) } else { None };
        let orders_in_mysql = match &mut lifecycle {
            Some((lifecycle, paid_orders)) => {
                let expected = [
                    (OrderStatus::Paid, lifecycle.paid),
                    (OrderStatus::Cancelled, lifecycle.timed_out),
                    (OrderStatus::PendingPayment, lifecycle.resold),
                ];
                let (sale, stored) = self.settled(&expected).await?;
                checks.push(check(
                    "every pay call worked",
                    lifecycle.pay_failures == 0,
                    format!("{} of {} failed", lifecycle.pay_failures, lifecycle.paid + lifecycle.pay_failures),
                ));
                checks.push(check(
                    "paid orders are sold",
                    sale.sold == lifecycle.paid as i64,
                    format!("redis sold {} for {} paid", sale.sold, lifecycle.paid),
                ));
                checks.push(check(
                    "no units stuck: timed-out units sold again or back in stock",
                    sale.reserved == lifecycle.resold as i64 && sale.stock + sale.reserved + sale.sold == self.stock,
                    format!(
                        "redis: {} left + {} reserved + {} sold of {}; {} timed out, {} resold",
                        sale.stock, sale.reserved, sale.sold, self.stock, lifecycle.timed_out, lifecycle.resold
                    ),
                ));
                checks.push(check(
                    "every order in MySQL exactly once, in its status",
                    exactly(&stored, &expected) && stored.values().sum::<u64>() == accepted + lifecycle.resold,
                    describe(&stored),
                ));
                let (stored, more) = self.after_payment(lifecycle, paid_orders).await?;
                checks.extend(more);
                stored
            }
            None => {
                let (sale, stored) = self.settled(&[(OrderStatus::PendingPayment, accepted)]).await?;
                checks.push(check(
                    "stock adds up",
                    sale.stock + sale.reserved + sale.sold == self.stock
                        && sale.reserved + sale.sold == accepted as i64,
                    format!(
                        "redis: {} left + {} reserved + {} sold; {accepted} accepted",
                        sale.stock, sale.reserved, sale.sold
                    ),
                ));
                checks.push(check(
                    "every accepted order in MySQL exactly once",
                    stored.values().sum::<u64>() == accepted,
                    format!("{} rows for {accepted} accepted orders", stored.values().sum::<u64>()),
                ));
                stored
            }
        };
        checks.push(check(
            "sold out only when gone",
            tally.count("409") == 0 || accepted as i64 == self.stock,
            format!("{} sold-out answers, {accepted} of {} units sold in the burst", tally.count("409"), self.stock),
        ));
        if self.regions > 0 {
            checks.push(self.warehouses_check().await?);
        }
        let stock = self.stock;
        Ok(Report {
            lifecycle: lifecycle.map(|(lifecycle, _)| lifecycle),
            ..Report::of("flash-sale", self.sale.sku, stock, tally, orders_in_mysql, checks)
        })
    }

    /// Loads the sale: one pool, or the units split evenly over the
    /// warehouses (the first takes what is left over).
    async fn load(&self) -> anyhow::Result<()> {
        if self.regions == 0 {
            return self.sale.gateway.load_sale(&self.sale.sku, self.stock, 1, 9_900).await;
        }
        let regions = i64::from(self.regions);
        let warehouses: Vec<_> = (1..=regions)
            .map(|i| {
                let units = self.stock / regions + if i == 1 { self.stock % regions } else { 0 };
                json!({"warehouse": format!("wh{i}"), "units": units})
            })
            .collect();
        let terms = json!({"stock": self.stock, "per_user_limit": 1, "price_cents": 9_900, "warehouses": warehouses});
        self.sale.gateway.load_sale_with(&self.sale.sku, terms).await
    }

    /// Every warehouse's counts add up, and sum to the sale's.
    async fn warehouses_check(&self) -> anyhow::Result<Check> {
        let sale = self.sale.gateway.sale(&self.sale.sku).await?;
        let warehouses = self.sale.gateway.warehouses(&self.sale.sku).await?;
        let each = warehouses.iter().all(|w| w.units().add_up());
        let sum = |count: fn(&Units) -> i64| warehouses.iter().map(|w| count(&w.units())).sum::<i64>();
        let sums = [sum(|u| u.stock), sum(|u| u.reserved), sum(|u| u.sold), sum(|u| u.total)];
        let detail: Vec<String> =
            warehouses.iter().map(|w| format!("{} {}+{}+{}", w.warehouse, w.stock, w.reserved, w.sold)).collect();
        Ok(check(
            "every warehouse's units add up, to the sale's",
            each && warehouses.len() == self.regions as usize
                && sums == [sale.stock, sale.reserved, sale.sold, sale.total],
            detail.join(", "),
        ))
    }

    /// `buyers` distinct users from `first_user` on, one click each.
    async fn burst(&self, first_user: u64, buyers: u64) -> anyhow::Result<Tally> {
        burst(&self.sale.gateway, &self.sale.sku, first_user, buyers, self.concurrency, self.sale.max_duration).await
    }

    /// The paid orders live on; then the statuses they lead to (the second
    /// wave's orders pending or timed out by now), the counters and the money.
    async fn after_payment(
        &self,
        lifecycle: &mut Lifecycle,
        paid_orders: &[(String, u64)],
    ) -> anyhow::Result<(StatusCounts, Vec<Check>)> {
        self.wait_for_orders_paid(paid_orders.len() as u64).await?;
        let (fates, failed) = after_payment::drive(&self.sale.gateway, &self.sale.sku, paid_orders, 32).await;
        lifecycle.after_payment = fates.iter().map(|(fate, n)| (format!("{fate:?}"), *n)).collect();
        let cancelled_after_paying = fates.get(&Fate::CancelledAfterPaying).copied().unwrap_or(0);
        let mut expected = after_payment::expected(&fates);
        expected.retain(|(status, _)| *status != OrderStatus::Cancelled);
        let unpaid = lifecycle.timed_out + lifecycle.resold + cancelled_after_paying;
        let stored = wait_for_orders(&self.sale.shards, &self.sale.sku, self.sale.settle_timeout, |s| {
            exactly(s, &expected) && unpaid_count(s) == unpaid
        })
        .await?;
        let sold = (lifecycle.paid - cancelled_after_paying) as i64;
        let sale = self.wait_for("the units of cancelled paid orders back", |sale| sale.sold == sold).await?;
        let mut checks = vec![
            check("every after-payment call worked", failed == 0, format!("{failed} paid orders' calls failed")),
            check(
                "after paying, every order in MySQL exactly once, in its status",
                exactly(&stored, &expected) && unpaid_count(&stored) == unpaid,
                describe(&stored),
            ),
            check(
                "units of orders cancelled after paying are back on sale",
                sale.sold == sold && sale.stock + sale.reserved + sale.sold == self.stock,
                format!(
                    "redis: {} left + {} reserved + {} sold of {}",
                    sale.stock, sale.reserved, sale.sold, self.stock
                ),
            ),
        ];
        checks
            .extend(after_payment::checks(&self.sale.shards, &self.sale.sku, &fates, self.sale.settle_timeout).await?);
        checks.push(
            after_payment::figures_check(
                &self.sale.gateway,
                &self.sale.shards,
                &self.sale.sku,
                self.sale.settle_timeout,
            )
            .await?,
        );
        Ok((stored, checks))
    }

    /// Waits until MySQL holds every paid order as paid: the moves after
    /// payment start from the order's shard.
    async fn wait_for_orders_paid(&self, paid: u64) -> anyhow::Result<()> {
        wait_for_orders(&self.sale.shards, &self.sale.sku, self.sale.settle_timeout, |s| {
            at_least(s, &[(OrderStatus::Paid, paid)])
        })
        .await?;
        Ok(())
    }

    /// Pays for a share of the orders, waits for the rest to time out, and
    /// sends a second wave of buyers at the units that came back; also the
    /// orders paid, with their buyers.
    async fn lifecycle(&self, burst: &Tally) -> anyhow::Result<(Lifecycle, Vec<(String, u64)>)> {
        let paying = ((burst.accepted.len() as f64) * self.pay_fraction).round() as usize;
        let payments = stream::iter(&burst.accepted[..paying])
            .map(|(order_id, user)| async move {
                let payment_id = self.sale.gateway.pay(order_id, *user, &self.sale.sku).await?;
                self.sale.gateway.complete_payment(&self.channel_url, &payment_id).await?;
                Ok((order_id.clone(), *user))
            })
            .buffer_unordered(32)
            .collect::<Vec<anyhow::Result<(String, u64)>>>()
            .await;
        let paid_orders: Vec<(String, u64)> =
            payments.iter().filter_map(|result| result.as_ref().ok().cloned()).collect();
        let paid = paid_orders.len() as u64;
        let pay_failures = payments.len() as u64 - paid;
        if let Some(Err(err)) = payments.iter().find(|result| result.is_err()) {
            eprintln!("{pay_failures} payments failed, e.g.: {err:#}");
        }
        // A failed pay call leaves its order pending: it times out with the rest.
        let timed_out = burst.accepted.len() as u64 - paid;
        println!("paid {paid} orders; waiting for the other {timed_out} to time out ...");
        self.wait_for("payments settled and unpaid orders timed out", |sale| {
            sale.sold == paid as i64 && sale.reserved == 0
        })
        .await?;

        // The sold-out marks of the gateways expire, then the units sell again.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let second = self.burst(self.sale.first_user + self.buyers, self.buyers / 4).await?;
        println!("second wave: {} buyers, {} bought the returned units", self.buyers / 4, second.count("202"));
        let lifecycle = Lifecycle {
            paid,
            pay_failures,
            timed_out,
            second_wave_buyers: self.buyers / 4,
            resold: second.count("202"),
            after_payment: Default::default(),
        };
        Ok((lifecycle, paid_orders))
    }

    /// Waits until the sale's counters satisfy `done`.
    async fn wait_for(&self, what: &str, done: impl Fn(&Units) -> bool) -> anyhow::Result<Units> {
        self.sale.gateway.sale_once(&self.sale.sku, self.sale.settle_timeout, what, done).await
    }

    /// Waits until MySQL holds `expected` orders per status (or the settle
    /// timeout passes); the sale's counters and the stored counts.
    async fn settled(&self, expected: &[(OrderStatus, u64)]) -> anyhow::Result<(Units, StatusCounts)> {
        let stored =
            wait_for_orders(&self.sale.shards, &self.sale.sku, self.sale.settle_timeout, |s| at_least(s, expected))
                .await?;
        Ok((self.sale.gateway.sale(&self.sale.sku).await?, stored))
    }
}

/// Orders pending payment or cancelled: the timed-out, the second wave
/// (pending, or timed out by now) and the cancelled after paying.
fn unpaid_count(stored: &StatusCounts) -> u64 {
    [OrderStatus::PendingPayment, OrderStatus::Cancelled]
        .iter()
        .map(|status| stored.get(status).copied().unwrap_or(0))
        .sum()
}
