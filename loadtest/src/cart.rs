//! Cart checkouts under load: distinct buyers, one checkout each of 2 to 4
//! of a few SKUs (two stores, a promotion, freight), racing for stock that
//! runs out; then some cancel and some pay. Measured against single-SKU
//! orders placed in the same run (the floor a cart's lines are made of).
//!
//! Invariants: each answered checkout's items add up to its payment; no
//! SKU holds a unit more or less than the accepted, uncancelled checkouts'
//! items (a refused cart leaves nothing held, nothing is sold twice); every
//! accepted checkout's items are stored once, cancelled ones cancelled and
//! paid ones paid.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use futures::stream::{self, StreamExt};
use hyper::StatusCode;
use order::status::OrderStatus;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::report::{check, Report};
use crate::shards::{describe, wait_for_orders, StatusCounts};
use crate::workers::{burst, closed_loop, Answer, SaleRun};

pub struct Cart {
    /// The gateway, the sale, its buyers and its bounds.
    pub sale: SaleRun,
    /// Buyers, one checkout each.
    pub buyers: u64,
    pub skus: usize,
    pub stock_per_sku: i64,
    pub concurrency: usize,
    /// Of the accepted checkouts: the share cancelled, and of the rest the share paid.
    pub cancel_fraction: f64,
    pub pay_fraction: f64,
    pub channel_url: String,
}

/// An accepted checkout: its buyer and its items (order id, SKU, units).
struct Accepted {
    parent: String,
    user: u64,
    items: Vec<(String, String, i64)>,
}

