//! The last stage: compute the status from what was observed and done, and write it to the
//! status subresource (only when it changed).
//!
//! `Ready` is `True` when the topic exists and is as the spec asks; otherwise it is `False`
//! with the first problem's reason. `Degraded` is `True` while there is any problem, with the
//! first one's reason and every problem's message.

use base64::Engine as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use sluice_crd::{Topic, TopicStatus};
use sluice_kafka_admin::{TopicInfo, Uuid};

use crate::error::Error;

pub const READY: &str = "Ready";
pub const DEGRADED: &str = "Degraded";

/// Why a topic is not as its spec asks. Each is a condition reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The resource breaks a rule; nothing was done.
    InvalidSpec,
    /// `spec.clusterRef` names no KafkaCluster in the namespace.
    ClusterNotFound,
    /// The KafkaCluster is being deleted.
    ClusterDeleting,
    /// The brokers could not be asked (retried with backoff).
    ClusterUnreachable,
    /// An older Topic manages the same Kafka topic.
    Conflict,
    /// The brokers report the topic as internal.
    InternalTopic,
    /// The brokers refused a change (e.g. an unknown config key); retried on the next resync.
    KafkaRejected,
    /// A change failed in a way that may pass on retry (retried with backoff).
    KafkaUnavailable,
    /// The topic has more partitions than the spec.
    PartitionsBelowActual,
    /// The topic's replication factor differs from the spec's.
    ReplicationFactorMismatch,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidSpec => "InvalidSpec",
            Reason::ClusterNotFound => "ClusterNotFound",
            Reason::ClusterDeleting => "ClusterDeleting",
            Reason::ClusterUnreachable => "ClusterUnreachable",
            Reason::Conflict => "Conflict",
            Reason::InternalTopic => "InternalTopic",
            Reason::KafkaRejected => "KafkaRejected",
            Reason::KafkaUnavailable => "KafkaUnavailable",
            Reason::PartitionsBelowActual => "PartitionsBelowActual",
            Reason::ReplicationFactorMismatch => "ReplicationFactorMismatch",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    /// Says what is wrong and what to do about it.
    pub message: String,
}

impl Problem {
    pub fn new(reason: Reason, message: impl Into<String>) -> Problem {
        Problem {
            reason,
            message: message.into(),
        }
    }
}

/// The topic as last seen on the brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The brokers were not asked (or could not answer): keep what the status says.
    Unknown,
    Absent,
    Present(TopicSummary),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSummary {
    pub name: String,
    pub id: Option<Uuid>,
    pub partitions: i32,
    pub replication_factor: Option<i32>,
}

impl TopicSummary {
    pub fn of(info: &TopicInfo) -> TopicSummary {
        TopicSummary {
            name: info.name.clone(),
            id: info.id,
            partitions: i32::try_from(info.partitions.len()).unwrap_or(i32::MAX),
            replication_factor: info
                .replication_factor()
                .map(|rf| i32::try_from(rf).unwrap_or(i32::MAX)),
        }
    }
}

/// Everything the status is computed from.
#[derive(Debug, Clone)]
pub struct Observation {
    pub generation: Option<i64>,
    pub topic: Seen,
    pub problems: Vec<Problem>,
}

