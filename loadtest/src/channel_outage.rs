//! A payment channel failing mid-sale: buyers order and pay at a steady
//! rate while the card channel's simulator fails every call for
//! `--outage-secs` from `--outage-at`. A buyer naming no channel is sent
//! to the fallback channel by the gateway while the card's breaker is
//! open; one told the card is down (503 `payment_channel_unavailable`)
//! pays at a channel the answer lists, or tries again after `Retry-After`.
//! Of the buyers, 60 % pay, 20 % pay and then cancel (refunded), 20 % walk
//! away (their orders expire). Then the orders are read from MySQL once
//! every payment window has passed: none left awaiting payment, every
//! payer's order paid or refunded, every refund confirmed by its channel,
//! the sale's units adding up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use order::status::OrderStatus;
use orderdb::ShardPools;
use serde_json::{json, Value};

use crate::client::Gateway;
use crate::report::{check, Check};

pub struct ChannelOutage {
    pub gateway: Gateway,
    pub sku: String,
    pub first_user: u64,
    pub shards: Vec<String>,
    /// Each channel's simulator, by id (the ids the gateway's answers name).
    pub channels: BTreeMap<String, String>,
    /// The channel made to fail.
    pub failing: String,
    pub buyers_per_sec: u64,
    pub run: Duration,
    pub outage_at: Duration,
    pub outage: Duration,
    /// How long to wait after the run for the payment windows to pass and
    /// the refunds to be confirmed.
    pub settle: Duration,
}

/// What the buyers met, second by second and in all.
#[derive(Default)]
struct Tally {
    placed: u64,
    refused: u64,
    /// Payments started, by channel.
    started: BTreeMap<String, u64>,
    /// 503s naming a failing channel, and pay calls that failed otherwise.
    unavailable: u64,
    failed: u64,
    paid: u64,
    cancelled_after_paying: u64,
    walked_away: u64,
    /// Per second from the start: (payments started at each channel, 503s).
    timeline: BTreeMap<u64, (BTreeMap<String, u64>, u64)>,
}

