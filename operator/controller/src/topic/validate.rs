//! Checks a `Topic` and turns it into the model the later stages work from. Pure: no client.
//!
//! The CRD schema enforces most of these rules when a resource goes through the API server;
//! they are repeated because a CRD installed from an older release may lack a rule, and a
//! topic name the brokers would refuse should be reported on the resource, not as a Kafka error.
//! The rest the schema cannot say: Kafka's own internal topics are off limits, config keys
//! must look like config names, and values must not carry whitespace the broker would trim
//! (the stored value would never equal the spec, so the operator would rewrite it forever).

use std::collections::BTreeMap;

use sluice_crd::Topic;

pub use crate::kafka_cluster::validate::FieldError;

/// Annotation choosing what deleting the resource does to the Kafka topic.
pub const DELETION_POLICY_ANNOTATION: &str = "sluice.dev/deletion-policy";
/// Topics Kafka itself manages; a resource must never create, change or delete them.
pub const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
    "__cluster_metadata",
];
/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Most `spec.config` entries (the schema's `maxProperties`).
pub const MAX_CONFIG_ENTRIES: usize = 256;

/// What deleting the resource does to the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Delete the topic (the default).
    Delete,
    /// Keep the topic; only the resource goes.
    Retain,
}

/// A topic that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidTopic {
    /// The `KafkaCluster` in the resource's namespace.
    pub cluster: String,
    /// The topic's name in Kafka.
    pub name: String,
    pub partitions: i32,
    /// `None`: the cluster's `default.replication.factor`.
    pub replication_factor: Option<i16>,
    /// `spec.config`, sorted.
    pub config: BTreeMap<String, String>,
    pub deletion_policy: DeletionPolicy,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Validates `topic`, reporting every problem at once.
pub fn validate(topic: &Topic) -> Result<ValidTopic, Vec<FieldError>> {
    let mut errors = Vec::new();
    let spec = &topic.spec;

    if spec.cluster_ref.name.is_empty() {
        errors.push(err("spec.clusterRef.name", "is required"));
    }
    let name = match topic_name(topic) {
        Ok(name) => name.to_owned(),
        Err(e) => {
            errors.push(e);
            String::new()
        }
    };
    if spec.partitions < 1 {
        errors.push(err(
            "spec.partitions",
            format!("is {}; must be at least 1", spec.partitions),
        ));
    }
    let replication_factor = match spec.replication_factor {
        None => None,
        Some(n) => match i16::try_from(n) {
            Ok(rf) if rf >= 1 => Some(rf),
            _ => {
                errors.push(err(
                    "spec.replicationFactor",
                    format!("is {n}; must be between 1 and {}", i16::MAX),
                ));
                None
            }
        },
    };
    check_config(&spec.config, &mut errors);
    let deletion_policy = deletion_policy(topic).unwrap_or_else(|e| {
        errors.push(e);
        DeletionPolicy::Retain
    });

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ValidTopic {
        cluster: spec.cluster_ref.name.clone(),
        name,
        partitions: spec.partitions,
        replication_factor,
        config: spec.config.clone(),
        deletion_policy,
    })
}

/// The topic's Kafka name, if Kafka would accept it and it is not one of Kafka's own.
pub fn topic_name(topic: &Topic) -> Result<&str, FieldError> {
    let field = if topic.spec.topic_name.is_some() {
        "spec.topicName"
    } else {
        "metadata.name"
    };
    let name = topic.kafka_name();
    if name.is_empty() {
        return Err(err(field, "is required"));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(err(
            field,
            format!(
                "is {} characters; Kafka allows at most {MAX_TOPIC_NAME_LEN}",
                name.len()
            ),
        ));
    }
    let legal = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !legal || name == "." || name == ".." {
        return Err(err(
            field,
            format!(
                "{name:?} is not a Kafka topic name: use a-z, A-Z, 0-9, '.', '_' and '-', \
                 and not '.' or '..'"
            ),
        ));
    }
    if INTERNAL_TOPICS.contains(&name) {
        return Err(err(
            field,
            format!("{name:?} is internal to Kafka and cannot be managed by a Topic"),
        ));
    }
    Ok(name)
}

