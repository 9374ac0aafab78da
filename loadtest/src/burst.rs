//! A burst: distinct buyers, one click each, sent as fast as `concurrency`
//! keep-alive connections allow (closed loop), bounded in count and time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hyper::StatusCode;

use crate::client::Gateway;
use crate::report::latency_histogram;

/// What a burst's workers collected.
#[derive(Default)]
pub struct Tally {
    pub answers: BTreeMap<String, u64>,
    pub latency: Option<Histogram<u64>>,
    /// (order id, user id) of every 202.
    pub accepted: Vec<(String, u64)>,
}

impl Tally {
    pub fn count(&self, status: &str) -> u64 {
        self.answers.get(status).copied().unwrap_or(0)
    }
}

/// `buyers` distinct users from `first_user` on, one click each for `sku`;
/// stops after `max_duration` whatever is left.
pub async fn burst(
    gateway: &Gateway,
    sku: &str,
    first_user: u64,
    buyers: u64,
    concurrency: usize,
    max_duration: Duration,
) -> anyhow::Result<Tally> {
    let next = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let deadline = Instant::now() + max_duration;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (gateway, sku, next, tally) = (gateway.clone(), sku.to_owned(), next.clone(), tally.clone());
            tokio::spawn(worker(gateway, sku, buyers, first_user, next, deadline, tally))
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    Ok(tally)
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
    let mut histogram = latency_histogram();
    let mut mine = Tally::default();
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
                        mine.accepted.push((json["order_id"].as_str().unwrap_or_default().to_owned(), user));
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
    total.accepted.extend(mine.accepted);
    match &mut total.latency {
        Some(all) => all.add(&histogram).expect("same bounds"),
        None => total.latency = Some(histogram),
    }
}

