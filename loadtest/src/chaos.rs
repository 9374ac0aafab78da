//! The client side of `scripts/chaos.sh`: well-behaved buyers sending
//! orders while the script breaks things, then the invariants every fault
//! scenario ends with.
//!
//! [`Buyers`] sends one click per buyer at a steady pace over the gateways
//! given, round robin. A click answered 503, or not answered at all, is
//! retried with the same key, honouring `Retry-After`, on the *next*
//! gateway (a retry landing on another instance), until it gets a final
//! answer or the retry budget ends. Every order id answered 200/202 is
//! kept: those are the orders that must never be lost.
//!
//! [`check`] then waits for the system to settle and checks: Redis's units
//! add up (and each warehouse's, to the sale's, for regional stock); MySQL's
//! live orders hold exactly the units Redis holds (or counts open, for a
//! sale deducting at payment); every
//! answered order is in MySQL exactly once, on its user's shard, and live;
//! the settler's consumer group has no lag.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use hyper::StatusCode;
use order::status::OrderStatus;
use orderdb::ShardPools;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::client::Gateway;
use crate::group_lag::GroupLag;

/// What the buyers were told, written for [`check`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Answers {
    pub sku: String,
    /// Order id → user id of every click answered 200 or 202.
    pub accepted: BTreeMap<String, u64>,
    /// Final answers by status (and error code), retries not counted.
    pub finals: BTreeMap<String, u64>,
    /// Clicks still without a final answer when their retries ran out.
    pub unanswered: u64,
    /// Attempts that got a 503 or no answer and were retried.
    pub retries: u64,
    /// When each acceptance came (Unix time, ms), in order: what a fault
    /// let through while it lasted.
    #[serde(default)]
    pub accepted_at_ms: Vec<u64>,
}

impl Answers {
    /// The longest stretch between two acceptances, ms: how long a fault
    /// kept every order out.
    pub fn longest_gap_ms(&self) -> u64 {
        self.accepted_at_ms.windows(2).map(|pair| pair[1] - pair[0]).max().unwrap_or_default()
    }
}

pub struct Buyers {
    pub gateways: Vec<Gateway>,
    pub sku: String,
    pub first_user: u64,
    pub buyers: u64,
    pub rate_per_sec: f64,
    pub concurrency: usize,
    /// How long one click keeps being retried.
    pub retry_for: Duration,
}

