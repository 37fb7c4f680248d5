//! The day-2 steps of a reconcile, after the objects are applied: live config changes, the
//! controller quorum's voters, spreading partitions onto new brokers and rolling restarts. Each
//! decision is made by a pure module ([`live_config`], [`quorum`], [`moves`], [`roll`]) from a
//! fresh snapshot of the cluster; this module reads that snapshot and carries out at most one
//! disruptive step per reconcile. Nothing is remembered in the operator, only in the cluster and
//! the resource's status, so a restarted operator carries on where the last one was.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use sluice_crd::{KafkaCluster, KafkaClusterStatus, OperationStatus};

use super::Context;
use super::live_config;
use super::moves;
use super::properties::QuorumMode;
use super::quorum::{self, QuorumStep};
use super::read::Observed;
use super::role::{CONTROLLER_NODE_ID_OFFSET, CONTROLLER_PORT, Role};
use super::roll::{self, RollStep};
use super::validate::ValidCluster;
use crate::error::Error;
use crate::inspector::{Alteration, ClusterInspector, ClusterState, Endpoint};

/// At most this many partitions are asked to move at once when spreading onto new brokers, so
/// that a large cluster moves in rounds rather than copying everything at the same time.
pub const SPREAD_BATCH: usize = 20;

pub const SCALE_UP: &str = "ScaleUp";
pub const SCALE_DOWN: &str = "ScaleDown";
pub const QUORUM_CHANGE: &str = "QuorumChange";
pub const ROLL: &str = "Roll";
pub const LIVE_CONFIG: &str = "LiveConfig";

/// The cluster as read at the start of a reconcile.
#[derive(Debug, Clone)]
pub enum Snapshot {
    /// No broker is ready, so there was nobody to ask.
    NotAsked,
    Failed(String),
    Read(Box<ClusterState>),
}

impl Snapshot {
    pub fn state(&self) -> Option<&ClusterState> {
        match self {
            Snapshot::Read(s) => Some(s),
            _ => None,
        }
    }

    pub fn why_not(&self) -> String {
        match self {
            Snapshot::NotAsked => "no broker is ready to be asked".to_owned(),
            Snapshot::Failed(e) => e.clone(),
            Snapshot::Read(_) => String::new(),
        }
    }
}

/// Asks the cluster for its state, if a broker is ready to answer (or the operator was told where
/// to reach the brokers, `--bootstrap-override`).
pub async fn snapshot<I: ClusterInspector>(
    ctx: &Context<I>,
    observed: &Observed,
    bootstrap: &Endpoint,
) -> Snapshot {
    let told = ctx.settings.bootstrap_override.is_some();
    if !told && !observed.broker_pods.iter().any(super::read::is_ready) {
        return Snapshot::NotAsked;
    }
    match ctx.inspector.state(bootstrap).await {
        Ok(state) => Snapshot::Read(Box::new(state)),
        Err(e) => Snapshot::Failed(e.to_string()),
    }
}

/// How many controller pods to run.
pub fn controller_pods(
    cluster: &ValidCluster,
    observed: &Observed,
    snapshot: &Snapshot,
    static_quorum: bool,
) -> i32 {
    let current = observed.current_replicas(Role::Controller);
    if static_quorum {
        // Fixed voters: the count cannot change (validation reports a change).
        return current.unwrap_or(cluster.controllers.replicas);
    }
    quorum::controller_pods(
        snapshot.state().map(|s| &s.quorum),
        current,
        CONTROLLER_NODE_ID_OFFSET,
        cluster.controllers.replicas,
    )
}

fn op(type_: &str, message: String) -> OperationStatus {
    OperationStatus {
        type_: type_.to_owned(),
        message,
        partitions_to_move: None,
        pods_to_restart: None,
    }
}

/// What a day-2 step is decided on.
pub struct StepInput<'a> {
    pub kc: &'a KafkaCluster,
    pub cluster: &'a ValidCluster,
    pub observed: &'a Observed,
    pub snapshot: &'a Snapshot,
    /// Where the brokers are reached.
    pub bootstrap: &'a Endpoint,
    pub quorum_mode: QuorumMode,
    /// The last reconcile's status: its operation (spreading onto new brokers continues until they
    /// carry their share) and the topics it throttled.
    pub previous: Option<&'a KafkaClusterStatus>,
}

/// What a step leaves for the status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutcome {
    /// The operation in progress (`None`: settled).
    pub operation: Option<OperationStatus>,
    /// Topics throttled for moves, as they now are.
    pub throttled_topics: Vec<String>,
}

/// Partition moves this step: the topics throttled for them, and whether any was asked for now.
struct Moving {
    throttle: u64,
    topics: BTreeSet<String>,
    started: bool,
}

