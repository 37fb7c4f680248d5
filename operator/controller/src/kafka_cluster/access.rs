//! How the operator reaches a cluster's brokers, for its own admin requests (day-2 steps, Topics,
//! KafkaUsers): over the brokers' `REPLICATION` listener with its own client certificate when the
//! nodes use mutual TLS, else over the first listener without TLS or authentication.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, ResourceExt};
use sluice_crd::KafkaCluster;

use super::certificates;
use super::properties::{NodeTransport, is_mutual_tls};
use super::role::{
    PROPERTIES_FILE, Role, listener_bootstrap_servers, replication_bootstrap_servers,
};
use super::validate::{FieldError, ValidCluster};
use crate::error::Error;
use crate::inspector::Endpoint;

/// The bootstrap address the operator dials (before `--bootstrap-override`).
pub fn operator_bootstrap(
    cluster: &ValidCluster,
    nodes: NodeTransport,
) -> Result<String, FieldError> {
    match nodes {
        NodeTransport::MutualTls => Ok(replication_bootstrap_servers(
            &cluster.name,
            &cluster.namespace,
        )),
        NodeTransport::Plaintext => cluster
            .listeners
            .iter()
            .find(|l| l.protocol() == "PLAINTEXT")
            .map(|l| listener_bootstrap_servers(&cluster.name, &cluster.namespace, l.port))
            .ok_or_else(|| FieldError {
                field: "spec.listeners".to_owned(),
                message: "this cluster was created without security, so its nodes talk in the clear and \
                          the operator reaches it through a listener without TLS or authentication: keep \
                          one (or create a new cluster with security, whose nodes use mutual TLS)"
                    .to_owned(),
            }),
    }
}

/// Checks what the spec asks against how the nodes of the running cluster talk: authorization
/// needs the nodes told apart from clients, which only mutual TLS does.
pub fn check(cluster: &ValidCluster, nodes: NodeTransport) -> Result<(), FieldError> {
    if cluster.authorization.is_some() && nodes == NodeTransport::Plaintext {
        return Err(FieldError {
            field: "spec.authorization".to_owned(),
            message: "this cluster was created without security: its nodes talk in the clear and \
                      could not be told from clients. Authorization needs a cluster created with \
                      security (a TLS or authenticated listener, or authorization), whose nodes use \
                      mutual TLS"
                .to_owned(),
        });
    }
    operator_bootstrap(cluster, nodes).map(|_| ())
}

/// The endpoint for `cluster`, its nodes talking as `nodes`.
pub async fn endpoint_for(
    client: &Client,
    cluster: &ValidCluster,
    nodes: NodeTransport,
    bootstrap_override: Option<&str>,
) -> Result<Endpoint, Error> {
    let bootstrap = match bootstrap_override {
        Some(addr) => addr.to_owned(),
        None => {
            operator_bootstrap(cluster, nodes).map_err(|e| Error::Invalid(vec![e.to_string()]))?
        }
    };
    let security = match nodes {
        NodeTransport::Plaintext => Default::default(),
        NodeTransport::MutualTls => {
            certificates::operator_security(client, &cluster.namespace, &cluster.name).await?
        }
    };
    Ok(Endpoint {
        bootstrap,
        security,
    })
}

/// How the nodes of a running cluster talk, from its controllers' rendered ConfigMap; `None`
/// before the cluster has one.
pub async fn rendered_transport(
    client: &Client,
    namespace: &str,
    cluster: &str,
) -> Result<Option<NodeTransport>, Error> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = config_maps
        .get_opt(&Role::Controller.config_map_name(cluster))
        .await?;
    Ok(cm
        .as_ref()
        .and_then(|cm| cm.data.as_ref())
        .and_then(|d| d.get(PROPERTIES_FILE))
        .map(|text| transport_of(text)))
}

/// How the nodes of a rendered file talk.
pub fn transport_of(text: &str) -> NodeTransport {
    if is_mutual_tls(text) {
        NodeTransport::MutualTls
    } else {
        NodeTransport::Plaintext
    }
}

/// The endpoint of a running `KafkaCluster`, for the Topic and KafkaUser reconcilers.
pub async fn endpoint(
    client: &Client,
    kc: &KafkaCluster,
    namespace: &str,
    default_image: &str,
    bootstrap_override: Option<&str>,
) -> Result<Endpoint, Error> {
    let cluster = super::validate::validate(kc, default_image, namespace)
        .map_err(|errors| Error::Invalid(errors.iter().map(ToString::to_string).collect()))?;
    let nodes = rendered_transport(client, namespace, &kc.name_any())
        .await?
        .unwrap_or(NodeTransport::Plaintext);
    endpoint_for(client, &cluster, nodes, bootstrap_override).await
}
