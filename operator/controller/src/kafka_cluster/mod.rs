//! The KafkaCluster reconciler, one module per stage: [`read`] what exists, [`validate`] the
//! resource, [`build`] the desired objects, [`apply`] them, and compute the [`status`].
//! [`scale_down`] decides how many brokers may run while a scale-down waits for data to move.

pub mod apply;
pub mod build;
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

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_crd::{KafkaCluster, KafkaClusterStatus, OperationStatus};

use self::apply::Outcome;
use self::build::PodCounts;
use self::properties::QuorumMode;
use self::role::{
    CONTROLLER_NODE_ID_OFFSET, CONTROLLER_PORT, MANAGED_BY, Role, bootstrap_servers, quorum_voters,
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

/// What every reconcile shares.
pub struct Context<I> {
    pub client: Client,
    pub settings: Settings,
    pub inspector: I,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Consecutive failures per cluster (`ns/name`), for the retry backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl<I: ClusterInspector> Context<I> {
    pub fn new(client: Client, settings: Settings, inspector: I, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: MANAGED_BY.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            inspector,
            metrics,
            failures: Mutex::default(),
        }
    }

    /// Retry delay after another failure of `key`: 5 s doubling to 5 min.
    fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        backoff(*n)
    }

    fn reset_backoff(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    async fn event(&self, kc: &KafkaCluster, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            // The Events API caps a note at 1 kB.
            note: Some(truncate(note, 1000)),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &kc.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }
}

/// Delay before retry number `failures` (1-based).
pub fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
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
    let cluster = match validate::validate(kc, &ctx.settings.broker_image, &namespace) {
        Ok(cluster) => cluster,
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

    let bootstrap = bootstrap_servers(&name, &namespace);
    let reach = ctx
        .settings
        .bootstrap_override
        .clone()
        .unwrap_or_else(|| bootstrap.clone());
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
    let desired = build::build(&cluster, &cluster_id, counts, quorum_mode);
    let mut changes = Vec::new();
    let applied = async {
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

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo".to_owned(), 2), "h");
        assert_eq!(truncate("abc".to_owned(), 10), "abc");
    }
}
