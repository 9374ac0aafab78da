//! The settler killed with SIGKILL while draining: after a restart every
//! order is in MySQL exactly once, on its user's shard, and undecodable
//! messages are in the dead-letter topic with their error. And the lag it
//! serves in `/metrics` follows it while MySQL holds its writes.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use order::event::{OrderCreated, OrderEvent, OrderStatusChanged};
use order::id::IdGenerator;
use order::lifecycle::{Action, Actor};
use order::shard::{bucket_for_user, ShardRouter};
use order::status::OrderStatus;
use orderdb::shards::{create_databases, drop_databases};
use orderdb::ShardPools;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::mysql::MySqlPool;
use tokio::process::{Child, Command};

const ORDERS: u64 = 3_000;
const SHARDS: usize = 3;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

struct Fixture {
    bootstrap: String,
    topic: String,
    dlq: String,
    group: String,
    shards: Vec<String>,
}

impl Fixture {
    async fn new() -> Self {
        let bootstrap = env("KAFKA_BOOTSTRAP", "127.0.0.1:9092");
        let topic = unique("crash_test");
        let dlq = format!("{topic}.dlq");
        settler::setup::ensure_topics(
            &bootstrap,
            &[settler::setup::TopicSpec::new(&topic, 4), settler::setup::TopicSpec::new(&dlq, 1)],
        )
        .await
        .unwrap();
        let server = env("MYSQL_URL", "mysql://flashsale:flashsale@127.0.0.1:3306");
        let prefix = unique("t");
        let shards: Vec<String> = (0..SHARDS).map(|i| format!("{server}/{prefix}_{i}")).collect();
        create_databases(&shards).await.unwrap();
        let pools = ShardPools::connect_lazy(&shards, 1, Duration::from_secs(5)).unwrap();
        pools.migrate().await.unwrap();
        pools.close().await;
        Self { bootstrap, topic, dlq, group: unique("settler_crash"), shards }
    }

    /// The settler binary as a child process, configured by environment.
    fn spawn_settler(&self) -> Child {
        self.spawn_settler_serving("127.0.0.1:0")
    }

    /// As [`Fixture::spawn_settler`], its `/metrics` on `ops`.
    fn spawn_settler_serving(&self, ops: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_settler"))
            .env("SETTLER_KAFKA__BOOTSTRAP", &self.bootstrap)
            .env("SETTLER_KAFKA__TOPIC", &self.topic)
            .env("SETTLER_KAFKA__DLQ_TOPIC", &self.dlq)
            .env("SETTLER_KAFKA__GROUP_ID", &self.group)
            .env(
                "SETTLER_MYSQL__SHARDS",
                format!("[{}]", self.shards.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(",")),
            )
            // Small batches, so the kill lands between commits.
            .env("SETTLER_BATCH__MAX_MESSAGES", "25")
            // This test is about the consumer; sweeping the shared Redis's
            // sales would mix other tests' cancellations into this topic.
            .env("SETTLER_SWEEPER__ENABLED", "false")
            .env("SETTLER_OPS__LISTEN", ops)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the settler binary")
    }

    /// (order id, user id) per shard.
    async fn stored(&self) -> Vec<Vec<(i64, u64)>> {
        let mut all = Vec::new();
        for dsn in &self.shards {
            let pool = MySqlPool::connect(dsn).await.unwrap();
            all.push(sqlx::query_as("SELECT order_id, user_id FROM orders").fetch_all(&pool).await.unwrap());
            pool.close().await;
        }
        all
    }

    async fn count(&self) -> usize {
        self.stored().await.iter().map(Vec::len).sum()
    }

    async fn drop_databases(&self) {
        drop_databases(&self.shards).await.unwrap();
    }
}

