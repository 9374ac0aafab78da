//! The flash sale of a sale deducting at payment (`flash-sale --strategy
//! on_payment`): buyers order up to the sale's open-order cap, every one of
//! them pays, and the fastest payers get the units; the payments that find
//! none left are refunded, their orders cancelled as sold out. Then the
//! strategy's invariants: nothing oversold, every paid order holds its
//! units, every payment without units refunded, every order in MySQL once.

use anyhow::Context;
use futures::stream::{self, StreamExt};
use order::sale::Deduction;
use order::status::OrderStatus;
use orderdb::ShardPools;
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::after_payment::figures_check;
use crate::report::{check, Check, Report};
use crate::shards::{describe, exactly, wait_for_orders};
use crate::workers::{burst, SaleRun};

pub struct PayRace {
    pub sale: SaleRun,
    pub stock: i64,
    pub buyers: u64,
    pub concurrency: usize,
    /// Units of orders awaiting payment allowed, in % of the stock.
    pub open_orders_cap_pct: u32,
    /// The payment channel (simulator) the payers pay at.
    pub channel_url: String,
}

impl PayRace {
    pub async fn run(self) -> anyhow::Result<Report> {
        let gateway = &self.sale.gateway;
        let terms = json!({
            "stock": self.stock, "per_user_limit": 1, "price_cents": 9_900,
            "deduction": Deduction::OnPayment, "open_orders_cap_pct": self.open_orders_cap_pct,
        });
        gateway.load_sale_with(&self.sale.sku, terms).await.context("loading the sale")?;
        let tally =
            burst(gateway, &self.sale.sku, self.sale.first_user, self.buyers, self.concurrency, self.sale.max_duration)
                .await?;
        let accepted = tally.accepted.len() as i64;
        let cap = self.stock * i64::from(self.open_orders_cap_pct) / 100;
        let distinct: HashSet<&String> = tally.accepted.iter().map(|(id, _)| id).collect();
        let mut checks = vec![
            check("orders within the open-order cap", accepted <= cap, format!("{accepted} accepted, cap {cap}")),
            check(
                "no order id twice",
                distinct.len() == tally.accepted.len(),
                format!("{} distinct ids in {accepted} answers", distinct.len()),
            ),
        ];

        let (sku, channel) = (&self.sale.sku, &self.channel_url);
        let payments = stream::iter(&tally.accepted)
            .map(|(order_id, user)| async move {
                let payment_id = gateway.pay(order_id, *user, sku).await?;
                gateway.complete_payment(channel, &payment_id).await
            })
            .buffer_unordered(32)
            .collect::<Vec<anyhow::Result<()>>>()
            .await;
        let payers = payments.iter().filter(|paid| paid.is_ok()).count() as i64;
        if let Some(Err(err)) = payments.iter().find(|paid| paid.is_err()) {
            eprintln!("{} payments failed, e.g.: {err:#}", accepted - payers);
        }
        println!("{payers} of {accepted} buyers paid for {} units ...", self.stock);
        let sale = gateway
            .sale_once(&self.sale.sku, self.sale.settle_timeout, "every payment settled", |sale| {
                sale.open == accepted - payers
            })
            .await?;
        let sold = payers.min(self.stock);
        checks.push(check("every pay call worked", payers == accepted, format!("{payers} of {accepted} paid")));
        checks.push(check(
            "no oversell, the fastest payers got every unit",
            sale.add_up() && sale.sold == sold && sale.reserved == 0,
            format!("redis: {} left + {} sold of {}; {payers} payers", sale.stock, sale.sold, self.stock),
        ));

        let expected = [
            (OrderStatus::Paid, sold as u64),
            (OrderStatus::Cancelled, (payers - sold) as u64),
            (OrderStatus::PendingPayment, (accepted - payers) as u64),
        ];
        let stored =
            wait_for_orders(&self.sale.shards, &self.sale.sku, self.sale.settle_timeout, |s| exactly(s, &expected))
                .await?;
        checks.push(check(
            "every paid order in MySQL holds its units, every other payer's is cancelled",
            exactly(&stored, &expected) && stored.values().sum::<u64>() == accepted as u64,
            describe(&stored),
        ));
        checks.push(self.refunds_check(payers - sold).await?);
        checks.push(figures_check(gateway, &self.sale.shards, &self.sale.sku, self.sale.settle_timeout).await?);
        Ok(Report::of("flash-sale on_payment", self.sale.sku, self.stock, tally, stored, checks))
    }

    /// Waits for the channel to confirm a refund to each payer who found no
    /// unit, and for nothing else to be refunded.
    async fn refunds_check(&self, due: i64) -> anyhow::Result<Check> {
        let pools = ShardPools::connect_lazy(&self.sale.shards, 1, Duration::from_secs(5))?;
        let deadline = Instant::now() + self.sale.settle_timeout;
        let stats = loop {
            let stats = pools.sale_stats(&self.sale.sku).await?;
            if (stats.cancelled_sold_out == due && stats.refunded == due) || Instant::now() > deadline {
                break stats;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        pools.close().await;
        Ok(check(
            "every payment without units refunded",
            stats.cancelled_sold_out == due && stats.refunded == due,
            format!("{} cancelled sold out, {} refunds done, {due} due", stats.cancelled_sold_out, stats.refunded),
        ))
    }
}
