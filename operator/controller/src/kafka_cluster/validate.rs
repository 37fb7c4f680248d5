//! Checks a `KafkaCluster` and turns it into the model `build` renders. Pure: no client.
//!
//! The CRD schema already enforces most rules when a resource is created through the API
//! server; they are checked again here because `sluice-operator render` reads files that never
//! went through the API server, and a CRD installed from an older release may lack a rule. The
//! rest are rules the schema cannot express: the name must fit the Service and pod names derived
//! from it, and replication settings in `spec.config` must fit the broker count.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use sluice_crd::{
    CONTROLLER_REPLICAS, DEFAULT_STORAGE_SIZE, KafkaCluster, ListenerAuthentication, ListenerSpec,
    MAX_BROKERS, OPERATOR_OWNED_CONFIG_KEYS, OPERATOR_OWNED_CONFIG_PREFIX, RESERVED_LISTENER_NAMES,
    RESERVED_PORTS, Storage,
};

/// Longest cluster name: `NAME-controller` must stay within the 52 characters a StatefulSet
/// name may have (its pods' `controller-revision-hash` label appends 11 more, up to 63).
pub const MAX_NAME_LEN: usize = 52 - "-controller".len();

/// Settings in `spec.config` that are replica counts and so cannot exceed the broker count.
const REPLICATION_KEYS: &[&str] = &[
    "default.replication.factor",
    "offsets.topic.replication.factor",
    "min.insync.replicas",
];

/// One problem with a resource, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// A cluster that passed validation, with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidCluster {
    pub name: String,
    pub namespace: String,
    /// Owner of every object the operator creates; `None` when rendering a file that has no uid.
    pub owner: Option<OwnerReference>,
    pub image: String,
    pub controllers: ValidRole,
    pub brokers: ValidRole,
    /// `spec.config`, sorted.
    pub config: BTreeMap<String, String>,
    /// Bytes/s a broker may spend on replicas the operator moves; 0: unthrottled.
    pub move_throttle: u64,
    /// The client listeners, at least one.
    pub listeners: Vec<ValidListener>,
    /// `spec.authorization.superUsers` when authorization is on.
    pub authorization: Option<Vec<String>>,
}

impl ValidCluster {
    /// Whether the spec asks for any security: a TLS or authenticated listener, or ACLs. A cluster
    /// created so has its nodes talk over mutual TLS.
    pub fn wants_security(&self) -> bool {
        self.authorization.is_some()
            || self
                .listeners
                .iter()
                .any(|l| l.tls.is_some() || l.authentication.is_some())
    }
}

/// A client listener with its name checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidListener {
    /// Lower-case; Kafka's listener name is this upper-cased.
    pub name: String,
    pub port: i32,
    pub tls: Option<ListenerCertificate>,
    pub authentication: Option<ListenerAuthentication>,
}

impl ValidListener {
    /// The listener's name as Kafka sees it.
    pub fn kafka_name(&self) -> String {
        self.name.to_ascii_uppercase()
    }

    /// Kafka's security protocol of the listener.
    pub fn protocol(&self) -> &'static str {
        let sasl = self
            .authentication
            .is_some_and(|a| a != ListenerAuthentication::Tls);
        match (self.tls.is_some(), sasl) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }
}

/// Where a TLS listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerCertificate {
    /// Issued by the operator from the cluster CA.
    Issued,
    /// A `kubernetes.io/tls` Secret the user provides.
    Secret(String),
}

/// One role (controllers or brokers) with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRole {
    pub replicas: i32,
    pub pvc_retention: sluice_crd::PvcRetention,
    pub storage: ValidStorage,
    pub resources: Option<ResourceRequirements>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub affinity: Option<Affinity>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidStorage {
    Ephemeral,
    Persistent {
        size: String,
        storage_class_name: Option<String>,
    },
}