impl Moving {
    /// Asks for `plan`, its topics throttled first (unless moves are unthrottled).
    async fn submit<I: ClusterInspector>(
        &mut self,
        ctx: &Context<I>,
        bootstrap: &Endpoint,
        plan: Vec<moves::Move>,
    ) -> Result<(), Error> {
        let new: Vec<String> = moves::topics(&plan)
            .into_iter()
            .filter(|t| !self.topics.contains(t))
            .collect();
        if self.throttle > 0 && !new.is_empty() {
            let throttle = Alteration::Throttle {
                topics: new.clone(),
                on: true,
            };
            ctx.inspector.alter(bootstrap, &throttle).await?;
            self.topics.extend(new);
        }
        ctx.inspector
            .alter(bootstrap, &Alteration::Reassign(plan))
            .await?;
        self.started = true;
        Ok(())
    }
}

/// Carries out the next day-2 step and says which operation is in progress. Live configs are
/// applied whatever else runs (they disturb nothing), with the brokers' throttle rates while the
/// operator's moves run; the throttle is lifted once none runs.
pub async fn step<I: ClusterInspector>(
    ctx: &Context<I>,
    input: StepInput<'_>,
) -> Result<StepOutcome, Error> {
    let previous_topics = input
        .previous
        .map(|p| p.throttled_topics.clone())
        .unwrap_or_default();
    let Some(state) = input.snapshot.state() else {
        let why = input.snapshot.why_not();
        let shrinking = input
            .observed
            .current_replicas(Role::Broker)
            .is_some_and(|n| n > input.cluster.brokers.replicas);
        let operation = if shrinking {
            Some(op(
                SCALE_DOWN,
                format!("waiting: cannot check what the brokers that go hold: {why}"),
            ))
        } else {
            waiting_roll(input.cluster, input.observed, &why)
        };
        return Ok(StepOutcome {
            operation,
            throttled_topics: previous_topics,
        });
    };
    let mut moving = Moving {
        throttle: input.cluster.move_throttle,
        topics: previous_topics.into_iter().collect(),
        started: false,
    };
    let operation = next_operation(ctx, &input, state, &mut moving).await;
    // The throttle goes once no move runs (none was running when the cluster was read, and none
    // was asked for since).
    if state.reassigning == 0 && !moving.started && !moving.topics.is_empty() {
        let topics: Vec<String> = moving.topics.iter().cloned().collect();
        let lift = Alteration::Throttle { topics, on: false };
        match ctx.inspector.alter(input.bootstrap, &lift).await {
            Ok(()) => moving.topics.clear(),
            Err(e) => tracing::warn!(error = %e, "cannot lift the move throttle yet"),
        }
    }
    let live = apply_live_config(ctx, &input, state, !moving.topics.is_empty()).await;
    let operation = operation?.or(live);
    Ok(StepOutcome {
        operation,
        throttled_topics: moving.topics.into_iter().collect(),
    })
}

/// A roll that cannot be checked on: reported as waiting, if any pod is outdated.
fn waiting_roll(cluster: &ValidCluster, observed: &Observed, why: &str) -> Option<OperationStatus> {
    let controllers = observed.role_pods(Role::Controller, &cluster.name);
    let brokers = observed.role_pods(Role::Broker, &cluster.name);
    let waiting = roll::next(&controllers, &brokers, Err(why), CONTROLLER_NODE_ID_OFFSET);
    (waiting.outdated() > 0).then(|| OperationStatus {
        pods_to_restart: Some(waiting.outdated() as i32),
        ..op(
            ROLL,
            format!("waiting: cannot check the cluster's health: {why}"),
        )
    })
}

/// Sets the live keys of the spec, plus the move throttle rates while `throttling` (unless the
/// spec sets them); reports a failure as the operation when nothing else runs.
async fn apply_live_config<I: ClusterInspector>(
    ctx: &Context<I>,
    input: &StepInput<'_>,
    state: &ClusterState,
    throttling: bool,
) -> Option<OperationStatus> {
    let mut wanted = live_config::live(&input.cluster.config);
    if throttling && input.cluster.move_throttle > 0 {
        for key in live_config::THROTTLE_RATES {
            wanted
                .entry(key.to_owned())
                .or_insert_with(|| input.cluster.move_throttle.to_string());
        }
    }
    let change = live_config::change(&wanted, &state.live_configs);
    if change.is_empty() {
        return None;
    }
    match ctx
        .inspector
        .alter(input.bootstrap, &Alteration::LiveConfig(change.clone()))
        .await
    {
        Ok(()) => {
            let note = format!("applied live: {change}");
            ctx.event(input.kc, EventType::Normal, "LiveConfig", note)
                .await;
            None
        }
        Err(e) => Some(op(LIVE_CONFIG, format!("cannot apply {change}: {e}"))),
    }
}

