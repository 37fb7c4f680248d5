//! `sluice-operator render`: what the operator would apply for a KafkaCluster file, without a
//! cluster. It runs the same `validate` and `build` stages as the reconciler.

use serde_json::Value;
use sluice_crd::KafkaCluster;

use crate::error::Error;
use crate::kafka_cluster::properties::NodeTransport;
use crate::kafka_cluster::{build, status, validate};
use crate::yaml::to_multi_doc;

#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Namespace for a resource that names none.
    pub namespace: String,
    /// Image for a resource that names none.
    pub broker_image: String,
    /// Cluster id to render; else the file's `status.clusterId`, else a new random one.
    pub cluster_id: Option<String>,
}

/// Reads the first document of `yaml`, which must be a KafkaCluster, and renders every object
/// as a multi-document YAML stream.
pub fn render(yaml: &str, options: &RenderOptions) -> Result<String, Error> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)?;
    let doc = docs
        .into_iter()
        .find(|d| !d.is_null())
        .ok_or_else(|| Error::Invalid(vec!["the file holds no YAML document".to_owned()]))?;
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != "KafkaCluster" {
        return Err(Error::Invalid(vec![format!(
            "kind: expected KafkaCluster, found {kind:?}"
        )]));
    }
    let kc: KafkaCluster =
        serde_json::from_value(doc).map_err(|e| Error::json("KafkaCluster", e))?;
    let cluster = validate::validate(&kc, &options.broker_image, &options.namespace)
        .map_err(|errors| Error::Invalid(errors.iter().map(ToString::to_string).collect()))?;
    let cluster_id = options
        .cluster_id
        .clone()
        .or_else(|| kc.status.as_ref().and_then(|s| s.cluster_id.clone()))
        .unwrap_or_else(status::new_cluster_id);
    let counts = build::PodCounts::of(&cluster);
    let quorum = build::quorum_mode(&cluster, false, counts.controllers);
    // A file rendered on its own is a new cluster: its nodes use mutual TLS if it asks for any
    // security. The certificates are made when the operator runs; here their Secrets are left out.
    let nodes = if cluster.wants_security() {
        NodeTransport::MutualTls
    } else {
        NodeTransport::Plaintext
    };
    let desired = build::build(
        &cluster,
        build::Inputs {
            cluster_id: &cluster_id,
            counts,
            quorum,
            nodes,
            tls: None,
        },
    );
    to_multi_doc(&desired.to_json()?)
}