/// A topic id as Kafka prints it: the UUID's 16 bytes as unpadded base64url.
pub fn kafka_uuid(id: &Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

use crate::status_patch::condition;

fn conditions(obs: &Observation) -> [Condition; 2] {
    let all_messages = || {
        obs.problems
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    match (obs.problems.first(), &obs.topic) {
        (Some(first), _) => [
            condition(READY, false, first.reason.as_str(), all_messages()),
            condition(DEGRADED, true, first.reason.as_str(), all_messages()),
        ],
        (None, Seen::Present(t)) => {
            let rf = t
                .replication_factor
                .map_or_else(|| "unknown".to_owned(), |rf| rf.to_string());
            [
                condition(
                    READY,
                    true,
                    "TopicReady",
                    format!(
                        "topic '{}' has {} partitions and replication factor {rf}",
                        t.name, t.partitions
                    ),
                ),
                condition(DEGRADED, false, "AsExpected", String::new()),
            ]
        }
        (None, _) => [
            condition(
                READY,
                false,
                "TopicMissing",
                "the topic is not on the brokers yet".to_owned(),
            ),
            condition(DEGRADED, false, "AsExpected", String::new()),
        ],
    }
}

/// The new status. Conditions keep their `lastTransitionTime` while their status stays; `now`
/// stamps the ones that flip.
pub fn compute(
    previous: Option<&TopicStatus>,
    obs: &Observation,
    now: k8s_openapi::jiff::Timestamp,
) -> TopicStatus {
    let previous = previous.cloned().unwrap_or_default();
    let conditions = crate::status_patch::stamp_conditions(
        conditions(obs),
        &previous.conditions,
        obs.generation,
        now,
    );
    let (topic_id, partitions, replication_factor) = match &obs.topic {
        Seen::Unknown => (
            previous.topic_id,
            previous.partitions,
            previous.replication_factor,
        ),
        Seen::Absent => (None, None, None),
        Seen::Present(t) => (
            t.id.as_ref().map(kafka_uuid),
            Some(t.partitions),
            t.replication_factor,
        ),
    };
    TopicStatus {
        observed_generation: obs.generation,
        conditions,
        topic_id,
        partitions,
        replication_factor,
    }
}

/// Writes `status` with server-side apply (the operator's one field manager), unless it
/// equals `previous`. Returns whether it wrote.
pub async fn patch(
    api: &Api<Topic>,
    name: &str,
    previous: Option<&TopicStatus>,
    status: &TopicStatus,
) -> Result<bool, Error> {
    crate::status_patch::patch_status(api, name, previous, status).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn get<'a>(s: &'a TopicStatus, type_: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    fn present() -> Seen {
        Seen::Present(TopicSummary {
            name: "orders".to_owned(),
            id: Some(Uuid::from_bytes([0xfb; 16])),
            partitions: 6,
            replication_factor: Some(3),
        })
    }

    fn obs(topic: Seen, problems: Vec<Problem>) -> Observation {
        Observation {
            generation: Some(7),
            topic,
            problems,
        }
    }

    #[test]
    fn a_topic_in_line_is_ready() {
        let s = compute(None, &obs(present(), vec![]), t(10));
        assert_eq!(s.observed_generation, Some(7));
        assert_eq!(s.topic_id.as_deref(), Some("-_v7-_v7-_v7-_v7-_v7-w"));
        assert_eq!((s.partitions, s.replication_factor), (Some(6), Some(3)));
        let ready = get(&s, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "TopicReady")
        );
        assert_eq!(
            ready.message,
            "topic 'orders' has 6 partitions and replication factor 3"
        );
        assert_eq!(ready.observed_generation, Some(7));
        assert_eq!(ready.last_transition_time, Time(t(10)));
        assert_eq!(get(&s, DEGRADED).status, "False");
    }

    #[test]
    fn problems_make_it_not_ready_and_degraded_with_the_first_reason() {
        let problems = vec![
            Problem::new(Reason::PartitionsBelowActual, "the topic has 8 partitions"),
            Problem::new(Reason::KafkaRejected, "unknown config x"),
        ];
        let s = compute(None, &obs(present(), problems), t(1));
        for type_ in [READY, DEGRADED] {
            let c = get(&s, type_);
            assert_eq!(c.reason, "PartitionsBelowActual");
            assert_eq!(c.message, "the topic has 8 partitions; unknown config x");
        }
        assert_eq!(get(&s, READY).status, "False");
        assert_eq!(get(&s, DEGRADED).status, "True");
        assert_eq!(
            s.partitions,
            Some(6),
            "what the brokers have is still shown"
        );
    }

    #[test]
    fn unknown_keeps_the_last_seen_topic_and_absent_clears_it() {
        let first = compute(None, &obs(present(), vec![]), t(1));
        let unreachable = vec![Problem::new(Reason::ClusterUnreachable, "no broker")];
        let s = compute(Some(&first), &obs(Seen::Unknown, unreachable), t(2));
        assert_eq!(s.topic_id, first.topic_id);
        assert_eq!(s.partitions, Some(6));
        assert_eq!(get(&s, READY).reason, "ClusterUnreachable");
        let gone = compute(Some(&s), &obs(Seen::Absent, vec![]), t(3));
        assert_eq!((gone.topic_id.as_deref(), gone.partitions), (None, None));
        assert_eq!(get(&gone, READY).reason, "TopicMissing");
    }

    #[test]
    fn transition_time_changes_only_when_status_flips() {
        let first = compute(None, &obs(present(), vec![]), t(100));
        let again = compute(Some(&first), &obs(present(), vec![]), t(200));
        assert_eq!(first, again, "nothing changed, so nothing to write");
        let bad = vec![Problem::new(Reason::KafkaRejected, "x")];
        let later = compute(Some(&again), &obs(present(), bad), t(300));
        assert_eq!(get(&later, READY).last_transition_time, Time(t(300)));
        assert_eq!(get(&later, DEGRADED).last_transition_time, Time(t(300)));
        let bad2 = vec![Problem::new(Reason::InvalidSpec, "y")];
        let still = compute(Some(&later), &obs(present(), bad2), t(400));
        assert_eq!(
            get(&still, READY).last_transition_time,
            Time(t(300)),
            "still False, only the reason changed"
        );
    }
}