/// The quorum, spreading and rolling steps, in that order, the first with something to do.
async fn next_operation<I: ClusterInspector>(
    ctx: &Context<I>,
    input: &StepInput<'_>,
    state: &ClusterState,
    moving: &mut Moving,
) -> Result<Option<OperationStatus>, Error> {
    let StepInput {
        kc,
        cluster,
        observed,
        bootstrap,
        quorum_mode,
        ..
    } = *input;
    let previous = input.previous.and_then(|p| p.operation.as_ref());
    let controllers = observed.role_pods(Role::Controller, &cluster.name);
    let brokers = observed.role_pods(Role::Broker, &cluster.name);
    if let QuorumMode::Dynamic { .. } = quorum_mode {
        match quorum::next(
            &state.quorum,
            CONTROLLER_NODE_ID_OFFSET,
            cluster.controllers.replicas,
        ) {
            QuorumStep::Settled => {}
            QuorumStep::Wait(why) => return Ok(Some(op(QUORUM_CHANGE, format!("waiting: {why}")))),
            QuorumStep::Add { id, directory_id } => {
                let ordinal = id - CONTROLLER_NODE_ID_OFFSET;
                let host = Role::Controller.pod_host(&cluster.name, &cluster.namespace, ordinal);
                ctx.inspector
                    .alter(
                        bootstrap,
                        &Alteration::AddVoter {
                            id,
                            directory_id,
                            host,
                            port: CONTROLLER_PORT as u16,
                        },
                    )
                    .await?;
                let message = format!("controller {id} became a voter");
                ctx.event(kc, EventType::Normal, "VoterAdded", message.clone())
                    .await;
                return Ok(Some(op(QUORUM_CHANGE, message)));
            }
            QuorumStep::Remove { id, directory_id } => {
                ctx.inspector
                    .alter(bootstrap, &Alteration::RemoveVoter { id, directory_id })
                    .await?;
                let message = format!("controller {id} stopped voting");
                ctx.event(kc, EventType::Normal, "VoterRemoved", message.clone())
                    .await;
                return Ok(Some(op(QUORUM_CHANGE, message)));
            }
            QuorumStep::HandOver { id } => {
                let ordinal = id - CONTROLLER_NODE_ID_OFFSET;
                if controllers.pods.iter().any(|p| !p.ready || p.terminating) {
                    return Ok(Some(op(
                        QUORUM_CHANGE,
                        format!(
                            "waiting for every controller to be ready before controller {id} hands over"
                        ),
                    )));
                }
                let pod = format!(
                    "{}-{ordinal}",
                    Role::Controller.statefulset_name(&cluster.name)
                );
                delete_pod(
                    ctx,
                    kc,
                    &cluster.namespace,
                    &pod,
                    "it leads the quorum it is leaving",
                )
                .await?;
                return Ok(Some(op(
                    QUORUM_CHANGE,
                    format!(
                        "controller {id} leads and must go: restarted it so that another voter takes over"
                    ),
                )));
            }
        }
    }

    if let Some(drain) = drain(ctx, cluster, state, bootstrap, moving).await? {
        return Ok(Some(drain));
    }
    if let Some(spread) = spread(ctx, cluster, observed, state, bootstrap, previous, moving).await?
    {
        return Ok(Some(spread));
    }

    let health = state.health();
    match roll::next(
        &controllers,
        &brokers,
        Ok(&health),
        CONTROLLER_NODE_ID_OFFSET,
    ) {
        RollStep::Done => Ok(None),
        RollStep::Wait { outdated, reason } => Ok(Some(OperationStatus {
            pods_to_restart: Some(outdated as i32),
            ..op(ROLL, format!("waiting: {reason}"))
        })),
        RollStep::Restart { outdated, pod } => {
            delete_pod(
                ctx,
                kc,
                &cluster.namespace,
                &pod,
                "its configuration changed",
            )
            .await?;
            Ok(Some(OperationStatus {
                pods_to_restart: Some(outdated as i32),
                ..op(ROLL, format!("restarting pod {pod}"))
            }))
        }
    }
}

