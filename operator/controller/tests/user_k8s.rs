//! The KafkaUser controller against a real API server and a real broker (see
//! `support::operator`): the Secret it writes, the SCRAM credential (tried by logging in with the
//! Secret's password), the ACLs it keeps equal to the spec, and what its finalizer takes away.
//!
//! Needs `scripts/k8s/install` first.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use sluice_crd::{KafkaCluster, KafkaUser};
use sluice_kafka_admin::{AdminClient, ScramMechanism};
use sluice_kafka_client::sasl::{Credentials, Mechanism};
use sluice_kafka_client::scram::ScramHash;
use sluice_kafka_client::{Connection, Security};
use sluice_operator::user::FINALIZER;

use support::operator::{WAIT, env, run};
use support::wait_for;

const SHA256: Mechanism = Mechanism::Scram(ScramHash::Sha256);
const SHA512: Mechanism = Mechanism::Scram(ScramHash::Sha512);

struct Case {
    users: Api<KafkaUser>,
    secrets: Api<Secret>,
    admin: AdminClient,
}

impl Case {
    /// A namespace with a plain KafkaCluster `demo` (its pods never run; the operator reaches the
    /// in-process broker through `--bootstrap-override`).
    async fn new(ns: &str) -> Case {
        let client = env().k8s.client().await;
        let namespace: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        let kc: KafkaCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "KafkaCluster",
            "metadata": {"name": "demo"},
            "spec": {"controllers": {"replicas": 1}, "brokers": {"replicas": 1,
                     "storage": {"ephemeral": true}}},
        }))
        .unwrap();
        Api::<KafkaCluster>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &kc)
            .await
            .unwrap();
        let admin = AdminClient::connect(
            &env().broker.to_string(),
            "user-tests",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        Case {
            users: Api::namespaced(client.clone(), ns),
            secrets: Api::namespaced(client, ns),
            admin,
        }
    }

    async fn apply_user(&self, name: &str, spec: serde_json::Value) {
        let user = serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "KafkaUser",
            "metadata": {"name": name}, "spec": spec,
        });
        self.users
            .patch(
                name,
                &PatchParams::apply("user-tests").force(),
                &Patch::Apply(&user),
            )
            .await
            .unwrap();
    }

    /// Waits until the status describes the current generation with `Ready` of this reason.
    async fn wait_for_reason(&self, name: &str, reason: &str) -> KafkaUser {
        wait_for(&format!("KafkaUser {name}: {reason}"), WAIT, || async {
            let u = self.users.get(name).await.map_err(|e| e.to_string())?;
            let status = u.status.clone().unwrap_or_default();
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
            match ready {
                Some(c)
                    if c.reason == reason
                        && status.observed_generation == u.metadata.generation =>
                {
                    Ok(u)
                }
                _ => Err(format!(
                    "{status:?} at generation {:?}",
                    u.metadata.generation
                )),
            }
        })
        .await
    }

    async fn secret(&self, name: &str, key: &str) -> String {
        let s = self.secrets.get(name).await.unwrap();
        String::from_utf8(s.data.unwrap()[key].0.clone()).unwrap()
    }

    /// The ACL bindings of `User:name` as (resource type, name, pattern, operation, permission).
    async fn acls(&self, name: &str) -> Vec<(i8, String, i8, i8, i8)> {
        self.admin
            .acls_of(&format!("User:{name}"))
            .await
            .unwrap()
            .into_iter()
            .map(|a| {
                (
                    a.resource_type,
                    a.resource_name,
                    a.pattern_type,
                    a.operation,
                    a.permission,
                )
            })
            .collect()
    }
}

