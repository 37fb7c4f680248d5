//! The generated CRDs: `crds/` is up to date, and the CEL rules accept and reject what they
//! should. The rules run in kube-cel, the client-side CEL evaluator with Kubernetes' extension
//! libraries; a test against a real API server follows separately.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic
use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::{Value, json};
use sluice_crd::{KafkaCluster, KafkaUser, Topic, crd_file_contents, crd_file_name, crds};

fn repo_crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds")
}

#[test]
fn crds_folder_is_up_to_date() {
    let dir = repo_crds_dir();
    let update = std::env::var("SLUICE_UPDATE_CRDS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for crd in crds() {
        let path = dir.join(crd_file_name(&crd));
        let want = crd_file_contents(&crd).unwrap();
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            if update {
                std::fs::write(&path, &want).unwrap();
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD files {stale:?}: regenerate with SLUICE_UPDATE_CRDS=1 cargo test -p sluice-crd"
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "kafkaclusters.sluice.dev.yaml",
            "kafkausers.sluice.dev.yaml",
            "topics.sluice.dev.yaml"
        ],
        "crds/ holds exactly one file per CRD"
    );
    // The YAML reads back as the very same CRD (no value lost to YAML quoting or folding).
    for crd in crds() {
        let text = std::fs::read_to_string(dir.join(crd_file_name(&crd))).unwrap();
        let parsed: CustomResourceDefinition = serde_saphyr::from_str(&text).unwrap();
        assert!(
            parsed == crd,
            "{} does not read back as generated",
            crd_file_name(&crd)
        );
    }
}

#[test]
fn crds_have_names_scope_and_printer_columns() {
    let kc = KafkaCluster::crd();
    assert_eq!(
        kc.metadata.name.as_deref(),
        Some("kafkaclusters.sluice.dev")
    );
    assert_eq!(kc.spec.scope, "Namespaced");
    assert_eq!(kc.spec.names.short_names, Some(vec!["kc".to_owned()]));
    let version = &kc.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    let columns: Vec<(String, String)> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Ready Brokers", ".status.brokers.ready"),
            ("Brokers", ".spec.brokers.replicas"),
            ("Ready Controllers", ".status.controllers.ready"),
            ("Controllers", ".spec.controllers.replicas"),
            ("Ready", r#".status.conditions[?(@.type=="Ready")].status"#),
            ("Age", ".metadata.creationTimestamp"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert!(version.subresources.as_ref().unwrap().status.is_some());

    let topic = Topic::crd();
    assert_eq!(topic.metadata.name.as_deref(), Some("topics.sluice.dev"));
    assert_eq!(topic.spec.names.short_names, Some(vec!["kt".to_owned()]));
    assert!(
        topic.spec.versions[0]
            .subresources
            .as_ref()
            .unwrap()
            .status
            .is_some()
    );
}

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// Every CEL rule (and messageExpression) in the schema, wherever it is.
fn rules(schema: &Value, out: &mut Vec<Value>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(list)) = map.get("x-kubernetes-validations") {
                out.extend(list.iter().cloned());
            }
            map.values().for_each(|v| rules(v, out));
        }
        Value::Array(list) => list.iter().for_each(|v| rules(v, out)),
        _ => {}
    }
}

#[test]
fn generated_crds_carry_the_cel_rules() {
    let mut kc = Vec::new();
    rules(&schema_of(&KafkaCluster::crd()), &mut kc);
    let kc_rules: Vec<&str> = kc.iter().map(|r| r["rule"].as_str().unwrap()).collect();
    for want in [
        "self == 1 || self == 3 || self == 5",
        "self >= 1 && self <= 1000",
        "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
    ] {
        assert!(kc_rules.contains(&want), "missing {want} in {kc_rules:?}");
    }
    let config_rule = kc
        .iter()
        .find(|r| r["rule"].as_str().unwrap().contains("'node.id'"))
        .unwrap();
    assert!(config_rule["messageExpression"].as_str().is_some());

    let mut topic = Vec::new();
    rules(&schema_of(&Topic::crd()), &mut topic);
    let topic_rules: Vec<&str> = topic.iter().map(|r| r["rule"].as_str().unwrap()).collect();
    for want in [
        "self >= oldSelf",
        "self == oldSelf",
        "has(self.topicName) == has(oldSelf.topicName)",
    ] {
        assert!(
            topic_rules.contains(&want),
            "missing {want} in {topic_rules:?}"
        );
    }
}