/// Validates `kc`; `default_image` is the operator's `--broker-image` and `default_namespace`
/// is used when the resource has none (only when rendering a file).
pub fn validate(
    kc: &KafkaCluster,
    default_image: &str,
    default_namespace: &str,
) -> Result<ValidCluster, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = kc.metadata.name.clone().unwrap_or_default();
    check_name(&name, &mut errors);
    let namespace = kc
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| default_namespace.to_owned());
    let spec = &kc.spec;

    let image = spec
        .image
        .clone()
        .unwrap_or_else(|| default_image.to_owned());
    if image.trim().is_empty() {
        errors.push(err("spec.image", "must not be empty"));
    }

    if !CONTROLLER_REPLICAS.contains(&spec.controllers.replicas) {
        errors.push(err(
            "spec.controllers.replicas",
            format!(
                "is {}; must be 1, 3 or 5 (a quorum needs an odd size)",
                spec.controllers.replicas
            ),
        ));
    }
    if !(1..=MAX_BROKERS).contains(&spec.brokers.replicas) {
        errors.push(err(
            "spec.brokers.replicas",
            format!(
                "is {}; must be between 1 and {MAX_BROKERS}",
                spec.brokers.replicas
            ),
        ));
    }
    let controller_storage = storage(
        "spec.controllers.storage",
        &spec.controllers.storage,
        &mut errors,
    );
    let broker_storage = storage("spec.brokers.storage", &spec.brokers.storage, &mut errors);
    check_config(&spec.config, spec.brokers.replicas, &mut errors);
    let listeners = listeners(&spec.listeners, &mut errors);
    let authorization = spec.authorization.as_ref().map(|a| {
        for (i, user) in a.super_users.iter().enumerate() {
            let name = user.strip_prefix("User:").unwrap_or_default();
            if name.is_empty() || name.contains(';') {
                errors.push(err(
                    format!("spec.authorization.superUsers[{i}]"),
                    format!("{user:?} must be User:NAME, without ';'"),
                ));
            }
        }
        a.super_users.clone()
    });

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ValidCluster {
        owner: kc.controller_owner_ref(&()),
        name,
        namespace,
        image,
        controllers: ValidRole {
            replicas: spec.controllers.replicas,
            pvc_retention: spec.controllers.pvc_retention,
            storage: controller_storage,
            resources: spec.controllers.resources.clone(),
            node_selector: spec.controllers.node_selector.clone(),
            tolerations: spec.controllers.tolerations.clone(),
            affinity: spec.controllers.affinity.clone(),
        },
        brokers: ValidRole {
            replicas: spec.brokers.replicas,
            pvc_retention: spec.brokers.pvc_retention,
            storage: broker_storage,
            resources: spec.brokers.resources.clone(),
            node_selector: spec.brokers.node_selector.clone(),
            tolerations: spec.brokers.tolerations.clone(),
            affinity: spec.brokers.affinity.clone(),
        },
        config: spec.config.clone(),
        move_throttle: spec
            .brokers
            .move_throttle_bytes_per_second
            .unwrap_or(sluice_crd::DEFAULT_MOVE_THROTTLE)
            .max(0) as u64,
        listeners,
        authorization,
    })
}

/// The client listeners (the default `plaintext` on 9092 when none are given), each checked.
fn listeners(specs: &[ListenerSpec], errors: &mut Vec<FieldError>) -> Vec<ValidListener> {
    let default = [ListenerSpec::default_plaintext()];
    let specs = if specs.is_empty() {
        &default[..]
    } else {
        specs
    };
    let mut out: Vec<ValidListener> = Vec::new();
    for (i, l) in specs.iter().enumerate() {
        let field = |f: &str| format!("spec.listeners[{i}].{f}");
        let good_name = l.name.len() <= 11
            && l.name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase())
            && l.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !good_name || RESERVED_LISTENER_NAMES.contains(&l.name.as_str()) {
            errors.push(err(
                field("name"),
                format!(
                    "{:?} must be 1 to 11 lower-case letters and digits starting with a letter, \
                     and not controller or replication",
                    l.name
                ),
            ));
        }
        if !(1024..=65535).contains(&l.port) || RESERVED_PORTS.contains(&l.port) {
            errors.push(err(
                field("port"),
                format!(
                    "is {}; must be between 1024 and 65535 and not 9091, 9093 or 9095 (the \
                     operator uses those)",
                    l.port
                ),
            ));
        }
        if out.iter().any(|o| o.name == l.name) {
            errors.push(err(field("name"), format!("{:?} is used twice", l.name)));
        }
        if out.iter().any(|o| o.port == l.port) {
            errors.push(err(field("port"), format!("{} is used twice", l.port)));
        }
        if l.certificate_secret.is_some() && !l.tls {
            errors.push(err(field("certificateSecret"), "needs tls: true"));
        }
        if l.authentication == Some(ListenerAuthentication::Tls) && !l.tls {
            errors.push(err(
                field("authentication"),
                "tls (client certificates) needs tls: true",
            ));
        }
        out.push(ValidListener {
            name: l.name.clone(),
            port: l.port,
            tls: l.tls.then(|| match &l.certificate_secret {
                Some(secret) => ListenerCertificate::Secret(secret.clone()),
                None => ListenerCertificate::Issued,
            }),
            authentication: l.authentication,
        });
    }
    out
}

