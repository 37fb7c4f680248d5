//! Writing a resource's status: one server-side apply under the operator's field manager, skipped when the
//! status did not change. Shared by the KafkaCluster and Topic reconcilers.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::kafka_cluster::apply::FIELD_MANAGER;

/// Writes `status` unless it equals `previous`. Returns whether it wrote.
pub async fn patch_status<K, S>(
    api: &Api<K>,
    name: &str,
    previous: Option<&S>,
    status: &S,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if previous == Some(status) {
        return Ok(false);
    }
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(true)
}

/// Conditions keep their `lastTransitionTime` while their status stays; `now` stamps the ones that flip.
pub fn stamp_conditions(
    conditions: impl IntoIterator<Item = Condition>,
    previous: &[Condition],
    generation: Option<i64>,
    now: k8s_openapi::jiff::Timestamp,
) -> Vec<Condition> {
    conditions
        .into_iter()
        .map(|mut c| {
            c.observed_generation = generation;
            c.last_transition_time = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == c.status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            c
        })
        .collect()
}

/// A condition before [`stamp_conditions`] dates it.
pub fn condition(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: None,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    }
}
