//! The last stage: compute the status from what was observed and decided, and write it to the
//! status subresource (only when it changed).

use base64::Engine as _;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use sluice_crd::{KafkaCluster, KafkaClusterStatus, OperationStatus, ReplicaCounts};

use crate::error::Error;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// Why the cluster is not as its spec asks, if it is not. Each is a condition reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The spec is invalid; nothing was changed.
    InvalidSpec(String),
    /// The API server refused an object.
    ApplyFailed(String),
    /// Brokers that would be removed still hold data.
    ScaleDownBlocked(String),
    /// The controller count changed on a cluster whose voters are fixed.
    ControllersFixed(String),
}

impl Problem {
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::InvalidSpec(_) => "InvalidSpec",
            Problem::ApplyFailed(_) => "ApplyFailed",
            Problem::ScaleDownBlocked(_) => "ScaleDownBlocked",
            Problem::ControllersFixed(_) => "ControllersFixed",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Problem::InvalidSpec(m)
            | Problem::ApplyFailed(m)
            | Problem::ScaleDownBlocked(m)
            | Problem::ControllersFixed(m) => m,
        }
    }
}

/// One role's pods, from its StatefulSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoleState {
    /// Replicas the spec asks for.
    pub desired: i32,
    /// Replicas the StatefulSet runs (more than `desired` while a scale-down is blocked).
    pub target: i32,
    pub ready: i32,
    /// The StatefulSet has seen its latest spec and every pod runs the latest revision.
    pub rolled_out: bool,
}

impl RoleState {
    pub fn new(desired: i32, target: i32, sts: Option<&StatefulSet>) -> RoleState {
        let Some(sts) = sts else {
            return RoleState {
                desired,
                target,
                ready: 0,
                rolled_out: false,
            };
        };
        let status = sts.status.clone().unwrap_or_default();
        let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let seen = status.observed_generation >= sts.metadata.generation;
        let same_revision =
            status.update_revision.is_none() || status.current_revision == status.update_revision;
        RoleState {
            desired,
            target,
            ready: status.ready_replicas.unwrap_or(0),
            rolled_out: seen
                && replicas == target
                && status.updated_replicas.unwrap_or(0) == target
                && same_revision,
        }
    }

    fn settled(&self) -> bool {
        self.rolled_out && self.ready == self.target
    }
}

/// Everything the status is computed from.
#[derive(Debug, Clone)]
pub struct Observation {
    pub generation: Option<i64>,
    pub controllers: RoleState,
    pub brokers: RoleState,
    /// This reconcile created or changed objects, so what was read may already be stale.
    pub changed: bool,
    pub problem: Option<Problem>,
    pub cluster_id: Option<String>,
    pub bootstrap_servers: Option<String>,
    pub listeners: Option<Vec<sluice_crd::ListenerStatus>>,
    pub voters: Option<String>,
    /// The day-2 operation in progress, if any.
    pub operation: Option<OperationStatus>,
    /// Topics throttled for moves; `None` keeps what the status says.
    pub throttled_topics: Option<Vec<String>>,
    /// Label selector of the cluster's pods, named when they are not ready so that the reader
    /// knows where to look (their events say why: unschedulable, image pull, crash loop, ...).
    pub pod_selector: String,
}

