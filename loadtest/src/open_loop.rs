//! Open-loop scenarios: requests leave at a scheduled rate whether or not
//! earlier ones were answered, and each latency is measured from the moment
//! its request was due — so a slow stack cannot hide its slowness by slowing
//! the generator down (no coordinated omission). `steady` keeps one rate;
//! `ramp` rises from one rate to another to find the knee.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::report::{check, Report};
use crate::shards::wait_for_orders;
use crate::timeline::per_second;
use crate::workers::{Answer, SaleRun, Tally};

pub struct RateRun {
    pub scenario: &'static str,
    /// The gateway, the sale, its buyers and its bounds.
    pub sale: SaleRun,
    /// Offered rate at the start and at the end (equal for `steady`), req/s.
    pub start_rps: f64,
    pub end_rps: f64,
    pub duration: Duration,
    pub max_requests: u64,
    /// Requests awaiting an answer at most; past it a due request is
    /// counted as dropped by the generator rather than delayed.
    pub max_in_flight: usize,
    /// The ramp's knee: the highest offered rate whose second kept p99 under this.
    pub knee_p99_ms: f64,
}

impl RateRun {
    /// Requests due by `t` seconds in (the integral of the offered rate).
    fn due_by(&self, t: f64) -> u64 {
        let span = self.duration.as_secs_f64();
        let t = t.min(span);
        (self.start_rps * t + (self.end_rps - self.start_rps) * t * t / (2.0 * span)) as u64
    }

    fn offered_at(&self, t: f64) -> f64 {
        self.start_rps + (self.end_rps - self.start_rps) * t / self.duration.as_secs_f64()
    }

    pub async fn run(self) -> anyhow::Result<Report> {
        self.sale.gateway.load_sale(&self.sale.sku, 1_000_000_000_000, 1, 100).await?;
        let tally = Arc::new(Mutex::new(Tally::default()));
        let in_flight = Arc::new(Semaphore::new(self.max_in_flight));
        let mut dropped = 0u64;
        let mut sent = 0u64;
        let began = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        while began.elapsed() < self.duration && sent < self.max_requests {
            tick.tick().await;
            let due = self.due_by(began.elapsed().as_secs_f64()).min(self.max_requests);
            while sent < due {
                let user = self.sale.first_user + sent;
                sent += 1;
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    dropped += 1;
                    continue;
                };
                let (gateway, sku, tally) = (self.sale.gateway.clone(), self.sale.sku.clone(), tally.clone());
                let due_at = Instant::now();
                tokio::spawn(async move {
                    let answer = gateway.place(user, &sku, 1, &format!("{sku}-{user}")).await;
                    tally.lock().unwrap().record(began, Answer::of_placement(due_at, user, &answer));
                    drop(permit);
                });
            }
        }
        let sending = began.elapsed();
        // Every request answered: all permits back.
        let _all = in_flight.acquire_many(self.max_in_flight as u32).await?;
        let mut tally = std::mem::take(&mut *tally.lock().unwrap());
        tally.elapsed = sending;
        let latency = tally.latency();
        let timeline = per_second(&tally.samples);
        let accepted = tally.count("202");
        let orders_in_mysql = wait_for_orders(&self.sale.shards, &self.sale.sku, self.sale.settle_timeout, |stored| {
            stored.values().sum::<u64>() >= accepted
        })
        .await?;
        let stored: u64 = orders_in_mysql.values().sum();
        let sale = self.sale.gateway.sale(&self.sale.sku).await?;

        let knee_rps = (self.scenario == "ramp").then(|| {
            timeline
                .iter()
                .take_while(|second| second.p99_ms <= self.knee_p99_ms)
                .map(|second| self.offered_at(f64::from(second.t) + 1.0))
                .fold(0.0, f64::max)
        });
        let checks = vec![
            check(
                "the generator kept its schedule",
                dropped == 0,
                format!("{dropped} due requests dropped at {} in flight", self.max_in_flight),
            ),
            check(
                "every order accepted (stock never runs out)",
                accepted == latency.len(),
                format!("{accepted} of {} answered 202: {:?}", latency.len(), tally.answers),
            ),
            check(
                "every accepted order in MySQL",
                stored == accepted,
                format!("{stored} rows for {accepted} accepted"),
            ),
            check(
                "stock adds up",
                sale.reserved + sale.sold == accepted as i64,
                format!("redis: {} reserved + {} sold; {accepted} accepted", sale.reserved, sale.sold),
            ),
        ];
        Ok(Report {
            knee_rps,
            ..Report::of(self.scenario, self.sale.sku, 1_000_000_000_000, tally, orders_in_mysql, checks)
        })
    }
}
