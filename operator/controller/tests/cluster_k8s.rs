//! The KafkaCluster operator against a real kube-apiserver + etcd + kube-controller-manager
//! (`scripts/k8s`; run `scripts/k8s/install` first). Nothing is mocked: the CRDs from `crds/` are
//! installed into the server, the controller runs in-process as `sluice-operator run` runs it, and
//! the scale-down check talks to a real in-process Sluice broker. There is no kubelet, so pods are
//! created but never become ready.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod cluster_support;

use std::collections::BTreeMap;
use std::time::Duration;

use cluster_support::{
    Operator, Options, TEST_MANAGER, admin, client_with_token, k8s, namespace, properties, secs,
    sha256_hex,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use sluice_crd::{KafkaCluster, ReplicaCounts, Topic};
use sluice_kafka_admin::{AdminClient, NewTopic};
use sluice_operator::leader::LeaseConfig;

/// Bound of every wait for the operator or kube-controller-manager to act.
const WAIT: Duration = secs(30);

// ---------------------------------------------------------------------------------------------
// Helpers

/// `kubectl apply --server-side` of a KafkaCluster with `spec`.
async fn apply_cluster(
    api: &Api<KafkaCluster>,
    name: &str,
    spec: Value,
) -> Result<KafkaCluster, kube::Error> {
    api.patch(
        name,
        &PatchParams::apply(TEST_MANAGER),
        &Patch::Apply(json!({
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "KafkaCluster",
            "metadata": {"name": name},
            "spec": spec,
        })),
    )
    .await
}

/// A user's edit (`kubectl patch --type merge`).
async fn merge<K>(api: &Api<K>, name: &str, patch: Value) -> K
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams {
            field_manager: Some("kubectl-edit".to_owned()),
            ..PatchParams::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .unwrap()
}

/// Waits until the status describes the current generation, and returns the cluster.
async fn status_for_generation(api: &Api<KafkaCluster>, name: &str) -> KafkaCluster {
    eventually!(
        format!("the status of {name} to describe its generation"),
        WAIT,
        async {
            let kc = api.get(name).await.map_err(|e| e.to_string())?;
            let status = kc.status.as_ref().ok_or("no status")?;
            if status.observed_generation == kc.metadata.generation && status.conditions.len() == 3
            {
                Ok(kc)
            } else {
                Err(format!(
                    "generation {:?}, {status:?}",
                    kc.metadata.generation
                ))
            }
        }
    )
}

fn condition<'a>(kc: &'a KafkaCluster, type_: &str) -> &'a Condition {
    let status = kc.status.as_ref().unwrap();
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", status.conditions))
}

/// Everything the operator makes for one cluster.
struct Owned {
    controller_config: ConfigMap,
    broker_config: ConfigMap,
    controllers_service: Service,
    brokers_service: Service,
    bootstrap_service: Service,
    controller_pdb: PodDisruptionBudget,
    broker_pdb: PodDisruptionBudget,
    controller_sts: StatefulSet,
    broker_sts: StatefulSet,
}

impl Owned {
    fn metadata(&self) -> Vec<(&'static str, &ObjectMeta)> {
        vec![
            ("ConfigMap", &self.controller_config.metadata),
            ("ConfigMap", &self.broker_config.metadata),
            ("Service", &self.controllers_service.metadata),
            ("Service", &self.brokers_service.metadata),
            ("Service", &self.bootstrap_service.metadata),
            ("PodDisruptionBudget", &self.controller_pdb.metadata),
            ("PodDisruptionBudget", &self.broker_pdb.metadata),
            ("StatefulSet", &self.controller_sts.metadata),
            ("StatefulSet", &self.broker_sts.metadata),
        ]
    }

    /// `Kind/name` → resourceVersion.
    fn versions(&self) -> BTreeMap<String, String> {
        self.metadata()
            .into_iter()
            .map(|(kind, m)| {
                (
                    format!("{kind}/{}", m.name.clone().unwrap()),
                    m.resource_version.clone().unwrap(),
                )
            })
            .collect()
    }
}

async fn get_owned(client: &Client, ns: &str, name: &str) -> Result<Owned, String> {
    async fn get<K>(client: &Client, ns: &str, name: String) -> Result<K, String>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::<K>::namespaced(client.clone(), ns)
            .get_opt(&name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} {name} does not exist", K::kind(&())))
    }
    Ok(Owned {
        controller_config: get(client, ns, format!("{name}-controller-config")).await?,
        broker_config: get(client, ns, format!("{name}-broker-config")).await?,
        controllers_service: get(client, ns, format!("{name}-controllers")).await?,
        brokers_service: get(client, ns, format!("{name}-brokers")).await?,
        bootstrap_service: get(client, ns, format!("{name}-bootstrap")).await?,
        controller_pdb: get(client, ns, format!("{name}-controller")).await?,
        broker_pdb: get(client, ns, format!("{name}-broker")).await?,
        controller_sts: get(client, ns, format!("{name}-controller")).await?,
        broker_sts: get(client, ns, format!("{name}-broker")).await?,
    })
}

async fn wait_owned(client: &Client, ns: &str, name: &str) -> Owned {
    eventually!(
        format!("the objects of {name}"),
        WAIT,
        get_owned(client, ns, name)
    )
}

/// Waits until no owned object changes for a second (kube-controller-manager fills in the
/// StatefulSet and PDB status after they are created), and returns their versions.
async fn quiet_versions(client: &Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    eventually!(
        format!("the objects of {name} to stop changing"),
        WAIT,
        async {
            let before = get_owned(client, ns, name).await?.versions();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = get_owned(client, ns, name).await?.versions();
            if before == after {
                Ok(after)
            } else {
                Err(format!("{before:?} became {after:?}"))
            }
        }
    )
}

fn data(cm: &ConfigMap) -> &str {
    &cm.data.as_ref().unwrap()["server.properties"]
}

fn sts_replicas(sts: &StatefulSet) -> i32 {
    sts.spec.as_ref().unwrap().replicas.unwrap()
}

fn config_hash(sts: &StatefulSet) -> String {
    let template = &sts.spec.as_ref().unwrap().template;
    template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()["sluice.dev/config-hash"]
        .clone()
}

