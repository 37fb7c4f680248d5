//! Rolling restarts, one pod at a time, in the order that keeps the cluster available. The
//! StatefulSets use the `OnDelete` strategy, so Kubernetes never restarts a pod by itself: a pod
//! whose revision is not its StatefulSet's update revision is outdated, and the reconciler deletes
//! the one this module names, then waits for it to come back before the next.
//!
//! The order: controllers first (followers, then the active controller, whose restart costs one
//! election), then brokers from the highest ordinal down. A pod is restarted only while every pod
//! is ready, no reassignment runs, every voter has caught up and, before a broker, no partition is
//! under-replicated. A broker leaving hands its leaderships over before it stops (it asks the
//! controller to fence it, which elects new leaders: Kafka's controlled shutdown).
//!
//! Pure: what the pods and the cluster look like goes in, the next step comes out. Nothing is
//! remembered, so an operator restarted mid-roll carries on from what the pods show.

use super::role::Role;

/// One pod as the reconciler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub name: String,
    pub ordinal: i32,
    /// Ready, per its readiness probe.
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
    /// Its `controller-revision-hash` label.
    pub revision: Option<String>,
}

/// The pods of one role and the revision they should run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolePods {
    /// The StatefulSet's `spec.replicas`.
    pub replicas: i32,
    /// The StatefulSet's `status.updateRevision`, once its controller has computed it.
    pub update_revision: Option<String>,
    pub pods: Vec<PodState>,
}

impl RolePods {
    fn outdated(&self) -> impl Iterator<Item = &PodState> {
        self.pods.iter().filter(|p| {
            p.ordinal < self.replicas
                && self.update_revision.is_some()
                && p.revision != self.update_revision
        })
    }

    /// The first reason this role is not settled: a missing, unready or terminating pod.
    fn unsettled(&self, role: Role) -> Option<String> {
        for ordinal in 0..self.replicas {
            match self.pods.iter().find(|p| p.ordinal == ordinal) {
                None => return Some(format!("{} {ordinal} has no pod yet", role.component())),
                Some(p) if p.terminating => return Some(format!("pod {} is stopping", p.name)),
                Some(p) if !p.ready => return Some(format!("pod {} is not ready", p.name)),
                Some(_) => {}
            }
        }
        None
    }
}

/// What the cluster says about its own health, from the brokers and the quorum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Partitions with fewer in-sync replicas than replicas.
    pub under_replicated: usize,
    /// Partitions without a leader.
    pub offline: usize,
    /// Partitions being reassigned.
    pub reassigning: usize,
    /// The active controller's node id.
    pub active_controller: Option<i32>,
    /// Voters whose metadata log is behind the leader's high watermark.
    pub lagging_voters: Vec<i32>,
}

/// The next step of a roll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollStep {
    /// Every pod runs its StatefulSet's revision.
    Done,
    /// Pods are outdated but none may go now, because of the reason given.
    Wait { outdated: usize, reason: String },
    /// Delete this pod (its StatefulSet recreates it at the new revision).
    Restart { outdated: usize, pod: String },
}

impl RollStep {
    /// Pods still to restart.
    pub fn outdated(&self) -> usize {
        match self {
            RollStep::Done => 0,
            RollStep::Wait { outdated, .. } | RollStep::Restart { outdated, .. } => *outdated,
        }
    }
}

