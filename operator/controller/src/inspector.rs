//! What the operator needs to ask a running Kafka cluster, behind a trait so that the reconciler
//! does not depend on a particular client.

use std::collections::BTreeMap;
use std::future::Future;

use crate::error::Error;

/// Questions the reconciler asks the cluster itself (not the Kubernetes API).
pub trait ClusterInspector: Send + Sync + 'static {
    /// For each of `broker_ids`, the topics that have a partition replica on that broker, sorted
    /// and without duplicates. Every requested id is a key; a broker hosting nothing maps to an
    /// empty list. `bootstrap` is a `host:port` list as in `bootstrap.servers`.
    fn partitions_on_brokers(
        &self,
        bootstrap: &str,
        broker_ids: &[i32],
    ) -> impl Future<Output = Result<BTreeMap<i32, Vec<String>>, Error>> + Send;
}

/// The production inspector: asks the brokers over the Kafka protocol.
#[derive(Debug, Clone, Default)]
pub struct KafkaAdminInspector;

impl ClusterInspector for KafkaAdminInspector {
    async fn partitions_on_brokers(
        &self,
        bootstrap: &str,
        broker_ids: &[i32],
    ) -> Result<BTreeMap<i32, Vec<String>>, Error> {
        metadata_partitions_on_brokers(bootstrap, broker_ids).await
    }
}

/// Where the `sluice-kafka-admin` client plugs in: a Metadata request for all topics, then, for
/// each partition, its replica list intersected with `broker_ids`.
///
/// Until that crate is wired in, this fails, and a failure blocks broker scale-down (the safe
/// direction: no broker that may hold data is removed).
pub async fn metadata_partitions_on_brokers(
    bootstrap: &str,
    _broker_ids: &[i32],
) -> Result<BTreeMap<i32, Vec<String>>, Error> {
    Err(Error::Inspect {
        bootstrap: bootstrap.to_owned(),
        reason: "this build has no Kafka admin client (sluice-kafka-admin is not wired in yet), \
                 so it cannot tell which brokers hold partitions"
            .to_owned(),
    })
}