async fn produce_orders(bootstrap: &str, topic: &str, users: std::ops::RangeInclusive<u64>) -> HashSet<i64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .unwrap();
    let ids = IdGenerator::new(1).unwrap();
    let now = Utc::now();
    let mut sends = Vec::new();
    let mut order_ids = HashSet::new();
    for user in users {
        let order_id = ids.next(bucket_for_user(user), now.timestamp_millis());
        order_ids.insert(order_id.raw() as i64);
        let event = OrderEvent::OrderCreated(OrderCreated {
            order_id,
            user_id: user,
            sku: "crash_sku".into(),
            qty: 1,
            amount_cents: 100,
            idempotency_key: format!("k{user}"),
            created_at: now,
            pay_by: now + chrono::Duration::minutes(15),
            sale_generation: 0,
            warehouse: None,
            channel: None,
        });
        let (key, payload) = (event.key(), event.encode());
        let producer = producer.clone();
        let topic = topic.to_owned();
        sends.push(async move {
            producer.send(FutureRecord::to(&topic).key(&key).payload(&payload), Timeout::Never).await.map(|_| ())
        });
    }
    for result in futures::future::join_all(sends).await {
        result.map_err(|(err, _)| err).unwrap();
    }
    order_ids
}

async fn produce_garbage(bootstrap: &str, topic: &str) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let now = Utc::now();
    let future_version = OrderEvent::OrderCreated(OrderCreated {
        order_id: IdGenerator::new(2).unwrap().next(bucket_for_user(1), now.timestamp_millis()),
        user_id: 1,
        sku: "crash_sku".into(),
        qty: 1,
        amount_cents: 100,
        idempotency_key: "future".into(),
        created_at: now,
        pay_by: now,
        sale_generation: 0,
        warehouse: None,
        channel: None,
    });
    let future_version = String::from_utf8(future_version.encode()).unwrap().replace(r#""v":1"#, r#""v":99"#);
    // A move the state machine does not have: completed back to paid.
    let OrderEvent::OrderCreated(order) =
        OrderEvent::decode(future_version.replace(r#""v":99"#, r#""v":1"#).as_bytes()).unwrap()
    else {
        unreachable!()
    };
    let backwards = OrderEvent::OrderStatusChanged(OrderStatusChanged {
        order,
        from: OrderStatus::Completed,
        to: OrderStatus::Paid,
        action: Action::Pay,
        actor: Actor::Channel,
        shipment: None,
        refund: None,
        at: now,
    });
    let backwards = String::from_utf8(backwards.encode()).unwrap();
    for payload in ["not json at all", future_version.as_str(), backwards.as_str()] {
        producer.send(FutureRecord::to(topic).key("garbage").payload(payload), Timeout::Never).await.unwrap();
    }
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_killed_settler_loses_and_duplicates_nothing() {
    // The kill must land mid-drain (some orders stored, not all); a kill
    // that came too late proves nothing, so that attempt is made again.
    let mut attempts = 0;
    let (fx, mut expected) = loop {
        attempts += 1;
        let fx = Fixture::new().await;
        let expected = produce_orders(&fx.bootstrap, &fx.topic, 1..=ORDERS / 2).await;
        produce_garbage(&fx.bootstrap, &fx.topic).await;
        let mut first = fx.spawn_settler();
        wait_for("the first rows", Duration::from_secs(60), async || fx.count().await > 0).await;
        first.start_kill().unwrap();
        first.wait().await.unwrap();
        let at_kill = fx.count().await;
        eprintln!("attempt {attempts}: settler killed with {at_kill} of {} orders stored", ORDERS / 2);
        if at_kill < (ORDERS / 2) as usize {
            break (fx, expected);
        }
        fx.drop_databases().await;
        assert!(attempts < 5, "the settler drained everything before every kill");
    };

    expected.extend(produce_orders(&fx.bootstrap, &fx.topic, ORDERS / 2 + 1..=ORDERS).await);
    let mut second = fx.spawn_settler();
    wait_for("every order", Duration::from_secs(120), async || fx.count().await >= ORDERS as usize).await;
    // Let a redelivered tail settle before checking for duplicates.
    tokio::time::sleep(Duration::from_millis(500)).await;
    second.start_kill().unwrap();

    let router = ShardRouter::new(SHARDS).unwrap();
    let mut stored = HashSet::new();
    for (shard, rows) in fx.stored().await.into_iter().enumerate() {
        for (order_id, user_id) in rows {
            assert_eq!(router.shard_for_user(user_id), shard, "user {user_id} on the wrong shard");
            assert!(stored.insert(order_id), "order {order_id} stored twice");
        }
    }
    let missing: Vec<_> = expected.difference(&stored).take(5).collect();
    let extra: Vec<_> = stored.difference(&expected).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "every order exactly once: missing {missing:?}, extra {extra:?}");

    // Dead letters are sent at least once: the killed settler may have sent
    // some of them already before its commit.
    dead_letter(&fx.bootstrap, &fx.dlq, |payload, error| {
        payload == "not json at all" && error.contains("not an order event")
    })
    .await;
    dead_letter(&fx.bootstrap, &fx.dlq, |_, error| error.contains("schema version 99")).await;
    dead_letter(&fx.bootstrap, &fx.dlq, |payload, error| {
        payload.contains("OrderStatusChanged") && error.contains("not allowed from COMPLETED")
    })
    .await;
    fx.drop_databases().await;
}

#[tokio::test]
async fn settlers_joining_and_leaving_mid_drain_store_every_order_once_and_commit_it() {
    let fx = Fixture::new().await;
    let mut expected = produce_orders(&fx.bootstrap, &fx.topic, 1..=ORDERS / 2).await;
    let first = fx.spawn_settler();
    wait_for("the first rows", Duration::from_secs(60), async || fx.count().await > 0).await;
    // A second settler joins mid-drain: some partitions change hands.
    let mut second = fx.spawn_settler();
    let joined_at = fx.count().await;
    wait_for("rows after the join", Duration::from_secs(60), async || fx.count().await > joined_at).await;
    // The first leaves (SIGTERM: it finishes its batch and leaves the group).
    let status = std::process::Command::new("kill").args(["-TERM", &first.id().unwrap().to_string()]).status();
    assert!(status.unwrap().success());
    expected.extend(produce_orders(&fx.bootstrap, &fx.topic, ORDERS / 2 + 1..=ORDERS).await);
    wait_for("every order", Duration::from_secs(120), async || fx.count().await >= ORDERS as usize).await;

    // Every settled batch is committed in the end, whatever commit failed
    // during the rebalances: nothing left to deliver again.
    wait_for("the group's lag to reach 0", Duration::from_secs(30), async || {
        lag(&fx.bootstrap, &fx.topic, &fx.group) == 0
    })
    .await;
    second.start_kill().unwrap();
    let mut stored = HashSet::new();
    for rows in fx.stored().await {
        for (order_id, _) in rows {
            assert!(stored.insert(order_id), "order {order_id} stored twice");
        }
    }
    assert_eq!(stored, expected, "every order exactly once");
    fx.drop_databases().await;
}

/// Messages of `topic` the group has not committed.
fn lag(bootstrap: &str, topic: &str, group: &str) -> i64 {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).create().unwrap();
    let timeout = Duration::from_secs(5);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
    let mut partitions = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        partitions.add_partition(topic, partition.id());
    }
    let committed = consumer.committed_offsets(partitions, timeout).unwrap();
    committed
        .elements()
        .iter()
        .map(|element| {
            let (low, high) = consumer.fetch_watermarks(topic, element.partition(), timeout).unwrap();
            let at = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => low,
            };
            high - at
        })
        .sum()
}