/// Services are named after the cluster, so the name must be a DNS-1035 label short enough for
/// every derived name.
fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    if name.is_empty() {
        errors.push(err("metadata.name", "is required"));
        return;
    }
    let bytes = name.as_bytes();
    let valid_chars = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if !valid_chars || !bytes[0].is_ascii_lowercase() || bytes[bytes.len() - 1] == b'-' {
        errors.push(err(
            "metadata.name",
            format!(
                "{name:?} must start with a letter and hold only a-z, 0-9 and '-' (not ending \
                 in '-'): Service names are derived from it"
            ),
        ));
    }
    if name.len() > MAX_NAME_LEN {
        errors.push(err(
            "metadata.name",
            format!(
                "is {} characters; at most {MAX_NAME_LEN} fit the StatefulSet and pod names \
                 derived from it",
                name.len()
            ),
        ));
    }
}

fn storage(field: &str, storage: &Storage, errors: &mut Vec<FieldError>) -> ValidStorage {
    if storage.ephemeral {
        if storage.size.is_some() || storage.storage_class_name.is_some() {
            errors.push(err(
                field,
                "ephemeral storage takes neither size nor storageClassName",
            ));
        }
        return ValidStorage::Ephemeral;
    }
    let size = storage
        .size
        .clone()
        .unwrap_or_else(|| DEFAULT_STORAGE_SIZE.to_owned());
    if !is_positive_quantity(&size) {
        errors.push(err(
            format!("{field}.size"),
            format!("{size:?} is not a positive quantity such as 10Gi or 500Mi"),
        ));
    }
    if let Some(class) = &storage.storage_class_name
        && class.trim().is_empty()
    {
        errors.push(err(
            format!("{field}.storageClassName"),
            "must not be empty (leave it out for the default class)",
        ));
    }
    ValidStorage::Persistent {
        size,
        storage_class_name: storage.storage_class_name.clone(),
    }
}