/// Moves every replica off brokers outside the spec's `0..replicas`: the brokers a scale-down
/// removes (the StatefulSet shrinks once they hold nothing, `decide_broker_count`), and any
/// replica left on a broker already gone (a topic created while the last of them was stopping can
/// have been placed there, and would stay under-replicated for good).
async fn drain<I: ClusterInspector>(
    ctx: &Context<I>,
    cluster: &ValidCluster,
    state: &ClusterState,
    bootstrap: &Endpoint,
    moving: &mut Moving,
) -> Result<Option<OperationStatus>, Error> {
    let staying: BTreeSet<i32> = (0..cluster.brokers.replicas).collect();
    let gone = |replicas: &[moves::Replicas]| -> BTreeSet<i32> {
        replicas
            .iter()
            .flat_map(|p| p.replicas.iter().copied())
            .filter(|b| !staying.contains(b))
            .collect()
    };
    if gone(&state.replicas()).is_empty() {
        return Ok(None);
    }
    if state.reassigning > 0 {
        return Ok(Some(in_progress(SCALE_DOWN, state.reassigning)));
    }
    let replicas = settled_replicas(ctx, bootstrap, state).await;
    let leaving = gone(&replicas);
    let list = leaving
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match moves::drain(&replicas, &staying, &leaving) {
        Err(cannot) => Ok(Some(op(
            SCALE_DOWN,
            format!("the replicas on brokers {list} cannot move: {cannot}"),
        ))),
        Ok(plan) if plan.is_empty() => Ok(None),
        Ok(plan) => {
            let n = plan.len();
            moving.submit(ctx, bootstrap, plan).await?;
            Ok(Some(OperationStatus {
                partitions_to_move: Some(n as i32),
                ..op(
                    SCALE_DOWN,
                    format!("moving {n} partitions off brokers {list}"),
                )
            }))
        }
    }
}

fn in_progress(type_: &str, reassigning: usize) -> OperationStatus {
    OperationStatus {
        partitions_to_move: Some(reassigning as i32),
        ..op(type_, format!("{reassigning} partition moves in progress"))
    }
}

/// The replica lists to plan moves from. Right after a move finishes, the broker that answered
/// can still list the partition's old replicas with its new ones (`moves::unsettled`); planning
/// from that would make the extra replica permanent. So while any partition looks like that, the
/// cluster is read again, a second apart, a few times; a topic whose partitions really have
/// different replica counts costs only that wait.
async fn settled_replicas<I: ClusterInspector>(
    ctx: &Context<I>,
    bootstrap: &Endpoint,
    state: &ClusterState,
) -> Vec<moves::Replicas> {
    let mut replicas = state.replicas();
    for _ in 0..SETTLE_READS {
        if moves::unsettled(&replicas).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        match ctx.inspector.state(bootstrap).await {
            Ok(fresh) => replicas = fresh.replicas(),
            Err(e) => tracing::warn!(error = %e, "cannot read the cluster again"),
        }
    }
    replicas
}

/// How many times the cluster is read again while its metadata looks unsettled.
const SETTLE_READS: usize = 3;

/// Spreads partitions onto brokers that hold none (a scale-up), in rounds, until the load is even.
async fn spread<I: ClusterInspector>(
    ctx: &Context<I>,
    cluster: &ValidCluster,
    observed: &Observed,
    state: &ClusterState,
    bootstrap: &Endpoint,
    previous: Option<&OperationStatus>,
    moving: &mut Moving,
) -> Result<Option<OperationStatus>, Error> {
    let wanted = cluster.brokers.replicas;
    if observed.current_replicas(Role::Broker) != Some(wanted) {
        return Ok(None);
    }
    let brokers: BTreeSet<i32> = (0..wanted).collect();
    let replicas = state.replicas();
    let idle = brokers
        .iter()
        .any(|b| !replicas.iter().any(|p| p.replicas.contains(b)));
    let continuing = previous.is_some_and(|p| p.type_ == SCALE_UP);
    if !idle && !continuing {
        return Ok(None);
    }
    let missing: Vec<i32> = brokers
        .iter()
        .copied()
        .filter(|b| !state.brokers.contains(b))
        .collect();
    if !missing.is_empty() {
        return Ok(idle.then(|| {
            op(
                SCALE_UP,
                format!(
                    "waiting for brokers {missing:?} to register before moving partitions onto them"
                ),
            )
        }));
    }
    if state.reassigning > 0 {
        return Ok(Some(in_progress(SCALE_UP, state.reassigning)));
    }
    let replicas = settled_replicas(ctx, bootstrap, state).await;
    let remaining = moves::spread(&replicas, &brokers, usize::MAX).len();
    if remaining == 0 {
        return Ok(None);
    }
    let round = moves::spread(&replicas, &brokers, SPREAD_BATCH);
    let asked = round.len();
    moving.submit(ctx, bootstrap, round).await?;
    Ok(Some(OperationStatus {
        partitions_to_move: Some(remaining as i32),
        ..op(
            SCALE_UP,
            format!("moving {asked} of the {remaining} partitions that balance the brokers"),
        )
    }))
}

async fn delete_pod<I: ClusterInspector>(
    ctx: &Context<I>,
    kc: &KafkaCluster,
    namespace: &str,
    pod: &str,
    why: &str,
) -> Result<(), Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    pods.delete(pod, &DeleteParams::default()).await?;
    tracing::info!(cluster = %kc.name_any(), pod, why, "restarting pod");
    ctx.event(
        kc,
        EventType::Normal,
        "Restart",
        format!("restarting pod {pod}: {why}"),
    )
    .await;
    Ok(())
}