/// The `sluice.dev/deletion-policy` annotation: absent or `delete` deletes, `retain` keeps.
pub fn deletion_policy(topic: &Topic) -> Result<DeletionPolicy, FieldError> {
    let annotation = topic
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_POLICY_ANNOTATION));
    match annotation.map(String::as_str) {
        None | Some("delete") => Ok(DeletionPolicy::Delete),
        Some("retain") => Ok(DeletionPolicy::Retain),
        Some(other) => Err(err(
            format!("metadata.annotations[{DELETION_POLICY_ANNOTATION}]"),
            format!("is {other:?}; must be \"delete\" or \"retain\""),
        )),
    }
}

fn check_config(config: &BTreeMap<String, String>, errors: &mut Vec<FieldError>) {
    if config.len() > MAX_CONFIG_ENTRIES {
        errors.push(err(
            "spec.config",
            format!(
                "has {} entries; at most {MAX_CONFIG_ENTRIES} are allowed",
                config.len()
            ),
        ));
    }
    for (key, value) in config {
        let field = format!("spec.config[{key}]");
        let name_like = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_like {
            errors.push(err(
                field,
                "is not a config name: use letters, digits, '.', '_' and '-'",
            ));
            continue;
        }
        if value.trim() != value {
            errors.push(err(
                field,
                format!("{value:?} has leading or trailing whitespace; remove it"),
            ));
        } else if value.chars().any(char::is_control) {
            errors.push(err(field, "must not contain control characters"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crd::TopicSpec;

    fn topic(name: &str, spec: serde_json::Value) -> Topic {
        let mut full = serde_json::json!({"clusterRef": {"name": "demo"}, "partitions": 3});
        if let (Some(base), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        let spec: TopicSpec = serde_json::from_value(full).unwrap();
        let mut t = Topic::new(name, spec);
        t.metadata.namespace = Some("ns".to_owned());
        t
    }

    fn errors_of(t: &Topic) -> Vec<String> {
        match validate(t) {
            Ok(_) => Vec::new(),
            Err(errs) => errs.iter().map(ToString::to_string).collect(),
        }
    }

    fn annotated(mut t: Topic, policy: &str) -> Topic {
        t.metadata.annotations = Some(
            [(DELETION_POLICY_ANNOTATION.to_owned(), policy.to_owned())]
                .into_iter()
                .collect(),
        );
        t
    }

    #[test]
    fn defaults_are_filled_in() {
        let v = validate(&topic("orders", serde_json::json!({}))).unwrap();
        assert_eq!(
            v,
            ValidTopic {
                cluster: "demo".to_owned(),
                name: "orders".to_owned(),
                partitions: 3,
                replication_factor: None,
                config: BTreeMap::new(),
                deletion_policy: DeletionPolicy::Delete,
            }
        );
    }

    #[test]
    fn spec_topic_name_wins_and_settings_carry_over() {
        let t = topic(
            "orders",
            serde_json::json!({"topicName": "Orders_V1", "replicationFactor": 3,
                               "config": {"retention.ms": "1000", "cleanup.policy": "compact,delete"}}),
        );
        let v = validate(&annotated(t, "retain")).unwrap();
        assert_eq!(v.name, "Orders_V1");
        assert_eq!(v.replication_factor, Some(3));
        assert_eq!(v.config["cleanup.policy"], "compact,delete");
        assert_eq!(v.deletion_policy, DeletionPolicy::Retain);
        let explicit = annotated(topic("orders", serde_json::json!({})), "delete");
        assert_eq!(
            validate(&explicit).unwrap().deletion_policy,
            DeletionPolicy::Delete
        );
    }

    /// Each rule, alone, with the field its message must name.
    #[test]
    fn each_rule_names_its_field() {
        let long = "a".repeat(MAX_TOPIC_NAME_LEN + 1);
        let cases: Vec<(Topic, &str)> = vec![
            (
                topic("orders", serde_json::json!({"clusterRef": {"name": ""}})),
                "spec.clusterRef.name: is required",
            ),
            (
                topic("orders", serde_json::json!({"partitions": 0})),
                "spec.partitions: is 0; must be at least 1",
            ),
            (
                topic("orders", serde_json::json!({"replicationFactor": 0})),
                "spec.replicationFactor: is 0",
            ),
            (
                topic("orders", serde_json::json!({"replicationFactor": 40000})),
                "spec.replicationFactor: is 40000; must be between 1 and 32767",
            ),
            (
                topic("orders", serde_json::json!({"topicName": "a/b"})),
                "spec.topicName: \"a/b\" is not a Kafka topic name",
            ),
            (
                topic("orders", serde_json::json!({"topicName": ".."})),
                "spec.topicName: \"..\" is not a Kafka topic name",
            ),
            (
                topic("orders", serde_json::json!({"topicName": ""})),
                "spec.topicName: is required",
            ),
            (
                topic(&long, serde_json::json!({})),
                "metadata.name: is 250 characters; Kafka allows at most 249",
            ),
            (
                topic(
                    "orders",
                    serde_json::json!({"topicName": "__consumer_offsets"}),
                ),
                "spec.topicName: \"__consumer_offsets\" is internal to Kafka",
            ),
            (
                topic(
                    "orders",
                    serde_json::json!({"config": {"retention ms": "1"}}),
                ),
                "spec.config[retention ms]: is not a config name",
            ),
            (
                topic("orders", serde_json::json!({"config": {"": "1"}})),
                "spec.config[]: is not a config name",
            ),
            (
                topic(
                    "orders",
                    serde_json::json!({"config": {"retention.ms": " 1"}}),
                ),
                "spec.config[retention.ms]: \" 1\" has leading or trailing whitespace",
            ),
            (
                topic(
                    "orders",
                    serde_json::json!({"config": {"cleanup.policy": "delete\u{7}"}}),
                ),
                "spec.config[cleanup.policy]: must not contain control characters",
            ),
            (
                annotated(topic("orders", serde_json::json!({})), "keep"),
                "metadata.annotations[sluice.dev/deletion-policy]: is \"keep\"; must be",
            ),
        ];
        for (t, want) in &cases {
            let got = errors_of(t);
            assert!(
                got.len() == 1 && got[0].starts_with(want),
                "{:?}: want one error starting {want:?}, got {got:?}",
                t.spec
            );
        }
    }

    #[test]
    fn too_many_config_entries() {
        let config: serde_json::Map<String, serde_json::Value> = (0..=MAX_CONFIG_ENTRIES)
            .map(|i| (format!("k{i}"), serde_json::json!("v")))
            .collect();
        let got = errors_of(&topic("orders", serde_json::json!({ "config": config })));
        assert_eq!(
            got,
            ["spec.config: has 257 entries; at most 256 are allowed"]
        );
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let t = topic(
            "orders",
            serde_json::json!({"partitions": -1, "replicationFactor": -2, "topicName": "a b",
                               "config": {"x y": "1"}}),
        );
        assert_eq!(errors_of(&t).len(), 4, "{:?}", errors_of(&t));
    }

    #[test]
    fn deletion_policy_is_spelled_exactly() {
        let t = annotated(topic("orders", serde_json::json!({})), "Retain");
        assert!(deletion_policy(&t).is_err());
        let t = annotated(topic("orders", serde_json::json!({})), "retain");
        assert_eq!(deletion_policy(&t), Ok(DeletionPolicy::Retain));
    }
}
