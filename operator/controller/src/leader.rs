//! Leader election with a `coordination.k8s.io/v1` Lease, so that only one of several operator
//! replicas reconciles.
//!
//! The holder renews the lease every `renew_every`; another replica takes it over once
//! `renewTime + leaseDurationSeconds` has passed. Every write is a server-side apply carrying
//! the `resourceVersion` that was read, so two replicas racing for the same lease cannot both
//! win: the second write fails with a conflict. A leader that cannot renew for a whole lease
//! duration, or finds the lease taken, stops (the process exits and restarts as a candidate);
//! on shutdown it releases the lease so that a successor need not wait for it to expire.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::error::Error;
use crate::kafka_cluster::apply::FIELD_MANAGER;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica, usually its pod name.
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

/// What to do about the lease as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Free or expired: take it.
    Take,
    /// Ours: renew it.
    Renew,
    /// Someone else's for this much longer.
    Wait { holder: String, remaining: Duration },
}

/// Pure: decides from the lease's spec (`None` if there is no lease yet) and the time.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Take;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Decision::Take;
    }
    if holder == identity {
        return Decision::Renew;
    }
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0.as_millisecond())
        .unwrap_or(i64::MIN);
    let duration_ms = i64::from(spec.lease_duration_seconds.unwrap_or(0)).saturating_mul(1000);
    let expires = renewed.saturating_add(duration_ms);
    let now = now.as_millisecond();
    if expires <= now {
        Decision::Take
    } else {
        Decision::Wait {
            holder: holder.to_owned(),
            remaining: Duration::from_millis(u64::try_from(expires - now).unwrap_or(0)),
        }
    }
}

pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaseConfig) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// One attempt to take or renew the lease. `Ok(true)` if this replica holds it afterwards.
    pub async fn try_hold(&self) -> Result<bool, Error> {
        let now = Timestamp::now();
        let lease = self.api.get_opt(&self.config.name).await?;
        let spec = lease.as_ref().and_then(|l| l.spec.as_ref());
        let decision = decide(spec, &self.config.identity, now);
        let transitions = spec.and_then(|s| s.lease_transitions).unwrap_or(0);
        let (acquire_time, transitions) = match decision {
            Decision::Wait { .. } => return Ok(false),
            Decision::Renew => (
                spec.and_then(|s| s.acquire_time.clone())
                    .unwrap_or(MicroTime(now)),
                transitions,
            ),
            Decision::Take => (MicroTime(now), transitions + 1),
        };
        let duration_secs = i32::try_from(self.config.duration.as_secs()).unwrap_or(i32::MAX);
        let spec = json!({
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": duration_secs,
            "acquireTime": acquire_time,
            "renewTime": MicroTime(now),
            "leaseTransitions": transitions,
        });
        let result = match lease.and_then(|l| l.metadata.resource_version) {
            None => {
                let lease: Lease = serde_json::from_value(json!({
                    "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                    "spec": spec,
                }))
                .map_err(|e| Error::json("Lease", e))?;
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            Some(resource_version) => self
                .api
                .patch(
                    &self.config.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(json!({
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": self.config.name, "resourceVersion": resource_version},
                        "spec": spec,
                    })),
                )
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => Ok(true),
            // Another replica wrote first (created the lease, or changed it since we read it).
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) -> Result<(), Error> {
        loop {
            match self.try_hold().await {
                Ok(true) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "acquired leadership");
                    return Ok(());
                }
                Ok(false) => {
                    tracing::debug!(lease = %self.config.name, "lease held elsewhere; waiting")
                }
                Err(e) => tracing::warn!(error = %e, "cannot read or write the leader lease"),
            }
            tokio::time::sleep(self.config.renew_every).await;
        }
    }

    /// Renews the lease until leadership is lost, and says why.
    pub async fn hold(&self) -> Error {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.renew_every).await;
            match self.try_hold().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    return Error::LeaseLost {
                        lease: self.config.name.clone(),
                        reason: "another replica holds it".to_owned(),
                    };
                }
                Err(e) if last_renewal.elapsed() >= self.config.duration => {
                    return Error::LeaseLost {
                        lease: self.config.name.clone(),
                        reason: format!("not renewed for a whole lease duration: {e}"),
                    };
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the leader lease; retrying"),
            }
        }
    }

    /// Steps down: clears the holder so that another replica can take over at once.
    pub async fn release(&self) -> Result<(), Error> {
        let Some(lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.config.identity.as_str());
        if !ours {
            return Ok(());
        }
        self.api
            .patch(
                &self.config.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.config.name, "resourceVersion": lease.metadata.resource_version},
                    "spec": {"holderIdentity": ""},
                })),
            )
            .await?;
        tracing::info!(lease = %self.config.name, "released leadership");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn lease(holder: Option<&str>, renewed: Option<i64>, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: renewed.map(|s| MicroTime(at(s))),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, "me", at(100)), Decision::Take);
        assert_eq!(
            decide(Some(&lease(None, Some(99), 15)), "me", at(100)),
            Decision::Take
        );
        assert_eq!(
            decide(Some(&lease(Some(""), Some(99), 15)), "me", at(100)),
            Decision::Take
        );
        assert_eq!(
            decide(Some(&lease(Some("me"), Some(1), 15)), "me", at(100)),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&lease(Some("other"), Some(95), 15)), "me", at(100)),
            Decision::Wait {
                holder: "other".to_owned(),
                remaining: Duration::from_secs(10)
            }
        );
        assert_eq!(
            decide(Some(&lease(Some("other"), Some(85), 15)), "me", at(100)),
            Decision::Take
        );
        // A holder that never renewed is expired.
        assert_eq!(
            decide(Some(&lease(Some("other"), None, 15)), "me", at(100)),
            Decision::Take
        );
    }
}
