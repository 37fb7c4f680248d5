//! The Topic controller against real parts: a kube-apiserver with etcd and
//! kube-controller-manager (`scripts/k8s/up`), the CRDs from `crds/`, and a Sluice broker
//! in-process. The controller runs in-process with `--bootstrap-override` pointing at that
//! broker; the KafkaCluster objects only need to exist (no kubelet runs their pods). The
//! operator is started as the binary starts it, so the KafkaCluster controller runs too.
//!
//! One cluster, broker and controller serve the whole binary; each test has its own
//! namespace and its own topic names (the broker is shared). Every wait is bounded.
//!
//! Needs `scripts/k8s/install` first.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use sluice_crd::{KafkaCluster, Topic};
use sluice_kafka_admin::{AdminClient, NewTopic};
use sluice_operator::topic::{self, FINALIZER};

use support::operator::{WAIT, env, run};
use support::wait_for;

/// One test's namespace, with clients for it and for the broker.
struct Case {
    ns: String,
    topics: Api<Topic>,
    clusters: Api<KafkaCluster>,
    events: Api<Event>,
    admin: AdminClient,
}

impl Case {
    async fn new(ns: &str) -> Case {
        let env = env();
        let client = env.k8s.client().await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        let admin = AdminClient::connect(
            &env.broker.to_string(),
            "topic-tests",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        Case {
            ns: ns.to_owned(),
            topics: Api::namespaced(client.clone(), ns),
            clusters: Api::namespaced(client.clone(), ns),
            events: Api::namespaced(client, ns),
            admin,
        }
    }

    async fn create_cluster(&self, name: &str) {
        let kc: KafkaCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "KafkaCluster",
            "metadata": {"name": name},
            "spec": {"controllers": {"replicas": 1}, "brokers": {"replicas": 1,
                     "storage": {"ephemeral": true}}},
        }))
        .unwrap();
        self.clusters
            .create(&PostParams::default(), &kc)
            .await
            .unwrap();
    }

    /// Creates a Topic from its `metadata` and `spec`.
    async fn create_topic(&self, metadata: serde_json::Value, spec: serde_json::Value) -> Topic {
        let topic: Topic = serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "Topic",
            "metadata": metadata, "spec": spec,
        }))
        .unwrap();
        self.topics
            .create(&PostParams::default(), &topic)
            .await
            .unwrap()
    }

    async fn patch_spec(&self, name: &str, spec: serde_json::Value) -> Result<Topic, kube::Error> {
        self.topics
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": spec })),
            )
            .await
    }

    /// Waits until the status describes the current generation and `Ready` has `reason`.
    async fn wait_for_reason(&self, name: &str, reason: &str) -> Topic {
        wait_for(
            &format!("Topic {}/{name}: {reason}", self.ns),
            WAIT,
            || async {
                let t = self.topics.get(name).await.map_err(|e| e.to_string())?;
                let status = t.status.clone().unwrap_or_default();
                let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
                match ready {
                    Some(c)
                        if c.reason == reason
                            && status.observed_generation == t.metadata.generation =>
                    {
                        Ok(t)
                    }
                    _ => Err(format!(
                        "{status:?} at generation {:?}",
                        t.metadata.generation
                    )),
                }
            },
        )
        .await
    }

    async fn wait_ready(&self, name: &str) -> Topic {
        let t = self.wait_for_reason(name, "TopicReady").await;
        let status = t.status.as_ref().unwrap();
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
        assert_eq!(ready.unwrap().status, "True", "{status:?}");
        let degraded = status.conditions.iter().find(|c| c.type_ == "Degraded");
        assert_eq!(degraded.unwrap().status, "False", "{status:?}");
        t
    }

    async fn wait_gone(&self, name: &str) {
        wait_for(
            &format!("Topic {}/{name} to be gone", self.ns),
            WAIT,
            || async {
                match self.topics.get_opt(name).await.map_err(|e| e.to_string())? {
                    None => Ok(()),
                    Some(t) => Err(format!(
                        "still there, finalizers {:?}, status {:?}",
                        t.finalizers(),
                        t.status
                    )),
                }
            },
        )
        .await
    }

    /// The topic's overrides on the broker, or `None` if it has no such topic.
    async fn overrides(&self, topic: &str) -> Option<BTreeMap<String, String>> {
        self.admin.describe_topic(topic).await.unwrap()?;
        let configs = self.admin.topic_configs(topic).await.unwrap();
        Some(
            configs
                .into_iter()
                .filter(|(_, v)| v.is_topic_override())
                .map(|(k, v)| (k, v.value.unwrap_or_default()))
                .collect(),
        )
    }

    async fn partitions(&self, topic: &str) -> Option<usize> {
        let info = self.admin.describe_topic(topic).await.unwrap()?;
        Some(info.partitions.len())
    }

    /// Waits for an event about Topic `name` with `reason`; returns its note.
    async fn wait_event(&self, name: &str, reason: &str) -> String {
        wait_for(&format!("event {reason} on Topic {name}"), WAIT, || async {
            let events = self
                .events
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let about = |e: &&Event| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Topic")
            };
            let seen: Vec<_> = events.items.iter().filter(about).collect();
            seen.iter()
                .find(|e| e.reason.as_deref() == Some(reason))
                .map(|e| e.note.clone().unwrap_or_default())
                .ok_or_else(|| {
                    let reasons: Vec<_> = seen.iter().map(|e| e.reason.clone()).collect();
                    format!("events {reasons:?}")
                })
        })
        .await
    }
}

fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn condition<'a>(
    t: &'a Topic,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    t.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap()
}

#[test]
fn topic_is_created_grown_reverted_and_deleted() {
    run(async {
        let case = Case::new("lifecycle").await;
        case.create_cluster("demo").await;
        // A topic no resource names, with an override of its own.
        case.admin
            .create_topic(
                &NewTopic::new("lifecycle-unmanaged")
                    .partitions(1)
                    .config("retention.ms", "12345"),
            )
            .await
            .unwrap();

        let config = serde_json::json!({"retention.ms": "3600000", "cleanup.policy": "delete",
                                        "max.message.bytes": "2097152"});
        let want = map(&[
            ("retention.ms", "3600000"),
            ("cleanup.policy", "delete"),
            ("max.message.bytes", "2097152"),
        ]);
        case.create_topic(
            serde_json::json!({"name": "lifecycle-orders"}),
            serde_json::json!({"clusterRef": {"name": "demo"}, "partitions": 3,
                               "replicationFactor": 1, "config": config}),
        )
        .await;

        let t = case.wait_ready("lifecycle-orders").await;
        let info = case
            .admin
            .describe_topic("lifecycle-orders")
            .await
            .unwrap()
            .expect("the topic is on the broker");
        assert_eq!(info.partitions.len(), 3);
        assert_eq!(case.overrides("lifecycle-orders").await.unwrap(), want);
        let status = t.status.clone().unwrap();
        assert_eq!(status.observed_generation, t.metadata.generation);
        assert_eq!(status.partitions, Some(3));
        assert_eq!(status.replication_factor, Some(1));
        assert_eq!(
            status.topic_id,
            Some(topic::status::kafka_uuid(
                &info.id.expect("Metadata v10+ has ids")
            ))
        );
        assert_eq!(t.finalizers(), [FINALIZER]);
        assert!(
            case.wait_event("lifecycle-orders", "TopicCreated")
                .await
                .contains("3 partitions")
        );

        // Growing the spec grows the topic.
        case.patch_spec("lifecycle-orders", serde_json::json!({"partitions": 5}))
            .await
            .unwrap();
        let t = case.wait_ready("lifecycle-orders").await;
        assert_eq!(t.metadata.generation, Some(2));
        assert_eq!(t.status.unwrap().partitions, Some(5));
        assert_eq!(case.partitions("lifecycle-orders").await, Some(5));
        case.wait_event("lifecycle-orders", "PartitionsAdded").await;

        // Changes made with the admin client are reverted by the next resync.
        case.admin
            .alter_topic_configs(
                "lifecycle-orders",
                &map(&[("retention.ms", "1000"), ("segment.ms", "60000")]),
                &["cleanup.policy".to_owned()],
            )
            .await
            .unwrap();
        wait_for(
            "the out-of-band config change to be reverted",
            WAIT,
            || async {
                let now = case.overrides("lifecycle-orders").await.unwrap();
                (now == want).then_some(()).ok_or(format!("{now:?}"))
            },
        )
        .await;
        let note = case.wait_event("lifecycle-orders", "ConfigReverted").await;
        assert!(note.contains("retention.ms: 1000 -> 3600000"), "{note}");
        assert!(note.contains("segment.ms"), "{note}");

        // A topic no resource names is left alone across those resyncs.
        assert_eq!(case.partitions("lifecycle-unmanaged").await, Some(1));
        assert_eq!(
            case.overrides("lifecycle-unmanaged").await.unwrap(),
            map(&[("retention.ms", "12345")])
        );

        // The schema refuses a decrease.
        let err = case
            .patch_spec("lifecycle-orders", serde_json::json!({"partitions": 2}))
            .await
            .unwrap_err();
        match &err {
            kube::Error::Api(status) => {
                assert_eq!(status.code, 422, "{err}");
                assert!(
                    status
                        .message
                        .contains("spec.partitions can only grow: Kafka cannot remove partitions"),
                    "{err}"
                );
            }
            other => panic!("expected a validation error, got {other}"),
        }

        // Deleting the resource deletes the topic, and only that topic.
        case.topics
            .delete("lifecycle-orders", &DeleteParams::default())
            .await
            .unwrap();
        case.wait_gone("lifecycle-orders").await;
        assert_eq!(case.partitions("lifecycle-orders").await, None);
        assert_eq!(case.partitions("lifecycle-unmanaged").await, Some(1));
    });
}