/// Reads the dead-letter topic until a message's payload and error header match.
async fn dead_letter(bootstrap: &str, topic: &str, matches: impl Fn(&str, &str) -> bool) {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("dlq_reader"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    loop {
        let message =
            tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await.expect("dead letters arrive").unwrap();
        let error = message
            .headers()
            .and_then(|headers| headers.iter().find(|h| h.key == "error"))
            .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
            .unwrap_or_default();
        let payload = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        if matches(&payload, &error) {
            return;
        }
    }
}

/// A TCP proxy in front of MariaDB that can take its shard down and bring
/// it back on the same port: what a settler sees when a shard's server dies.
struct ShardProxy {
    port: u16,
    upstream: String,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl ShardProxy {
    async fn start(upstream: &str) -> Self {
        // Below the ephemeral range (32768 and up): while the shard is down,
        // an outgoing connection could otherwise be given its port.
        let port = loop {
            let port = rand::Rng::gen_range(&mut rand::thread_rng(), 20_000..32_000);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                break port;
            }
        };
        let mut proxy = Self { port, upstream: upstream.to_owned(), running: None };
        proxy.up().await;
        proxy
    }

    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let upstream = self.upstream.clone();
        self.running = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// Closes the port and every connection through it.
    fn down(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }

    /// `dsn` with its host and port replaced by the proxy's.
    fn route(&self, dsn: &str) -> String {
        let (scheme_and_user, rest) = dsn.rsplit_once('@').unwrap();
        let database = rest.split_once('/').unwrap().1;
        format!("{scheme_and_user}@127.0.0.1:{}/{database}", self.port)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settler_waiting_on_a_down_shard_stops_on_sigterm_and_loses_nothing() {
    let mut fx = Fixture::new().await;
    let direct = fx.shards.clone();
    let server = env("MYSQL_URL", "mysql://flashsale:flashsale@127.0.0.1:3306");
    let upstream = server.rsplit_once('@').unwrap().1.to_owned();
    let mut proxy = ShardProxy::start(&upstream).await;
    fx.shards = direct.iter().map(|dsn| proxy.route(dsn)).collect();

    let mut settler = fx.spawn_settler();
    let expected = produce_orders(&fx.bootstrap, &fx.topic, 1..=200).await;
    fx.shards = direct.clone();
    wait_for("the first rows", Duration::from_secs(60), async || fx.count().await > 0).await;

    // The shard's server goes away mid-drain: the settler retries...
    proxy.down();
    let more = produce_orders(&fx.bootstrap, &fx.topic, 201..=400).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(settler.try_wait().unwrap().is_none(), "the settler waits for the shard, it does not exit");
    // ...and still stops at once when asked to.
    let stopped_at = Instant::now();
    let status = Command::new("kill").args(["-TERM", &settler.id().unwrap().to_string()]).status().await.unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), settler.wait()).await.expect("stops within 10 s").unwrap();
    assert!(exit.success(), "{exit}");
    eprintln!("stopped {:?} after SIGTERM", stopped_at.elapsed());

    // The shard comes back; a new settler stores everything exactly once.
    proxy.up().await;
    fx.shards = direct.iter().map(|dsn| proxy.route(dsn)).collect();
    let mut second = fx.spawn_settler();
    fx.shards = direct;
    wait_for("every order", Duration::from_secs(120), async || fx.count().await >= 400).await;
    second.start_kill().unwrap();
    let mut stored = HashSet::new();
    for rows in fx.stored().await {
        for (order_id, _) in rows {
            assert!(stored.insert(order_id), "order {order_id} stored twice");
        }
    }
    let expected: HashSet<i64> = expected.union(&more).copied().collect();
    assert_eq!(stored, expected);
    fx.drop_databases().await;
}

/// The settler's `settler_consumer_lag`, from its `/metrics` on `port`.
async fn served_lag(port: u16) -> Option<i64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: settler\r\n\r\n").await.ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    text.lines().find_map(|line| line.strip_prefix("settler_consumer_lag ")).and_then(|n| n.trim().parse().ok())
}

