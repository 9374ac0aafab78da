//! The settler's pipeline: consume a batch of order events, write them to
//! their shards, set aside what can never be written, and only then commit
//! the batch's offsets.
//!
//! Every step is safe to redo: a crash or rebalance before the commit means
//! the batch is delivered again, the dead letters are sent again (at least
//! once) and the inserts find their rows already there.
//!
//! Errors come in two classes ([`crate::failures`]). Transient ones (a shard
//! down, a deadlock, the broker away) are retried with capped backoff, and
//! the offsets wait: nothing is skipped. Permanent ones (undecodable, a
//! constraint the event breaks) send that one event to the dead-letter topic
//! with the reason, counted in `settler_dead_letters_total`, and the batch
//! goes on: one poison event never halts the pipeline. A shutdown during a
//! retry leaves the batch uncommitted, to be delivered again.
//!
//! Once a batch is written, two things follow in Redis, at best effort and
//! off the pipeline's path: its orders that moved leave the gateway's
//! hot-order cache (the next read finds them in their shard), and what it
//! changed is added to the live sale figures (`stats:{sku}`, and
//! `settler_sale_figures_total` in `/metrics`): orders stored now, payments
//! and cancellations that moved an order, and the outbox's moves and
//! refunds. `settler sale-report` recomputes the figures from MySQL and
//! shows any drift.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use events::producer::EventProducer;
use order::checkout::CheckoutOrder;
use order::event::{DecodeError, OrderCreated, OrderEvent};
use order::id::OrderId;
use order::sale_stats::SaleStats;
use orderdb::{transitions, ShardPools};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use stock::{OrderCache, Redis, SaleFigures};
use tokio::sync::watch;

use crate::config::Config;
use crate::consumer_lag;
use crate::failures::is_transient;
use crate::traced;

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("mysql: {0}")]
    Mysql(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] stock::StoreError),
}

/// Whether an event counts in the live figures: a payment or cancellation
/// when it moved the order (not a replay, nor the loser of a race); a move
/// made in MySQL and a refund's completion, sent once per move from the
/// shard's outbox, always.
fn counted(event: &OrderEvent, changed: bool) -> bool {
    matches!(event, OrderEvent::OrderStatusChanged(_) | OrderEvent::RefundCompleted(_)) || changed
}

/// A shutdown arrived while the batch was being retried.
struct Interrupted;

/// A message, decoded as it arrives: the next batch is decoded while the
/// one before it is written.
struct Received {
    message: OwnedMessage,
    event: Result<OrderEvent, DecodeError>,
    /// Its trace context, if a traced order's ([`traced`]).
    trace: traced::TraceContext,
}

impl Received {
    fn of(message: &BorrowedMessage<'_>) -> Self {
        let event = OrderEvent::decode(message.payload().unwrap_or_default());
        Self { message: message.detach(), event, trace: traced::trace_context(message) }
    }
}

/// An event set aside for good, and why.
struct Rejected<'a> {
    message: &'a OwnedMessage,
    kind: &'static str,
    reason: String,
}

pub struct Settler {
    config: Config,
    /// Shared with the task that reports its lag ([`consumer_lag`]).
    consumer: Arc<StreamConsumer>,
    dead_letters: EventProducer,
    shards: ShardPools,
    /// The hot-order cache, where moved orders' views are dropped.
    cache: OrderCache,
    /// The live sale figures.
    figures: SaleFigures,
    /// Next offset per partition of what is settled but not yet committed
    /// (a commit failed: a rebalance under way, the coordinator moving).
    /// Committed with the next batch, or after [`COMMIT_RETRY`] without one:
    /// a partition kept through a cooperative rebalance is not read again
    /// from its last commit, so an offset left behind would stay behind.
    uncommitted: std::sync::Mutex<HashMap<(String, i32), i64>>,
}

/// How long a failed commit waits for the next batch before it is retried alone.
const COMMIT_RETRY: Duration = Duration::from_secs(1);

