//! The KafkaCluster reconciler, one module per stage: [`read`] what exists, [`validate`] the
//! resource, [`build`] the desired objects, [`apply`] them, and compute the [`status`].
//! [`scale_down`] decides how many brokers may run while a scale-down waits for data to move.

pub mod access;
pub mod apply;
pub mod build;
pub mod certificates;
pub mod live_config;
pub mod moves;
pub mod operations;
pub mod properties;
pub mod quorum;
pub mod read;
pub mod role;
pub mod roll;
pub mod scale_down;
pub mod status;
pub mod validate;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_crd::{KafkaCluster, KafkaClusterStatus, ListenerStatus, OperationStatus};

use self::apply::Outcome;
use self::build::PodCounts;
use self::properties::{NodeTransport, QuorumMode};
use self::role::{
    CONTROLLER_NODE_ID_OFFSET, CONTROLLER_PORT, MANAGED_BY, Role, bootstrap_servers,
    listener_bootstrap_servers, quorum_voters,
};
use self::scale_down::BrokerCount;
use self::status::{Observation, Problem, RoleState};
use crate::error::Error;
use crate::inspector::ClusterInspector;
use crate::metrics::Metrics;

/// The `kind` label of this reconciler's metrics.
pub const KIND: &str = "KafkaCluster";
/// How soon to look again while a scale-down is blocked (or its brokers are being drained).
const BLOCKED_RECHECK: Duration = Duration::from_secs(10);
const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Operator-wide settings from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Image for clusters that name none.
    pub broker_image: String,
    /// Reconcile every cluster at least this often, even if nothing changed.
    pub resync_interval: Duration,
    /// Bootstrap address to reach every cluster at instead of its Service (for an operator
    /// running outside the cluster, and tests).
    pub bootstrap_override: Option<String>,
}

/// What every reconcile shares: the context of every controller, and the inspector that asks the
/// Kafka cluster itself.
pub struct Context<I> {
    pub base: crate::context::Context,
    pub inspector: I,
}

impl<I: ClusterInspector> Context<I> {
    pub fn new(client: Client, settings: Settings, inspector: I, metrics: Arc<Metrics>) -> Self {
        Context {
            base: crate::context::Context::new(client, settings, metrics),
            inspector,
        }
    }
}

impl<I> std::ops::Deref for Context<I> {
    type Target = crate::context::Context;

    fn deref(&self) -> &crate::context::Context {
        &self.base
    }
}

/// Delay before retry number `failures` (1-based).
pub fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

fn key(kc: &KafkaCluster) -> String {
    format!("{}/{}", kc.namespace().unwrap_or_default(), kc.name_any())
}

/// Reconciles one cluster; the controller calls this on every change and every resync.
pub async fn reconcile<I: ClusterInspector>(
    kc: Arc<KafkaCluster>,
    ctx: Arc<Context<I>>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_cluster(&kc, &ctx).await;
    ctx.metrics.record(KIND, started.elapsed(), result.is_err());
    if result.is_ok() {
        ctx.reset_backoff(&key(&kc));
    }
    result
}

