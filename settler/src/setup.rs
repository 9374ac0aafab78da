//! One-time set-up of a deployment: the shard databases, their schema and
//! the Kafka topics. Safe to run again.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
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
}

pub async fn run(config: &Config) -> Result<(), SetupError> {
    create_databases(&config.mysql.shards).await?;
    let shards = config.mysql.connect_lazy()?;
    shards.migrate().await?;
    shards.close().await;
    create_topics(
        &config.kafka.bootstrap,
        &[(&config.kafka.topic, config.kafka.partitions), (&config.kafka.dlq_topic, 1)],
    )
    .await
}

/// Creates the topics that do not exist yet.
pub async fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) -> Result<(), SetupError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let new_topics: Vec<NewTopic> =
        topics.iter().map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1))).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(SetupError::Topic { topic, code }),
        }
    }
    Ok(())
}