impl ChannelOutage {
    pub async fn run(self) -> anyhow::Result<Vec<Check>> {
        let this = Arc::new(self);
        this.gateway.load_sale(&this.sku, 1_000_000, 1, 1_999).await?;
        let tally = Arc::new(Mutex::new(Tally::default()));
        let started = Instant::now();
        let faults = tokio::spawn(this.clone().fail_and_heal());
        let mut buyers = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(1_000 / this.buyers_per_sec.clamp(1, 1_000)));
        let mut n = 0;
        while started.elapsed() < this.run {
            tick.tick().await;
            let (this, tally) = (this.clone(), tally.clone());
            buyers.push(tokio::spawn(async move { this.buyer(n, started, &tally).await }));
            n += 1;
        }
        for buyer in buyers {
            buyer.await?;
        }
        faults.await??;
        let tally = Arc::try_unwrap(tally).map_err(|_| anyhow::anyhow!("buyers still running"))?.into_inner().unwrap();
        this.print(&tally);
        this.checks(&tally).await
    }

    /// Makes the failing channel fail every payment call for the outage, then heals it.
    async fn fail_and_heal(self: Arc<Self>) -> anyhow::Result<()> {
        let simulator = &self.channels[&self.failing];
        tokio::time::sleep(self.outage_at).await;
        self.gateway.post_to(simulator, "/v1/faults/payments", &json!({"fail_every": 1})).await?;
        println!("{:>5}s  {} fails every payment call", self.outage_at.as_secs(), self.failing);
        tokio::time::sleep(self.outage).await;
        self.gateway.post_to(simulator, "/v1/faults/payments", &json!({"fail_every": 0})).await?;
        println!("{:>5}s  {} heals", (self.outage_at + self.outage).as_secs(), self.failing);
        Ok(())
    }

    async fn buyer(&self, n: u64, started: Instant, tally: &Mutex<Tally>) {
        let user = self.first_user + n;
        let order_id = match self.gateway.place(user, &self.sku, 1, &format!("outage-{user}")).await {
            Ok((status, body)) if status.as_u16() == 202 => {
                let body: Value = serde_json::from_slice(&body).unwrap_or_default();
                body["order_id"].as_str().unwrap_or_default().to_owned()
            }
            _ => {
                tally.lock().unwrap().refused += 1;
                return;
            }
        };
        tally.lock().unwrap().placed += 1;
        // 60 % pay, 20 % pay then cancel, 20 % walk away.
        if n % 10 >= 8 {
            tally.lock().unwrap().walked_away += 1;
            return;
        }
        let second = || started.elapsed().as_secs();
        let mut asked: Option<String> = None;
        for _ in 0..30 {
            let answer = self.gateway.pay_at(&order_id, user, &self.sku, asked.as_deref()).await;
            match answer {
                Ok((200, body)) => {
                    let channel = body["channel"].as_str().unwrap_or_default().to_owned();
                    let payment_id = body["payment_id"].as_str().unwrap_or_default().to_owned();
                    {
                        let mut tally = tally.lock().unwrap();
                        *tally.started.entry(channel.clone()).or_default() += 1;
                        *tally.timeline.entry(second()).or_default().0.entry(channel.clone()).or_default() += 1;
                    }
                    let Some(simulator) = self.channels.get(&channel) else { break };
                    if self.gateway.complete_payment(simulator, &payment_id).await.is_err() {
                        break;
                    }
                    tally.lock().unwrap().paid += 1;
                    if n % 10 >= 6 {
                        self.cancel_once_paid(&order_id, user, tally).await;
                    }
                    return;
                }
                Ok((503, body)) if body["error"] == "payment_channel_unavailable" => {
                    {
                        let mut tally = tally.lock().unwrap();
                        tally.unavailable += 1;
                        tally.timeline.entry(second()).or_default().1 += 1;
                    }
                    asked = body["available_channels"][0].as_str().map(str::to_owned);
                    if asked.is_none() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                _ => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
        tally.lock().unwrap().failed += 1;
    }

    /// The buyer cancels the order (a refund) once it shows paid.
    async fn cancel_once_paid(&self, order_id: &str, user: u64, tally: &Mutex<Tally>) {
        for _ in 0..120 {
            let shown = self.gateway.get(&format!("/v1/orders/{order_id}"), Some(user)).await;
            let paid = shown.is_ok_and(|(_, body)| {
                serde_json::from_slice::<Value>(&body).is_ok_and(|order| order["status"] == "PAID")
            });
            if paid {
                let status = self.gateway.cancel(order_id, user, &self.sku).await;
                if status.is_ok_and(|status| status.is_success()) {
                    tally.lock().unwrap().cancelled_after_paying += 1;
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn print(&self, tally: &Tally) {
        println!("\nsecond  payments started by channel            503 payment_channel_unavailable");
        for (second, (started, unavailable)) in &tally.timeline {
            let started: Vec<String> = started.iter().map(|(channel, n)| format!("{channel} {n}")).collect();
            println!("{second:>6}  {:<40} {unavailable}", started.join(", "));
        }
        println!(
            "\nbuyers: {} orders placed ({} refused); payments started {:?}; {} answered 503 at once; \
             {} paid, {} of them cancelled after paying; {} walked away; {} gave up",
            tally.placed,
            tally.refused,
            tally.started,
            tally.unavailable,
            tally.paid,
            tally.cancelled_after_paying,
            tally.walked_away,
            tally.failed
        );
    }

    async fn checks(&self, tally: &Tally) -> anyhow::Result<Vec<Check>> {
        let pools = ShardPools::connect_lazy(&self.shards, 1, Duration::from_secs(5))?;
        let deadline = Instant::now() + self.settle;
        let refunds_due = tally.cancelled_after_paying;
        let (statuses, refunds_done) = loop {
            let statuses = pools.count_by_status(&self.sku).await?;
            let refunds_done = count(&pools, &self.sku, REFUNDS_DONE).await?;
            let pending = statuses.get(&OrderStatus::PendingPayment).copied().unwrap_or(0);
            if (pending == 0 && refunds_done >= refunds_due) || Instant::now() > deadline {
                break (statuses, refunds_done);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let payment_channels = by_payment_channel(&pools, &self.sku).await?;
        pools.close().await;
        let status = |status: OrderStatus| statuses.get(&status).copied().unwrap_or(0);
        let (paid, cancelled) = (status(OrderStatus::Paid), status(OrderStatus::Cancelled));
        println!("MySQL: {statuses:?}; paid orders by channel {payment_channels:?}; {refunds_done} refunds confirmed");
        let units = self.gateway.sale(&self.sku).await?;
        let expired = tally.placed - tally.paid;
        Ok(vec![
            check("no order left awaiting payment", status(OrderStatus::PendingPayment) == 0, format!("{statuses:?}")),
            check(
                "every payer's order paid, or cancelled and refunded",
                paid == tally.paid - tally.cancelled_after_paying,
                format!("{paid} paid in MySQL, {} payers kept theirs", tally.paid - tally.cancelled_after_paying),
            ),
            check(
                "every unpaid order expired",
                cancelled == expired + tally.cancelled_after_paying,
                format!("{cancelled} cancelled: {expired} unpaid, {} after paying", tally.cancelled_after_paying),
            ),
            check(
                "every refund confirmed by its channel",
                refunds_done == refunds_due,
                format!("{refunds_done} of {refunds_due}"),
            ),
            check(
                "units add up, none held",
                units.stock + units.reserved + units.sold == units.total && units.reserved == 0,
                format!("{units:?}"),
            ),
        ])
    }
}

async fn count(pools: &ShardPools, sku: &str, sql: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    for pool in &pools.pools {
        let (n,): (i64,) = sqlx::query_as(sql).bind(sku).fetch_one(pool).await?;
        total += n as u64;
    }
    Ok(total)
}

/// Orders paid (and not cancelled since) by the channel they were paid through.
async fn by_payment_channel(pools: &ShardPools, sku: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut channels = BTreeMap::new();
    for pool in &pools.pools {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT payment_channel, COUNT(*) FROM orders WHERE sku = ? AND status = 'PAID' GROUP BY payment_channel",
        )
        .bind(sku)
        .fetch_all(pool)
        .await?;
        for (channel, n) in rows {
            *channels.entry(channel).or_default() += n as u64;
        }
    }
    Ok(channels)
}

const REFUNDS_DONE: &str = "SELECT COUNT(*) FROM refunds r JOIN refund_jobs j ON j.refund_id = r.refund_id \
                            WHERE r.sku = ? AND j.state = 'DONE'";