/// Retries a failed reconcile with exponential backoff.
pub fn error_policy<I: ClusterInspector>(
    kc: Arc<KafkaCluster>,
    error: &Error,
    ctx: Arc<Context<I>>,
) -> Action {
    let delay = ctx.next_backoff(&key(&kc));
    tracing::warn!(cluster = %key(&kc), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_cluster<I: ClusterInspector>(
    kc: &KafkaCluster,
    ctx: &Context<I>,
) -> Result<Action, Error> {
    let namespace = kc.namespace().ok_or(Error::MissingField {
        kind: KIND,
        field: "metadata.namespace",
    })?;
    let name = kc.name_any();
    let client = &ctx.client;
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &namespace);
    let previous = kc.status.clone();
    let generation = kc.metadata.generation;
    let resync = Action::requeue(ctx.settings.resync_interval);

    // read
    let observed = read::read(client, &namespace, &name).await?;
    let role_state = |role: Role, desired: i32, target: i32| {
        RoleState::new(desired, target, observed.stateful_set(role))
    };

    // validate
    // How the nodes talk is fixed when the cluster is created (see `NodeTransport`).
    let validated = validate::validate(kc, &ctx.settings.broker_image, &namespace).and_then(|c| {
        let nodes = observed.node_transport.unwrap_or(if c.wants_security() {
            NodeTransport::MutualTls
        } else {
            NodeTransport::Plaintext
        });
        access::check(&c, nodes).map_err(|e| vec![e])?;
        Ok((c, nodes))
    });
    let (cluster, nodes) = match validated {
        Ok(valid) => valid,
        Err(errors) => {
            let message = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            tracing::info!(cluster = %key(kc), %message, "invalid KafkaCluster");
            let current = |role| {
                let sts = observed.stateful_set(role);
                let n = sts
                    .and_then(|s| s.spec.as_ref())
                    .and_then(|s| s.replicas)
                    .unwrap_or(0);
                RoleState::new(n, n, sts)
            };
            let obs = Observation {
                generation,
                controllers: current(Role::Controller),
                brokers: current(Role::Broker),
                changed: false,
                problem: Some(Problem::InvalidSpec(message.clone())),
                cluster_id: None,
                bootstrap_servers: None,
                listeners: None,
                voters: None,
                operation: None,
                throttled_topics: None,
                pod_selector: pod_selector(&name),
            };
            let new = status::compute(previous.as_ref(), &obs, k8s_openapi::jiff::Timestamp::now());
            if status::patch(&clusters, &name, previous.as_ref(), &new).await? {
                ctx.event(kc, EventType::Warning, "InvalidSpec", message)
                    .await;
            }
            // Nothing to retry: a fix to the spec triggers the next reconcile.
            return Ok(resync);
        }
    };

    // The cluster id is persisted before anything is rendered with it, so that it never changes.
    let mut previous = previous;
    let cluster_id = match previous.as_ref().and_then(|s| s.cluster_id.clone()) {
        Some(id) => id,
        None => {
            let id = observed
                .rendered_cluster_id
                .clone()
                .unwrap_or_else(status::new_cluster_id);
            let with_id = KafkaClusterStatus {
                cluster_id: Some(id.clone()),
                ..previous.clone().unwrap_or_default()
            };
            status::patch(&clusters, &name, previous.as_ref(), &with_id).await?;
            previous = Some(with_id);
            id
        }
    };

    let listeners: Vec<ListenerStatus> = cluster
        .listeners
        .iter()
        .map(|l| ListenerStatus {
            name: l.name.clone(),
            bootstrap_servers: listener_bootstrap_servers(&name, &namespace, l.port),
        })
        .collect();
    let bootstrap = listeners
        .first()
        .map(|l| l.bootstrap_servers.clone())
        .unwrap_or_else(|| bootstrap_servers(&name, &namespace));
    // The certificate authorities exist before the operator dials the cluster with a certificate
    // of its own.
    let tls = certificates::ensure(client, &cluster, nodes, SystemTime::now()).await;
    let reach = access::endpoint_for(
        client,
        &cluster,
        nodes,
        ctx.settings.bootstrap_override.as_deref(),
    )
    .await?;
    let snapshot = operations::snapshot(ctx, &observed, &reach).await;
    let brokers = scale_down::broker_count(
        observed.current_broker_replicas(),
        cluster.brokers.replicas,
        snapshot.state().ok_or_else(|| snapshot.why_not()),
    );
    let static_quorum = build::fixed_voters(&cluster, observed.static_quorum);
    let controller_pods =
        operations::controller_pods(&cluster, &observed, &snapshot, static_quorum);
    let quorum_mode = build::quorum_mode(&cluster, observed.static_quorum, controller_pods);
    let fixed_quorum = (static_quorum
        && observed
            .current_replicas(Role::Controller)
            .is_some_and(|n| n != cluster.controllers.replicas))
    .then(|| {
        Problem::ControllersFixed(format!(
            "spec.controllers.replicas cannot change from {} to {}: this cluster's controllers have \
             fixed voters (it was created before the quorum could grow, or its controllers use \
             ephemeral storage)",
            controller_pods, cluster.controllers.replicas
        ))
    });

    // build + apply
    let counts = PodCounts {
        controllers: controller_pods,
        brokers: brokers.replicas(),
    };
    let mut changes = Vec::new();
    let applied = async {
        let tls = tls?;
        let desired = build::build(
            &cluster,
            build::Inputs {
                cluster_id: &cluster_id,
                counts,
                quorum: quorum_mode,
                nodes,
                tls: tls.as_ref(),
            },
        );
        apply_all(client, &namespace, &desired.secrets, &mut changes).await?;
        apply_all(client, &namespace, &desired.config_maps, &mut changes).await?;
        apply_all(client, &namespace, &desired.services, &mut changes).await?;
        apply_all(
            client,
            &namespace,
            &desired.pod_disruption_budgets,
            &mut changes,
        )
        .await?;
        apply_all(client, &namespace, &desired.stateful_sets, &mut changes).await
    }
    .await;
    if !changes.is_empty() {
        ctx.event(kc, EventType::Normal, "Applied", changes.join(", "))
            .await;
    }

    // day-2 steps, once the objects are as wanted
    let outcome = match &applied {
        Err(_) => None,
        Ok(()) => {
            let input = operations::StepInput {
                kc,
                cluster: &cluster,
                observed: &observed,
                snapshot: &snapshot,
                bootstrap: &reach,
                quorum_mode,
                previous: previous.as_ref(),
            };
            Some(operations::step(ctx, input).await.unwrap_or_else(|e| {
                operations::StepOutcome {
                    operation: Some(OperationStatus {
                        type_: "Failed".to_owned(),
                        message: e.to_string(),
                        partitions_to_move: None,
                        pods_to_restart: None,
                    }),
                    throttled_topics: previous
                        .as_ref()
                        .map(|p| p.throttled_topics.clone())
                        .unwrap_or_default(),
                }
            }))
        }
    };
    let operation = outcome.as_ref().and_then(|o| o.operation.clone());

    // status
    let problem = match (&applied, &brokers) {
        (Err(e), _) => Some(Problem::ApplyFailed(e.to_string())),
        (Ok(()), BrokerCount::Blocked { reason, .. }) => {
            Some(Problem::ScaleDownBlocked(reason.clone()))
        }
        (Ok(()), BrokerCount::Run(_)) => fixed_quorum,
    };
    let voters = match (quorum_mode, snapshot.state()) {
        (QuorumMode::Dynamic { .. }, Some(state)) => state
            .quorum
            .voters
            .iter()
            .map(|v| {
                let host =
                    Role::Controller.pod_host(&name, &namespace, v.id - CONTROLLER_NODE_ID_OFFSET);
                format!("{}@{host}:{CONTROLLER_PORT}", v.id)
            })
            .collect::<Vec<_>>()
            .join(","),
        _ => quorum_voters(&name, &namespace, cluster.controllers.replicas),
    };
    let obs = Observation {
        generation,
        controllers: role_state(
            Role::Controller,
            cluster.controllers.replicas,
            controller_pods,
        ),
        brokers: role_state(Role::Broker, cluster.brokers.replicas, brokers.replicas()),
        changed: !changes.is_empty(),
        problem: problem.clone(),
        cluster_id: Some(cluster_id),
        bootstrap_servers: Some(bootstrap),
        listeners: Some(listeners),
        voters: Some(voters),
        operation: operation.clone(),
        throttled_topics: outcome.map(|o| o.throttled_topics),
        pod_selector: pod_selector(&name),
    };
    let new = status::compute(previous.as_ref(), &obs, k8s_openapi::jiff::Timestamp::now());
    let status_changed = status::patch(&clusters, &name, previous.as_ref(), &new).await?;
    if status_changed && let Some(problem) = &problem {
        ctx.event(
            kc,
            EventType::Warning,
            problem.reason(),
            problem.message().to_owned(),
        )
        .await;
    }
    applied?;
    Ok(if operation.is_some() {
        Action::requeue(BLOCKED_RECHECK)
    } else {
        resync
    })
}

/// Selects every pod of the cluster, both roles.
fn pod_selector(cluster: &str) -> String {
    format!("app.kubernetes.io/name=sluice,app.kubernetes.io/instance={cluster}")
}

/// Applies each object, noting `"created ConfigMap x"`-style changes.
async fn apply_all<K>(
    client: &Client,
    namespace: &str,
    objects: &[K],
    changes: &mut Vec<String>,
) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    for object in objects {
        let verb = match apply::apply(&api, object).await? {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => continue,
        };
        let change = format!("{verb} {} {}", K::kind(&()), object.name_any());
        tracing::info!(namespace, "{change}");
        changes.push(change);
    }
    Ok(())
}

/// Runs the KafkaCluster controller until `shutdown` completes, then lets running reconciles
/// finish. `namespace` limits it to one namespace; `None` watches all. Fails at once if the CRD
/// is not installed; calls `on_started` once the watches are set up.
pub async fn run<I: ClusterInspector>(
    ctx: Arc<Context<I>>,
    namespace: Option<&str>,
    on_started: impl FnOnce(),
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let client = &ctx.client;
    let clusters: Api<KafkaCluster> = api(client, namespace);
    clusters.list(&ListParams::default().limit(1)).await?;
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    let controller = Controller::new(clusters, watcher::Config::default())
        .owns(api::<StatefulSet>(client, namespace), owned.clone())
        .owns(api::<ConfigMap>(client, namespace), owned.clone())
        .owns(api::<Service>(client, namespace), owned.clone())
        .owns(api::<PodDisruptionBudget>(client, namespace), owned)
        .graceful_shutdown_on(shutdown);
    on_started();
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(cluster = %object, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
            }
        })
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