/// The next step, given both roles' pods and the cluster's health (or why it could not be read).
/// `controller_node_id`: the node id of controller ordinal 0.
pub fn next(
    controllers: &RolePods,
    brokers: &RolePods,
    health: Result<&Health, &str>,
    controller_node_id: i32,
) -> RollStep {
    let outdated = controllers.outdated().count() + brokers.outdated().count();
    if outdated == 0 {
        return RollStep::Done;
    }
    let wait = |reason: String| RollStep::Wait { outdated, reason };
    if let Some(reason) = controllers
        .unsettled(Role::Controller)
        .or_else(|| brokers.unsettled(Role::Broker))
    {
        return wait(reason);
    }
    let health = match health {
        Ok(h) => h,
        Err(e) => return wait(format!("cannot check the cluster's health: {e}")),
    };
    if let Some(id) = health.lagging_voters.first() {
        return wait(format!(
            "controller {id} is catching up with the metadata log"
        ));
    }
    if health.reassigning > 0 {
        return wait(format!(
            "{} partition reassignments are running",
            health.reassigning
        ));
    }
    // Followers first: the active controller's restart forces an election, so it goes last.
    let mut pending: Vec<&PodState> = controllers.outdated().collect();
    pending.sort_by_key(|p| {
        let active = health.active_controller == Some(controller_node_id + p.ordinal);
        (active, -p.ordinal)
    });
    if let Some(pod) = pending.first() {
        return RollStep::Restart {
            outdated,
            pod: pod.name.clone(),
        };
    }
    if health.offline > 0 {
        return wait(format!("{} partitions have no leader", health.offline));
    }
    if health.under_replicated > 0 {
        return wait(format!(
            "{} partitions are under-replicated",
            health.under_replicated
        ));
    }
    match brokers.outdated().max_by_key(|p| p.ordinal) {
        Some(pod) => RollStep::Restart {
            outdated,
            pod: pod.name.clone(),
        },
        None => RollStep::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "new";

    fn pod(role: &str, ordinal: i32, revision: &str) -> PodState {
        PodState {
            name: format!("c-{role}-{ordinal}"),
            ordinal,
            ready: true,
            terminating: false,
            revision: Some(revision.to_owned()),
        }
    }

    fn role(name: &str, revisions: &[&str]) -> RolePods {
        RolePods {
            replicas: revisions.len() as i32,
            update_revision: Some(NEW.to_owned()),
            pods: revisions
                .iter()
                .enumerate()
                .map(|(i, r)| pod(name, i as i32, r))
                .collect(),
        }
    }

    fn healthy(active: i32) -> Health {
        Health {
            active_controller: Some(active),
            ..Health::default()
        }
    }

    fn restart(step: RollStep) -> String {
        match step {
            RollStep::Restart { pod, .. } => pod,
            other => panic!("expected a restart, got {other:?}"),
        }
    }

    fn waits_for(step: RollStep) -> String {
        match step {
            RollStep::Wait { reason, .. } => reason,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn nothing_outdated_is_done_whatever_the_health() {
        let c = role("controller", &[NEW, NEW, NEW]);
        let b = role("broker", &[NEW, NEW, NEW]);
        assert_eq!(next(&c, &b, Err("down"), 1000), RollStep::Done);
    }

    #[test]
    fn controllers_roll_followers_first_then_the_active_one_then_brokers_from_the_top() {
        // Each row: the revisions of controllers and brokers, the active controller, the pod to restart.
        let rows: &[(&[&str], &[&str], i32, &str)] = &[
            (&["o", "o", "o"], &["o", "o", "o"], 1001, "c-controller-2"),
            (&["o", "o", NEW], &["o", "o", "o"], 1001, "c-controller-0"),
            (&["o", "o", NEW], &["o", "o", "o"], 1000, "c-controller-1"),
            (&[NEW, "o", NEW], &["o", "o", "o"], 1001, "c-controller-1"),
            (&[NEW, NEW, NEW], &["o", "o", "o"], 1001, "c-broker-2"),
            (&[NEW, NEW, NEW], &["o", "o", NEW], 1001, "c-broker-1"),
            (&[NEW, NEW, NEW], &["o", NEW, NEW], 1001, "c-broker-0"),
            (&["o"], &["o"], 1000, "c-controller-0"),
        ];
        for (controllers, brokers, active, want) in rows {
            let step = next(
                &role("controller", controllers),
                &role("broker", brokers),
                Ok(&healthy(*active)),
                1000,
            );
            let outdated = step.outdated();
            let stale = controllers.iter().chain(brokers.iter());
            assert_eq!(outdated, stale.filter(|r| **r != NEW).count());
            assert_eq!(restart(step), *want, "{controllers:?} {brokers:?} {active}");
        }
    }

    #[test]
    fn a_pod_that_is_not_back_holds_the_roll() {
        let mut c = role("controller", &[NEW, NEW, NEW]);
        let mut b = role("broker", &["o", "o", NEW]);
        b.pods[2].ready = false;
        let h = healthy(1000);
        assert!(waits_for(next(&c, &b, Ok(&h), 1000)).contains("c-broker-2 is not ready"));
        b.pods[2].ready = true;
        b.pods[2].terminating = true;
        assert!(waits_for(next(&c, &b, Ok(&h), 1000)).contains("stopping"));
        b.pods.pop();
        assert!(waits_for(next(&c, &b, Ok(&h), 1000)).contains("broker 2 has no pod"));
        // A missing controller holds the brokers' roll too.
        b = role("broker", &["o", "o", NEW]);
        c.pods.remove(1);
        assert!(waits_for(next(&c, &b, Ok(&h), 1000)).contains("controller 1 has no pod"));
    }

    #[test]
    fn brokers_wait_for_every_partition_to_be_fully_replicated() {
        let c = role("controller", &[NEW]);
        let b = role("broker", &["o", "o", "o"]);
        let cases = [
            (
                Health {
                    under_replicated: 4,
                    ..healthy(1000)
                },
                "4 partitions are under-replicated",
            ),
            (
                Health {
                    offline: 1,
                    ..healthy(1000)
                },
                "1 partitions have no leader",
            ),
            (
                Health {
                    reassigning: 2,
                    ..healthy(1000)
                },
                "2 partition reassignments",
            ),
            (
                Health {
                    lagging_voters: vec![1002],
                    ..healthy(1000)
                },
                "controller 1002 is catching up",
            ),
        ];
        for (health, why) in cases {
            let reason = waits_for(next(&c, &b, Ok(&health), 1000));
            assert!(reason.contains(why), "{reason} lacks {why}");
        }
        let reason = waits_for(next(&c, &b, Err("no broker answers"), 1000));
        assert!(reason.contains("no broker answers"), "{reason}");
    }

    #[test]
    fn controllers_roll_while_partitions_are_under_replicated_but_not_while_voters_lag() {
        let c = role("controller", &["o", NEW, NEW]);
        let b = role("broker", &[NEW]);
        let busy = Health {
            under_replicated: 3,
            ..healthy(1001)
        };
        assert_eq!(restart(next(&c, &b, Ok(&busy), 1000)), "c-controller-0");
    }

    #[test]
    fn pods_above_the_replica_count_and_an_unknown_revision_are_not_rolled() {
        let c = role("controller", &[NEW]);
        let mut b = role("broker", &[NEW, NEW, "o"]);
        b.replicas = 2;
        assert_eq!(next(&c, &b, Ok(&healthy(1000)), 1000), RollStep::Done);
        let mut b = role("broker", &["o"]);
        b.update_revision = None;
        assert_eq!(next(&c, &b, Ok(&healthy(1000)), 1000), RollStep::Done);
    }
}
