//! One-time set-up of a deployment: the shard databases, their schema and
//! the Kafka topics. Safe to run again.
//!
//! Topics are made as production wants them: the configured partitions,
//! replication factor, `min.insync.replicas` and retention. A replication
//! factor above the brokers the cluster has is refused (one broker would
//! otherwise be asked for three copies), and a topic that exists already is
//! checked against the configuration rather than trusted: a difference is
//! an error naming each setting, since fixing it is an operator's call (more
//! partitions would move users' events to other partitions mid-flight, and
//! fewer in-sync replicas would weaken what an acknowledgement means).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use orderdb::shards::create_databases;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("mysql: {0}")]
    Mysql(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("kafka: creating topic {topic}: {code}")]
    Topic { topic: String, code: RDKafkaErrorCode },
    #[error(
        "kafka: topic {topic} wants replication factor {replication_factor} but the cluster has {brokers} \
         broker(s); set kafka.replication_factor to at most {brokers}"
    )]
    TooFewBrokers { topic: String, replication_factor: i32, brokers: usize },
    #[error("kafka: topic {topic} exists with other settings than configured: {}", differences.join("; "))]
    TopicDiffers { topic: String, differences: Vec<String> },
}

/// A topic as `settler setup` makes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// None: as many as the cluster has brokers, at most 3.
    pub replication_factor: Option<i32>,
    /// None: 2 where the topic has 3 replicas or more, else 1.
    pub min_insync_replicas: Option<i32>,
    pub retention_ms: i64,
}

impl TopicSpec {
    /// A topic with `partitions` partitions and the defaults for the cluster
    /// it is made on (tests' topics).
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication_factor: None,
            min_insync_replicas: None,
            retention_ms: crate::config::Kafka::default().retention_ms,
        }
    }

    fn replication_factor(&self, brokers: usize) -> i32 {
        self.replication_factor.unwrap_or(brokers.clamp(1, 3) as i32)
    }

    fn min_insync_replicas(&self, replication_factor: i32) -> i32 {
        self.min_insync_replicas.unwrap_or(if replication_factor >= 3 { 2 } else { 1 })
    }
}

pub async fn run(config: &Config) -> Result<(), SetupError> {
    create_databases(&config.mysql.shards).await?;
    let shards = config.mysql.connect_lazy()?;
    shards.migrate().await?;
    shards.close().await;
    let kafka = &config.kafka;
    let spec = |name: &str, partitions| TopicSpec {
        name: name.into(),
        partitions,
        replication_factor: (kafka.replication_factor > 0).then_some(kafka.replication_factor),
        min_insync_replicas: (kafka.min_insync_replicas > 0).then_some(kafka.min_insync_replicas),
        retention_ms: kafka.retention_ms,
    };
    ensure_topics(&kafka.bootstrap, &[spec(&kafka.topic, kafka.partitions), spec(&kafka.dlq_topic, 1)]).await
}

/// What the cluster says of itself and of the topics asked about.
struct ClusterView {
    brokers: usize,
    /// Per topic that exists: partitions and the replicas of each.
    topics: Vec<(String, Vec<usize>)>,
}

/// Creates the topics that do not exist yet and checks those that do.
pub async fn ensure_topics(bootstrap: &str, topics: &[TopicSpec]) -> Result<(), SetupError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let admin = std::sync::Arc::new(admin);
    // librdkafka's metadata call blocks its thread.
    let view = tokio::task::spawn_blocking({
        let admin = admin.clone();
        move || view(&admin)
    })
    .await
    .map_err(|_| rdkafka::error::KafkaError::Canceled)??;

    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let mut new_topics = Vec::new();
    let mut settings = Vec::new();
    for spec in topics {
        let replication_factor = spec.replication_factor(view.brokers);
        if replication_factor as usize > view.brokers {
            return Err(SetupError::TooFewBrokers {
                topic: spec.name.clone(),
                replication_factor,
                brokers: view.brokers,
            });
        }
        settings.push((spec.min_insync_replicas(replication_factor).to_string(), spec.retention_ms.to_string()));
    }
    for (spec, (min_insync, retention)) in topics.iter().zip(&settings) {
        if view.topics.iter().any(|(name, _)| *name == spec.name) {
            continue;
        }
        new_topics.push(
            NewTopic::new(&spec.name, spec.partitions, TopicReplication::Fixed(spec.replication_factor(view.brokers)))
                .set("min.insync.replicas", min_insync)
                .set("retention.ms", retention),
        );
    }
    let mut raced = false;
    let created = if new_topics.is_empty() { Vec::new() } else { admin.create_topics(&new_topics, &options).await? };
    for result in created {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => raced = true,
            Err((topic, code)) => return Err(SetupError::Topic { topic, code }),
        }
    }
    if raced {
        // Another setup made one meanwhile: now every topic exists, and is checked.
        return Box::pin(ensure_topics(bootstrap, topics)).await;
    }
    for spec in topics {
        if let Some((_, replicas)) = view.topics.iter().find(|(name, _)| *name == spec.name) {
            check(&admin, spec, view.brokers, replicas).await?;
        }
    }
    Ok(())
}

fn view(admin: &AdminClient<DefaultClientContext>) -> Result<ClusterView, rdkafka::error::KafkaError> {
    let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10))?;
    let topics = metadata
        .topics()
        .iter()
        .filter(|topic| topic.error().is_none())
        .map(|topic| (topic.name().to_owned(), topic.partitions().iter().map(|p| p.replicas().len()).collect()))
        .collect();
    Ok(ClusterView { brokers: metadata.brokers().len(), topics })
}

/// An existing topic against its spec: every difference, or none.
async fn check(
    admin: &AdminClient<DefaultClientContext>,
    spec: &TopicSpec,
    brokers: usize,
    replicas: &[usize],
) -> Result<(), SetupError> {
    let mut differences = Vec::new();
    if replicas.len() != spec.partitions as usize {
        differences.push(format!("{} partitions, configured {}", replicas.len(), spec.partitions));
    }
    let replication_factor = spec.replication_factor(brokers);
    if let Some(found) = replicas.iter().find(|&&n| n != replication_factor as usize) {
        differences.push(format!("replication factor {found}, configured {replication_factor}"));
    }
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin.describe_configs(&[ResourceSpecifier::Topic(&spec.name)], &options).await?;
    let resource = described.into_iter().next().and_then(Result::ok);
    let setting = |name: &str| resource.as_ref().and_then(|r| r.get(name)).and_then(|e| e.value.clone());
    let wanted = [
        ("min.insync.replicas", spec.min_insync_replicas(replication_factor).to_string()),
        ("retention.ms", spec.retention_ms.to_string()),
    ];
    for (name, want) in wanted {
        let found = setting(name).unwrap_or_else(|| "unknown".into());
        if found != want {
            differences.push(format!("{name} {found}, configured {want}"));
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(SetupError::TopicDiffers { topic: spec.name.clone(), differences })
    }
}