impl Buyers {
    pub async fn run(self) -> Answers {
        let answers = Arc::new(Mutex::new(Answers { sku: self.sku.clone(), ..Answers::default() }));
        let started = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / self.rate_per_sec.max(0.1));
        let this = &self;
        stream::iter(0..self.buyers)
            .map(|n| {
                let answers = answers.clone();
                async move {
                    // Open loop: each click at its due time.
                    tokio::time::sleep_until((started + interval.mul_f64(n as f64)).into()).await;
                    this.click(n, &answers).await;
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect::<Vec<()>>()
            .await;
        let mut answers = Arc::try_unwrap(answers).map(Mutex::into_inner).unwrap_or_default();
        answers.accepted_at_ms.sort_unstable();
        answers
    }

    async fn click(&self, n: u64, answers: &Mutex<Answers>) {
        let user = self.first_user + n;
        let key = format!("chaos-{user}");
        let deadline = Instant::now() + self.retry_for;
        let mut gateway = n as usize;
        loop {
            let target = &self.gateways[gateway % self.gateways.len()];
            let outcome = tokio::time::timeout(Duration::from_secs(10), target.place(user, &self.sku, 1, &key)).await;
            let (status, body) = match outcome {
                Ok(Ok((status, body))) if !must_retry(status, &body) => (status, body),
                _ => {
                    answers.lock().await.retries += 1;
                    if Instant::now() + RETRY_PAUSE > deadline {
                        answers.lock().await.unanswered += 1;
                        return;
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                    gateway += 1;
                    continue;
                }
            };
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let mut answers = answers.lock().await;
            let label = match json["error"].as_str() {
                Some(error) => format!("{} {error}", status.as_u16()),
                None => status.as_u16().to_string(),
            };
            *answers.finals.entry(label).or_default() += 1;
            if status == StatusCode::OK || status == StatusCode::ACCEPTED {
                if let Some(order_id) = json["order_id"].as_str() {
                    answers.accepted.insert(order_id.to_owned(), user);
                    answers.accepted_at_ms.push(chrono::Utc::now().timestamp_millis() as u64);
                }
            }
            return;
        }
    }
}

/// Between attempts of one click. An `outcome_unknown` asks for longer (its
/// in-flight window); an earlier retry gets 409 `request_in_progress`,
/// which is retried as well.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Answers that are not final: unavailable, outcome unknown, or the first
/// attempt of this click still in flight.
fn must_retry(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::SERVICE_UNAVAILABLE
        || (status == StatusCode::CONFLICT
            && serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|b| b["error"] == "request_in_progress"))
}

/// One invariant and whether it held.
#[derive(Debug, Serialize)]
pub struct Invariant {
    pub name: &'static str,
    pub held: bool,
    pub detail: String,
}

pub struct Check {
    pub gateway: Gateway,
    pub shards: Vec<String>,
    pub bootstrap: String,
    pub topic: String,
    pub group: String,
    pub settle_timeout: Duration,
}

impl Check {
    /// Waits up to `settle_timeout` for every invariant to hold; the last reading.
    pub async fn run(&self, answers: &Answers) -> anyhow::Result<Vec<Invariant>> {
        let deadline = Instant::now() + self.settle_timeout;
        loop {
            let invariants = self.read(answers).await?;
            if invariants.iter().all(|i| i.held) || Instant::now() > deadline {
                return Ok(invariants);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn read(&self, answers: &Answers) -> anyhow::Result<Vec<Invariant>> {
        let sale = self.gateway.sale(&answers.sku).await?;
        let warehouses = self.gateway.warehouses(&answers.sku).await?;
        let sum = |count: fn(&stock::Units) -> i64| warehouses.iter().map(|w| count(&w.units())).sum::<i64>();
        let warehouses_add_up = warehouses.is_empty()
            || (warehouses.iter().all(|w| w.units().add_up())
                && [sum(|u| u.stock), sum(|u| u.reserved), sum(|u| u.sold), sum(|u| u.total), sum(|u| u.open)]
                    == [sale.stock, sale.reserved, sale.sold, sale.total, sale.open]);
        let per_warehouse: Vec<String> =
            warehouses.iter().map(|w| format!("{} {}+{}+{}", w.warehouse, w.stock, w.reserved, w.sold)).collect();
        let stored = stored_orders(&self.shards, &answers.sku).await?;
        let live_units: i64 = stored.values().filter(|o| o.status != OrderStatus::Cancelled).map(|o| o.qty).sum();
        let lost: Vec<&String> = answers
            .accepted
            .keys()
            .filter(|id| stored.get(*id).is_none_or(|o| o.status == OrderStatus::Cancelled || o.copies != 1))
            .take(5)
            .collect();
        let misplaced = stored.values().filter(|o| !o.on_its_shard).count();
        let lag = GroupLag::connect(&self.bootstrap, &self.topic, &self.group)?.lag().await?;
        Ok(vec![
            Invariant {
                name: "units add up",
                held: sale.add_up() && warehouses_add_up,
                detail: format!(
                    "stock {} + reserved {} + sold {} = {} of {} loaded; warehouses: {}",
                    sale.stock,
                    sale.reserved,
                    sale.sold,
                    sale.stock + sale.reserved + sale.sold,
                    sale.total,
                    if per_warehouse.is_empty() { "none".to_owned() } else { per_warehouse.join(", ") }
                ),
            },
            Invariant {
                name: "MySQL live = Redis held",
                held: live_units == sale.ordered(),
                detail: format!(
                    "{live_units} live units in MySQL; in Redis {} held, {} ordered by open orders",
                    sale.held(),
                    sale.open
                ),
            },
            Invariant {
                name: "every 2xx stored once, live",
                held: lost.is_empty() && misplaced == 0,
                detail: format!(
                    "{} answered, {} stored; missing, cancelled or duplicated: {lost:?}; on a wrong shard: {misplaced}",
                    answers.accepted.len(),
                    stored.len()
                ),
            },
            Invariant { name: "consumer lag 0", held: lag == 0, detail: format!("{lag} messages behind") },
        ])
    }
}

struct Stored {
    status: OrderStatus,
    qty: i64,
    copies: u32,
    on_its_shard: bool,
}

async fn stored_orders(shards: &[String], sku: &str) -> anyhow::Result<HashMap<String, Stored>> {
    let pools = ShardPools::connect_lazy(shards, 1, Duration::from_secs(5))?;
    let rows = pools.orders_of_sku(sku).await;
    pools.close().await;
    let mut stored: HashMap<String, Stored> = HashMap::new();
    for row in rows? {
        let entry = stored.entry(row.order_id.to_string()).or_insert(Stored {
            status: row.status,
            qty: row.qty,
            copies: 0,
            on_its_shard: true,
        });
        entry.copies += 1;
        entry.on_its_shard &= pools.router.shard_for_user(row.user_id) == row.shard;
    }
    Ok(stored)
}
