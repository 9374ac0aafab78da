//! A burst: distinct buyers, one click each, sent as fast as `concurrency`
//! keep-alive connections allow (closed loop), bounded in count and time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hyper::StatusCode;

use crate::client::Gateway;
use crate::timeline::latency_histogram;

/// What a burst's workers collected.
#[derive(Default)]
pub struct Tally {
    pub answers: BTreeMap<String, u64>,
    pub latency: Option<Histogram<u64>>,
    /// (order id, user id) of every 202.
    pub accepted: Vec<(String, u64)>,
    /// When each request was sent (ms since the run began) and how long its
    /// answer took (µs): the timeline and the chart.
    pub samples: Vec<(u32, u32)>,
}

impl Tally {
    pub fn count(&self, status: &str) -> u64 {
        self.answers.get(status).copied().unwrap_or(0)
    }

    /// Records one answer sent at `sent` (the run began at `began`).
    pub fn record(&mut self, began: Instant, sent: Instant, status: String) {
        let latency = sent.elapsed();
        self.latency.get_or_insert_with(latency_histogram).saturating_record(latency.as_micros() as u64);
        let at_ms = sent.saturating_duration_since(began).as_millis() as u32;
        self.samples.push((at_ms, latency.as_micros().min(u128::from(u32::MAX)) as u32));
        *self.answers.entry(status).or_default() += 1;
    }

    /// Adds another tally's answers, latencies and samples to this one.
    pub fn absorb(&mut self, other: Tally) {
        for (status, n) in other.answers {
            *self.answers.entry(status).or_default() += n;
        }
        self.accepted.extend(other.accepted);
        self.samples.extend(other.samples);
        if let Some(theirs) = other.latency {
            match &mut self.latency {
                Some(all) => all.add(&theirs).expect("same bounds"),
                None => self.latency = Some(theirs),
            }
        }
    }
}

/// The answer's status as a report key ("error" for a failed connection),
/// noting the order id of a 202.
pub fn status_of(answer: &anyhow::Result<(StatusCode, bytes::Bytes)>, user: u64, tally: &mut Tally) -> String {
    match answer {
        Ok((status, body)) => {
            if *status == StatusCode::ACCEPTED {
                if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
                    tally.accepted.push((json["order_id"].as_str().unwrap_or_default().to_owned(), user));
                }
            }
            status.as_str().to_owned()
        }
        Err(_) => "error".to_owned(),
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
    let began = Instant::now();
    let deadline = began + max_duration;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (gateway, sku, next, tally) = (gateway.clone(), sku.to_owned(), next.clone(), tally.clone());
            tokio::spawn(worker(gateway, sku, buyers, first_user, next, began, deadline, tally))
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    Ok(tally)
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    gateway: Gateway,
    sku: String,
    buyers: u64,
    first_user: u64,
    next: Arc<AtomicU64>,
    began: Instant,
    deadline: Instant,
    tally: Arc<Mutex<Tally>>,
) {
    let mut mine = Tally::default();
    loop {
        let buyer = next.fetch_add(1, Ordering::Relaxed);
        if buyer >= buyers || Instant::now() >= deadline {
            break;
        }
        let user = first_user + buyer;
        let sent = Instant::now();
        let answer = gateway.place(user, &sku, 1, &format!("{sku}-{user}")).await;
        let status = status_of(&answer, user, &mut mine);
        mine.record(began, sent, status);
    }
    tally.lock().unwrap().absorb(mine);
}
