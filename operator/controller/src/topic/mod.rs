//! The Topic reconciler, one module per stage: [`read`] what exists (the KafkaCluster, the other
//! Topics, the topic on the brokers), [`validate`] the resource, [`build`] the plan from desired
//! and actual state, [`apply`] it with admin calls, and write the [`status`]. [`delete`] is what
//! the finalizer does when the resource goes.
//!
//! The resource is the source of truth one way: what the spec names is put back on every
//! resync; topics no Topic names are never touched.

pub mod apply;
pub mod build;
pub mod delete;
pub mod read;
pub mod status;
pub mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use sluice_crd::{KafkaCluster, Topic, TopicStatus};

use self::build::{Partitions, Plan};
use self::read::ClusterState;
use self::status::{Observation, Problem, Reason, Seen, TopicSummary};
pub use crate::context::Context;
use crate::error::Error;

/// The `kind` label of this reconciler's metrics.
pub const KIND: &str = "Topic";
/// Held by every Topic until the topic is deleted from the brokers (or kept, or its cluster
/// is gone).
pub const FINALIZER: &str = "sluice.dev/delete-topic";

fn key(topic: &Topic) -> String {
    format!(
        "{}/{}",
        topic.namespace().unwrap_or_default(),
        topic.name_any()
    )
}

/// Reconciles one Topic; the controller calls this on every change and every resync.
pub async fn reconcile(topic: Arc<Topic>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_with_finalizer(topic.clone(), &ctx).await;
    ctx.metrics.record(KIND, started.elapsed(), result.is_err());
    if result.is_ok() {
        ctx.reset_backoff(&key(&topic));
    }
    result
}

