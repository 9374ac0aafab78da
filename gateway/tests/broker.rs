//! The promise a 202 rests on, against a real Kafka node of the test's own:
//! an event the broker acknowledged survives the broker's SIGKILL and
//! restart, and a gateway whose broker dies answers 503 (certain failures
//! release their units at once; unknown outcomes keep them until their
//! confirm deadline), takes orders again once it is back, and loses none
//! it accepted.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use events::producer::{EventProducer, KafkaConfig};
use futures::future::join_all;
use hyper::StatusCode;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use settler::setup::{ensure_topics, TopicSpec};
use support::*;

const EVENTS: u32 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_the_broker_killed_and_restarted() {
    let broker = TestBroker::start().await;
    let topic = unique("durable");
    ensure_topics(&broker.bootstrap, &[TopicSpec::new(&topic, 3)]).await.unwrap();
    let producer = Arc::new(
        EventProducer::new(&KafkaConfig {
            bootstrap: broker.bootstrap.clone(),
            topic: topic.clone(),
            ..Default::default()
        })
        .unwrap(),
    );
    let sends = (0..EVENTS).map(|n| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move { producer.send_to(&topic, Some(&n.to_be_bytes()), n.to_string().as_bytes(), None).await }
    });
    for sent in join_all(sends).await {
        sent.expect("every event acknowledged before the kill");
    }

    broker.kill().await;
    broker.restart().await;

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", unique("durable_reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = BTreeSet::new();
    let reading = tokio::time::timeout(Duration::from_secs(60), async {
        while seen.len() < EVENTS as usize {
            let message = consumer.recv().await.expect("reading the topic back");
            let payload = std::str::from_utf8(message.payload().unwrap()).unwrap();
            seen.insert(payload.parse::<u32>().unwrap());
        }
    })
    .await;
    assert!(reading.is_ok(), "{} of {EVENTS} acknowledged events read back after the restart", seen.len());
    assert_eq!(seen, (0..EVENTS).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_whose_broker_dies_answers_503_and_loses_no_accepted_order() {
    let broker = TestBroker::start().await;
    let topic = unique("broker_kill");
    let topics = [TopicSpec::new(&topic, 2), TopicSpec::new(format!("{topic}.dlq"), 1)];
    ensure_topics(&broker.bootstrap, &topics).await.unwrap();
    let shards = fresh_shards(2).await;
    let mut config = gateway_config(&topic, &shards);
    config.kafka.bootstrap = broker.bootstrap.clone();
    config.kafka.message_timeout_ms = 1_500;
    config.orders.confirm_window_secs = 5;
    let gateway = Arc::new(TestGateway::start(config).await);
    let mut settler_config = settler_config(&topic, &shards);
    settler_config.kafka.bootstrap = broker.bootstrap.clone();
    let settler = TestSettler::start(settler_config.clone());
    let (stop_sweeping, sweeping) = tokio::sync::oneshot::channel::<()>();
    let sweeper = tokio::spawn(sweeper(&settler_config, Duration::from_millis(100), 100).run(async {
        let _ = sweeping.await;
    }));

    let sku = unique("broker_kill");
    gateway.load_sale(&sku, 100, 1, 100).await;
    let mut accepted = HashMap::new();
    for user in 1..=10u64 {
        let answer = gateway.place(user, &sku, 1, &format!("k{user}")).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
        accepted.insert(user, answer.json["order_id"].as_str().unwrap().to_owned());
    }

    // Orders sent while the broker is dead: none is accepted.
    broker.kill().await;
    let during = join_all((11..=30u64).map(|user| {
        let gateway = gateway.clone();
        let sku = sku.clone();
        async move { (user, gateway.place(user, &sku, 1, &format!("k{user}")).await) }
    }))
    .await;
    for (user, answer) in &during {
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "user {user}: {}", answer.json);
        assert!(answer.header("retry-after").is_some());
    }
    broker.restart().await;

    // Every buyer retries with their key until answered: once the broker is
    // back each gets an order (the one in doubt, or a new one).
    for (user, _) in during {
        let order_id = eventually(Duration::from_secs(60), "a retry answered", || {
            let gateway = gateway.clone();
            let sku = sku.clone();
            async move {
                let answer = gateway.place(user, &sku, 1, &format!("k{user}")).await;
                matches!(answer.status, StatusCode::OK | StatusCode::ACCEPTED)
                    .then(|| answer.json["order_id"].as_str().unwrap().to_owned())
            }
        })
        .await;
        accepted.insert(user, order_id);
    }

    // Past the confirm deadline: every answered order is stored once and
    // live, and exactly those hold units.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let statuses = eventually(Duration::from_secs(60), "Redis and MySQL to agree", || async {
        let sale = gateway.sale(&sku).await;
        let field = |name: &str| sale[name].as_i64().unwrap();
        assert_eq!(field("stock") + field("reserved") + field("sold"), field("total"), "units created or lost");
        let statuses = order_statuses(&shards, &sku).await;
        let live = statuses.values().filter(|status| *status != "CANCELLED").count() as i64;
        (live == field("reserved") + field("sold") && live == accepted.len() as i64).then_some(statuses)
    })
    .await;
    for (user, order_id) in &accepted {
        let status = statuses.get(&order_id.parse::<i64>().unwrap());
        assert_eq!(status.map(String::as_str), Some("PENDING_PAYMENT"), "accepted order of user {user}");
    }

    let _ = stop_sweeping.send(());
    sweeper.await.unwrap();
    settler.stop().await;
    gateway.shutdown().await;
    drop_shards(&shards).await;
}
