//! Turns a validated cluster into the objects the operator applies. Pure: no client, no clock,
//! no randomness — the cluster id and the broker count to run are inputs.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Secret,
    SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction,
    Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::certificates::{self, TlsMaterial};
use super::properties::{
    self, CLIENTS_CA_FILE, CLUSTER_CA_FILE, NODE_KEYSTORE, NodeTransport, QuorumMode,
    listener_keystore_file,
};
use super::role::{
    CONFIG_MOUNT, CONTROLLER_PORT, DATA_MOUNT, HEALTH_PORT, HEALTH_PORT_NAME, PROPERTIES_FILE,
    REPLICATION_PORT, Role, TLS_MOUNT, bootstrap_service_name,
};
use super::validate::{ValidCluster, ValidRole, ValidStorage};
use crate::error::Error;

/// Pod-template annotation holding the SHA-256 of the role's `server.properties`.
pub const CONFIG_HASH_ANNOTATION: &str = "sluice.dev/config-hash";
/// The non-root user and group of the broker image.
pub const RUN_AS: i64 = 65532;
const CONTAINER_NAME: &str = "sluice";
const CONFIG_VOLUME: &str = "config";
const DATA_VOLUME: &str = "data";
const TLS_VOLUME: &str = "tls";

/// Everything the operator applies for one cluster, in apply order: configuration and
/// Services before the StatefulSets whose pods need them.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub secrets: Vec<Secret>,
    pub config_maps: Vec<ConfigMap>,
    pub services: Vec<Service>,
    pub pod_disruption_budgets: Vec<PodDisruptionBudget>,
    pub stateful_sets: Vec<StatefulSet>,
}

impl Desired {
    /// Every object as JSON (with `apiVersion` and `kind`), in apply order.
    pub fn to_json(&self) -> Result<Vec<serde_json::Value>, Error> {
        fn push<T: Serialize>(out: &mut Vec<serde_json::Value>, items: &[T]) -> Result<(), Error> {
            for item in items {
                out.push(serde_json::to_value(item).map_err(|e| Error::json("object", e))?);
            }
            Ok(())
        }
        let mut out = Vec::new();
        push(&mut out, &self.secrets)?;
        push(&mut out, &self.config_maps)?;
        push(&mut out, &self.services)?;
        push(&mut out, &self.pod_disruption_budgets)?;
        push(&mut out, &self.stateful_sets)?;
        Ok(out)
    }
}

/// How many pods each StatefulSet runs: normally the spec's counts, but more while brokers are
/// drained or controllers stop voting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCounts {
    pub controllers: i32,
    pub brokers: i32,
}

impl PodCounts {
    /// The counts the spec asks for.
    pub fn of(cluster: &ValidCluster) -> PodCounts {
        PodCounts {
            controllers: cluster.controllers.replicas,
            brokers: cluster.brokers.replicas,
        }
    }
}

/// How `cluster`'s controllers find each other: a dynamic quorum that can grow and shrink, unless
/// the cluster was created with fixed voters (`rendered_static`, read from its ConfigMap) or its
/// controllers keep no data (a controller that restarts empty must not take part in a quorum that
/// trusts its log).
pub fn quorum_mode(
    cluster: &ValidCluster,
    rendered_static: bool,
    controller_pods: i32,
) -> QuorumMode {
    if fixed_voters(cluster, rendered_static) {
        QuorumMode::Static
    } else {
        QuorumMode::Dynamic { controller_pods }
    }
}

/// Whether `cluster`'s voters are fixed (see `quorum_mode`).
pub fn fixed_voters(cluster: &ValidCluster, rendered_static: bool) -> bool {
    rendered_static || cluster.controllers.storage == ValidStorage::Ephemeral
}

/// How a cluster is put together beyond its spec: decided from what already runs (or, for the
/// certificates, made) before the objects are built.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub cluster_id: &'a str,
    pub counts: PodCounts,
    pub quorum: QuorumMode,
    pub nodes: NodeTransport,
    /// The certificates, when the cluster uses TLS anywhere.
    pub tls: Option<&'a TlsMaterial>,
}

