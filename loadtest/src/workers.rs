//! The harness every scenario runs on: [`closed_loop`] shares numbered jobs
//! among `concurrency` workers (one call in flight each, as keep-alive
//! connections send), bounded in count and time; each job's [`Answer`] goes
//! into its worker's [`Tally`], and the tallies are added up at the end. The
//! open-loop scenarios pace their own jobs and tally the same answers.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hyper::StatusCode;

use crate::client::Gateway;
use crate::timeline::latency_histogram;

/// What every sale scenario runs with.
pub struct SaleRun {
    pub gateway: Gateway,
    /// The SKU sold (a fresh one per run), or the prefix of a run's SKUs.
    pub sku: String,
    /// Buyer numbers start here: runs against one stack use fresh user ids.
    pub first_user: u64,
    /// The load stops when this passes, sent or not.
    pub max_duration: Duration,
    /// The shards to count stored orders in.
    pub shards: Vec<String>,
    /// How long to wait for the settler (and payments, timeouts).
    pub settle_timeout: Duration,
}

/// One job's answer: the label it is counted under, when its measured call
/// was sent (or due) and how long it took, and the order it made.
pub struct Answer {
    pub sent: Instant,
    pub latency: Duration,
    pub label: String,
    /// (order id, user id) of a 202.
    pub accepted: Option<(String, u64)>,
}

impl Answer {
    /// The answer to a call sent at `sent`, timed now.
    pub fn timed(sent: Instant, label: impl Into<String>) -> Self {
        Self { sent, latency: sent.elapsed(), label: label.into(), accepted: None }
    }

    /// A placement's answer: its status ("error" for a failed connection),
    /// with the order id of a 202.
    pub fn of_placement(sent: Instant, user: u64, answer: &anyhow::Result<(StatusCode, bytes::Bytes)>) -> Self {
        let mut timed = Self::timed(sent, "error");
        if let Ok((status, body)) = answer {
            timed.label = status.as_str().to_owned();
            if *status == StatusCode::ACCEPTED {
                if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
                    timed.accepted = Some((json["order_id"].as_str().unwrap_or_default().to_owned(), user));
                }
            }
        }
        timed
    }
}

/// What a run's workers collected.
#[derive(Default)]
pub struct Tally {
    pub answers: BTreeMap<String, u64>,
    pub latency: Option<Histogram<u64>>,
    /// (order id, user id) of every 202.
    pub accepted: Vec<(String, u64)>,
    /// When each request was sent (ms since the run began) and how long its
    /// answer took (µs): the timeline and the chart.
    pub samples: Vec<(u32, u32)>,
    /// From the first job to the last answer.
    pub elapsed: Duration,
}

impl Tally {
    pub fn count(&self, status: &str) -> u64 {
        self.answers.get(status).copied().unwrap_or(0)
    }

    /// The latencies, an empty histogram when nothing was answered.
    pub fn latency(&self) -> Histogram<u64> {
        self.latency.clone().unwrap_or_else(latency_histogram)
    }

    /// Counts one answer of a run that began at `began`.
    pub fn record(&mut self, began: Instant, answer: Answer) {
        let micros = answer.latency.as_micros().min(u128::from(u32::MAX)) as u64;
        self.latency.get_or_insert_with(latency_histogram).saturating_record(micros);
        let at_ms = answer.sent.saturating_duration_since(began).as_millis() as u32;
        self.samples.push((at_ms, micros as u32));
        *self.answers.entry(answer.label).or_default() += 1;
        self.accepted.extend(answer.accepted);
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

/// Runs jobs `0..jobs` on `concurrency` workers, each taking the next
/// number when its last job answered; stops taking new ones after
/// `max_duration`.
pub async fn closed_loop<Job, Fut>(
    jobs: u64,
    concurrency: usize,
    max_duration: Duration,
    job: Job,
) -> anyhow::Result<Tally>
where
    Job: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let (job, next) = (Arc::new(job), Arc::new(AtomicU64::new(0)));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let began = Instant::now();
    let deadline = began + max_duration;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (job, next, tally) = (job.clone(), next.clone(), tally.clone());
            tokio::spawn(async move {
                let mut mine = Tally::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= jobs || Instant::now() >= deadline {
                        break;
                    }
                    mine.record(began, job(n).await);
                }
                tally.lock().unwrap().absorb(mine);
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let mut tally = std::mem::take(&mut *tally.lock().unwrap());
    tally.elapsed = began.elapsed();
    Ok(tally)
}

/// A burst: `buyers` distinct users from `first_user` on, one click each
/// for `sku`, as fast as `concurrency` connections allow.
pub async fn burst(
    gateway: &Gateway,
    sku: &str,
    first_user: u64,
    buyers: u64,
    concurrency: usize,
    max_duration: Duration,
) -> anyhow::Result<Tally> {
    let (gateway, sku) = (gateway.clone(), sku.to_owned());
    closed_loop(buyers, concurrency, max_duration, move |n| {
        let (gateway, sku) = (gateway.clone(), sku.clone());
        async move { place(&gateway, &sku, first_user + n).await }
    })
    .await
}

/// One click of `user` for `sku`, its idempotency key `<sku>-<user>`.
pub async fn place(gateway: &Gateway, sku: &str, user: u64) -> Answer {
    let sent = Instant::now();
    let answer = gateway.place(user, sku, 1, &format!("{sku}-{user}")).await;
    Answer::of_placement(sent, user, &answer)
}
