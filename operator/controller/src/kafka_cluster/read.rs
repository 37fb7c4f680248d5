//! The first stage: fetch what already exists for a cluster. The `KafkaCluster` itself comes
//! from the controller's watch; this reads the objects it owns.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};

use super::properties::cluster_id_of;
use super::role::{PROPERTIES_FILE, Role};
use crate::error::Error;

/// The owned objects the reconciler decides on.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub controllers: Option<StatefulSet>,
    pub brokers: Option<StatefulSet>,
    /// The `cluster.id` in an existing ConfigMap: if the status was lost (say, the resource was
    /// restored from a backup without status), the id the data volumes carry is reused rather
    /// than replaced.
    pub rendered_cluster_id: Option<String>,
}

impl Observed {
    pub fn stateful_set(&self, role: Role) -> Option<&StatefulSet> {
        match role {
            Role::Controller => self.controllers.as_ref(),
            Role::Broker => self.brokers.as_ref(),
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
    for role in Role::ALL {
        if let Some(cm) = config_maps.get_opt(&role.config_map_name(name)).await?
            && let Some(text) = cm.data.as_ref().and_then(|d| d.get(PROPERTIES_FILE))
        {
            rendered_cluster_id = cluster_id_of(text);
            if rendered_cluster_id.is_some() {
                break;
            }
        }
    }
    Ok(Observed {
        controllers,
        brokers,
        rendered_cluster_id,
    })
}