/// The objects for `cluster`.
pub fn build(cluster: &ValidCluster, inputs: Inputs<'_>) -> Desired {
    let Inputs {
        cluster_id,
        counts,
        quorum,
        nodes,
        tls,
    } = inputs;
    let mut desired = Desired {
        secrets: Vec::new(),
        config_maps: Vec::new(),
        services: Vec::new(),
        pod_disruption_budgets: Vec::new(),
        stateful_sets: Vec::new(),
    };
    if let Some(tls) = tls {
        desired.secrets = tls_secrets(cluster, tls, nodes);
    }
    for role in Role::ALL {
        let (spec, replicas) = match role {
            Role::Controller => (&cluster.controllers, counts.controllers),
            Role::Broker => (&cluster.brokers, counts.brokers),
        };
        let text = properties::render(cluster, role, cluster_id, quorum, nodes);
        let hash = properties::config_hash(&text);
        let mut args = vec![format!("{CONFIG_MOUNT}/{PROPERTIES_FILE}")];
        if role == Role::Controller && matches!(quorum, QuorumMode::Dynamic { .. }) {
            args.extend(properties::controller_format_args(cluster, cluster_id));
        }
        let ports = ports(cluster, role, nodes);
        let mounts_tls = certificates::role_uses_tls(cluster, role, nodes);
        desired.config_maps.push(config_map(cluster, role, text));
        desired
            .services
            .push(headless_service(cluster, role, &ports));
        desired.pod_disruption_budgets.push(pdb(cluster, role));
        desired.stateful_sets.push(stateful_set(
            cluster,
            RoleSet {
                role,
                spec,
                replicas,
                config_hash: &hash,
                args,
                ports: &ports,
                mounts_tls,
            },
        ));
    }
    desired.services.push(bootstrap_service(cluster));
    desired
}

/// The named ports a role's pods serve Kafka on: the controller listener, or each client
/// listener and, with mutual TLS between nodes, the brokers' replication listener.
fn ports(cluster: &ValidCluster, role: Role, nodes: NodeTransport) -> Vec<(String, i32)> {
    match role {
        Role::Controller => vec![(role.port_name().to_owned(), CONTROLLER_PORT)],
        Role::Broker => cluster
            .listeners
            .iter()
            .map(|l| (l.name.clone(), l.port))
            .chain(
                (nodes == NodeTransport::MutualTls)
                    .then(|| ("replication".to_owned(), REPLICATION_PORT)),
            )
            .collect(),
    }
}

/// The Secrets of a cluster using TLS: each role's certificates (the controllers' only when the
/// nodes use mutual TLS), and the cluster CA's certificate for clients.
fn tls_secrets(cluster: &ValidCluster, tls: &TlsMaterial, nodes: NodeTransport) -> Vec<Secret> {
    let mut out = vec![certificates::secret(
        cluster,
        certificates::cluster_ca_cert_secret(&cluster.name),
        Role::Broker,
        BTreeMap::from([(
            certificates::CA_CERT_KEY.to_owned(),
            tls.cluster_ca.cert_pem.clone(),
        )]),
    )];
    for role in Role::ALL {
        if !certificates::role_uses_tls(cluster, role, nodes) {
            continue;
        }
        let mut data = BTreeMap::from([
            (CLUSTER_CA_FILE.to_owned(), tls.cluster_ca.cert_pem.clone()),
            (
                NODE_KEYSTORE.to_owned(),
                tls.node_keystores.get(&role).cloned().unwrap_or_default(),
            ),
        ]);
        if role == Role::Broker {
            data.insert(CLIENTS_CA_FILE.to_owned(), tls.clients_ca.cert_pem.clone());
            for (listener, keystore) in &tls.listener_keystores {
                data.insert(listener_keystore_file(listener), keystore.clone());
            }
        }
        out.push(certificates::secret(
            cluster,
            certificates::role_tls_secret(&cluster.name, role),
            role,
            data,
        ));
    }
    out
}

fn metadata(cluster: &ValidCluster, name: String, role: Role) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(cluster.namespace.clone()),
        labels: Some(role.labels(&cluster.name)),
        owner_references: cluster.owner.clone().map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

fn config_map(cluster: &ValidCluster, role: Role, text: String) -> ConfigMap {
    ConfigMap {
        metadata: metadata(cluster, role.config_map_name(&cluster.name), role),
        data: Some(BTreeMap::from([(PROPERTIES_FILE.to_owned(), text)])),
        ..ConfigMap::default()
    }
}

fn service_ports(ports: &[(String, i32)]) -> Vec<ServicePort> {
    ports
        .iter()
        .map(|(name, port)| ServicePort {
            name: Some(name.clone()),
            port: *port,
            target_port: Some(IntOrString::String(name.clone())),
            protocol: Some("TCP".to_owned()),
            ..ServicePort::default()
        })
        .collect()
}