/// Retries a failed reconcile with exponential backoff (5 s doubling to 5 min).
pub fn error_policy(topic: Arc<Topic>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.next_backoff(&key(&topic));
    tracing::warn!(topic = %key(&topic), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_with_finalizer(topic: Arc<Topic>, ctx: &Context) -> Result<Action, Error> {
    let namespace = topic.namespace().ok_or(Error::MissingField {
        kind: KIND,
        field: "metadata.namespace",
    })?;
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &namespace);
    let object = key(&topic);
    let api_ref = &api;
    finalizer::finalizer(&api, FINALIZER, topic, |event| async move {
        match event {
            FinalizerEvent::Apply(topic) => reconcile_topic(&topic, api_ref, ctx).await,
            FinalizerEvent::Cleanup(topic) => delete::cleanup(&topic, ctx).await,
        }
    })
    .await
    .map_err(|e| crate::context::finalizer_error(e, KIND, FINALIZER, object))
}

async fn reconcile_topic(topic: &Topic, api: &Api<Topic>, ctx: &Context) -> Result<Action, Error> {
    let namespace = topic.namespace().unwrap_or_default();
    let client = &ctx.client;
    let generation = topic.metadata.generation;
    let resync = Action::requeue(ctx.settings.resync_interval);
    let report = |seen: Seen, problems: Vec<Problem>| Observation {
        generation,
        topic: seen,
        problems,
    };

    // validate: nothing is asked of the brokers for a spec that cannot be applied.
    let valid = match validate::validate(topic) {
        Ok(valid) => valid,
        Err(errors) => {
            let message = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            let problem = Problem::new(Reason::InvalidSpec, message);
            write_status(ctx, topic, api, report(Seen::Unknown, vec![problem])).await?;
            // Nothing to retry: a fix to the spec triggers the next reconcile.
            return Ok(resync);
        }
    };
    let name = valid.name.as_str();

    // read: the cluster, and whether another Topic already manages this Kafka topic
    let kc = match read::cluster(client, &namespace, &valid.cluster).await? {
        ClusterState::Present(kc) => kc,
        ClusterState::Missing => {
            let problem = Problem::new(
                Reason::ClusterNotFound,
                format!(
                    "KafkaCluster {} does not exist in namespace {namespace}: create it or fix \
                     spec.clusterRef.name",
                    valid.cluster
                ),
            );
            write_status(ctx, topic, api, report(Seen::Unknown, vec![problem])).await?;
            // The KafkaCluster watch triggers a reconcile once it appears.
            return Ok(resync);
        }
        ClusterState::Deleting => {
            let problem = Problem::new(
                Reason::ClusterDeleting,
                format!(
                    "KafkaCluster {} is being deleted; topic '{name}' is left as it is",
                    valid.cluster
                ),
            );
            write_status(ctx, topic, api, report(Seen::Unknown, vec![problem])).await?;
            return Ok(resync);
        }
    };
    let others = read::other_topics(client, topic).await?;
    if let Some(owner) = read::earlier_claimant(topic, &others) {
        let problem = Problem::new(
            Reason::Conflict,
            format!(
                "Topic {} already manages Kafka topic '{name}' of KafkaCluster {}; this one \
                 changes nothing: delete it, or set another spec.topicName",
                owner.name_any(),
                valid.cluster
            ),
        );
        write_status(ctx, topic, api, report(Seen::Unknown, vec![problem])).await?;
        return Ok(resync);
    }

    // read: the topic on the brokers
    let observed = async {
        let endpoint = read::endpoint(&ctx.client, &ctx.settings, &kc, &namespace).await?;
        let bootstrap = endpoint.to_string();
        let admin = read::connect(&endpoint).await?;
        let actual = read::topic(&admin, &bootstrap, name).await?;
        Ok::<_, Error>((admin, actual, bootstrap))
    }
    .await;
    let (admin, actual, bootstrap) = match observed {
        Ok(observed) => observed,
        Err(e) => {
            let problem = Problem::new(
                Reason::ClusterUnreachable,
                format!("cannot read topic '{name}' from the brokers (retrying): {e}"),
            );
            write_status(ctx, topic, api, report(Seen::Unknown, vec![problem])).await?;
            return Err(e);
        }
    };
    if let Some(actual) = actual.as_ref().filter(|a| a.info.internal) {
        let problem = Problem::new(
            Reason::InternalTopic,
            format!("the brokers report '{name}' as an internal topic; it is left alone"),
        );
        let seen = Seen::Present(TopicSummary::of(&actual.info));
        write_status(ctx, topic, api, report(seen, vec![problem])).await?;
        return Ok(resync);
    }

    // build
    let plan = build::plan(&valid, actual.as_ref());
    let mut problems = Vec::new();
    if let Plan::Update(update) = &plan {
        if let Partitions::BelowActual { spec, actual } = update.partitions {
            problems.push(Problem::new(
                Reason::PartitionsBelowActual,
                format!(
                    "topic '{name}' has {actual} partitions but spec.partitions is {spec}; \
                     Kafka cannot remove partitions: set spec.partitions to {actual}"
                ),
            ));
        }
        if let Some(m) = update.replication_mismatch {
            problems.push(Problem::new(
                Reason::ReplicationFactorMismatch,
                format!(
                    "topic '{name}' has replication factor {} but spec.replicationFactor is {}; \
                     changing it needs a partition reassignment, which the operator does not \
                     do: set spec.replicationFactor to {}, or recreate the topic",
                    m.actual, m.spec, m.actual
                ),
            ));
        }
    }

    // apply
    let applied = apply::apply(&admin, &bootstrap, name, &plan).await;
    let drift = topic.status.as_ref().and_then(|s| s.observed_generation) == generation;
    for change in &applied.changes {
        announce(ctx, topic, name, change, drift).await;
    }
    problems.extend(applied.rejected.iter().map(|message| {
        Problem::new(
            Reason::KafkaRejected,
            format!("the brokers refused a change (fix the spec): {message}"),
        )
    }));
    if let Some(e) = &applied.failed {
        problems.push(Problem::new(
            Reason::KafkaUnavailable,
            format!("changing topic '{name}' failed (retrying): {e}"),
        ));
    }

    // status: after a change, the brokers are asked again so that it shows what they have.
    let seen = if applied.changes.is_empty() {
        match &actual {
            Some(a) => Seen::Present(TopicSummary::of(&a.info)),
            None => Seen::Absent,
        }
    } else {
        match admin.describe_topic(name).await {
            Ok(Some(info)) => Seen::Present(TopicSummary::of(&info)),
            Ok(None) => Seen::Absent,
            Err(_) => Seen::Unknown,
        }
    };
    write_status(ctx, topic, api, report(seen, problems)).await?;
    match applied.failed {
        Some(e) => Err(e),
        None => Ok(resync),
    }
}

/// A Normal event for a change the operator made. A config change to a generation already
/// reconciled was made outside Kubernetes, so it is reported as reverted.
async fn announce(ctx: &Context, topic: &Topic, name: &str, change: &apply::Change, drift: bool) {
    let (reason, note) = match change {
        apply::Change::Created {
            partitions,
            replication_factor,
            configs,
        } => {
            let rf = replication_factor.map_or_else(
                || "the cluster's default replication factor".to_owned(),
                |rf| format!("replication factor {rf}"),
            );
            (
                "TopicCreated",
                format!(
                    "created topic '{name}' with {partitions} partitions, {rf} and {configs} \
                     config overrides"
                ),
            )
        }
        apply::Change::PartitionsAdded { from, to } => (
            "PartitionsAdded",
            format!("topic '{name}' grew from {from} to {to} partitions"),
        ),
        apply::Change::Config(changes) if changes.is_empty() => return,
        apply::Change::Config(changes) => {
            let list = changes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            if drift {
                (
                    "ConfigReverted",
                    format!("reverted config of topic '{name}' changed outside Kubernetes: {list}"),
                )
            } else {
                ("ConfigUpdated", format!("topic '{name}': {list}"))
            }
        }
    };
    tracing::info!(topic = %key(topic), reason, "{note}");
    ctx.event(topic, EventType::Normal, reason, note).await;
}

/// Computes and writes the status; a Warning event goes out when the problem reported changes.
async fn write_status(
    ctx: &Context,
    topic: &Topic,
    api: &Api<Topic>,
    obs: Observation,
) -> Result<(), Error> {
    let previous = topic.status.as_ref();
    let new = status::compute(previous, &obs, k8s_openapi::jiff::Timestamp::now());
    status::patch(api, &topic.name_any(), previous, &new).await?;
    let degraded = |s: Option<&TopicStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == status::DEGRADED))
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    if let Some(first) = obs.problems.first()
        && degraded(previous) != degraded(Some(&new))
    {
        let message = obs
            .problems
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        tracing::info!(topic = %key(topic), reason = first.reason.as_str(), %message);
        ctx.event(topic, EventType::Warning, first.reason.as_str(), message)
            .await;
    }
    Ok(())
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The controller: Topics, plus their KafkaClusters (a cluster that appears, changes or goes
/// triggers the Topics naming it). Fails at once if the CRDs are not installed.
async fn controller(ctx: &Context, namespace: Option<&str>) -> Result<Controller<Topic>, Error> {
    let topics: Api<Topic> = api(&ctx.client, namespace);
    topics
        .list(&kube::api::ListParams::default().limit(1))
        .await?;
    let clusters: Api<KafkaCluster> = api(&ctx.client, namespace);
    clusters
        .list(&kube::api::ListParams::default().limit(1))
        .await?;
    let controller = Controller::new(topics, watcher::Config::default());
    let store = controller.store();
    Ok(
        controller.watches(clusters, watcher::Config::default(), move |kc| {
            let namespace = kc.namespace();
            let name = kc.name_any();
            store
                .state()
                .into_iter()
                .filter(|t| t.namespace() == namespace && t.spec.cluster_ref.name == name)
                .map(|t| ObjectRef::from_obj(&*t))
                .collect::<Vec<_>>()
        }),
    )
}

/// Runs the Topic controller until `shutdown` completes, then lets running reconciles finish.
/// `namespace` limits it to one namespace; `None` watches all. Calls `on_started` once the
/// watches are set up.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    on_started: impl FnOnce(),
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let controller = controller(&ctx, namespace)
        .await?
        .graceful_shutdown_on(shutdown);
    on_started();
    drive(controller, ctx).await;
    Ok(())
}

async fn drive(controller: Controller<Topic>, ctx: Arc<Context>) {
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(topic = %object, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
            }
        })
        .await;
}