#[test]
fn retained_topic_outlives_its_resource() {
    run(async {
        let case = Case::new("retain").await;
        case.create_cluster("demo").await;
        case.create_topic(
            serde_json::json!({"name": "kept", "annotations": {"sluice.dev/deletion-policy": "retain"}}),
            serde_json::json!({"clusterRef": {"name": "demo"}, "partitions": 2,
                               "topicName": "Retain_Kept.V1", "config": {"retention.ms": "60000"}}),
        )
        .await;
        let t = case.wait_ready("kept").await;
        assert_eq!(
            condition(&t, "Ready").message,
            "topic 'Retain_Kept.V1' has 2 partitions and replication factor 1"
        );
        case.topics
            .delete("kept", &DeleteParams::default())
            .await
            .unwrap();
        case.wait_gone("kept").await;
        assert_eq!(case.partitions("Retain_Kept.V1").await, Some(2));
        assert_eq!(
            case.overrides("Retain_Kept.V1").await.unwrap(),
            map(&[("retention.ms", "60000")])
        );
        case.wait_event("kept", "TopicRetained").await;
    });
}

#[test]
fn topic_of_a_missing_cluster_is_reported_and_released() {
    run(async {
        let case = Case::new("ghost").await;
        case.create_topic(
            serde_json::json!({"name": "ghost-orders"}),
            serde_json::json!({"clusterRef": {"name": "nowhere"}, "partitions": 1}),
        )
        .await;
        let t = case
            .wait_for_reason("ghost-orders", "ClusterNotFound")
            .await;
        assert_eq!(condition(&t, "Ready").status, "False");
        assert_eq!(condition(&t, "Degraded").status, "True");
        assert!(
            condition(&t, "Ready")
                .message
                .contains("fix spec.clusterRef.name"),
            "{t:?}"
        );
        assert_eq!(t.finalizers(), [FINALIZER]);
        assert_eq!(case.partitions("ghost-orders").await, None);

        case.topics
            .delete("ghost-orders", &DeleteParams::default())
            .await
            .unwrap();
        case.wait_gone("ghost-orders").await;
    });
}

#[test]
fn deleting_the_cluster_first_does_not_strand_its_topics() {
    run(async {
        let case = Case::new("doomed").await;
        case.create_cluster("doomed").await;
        case.create_topic(
            serde_json::json!({"name": "doomed-orders"}),
            serde_json::json!({"clusterRef": {"name": "doomed"}, "partitions": 1}),
        )
        .await;
        case.wait_ready("doomed-orders").await;

        case.clusters
            .delete("doomed", &DeleteParams::default())
            .await
            .unwrap();
        // The KafkaCluster watch tells the Topic at once, not at the next resync.
        case.wait_for_reason("doomed-orders", "ClusterNotFound")
            .await;
        case.topics
            .delete("doomed-orders", &DeleteParams::default())
            .await
            .unwrap();
        case.wait_gone("doomed-orders").await;
        // Its brokers were going away, so the operator did not ask them to delete anything.
        assert_eq!(case.partitions("doomed-orders").await, Some(1));
        case.wait_event("doomed-orders", "ClusterGone").await;
    });
}