impl Settler {
    pub fn new(config: Config) -> Result<Self, SettleError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.kafka.bootstrap)
            .set("group.id", &config.kafka.group_id)
            // Offsets are committed by hand, after the shard commit.
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // A settler joining or leaving moves only the partitions that
            // change hands; the others keep settling through the rebalance.
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", config.kafka.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", (config.kafka.session_timeout_ms / 4).max(100).to_string())
            .set("fetch.min.bytes", config.kafka.fetch_min_bytes.to_string())
            .set("fetch.wait.max.ms", config.kafka.fetch_wait_max_ms.to_string())
            // What it fetches ahead is held in memory: 16 MiB is many batches.
            .set("queued.max.messages.kbytes", "16384")
            .create()?;
        consumer.subscribe(&[&config.kafka.topic])?;
        let dead_letters = EventProducer::new(&config.producer())?;
        let shards = config.mysql.connect_lazy()?;
        let redis = Redis::connect(&config.redis)?;
        let (cache, figures) = (OrderCache::new(redis.clone()), SaleFigures::new(redis));
        let consumer = Arc::new(consumer);
        Ok(Self { config, consumer, dead_letters, shards, cache, figures, uncommitted: Default::default() })
    }

    /// Settles batches until `shutdown` resolves. A batch under way when it
    /// does is finished and committed first, unless it is waiting on a
    /// retry: then it is left to be delivered again.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), SettleError> {
        let lag = tokio::spawn(consumer_lag::report(self.consumer.clone()));
        let (stop, stopping) = watch::channel(false);
        let work = self.consume(stopping);
        tokio::pin!(work, shutdown);
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = &mut shutdown, if !*stop.borrow() => { let _ = stop.send(true); }
            }
        };
        lag.abort();
        result
    }

    /// Settles batch after batch, in order; while one is written and
    /// committed, the next one fills, so receiving never waits for MySQL.
    /// A filled batch left behind by a stop was not committed: it is
    /// delivered again.
    async fn consume(&self, stopping: watch::Receiver<bool>) -> Result<(), SettleError> {
        let mut next = self.next_batch(stopping.clone()).await;
        while let Some(batch) = next {
            let settled;
            (settled, next) = tokio::join!(self.settle(&batch, &stopping), self.next_batch(stopping.clone()));
            if settled.is_err() {
                tracing::info!(messages = batch.len(), "stopping mid-batch; it will be delivered again");
                break;
            }
        }
        tracing::info!("settler stopped");
        Ok(())
    }

    /// Waits for a first message (`None` once stopping), then adds what
    /// arrives within the batch's wait, up to its size. Offsets a commit
    /// left behind are committed again while waiting.
    async fn next_batch(&self, mut stopping: watch::Receiver<bool>) -> Option<Vec<Received>> {
        loop {
            let first = tokio::select! {
                message = tokio::time::timeout(COMMIT_RETRY, self.consumer.recv()) => message,
                _ = stopping.wait_for(|stop| *stop) => return None,
            };
            match first {
                Ok(Ok(message)) => {
                    let mut batch = vec![Received::of(&message)];
                    self.fill(&mut batch).await;
                    return Some(batch);
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "consume failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => self.commit(&[]),
            }
        }
    }

    /// Adds messages until the batch is full or its wait is over.
    async fn fill(&self, batch: &mut Vec<Received>) {
        let deadline = tokio::time::Instant::now() + self.config.max_wait();
        while batch.len() < self.config.batch.max_messages {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => batch.push(Received::of(&message)),
                Ok(Err(err)) => tracing::warn!(error = %err, "consume failed"),
                Err(_) => break,
            }
        }
    }

    /// New orders first, in one multi-row insert per shard, then the other
    /// events one by one in their order. Events of one order share a
    /// partition (the key is the user id), so an order's creation is always
    /// written before its later events.
    async fn settle(&self, batch: &[Received], stopping: &watch::Receiver<bool>) -> Result<(), Interrupted> {
        let mut orders: Vec<(&OwnedMessage, &OrderCreated)> = Vec::with_capacity(batch.len());
        let mut checkouts: Vec<(&OwnedMessage, &CheckoutOrder)> = Vec::new();
        let mut moves: Vec<(&OwnedMessage, &OrderEvent)> = Vec::new();
        let mut rejected = Vec::new();
        // The traced orders' spans: consumed until the commit, written until the dead letters.
        let consumed: Vec<_> =
            batch.iter().filter_map(|r| traced::consume_span(&r.message, &r.trace, &r.event)).collect();
        let writing = traced::write_spans(consumed.iter(), batch.len());
        for Received { message, event, .. } in batch {
            match event {
                Ok(OrderEvent::OrderCreated(created)) => orders.push((message, created)),
                Ok(OrderEvent::CheckoutCreated(checkout)) => checkouts.push((message, checkout)),
                Ok(event) => moves.push((message, event)),
                Err(err) => rejected.push(Rejected { message, kind: "undecodable", reason: err.to_string() }),
            }
        }
        let (refused, stored) = self.store_orders(&orders, stopping).await?;
        let stored: HashSet<OrderId> = stored.into_iter().collect();
        rejected.extend(refused);
        let mut figures: Vec<(&str, SaleStats)> = orders
            .iter()
            .filter(|(_, order)| stored.contains(&order.order_id))
            .map(|(_, order)| SaleStats::of_created(order))
            .collect();
        // Before the moves: a batch may hold an item's payment after its checkout.
        let mut new_items = Vec::new();
        for (message, checkout) in &checkouts {
            match self.retrying("new checkout", stopping, || self.shards.insert_checkout(checkout)).await? {
                Ok(stored) => new_items.extend(
                    checkout
                        .items()
                        .filter(|(_, item)| stored.contains(&item.order_id))
                        .map(|(sub, item)| OrderCreated::of_checkout_item(checkout, sub, item)),
                ),
                Err(err) => {
                    rejected.push(Rejected { message, kind: "refused", reason: format!("refused by its shard: {err}") })
                }
            }
        }
        figures.extend(new_items.iter().map(SaleStats::of_created));
        for (message, event) in &moves {
            let shard = self.shards.for_order(event.order_id());
            match self.retrying("order transition", stopping, || transitions::apply(shard, event)).await? {
                Ok(changed) => figures.extend(counted(event, changed).then(|| SaleStats::of(event)).flatten()),
                Err(err) => {
                    rejected.push(Rejected { message, kind: "refused", reason: format!("refused by its shard: {err}") })
                }
            }
        }
        drop(writing);
        for rejected in &rejected {
            self.dead_letter(rejected, stopping).await?;
        }
        self.after_stored(moves.iter().map(|(_, event)| event.order_id()).collect(), figures);
        self.commit(batch);
        metrics::counter!("settler_batches_total").increment(1);
        metrics::counter!("settler_events_total").increment(batch.len() as u64);
        tracing::debug!(messages = batch.len(), orders = orders.len(), transitions = moves.len(), "batch settled");
        Ok(())
    }

    /// Once a batch is stored: the orders it moved leave the gateway's
    /// hot-order cache, and its figures are added to the live sale figures.
    /// In a task of its own, so a slow Redis does not hold up the pipeline;
    /// what does not reach Redis ends with the cache's TTL, or shows as
    /// drift in `settler sale-report`.
    fn after_stored(&self, moved: Vec<OrderId>, figures: Vec<(&str, SaleStats)>) {
        let mut by_sku: BTreeMap<String, SaleStats> = BTreeMap::new();
        for (sku, stats) in figures {
            by_sku.entry(sku.to_owned()).or_default().add(&stats);
        }
        for (sku, stats) in &by_sku {
            for (figure, value) in stats.fields().into_iter().filter(|(_, value)| *value != 0) {
                metrics::counter!("settler_sale_figures_total", "sku" => sku.clone(), "figure" => figure)
                    .increment(value as u64);
            }
        }
        let (cache, figures) = (self.cache.clone(), self.figures.clone());
        tokio::spawn(async move {
            if let Err(err) = cache.forget_orders(&moved).await {
                tracing::warn!(error = %err, orders = moved.len(), "moved orders left in the hot-order cache until their TTL");
            }
            if let Err(err) = figures.add_sale_stats(&by_sku).await {
                tracing::warn!(error = %err, "live sale figures missed a batch; settler sale-report shows the drift");
            }
        });
    }

    /// Writes the new orders, one insert per shard. If a shard refuses its
    /// insert for good, that shard's orders are written one by one, so only
    /// the poison ones are set aside. Also the ids of the orders stored now
    /// (not those found stored already).
    async fn store_orders<'a>(
        &self,
        orders: &[(&'a OwnedMessage, &'a OrderCreated)],
        stopping: &watch::Receiver<bool>,
    ) -> Result<(Vec<Rejected<'a>>, Vec<OrderId>), Interrupted> {
        let all: Vec<&OrderCreated> = orders.iter().map(|(_, order)| *order).collect();
        let err = match self.retrying("new orders", stopping, || self.shards.insert_new(&all)).await? {
            Ok(stored) => return Ok((Vec::new(), stored)),
            Err(err) => err,
        };
        tracing::warn!(error = %err, orders = orders.len(), "a shard refused a batch insert; writing its orders one by one");
        let (mut rejected, mut stored) = (Vec::new(), Vec::new());
        for (message, order) in orders {
            let one = [*order];
            match self.retrying("new order", stopping, || self.shards.insert_new(&one)).await? {
                Ok(new) => stored.extend(new),
                Err(err) => {
                    rejected.push(Rejected { message, kind: "refused", reason: format!("refused by its shard: {err}") })
                }
            }
        }
        Ok((rejected, stored))
    }

    /// Runs `write` until it succeeds or fails for good (the inner result).
    /// Transient failures are retried with capped exponential backoff:
    /// offsets must not move past events that are not stored.
    async fn retrying<T, F, Fut>(
        &self,
        what: &str,
        stopping: &watch::Receiver<bool>,
        mut write: F,
    ) -> Result<Result<T, sqlx::Error>, Interrupted>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let mut backoff = Duration::from_millis(self.config.batch.retry_min_ms);
        let max = Duration::from_millis(self.config.batch.retry_max_ms);
        loop {
            match write().await {
                Ok(done) => return Ok(Ok(done)),
                Err(err) if !is_transient(&err) => return Ok(Err(err)),
                Err(err) => {
                    tracing::warn!(error = %err, what, retry_in = ?backoff, "shard write failed");
                    metrics::counter!("settler_write_retries_total").increment(1);
                    wait_or_stop(backoff, stopping).await?;
                    backoff = (backoff * 2).min(max);
                }
            }
        }
    }

    /// Sends a rejected event to the dead-letter topic with its reason,
    /// retrying until the broker acknowledges it.
    async fn dead_letter(&self, rejected: &Rejected<'_>, stopping: &watch::Receiver<bool>) -> Result<(), Interrupted> {
        let message = rejected.message;
        tracing::error!(
            partition = message.partition(),
            offset = message.offset(),
            reason = %rejected.reason,
            "event sent to the dead-letter topic"
        );
        metrics::counter!("settler_dead_letters_total", "kind" => rejected.kind).increment(1);
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let mut backoff = Duration::from_millis(self.config.batch.retry_min_ms);
        // A payload the dead-letter topic refuses as too large goes without
        // it: the headers still say where the original is.
        let mut payload = message.payload().unwrap_or_default();
        loop {
            let mut headers = OwnedHeaders::new()
                .insert(Header { key: "error", value: Some(&rejected.reason) })
                .insert(Header { key: "source.topic", value: Some(message.topic()) })
                .insert(Header { key: "source.partition", value: Some(&partition) })
                .insert(Header { key: "source.offset", value: Some(&offset) });
            if payload.is_empty() && !message.payload().unwrap_or_default().is_empty() {
                headers = headers.insert(Header { key: "payload", value: Some("dropped: too large") });
            }
            let sent =
                self.dead_letters.send_to(&self.config.kafka.dlq_topic, message.key(), payload, Some(headers)).await;
            match sent {
                Ok(()) => return Ok(()),
                Err(err)
                    if err.error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge)
                        && !payload.is_empty() =>
                {
                    tracing::warn!(error = %err, "dead letter too large; sending it without its payload");
                    payload = &[];
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?backoff, "dead letter not acknowledged");
                    wait_or_stop(backoff, stopping).await?;
                    backoff = (backoff * 2).min(Duration::from_millis(self.config.batch.retry_max_ms));
                }
            }
        }
    }

    /// Commits, per partition, the offset after the batch's last message,
    /// with any a failed commit left behind, for the partitions this
    /// settler still holds (a revoked one's new owner reads it again from
    /// its last commit; the inserts are idempotent).
    fn commit(&self, batch: &[Received]) {
        let mut uncommitted = self.uncommitted.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for Received { message, .. } in batch {
            let entry = uncommitted.entry((message.topic().to_owned(), message.partition())).or_insert(0);
            *entry = (*entry).max(message.offset() + 1);
        }
        if let Ok(held) = self.consumer.assignment() {
            uncommitted.retain(|(topic, partition), _| held.find_partition(topic, *partition).is_some());
        }
        if uncommitted.is_empty() {
            return;
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in uncommitted.iter() {
            if let Err(err) = offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
                tracing::warn!(error = %err, topic, partition, "bad offset; the batch will be settled again");
            }
        }
        match self.consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => uncommitted.clear(),
            Err(err) => tracing::warn!(error = %err, "offset commit failed; retried with the next batch"),
        }
    }
}

/// Sleeps `backoff`, or less if a shutdown comes first.
async fn wait_or_stop(backoff: Duration, stopping: &watch::Receiver<bool>) -> Result<(), Interrupted> {
    let mut stopping = stopping.clone();
    tokio::select! {
        _ = tokio::time::sleep(backoff) => Ok(()),
        _ = stopping.wait_for(|stop| *stop) => Err(Interrupted),
    }
}