/// Gives each pod a stable DNS name. Not-ready pods are published too: controllers must find
/// each other to form the quorum before any is ready, and a broker must resolve its own
/// advertised name while it starts.
fn headless_service(cluster: &ValidCluster, role: Role, ports: &[(String, i32)]) -> Service {
    Service {
        metadata: metadata(cluster, role.headless_service_name(&cluster.name), role),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(role.selector_labels(&cluster.name)),
            ports: Some(service_ports(ports)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The one address clients need; it balances over ready brokers only.
fn bootstrap_service(cluster: &ValidCluster) -> Service {
    let role = Role::Broker;
    Service {
        metadata: metadata(cluster, bootstrap_service_name(&cluster.name), role),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(role.selector_labels(&cluster.name)),
            ports: Some(service_ports(&ports(
                cluster,
                role,
                NodeTransport::Plaintext,
            ))),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn pdb(cluster: &ValidCluster, role: Role) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: metadata(cluster, role.pdb_name(&cluster.name), role),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(role.selector_labels(&cluster.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn tcp_probe(port_name: &str, initial_delay: i32, period: i32, failures: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(port_name.to_owned()),
            ..TCPSocketAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// What differs between the two StatefulSets.
struct RoleSet<'a> {
    role: Role,
    spec: &'a ValidRole,
    replicas: i32,
    config_hash: &'a str,
    args: Vec<String>,
    ports: &'a [(String, i32)],
    /// Mount the role's certificate Secret.
    mounts_tls: bool,
}

fn stateful_set(cluster: &ValidCluster, set: RoleSet<'_>) -> StatefulSet {
    let RoleSet {
        role,
        spec,
        replicas,
        config_hash,
        args,
        ports,
        mounts_tls,
    } = set;
    let name = &cluster.name;
    let mut container_ports: Vec<ContainerPort> = ports
        .iter()
        .map(|(port_name, port)| ContainerPort {
            name: Some(port_name.clone()),
            container_port: *port,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        })
        .collect();
    container_ports.push(ContainerPort {
        name: Some(HEALTH_PORT_NAME.to_owned()),
        container_port: HEALTH_PORT,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    });
    let first_port = ports.first().map_or(role.port_name(), |(n, _)| n.as_str());
    let mut volume_mounts = vec![
        VolumeMount {
            name: CONFIG_VOLUME.to_owned(),
            mount_path: CONFIG_MOUNT.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: DATA_VOLUME.to_owned(),
            mount_path: DATA_MOUNT.to_owned(),
            ..VolumeMount::default()
        },
    ];
    if mounts_tls {
        volume_mounts.push(VolumeMount {
            name: TLS_VOLUME.to_owned(),
            mount_path: TLS_MOUNT.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let container = Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(cluster.image.clone()),
        args: Some(args),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
        ]),
        ports: Some(container_ports),
        // Ready once the node does its job (see `sluice.health.listener`): the bootstrap Service
        // then sends clients only to unfenced brokers, and a roll waits for the restarted pod to
        // be back in the cluster, not merely listening.
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/ready".to_owned()),
                port: IntOrString::String(HEALTH_PORT_NAME.to_owned()),
                ..HTTPGetAction::default()
            }),
            initial_delay_seconds: Some(2),
            period_seconds: Some(2),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        // Generous: a broker recovering a large log after a crash must not be killed for it.
        liveness_probe: Some(tcp_probe(first_port, 30, 10, 6)),
        resources: spec.resources.clone(),
        volume_mounts: Some(volume_mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };

    let mut volumes = vec![Volume {
        name: CONFIG_VOLUME.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: role.config_map_name(name),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    if mounts_tls {
        volumes.push(Volume {
            name: TLS_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(certificates::role_tls_secret(name, role)),
                // Readable by the broker's user only (fsGroup makes it the group owner).
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    let mut claims = None;
    match &spec.storage {
        ValidStorage::Ephemeral => volumes.push(Volume {
            name: DATA_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        }),
        ValidStorage::Persistent {
            size,
            storage_class_name,
        } => {
            claims = Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(DATA_VOLUME.to_owned()),
                    labels: Some(role.labels(name)),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                    storage_class_name: storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_owned(),
                            Quantity(size.clone()),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]);
        }
    }

    let pod_spec = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            ..PodSecurityContext::default()
        }),
        // Time for a broker to flush and hand over leadership before it is killed.
        termination_grace_period_seconds: Some(60),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
        affinity: spec.affinity.clone(),
        ..PodSpec::default()
    };

    StatefulSet {
        metadata: metadata(cluster, role.statefulset_name(name), role),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(role.headless_service_name(name)),
            // Controllers must all start together to elect a leader; brokers start one by
            // one so that a bad image or config stops at the first pod.
            pod_management_policy: Some(
                match role {
                    Role::Controller => "Parallel",
                    Role::Broker => "OrderedReady",
                }
                .to_owned(),
            ),
            selector: LabelSelector {
                match_labels: Some(role.selector_labels(name)),
                ..LabelSelector::default()
            },
            // The operator restarts outdated pods itself, one at a time and only while the
            // cluster is healthy (`roll`), in an order Kubernetes' own rolling update cannot follow.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_owned()),
                ..StatefulSetUpdateStrategy::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_scaled: Some(spec.pvc_retention.as_str().to_owned()),
                    when_deleted: Some("Retain".to_owned()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(role.labels(name)),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_owned(),
                        config_hash.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            volume_claim_templates: claims,
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka_cluster::validate::validate;
    use crate::yaml::to_multi_doc;
    use sluice_crd::{KafkaCluster, KafkaClusterSpec};

    const CLUSTER_ID: &str = "MkU3OEVBNTcwNTJENDM2Qg";

    fn valid(name: &str, spec: serde_json::Value) -> ValidCluster {
        let spec: KafkaClusterSpec = serde_json::from_value(spec).unwrap();
        let mut kc = KafkaCluster::new(name, spec);
        kc.metadata.namespace = Some("kafka".to_owned());
        kc.metadata.uid = Some("6f1e2d3c-0000-4000-8000-000000000001".to_owned());
        validate(&kc, "sluice-broker:test", "default").unwrap()
    }

    fn one_controller() -> ValidCluster {
        valid(
            "small",
            serde_json::json!({
                "controllers": {"replicas": 1, "storage": {"ephemeral": true}},
                "brokers": {"replicas": 1, "storage": {"ephemeral": true}},
            }),
        )
    }

    fn three_controllers() -> ValidCluster {
        valid(
            "prod",
            serde_json::json!({
                "image": "registry.example/sluice-broker:1.2.3",
                "controllers": {
                    "replicas": 3,
                    "storage": {"size": "5Gi"},
                    "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
                },
                "brokers": {
                    "replicas": 3,
                    "storage": {"size": "100Gi", "storageClassName": "fast-ssd"},
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                                  "limits": {"memory": "2Gi"}},
                    "nodeSelector": {"kubernetes.io/arch": "amd64"},
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "kafka",
                                     "effect": "NoSchedule"}],
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                         "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "prod",
                                                           "app.kubernetes.io/component": "broker"}}}}]}},
                },
                "config": {"log.retention.hours": "72", "num.partitions": "6",
                           "offsets.topic.replication.factor": "3",
                           "log.cleaner.regex": r"a\d+"},
            }),
        )
    }

    fn properties_of(desired: &Desired, role: Role) -> String {
        let suffix = format!("-{}-config", role.component());
        let cm = desired
            .config_maps
            .iter()
            .find(|cm| cm.metadata.name.as_ref().unwrap().ends_with(&suffix))
            .unwrap();
        cm.data.as_ref().unwrap()[PROPERTIES_FILE].clone()
    }

    /// The objects as a fresh cluster gets them, with `brokers` broker pods.
    fn fresh(cluster: &ValidCluster, brokers: i32) -> Desired {
        let counts = PodCounts {
            brokers,
            ..PodCounts::of(cluster)
        };
        let quorum = quorum_mode(cluster, false, counts.controllers);
        build(
            cluster,
            Inputs {
                cluster_id: CLUSTER_ID,
                counts,
                quorum,
                nodes: NodeTransport::Plaintext,
                tls: None,
            },
        )
    }

    #[test]
    fn one_controller_cluster() {
        let cluster = one_controller();
        let desired = fresh(&cluster, 1);
        insta::assert_snapshot!(
            "one_controller_objects",
            to_multi_doc(&desired.to_json().unwrap()).unwrap()
        );
        insta::assert_snapshot!(
            "one_controller_controller_properties",
            properties_of(&desired, Role::Controller)
        );
        insta::assert_snapshot!(
            "one_controller_broker_properties",
            properties_of(&desired, Role::Broker)
        );
    }

    #[test]
    fn three_controller_cluster() {
        let cluster = three_controllers();
        let desired = fresh(&cluster, 3);
        insta::assert_snapshot!(
            "three_controller_objects",
            to_multi_doc(&desired.to_json().unwrap()).unwrap()
        );
        insta::assert_snapshot!(
            "three_controller_controller_properties",
            properties_of(&desired, Role::Controller)
        );
        insta::assert_snapshot!(
            "three_controller_broker_properties",
            properties_of(&desired, Role::Broker)
        );
    }

    #[test]
    fn secured_cluster() {
        let cluster = valid(
            "secure",
            serde_json::json!({
                "controllers": {"replicas": 1},
                "brokers": {"replicas": 2},
                "listeners": [
                    {"name": "scram", "port": 9092, "tls": true, "authentication": "scram-sha-512"},
                    {"name": "mtls", "port": 9094, "tls": true, "authentication": "tls"},
                    {"name": "own", "port": 9096, "tls": true, "certificateSecret": "own-cert"},
                    {"name": "plain", "port": 9097},
                ],
                "authorization": {"superUsers": ["User:admin"]},
            }),
        );
        let counts = PodCounts::of(&cluster);
        let tls = TlsMaterial {
            cluster_ca: crate::pki::Ca {
                cert_pem: "CLUSTER-CA".to_owned(),
                key_pem: "CLUSTER-CA-KEY".to_owned(),
            },
            clients_ca: crate::pki::Ca {
                cert_pem: "CLIENTS-CA".to_owned(),
                key_pem: "CLIENTS-CA-KEY".to_owned(),
            },
            node_keystores: Role::ALL
                .into_iter()
                .map(|r| (r, format!("{}-KEYSTORE", r.component())))
                .collect(),
            listener_keystores: [("own".to_owned(), "OWN-KEYSTORE".to_owned())].into(),
        };
        let desired = build(
            &cluster,
            Inputs {
                cluster_id: CLUSTER_ID,
                counts,
                quorum: quorum_mode(&cluster, false, counts.controllers),
                nodes: NodeTransport::MutualTls,
                tls: Some(&tls),
            },
        );
        insta::assert_snapshot!(
            "secured_broker_properties",
            properties_of(&desired, Role::Broker)
        );
        insta::assert_snapshot!(
            "secured_controller_properties",
            properties_of(&desired, Role::Controller)
        );
        let names: Vec<&str> = desired
            .secrets
            .iter()
            .filter_map(|s| s.metadata.name.as_deref())
            .collect();
        assert_eq!(
            names,
            [
                "secure-cluster-ca-cert",
                "secure-controller-tls",
                "secure-broker-tls"
            ]
        );
        // No CA key is ever in a Secret the pods mount or clients read.
        for s in &desired.secrets {
            for (key, value) in s.data.as_ref().unwrap() {
                let text = String::from_utf8_lossy(&value.0);
                assert!(!text.contains("CA-KEY"), "{key} of {:?}", s.metadata.name);
            }
        }
        let broker_files: Vec<&String> = desired.secrets[2].data.as_ref().unwrap().keys().collect();
        assert_eq!(
            broker_files,
            [
                "clients-ca.crt",
                "cluster-ca.crt",
                "listener-own.pem",
                "node.pem"
            ]
        );
        let sts = &desired.stateful_sets[1];
        let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let ports: Vec<(String, i32)> = pod.containers[0]
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| (p.name.clone().unwrap(), p.container_port))
            .collect();
        assert_eq!(
            ports,
            [
                ("scram".to_owned(), 9092),
                ("mtls".to_owned(), 9094),
                ("own".to_owned(), 9096),
                ("plain".to_owned(), 9097),
                ("replication".to_owned(), 9091),
                ("health".to_owned(), 9095),
            ]
        );
        let mounts = pod.containers[0].volume_mounts.as_ref().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == TLS_MOUNT && m.read_only == Some(true))
        );
        // The bootstrap Service offers the client listeners only.
        let bootstrap = desired.services.last().unwrap();
        let service_ports: Vec<i32> = bootstrap
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(service_ports, [9092, 9094, 9096, 9097]);
    }

    #[test]
    fn nodes_in_the_clear_replicate_over_the_listener_without_security() {
        let cluster = valid(
            "old",
            serde_json::json!({
                "listeners": [
                    {"name": "tls", "port": 9094, "tls": true},
                    {"name": "plain", "port": 9092},
                ],
            }),
        );
        let counts = PodCounts::of(&cluster);
        let render = |c: &ValidCluster| {
            let tls = None;
            let desired = build(
                c,
                Inputs {
                    cluster_id: CLUSTER_ID,
                    counts,
                    quorum: QuorumMode::Static,
                    nodes: NodeTransport::Plaintext,
                    tls,
                },
            );
            properties_of(&desired, Role::Broker)
        };
        assert!(render(&cluster).contains("\ninter.broker.listener.name=PLAIN\n"));
        // Kafka's default (the first listener) needs no line.
        assert!(!render(&one_controller()).contains("inter.broker.listener.name"));
    }

    #[test]
    fn every_object_is_owned_and_labelled() {
        let desired = fresh(&three_controllers(), 3);
        let objects = desired.to_json().unwrap();
        assert_eq!(objects.len(), 9);
        for object in objects {
            let meta = &object["metadata"];
            let owners = meta["ownerReferences"].as_array().unwrap();
            assert_eq!(owners.len(), 1, "{meta}");
            assert_eq!(owners[0]["kind"], "KafkaCluster");
            assert_eq!(owners[0]["controller"], true);
            assert_eq!(meta["namespace"], "kafka");
            assert_eq!(meta["labels"]["app.kubernetes.io/instance"], "prod");
            assert_eq!(
                meta["labels"]["app.kubernetes.io/managed-by"],
                "sluice-operator"
            );
        }
    }

    #[test]
    fn config_change_changes_only_the_pod_template_hash() {
        let before = three_controllers();
        let mut after = before.clone();
        after
            .config
            .insert("log.retention.hours".to_owned(), "24".to_owned());
        let hash = |c: &ValidCluster| -> Vec<String> {
            fresh(c, 3)
                .stateful_sets
                .iter()
                .map(|s| {
                    s.spec
                        .as_ref()
                        .unwrap()
                        .template
                        .metadata
                        .as_ref()
                        .unwrap()
                        .annotations
                        .as_ref()
                        .unwrap()[CONFIG_HASH_ANNOTATION]
                        .clone()
                })
                .collect()
        };
        let (a, b) = (hash(&before), hash(&after));
        assert_ne!(a[0], b[0], "controller pods roll");
        assert_ne!(a[1], b[1], "broker pods roll");
        assert_eq!(hash(&before), a, "rendering is deterministic");
        // A key the brokers take live, and the controller count, roll nothing.
        let mut live = before.clone();
        live.config
            .insert("log.retention.ms".to_owned(), "1000".to_owned());
        live.controllers.replicas = 5;
        assert_eq!(hash(&live), a);
        let text = properties_of(&fresh(&live, 3), Role::Broker);
        assert!(!text.contains("log.retention.ms"), "{text}");
        assert!(
            text.contains("demo-controller-4") || text.contains("prod-controller-4"),
            "{text}"
        );
    }

    fn args_of(sts: &StatefulSet) -> Vec<String> {
        let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        pod.containers[0].args.clone().unwrap()
    }

    #[test]
    fn the_quorum_is_dynamic_unless_it_was_static_or_controllers_keep_no_data() {
        let prod = three_controllers();
        assert_eq!(
            quorum_mode(&prod, false, 3),
            QuorumMode::Dynamic { controller_pods: 3 }
        );
        assert_eq!(quorum_mode(&prod, true, 3), QuorumMode::Static);
        assert_eq!(quorum_mode(&one_controller(), false, 1), QuorumMode::Static);
        let desired = fresh(&prod, 3);
        let args = args_of(&desired.stateful_sets[0]);
        assert_eq!(args[1], "--initial-controllers");
        assert!(
            args[2].starts_with("1000@prod-controller-0.prod-controllers.kafka.svc:9093:"),
            "{args:?}"
        );
        let broker_args = args_of(&desired.stateful_sets[1]);
        assert_eq!(broker_args.len(), 1);
    }

    #[test]
    fn broker_replicas_come_from_the_argument() {
        let desired = fresh(&three_controllers(), 5);
        let replicas: Vec<i32> = desired
            .stateful_sets
            .iter()
            .map(|s| s.spec.as_ref().unwrap().replicas.unwrap())
            .collect();
        assert_eq!(replicas, [3, 5]);
    }

    #[test]
    fn objects_deserialize_as_their_kubernetes_types() {
        // The YAML `render` prints must read back as the typed objects, field for field.
        let desired = fresh(&three_controllers(), 3);
        let text = to_multi_doc(&desired.to_json().unwrap()).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        assert_eq!(docs, desired.to_json().unwrap());
    }
}
