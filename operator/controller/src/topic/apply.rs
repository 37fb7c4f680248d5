//! Carries out a [`Plan`] with admin calls: CreateTopics, CreatePartitions and
//! IncrementalAlterConfigs, for this one topic only.
//!
//! A refusal by the brokers (`AdminError::Kafka` that is not retriable, e.g. INVALID_CONFIG for
//! an unknown key) is reported as a problem and does not stop the other steps: a bad config key
//! should not hold back new partitions. Anything that may pass on retry (transport trouble,
//! a retriable Kafka error, a topic created concurrently) stops the apply and is returned as
//! the error, so that the reconcile is retried with backoff.

use sluice_kafka_admin::{AdminClient, AdminError};

use super::build::{ConfigChange, Partitions, Plan};
use crate::error::Error;

/// A change made to the topic, for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created {
        partitions: i32,
        replication_factor: Option<i16>,
        configs: usize,
    },
    PartitionsAdded {
        from: i32,
        to: i32,
    },
    Config(Vec<ConfigChange>),
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct Applied {
    pub changes: Vec<Change>,
    /// The brokers' refusals, each naming the call, the Kafka error and the broker's message.
    pub rejected: Vec<String>,
    /// A failure worth retrying soon; the steps after it were not tried.
    pub failed: Option<Error>,
}

pub async fn apply(admin: &AdminClient, bootstrap: &str, name: &str, plan: &Plan) -> Applied {
    let mut applied = Applied::default();
    match plan {
        Plan::Create(new) => {
            let result = admin.create_topic(new).await.map(|_| ());
            let change = Change::Created {
                partitions: new.partitions.unwrap_or(0),
                replication_factor: new.replication_factor,
                configs: new.configs.len(),
            };
            applied.record(bootstrap, result, change);
        }
        Plan::Update(update) => {
            if let Partitions::Grow { from, to } = update.partitions {
                let result = admin.create_partitions(name, to).await;
                if !applied.record(bootstrap, result, Change::PartitionsAdded { from, to }) {
                    return applied;
                }
            }
            if !update.config.is_empty() {
                let result = admin
                    .alter_topic_configs(name, &update.config.set, &update.config.delete)
                    .await;
                let change = Change::Config(update.config.changes.clone());
                applied.record(bootstrap, result, change);
            }
        }
    }
    applied
}

impl Applied {
    /// Notes how one step went; `false` when the apply must stop here.
    fn record(&mut self, bootstrap: &str, result: Result<(), AdminError>, change: Change) -> bool {
        match result {
            Ok(()) => {
                self.changes.push(change);
                true
            }
            Err(e) if is_refusal(&e) => {
                self.rejected.push(e.to_string());
                true
            }
            Err(source) => {
                self.failed = Some(Error::Admin {
                    bootstrap: bootstrap.to_owned(),
                    source,
                });
                false
            }
        }
    }
}

/// A definite no from the brokers that retrying will not change until the spec (or the
/// cluster) does. A topic that already exists is not one: it was created between the read and
/// the create, and the next reconcile adopts it.
pub fn is_refusal(e: &AdminError) -> bool {
    matches!(e, AdminError::Kafka { .. }) && !e.is_retriable() && !e.is_topic_already_exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_kafka_admin::{ApiKey, ResponseError};

    fn kafka(error: ResponseError) -> AdminError {
        AdminError::Kafka {
            api: ApiKey::CreateTopics,
            topic: "orders".to_owned(),
            error,
            message: None,
        }
    }

    #[test]
    fn refusals_are_the_brokers_final_word() {
        assert!(is_refusal(&kafka(ResponseError::InvalidConfig)));
        assert!(is_refusal(&kafka(ResponseError::InvalidReplicationFactor)));
        assert!(is_refusal(&kafka(ResponseError::PolicyViolation)));
        assert!(!is_refusal(&kafka(ResponseError::TopicAlreadyExists)));
        assert!(!is_refusal(&kafka(ResponseError::NotController)));
        assert!(!is_refusal(&AdminError::NoBroker("x".to_owned())));
        assert!(!is_refusal(&AdminError::Timeout {
            op: "x".to_owned(),
            after: std::time::Duration::from_secs(1),
        }));
    }
}
