//! The mixed scenario: sessions as a storefront sees them. Each buyer
//! places an order, then pays (paying through the channel simulator),
//! cancels, or walks away, and looks the order up; closed loop over
//! `concurrency` connections. Then the paid orders live on
//! (`after_payment`): shipped and received, cancelled before shipping,
//! returned, exchanged, a return rejected, left in the warehouse. Then the
//! invariants: Redis's counters and MySQL's statuses agree with what the
//! buyers and the merchant did, history rows = moves, refunds confirmed
//! and never above the payment.

use std::sync::{Arc, Mutex};

use order::status::OrderStatus;
use rand::{Rng, SeedableRng};

use crate::after_payment::{self, Fate};

use crate::report::{check, Report};
use crate::shards::{at_least, describe, exactly, wait_for_orders};
use crate::workers::{closed_loop, place, SaleRun};

pub struct Mixed {
    /// The gateway, the sale, its buyers and its bounds.
    pub sale: SaleRun,
    pub channel_url: String,
    pub sessions: u64,
    pub concurrency: usize,
}

/// What the buyers did, to check the stack against.
#[derive(Default, Debug)]
struct Actions {
    /// The orders paid, with their buyers.
    paid: Vec<(String, u64)>,
    cancelled: u64,
    /// Walked away: the order waits for its payment window to pass.
    left: u64,
    /// A pay or cancel call that failed: the order stays pending too.
    failed: u64,
}

impl Mixed {
    pub async fn run(self) -> anyhow::Result<Report> {
        self.sale.gateway.load_sale(&self.sale.sku, 1_000_000_000_000, 1, 1_999).await?;
        let actions = Arc::new(Mutex::new(Actions::default()));
        let (gateway, channel, sku) = (self.sale.gateway.clone(), self.channel_url.clone(), self.sale.sku.clone());
        let (done_so_far, first_user) = (actions.clone(), self.sale.first_user);
        let tally = closed_loop(self.sessions, self.concurrency, self.sale.max_duration, move |n| {
            let (gateway, channel, sku, done_so_far) =
                (gateway.clone(), channel.clone(), sku.clone(), done_so_far.clone());
            async move {
                let user = first_user + n;
                let placed = place(&gateway, &sku, user).await;
                let Some((order_id, _)) = placed.accepted.clone() else {
                    return placed;
                };
                // 60 % pay, 20 % cancel, 20 % walk away (their order times out later).
                let roll: f64 = rand::rngs::StdRng::seed_from_u64(user).gen();
                let done = if roll < 0.6 {
                    match gateway.pay(&order_id, user, &sku).await {
                        Ok(payment) => gateway.complete_payment(&channel, &payment).await.is_ok().then_some("paid"),
                        Err(_) => None,
                    }
                } else if roll < 0.8 {
                    gateway.cancel(&order_id, user, &sku).await.ok().filter(|s| s.is_success()).map(|_| "cancelled")
                } else {
                    Some("left")
                };
                {
                    let mut done_so_far = done_so_far.lock().unwrap();
                    match done.unwrap_or("failed") {
                        "paid" => done_so_far.paid.push((order_id.clone(), user)),
                        "cancelled" => done_so_far.cancelled += 1,
                        "left" => done_so_far.left += 1,
                        _ => done_so_far.failed += 1,
                    }
                }
                // And the buyer looks at the order (it may not be stored yet).
                let _ = gateway.order(&order_id, user).await;
                placed
            }
        })
        .await?;
        let actions = std::mem::take(&mut *actions.lock().unwrap());
        let latency = tally.latency();
        let accepted = tally.count("202");

        let pending = actions.left + actions.failed;
        let paid = actions.paid.len() as u64;
        let before = [(OrderStatus::Paid, paid), (OrderStatus::Cancelled, actions.cancelled)];
        wait_for_orders(&self.sale.shards, &self.sale.sku, self.sale.settle_timeout, |s| at_least(s, &before)).await?;
        let (fates, after_failed) =
            after_payment::drive(&self.sale.gateway, &self.sale.sku, &actions.paid, self.concurrency).await;
        let cancelled_after_paying = fates.get(&Fate::CancelledAfterPaying).copied().unwrap_or(0);
        let mut expected = after_payment::expected(&fates);
        expected.retain(|(status, _)| *status != OrderStatus::Cancelled);
        expected.push((OrderStatus::Cancelled, actions.cancelled + cancelled_after_paying));
        expected.push((OrderStatus::PendingPayment, pending));
        let stored =
            wait_for_orders(&self.sale.shards, &self.sale.sku, self.sale.settle_timeout, |s| exactly(s, &expected))
                .await?;
        let sold = (paid - cancelled_after_paying) as i64;
        // A paid order's units leave `sold` when the settler relays its cancellation.
        let sale = self
            .sale
            .gateway
            .sale_once(&self.sale.sku, self.sale.settle_timeout, "returned units", |s| s.sold == sold)
            .await?;
        let fates_seen: Vec<String> = fates.iter().map(|(fate, n)| format!("{n} {fate:?}")).collect();
        let mut checks = vec![
            check(
                "paid orders are sold, less those cancelled after paying",
                sale.sold == sold,
                format!("redis sold {} for {paid} paid, {cancelled_after_paying} cancelled after paying", sale.sold),
            ),
            check(
                "cancelled units are back",
                sale.reserved == pending as i64,
                format!("redis reserved {} for {pending} left unpaid, {} cancelled", sale.reserved, actions.cancelled),
            ),
            check(
                "MySQL has what the buyers and the merchant did",
                exactly(&stored, &expected),
                format!("{}; after paying: {}", describe(&stored), fates_seen.join(", ")),
            ),
            check(
                "every session ordered",
                accepted == latency.len(),
                format!("{accepted} of {} orders accepted", latency.len()),
            ),
            check("every pay and cancel call worked", actions.failed == 0, format!("{} failed", actions.failed)),
            check(
                "every after-payment call worked",
                after_failed == 0,
                format!("{after_failed} paid orders' calls failed"),
            ),
        ];
        checks
            .extend(after_payment::checks(&self.sale.shards, &self.sale.sku, &fates, self.sale.settle_timeout).await?);
        Ok(Report::of("mixed", self.sale.sku, 1_000_000_000_000, tally, stored, checks))
    }
}
