//! The flash-sale scenario: many more distinct buyers than units, each
//! pressing "buy" once, as fast as `concurrency` connections allow. Then
//! the invariants: nothing oversold, every accepted order in MySQL exactly
//! once, Redis's counters adding up.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use hyper::StatusCode;

use crate::client::Gateway;
use crate::report::{latency_histogram, Check, Latency, Report};
use crate::shards::count_orders;

pub struct FlashSale {
    pub gateway: Gateway,
    pub sku: String,
    pub stock: i64,
    pub buyers: u64,
    /// Added to buyer numbers, so runs against one stack use fresh user ids.
    pub first_user: u64,
    pub concurrency: usize,
    /// The run stops when this passes, sent or not.
    pub max_duration: Duration,
    pub shards: Vec<String>,
    /// How long to wait for the settler to store every accepted order.
    pub drain_timeout: Duration,
}

/// What the workers collected.
#[derive(Default)]
struct Tally {
    answers: BTreeMap<String, u64>,
    latency: Option<Histogram<u64>>,
    order_ids: Vec<String>,
}

impl FlashSale {
    pub async fn run(self) -> anyhow::Result<Report> {
        self.gateway.load_sale(&self.sku, self.stock, 1, 9_900).await.context("loading the sale")?;
        let next = Arc::new(AtomicU64::new(0));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let started = Instant::now();
        let deadline = started + self.max_duration;
        let workers: Vec<_> = (0..self.concurrency)
            .map(|_| tokio::spawn(worker(self.gateway.clone(), self.sku.clone(), self.buyers, self.first_user, next.clone(), deadline, tally.clone())))
            .collect();
        for worker in workers {
            worker.await?;
        }
        let elapsed = started.elapsed();
        let tally = std::mem::take(&mut *tally.lock().unwrap());
        let latency = tally.latency.unwrap_or_else(latency_histogram);
        let requests = latency.len();
        let accepted = tally.answers.get("202").copied().unwrap_or(0);

        let orders_in_mysql = self.wait_for_settler(accepted).await?;
        let sale = self.gateway.sale(&self.sku).await?;
        let distinct: HashSet<&String> = tally.order_ids.iter().collect();
        let checks = vec![
            check("no oversell", accepted as i64 <= self.stock, format!("{accepted} accepted of {} units", self.stock)),
            check(
                "stock adds up",
                sale.stock + sale.reserved + sale.sold == self.stock && sale.reserved + sale.sold == accepted as i64,
                format!("redis: {} left + {} reserved + {} sold; {accepted} accepted", sale.stock, sale.reserved, sale.sold),
            ),
            check(
                "every accepted order in MySQL exactly once",
                orders_in_mysql == accepted,
                format!("{orders_in_mysql} rows for {accepted} accepted orders"),
            ),
            check(
                "no order id twice",
                distinct.len() == tally.order_ids.len(),
                format!("{} distinct ids in {} answers", distinct.len(), tally.order_ids.len()),
            ),
            check(
                "sold out only when gone",
                sale.stock == 0 || tally.answers.get("409").is_none(),
                format!("{} units left", sale.stock),
            ),
        ];
        Ok(Report {
            scenario: "flash-sale",
            sku: self.sku,
            stock: self.stock,
            requests,
            elapsed_secs: elapsed.as_secs_f64(),
            throughput_rps: requests as f64 / elapsed.as_secs_f64(),
            answers: tally.answers,
            latency: Latency::from_histogram(&latency),
            orders_in_mysql,
            checks,
        })
    }

    async fn wait_for_settler(&self, accepted: u64) -> anyhow::Result<u64> {
        let deadline = Instant::now() + self.drain_timeout;
        loop {
            let stored = count_orders(&self.shards, &self.sku).await?;
            if stored >= accepted || Instant::now() > deadline {
                return Ok(stored);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn worker(
    gateway: Gateway,
    sku: String,
    buyers: u64,
    first_user: u64,
    next: Arc<AtomicU64>,
    deadline: Instant,
    tally: Arc<Mutex<Tally>>,
) {
    let mut mine = Tally { latency: Some(latency_histogram()), ..Tally::default() };
    let histogram = mine.latency.as_mut().expect("just set");
    loop {
        let buyer = next.fetch_add(1, Ordering::Relaxed);
        if buyer >= buyers || Instant::now() >= deadline {
            break;
        }
        let user = first_user + buyer;
        let sent = Instant::now();
        let answer = gateway.place(user, &sku, 1, &format!("{sku}-{user}")).await;
        histogram.saturating_record(sent.elapsed().as_micros() as u64);
        let status = match answer {
            Ok((status, body)) => {
                if status == StatusCode::ACCEPTED {
                    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) {
                        mine.order_ids.push(json["order_id"].as_str().unwrap_or_default().to_owned());
                    }
                }
                status.as_str().to_owned()
            }
            Err(_) => "error".to_owned(),
        };
        *mine.answers.entry(status).or_default() += 1;
    }
    let mut total = tally.lock().unwrap();
    for (status, n) in mine.answers {
        *total.answers.entry(status).or_default() += n;
    }
    total.order_ids.extend(mine.order_ids);
    let theirs = mine.latency.expect("set above");
    match &mut total.latency {
        Some(histogram) => histogram.add(&theirs).expect("same bounds"),
        None => total.latency = Some(theirs),
    }
}

fn check(name: &str, ok: bool, detail: String) -> Check {
    Check { name: name.to_owned(), ok, detail }
}
