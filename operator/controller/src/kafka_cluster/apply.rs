//! Server-side apply of the desired objects, under one field manager, skipping writes that
//! would change nothing.
//!
//! How "nothing changes" is decided, without parsing managedFields: before applying, the
//! operator stamps each desired object with [`APPLIED_HASH_ANNOTATION`], the SHA-256 of the
//! object as built. The live object is fetched and the apply is skipped only when both hold:
//! - the live hash equals the desired hash — so a change the operator wants, including
//!   removing a field, is never skipped (a removal leaves the rest a subset of the live object);
//! - every field of the desired object has the same value in the live object — so someone
//!   else's edit of a field the operator sets (drift) is put back.
//!
//! Fields the API server adds (defaults, status) are ignored by the subset test. A field the
//! server rewrites into another spelling (a quantity such as `0.5` becoming `500m`) makes the
//! subset test fail every time; the apply then goes through and is a no-op on the server, which
//! costs a request but writes nothing.

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::properties::hash;
use crate::error::Error;

/// The one field manager of everything the operator writes, status included.
pub const FIELD_MANAGER: &str = "sluice-operator";
/// Annotation recording the hash of what the operator last applied.
pub const APPLIED_HASH_ANNOTATION: &str = "sluice.dev/applied-hash";

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// `object` as JSON with the applied-hash annotation set, and that hash.
pub fn stamp<K: Serialize>(object: &K) -> Result<(Value, String), Error> {
    let mut json = serde_json::to_value(object).map_err(|e| Error::json("object", e))?;
    // serde_json's map is sorted, so the text (and the hash) does not depend on field order.
    let digest = hash(&json.to_string());
    if let Some(meta) = json.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(map) = annotations.as_object_mut() {
            map.insert(
                APPLIED_HASH_ANNOTATION.to_owned(),
                Value::String(digest.clone()),
            );
        }
    }
    Ok((json, digest))
}

/// Whether applying `desired` (already stamped with `digest`) over `live` would change anything
/// the operator cares about.
pub fn needs_apply(desired: &Value, digest: &str, live: &Value) -> bool {
    let live_digest = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
        .and_then(Value::as_str);
    live_digest != Some(digest) || !is_subset(desired, live)
}

/// Every field of `want` is in `have` with an equal value; lists must have the same length and
/// match element by element.
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| is_subset(wv, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(wv, hv)| is_subset(wv, hv))
        }
        _ => want == have,
    }
}

/// Server-side applies `object` (forcing ownership of its fields) unless nothing would change.
pub async fn apply<K>(api: &Api<K>, object: &K) -> Result<Outcome, Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = object.name_any();
    let (desired, digest) = stamp(object)?;
    let live = api.get_opt(&name).await?;
    if let Some(live) = &live {
        let live = serde_json::to_value(live).map_err(|e| Error::json(name.clone(), e))?;
        if !needs_apply(&desired, &digest, &live) {
            return Ok(Outcome::Unchanged);
        }
    }
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await?;
    Ok(if live.is_some() {
        Outcome::Updated
    } else {
        Outcome::Created
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    fn config_map(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some("c".to_owned()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// What the API server would return after applying `stamped`: the same plus server fields.
    fn as_served(stamped: &Value) -> Value {
        let mut live = stamped.clone();
        let meta = live["metadata"].as_object_mut().unwrap();
        meta.insert("uid".to_owned(), json!("u-1"));
        meta.insert("resourceVersion".to_owned(), json!("42"));
        meta.insert(
            "managedFields".to_owned(),
            json!([{"manager": "sluice-operator"}]),
        );
        live
    }

    #[test]
    fn stamp_sets_a_stable_hash() {
        let (a, digest_a) = stamp(&config_map(&[("k", "v")])).unwrap();
        let (_, digest_b) = stamp(&config_map(&[("k", "v")])).unwrap();
        let (_, digest_c) = stamp(&config_map(&[("k", "w")])).unwrap();
        assert_eq!(digest_a, digest_b);
        assert_ne!(digest_a, digest_c);
        assert_eq!(
            a["metadata"]["annotations"][APPLIED_HASH_ANNOTATION],
            digest_a
        );
    }

    #[test]
    fn unchanged_object_is_skipped() {
        let (desired, digest) = stamp(&config_map(&[("k", "v")])).unwrap();
        assert!(!needs_apply(&desired, &digest, &as_served(&desired)));
    }

    #[test]
    fn a_change_is_applied() {
        let (old, _) = stamp(&config_map(&[("k", "v")])).unwrap();
        let (new, digest) = stamp(&config_map(&[("k", "v2")])).unwrap();
        assert!(needs_apply(&new, &digest, &as_served(&old)));
    }

    #[test]
    fn removing_a_field_is_applied() {
        // The new object is a subset of the old one, so only the hash catches it.
        let (old, _) = stamp(&config_map(&[("a", "1"), ("b", "2")])).unwrap();
        let (new, digest) = stamp(&config_map(&[("a", "1")])).unwrap();
        assert!(is_subset(&new["data"], &old["data"]));
        assert!(needs_apply(&new, &digest, &as_served(&old)));
    }

    #[test]
    fn drift_is_put_back() {
        let (desired, digest) = stamp(&config_map(&[("k", "v")])).unwrap();
        let mut live = as_served(&desired);
        live["data"]["k"] = json!("edited by hand");
        assert!(needs_apply(&desired, &digest, &live));
    }

    #[test]
    fn object_applied_by_someone_else_is_taken_over() {
        let (desired, digest) = stamp(&config_map(&[("k", "v")])).unwrap();
        let mut live = as_served(&desired);
        live["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(APPLIED_HASH_ANNOTATION);
        assert!(needs_apply(&desired, &digest, &live));
    }

    #[test]
    fn subset_rules() {
        assert!(is_subset(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!is_subset(&json!({"a": 1, "b": 2}), &json!({"a": 1})));
        assert!(is_subset(
            &json!({"l": [{"x": 1}]}),
            &json!({"l": [{"x": 1, "default": true}]})
        ));
        assert!(!is_subset(&json!({"l": [1]}), &json!({"l": [1, 2]})));
        assert!(!is_subset(&json!({"l": [1, 2]}), &json!({"l": [2, 1]})));
        assert!(!is_subset(&json!("1"), &json!(1)));
    }
}