#[test]
fn every_rule_has_a_message_that_names_its_field() {
    for crd in crds() {
        let mut all = Vec::new();
        rules(&schema_of(&crd), &mut all);
        assert!(!all.is_empty());
        for rule in all {
            let message = rule
                .get("message")
                .or_else(|| rule.get("messageExpression"))
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("rule without a message: {rule}"));
            assert!(
                ["spec.", "storage", "metadata.name"]
                    .iter()
                    .any(|field| message.contains(field)),
                "message does not name a field: {message}"
            );
        }
    }
}

/// The messages of every rule `object` breaks (given `old` for an update).
fn violations(crd: &CustomResourceDefinition, object: Value, old: Option<Value>) -> Vec<String> {
    match Validator::new().validate(&schema_of(crd), &object, old.as_ref()) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

fn cluster(spec: Value) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "KafkaCluster",
        "metadata": {"name": "demo", "namespace": "ns"},
        "spec": spec,
    })
}

fn kc(spec: Value) -> Vec<String> {
    violations(&KafkaCluster::crd(), cluster(spec), None)
}

fn kc_update(old: Value, new: Value) -> Vec<String> {
    violations(&KafkaCluster::crd(), cluster(new), Some(cluster(old)))
}

#[test]
fn kafka_cluster_valid_specs_pass() {
    for spec in [
        json!({}),
        json!({"controllers": {"replicas": 1}, "brokers": {"replicas": 1}}),
        json!({"controllers": {"replicas": 5}, "brokers": {"replicas": 1000}}),
        json!({"brokers": {"storage": {"size": "50Gi", "storageClassName": "fast"}}}),
        json!({"brokers": {"storage": {"ephemeral": true}}}),
        json!({"config": {"log.retention.hours": "72", "num.partitions": "6"}}),
        json!({"image": "example/sluice:1"}),
        json!({"listeners": [
            {"name": "plain", "port": 9092},
            {"name": "scram", "port": 9094, "tls": true, "authentication": "scram-sha-512"},
            {"name": "mtls", "port": 9096, "tls": true, "authentication": "tls",
             "certificateSecret": "my-cert"},
        ], "authorization": {"superUsers": ["User:admin", "User:CN=ops,O=acme"]}}),
    ] {
        assert_eq!(kc(spec.clone()), Vec::<String>::new(), "{spec}");
    }
}

#[test]
fn kafka_cluster_rules_reject_with_messages_naming_the_field() {
    let cases: &[(Value, &str)] = &[
        (
            json!({"controllers": {"replicas": 2}}),
            "spec.controllers.replicas must be 1, 3 or 5",
        ),
        (
            json!({"controllers": {"replicas": 7}}),
            "spec.controllers.replicas must be 1, 3 or 5",
        ),
        (
            json!({"brokers": {"replicas": 0}}),
            "spec.brokers.replicas must be between 1 and 1000",
        ),
        (
            json!({"brokers": {"replicas": 1001}}),
            "spec.brokers.replicas must be between 1 and 1000",
        ),
        (
            json!({"brokers": {"storage": {"size": "lots"}}}),
            "storage.size must be a positive quantity",
        ),
        (
            json!({"brokers": {"storage": {"size": "0"}}}),
            "storage.size must be a positive quantity",
        ),
        (
            json!({"controllers": {"storage": {"ephemeral": true, "size": "1Gi"}}}),
            "ephemeral storage takes neither size nor storageClassName",
        ),
        (json!({"image": ""}), "spec.image must not be empty"),
        (
            json!({"config": {"node.id": "1"}}),
            "spec.config must not set node.id:",
        ),
        (
            json!({"config": {"listeners": "x", "log.dirs": "/x", "a": "b"}}),
            "spec.config must not set listeners, log.dirs:",
        ),
        (
            json!({"config": {"controller.quorum.voters": "1@x:9093"}}),
            "spec.config must not set controller.quorum.*:",
        ),
        (
            json!({"config": {"cluster.id": "x", "controller.quorum.bootstrap.servers": "x"}}),
            "spec.config must not set cluster.id, controller.quorum.*:",
        ),
        (
            json!({"listeners": [{"name": "Plain", "port": 9092}]}),
            "spec.listeners[].name must be 1 to 11 lower-case letters",
        ),
        (
            json!({"listeners": [{"name": "replication", "port": 9092}]}),
            "spec.listeners[].name must be 1 to 11 lower-case letters",
        ),
        (
            json!({"listeners": [{"name": "a", "port": 9093}]}),
            "spec.listeners[].port must be between 1024 and 65535 and not 9091, 9093 or 9095",
        ),
        (
            json!({"listeners": [{"name": "a", "port": 80}]}),
            "spec.listeners[].port must be between 1024 and 65535",
        ),
        (
            json!({"listeners": [{"name": "a", "port": 9092}, {"name": "a", "port": 9094}]}),
            "spec.listeners: listener names must be unique",
        ),
        (
            json!({"listeners": [{"name": "a", "port": 9092}, {"name": "b", "port": 9092}]}),
            "spec.listeners: listener ports must be unique",
        ),
        (
            json!({"listeners": [{"name": "a", "port": 9092, "authentication": "tls"}]}),
            "spec.listeners: authentication tls (client certificates) needs tls: true",
        ),
        (
            json!({"listeners": [{"name": "a", "port": 9092, "certificateSecret": "c"}]}),
            "spec.listeners: certificateSecret needs tls: true",
        ),
        (
            json!({"authorization": {"superUsers": ["alice"]}}),
            "spec.authorization.superUsers: each must be User:NAME",
        ),
    ];
    for (spec, want) in cases {
        let got = kc(spec.clone());
        assert!(
            got.len() == 1 && got[0].contains(want),
            "{spec}: want one violation containing {want:?}, got {got:?}"
        );
    }
}

