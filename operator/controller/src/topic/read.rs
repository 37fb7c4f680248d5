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
use crate::kafka_cluster::role::{MANAGED_BY, bootstrap_servers};

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

/// Where the brokers are reached: `--bootstrap-override`, else the cluster's
/// `status.bootstrapServers`, else its bootstrap Service.
pub fn bootstrap(override_: Option<&str>, kc: &KafkaCluster, namespace: &str) -> String {
    if let Some(addr) = override_ {
        return addr.to_owned();
    }
    kc.status
        .as_ref()
        .and_then(|s| s.bootstrap_servers.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| bootstrap_servers(&kc.name_any(), namespace))
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

pub async fn connect(bootstrap: &str) -> Result<AdminClient, Error> {
    AdminClient::connect(bootstrap, MANAGED_BY, ADMIN_TIMEOUT)
        .await
        .map_err(|source| Error::Admin {
            bootstrap: bootstrap.to_owned(),
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
    use sluice_crd::{KafkaClusterSpec, KafkaClusterStatus, TopicSpec};

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

    #[test]
    fn bootstrap_prefers_override_then_status_then_service() {
        let mut kc = KafkaCluster::new(
            "demo",
            serde_json::from_value::<KafkaClusterSpec>(serde_json::json!({})).unwrap(),
        );
        assert_eq!(bootstrap(None, &kc, "ns"), "demo-bootstrap.ns.svc:9092");
        kc.status = Some(KafkaClusterStatus {
            bootstrap_servers: Some("b:1".to_owned()),
            ..Default::default()
        });
        assert_eq!(bootstrap(None, &kc, "ns"), "b:1");
        assert_eq!(bootstrap(Some("127.0.0.1:9"), &kc, "ns"), "127.0.0.1:9");
    }
}