#[test]
fn a_config_the_broker_refuses_is_a_condition_until_fixed() {
    run(async {
        let case = Case::new("refused").await;
        case.create_cluster("demo").await;
        case.create_topic(
            serde_json::json!({"name": "refused-orders"}),
            serde_json::json!({"clusterRef": {"name": "demo"}, "partitions": 2,
                               "config": {"retention.ms": "1000", "no.such.config": "1"}}),
        )
        .await;
        let t = case
            .wait_for_reason("refused-orders", "KafkaRejected")
            .await;
        let message = &condition(&t, "Degraded").message;
        assert!(message.contains("INVALID_CONFIG"), "{message}");
        assert!(message.contains("no.such.config"), "{message}");
        assert_eq!(case.partitions("refused-orders").await, None);
        let note = case.wait_event("refused-orders", "KafkaRejected").await;
        assert!(note.contains("no.such.config"), "{note}");

        // Dropping the key fixes it.
        case.patch_spec(
            "refused-orders",
            serde_json::json!({"config": {"no.such.config": null}}),
        )
        .await
        .unwrap();
        case.wait_ready("refused-orders").await;
        assert_eq!(
            case.overrides("refused-orders").await.unwrap(),
            map(&[("retention.ms", "1000")])
        );
    });
}

#[test]
fn partitions_added_outside_are_reported_until_the_spec_catches_up() {
    run(async {
        let case = Case::new("grown").await;
        case.create_cluster("demo").await;
        case.create_topic(
            serde_json::json!({"name": "grown-orders"}),
            serde_json::json!({"clusterRef": {"name": "demo"}, "partitions": 2}),
        )
        .await;
        case.wait_ready("grown-orders").await;
        case.admin
            .create_partitions("grown-orders", 4)
            .await
            .unwrap();
        let t = case
            .wait_for_reason("grown-orders", "PartitionsBelowActual")
            .await;
        assert!(
            condition(&t, "Ready")
                .message
                .contains("set spec.partitions to 4"),
            "{t:?}"
        );
        assert_eq!(t.status.unwrap().partitions, Some(4));

        case.patch_spec("grown-orders", serde_json::json!({"partitions": 4}))
            .await
            .unwrap();
        case.wait_ready("grown-orders").await;
        assert_eq!(case.partitions("grown-orders").await, Some(4));
    });
}

#[test]
fn an_existing_topic_is_adopted_and_a_replication_factor_change_reported() {
    run(async {
        let case = Case::new("adopt").await;
        case.create_cluster("demo").await;
        case.admin
            .create_topic(
                &NewTopic::new("adopt-orders")
                    .partitions(1)
                    .replication_factor(1)
                    .config("segment.ms", "60000"),
            )
            .await
            .unwrap();
        case.create_topic(
            serde_json::json!({"name": "adopt-orders"}),
            serde_json::json!({"clusterRef": {"name": "demo"}, "partitions": 2,
                               "replicationFactor": 3, "config": {"retention.ms": "5000"}}),
        )
        .await;
        let t = case
            .wait_for_reason("adopt-orders", "ReplicationFactorMismatch")
            .await;
        assert!(
            condition(&t, "Degraded")
                .message
                .contains("has replication factor 1 but spec.replicationFactor is 3"),
            "{t:?}"
        );
        // Everything else is brought in line.
        assert_eq!(case.partitions("adopt-orders").await, Some(2));
        assert_eq!(
            case.overrides("adopt-orders").await.unwrap(),
            map(&[("retention.ms", "5000")])
        );

        case.patch_spec("adopt-orders", serde_json::json!({"replicationFactor": 1}))
            .await
            .unwrap();
        case.wait_ready("adopt-orders").await;
    });
}

#[test]
fn a_second_topic_for_the_same_kafka_topic_is_a_conflict() {
    run(async {
        let case = Case::new("twins").await;
        case.create_cluster("demo").await;
        case.create_topic(
            serde_json::json!({"name": "twins-first"}),
            serde_json::json!({"clusterRef": {"name": "demo"}, "partitions": 1,
                               "topicName": "twins-orders", "config": {"retention.ms": "1000"}}),
        )
        .await;
        case.wait_ready("twins-first").await;
        case.create_topic(
            serde_json::json!({"name": "twins-second"}),
            serde_json::json!({"clusterRef": {"name": "demo"}, "partitions": 3,
                               "topicName": "twins-orders", "config": {"retention.ms": "2"}}),
        )
        .await;
        let t = case.wait_for_reason("twins-second", "Conflict").await;
        assert!(
            condition(&t, "Ready")
                .message
                .starts_with("Topic twins-first already manages"),
            "{t:?}"
        );
        assert_eq!(case.partitions("twins-orders").await, Some(1));
        assert_eq!(
            case.overrides("twins-orders").await.unwrap(),
            map(&[("retention.ms", "1000")])
        );

        // Deleting the second keeps the topic the first still asks for.
        case.topics
            .delete("twins-second", &DeleteParams::default())
            .await
            .unwrap();
        case.wait_gone("twins-second").await;
        assert_eq!(case.partitions("twins-orders").await, Some(1));
        case.wait_ready("twins-first").await;
    });
}