/// One ownerReference, to `kc`, as its controller; and the operator's labels.
fn assert_owned_by(kind: &str, meta: &ObjectMeta, kc: &KafkaCluster) {
    let what = format!("{kind} {}", meta.name.as_deref().unwrap());
    let refs = meta
        .owner_references
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no owner"));
    assert_eq!(refs.len(), 1, "{what}: {refs:?}");
    let owner = &refs[0];
    assert_eq!(owner.api_version, "sluice.dev/v1alpha1", "{what}");
    assert_eq!(owner.kind, "KafkaCluster", "{what}");
    assert_eq!(owner.name, kc.name_any(), "{what}");
    assert_eq!(Some(owner.uid.as_str()), kc.uid().as_deref(), "{what}");
    assert_eq!(owner.controller, Some(true), "{what}");
    let labels = meta.labels.as_ref().unwrap();
    assert_eq!(
        labels["app.kubernetes.io/managed-by"], "sluice-operator",
        "{what}"
    );
    assert_eq!(
        labels["app.kubernetes.io/instance"],
        kc.name_any(),
        "{what}"
    );
    assert_eq!(labels["app.kubernetes.io/name"], "sluice", "{what}");
}

/// The pod-template hash of a rendered file: SHA-256 of it without the quorum bootstrap line, which
/// only a pod's start reads (so scaling the controllers restarts nothing).
fn rendered_hash(text: &str) -> String {
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("controller.quorum.bootstrap.servers="))
        .map(|l| format!("{l}\n"))
        .collect();
    sha256_hex(&kept)
}