/// The lag grows while every shard holds the settler's writes (its orders
/// table locked), and falls to 0 once they go through.
#[tokio::test]
async fn the_served_consumer_lag_follows_the_settler() {
    use sqlx::Connection;
    let fixture = Fixture::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut settler = fixture.spawn_settler_serving(&format!("127.0.0.1:{port}"));
    wait_for("the consumer's first statistics", Duration::from_secs(30), async || served_lag(port).await == Some(0))
        .await;
    let mut locks = Vec::new();
    for dsn in &fixture.shards {
        let mut connection = sqlx::MySqlConnection::connect(dsn).await.unwrap();
        sqlx::query("LOCK TABLES orders WRITE").execute(&mut connection).await.unwrap();
        locks.push(connection);
    }
    produce_orders(&fixture.bootstrap, &fixture.topic, 1..=600).await;
    wait_for("a lag while the writes are held", Duration::from_secs(30), async || {
        served_lag(port).await.is_some_and(|lag| lag > 100)
    })
    .await;
    for connection in locks {
        connection.close().await.unwrap();
    }
    wait_for("the lag back to 0", Duration::from_secs(60), async || served_lag(port).await == Some(0)).await;
    assert_eq!(fixture.count().await, 600);
    settler.kill().await.unwrap();
    fixture.drop_databases().await;
}