/// A new Kafka cluster id: a random UUID as 22 characters of unpadded base64url, like
/// `kafka-storage random-uuid` (which also never starts an id with `-`).
pub fn new_cluster_id() -> String {
    loop {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

use crate::status_patch::condition;

fn pods(label: &str, role: &RoleState) -> String {
    format!("{}/{} {label} ready", role.ready, role.target)
}

/// The conditions for `obs`, without times.
fn conditions(obs: &Observation) -> [Condition; 3] {
    let pods_message = format!(
        "{}, {}",
        pods("controllers", &obs.controllers),
        pods("brokers", &obs.brokers)
    );
    let settled = obs.controllers.settled() && obs.brokers.settled() && !obs.changed;
    let ready = match &obs.problem {
        Some(p @ (Problem::InvalidSpec(_) | Problem::ApplyFailed(_))) => {
            condition(READY, false, p.reason(), p.message().to_owned())
        }
        _ if obs.controllers.ready == obs.controllers.target
            && obs.brokers.ready == obs.brokers.target
            && obs.brokers.target > 0 =>
        {
            condition(READY, true, "AllPodsReady", pods_message.clone())
        }
        _ => condition(
            READY,
            false,
            "PodsNotReady",
            format!(
                "{pods_message}; see why with `kubectl describe pods -l {}`",
                obs.pod_selector
            ),
        ),
    };
    let progressing = match &obs.problem {
        Some(p @ Problem::InvalidSpec(_)) => condition(
            PROGRESSING,
            false,
            p.reason(),
            "waiting for the spec to be fixed".to_owned(),
        ),
        _ if let Some(op) = &obs.operation => {
            condition(PROGRESSING, true, &op.type_, op.message.clone())
        }
        _ if !settled => condition(
            PROGRESSING,
            true,
            "RollingOut",
            format!("pods are being created or updated: {pods_message}"),
        ),
        _ => condition(
            PROGRESSING,
            false,
            "RolledOut",
            "every pod runs the current configuration".to_owned(),
        ),
    };
    let degraded = match &obs.problem {
        Some(p) => condition(DEGRADED, true, p.reason(), p.message().to_owned()),
        None => condition(DEGRADED, false, "AsExpected", String::new()),
    };
    [ready, progressing, degraded]
}

/// The new status. Conditions keep their `lastTransitionTime` while their status stays; `now`
/// stamps the ones that flip.
pub fn compute(
    previous: Option<&KafkaClusterStatus>,
    obs: &Observation,
    now: k8s_openapi::jiff::Timestamp,
) -> KafkaClusterStatus {
    let previous = previous.cloned().unwrap_or_default();
    let conditions = crate::status_patch::stamp_conditions(
        conditions(obs),
        &previous.conditions,
        obs.generation,
        now,
    );
    let counts = |r: &RoleState| ReplicaCounts {
        desired: r.desired,
        ready: r.ready,
    };
    KafkaClusterStatus {
        observed_generation: obs.generation,
        conditions,
        cluster_id: obs.cluster_id.clone().or(previous.cluster_id),
        bootstrap_servers: obs.bootstrap_servers.clone().or(previous.bootstrap_servers),
        listeners: obs.listeners.clone().unwrap_or(previous.listeners),
        brokers: Some(counts(&obs.brokers)),
        controllers: Some(counts(&obs.controllers)),
        voters: obs.voters.clone().or(previous.voters),
        operation: obs.operation.clone(),
        throttled_topics: obs
            .throttled_topics
            .clone()
            .unwrap_or(previous.throttled_topics),
    }
}

/// Writes `status` with server-side apply (same field manager as every other write), unless
/// it equals `previous`.
pub async fn patch(
    api: &Api<KafkaCluster>,
    name: &str,
    previous: Option<&KafkaClusterStatus>,
    status: &KafkaClusterStatus,
) -> Result<bool, Error> {
    crate::status_patch::patch_status(api, name, previous, status).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{StatefulSetSpec, StatefulSetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn sts(replicas: i32, ready: i32, updated: i32, generation: i64, observed: i64) -> StatefulSet {
        StatefulSet {
            metadata: kube::api::ObjectMeta {
                generation: Some(generation),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(StatefulSetStatus {
                replicas,
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                observed_generation: Some(observed),
                current_revision: Some("r1".to_owned()),
                update_revision: Some("r1".to_owned()),
                ..Default::default()
            }),
        }
    }

    fn obs(controllers: RoleState, brokers: RoleState, problem: Option<Problem>) -> Observation {
        Observation {
            generation: Some(4),
            controllers,
            brokers,
            operation: None,
            throttled_topics: None,
            changed: false,
            problem,
            cluster_id: Some("id".to_owned()),
            bootstrap_servers: Some("demo-bootstrap.ns.svc:9092".to_owned()),
            listeners: None,
            voters: Some("1000@x:9093".to_owned()),
            pod_selector: "app.kubernetes.io/name=sluice,app.kubernetes.io/instance=demo"
                .to_owned(),
        }
    }

    fn get<'a>(s: &'a KafkaClusterStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn role_state_from_statefulset() {
        assert!(!RoleState::new(3, 3, None).rolled_out);
        let done = RoleState::new(3, 3, Some(&sts(3, 3, 3, 2, 2)));
        assert_eq!((done.ready, done.rolled_out), (3, true));
        assert!(
            !RoleState::new(3, 3, Some(&sts(3, 3, 3, 3, 2))).rolled_out,
            "spec not seen"
        );
        assert!(
            !RoleState::new(3, 3, Some(&sts(3, 3, 1, 2, 2))).rolled_out,
            "rolling"
        );
        assert!(
            !RoleState::new(3, 5, Some(&sts(3, 3, 3, 2, 2))).rolled_out,
            "scaling"
        );
    }

    #[test]
    fn healthy_cluster_is_ready_and_settled() {
        let role = RoleState::new(3, 3, Some(&sts(3, 3, 3, 1, 1)));
        let s = compute(None, &obs(role, role, None), t(100));
        assert_eq!(s.observed_generation, Some(4));
        let ready = get(&s, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "AllPodsReady")
        );
        assert_eq!(ready.message, "3/3 controllers ready, 3/3 brokers ready");
        assert_eq!(ready.observed_generation, Some(4));
        assert_eq!(get(&s, PROGRESSING).status, "False");
        assert_eq!(get(&s, DEGRADED).status, "False");
        assert_eq!(
            s.brokers,
            Some(ReplicaCounts {
                desired: 3,
                ready: 3
            })
        );
        assert_eq!(s.cluster_id.as_deref(), Some("id"));
    }

    #[test]
    fn an_operation_in_progress_is_reported_and_keeps_the_cluster_progressing() {
        let role = RoleState::new(3, 3, Some(&sts(3, 3, 3, 1, 1)));
        let op = OperationStatus {
            type_: "Roll".to_owned(),
            message: "restarting pod demo-broker-2".to_owned(),
            partitions_to_move: None,
            pods_to_restart: Some(2),
        };
        let mut o = obs(role, role, None);
        o.operation = Some(op.clone());
        let s = compute(None, &o, t(100));
        assert_eq!(s.operation, Some(op));
        let p = get(&s, PROGRESSING);
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("True", "Roll"));
        assert_eq!(p.message, "restarting pod demo-broker-2");
        assert_eq!(get(&s, READY).status, "True");
        // Done: the operation is gone from the status.
        let s = compute(Some(&s), &obs(role, role, None), t(200));
        assert_eq!(s.operation, None);
        assert_eq!(get(&s, PROGRESSING).status, "False");
    }

    #[test]
    fn new_cluster_is_progressing() {
        let s = compute(
            None,
            &obs(RoleState::new(3, 3, None), RoleState::new(3, 3, None), None),
            t(1),
        );
        assert_eq!(get(&s, READY).reason, "PodsNotReady");
        assert_eq!(
            get(&s, READY).message,
            "0/3 controllers ready, 0/3 brokers ready; see why with \
             `kubectl describe pods -l app.kubernetes.io/name=sluice,app.kubernetes.io/instance=demo`"
        );
        assert_eq!(get(&s, PROGRESSING).status, "True");
        assert_eq!(get(&s, PROGRESSING).reason, "RollingOut");
    }

    #[test]
    fn problems_become_degraded_with_their_reason() {
        let role = RoleState::new(3, 3, Some(&sts(3, 3, 3, 1, 1)));
        let invalid = compute(
            None,
            &obs(
                role,
                role,
                Some(Problem::InvalidSpec("spec.config: bad".to_owned())),
            ),
            t(1),
        );
        assert_eq!(get(&invalid, DEGRADED).reason, "InvalidSpec");
        assert_eq!(get(&invalid, DEGRADED).message, "spec.config: bad");
        assert_eq!(get(&invalid, READY).status, "False");
        assert_eq!(get(&invalid, PROGRESSING).reason, "InvalidSpec");

        let blocked = RoleState::new(3, 5, Some(&sts(5, 5, 5, 1, 1)));
        let s = compute(
            None,
            &obs(
                role,
                blocked,
                Some(Problem::ScaleDownBlocked(
                    "brokers 4 hold orders".to_owned(),
                )),
            ),
            t(1),
        );
        assert_eq!(get(&s, DEGRADED).reason, "ScaleDownBlocked");
        assert_eq!(get(&s, DEGRADED).message, "brokers 4 hold orders");
        assert_eq!(
            get(&s, READY).status,
            "True",
            "the running pods still serve"
        );
        assert_eq!(
            s.brokers,
            Some(ReplicaCounts {
                desired: 3,
                ready: 5
            })
        );
    }

    #[test]
    fn transition_time_changes_only_when_status_flips() {
        let ready = RoleState::new(3, 3, Some(&sts(3, 3, 3, 1, 1)));
        let first = compute(None, &obs(ready, ready, None), t(100));
        let again = compute(Some(&first), &obs(ready, ready, None), t(200));
        assert_eq!(first, again, "nothing changed, so nothing to write");
        let not_ready = RoleState::new(3, 3, Some(&sts(3, 2, 3, 1, 1)));
        let later = compute(Some(&again), &obs(ready, not_ready, None), t(300));
        assert_eq!(get(&later, READY).last_transition_time, Time(t(300)));
        assert_eq!(get(&later, DEGRADED).last_transition_time, Time(t(100)));
    }

    #[test]
    fn cluster_ids_look_like_kafkas() {
        for _ in 0..100 {
            let id = new_cluster_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'));
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
        assert_ne!(new_cluster_id(), new_cluster_id());
    }
}