fn voters(name: &str, ns: &str, n: i32) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{}@{name}-controller-{i}.{name}-controllers.{ns}.svc:9093",
                1000 + i
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn api_error(result: Result<KafkaCluster, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected the API server to refuse, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_refuses_invalid_specs_at_apply_time() {
    let client = admin().await;
    let ns = namespace(&client, "schema").await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);

    for (config, named) in [
        (json!({"node.id": "1"}), "node.id"),
        (json!({"listeners": "PLAINTEXT://:1"}), "listeners"),
        (
            json!({"controller.quorum.voters": "1@x:9093"}),
            "controller.quorum.*",
        ),
        (
            json!({"log.dirs": "/x", "cluster.id": "x", "log.retention.hours": "1"}),
            "log.dirs, cluster.id",
        ),
    ] {
        let (code, message) =
            api_error(apply_cluster(&clusters, "bad", json!({"config": config})).await);
        assert_eq!(code, 422, "{message}");
        assert!(
            message.contains(&format!("spec.config must not set {named}:")),
            "{config}: {message}"
        );
    }
    let (code, message) =
        api_error(apply_cluster(&clusters, "bad", json!({"controllers": {"replicas": 2}})).await);
    assert_eq!(code, 422);
    assert!(
        message.contains("spec.controllers.replicas must be 1, 3 or 5"),
        "{message}"
    );
    assert!(
        clusters
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "a refused KafkaCluster must not be stored"
    );

    // The controller count may change, to another quorum size only.
    apply_cluster(&clusters, "grows", json!({"controllers": {"replicas": 3}}))
        .await
        .unwrap();
    apply_cluster(&clusters, "grows", json!({"controllers": {"replicas": 5}}))
        .await
        .unwrap();
    let (code, message) =
        api_error(apply_cluster(&clusters, "grows", json!({"controllers": {"replicas": 4}})).await);
    assert_eq!(code, 422);
    assert!(
        message.contains("spec.controllers.replicas must be 1, 3 or 5"),
        "{message}"
    );

    // A Topic's partitions only grow.
    let topics: Api<Topic> = Api::namespaced(client.clone(), &ns);
    let topic = |partitions: i32| {
        json!({
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Topic",
            "metadata": {"name": "orders"},
            "spec": {"clusterRef": {"name": "fixed"}, "partitions": partitions},
        })
    };
    let apply = PatchParams::apply(TEST_MANAGER);
    topics
        .patch("orders", &apply, &Patch::Apply(topic(3)))
        .await
        .unwrap();
    match topics
        .patch("orders", &apply, &Patch::Apply(topic(2)))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422);
            assert!(
                status.message.contains("spec.partitions can only grow"),
                "{}",
                status.message
            );
        }
        other => panic!("a partition decrease was accepted: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_by_three_cluster_becomes_its_objects_and_status() {
    let client = admin().await;
    let ns = namespace(&client, "full").await;
    let _operator = Operator::start(client.clone(), &ns, Options::default()).await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let name = "demo";
    apply_cluster(
        &clusters,
        name,
        json!({
            "controllers": {"replicas": 3},
            "brokers": {"replicas": 3, "storage": {"size": "2Gi"}},
            "config": {"log.retention.hours": "72", "num.partitions": "6"},
        }),
    )
    .await
    .unwrap();
    let kc = status_for_generation(&clusters, name).await;
    let owned = wait_owned(&client, &ns, name).await;
    let status = kc.status.clone().unwrap();
    let cluster_id = status.cluster_id.clone().unwrap();

    for (kind, meta) in owned.metadata() {
        assert_owned_by(kind, meta, &kc);
    }

    // server.properties of both roles.
    let expected_voters = voters(name, &ns, 3);
    for (cm, role, listener, port, service, offset) in [
        (
            &owned.controller_config,
            "controller",
            "CONTROLLER",
            9093,
            "controllers",
            "1000",
        ),
        (
            &owned.broker_config,
            "broker",
            "PLAINTEXT",
            9092,
            "brokers",
            "0",
        ),
    ] {
        let p = properties(data(cm));
        let want = |key: &str, value: &str| {
            assert_eq!(p.get(key).map(String::as_str), Some(value), "{role}: {key}")
        };
        want("process.roles", role);
        want("node.id.offset", offset);
        want("cluster.id", &cluster_id);
        // A dynamic quorum: found through every controller, its voters kept in the metadata log.
        want(
            "controller.quorum.bootstrap.servers",
            &(0..3)
                .map(|i| format!("{name}-controller-{i}.{name}-controllers.{ns}.svc:9093"))
                .collect::<Vec<_>>()
                .join(","),
        );
        want("controller.listener.names", "CONTROLLER");
        want(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        );
        want("listeners", &format!("{listener}://0.0.0.0:{port}"));
        want(
            "advertised.listeners",
            &format!("{listener}://${{env:POD_NAME}}.{name}-{service}.{ns}.svc:{port}"),
        );
        want("log.dirs", "/var/lib/sluice/data");
        want("log.retention.hours", "72");
        want("num.partitions", "6");
        assert!(
            !p.contains_key("node.id"),
            "{role}: node.id comes from the pod"
        );
    }

    // Services.
    for (svc, port, selects) in [
        (&owned.controllers_service, 9093, "controller"),
        (&owned.brokers_service, 9092, "broker"),
    ] {
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"), "headless");
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.ports.as_ref().unwrap()[0].port, port);
        assert_eq!(
            spec.selector.as_ref().unwrap()["app.kubernetes.io/component"],
            selects
        );
    }
    let bootstrap = owned.bootstrap_service.spec.as_ref().unwrap();
    assert_eq!(bootstrap.type_.as_deref(), Some("ClusterIP"));
    assert!(
        bootstrap
            .cluster_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.0.0.")),
        "the API server assigned a cluster IP: {:?}",
        bootstrap.cluster_ip
    );
    assert_eq!(bootstrap.ports.as_ref().unwrap()[0].port, 9092);
    assert_eq!(
        bootstrap.selector.as_ref().unwrap()["app.kubernetes.io/component"],
        "broker"
    );

    // StatefulSets.
    for (sts, cm, policy, service, size, port) in [
        (
            &owned.controller_sts,
            &owned.controller_config,
            "Parallel",
            "controllers",
            "10Gi",
            "controller",
        ),
        (
            &owned.broker_sts,
            &owned.broker_config,
            "OrderedReady",
            "brokers",
            "2Gi",
            "plaintext",
        ),
    ] {
        let spec = sts.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(
            spec.service_name.as_deref(),
            Some(format!("{name}-{service}").as_str())
        );
        assert_eq!(spec.pod_management_policy.as_deref(), Some(policy));
        let claims = spec.volume_claim_templates.as_ref().unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        let requests = claims[0].spec.as_ref().unwrap().resources.as_ref().unwrap();
        assert_eq!(requests.requests.as_ref().unwrap()["storage"].0, size);
        let container = &spec.template.spec.as_ref().unwrap().containers[0];
        let args = container.args.clone().unwrap();
        assert_eq!(args[0], "/etc/sluice/server.properties");
        if service == "controllers" {
            // The first controller starts the quorum; the broker formats the others to join it.
            assert_eq!(args[1], "--initial-controllers");
            let prefix = format!("1000@{name}-controller-0.{name}-controllers.{ns}.svc:9093:");
            assert!(args[2].starts_with(&prefix), "{args:?}");
            assert_eq!(args.len(), 3);
        } else {
            assert_eq!(args.len(), 1, "{args:?}");
        }
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let live = container.liveness_probe.as_ref().unwrap();
        let tcp = live.tcp_socket.as_ref().unwrap();
        assert_eq!(tcp.port, IntOrString::String(port.to_owned()));
        // Ready only once the node does its job, which the broker's readiness endpoint knows.
        let ready = container.readiness_probe.as_ref().unwrap();
        let http = ready.http_get.as_ref().unwrap();
        assert_eq!(http.path.as_deref(), Some("/ready"));
        assert_eq!(http.port, IntOrString::String("health".to_owned()));
        assert!(
            data(cm).contains("sluice.health.listener=0.0.0.0:9095\n"),
            "{service}"
        );
        assert_eq!(
            config_hash(sts),
            rendered_hash(data(cm)),
            "config hash of {service}"
        );
    }
    assert_eq!(
        owned
            .broker_sts
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .as_deref(),
        Some(sluice_operator::DEFAULT_BROKER_IMAGE)
    );

    // PodDisruptionBudgets.
    for (pdb, role) in [
        (&owned.controller_pdb, "controller"),
        (&owned.broker_pdb, "broker"),
    ] {
        let spec = pdb.spec.as_ref().unwrap();
        assert_eq!(
            spec.max_unavailable,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
        );
        assert_eq!(
            spec.selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["app.kubernetes.io/component"],
            role
        );
    }

    // Status.
    assert_eq!(status.observed_generation, kc.metadata.generation);
    assert_eq!(cluster_id.len(), 22, "{cluster_id}");
    assert_eq!(
        status.bootstrap_servers.as_deref(),
        Some(format!("{name}-bootstrap.{ns}.svc:9092").as_str())
    );
    assert_eq!(status.voters.as_deref(), Some(expected_voters.as_str()));
    let none_ready = ReplicaCounts {
        desired: 3,
        ready: 0,
    };
    assert_eq!(status.brokers, Some(none_ready.clone()));
    assert_eq!(status.controllers, Some(none_ready));
    for c in &status.conditions {
        assert_eq!(c.observed_generation, kc.metadata.generation, "{c:?}");
    }
    // No kubelet runs the pods, so they never become ready: Ready says which pods to look at.
    let ready = condition(&kc, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "PodsNotReady")
    );
    assert!(
        ready.message.contains("0/3 controllers ready")
            && ready.message.contains("0/3 brokers ready"),
        "{}",
        ready.message
    );
    assert!(
        ready
            .message
            .contains(&format!("app.kubernetes.io/instance={name}")),
        "Ready=False should say which pods to look at: {}",
        ready.message
    );
    let progressing = condition(&kc, "Progressing");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("True", "RollingOut")
    );
    let degraded = condition(&kc, "Degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("False", "AsExpected")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_controller_ephemeral_cluster() {
    let client = admin().await;
    let ns = namespace(&client, "single").await;
    let _operator = Operator::start(client.clone(), &ns, Options::default()).await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let name = "one";
    apply_cluster(
        &clusters,
        name,
        json!({
            "image": "example.com/sluice:test",
            "controllers": {"replicas": 1, "storage": {"ephemeral": true}},
            "brokers": {"replicas": 1, "storage": {"ephemeral": true}},
        }),
    )
    .await
    .unwrap();
    let kc = status_for_generation(&clusters, name).await;
    let owned = wait_owned(&client, &ns, name).await;
    for (kind, meta) in owned.metadata() {
        assert_owned_by(kind, meta, &kc);
    }
    let one_voter = format!("1000@{name}-controller-0.{name}-controllers.{ns}.svc:9093");
    for cm in [&owned.controller_config, &owned.broker_config] {
        assert_eq!(properties(data(cm))["controller.quorum.voters"], one_voter);
    }
    for sts in [&owned.controller_sts, &owned.broker_sts] {
        let spec = sts.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.volume_claim_templates, None, "ephemeral: no PVCs");
        let pod = spec.template.spec.as_ref().unwrap();
        let data_volume = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "data")
            .unwrap();
        assert!(data_volume.empty_dir.is_some(), "{data_volume:?}");
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("example.com/sluice:test")
        );
    }
    let status = kc.status.as_ref().unwrap();
    assert_eq!(status.voters.as_deref(), Some(one_voter.as_str()));
    assert_eq!(
        status.controllers,
        Some(ReplicaCounts {
            desired: 1,
            ready: 0
        })
    );
    assert_eq!(condition(&kc, "Ready").reason, "PodsNotReady");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_changes_reach_the_objects_and_an_unchanged_spec_writes_nothing() {
    let client = admin().await;
    let ns = namespace(&client, "updates").await;
    let operator = Operator::start(client.clone(), &ns, Options::default()).await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let name = "steady";
    apply_cluster(
        &clusters,
        name,
        json!({"controllers": {"replicas": 3}, "brokers": {"replicas": 3}, "config": {"log.retention.hours": "72"}}),
    )
    .await
    .unwrap();
    let kc = status_for_generation(&clusters, name).await;
    let cluster_id = kc.status.as_ref().unwrap().cluster_id.clone().unwrap();

    // Unchanged spec: reconciles write nothing, neither the owned objects nor the status.
    let versions = quiet_versions(&client, &ns, name).await;
    let kc = clusters.get(name).await.unwrap();
    operator.reconcile(kc.clone()).await;
    operator.reconcile(kc).await;
    let before = operator.reconciles();
    let touched = merge(
        &clusters,
        name,
        json!({"metadata": {"annotations": {"example.com/touched": "1"}}}),
    )
    .await;
    eventually!("a reconcile after the annotation changed", WAIT, async {
        let n = operator.reconciles();
        if n > before {
            Ok(())
        } else {
            Err(format!("{n} reconciles"))
        }
    });
    let after = get_owned(&client, &ns, name).await.unwrap().versions();
    assert_eq!(
        after, versions,
        "a reconcile of an unchanged spec wrote an owned object"
    );
    let kc = clusters.get(name).await.unwrap();
    assert_eq!(
        kc.resource_version(),
        touched.resource_version(),
        "a reconcile of an unchanged spec rewrote the status"
    );
    assert_eq!(
        kc.status.as_ref().unwrap().cluster_id.as_ref(),
        Some(&cluster_id)
    );

    // More brokers: the broker StatefulSet grows; the configuration stays.
    let generation = merge(
        &clusters,
        name,
        json!({"spec": {"brokers": {"replicas": 4}}}),
    )
    .await
    .metadata
    .generation;
    let owned = eventually!("the broker StatefulSet to grow to 4", WAIT, async {
        let owned = get_owned(&client, &ns, name).await?;
        match sts_replicas(&owned.broker_sts) {
            4 => Ok(owned),
            n => Err(format!("{n} replicas")),
        }
    });
    assert_eq!(sts_replicas(&owned.controller_sts), 3);
    for cm in [
        "ConfigMap/steady-broker-config",
        "ConfigMap/steady-controller-config",
    ] {
        assert_eq!(
            owned.versions()[cm],
            versions[cm],
            "{cm} does not depend on the broker count"
        );
    }
    let kc = status_for_generation(&clusters, name).await;
    assert_eq!(kc.metadata.generation, generation);
    let status = kc.status.as_ref().unwrap();
    assert_eq!(status.brokers.as_ref().unwrap().desired, 4);
    assert_eq!(status.cluster_id.as_ref(), Some(&cluster_id));

    // A config change rewrites both ConfigMaps and the pod templates' config hash.
    let old_hashes = [
        config_hash(&owned.controller_sts),
        config_hash(&owned.broker_sts),
    ];
    merge(
        &clusters,
        name,
        json!({"spec": {"config": {"log.retention.hours": "24"}}}),
    )
    .await;
    let owned = eventually!("the new config in both roles", WAIT, async {
        let owned = get_owned(&client, &ns, name).await?;
        let hashes = [
            config_hash(&owned.controller_sts),
            config_hash(&owned.broker_sts),
        ];
        let configs = [data(&owned.controller_config), data(&owned.broker_config)];
        if configs
            .iter()
            .all(|c| properties(c)["log.retention.hours"] == "24")
            && hashes.iter().zip(&old_hashes).all(|(new, old)| new != old)
        {
            Ok(owned)
        } else {
            Err(format!("{configs:?} {hashes:?}"))
        }
    });
    assert_eq!(
        config_hash(&owned.controller_sts),
        rendered_hash(data(&owned.controller_config))
    );
    assert_eq!(
        config_hash(&owned.broker_sts),
        rendered_hash(data(&owned.broker_config))
    );
    assert_eq!(
        properties(data(&owned.broker_config))["cluster.id"],
        cluster_id
    );
    let kc = status_for_generation(&clusters, name).await;
    assert_eq!(
        kc.status.as_ref().unwrap().cluster_id.as_ref(),
        Some(&cluster_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edits_of_owned_objects_are_put_back() {
    let client = admin().await;
    let ns = namespace(&client, "drift").await;
    let _operator = Operator::start(client.clone(), &ns, Options::default()).await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let name = "drift";
    let ephemeral = json!({"ephemeral": true});
    apply_cluster(
        &clusters,
        name,
        json!({"controllers": {"replicas": 1, "storage": ephemeral}, "brokers": {"replicas": 2, "storage": ephemeral}}),
    )
    .await
    .unwrap();
    status_for_generation(&clusters, name).await;
    let original = wait_owned(&client, &ns, name).await;

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm_name = format!("{name}-broker-config");
    merge(
        &config_maps,
        &cm_name,
        json!({"data": {"server.properties": "edited=by hand\n"}}),
    )
    .await;
    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    // Scaled down and given another image by hand. (A hand scale-up is not simply undone:
    // removing brokers waits until the operator has checked they hold no data.)
    merge(
        &stateful_sets,
        &format!("{name}-broker"),
        json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "sluice", "image": "example.com/other"}]}}}}),
    )
    .await;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let bootstrap = format!("{name}-bootstrap");
    services
        .delete(&bootstrap, &DeleteParams::default())
        .await
        .unwrap();

    eventually!("the hand edits to be undone", WAIT, async {
        let now = get_owned(&client, &ns, name).await?;
        let cm_back = data(&now.broker_config) == data(&original.broker_config);
        let image = |sts: &StatefulSet| {
            sts.spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers[0]
                .image
                .clone()
        };
        let replicas_back = sts_replicas(&now.broker_sts) == 2
            && image(&now.broker_sts) == image(&original.broker_sts);
        let service_back = now.bootstrap_service.uid() != original.bootstrap_service.uid();
        if cm_back && replicas_back && service_back {
            Ok(())
        } else {
            Err(format!(
                "ConfigMap restored: {cm_back}, StatefulSet restored: {replicas_back}, Service recreated: {service_back}"
            ))
        }
    });
}