impl Cart {
    pub async fn run(self) -> anyhow::Result<Report> {
        let skus = self.set_up().await?;
        let floor = self.floor().await?;

        let accepted: Arc<Mutex<Vec<Accepted>>> = Arc::default();
        let broken_sums = Arc::new(AtomicU64::new(0));
        let lines_sent = Arc::new(AtomicU64::new(0));
        let (gateway, first_user, run) = (self.sale.gateway.clone(), self.sale.first_user, self.sale.sku.clone());
        let (kept, broken, lines_counted, cart_skus) =
            (accepted.clone(), broken_sums.clone(), lines_sent.clone(), skus.clone());
        let tally = closed_loop(self.buyers, self.concurrency, self.sale.max_duration, move |n| {
            let (gateway, run, kept, broken, lines_counted) =
                (gateway.clone(), run.clone(), kept.clone(), broken.clone(), lines_counted.clone());
            let user = first_user + n;
            let lines = cart_of(&cart_skus, &mut StdRng::seed_from_u64(user));
            async move {
                lines_counted.fetch_add(lines.len() as u64, Ordering::Relaxed);
                let body = json!({"lines": lines});
                let sent = Instant::now();
                let answer = gateway.checkout(user, &format!("{run}-{user}"), &body).await;
                let label = match &answer {
                    Ok((status, reply)) if *status == StatusCode::CREATED => {
                        let reply: Value = serde_json::from_slice(reply).unwrap_or_default();
                        match accepted_of(&reply, user) {
                            Some((checkout, adds_up)) => {
                                broken.fetch_add(u64::from(!adds_up), Ordering::Relaxed);
                                kept.lock().unwrap().push(checkout);
                            }
                            None => {
                                broken.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        "201".to_owned()
                    }
                    Ok((status, reply)) => {
                        let reply: Value = serde_json::from_slice(reply).unwrap_or_default();
                        format!("{} {}", status.as_u16(), reply["error"].as_str().unwrap_or("?"))
                    }
                    Err(_) => "error".to_owned(),
                };
                Answer::timed(sent, label)
            }
        })
        .await?;
        let elapsed = tally.elapsed;
        let accepted = std::mem::take(&mut *accepted.lock().unwrap());
        let latency = tally.latency();
        let checkouts_per_sec = latency.len() as f64 / elapsed.as_secs_f64();
        let lines_per_sec = lines_sent.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();

        let (cancelled, paid, failed_moves) = self.cancel_and_pay(&accepted).await;
        let expected = expected_items(&accepted, &cancelled, &paid);
        let mut stored = StatusCounts::new();
        let mut units_ok = Vec::new();
        for sku in &skus {
            let want = expected.get(sku).cloned().unwrap_or_default();
            let counts =
                wait_for_orders(&self.sale.shards, sku, self.sale.settle_timeout, |stored| *stored == want).await?;
            for (status, n) in &counts {
                *stored.entry(*status).or_default() += n;
            }
            let sale = self.sale.gateway.sale(sku).await?;
            let live: i64 = accepted
                .iter()
                .filter(|checkout| !cancelled.contains(&checkout.parent))
                .flat_map(|checkout| &checkout.items)
                .filter(|(_, item_sku, _)| item_sku == sku)
                .map(|(_, _, qty)| qty)
                .sum();
            let adds_up = sale.stock + sale.reserved + sale.sold == sale.total;
            units_ok.push((sku.clone(), adds_up && sale.reserved + sale.sold == live, counts == want, sale, live));
        }
        let want_all: StatusCounts = expected.values().fold(StatusCounts::new(), |mut all, counts| {
            for (status, n) in counts {
                *all.entry(*status).or_default() += n;
            }
            all
        });
        let held_wrong: Vec<String> = units_ok
            .iter()
            .filter(|(_, ok, ..)| !ok)
            .map(|(sku, _, _, sale, live)| {
                format!("{sku}: {} reserved + {} sold for {live} live units", sale.reserved, sale.sold)
            })
            .collect();
        let broken_sums = broken_sums.load(Ordering::Relaxed);
        let checks = vec![
            check(
                "each checkout's items add up to its payment",
                broken_sums == 0,
                format!("{broken_sums} answers whose items do not add up"),
            ),
            check(
                "each SKU holds exactly the live checkouts' units (no partial hold, no oversell)",
                held_wrong.is_empty(),
                if held_wrong.is_empty() { format!("{} SKUs", skus.len()) } else { held_wrong.join("; ") },
            ),
            check(
                "every accepted item stored once, cancelled and paid as answered",
                units_ok.iter().all(|(_, _, stored_ok, ..)| *stored_ok),
                format!("stored {} for {}", describe(&stored), describe(&want_all)),
            ),
            check(
                "every cancel and payment answered",
                failed_moves == 0,
                format!("{failed_moves} failed; {} cancelled, {} paid", cancelled.len(), paid.len()),
            ),
        ];
        println!(
            "cart: {checkouts_per_sec:.0} checkouts/s ({lines_per_sec:.0} lines/s), {} accepted of {}; \
             floor: {floor:.0} single orders/s in the same run; checkouts {:.2} and lines {:.2} of the floor",
            accepted.len(),
            latency.len(),
            checkouts_per_sec / floor,
            lines_per_sec / floor,
        );
        Ok(Report::of(
            "cart",
            format!("{} SKUs {}_*", skus.len(), self.sale.sku),
            self.stock_per_sku * skus.len() as i64,
            tally,
            stored,
            checks,
        ))
    }

    /// The SKUs' sales and catalogue: two stores (one fragile SKU), a
    /// promotion over the first two, freight for the first store.
    async fn set_up(&self) -> anyhow::Result<Vec<String>> {
        let (store_a, store_b) = (format!("{}_a", self.sale.sku), format!("{}_b", self.sale.sku));
        let mut skus = Vec::new();
        for i in 0..self.skus {
            let sku = format!("{}_{i}", self.sale.sku);
            self.sale.gateway.load_sale(&sku, self.stock_per_sku, 10, 1_000 + 700 * i as i64).await?;
            let store = if i % 2 == 0 { &store_a } else { &store_b };
            let handling = if i == 1 { "fragile" } else { "regular" };
            let facts = json!({"store": store, "warehouse": format!("{store}_wh"), "handling": handling,
                               "weight_grams": 800, "volume_cm3": 2_000});
            self.sale.gateway.catalogue("skus", &sku, &facts).await?;
            skus.push(sku);
        }
        let promotion = json!({"threshold_cents": 3_000, "discount_cents": 300, "skus": [skus[0], skus[1]]});
        self.sale.gateway.catalogue("promotions", &self.sale.sku, &promotion).await?;
        self.sale.gateway.catalogue("freight", &store_a, &json!({"free_over_cents": 5_000, "fee_cents": 600})).await?;
        Ok(skus)
    }

    /// Single-SKU orders at the same concurrency, as many as carts: orders/s.
    async fn floor(&self) -> anyhow::Result<f64> {
        let sku = format!("{}_floor", self.sale.sku);
        self.sale.gateway.load_sale(&sku, self.buyers as i64, 1, 1_000).await?;
        let first = self.sale.first_user + 10_000_000;
        let tally = burst(&self.sale.gateway, &sku, first, self.buyers, self.concurrency, self.sale.max_duration)
            .await
            .context("the single-order floor")?;
        let sent: u64 = tally.answers.values().sum();
        Ok(sent as f64 / tally.elapsed.as_secs_f64())
    }

    /// Cancels `cancel_fraction` of the checkouts and pays `pay_fraction`
    /// of the rest, `concurrency` at a time (a short payment window must
    /// not pass first); the ids cancelled, the ids paid, and how many failed.
    async fn cancel_and_pay(&self, accepted: &[Accepted]) -> (Vec<String>, Vec<String>, u64) {
        let mut rng = StdRng::seed_from_u64(self.sale.first_user);
        let moves = accepted.iter().filter_map(|checkout| {
            let roll: f64 = rng.gen();
            let cancel = roll < self.cancel_fraction;
            let pay = !cancel && roll < self.cancel_fraction + (1.0 - self.cancel_fraction) * self.pay_fraction;
            (cancel || pay).then_some((checkout, cancel))
        });
        let outcomes: Vec<(bool, &str, bool)> = stream::iter(moves)
            .map(|(checkout, cancel)| async move {
                let done = if cancel {
                    matches!(
                        self.sale.gateway.cancel_checkout(&checkout.parent, checkout.user).await,
                        Ok(StatusCode::OK)
                    )
                } else {
                    match self.sale.gateway.pay_checkout(&checkout.parent, checkout.user).await {
                        Ok(payment_id) => {
                            self.sale.gateway.complete_payment(&self.channel_url, &payment_id).await.is_ok()
                        }
                        Err(_) => false,
                    }
                };
                (cancel, checkout.parent.as_str(), done)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let (mut cancelled, mut paid, mut failed) = (Vec::new(), Vec::new(), 0);
        for (cancel, parent, done) in outcomes {
            match (done, cancel) {
                (false, _) => failed += 1,
                (true, true) => cancelled.push(parent.to_owned()),
                (true, false) => paid.push(parent.to_owned()),
            }
        }
        (cancelled, paid, failed)
    }
}

/// A buyer's cart: 2 to 4 of the SKUs, 1 or 2 units each.
fn cart_of(skus: &[String], rng: &mut StdRng) -> Vec<Value> {
    let n = rng.gen_range(2..=4.min(skus.len()));
    skus.choose_multiple(rng, n).map(|sku| json!({"sku": sku, "qty": rng.gen_range(1..=2)})).collect()
}

/// The checkout a 201 answered, and whether its figures add up: items to
/// the payment, payment to goods + freight − discounts.
fn accepted_of(reply: &Value, user: u64) -> Option<(Accepted, bool)> {
    let cents = |value: &Value| value.as_i64();
    let mut items = Vec::new();
    let mut amounts = 0;
    for sub in reply["sub_orders"].as_array()? {
        for item in sub["items"].as_array()? {
            amounts += cents(&item["amount_cents"])?;
            items.push((
                item["order_id"].as_str()?.to_owned(),
                item["sku"].as_str()?.to_owned(),
                item["qty"].as_i64()?,
            ));
        }
    }
    let payable = cents(&reply["payable_cents"])?;
    let figured = cents(&reply["goods_cents"])? + cents(&reply["freight_cents"])?
        - cents(&reply["promotions_cents"])?
        - cents(&reply["coupon_cents"])?;
    let parent = reply["order_id"].as_str()?.to_owned();
    Some((Accepted { parent, user, items }, amounts == payable && figured == payable))
}

/// Per SKU, the item orders MySQL should hold by status.
fn expected_items(accepted: &[Accepted], cancelled: &[String], paid: &[String]) -> HashMap<String, StatusCounts> {
    let mut expected: HashMap<String, StatusCounts> = HashMap::new();
    for checkout in accepted {
        let status = if cancelled.contains(&checkout.parent) {
            OrderStatus::Cancelled
        } else if paid.contains(&checkout.parent) {
            OrderStatus::Paid
        } else {
            OrderStatus::PendingPayment
        };
        for (_, sku, _) in &checkout.items {
            *expected.entry(sku.clone()).or_default().entry(status).or_default() += 1;
        }
    }
    expected
}