/// Logs in to the broker's SCRAM listener; answers why not.
async fn login(mechanism: Mechanism, user: &str, password: &str) -> Result<(), String> {
    let security = Security {
        tls: None,
        sasl: Some(Credentials {
            mechanism,
            username: user.to_owned(),
            password: password.to_owned(),
        }),
    };
    Connection::open_with(&env().scram.to_string(), "user-tests", &security)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn a_scram_user_gets_its_secret_its_credential_and_exactly_its_acls() {
    run(async {
        let case = Case::new("user-scram").await;
        case.apply_user(
            "alice",
            serde_json::json!({
                "clusterRef": {"name": "demo"},
                "authentication": "scram-sha-512",
                "acls": [
                    {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]},
                    {"resource": {"type": "group", "name": "alice-", "patternType": "prefixed"},
                     "operations": ["Read"]},
                ],
            }),
        )
        .await;
        let user = case.wait_for_reason("alice", "Ready").await;
        let status = user.status.unwrap();
        assert_eq!(status.username.as_deref(), Some("alice"));
        assert_eq!(status.secret.as_deref(), Some("alice"));
        assert!(
            user.metadata
                .finalizers
                .unwrap()
                .contains(&FINALIZER.to_owned())
        );

        // The Secret holds a password that logs in, with SCRAM-SHA-512 only.
        let password = case.secret("alice", "password").await;
        assert_eq!(password.len(), 32);
        let jaas = case.secret("alice", "sasl.jaas.config").await;
        assert!(jaas.contains(&format!("password=\"{password}\"")), "{jaas}");
        login(SHA512, "alice", &password).await.unwrap();
        assert!(login(SHA512, "alice", "wrong").await.is_err());
        assert!(login(SHA256, "alice", &password).await.is_err());
        assert_eq!(
            case.admin.scram_mechanisms("alice").await.unwrap(),
            [ScramMechanism::Sha512]
        );
        let secret = case.secrets.get("alice").await.unwrap();
        let owner = &secret.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("KafkaUser", "alice")
        );

        // Three bindings, with Kafka's codes: topic (2) literal (3) Read (3) / Describe (8), group
        // (3) prefixed (4) Read; all ALLOW (3).
        assert_eq!(
            case.acls("alice").await,
            [
                (2, "orders".to_owned(), 3, 3, 3),
                (2, "orders".to_owned(), 3, 8, 3),
                (3, "alice-".to_owned(), 4, 3, 3),
            ]
        );

        // A binding made outside the resource is taken away on the next reconcile; a changed
        // spec is applied; a password changed in the Secret is given to the cluster; a change of
        // mechanism replaces the credential.
        let stray = sluice_kafka_admin::Acl {
            resource_type: 2,
            resource_name: "payments".to_owned(),
            pattern_type: 3,
            principal: "User:alice".to_owned(),
            host: "*".to_owned(),
            operation: 4,
            permission: 3,
        };
        case.admin.create_acls(&[stray]).await.unwrap();
        let new_password = "chosen-by-the-user-0123456789";
        case.secrets
            .patch(
                "alice",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"stringData": {"password": new_password}})),
            )
            .await
            .unwrap();
        case.apply_user(
            "alice",
            serde_json::json!({
                "clusterRef": {"name": "demo"},
                "authentication": "scram-sha-256",
                "acls": [
                    {"resource": {"type": "topic", "name": "orders"}, "operations": ["Write"],
                     "type": "deny", "host": "10.1.2.3"},
                ],
            }),
        )
        .await;
        wait_for("alice's ACLs to follow the spec", WAIT, || async {
            let now = case.acls("alice").await;
            (now == [(2, "orders".to_owned(), 3, 4, 2)])
                .then_some(())
                .ok_or(format!("{now:?}"))
        })
        .await;
        wait_for("the new password with SCRAM-SHA-256", WAIT, || async {
            login(SHA256, "alice", new_password).await
        })
        .await;
        assert!(login(SHA512, "alice", &password).await.is_err());
        assert_eq!(
            case.admin.scram_mechanisms("alice").await.unwrap(),
            [ScramMechanism::Sha256]
        );

        // Deleting the resource takes the credential and the ACLs away, then the Secret goes.
        case.users
            .delete("alice", &DeleteParams::default())
            .await
            .unwrap();
        wait_for("KafkaUser alice gone", WAIT, || async {
            match case.users.get_opt("alice").await {
                Ok(None) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert!(
            case.admin
                .scram_mechanisms("alice")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(case.acls("alice").await.is_empty());
        assert!(login(SHA256, "alice", new_password).await.is_err());
        // The garbage collector learns of a new resource type (the CRDs were installed just now)
        // on its discovery resync, every 30 s.
        wait_for(
            "Secret alice garbage-collected",
            Duration::from_secs(90),
            || async {
                match case.secrets.get_opt("alice").await {
                    Ok(None) => Ok(()),
                    other => Err(format!("{:?}", other.map(|s| s.map(|s| s.name_any())))),
                }
            },
        )
        .await;
    });
}

#[test]
fn a_user_needs_its_cluster_tls_for_a_certificate_and_a_secret_name_of_its_own() {
    run(async {
        let case = Case::new("user-refused").await;
        case.apply_user(
            "carol",
            serde_json::json!({"clusterRef": {"name": "demo"}, "authentication": "tls"}),
        )
        .await;
        let user = case.wait_for_reason("carol", "NoTls").await;
        let ready = &user.status.unwrap().conditions[0];
        assert_eq!(ready.status, "False");
        assert!(
            ready.message.contains("has no TLS listener"),
            "{}",
            ready.message
        );

        case.apply_user(
            "dave",
            serde_json::json!({"clusterRef": {"name": "nowhere"}}),
        )
        .await;
        case.wait_for_reason("dave", "ClusterNotFound").await;

        // A Secret of the user's name that someone else made is left alone.
        let theirs: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "erin"},
            "stringData": {"password": "an application's own"},
        }))
        .unwrap();
        case.secrets
            .create(&PostParams::default(), &theirs)
            .await
            .unwrap();
        case.apply_user(
            "erin",
            serde_json::json!({"clusterRef": {"name": "demo"}, "authentication": "scram-sha-512"}),
        )
        .await;
        let user = case.wait_for_reason("erin", "SecretConflict").await;
        let message = &user.status.unwrap().conditions[0].message;
        assert!(message.contains("is not this KafkaUser's"), "{message}");
        assert_eq!(
            case.secret("erin", "password").await,
            "an application's own"
        );
        let secret = case.secrets.get("erin").await.unwrap();
        assert!(secret.owner_references().is_empty());
        assert!(
            case.admin
                .scram_mechanisms("erin")
                .await
                .unwrap()
                .is_empty()
        );

        // Each is deleted without the cluster having to answer for it; the Secret stays.
        for name in ["carol", "dave", "erin"] {
            case.users
                .delete(name, &DeleteParams::default())
                .await
                .unwrap();
        }
        wait_for("the KafkaUsers gone", WAIT, || async {
            let left = case.users.list(&Default::default()).await.unwrap().items;
            left.is_empty().then_some(()).ok_or(format!(
                "{:?}",
                left.iter().map(|u| u.name_any()).collect::<Vec<_>>()
            ))
        })
        .await;
        assert!(case.secrets.get_opt("erin").await.unwrap().is_some());
    });
}
