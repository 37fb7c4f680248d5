//! The admin calls against a real in-process Sluice broker.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_kafka_admin::{AdminClient, ConfigSource, NewTopic, ResponseError};

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_info_names_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_broker(dir.path(), 0, &[]).await;
    let addr = support::address(&server);
    let admin = AdminClient::connect(&addr.to_string(), "test", TIMEOUT)
        .await
        .unwrap();

    let cluster = admin.cluster().await.unwrap();
    assert!(cluster.cluster_id.as_deref().is_some_and(|c| !c.is_empty()));
    assert_eq!(cluster.controller_id, Some(1));
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.brokers[0].id, 1);
    assert_eq!(cluster.brokers[0].host, "127.0.0.1");
    assert_eq!(cluster.brokers[0].port, i32::from(addr.port()));
    assert_eq!(cluster.brokers[0].address(), addr.to_string());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    // A broker-level setting shows as the static broker source on topics that do not override it.
    let server = support::start_broker(dir.path(), 0, &[("log.segment.bytes", "10485760")]).await;
    let addr = support::address(&server).to_string();
    let admin = AdminClient::connect(&addr, "test", TIMEOUT).await.unwrap();

    // Create with partitions and configs.
    let spec = NewTopic::new("orders")
        .partitions(3)
        .replication_factor(1)
        .config("retention.ms", "3600000")
        .config("message.timestamp.type", "LogAppendTime");
    let created = admin.create_topic(&spec).await.unwrap();
    let id = created.id.expect("CreateTopics v7 returns the topic id");
    assert_eq!(created.partitions, Some(3));
    assert_eq!(created.replication_factor, Some(1));

    // Describe: partitions, leader, replicas and the same id.
    let topic = admin.describe_topic("orders").await.unwrap().unwrap();
    assert_eq!(topic.name, "orders");
    assert_eq!(topic.id, Some(id));
    assert!(!topic.internal);
    assert_eq!(
        topic.partitions.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    for p in &topic.partitions {
        assert_eq!(p.leader, Some(1));
        assert_eq!(p.replicas, vec![1]);
        assert_eq!(p.isr, vec![1]);
    }
    assert_eq!(topic.replication_factor(), Some(1));
    let listed = admin.list_topics().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|t| t.name == "orders" && t.id == Some(id))
    );

    // Configs: the overrides as topic overrides, the rest as defaults.
    let configs = admin.topic_configs("orders").await.unwrap();
    let retention = &configs["retention.ms"];
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::TopicOverride);
    assert!(retention.is_topic_override());
    let stamp = &configs["message.timestamp.type"];
    assert_eq!(stamp.value.as_deref(), Some("LogAppendTime"));
    assert_eq!(stamp.source, ConfigSource::TopicOverride);
    assert_eq!(configs["segment.bytes"].value.as_deref(), Some("10485760"));
    assert_eq!(configs["segment.bytes"].source, ConfigSource::StaticBroker);
    assert_eq!(configs["max.message.bytes"].source, ConfigSource::Default);
    let overrides: Vec<&str> = configs
        .iter()
        .filter(|(_, v)| v.is_topic_override())
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(overrides, vec!["message.timestamp.type", "retention.ms"]);

    // Creating it again is a matchable error that names the error and the topic.
    let err = admin.create_topic(&spec).await.unwrap_err();
    assert!(err.is_topic_already_exists(), "{err:?}");
    assert_eq!(err.kafka_error(), Some(ResponseError::TopicAlreadyExists));
    let text = err.to_string();
    assert!(
        text.contains("TOPIC_ALREADY_EXISTS") && text.contains("'orders'"),
        "{text}"
    );

    // Grow; shrinking is refused by Kafka.
    admin.create_partitions("orders", 5).await.unwrap();
    let topic = admin.describe_topic("orders").await.unwrap().unwrap();
    assert_eq!(topic.partitions.len(), 5);
    assert_eq!(topic.partitions[4].id, 4);
    let err = admin.create_partitions("orders", 2).await.unwrap_err();
    assert!(err.is_invalid_partitions(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("INVALID_PARTITIONS") && text.contains("'orders'"),
        "{text}"
    );
    assert_eq!(
        admin
            .describe_topic("orders")
            .await
            .unwrap()
            .unwrap()
            .partitions
            .len(),
        5
    );

    // Alter: set one, add one, delete one; then read back.
    let set: BTreeMap<String, String> = [
        ("retention.ms".to_string(), "7200000".to_string()),
        ("max.message.bytes".to_string(), "65536".to_string()),
    ]
    .into();
    admin
        .alter_topic_configs("orders", &set, &["message.timestamp.type".to_string()])
        .await
        .unwrap();
    let configs = admin.topic_configs("orders").await.unwrap();
    assert_eq!(configs["retention.ms"].value.as_deref(), Some("7200000"));
    assert_eq!(configs["retention.ms"].source, ConfigSource::TopicOverride);
    assert_eq!(configs["max.message.bytes"].value.as_deref(), Some("65536"));
    assert_eq!(
        configs["max.message.bytes"].source,
        ConfigSource::TopicOverride
    );
    let stamp = &configs["message.timestamp.type"];
    assert_eq!(stamp.value.as_deref(), Some("CreateTime"));
    assert_eq!(stamp.source, ConfigSource::Default);

    // A bad value is the broker's INVALID_CONFIG, and nothing changes.
    let bad: BTreeMap<String, String> = [("retention.ms".to_string(), "soon".to_string())].into();
    let err = admin
        .alter_topic_configs("orders", &bad, &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.kafka_error(),
        Some(ResponseError::InvalidConfig),
        "{err:?}"
    );
    assert_eq!(
        admin.topic_configs("orders").await.unwrap()["retention.ms"]
            .value
            .as_deref(),
        Some("7200000")
    );
    // Setting and deleting one key in the same call is refused before anything is sent.
    let err = admin
        .alter_topic_configs("orders", &set, &["retention.ms".to_string()])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("both set and deleted"), "{err}");

    // Delete, and it is gone everywhere.
    admin.delete_topic("orders").await.unwrap();
    assert_eq!(admin.describe_topic("orders").await.unwrap(), None);
    assert!(
        !admin
            .list_topics()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "orders")
    );
    let err = admin.delete_topic("orders").await.unwrap_err();
    assert!(err.is_unknown_topic(), "{err:?}");
    assert!(err.to_string().contains("'orders'"), "{err}");
    assert!(
        admin
            .topic_configs("orders")
            .await
            .unwrap_err()
            .is_unknown_topic()
    );
    assert!(
        admin
            .create_partitions("orders", 9)
            .await
            .unwrap_err()
            .is_unknown_topic()
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_defaults_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_broker(
        dir.path(),
        0,
        &[
            ("num.partitions", "4"),
            ("auto.create.topics.enable", "true"),
        ],
    )
    .await;
    let addr = support::address(&server).to_string();
    let admin = AdminClient::connect(&addr, "test", TIMEOUT).await.unwrap();

    // Describing a missing topic must not auto-create it, even where the broker would.
    assert_eq!(admin.describe_topic("ghost").await.unwrap(), None);
    assert!(
        !admin
            .list_topics()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "ghost")
    );

    // No partition count or replication factor: the broker's defaults.
    let created = admin
        .create_topic(&NewTopic::new("defaults"))
        .await
        .unwrap();
    assert_eq!(created.partitions, Some(4));
    assert_eq!(created.replication_factor, Some(1));
    assert_eq!(
        admin
            .describe_topic("defaults")
            .await
            .unwrap()
            .unwrap()
            .partitions
            .len(),
        4
    );

    // The broker's refusals come back as matchable errors naming the topic.
    let err = admin
        .create_topic(&NewTopic::new("wide").partitions(1).replication_factor(3))
        .await
        .unwrap_err();
    assert_eq!(
        err.kafka_error(),
        Some(ResponseError::InvalidReplicationFactor)
    );
    assert!(
        err.to_string().contains("INVALID_REPLICATION_FACTOR"),
        "{err}"
    );
    let err = admin
        .create_topic(
            &NewTopic::new("bad")
                .partitions(1)
                .config("retention.ms", "x"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error(), Some(ResponseError::InvalidConfig));
    let err = admin
        .create_topic(&NewTopic::new("no/slashes").partitions(1))
        .await
        .unwrap_err();
    assert_eq!(
        err.kafka_error(),
        Some(ResponseError::InvalidTopicException)
    );
    assert!(admin.describe_topic("wide").await.unwrap().is_none());
    assert!(admin.describe_topic("bad").await.unwrap().is_none());

    server.shutdown().await.unwrap();
}