#[test]
fn kafka_cluster_transition_rules() {
    let base = json!({"controllers": {"replicas": 3}, "brokers": {"replicas": 3}});
    // Brokers scale both ways; config and image change freely.
    for new in [
        json!({"controllers": {"replicas": 5}, "brokers": {"replicas": 3}}),
        json!({"controllers": {"replicas": 1}, "brokers": {"replicas": 3}}),
        json!({"controllers": {"replicas": 3}, "brokers": {"replicas": 5}}),
        json!({"controllers": {"replicas": 3}, "brokers": {"replicas": 1}}),
        json!({"controllers": {"replicas": 3}, "brokers": {"replicas": 3}, "image": "x:2",
               "config": {"num.partitions": "3"}}),
    ] {
        assert_eq!(
            kc_update(base.clone(), new.clone()),
            Vec::<String>::new(),
            "{new}"
        );
    }
    let cases: &[(Value, &str)] = &[
        (
            json!({"controllers": {"replicas": 4}, "brokers": {"replicas": 3}}),
            "spec.controllers.replicas must be 1, 3 or 5",
        ),
        (
            json!({"controllers": {"replicas": 3}, "brokers": {"replicas": 3, "storage": {"size": "20Gi"}}}),
            "spec.brokers.storage cannot change",
        ),
        (
            json!({"controllers": {"replicas": 3, "storage": {"ephemeral": true}}, "brokers": {"replicas": 3}}),
            "spec.controllers.storage cannot change",
        ),
    ];
    // Spelling out the default size is no change.
    let explicit = json!({"controllers": {"replicas": 3}, "brokers": {"replicas": 3, "storage": {"size": "10Gi"}}});
    assert_eq!(kc_update(base.clone(), explicit), Vec::<String>::new());
    for (new, want) in cases {
        let got = kc_update(base.clone(), new.clone());
        assert!(
            got.len() == 1 && got[0].contains(want),
            "{new}: want {want:?}, got {got:?}"
        );
    }
}

fn topic(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Topic",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": spec,
    })
}

fn kt(name: &str, spec: Value, old: Option<Value>) -> Vec<String> {
    violations(
        &Topic::crd(),
        topic(name, spec),
        old.map(|o| topic(name, o)),
    )
}

#[test]
fn topic_rules_on_create() {
    let ok = [
        json!({"clusterRef": {"name": "demo"}, "partitions": 1}),
        json!({"clusterRef": {"name": "demo"}, "partitions": 12, "replicationFactor": 3,
               "topicName": "Orders_v2.EU-west", "config": {"retention.ms": "1000"}}),
        json!({"clusterRef": {"name": "demo"}, "partitions": 1, "topicName": "a".repeat(249)}),
    ];
    for spec in ok {
        assert_eq!(
            kt("orders", spec.clone(), None),
            Vec::<String>::new(),
            "{spec}"
        );
    }
    let cases: &[(&str, Value, &str)] = &[
        (
            "t",
            json!({"clusterRef": {"name": "demo"}, "partitions": 0}),
            "spec.partitions must be at least 1",
        ),
        (
            "t",
            json!({"clusterRef": {"name": "demo"}, "partitions": 1, "replicationFactor": 0}),
            "spec.replicationFactor must be between 1 and 32767",
        ),
        (
            "t",
            json!({"clusterRef": {"name": "demo"}, "partitions": 1, "topicName": "."}),
            "spec.topicName must be",
        ),
        (
            "t",
            json!({"clusterRef": {"name": "demo"}, "partitions": 1, "topicName": ".."}),
            "spec.topicName must be",
        ),
        (
            "t",
            json!({"clusterRef": {"name": "demo"}, "partitions": 1, "topicName": "a b"}),
            "spec.topicName must be",
        ),
        (
            "t",
            json!({"clusterRef": {"name": "demo"}, "partitions": 1, "topicName": "a/b"}),
            "spec.topicName must be",
        ),
        (
            &"a".repeat(250),
            json!({"clusterRef": {"name": "demo"}, "partitions": 1}),
            "metadata.name is longer than the 249 characters",
        ),
    ];
    for (name, spec, want) in cases {
        let got = kt(name, spec.clone(), None);
        assert!(
            got.len() == 1 && got[0].contains(want),
            "{spec}: want {want:?}, got {got:?}"
        );
    }
}

