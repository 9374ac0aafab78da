//! `settler setup`'s topics against a real Kafka: made with the partitions,
//! replication, `min.insync.replicas` and retention asked for; a replication
//! factor above the cluster's brokers refused; an existing topic checked
//! against the configuration, not trusted.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use settler::setup::{ensure_topics, SetupError, TopicSpec};

fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", bootstrap()).create().unwrap()
}

/// The live brokers, and the topic's partition count and replicas per partition.
fn describe(topic: &str) -> (usize, usize, Vec<usize>) {
    let metadata = admin().inner().fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let partitions = metadata.topics()[0].partitions();
    (metadata.brokers().len(), partitions.len(), partitions.iter().map(|p| p.replicas().len()).collect())
}

async fn setting(topic: &str, name: &str) -> String {
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin().describe_configs(&[ResourceSpecifier::Topic(topic)], &options).await.unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    resource.get(name).and_then(|entry| entry.value.clone()).unwrap()
}

#[tokio::test]
async fn topics_are_made_as_configured_and_checked_when_they_exist() {
    let topic = unique("setup_topic");
    let spec = TopicSpec { retention_ms: 3_600_000, ..TopicSpec::new(&topic, 3) };
    ensure_topics(&bootstrap(), std::slice::from_ref(&spec)).await.unwrap();

    let (brokers, partitions, replicas) = describe(&topic);
    assert_eq!(partitions, 3);
    let expected_replicas = brokers.min(3);
    assert!(replicas.iter().all(|&n| n == expected_replicas), "{replicas:?} on {brokers} broker(s)");
    let expected_isr = if expected_replicas >= 3 { "2" } else { "1" };
    assert_eq!(setting(&topic, "min.insync.replicas").await, expected_isr);
    assert_eq!(setting(&topic, "retention.ms").await, "3600000");

    // Run again with the same settings: nothing to do.
    ensure_topics(&bootstrap(), std::slice::from_ref(&spec)).await.unwrap();

    // Run again with other settings: each difference named, nothing changed.
    let other = TopicSpec { partitions: 6, retention_ms: 60_000, ..spec.clone() };
    match ensure_topics(&bootstrap(), &[other]).await {
        Err(SetupError::TopicDiffers { topic: named, differences }) => {
            assert_eq!(named, topic);
            assert_eq!(differences.len(), 2, "{differences:?}");
            assert!(differences[0].contains("3 partitions, configured 6"), "{differences:?}");
            assert!(differences[1].contains("retention.ms 3600000, configured 60000"), "{differences:?}");
        }
        other => panic!("a topic with other settings was accepted: {other:?}"),
    }
    assert_eq!(describe(&topic).1, 3, "the check changed the topic");
}

#[tokio::test]
async fn more_replicas_than_brokers_is_refused() {
    let topic = unique("setup_replicas");
    let brokers = describe("__consumer_offsets").0;
    let spec = TopicSpec { replication_factor: Some(brokers as i32 + 1), ..TopicSpec::new(&topic, 1) };
    match ensure_topics(&bootstrap(), &[spec]).await {
        Err(err @ SetupError::TooFewBrokers { .. }) => {
            assert!(err.to_string().contains(&format!("the cluster has {brokers} broker(s)")), "{err}");
        }
        other => panic!("replication factor {} on {brokers} broker(s) was accepted: {other:?}", brokers + 1),
    }
    let metadata = admin().inner().fetch_metadata(Some(&topic), Duration::from_secs(10)).unwrap();
    assert!(metadata.topics()[0].error().is_some(), "the refused topic was created");
}

#[tokio::test]
async fn an_existing_topic_with_weaker_durability_is_refused() {
    let topic = unique("setup_isr");
    ensure_topics(&bootstrap(), &[TopicSpec::new(&topic, 1)]).await.unwrap();
    // The configuration now asks more in-sync replicas than the topic has.
    let current: i32 = setting(&topic, "min.insync.replicas").await.parse().unwrap();
    let stricter = TopicSpec { min_insync_replicas: Some(current + 1), ..TopicSpec::new(&topic, 1) };
    let err = ensure_topics(&bootstrap(), &[stricter]).await.unwrap_err();
    assert!(err.to_string().contains("min.insync.replicas"), "{err}");
}