/// A real single-node Sluice broker (broker and controller) with node id `node_id`, serving
/// clients on 127.0.0.1:`port` (0: any free port).
async fn start_broker(
    dir: &std::path::Path,
    node_id: i32,
    port: u16,
) -> sluice_server::broker::Server {
    let props: BTreeMap<String, String> = [
        ("node.id", node_id.to_string()),
        ("process.roles", "broker,controller".to_owned()),
        (
            "listeners",
            format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:0"),
        ),
        (
            "advertised.listeners",
            format!("PLAINTEXT://127.0.0.1:{port}"),
        ),
        ("controller.listener.names", "CONTROLLER".to_owned()),
        (
            "controller.quorum.voters",
            format!("{node_id}@127.0.0.1:9093"),
        ),
        ("log.dirs", dir.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config =
        sluice_server::config::BrokerConfig::from_properties(&props, &|_| None, "test-host")
            .unwrap();
    sluice_server::broker::Server::start(config, None)
        .await
        .unwrap()
}

/// Sets an annotation, which triggers a reconcile now rather than at the 30 s re-check of a
/// blocked scale-down.
async fn nudge(api: &Api<KafkaCluster>, name: &str, value: &str) {
    merge(
        api,
        name,
        json!({"metadata": {"annotations": {"example.com/nudge": value}}}),
    )
    .await;
}

/// A real broker with node id 2 plays the broker that scaling from 3 to 2 would remove; the
/// operator reaches it through `--bootstrap-override`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_waits_until_the_brokers_hold_no_partitions() {
    let client = admin().await;
    let ns = namespace(&client, "shrink").await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path(), 2, 0).await;
    let address = broker.addresses[0].1;
    let kafka = AdminClient::connect(
        &address.to_string(),
        "cluster-test",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    kafka
        .create_topic(&NewTopic::new("orders").partitions(1).replication_factor(1))
        .await
        .unwrap();

    let operator = Operator::start(
        client.clone(),
        &ns,
        Options {
            bootstrap_override: Some(address.to_string()),
            ..Options::default()
        },
    )
    .await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let name = "shrink";
    let ephemeral = json!({"ephemeral": true});
    apply_cluster(
        &clusters,
        name,
        json!({"controllers": {"replicas": 1, "storage": ephemeral}, "brokers": {"replicas": 3, "storage": ephemeral}}),
    )
    .await
    .unwrap();
    status_for_generation(&clusters, name).await;
    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let broker_sts = format!("{name}-broker");
    assert_eq!(
        sts_replicas(&stateful_sets.get(&broker_sts).await.unwrap()),
        3
    );

    // Broker 2 holds "orders": the scale-down waits and says why.
    merge(
        &clusters,
        name,
        json!({"spec": {"brokers": {"replicas": 2}}}),
    )
    .await;
    let blocked = |kc: &KafkaCluster| {
        let degraded = condition(kc, "Degraded");
        (degraded.status == "True" && degraded.reason == "ScaleDownBlocked")
            .then(|| degraded.message.clone())
            .ok_or_else(|| format!("{degraded:?}"))
    };
    let message = eventually!("the scale-down to be blocked", WAIT, async {
        blocked(&status_for_generation(&clusters, name).await)
    });
    assert!(
        message.starts_with(
            "cannot scale brokers from 3 to 2 yet: brokers 2 still host replicas of topics "
        ) && message.contains("orders"),
        "{message}"
    );
    assert_eq!(
        sts_replicas(&stateful_sets.get(&broker_sts).await.unwrap()),
        3,
        "the busy broker must stay"
    );
    let kc = clusters.get(name).await.unwrap();
    assert_eq!(
        kc.status
            .as_ref()
            .unwrap()
            .brokers
            .as_ref()
            .unwrap()
            .desired,
        2
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let warnings = events.list(&ListParams::default()).await.unwrap();
    assert!(
        warnings
            .items
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some("ScaleDownBlocked")
                && e.note.as_deref().is_some_and(|n| n.contains("orders"))),
        "a Warning event names the topic"
    );

    // The topic is deleted; the broker still holds the internal __consumer_offsets (Sluice
    // creates it on every broker at start), so the scale-down stays blocked, now for that alone.
    kafka.delete_topic("orders").await.unwrap();
    nudge(&clusters, name, "1").await;
    let message = eventually!(
        "the blocked message to drop the deleted topic",
        WAIT,
        async {
            let message = blocked(&clusters.get(name).await.map_err(|e| e.to_string())?)?;
            if message.contains("orders") {
                Err(message)
            } else {
                Ok(message)
            }
        }
    );
    assert!(
        message.contains("brokers 2 still host replicas of topics __consumer_offsets"),
        "{message}"
    );
    assert_eq!(
        sts_replicas(&stateful_sets.get(&broker_sts).await.unwrap()),
        3
    );

    // Once broker 2 holds nothing (as after a reassignment: the cluster behind the bootstrap
    // address is now a broker 0 with every partition), the scale-down proceeds.
    drop(kafka);
    broker.shutdown().await.unwrap();
    let dir0 = tempfile::tempdir().unwrap();
    let broker0 = start_broker(dir0.path(), 0, address.port()).await;
    nudge(&clusters, name, "2").await;
    eventually!("the scale-down to proceed", WAIT, async {
        let sts = stateful_sets
            .get(&broker_sts)
            .await
            .map_err(|e| e.to_string())?;
        let kc = clusters.get(name).await.map_err(|e| e.to_string())?;
        let degraded = condition(&kc, "Degraded").clone();
        match (sts_replicas(&sts), degraded.status.as_str()) {
            (2, "False") => Ok(()),
            (n, _) => Err(format!("{n} replicas, {degraded:?}")),
        }
    });
    assert_eq!(operator.reconcile_errors(), 0);
    drop(operator);
    broker0.shutdown().await.unwrap();
}

/// kube-controller-manager's garbage collector learns about a new CRD only when it re-reads
/// discovery, every 30 s; until then it cannot resolve a KafkaCluster owner (the log says
/// "unable to get REST mapping") and backs off. Probes with throwaway owners until one is
/// collected, so the test proper starts once collection works.
async fn wait_until_gc_knows_kafka_clusters(client: &Client) {
    let ns = namespace(client, "gc-probe").await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut probes: Vec<String> = Vec::new();
    eventually!(
        "kube-controller-manager to collect a ConfigMap owned by a deleted KafkaCluster",
        secs(75),
        async {
            let err = |e: kube::Error| e.to_string();
            for probe in &probes {
                if config_maps.get_opt(probe).await.map_err(err)?.is_none() {
                    return Ok(());
                }
            }
            let probe = format!("probe-{}", probes.len());
            let owner = apply_cluster(&clusters, &probe, json!({}))
                .await
                .map_err(err)?;
            let dependent = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(probe.clone()),
                    owner_references: Some(vec![owner.controller_owner_ref(&()).unwrap()]),
                    ..ObjectMeta::default()
                },
                ..ConfigMap::default()
            };
            config_maps
                .create(&PostParams::default(), &dependent)
                .await
                .map_err(err)?;
            clusters
                .delete(&probe, &DeleteParams::default())
                .await
                .map_err(err)?;
            probes.push(probe);
            tokio::time::sleep(Duration::from_millis(900)).await;
            Err(format!("{} probes not collected", probes.len()))
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_cluster_collects_its_objects() {
    assert!(
        k8s().gc,
        "kube-controller-manager is not running (SLUICE_K8S_GC=0), so nothing collects \
         garbage: run scripts/k8s/install without SLUICE_K8S_KCM=0"
    );
    let client = admin().await;
    wait_until_gc_knows_kafka_clusters(&client).await;
    let ns = namespace(&client, "gc").await;
    let operator = Operator::start(client.clone(), &ns, Options::default()).await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let name = "doomed";
    apply_cluster(
        &clusters,
        name,
        json!({"controllers": {"replicas": 1}, "brokers": {"replicas": 1}}),
    )
    .await
    .unwrap();
    status_for_generation(&clusters, name).await;
    wait_owned(&client, &ns, name).await;

    clusters
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    eventually!("the owned objects to be collected", WAIT, async {
        let mut left = Vec::new();
        macro_rules! remaining {
            ($kind:ty) => {
                let api: Api<$kind> = Api::namespaced(client.clone(), &ns);
                let list = api
                    .list(
                        &ListParams::default()
                            .labels(&format!("app.kubernetes.io/instance={name}")),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                left.extend(
                    list.items
                        .iter()
                        .map(|o| format!("{} {}", <$kind>::kind(&()), o.name_any())),
                );
            };
        }
        remaining!(ConfigMap);
        remaining!(Service);
        remaining!(PodDisruptionBudget);
        remaining!(StatefulSet);
        if left.is_empty() {
            Ok(())
        } else {
            Err(left.join(", "))
        }
    });
    drop(operator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_reconciles_and_a_successor_takes_over() {
    let client = admin().await;
    let ns = namespace(&client, "leader").await;
    let lease = |identity: &str| LeaseConfig {
        name: "sluice-operator".to_owned(),
        namespace: ns.clone(),
        identity: identity.to_owned(),
        duration: Duration::from_secs(3),
        renew_every: Duration::from_millis(500),
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = || lease_holder(&leases);
    let start = |identity: &str| {
        Operator::start(
            client.clone(),
            &ns,
            Options {
                lease: Some(lease(identity)),
                ..Options::default()
            },
        )
    };
    let ready = |op: &Operator| {
        let addr = op.metrics_addr;
        async move {
            cluster_support::http_get(addr, "/readyz")
                .await
                .starts_with("HTTP/1.1 200")
        }
    };

    let a = start("operator-a").await;
    eventually!("operator-a to lead", WAIT, async {
        match holder().await? {
            h if h == "operator-a" && ready(&a).await => Ok(()),
            h => Err(format!("holder {h:?}")),
        }
    });
    let b = start("operator-b").await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    apply_cluster(
        &clusters,
        "led",
        json!({"controllers": {"replicas": 1}, "brokers": {"replicas": 1}}),
    )
    .await
    .unwrap();
    status_for_generation(&clusters, "led").await;
    // Counted when the reconcile returns, a moment after it wrote the status.
    eventually!("operator-a to count its reconcile", WAIT, async {
        match a.reconciles() {
            0 => Err("0 reconciles".to_owned()),
            _ => Ok(()),
        }
    });
    // b has had several renew intervals to try; it must neither hold the lease nor reconcile.
    assert_eq!(holder().await.unwrap(), "operator-a");
    assert!(
        !ready(&b).await,
        "operator-b reports ready without the lease"
    );
    assert_eq!(b.reconciles(), 0, "operator-b reconciled without the lease");
    let lease_spec = leases.get("sluice-operator").await.unwrap().spec.unwrap();
    assert_eq!(lease_spec.lease_duration_seconds, Some(3));
    let transitions = lease_spec.lease_transitions.unwrap();

    // a shuts down and releases: b takes over within the lease duration.
    let released = tokio::time::Instant::now();
    a.shut_down().await;
    eventually!("operator-b to take over", Duration::from_secs(3), async {
        match holder().await? {
            h if h == "operator-b" && ready(&b).await && b.reconciles() > 0 => Ok(()),
            h => Err(format!("holder {h:?}, {} reconciles", b.reconciles())),
        }
    });
    assert!(released.elapsed() < Duration::from_secs(3));
    let lease_spec = leases.get("sluice-operator").await.unwrap().spec.unwrap();
    assert_eq!(lease_spec.lease_transitions, Some(transitions + 1));

    // b dies without releasing: c waits for the lease to expire, then takes it.
    b.kill();
    let c = start("operator-c").await;
    assert_eq!(holder().await.unwrap(), "operator-b");
    eventually!("operator-c to take over an expired lease", WAIT, async {
        match holder().await? {
            h if h == "operator-c" && ready(&c).await => Ok(()),
            h => Err(format!("holder {h:?}")),
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_reconciles() {
    let client = admin().await;
    let ns = namespace(&client, "metrics").await;
    let operator = Operator::start(client.clone(), &ns, Options::default()).await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    apply_cluster(
        &clusters,
        "counted",
        json!({"controllers": {"replicas": 1}, "brokers": {"replicas": 1}}),
    )
    .await
    .unwrap();
    status_for_generation(&clusters, "counted").await;

    // A reconcile is counted when it returns, just after it wrote the status the wait above saw.
    let series = "sluice_operator_reconciles_total{kind=\"KafkaCluster\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let response = loop {
        let response = operator.http_get("/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let counted = response
            .split("\r\n\r\n")
            .nth(1)
            .is_some_and(|body| cluster_support::metric(body, series) >= 1);
        if counted || std::time::Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let reconciles = cluster_support::metric(body, series);
    assert!(reconciles >= 1, "{body}");
    assert_eq!(
        cluster_support::metric(
            body,
            "sluice_operator_reconcile_duration_seconds_count{kind=\"KafkaCluster\"}"
        ),
        reconciles,
        "{body}"
    );
    assert!(
        body.contains("sluice_operator_reconcile_errors_total{kind=\"KafkaCluster\"} 0\n"),
        "{body}"
    );
    assert!(
        operator
            .http_get("/readyz")
            .await
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_the_schema_cannot_check_is_reported_not_applied() {
    let client = admin().await;
    let ns = namespace(&client, "invalid").await;
    let operator = Operator::start(client.clone(), &ns, Options::default()).await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    apply_cluster(
        &clusters,
        "toowide",
        json!({"brokers": {"replicas": 2}, "config": {"default.replication.factor": "3"}}),
    )
    .await
    .unwrap();
    let kc = status_for_generation(&clusters, "toowide").await;
    let degraded = condition(&kc, "Degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "InvalidSpec")
    );
    assert!(
        degraded.message.contains("default.replication.factor"),
        "{}",
        degraded.message
    );
    assert_eq!(condition(&kc, "Ready").reason, "InvalidSpec");
    assert!(get_owned(&client, &ns, "toowide").await.is_err());
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert!(
        config_maps
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=sluice-operator"))
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing is applied for an invalid spec"
    );
    // Fixing the spec lets it through.
    merge(
        &clusters,
        "toowide",
        json!({"spec": {"brokers": {"replicas": 3}}}),
    )
    .await;
    wait_owned(&client, &ns, "toowide").await;
    assert_eq!(operator.reconcile_errors(), 0);
}

/// The rules `operator/controller/README.md` lists, and nothing more.
fn operator_rules() -> Vec<PolicyRule> {
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    };
    let owned = ["get", "list", "watch", "create", "patch"];
    vec![
        rule("sluice.dev", &["kafkaclusters"], &["get", "list", "watch"]),
        rule("sluice.dev", &["kafkaclusters/status"], &["patch"]),
        rule(
            "sluice.dev",
            &["topics"],
            &["get", "list", "watch", "patch"],
        ),
        rule("sluice.dev", &["topics/status"], &["get", "patch"]),
        rule(
            "sluice.dev",
            &["kafkausers"],
            &["get", "list", "watch", "patch"],
        ),
        rule("sluice.dev", &["kafkausers/status"], &["get", "patch"]),
        rule("", &["secrets"], &["get", "create", "patch"]),
        rule("", &["configmaps", "services"], &owned),
        rule("apps", &["statefulsets"], &owned),
        rule("policy", &["poddisruptionbudgets"], &owned),
        rule("", &["pods"], &["list", "delete"]),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
        rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "patch"],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_works_with_only_the_documented_rbac_rules() {
    let client = admin().await;
    let ns = namespace(&client, "rbac").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "sluice-operator"}})).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let token = accounts
        .create_token_request(
            "sluice-operator",
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    audiences: Vec::new(),
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let operator_client = client_with_token(&token, "rbac-operator").await;
    let as_operator: Api<KafkaCluster> = Api::namespaced(operator_client.clone(), &ns);
    match as_operator.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("the ServiceAccount should start without rights: {other:?}"),
    }

    let role_name = "sluice-operator-rbac-test";
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(role_name.to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(operator_rules()),
        ..ClusterRole::default()
    };
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": role_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": "sluice-operator", "namespace": ns}],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // The authorizer sees new bindings through its informer, a moment later.
    eventually!("the binding to take effect", WAIT, async {
        Api::<KafkaCluster>::all(operator_client.clone())
            .list(&ListParams::default())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    });

    // A real broker, so that a Topic goes through every call its reconcile and its finalizer make.
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path(), 1, 0).await;
    let address = broker.addresses[0].1;

    // The operator as deployed: its own identity, leader election on.
    let operator = Operator::start(
        operator_client.clone(),
        &ns,
        Options {
            bootstrap_override: Some(address.to_string()),
            lease: Some(LeaseConfig {
                name: "sluice-operator".to_owned(),
                namespace: ns.clone(),
                identity: "rbac-operator".to_owned(),
                duration: Duration::from_secs(15),
                renew_every: Duration::from_secs(5),
            }),
        },
    )
    .await;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let name = "limited";
    apply_cluster(
        &clusters,
        name,
        json!({"controllers": {"replicas": 1}, "brokers": {"replicas": 1}}),
    )
    .await
    .unwrap();
    let kc = status_for_generation(&clusters, name).await;
    let owned = wait_owned(&client, &ns, name).await;
    for (kind, meta) in owned.metadata() {
        assert_owned_by(kind, meta, &kc);
    }
    // Events are best effort in the operator (a refused one is only logged), so look for them.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    eventually!("the operator's Applied event", WAIT, async {
        let list = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        list.items
            .iter()
            .find(|e| {
                e.reason.as_deref() == Some("Applied")
                    && e.reporting_controller.as_deref() == Some("sluice-operator")
            })
            .map(drop)
            .ok_or_else(|| format!("{} events", list.items.len()))
    });
    // Every owned kind is watched: deleting one of each brings it back at once (the resync is
    // minutes away).
    let old_uids: Vec<_> = owned
        .metadata()
        .iter()
        .map(|(_, m)| m.uid.clone())
        .collect();
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .delete(&format!("{name}-broker-config"), &DeleteParams::default())
        .await
        .unwrap();
    Api::<Service>::namespaced(client.clone(), &ns)
        .delete(&format!("{name}-brokers"), &DeleteParams::default())
        .await
        .unwrap();
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns)
        .delete(&format!("{name}-broker"), &DeleteParams::default())
        .await
        .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .delete(&format!("{name}-broker"), &DeleteParams::default())
        .await
        .unwrap();
    eventually!("the deleted objects to come back", WAIT, async {
        let now = get_owned(&client, &ns, name).await?;
        let recreated = [
            &now.broker_config.metadata,
            &now.brokers_service.metadata,
            &now.broker_pdb.metadata,
            &now.broker_sts.metadata,
        ]
        .iter()
        .filter(|m| !old_uids.contains(&m.uid))
        .count();
        if recreated == 4 {
            Ok(())
        } else {
            Err(format!("{recreated} of 4 recreated"))
        }
    });
    // A Topic, created on the broker and then deleted through its finalizer, all under these rules.
    let topics: Api<Topic> = Api::namespaced(client.clone(), &ns);
    topics
        .patch(
            "rbac-orders",
            &PatchParams::apply(TEST_MANAGER),
            &Patch::Apply(json!({
                "apiVersion": "sluice.dev/v1alpha1",
                "kind": "Topic",
                "metadata": {"name": "rbac-orders"},
                "spec": {"clusterRef": {"name": name}, "partitions": 2, "replicationFactor": 1},
            })),
        )
        .await
        .unwrap();
    let kafka = AdminClient::connect(&address.to_string(), "rbac-test", Duration::from_secs(10))
        .await
        .unwrap();
    eventually!("the Topic to be ready", WAIT, async {
        let t = topics.get("rbac-orders").await.map_err(|e| e.to_string())?;
        let ready = t
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        if ready.as_deref() == Some("True") {
            Ok(())
        } else {
            Err(format!("status {:?}", t.status))
        }
    });
    let created = kafka.describe_topic("rbac-orders").await.unwrap();
    assert_eq!(created.map(|t| t.partitions.len()), Some(2));
    topics
        .delete("rbac-orders", &DeleteParams::default())
        .await
        .unwrap();
    eventually!("the Topic and its finalizer to be gone", WAIT, async {
        match topics
            .get_opt("rbac-orders")
            .await
            .map_err(|e| e.to_string())?
        {
            None => Ok(()),
            Some(t) => Err(format!("finalizers {:?}", t.finalizers())),
        }
    });
    assert!(kafka.describe_topic("rbac-orders").await.unwrap().is_none());

    assert_eq!(operator.reconcile_errors(), 0, "a reconcile was refused");
    assert_eq!(
        operator.reconcile_errors_of("Topic"),
        0,
        "a Topic reconcile failed"
    );
    let logs = cluster_support::logs();
    assert!(
        !logs.contains("system:serviceaccount:rbac:sluice-operator"),
        "the API server refused the operator something:\n{logs}"
    );
    let lease: Lease = Api::namespaced(operator_client.clone(), &ns)
        .get("sluice-operator")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("rbac-operator")
    );
}

/// Who holds the operator's Lease: empty when it is free or missing.
async fn lease_holder(leases: &Api<Lease>) -> Result<String, String> {
    leases
        .get_opt("sluice-operator")
        .await
        .map_err(|e| e.to_string())
        .map(|l| {
            l.and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .unwrap_or_default()
        })
}

/// The `sluice-operator run` process itself (the other tests call the same `runner::start`
/// in-process): it leads, reconciles, and on SIGTERM exits cleanly, releasing its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_until_sigterm_and_releases_its_lease() {
    let client = admin().await;
    let ns = namespace(&client, "binary").await;
    // A free port; the binary binds it a moment later.
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let log = std::fs::File::create(k8s().dir.join("binary-operator.log")).unwrap();
    let mut child = Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice-operator"))
            .args(["run", "--namespace", &ns, "--leader-election"])
            .args([
                "--identity",
                "binary-operator",
                "--lease-renew-interval",
                "1s",
            ])
            .args(["--metrics-addr", &metrics_addr.to_string()])
            .env("KUBECONFIG", &k8s().kubeconfig)
            .env_remove("POD_NAMESPACE")
            .env_remove("SLUICE_NAMESPACE")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = || lease_holder(&leases);
    eventually!("the binary to lead and be ready", WAIT, async {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sluice-operator exited early ({status}), see binary-operator.log");
        }
        if tokio::net::TcpStream::connect(metrics_addr).await.is_err() {
            return Err("metrics address not bound yet".to_owned());
        }
        let ready = cluster_support::http_get(metrics_addr, "/readyz").await;
        match holder().await? {
            h if h == "binary-operator" && ready.starts_with("HTTP/1.1 200") => Ok(()),
            h => Err(format!("holder {h:?}, /readyz {ready:?}")),
        }
    });
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    apply_cluster(
        &clusters,
        "by-binary",
        json!({"controllers": {"replicas": 1}, "brokers": {"replicas": 1}}),
    )
    .await
    .unwrap();
    status_for_generation(&clusters, "by-binary").await;

    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = eventually!("the binary to exit after SIGTERM", WAIT, async {
        child
            .try_wait()
            .unwrap()
            .ok_or_else(|| "still running".to_owned())
    });
    assert!(status.success(), "sluice-operator exited with {status}");
    assert_eq!(holder().await.unwrap(), "", "the lease was not released");
}

/// A child process, killed if the test ends (fails) before it exits.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