/// A decimal number with an optional binary or decimal SI suffix, greater than zero. Kubernetes
/// accepts a few more spellings (exponents); volume sizes are written this way in practice.
fn is_positive_quantity(q: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "",
    ];
    let Some(number) = SUFFIXES.iter().find_map(|s| q.strip_suffix(s)) else {
        return false;
    };
    let (whole, fraction) = match number.split_once('.') {
        // "1." and "1.5." are not numbers.
        Some((_, "")) => return false,
        Some(parts) => parts,
        None => (number, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !whole.is_empty()
        && digits(whole)
        && digits(fraction)
        && whole.bytes().chain(fraction.bytes()).any(|b| b != b'0')
}

/// Security settings the operator renders from `spec.listeners` and `spec.authorization`. Not in
/// the schema's rule (its CEL cost is near the API server's budget), so reported by the operator.
fn is_security_key(key: &str) -> bool {
    const KEYS: &[&str] = &[
        "inter.broker.listener.name",
        "authorizer.class.name",
        "super.users",
        "allow.everyone.if.no.acl.found",
        "ssl.client.auth",
        "ssl.principal.mapping.rules",
        "ssl.endpoint.identification.algorithm",
        "sasl.enabled.mechanisms",
        "sasl.mechanism.inter.broker.protocol",
        "sasl.mechanism.controller.protocol",
    ];
    KEYS.contains(&key)
        || key.starts_with("ssl.keystore.")
        || key.starts_with("ssl.truststore.")
        || key.ends_with(".sasl.jaas.config")
        || key
            .strip_prefix("listener.name.")
            .is_some_and(|rest| rest.contains(".ssl.") || rest.contains("sasl"))
}

fn check_config(config: &BTreeMap<String, String>, brokers: i32, errors: &mut Vec<FieldError>) {
    let owned: Vec<&str> = config
        .keys()
        .map(String::as_str)
        .filter(|k| {
            OPERATOR_OWNED_CONFIG_KEYS.contains(k) || k.starts_with(OPERATOR_OWNED_CONFIG_PREFIX)
        })
        .collect();
    if !owned.is_empty() {
        errors.push(err(
            "spec.config",
            format!(
                "must not set {}: the operator manages node ids, listeners, the controller \
                 quorum, log directories and the cluster id",
                owned.join(", ")
            ),
        ));
    }
    let security: Vec<&str> = config
        .keys()
        .map(String::as_str)
        .filter(|k| is_security_key(k))
        .collect();
    if !security.is_empty() {
        errors.push(err(
            "spec.config",
            format!(
                "must not set {}: use spec.listeners and spec.authorization (the operator renders \
                 TLS, SASL and the authorizer, and a setting here could undo how nodes know each \
                 other)",
                security.join(", ")
            ),
        ));
    }
    for (key, value) in config {
        let field = format!("spec.config[{key}]");
        // Keys and values are written verbatim into server.properties: a separator in a key or
        // a line break in a value would inject other settings.
        if key.is_empty()
            || key
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '=' | ':' | '#' | '!'))
        {
            errors.push(err(
                field.clone(),
                "a key must be non-empty and hold no whitespace, '=', ':', '#' or '!'",
            ));
        }
        if value.chars().any(char::is_control) {
            errors.push(err(
                field.clone(),
                "a value must not contain line breaks or other control characters",
            ));
        }
        if REPLICATION_KEYS.contains(&key.as_str()) {
            match value.trim().parse::<i64>() {
                Ok(n) if n >= 1 && n <= i64::from(brokers) => {}
                Ok(n) if n >= 1 => errors.push(err(
                    field,
                    format!(
                        "{n} exceeds spec.brokers.replicas ({brokers}): there are not enough \
                         brokers to hold that many replicas"
                    ),
                )),
                _ => errors.push(err(field, format!("{value:?} is not a positive integer"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crd::KafkaClusterSpec;

    fn cluster(name: &str, spec: serde_json::Value) -> KafkaCluster {
        let spec: KafkaClusterSpec = serde_json::from_value(spec).unwrap();
        let mut kc = KafkaCluster::new(name, spec);
        kc.metadata.namespace = Some("ns".to_owned());
        kc
    }

    fn errors(name: &str, spec: serde_json::Value) -> Vec<String> {
        match validate(&cluster(name, spec), "img:1", "default") {
            Ok(_) => Vec::new(),
            Err(errs) => errs.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let v = validate(&cluster("demo", serde_json::json!({})), "img:1", "default").unwrap();
        assert_eq!(v.name, "demo");
        assert_eq!(v.namespace, "ns");
        assert_eq!(v.image, "img:1");
        assert_eq!(v.controllers.replicas, 3);
        assert_eq!(v.brokers.replicas, 3);
        assert_eq!(
            v.brokers.storage,
            ValidStorage::Persistent {
                size: "10Gi".to_owned(),
                storage_class_name: None
            }
        );
        // No uid (not read from an API server), so no owner reference.
        assert_eq!(v.owner, None);
    }

    #[test]
    fn namespace_falls_back_and_owner_comes_from_uid() {
        let mut kc = cluster("demo", serde_json::json!({"image": "mine:2"}));
        kc.metadata.namespace = None;
        kc.metadata.uid = Some("1234".to_owned());
        let v = validate(&kc, "img:1", "fallback").unwrap();
        assert_eq!(v.namespace, "fallback");
        assert_eq!(v.image, "mine:2");
        let owner = v.owner.unwrap();
        assert_eq!(owner.uid, "1234");
        assert_eq!(owner.kind, "KafkaCluster");
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn valid_clusters_pass() {
        for spec in [
            serde_json::json!({"controllers": {"replicas": 1}, "brokers": {"replicas": 1}}),
            serde_json::json!({"controllers": {"replicas": 5}, "brokers": {"replicas": 1000}}),
            serde_json::json!({"brokers": {"storage": {"ephemeral": true}}}),
            serde_json::json!({"brokers": {"storage": {"size": "1.5Gi", "storageClassName": "ssd"}}}),
            serde_json::json!({"config": {"num.partitions": "6", "offsets.topic.replication.factor": "3",
                                          "log.retention.hours": "1"}}),
        ] {
            assert_eq!(errors("demo", spec.clone()), Vec::<String>::new(), "{spec}");
        }
    }

    /// Each rule, alone, with the field its message must name.
    #[test]
    fn each_rule_names_its_field() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        let cases: &[(&str, serde_json::Value, &str)] = &[
            ("", serde_json::json!({}), "metadata.name: is required"),
            (
                "Demo",
                serde_json::json!({}),
                "metadata.name: \"Demo\" must start with a letter",
            ),
            (
                "my.cluster",
                serde_json::json!({}),
                "metadata.name: \"my.cluster\" must start",
            ),
            (
                "1demo",
                serde_json::json!({}),
                "metadata.name: \"1demo\" must start",
            ),
            (
                "demo-",
                serde_json::json!({}),
                "metadata.name: \"demo-\" must start",
            ),
            (
                &long,
                serde_json::json!({}),
                "metadata.name: is 42 characters; at most 41",
            ),
            (
                "demo",
                serde_json::json!({"image": " "}),
                "spec.image: must not be empty",
            ),
            (
                "demo",
                serde_json::json!({"controllers": {"replicas": 2}}),
                "spec.controllers.replicas: is 2; must be 1, 3 or 5",
            ),
            (
                "demo",
                serde_json::json!({"brokers": {"replicas": 0}}),
                "spec.brokers.replicas: is 0; must be between 1 and 1000",
            ),
            (
                "demo",
                serde_json::json!({"brokers": {"replicas": 1001}}),
                "spec.brokers.replicas: is 1001",
            ),
            (
                "demo",
                serde_json::json!({"brokers": {"storage": {"size": "ten"}}}),
                "spec.brokers.storage.size: \"ten\" is not a positive quantity",
            ),
            (
                "demo",
                serde_json::json!({"controllers": {"storage": {"size": "0Gi"}}}),
                "spec.controllers.storage.size: \"0Gi\" is not a positive quantity",
            ),
            (
                "demo",
                serde_json::json!({"brokers": {"storage": {"size": "1."}}}),
                "spec.brokers.storage.size: \"1.\" is not",
            ),
            (
                "demo",
                serde_json::json!({"brokers": {"storage": {"storageClassName": ""}}}),
                "spec.brokers.storage.storageClassName: must not be empty",
            ),
            (
                "demo",
                serde_json::json!({"brokers": {"storage": {"ephemeral": true, "size": "1Gi"}}}),
                "spec.brokers.storage: ephemeral storage takes neither size nor storageClassName",
            ),
            (
                "demo",
                serde_json::json!({"config": {"node.id": "3"}}),
                "spec.config: must not set node.id:",
            ),
            (
                "demo",
                serde_json::json!({"config": {"controller.quorum.voters": "x", "log.dirs": "/d"}}),
                "spec.config: must not set controller.quorum.voters, log.dirs:",
            ),
            (
                "demo",
                serde_json::json!({"config": {"a b": "1"}}),
                "spec.config[a b]: a key must be non-empty and hold no whitespace",
            ),
            (
                "demo",
                serde_json::json!({"config": {"a=b": "1"}}),
                "spec.config[a=b]: a key must be",
            ),
            (
                "demo",
                serde_json::json!({"config": {"x": "1\nnode.id=5"}}),
                "spec.config[x]: a value must not contain line breaks",
            ),
            (
                "demo",
                serde_json::json!({"brokers": {"replicas": 1},
                                        "config": {"offsets.topic.replication.factor": "3"}}),
                "spec.config[offsets.topic.replication.factor]: 3 exceeds spec.brokers.replicas (1)",
            ),
            (
                "demo",
                serde_json::json!({"config": {"default.replication.factor": "two"}}),
                "spec.config[default.replication.factor]: \"two\" is not a positive integer",
            ),
            (
                "demo",
                serde_json::json!({"config": {"min.insync.replicas": "0"}}),
                "spec.config[min.insync.replicas]: \"0\" is not a positive integer",
            ),
            (
                "demo",
                serde_json::json!({"config": {"super.users": "User:x", "ssl.principal.mapping.rules": "DEFAULT",
                                   "listener.name.replication.ssl.client.auth": "none",
                                   "listener.name.scram.scram-sha-512.sasl.jaas.config": "x",
                                   "ssl.keystore.location": "/x"}}),
                "spec.config: must not set listener.name.replication.ssl.client.auth, \
                 listener.name.scram.scram-sha-512.sasl.jaas.config, ssl.keystore.location, \
                 ssl.principal.mapping.rules, super.users: use spec.listeners",
            ),
            (
                "demo",
                serde_json::json!({"listeners": [{"name": "controller", "port": 9092}]}),
                "spec.listeners[0].name: \"controller\" must be 1 to 11 lower-case letters",
            ),
            (
                "demo",
                serde_json::json!({"listeners": [{"name": "a", "port": 9091}]}),
                "spec.listeners[0].port: is 9091; must be between 1024 and 65535",
            ),
            (
                "demo",
                serde_json::json!({"listeners": [{"name": "a", "port": 9092}, {"name": "a", "port": 9094}]}),
                "spec.listeners[1].name: \"a\" is used twice",
            ),
            (
                "demo",
                serde_json::json!({"listeners": [{"name": "a", "port": 9092}, {"name": "b", "port": 9092}]}),
                "spec.listeners[1].port: 9092 is used twice",
            ),
            (
                "demo",
                serde_json::json!({"listeners": [{"name": "a", "port": 9092, "certificateSecret": "c"}]}),
                "spec.listeners[0].certificateSecret: needs tls: true",
            ),
            (
                "demo",
                serde_json::json!({"listeners": [{"name": "a", "port": 9092, "authentication": "tls"}]}),
                "spec.listeners[0].authentication: tls (client certificates) needs tls: true",
            ),
            (
                "demo",
                serde_json::json!({"authorization": {"superUsers": ["alice"]}}),
                "spec.authorization.superUsers[0]: \"alice\" must be User:NAME",
            ),
        ];
        for (name, spec, want) in cases {
            let got = errors(name, spec.clone());
            assert!(
                got.len() == 1 && got[0].starts_with(want),
                "{name} {spec}: want one error starting {want:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn only_security_settings_are_kept_out_of_spec_config() {
        for key in [
            "super.users",
            "listener.name.mtls.ssl.truststore.location",
            "listener.name.scram.sasl.enabled.mechanisms",
            "ssl.truststore.certificates",
            "plain.sasl.jaas.config",
        ] {
            assert!(is_security_key(key), "{key}");
        }
        for key in [
            "listener.name.plaintext.max.connections",
            "log.retention.hours",
            "max.connections.per.ip",
        ] {
            assert!(!is_security_key(key), "{key}");
        }
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let got = errors(
            "demo",
            serde_json::json!({"controllers": {"replicas": 4}, "brokers": {"replicas": 0},
                               "config": {"listeners": "x"}}),
        );
        assert_eq!(got.len(), 3, "{got:?}");
    }

    #[test]
    fn quantities() {
        for ok in ["1", "10Gi", "1.5Ti", "500M", "0.5Gi", "100k"] {
            assert!(is_positive_quantity(ok), "{ok}");
        }
        for bad in [
            "", "0", "0.0Gi", "Gi", "-1Gi", "1GB", "1.", ".5", "1e3", "1 Gi",
        ] {
            assert!(!is_positive_quantity(bad), "{bad}");
        }
    }
}
