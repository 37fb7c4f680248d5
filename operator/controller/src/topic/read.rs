//! The first stage: what exists. The `Topic` comes from the controller's watch; this reads its
//! `KafkaCluster` and the other Topics of the namespace from the API server, and the topic as
//! the brokers see it (Metadata and DescribeConfigs through `sluice-kafka-admin`).

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use sluice_crd::{KafkaCluster, Topic};
use sluice_kafka_admin::{AdminClient, ConfigValue, TopicInfo};

use crate::error::Error;
use crate::inspector::Endpoint;
use crate::kafka_cluster::role::MANAGED_BY;

/// Bound of every admin call, connecting included.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The `KafkaCluster` a Topic names.
#[derive(Debug, Clone)]
pub enum ClusterState {
    Missing,
    /// Being deleted: its brokers are going away, so the topic is left alone.
    Deleting,
    Present(Box<KafkaCluster>),
}

/// The topic as the brokers report it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActualTopic {
    pub info: TopicInfo,
    /// Every config with its effective value and source.
    pub configs: BTreeMap<String, ConfigValue>,
}

pub async fn cluster(client: &Client, namespace: &str, name: &str) -> Result<ClusterState, Error> {
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), namespace);
    Ok(match clusters.get_opt(name).await? {
        None => ClusterState::Missing,
        Some(kc) if kc.metadata.deletion_timestamp.is_some() => ClusterState::Deleting,
        Some(kc) => ClusterState::Present(Box::new(kc)),
    })
}

/// How the brokers of `kc` are reached (`--bootstrap-override` first): see
/// [`crate::kafka_cluster::access`].
pub async fn endpoint(
    client: &Client,
    settings: &crate::kafka_cluster::Settings,
    kc: &KafkaCluster,
    namespace: &str,
) -> Result<Endpoint, Error> {
    crate::kafka_cluster::access::endpoint(
        client,
        kc,
        namespace,
        &settings.broker_image,
        settings.bootstrap_override.as_deref(),
    )
    .await
}

/// The other Topics of `topic`'s namespace (names are unique within one).
pub async fn other_topics(client: &Client, topic: &Topic) -> Result<Vec<Topic>, Error> {
    let namespace = topic.namespace().unwrap_or_default();
    let topics: Api<Topic> = Api::namespaced(client.clone(), &namespace);
    let all = topics.list(&ListParams::default()).await?;
    Ok(all
        .items
        .into_iter()
        .filter(|t| t.name_any() != topic.name_any())
        .collect())
}

/// The Topic among `others` that manages the same Kafka topic (same cluster and name) and
/// takes precedence over `me`: created earlier (by name when created in the same second), and
/// not being deleted. Only that one changes the topic; the others report a conflict.
pub fn earlier_claimant<'a>(me: &Topic, others: &'a [Topic]) -> Option<&'a Topic> {
    let rank = |t: &Topic| {
        (
            t.metadata.creation_timestamp.as_ref().map(|ts| ts.0),
            t.name_any(),
        )
    };
    others
        .iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        .filter(|o| same_kafka_topic(me, o))
        .filter(|o| rank(o) < rank(me))
        .min_by_key(|o| rank(o))
}

/// Whether another Topic, not being deleted, still asks for the same Kafka topic, so that
/// deleting `me` must not delete it.
pub fn still_wanted<'a>(me: &Topic, others: &'a [Topic]) -> Option<&'a Topic> {
    others
        .iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        .find(|o| same_kafka_topic(me, o))
}

fn same_kafka_topic(a: &Topic, b: &Topic) -> bool {
    a.namespace() == b.namespace()
        && a.spec.cluster_ref == b.spec.cluster_ref
        && a.kafka_name() == b.kafka_name()
}

pub async fn connect(endpoint: &Endpoint) -> Result<AdminClient, Error> {
    endpoint
        .connect(MANAGED_BY)
        .await
        .map_err(|source| Error::Admin {
            bootstrap: endpoint.to_string(),
            source,
        })
}

/// The topic `name` with its configs, or `None` if the brokers do not have it.
pub async fn topic(
    admin: &AdminClient,
    bootstrap: &str,
    name: &str,
) -> Result<Option<ActualTopic>, Error> {
    let admin_error = |source| Error::Admin {
        bootstrap: bootstrap.to_owned(),
        source,
    };
    let Some(info) = admin.describe_topic(name).await.map_err(admin_error)? else {
        return Ok(None);
    };
    match admin.topic_configs(name).await {
        Ok(configs) => Ok(Some(ActualTopic { info, configs })),
        // Deleted between the two calls.
        Err(e) if e.is_unknown_topic() => Ok(None),
        Err(e) => Err(admin_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use sluice_crd::TopicSpec;

    fn topic(name: &str, cluster: &str, kafka_name: Option<&str>, created: i64) -> Topic {
        let spec: TopicSpec = serde_json::from_value(serde_json::json!({
            "clusterRef": {"name": cluster}, "partitions": 1, "topicName": kafka_name,
        }))
        .unwrap();
        let mut t = Topic::new(name, spec);
        t.metadata.namespace = Some("ns".to_owned());
        t.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        t
    }

    #[test]
    fn the_oldest_claimant_wins() {
        let me = topic("b", "demo", Some("orders"), 100);
        let older = topic("a", "demo", Some("orders"), 50);
        let same_second = topic("a2", "demo", Some("orders"), 100);
        let younger = topic("c", "demo", Some("orders"), 200);
        let other_cluster = topic("d", "other", Some("orders"), 1);
        let other_name = topic("payments", "demo", None, 1);
        let others = [younger.clone(), other_cluster, other_name];
        assert!(earlier_claimant(&me, &others).is_none());
        let others = [younger.clone(), same_second.clone()];
        assert_eq!(earlier_claimant(&me, &others).unwrap().name_any(), "a2");
        let others = [same_second, older.clone(), younger];
        assert_eq!(earlier_claimant(&me, &others).unwrap().name_any(), "a");

        // metadata.name and spec.topicName both name the Kafka topic.
        let by_name = topic("x", "demo", Some("orders"), 2);
        let named_orders = topic("orders", "demo", None, 1);
        assert_eq!(
            earlier_claimant(&by_name, &[named_orders])
                .unwrap()
                .name_any(),
            "orders"
        );

        // A claimant that is being deleted hands over.
        let mut leaving = older;
        leaving.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(300).unwrap()));
        assert!(earlier_claimant(&me, &[leaving.clone()]).is_none());
        assert!(still_wanted(&me, &[leaving]).is_none());
        assert_eq!(
            still_wanted(&me, &[topic("z", "demo", Some("orders"), 900)])
                .unwrap()
                .name_any(),
            "z"
        );
    }
}
