//! The first stage: fetch what already exists for a cluster. The `KafkaCluster` itself comes
//! from the controller's watch; this reads the objects it owns.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::properties::{NodeTransport, cluster_id_of, is_static_quorum};
use super::role::{PROPERTIES_FILE, Role};
use super::roll::{PodState, RolePods};
use crate::error::Error;

/// The label a StatefulSet puts on each pod: the revision it was created from.
const REVISION_LABEL: &str = "controller-revision-hash";

/// The owned objects the reconciler decides on.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub controllers: Option<StatefulSet>,
    pub brokers: Option<StatefulSet>,
    /// The `cluster.id` in an existing ConfigMap: if the status was lost (say, the resource was
    /// restored from a backup without status), the id the data volumes carry is reused rather
    /// than replaced.
    pub rendered_cluster_id: Option<String>,
    /// The controllers' ConfigMap lists fixed voters: the cluster predates growable quorums.
    pub static_quorum: bool,
    /// How the nodes talk, as the controllers' ConfigMap says; `None` before there is one.
    pub node_transport: Option<NodeTransport>,
    pub controller_pods: Vec<Pod>,
    pub broker_pods: Vec<Pod>,
}

impl Observed {
    pub fn stateful_set(&self, role: Role) -> Option<&StatefulSet> {
        match role {
            Role::Controller => self.controllers.as_ref(),
            Role::Broker => self.brokers.as_ref(),
        }
    }

    /// `spec.replicas` of a StatefulSet as it is now.
    pub fn current_replicas(&self, role: Role) -> Option<i32> {
        self.stateful_set(role)
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.replicas)
    }

    /// A role's pods as the roll decides on them.
    pub fn role_pods(&self, role: Role, cluster: &str) -> RolePods {
        let (sts, pods) = match role {
            Role::Controller => (self.controllers.as_ref(), &self.controller_pods),
            Role::Broker => (self.brokers.as_ref(), &self.broker_pods),
        };
        let prefix = format!("{}-", role.statefulset_name(cluster));
        RolePods {
            replicas: self.current_replicas(role).unwrap_or(0),
            update_revision: sts
                .and_then(|s| s.status.as_ref())
                .and_then(|s| s.update_revision.clone()),
            pods: pods
                .iter()
                .filter_map(|p| {
                    let name = p.name_any();
                    let ordinal = name.strip_prefix(&prefix)?.parse().ok()?;
                    Some(PodState {
                        ordinal,
                        ready: is_ready(p),
                        terminating: p.metadata.deletion_timestamp.is_some(),
                        revision: p.labels().get(REVISION_LABEL).cloned(),
                        name,
                    })
                })
                .collect(),
        }
    }

    /// `spec.replicas` of the broker StatefulSet as it is now.
    pub fn current_broker_replicas(&self) -> Option<i32> {
        self.brokers
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.replicas)
    }
}

pub async fn read(client: &Client, namespace: &str, name: &str) -> Result<Observed, Error> {
    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let controllers = stateful_sets
        .get_opt(&Role::Controller.statefulset_name(name))
        .await?;
    let brokers = stateful_sets
        .get_opt(&Role::Broker.statefulset_name(name))
        .await?;
    let mut rendered_cluster_id = None;
    let mut static_quorum = false;
    let mut node_transport = None;
    for role in Role::ALL {
        if let Some(cm) = config_maps.get_opt(&role.config_map_name(name)).await?
            && let Some(text) = cm.data.as_ref().and_then(|d| d.get(PROPERTIES_FILE))
        {
            static_quorum |= role == Role::Controller && is_static_quorum(text);
            if role == Role::Controller {
                node_transport = Some(super::access::transport_of(text));
            }
            if rendered_cluster_id.is_none() {
                rendered_cluster_id = cluster_id_of(text);
            }
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = |role: Role| {
        let selector = role
            .selector_labels(name)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods = pods.clone();
        async move { pods.list(&ListParams::default().labels(&selector)).await }
    };
    let controller_pods = list(Role::Controller).await?.items;
    let broker_pods = list(Role::Broker).await?.items;
    Ok(Observed {
        controllers,
        brokers,
        rendered_cluster_id,
        static_quorum,
        node_transport,
        controller_pods,
        broker_pods,
    })
}

/// The pod's `Ready` condition is true.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
