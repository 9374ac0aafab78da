//! The idempotency storm: a few clicks, each retried many times at once
//! over many connections, as clients hammering "buy" on a slow page do.
//! Every answer for one key must name the same order, each key must make
//! at most one order, and the stock taken must equal the orders made.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyper::StatusCode;

use crate::report::{check, Report};
use crate::shards::{describe, wait_for_orders};
use crate::workers::{closed_loop, Answer, SaleRun};

pub struct Storm {
    /// The gateway, the sale, its buyers and its bounds.
    pub sale: SaleRun,
    pub keys: u64,
    pub retries: u64,
    pub concurrency: usize,
}

/// Per key: the statuses answered and the order ids they named.
type Answers = HashMap<u64, Vec<(u16, Option<String>)>>;

impl Storm {
    pub async fn run(self) -> anyhow::Result<Report> {
        self.sale.gateway.load_sale(&self.sale.sku, self.keys as i64, 1, 100).await?;
        let answers: Arc<Mutex<Answers>> = Arc::default();
        let (gateway, sku, keys, first_user) =
            (self.sale.gateway.clone(), self.sale.sku.clone(), self.keys, self.sale.first_user);
        let per_key = answers.clone();
        let tally = closed_loop(self.keys * self.retries, self.concurrency, self.sale.max_duration, move |n| {
            let (gateway, sku, per_key) = (gateway.clone(), sku.clone(), per_key.clone());
            async move {
                // Retries of one key are spread over the run, so they race.
                let key = n % keys;
                let sent = Instant::now();
                let answer = gateway.place(first_user + key, &sku, 1, &format!("{sku}-storm-{key}")).await;
                let (status, order_id) = match &answer {
                    Ok((status, body)) => {
                        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                        (status.as_u16(), json["order_id"].as_str().map(str::to_owned))
                    }
                    Err(_) => (0, None),
                };
                per_key.lock().unwrap().entry(key).or_default().push((status, order_id));
                Answer::timed(sent, if status == 0 { "error".to_owned() } else { status.to_string() })
            }
        })
        .await?;
        let answers = std::mem::take(&mut *answers.lock().unwrap());

        let mut orders = HashSet::new();
        let (mut split_keys, mut double_created, mut refused_after) = (0, 0, 0);
        for per_key in answers.values() {
            let ids: HashSet<&String> = per_key.iter().filter_map(|(_, id)| id.as_ref()).collect();
            split_keys += usize::from(ids.len() > 1);
            // A key that made an order must never be told otherwise.
            if !ids.is_empty() {
                refused_after += per_key.iter().filter(|(status, id)| id.is_none() && *status != 429).count();
            }
            let created = per_key.iter().filter(|(status, _)| *status == StatusCode::ACCEPTED.as_u16()).count();
            double_created += usize::from(created > 1);
            orders.extend(ids.into_iter().cloned());
        }
        let made = orders.len() as u64;
        let stored = wait_for_orders(&self.sale.shards, &self.sale.sku, self.sale.settle_timeout, |s| {
            s.values().sum::<u64>() >= made
        })
        .await?;
        let sale = self.sale.gateway.sale(&self.sale.sku).await?;
        let checks = vec![
            check(
                "every answer for a key names one order",
                split_keys == 0,
                format!("{split_keys} keys answered with two order ids"),
            ),
            check("one 202 per key", double_created == 0, format!("{double_created} keys created twice")),
            check(
                "a key that made an order always gets it back",
                refused_after == 0,
                format!("{refused_after} answers without the order for keys that had one"),
            ),
            check(
                "stock taken = orders made",
                sale.reserved + sale.sold == made as i64,
                format!(
                    "redis: {} reserved + {} sold; {made} orders from {} keys",
                    sale.reserved, sale.sold, self.keys
                ),
            ),
            check(
                "every order in MySQL once",
                stored.values().sum::<u64>() == made,
                format!("{} for {made} orders", describe(&stored)),
            ),
        ];
        Ok(Report::of("idempotency-storm", self.sale.sku, self.keys as i64, tally, stored, checks))
    }
}