#[test]
fn topic_transition_rules() {
    let old = json!({"clusterRef": {"name": "demo"}, "partitions": 3, "topicName": "orders"});
    for new in [
        json!({"clusterRef": {"name": "demo"}, "partitions": 3, "topicName": "orders"}),
        json!({"clusterRef": {"name": "demo"}, "partitions": 6, "topicName": "orders",
               "config": {"retention.ms": "5"}}),
    ] {
        assert_eq!(
            kt("t", new.clone(), Some(old.clone())),
            Vec::<String>::new(),
            "{new}"
        );
    }
    let cases: &[(Value, &str)] = &[
        (
            json!({"clusterRef": {"name": "demo"}, "partitions": 2, "topicName": "orders"}),
            "spec.partitions can only grow",
        ),
        (
            json!({"clusterRef": {"name": "other"}, "partitions": 3, "topicName": "orders"}),
            "spec.clusterRef is immutable",
        ),
        (
            json!({"clusterRef": {"name": "demo"}, "partitions": 3, "topicName": "payments"}),
            "spec.topicName is immutable",
        ),
        (
            json!({"clusterRef": {"name": "demo"}, "partitions": 3}),
            "spec.topicName cannot be added or removed",
        ),
    ];
    for (new, want) in cases {
        let got = kt("t", new.clone(), Some(old.clone()));
        assert!(
            got.len() == 1 && got[0].contains(want),
            "{new}: want {want:?}, got {got:?}"
        );
    }
}

#[test]
fn defaults_fill_replicas() {
    let crd = KafkaCluster::crd();
    let schema = schema_of(&crd);
    let spec = &schema["properties"]["spec"]["properties"];
    assert_eq!(
        spec["controllers"]["properties"]["replicas"]["default"],
        json!(3)
    );
    assert_eq!(
        spec["brokers"]["properties"]["replicas"]["default"],
        json!(3)
    );
    assert_eq!(
        spec["brokers"]["properties"]["storage"]["properties"]["ephemeral"]["default"],
        json!(false)
    );
}

fn user(name: &str, spec: Value) -> Vec<String> {
    let object = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "KafkaUser",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": spec,
    });
    violations(&KafkaUser::crd(), object, None)
}

#[test]
fn kafka_user_rules() {
    let ok = json!({
        "clusterRef": {"name": "demo"},
        "authentication": "scram-sha-512",
        "acls": [
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Write"]},
            {"resource": {"type": "group", "name": "app-", "patternType": "prefixed"},
             "operations": ["Read"], "type": "deny", "host": "10.0.0.1"},
            {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"]},
        ],
    });
    assert_eq!(user("alice", ok), Vec::<String>::new());
    let cases: &[(&str, Value, &str)] = &[
        (
            "bob",
            json!({"clusterRef": {"name": "demo"}, "acls": [
                {"resource": {"type": "topic"}, "operations": ["Read"]}]}),
            "spec.acls[].resource: name is required",
        ),
        (
            "bob",
            json!({"clusterRef": {"name": "demo"}, "acls": [
                {"resource": {"type": "cluster", "name": "x"}, "operations": ["Alter"]}]}),
            "spec.acls[].resource: name is required, except for type cluster",
        ),
        (
            &"x".repeat(65),
            json!({"clusterRef": {"name": "demo"}}),
            "metadata.name: a KafkaUser's name is its Kafka user name, at most 64 characters",
        ),
    ];
    for (name, spec, want) in cases {
        let got = user(name, spec.clone());
        assert!(
            got.len() == 1 && got[0].contains(want),
            "{spec}: want one violation containing {want:?}, got {got:?}"
        );
    }
}
