//! What every reconcile of every controller shares: the API client, the operator's settings,
//! metrics, an event recorder and the per-resource retry backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use crate::kafka_cluster::Settings;
use crate::kafka_cluster::role::MANAGED_BY;
use crate::metrics::Metrics;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Consecutive failures per resource (`ns/name`), for the retry backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: MANAGED_BY.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            failures: Mutex::default(),
        }
    }

    /// Retry delay after another failure of `key`: 5 s doubling to 5 min.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        crate::kafka_cluster::backoff(*n)
    }

    pub fn reset_backoff(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Publishes an Event about `object`.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            // The Events API caps a note at 1 kB.
            note: Some(truncate(note, 1000)),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }
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

/// A failure of kube-runtime's finalizer helper as the operator's error: the reconcile's own
/// error as it is, the rest naming the finalizer and the object.
pub fn finalizer_error(
    e: kube::runtime::finalizer::Error<crate::error::Error>,
    kind: &'static str,
    finalizer: &'static str,
    object: String,
) -> crate::error::Error {
    use crate::error::Error;
    use kube::runtime::finalizer::Error as F;
    match e {
        F::ApplyFailed(e) | F::CleanupFailed(e) => e,
        F::AddFinalizer(e) | F::RemoveFinalizer(e) => Error::Kube(e),
        F::UnnamedObject => Error::MissingField {
            kind,
            field: "metadata.name",
        },
        F::InvalidFinalizer => Error::Finalizer {
            finalizer,
            object,
            reason: "not a valid JSON pointer".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo".to_owned(), 2), "h");
        assert_eq!(truncate("abc".to_owned(), 10), "abc");
    }
}
