//! What a `KafkaUser` asks of its cluster, worked out without any I/O: the ACL bindings of its
//! principal (and which to create and delete to get there), and the contents of its Secret.

use std::collections::{BTreeMap, BTreeSet};

use sluice_crd::{
    AclOperation, AclPatternType, AclResourceType, AclType, KafkaUser, UserAuthentication,
};
use sluice_kafka_admin::{Acl, ScramMechanism};

/// The Kafka principal of a user.
pub fn principal(user: &str) -> String {
    format!("User:{user}")
}

/// Kafka's wire code of an operation.
fn operation_code(op: AclOperation) -> i8 {
    match op {
        AclOperation::All => 2,
        AclOperation::Read => 3,
        AclOperation::Write => 4,
        AclOperation::Create => 5,
        AclOperation::Delete => 6,
        AclOperation::Alter => 7,
        AclOperation::Describe => 8,
        AclOperation::ClusterAction => 9,
        AclOperation::DescribeConfigs => 10,
        AclOperation::AlterConfigs => 11,
        AclOperation::IdempotentWrite => 12,
    }
}

/// The name Kafka gives the cluster resource.
const CLUSTER_RESOURCE: &str = "kafka-cluster";

/// Every ACL binding the spec grants `user`, one per operation, sorted and without repeats.
pub fn desired_acls(user: &KafkaUser, name: &str) -> Vec<Acl> {
    let principal = principal(name);
    let mut out = BTreeSet::new();
    for rule in &user.spec.acls {
        let (resource_type, resource_name) = match rule.resource.type_ {
            AclResourceType::Topic => (2, rule.resource.name.clone()),
            AclResourceType::Group => (3, rule.resource.name.clone()),
            AclResourceType::Cluster => (4, Some(CLUSTER_RESOURCE.to_owned())),
            AclResourceType::TransactionalId => (5, rule.resource.name.clone()),
        };
        // The schema requires a name for every type but the cluster.
        let Some(resource_name) = resource_name else {
            continue;
        };
        let pattern_type = match rule.resource.pattern_type {
            AclPatternType::Literal => 3,
            AclPatternType::Prefixed => 4,
        };
        let permission = match rule.type_ {
            AclType::Allow => 3,
            AclType::Deny => 2,
        };
        for &op in &rule.operations {
            out.insert(Acl {
                resource_type,
                resource_name: resource_name.clone(),
                pattern_type,
                principal: principal.clone(),
                host: rule.host.clone(),
                operation: operation_code(op),
                permission,
            });
        }
    }
    out.into_iter().collect()
}

/// The bindings to create and to delete to turn `actual` into `desired`.
pub fn acl_changes(desired: &[Acl], actual: &[Acl]) -> (Vec<Acl>, Vec<Acl>) {
    let want: BTreeSet<&Acl> = desired.iter().collect();
    let have: BTreeSet<&Acl> = actual.iter().collect();
    (
        want.difference(&have).map(|a| (*a).clone()).collect(),
        have.difference(&want).map(|a| (*a).clone()).collect(),
    )
}

/// The SCRAM mechanism of an authentication, if it is one.
pub fn scram_mechanism(auth: Option<UserAuthentication>) -> Option<ScramMechanism> {
    match auth {
        Some(UserAuthentication::ScramSha256) => Some(ScramMechanism::Sha256),
        Some(UserAuthentication::ScramSha512) => Some(ScramMechanism::Sha512),
        _ => None,
    }
}

/// The Secret of a SCRAM user: what a Kafka client needs, Kafka's JAAS line included.
pub fn scram_secret_data(
    user: &str,
    password: &str,
    ca_pem: Option<&str>,
) -> BTreeMap<String, String> {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut data = BTreeMap::from([
        ("username".to_owned(), user.to_owned()),
        ("password".to_owned(), password.to_owned()),
        (
            "sasl.jaas.config".to_owned(),
            format!(
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{}\" password=\"{}\";",
                quote(user),
                quote(password)
            ),
        ),
    ]);
    if let Some(ca) = ca_pem {
        data.insert("ca.crt".to_owned(), ca.to_owned());
    }
    data
}

/// The Secret of a certificate user.
pub fn tls_secret_data(cert_pem: &str, key_pem: &str, ca_pem: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("user.crt".to_owned(), cert_pem.to_owned()),
        ("user.key".to_owned(), key_pem.to_owned()),
        ("ca.crt".to_owned(), ca_pem.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crd::KafkaUserSpec;

    fn user(acls: serde_json::Value) -> KafkaUser {
        let spec: KafkaUserSpec = serde_json::from_value(serde_json::json!({
            "clusterRef": {"name": "demo"},
            "authentication": "scram-sha-512",
            "acls": acls,
        }))
        .unwrap();
        KafkaUser::new("alice", spec)
    }

    #[test]
    fn each_operation_is_one_binding_with_kafkas_codes() {
        let u = user(serde_json::json!([
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Write", "Describe"]},
            {"resource": {"type": "group", "name": "alice-", "patternType": "prefixed"},
             "operations": ["Read"], "type": "deny", "host": "10.0.0.1"},
            {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"]},
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Write"]},
        ]));
        let acls = desired_acls(&u, "alice");
        assert_eq!(acls.len(), 4, "{acls:?}");
        assert!(acls.iter().all(|a| a.principal == "User:alice"));
        let write = acls.iter().find(|a| a.operation == 4).unwrap();
        assert_eq!(
            (write.resource_type, write.pattern_type, write.permission),
            (2, 3, 3)
        );
        assert_eq!(write.host, "*");
        let group = acls.iter().find(|a| a.resource_type == 3).unwrap();
        assert_eq!(
            (group.pattern_type, group.permission, group.host.as_str()),
            (4, 2, "10.0.0.1")
        );
        let cluster = acls.iter().find(|a| a.resource_type == 4).unwrap();
        assert_eq!(
            (cluster.resource_name.as_str(), cluster.operation),
            ("kafka-cluster", 12)
        );
    }

    #[test]
    fn changes_create_the_missing_and_delete_the_extra() {
        let u = user(serde_json::json!([
            {"resource": {"type": "topic", "name": "a"}, "operations": ["Read", "Write"]},
        ]));
        let desired = desired_acls(&u, "alice");
        let mut actual = vec![desired[0].clone()];
        let mut stale = desired[0].clone();
        stale.resource_name = "b".to_owned();
        actual.push(stale.clone());
        let (create, delete) = acl_changes(&desired, &actual);
        assert_eq!(create, vec![desired[1].clone()]);
        assert_eq!(delete, vec![stale]);
        assert_eq!(acl_changes(&desired, &desired), (vec![], vec![]));
    }

    #[test]
    fn the_jaas_line_quotes_what_it_must() {
        let data = scram_secret_data("alice", r#"p"w\d"#, Some("CA"));
        assert_eq!(
            data["sasl.jaas.config"],
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="p\"w\\d";"#
        );
        assert_eq!(data["ca.crt"], "CA");
        assert!(!scram_secret_data("a", "b", None).contains_key("ca.crt"));
    }
}
