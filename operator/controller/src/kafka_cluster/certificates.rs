//! The certificates of a cluster that uses TLS: two certificate authorities kept in Secrets of
//! their own (the cluster CA signs the nodes' and the operator's certificates, the clients CA the
//! `KafkaUser` ones, so that no user certificate is ever trusted on a node listener), a node
//! certificate per role, and the certificates users give for their listeners.
//!
//! [`ensure`] reads what exists, creates a missing CA once (never replaced: every certificate
//! hangs off it), and issues a node certificate again when [`pki::needs_renewal`] says so. The
//! Secrets the pods mount are then built (pure) by `build` from the [`TlsMaterial`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};

use super::properties::{CLUSTER_CA_FILE, NODE_KEYSTORE, NodeTransport, node_common_name};
use super::role::{Role, bootstrap_service_name};
use super::validate::{ListenerCertificate, ValidCluster};
use crate::error::Error;
use crate::pki::{self, Ca, LEAF_VALIDITY, LeafSpec, NODE_ORGANIZATION};

/// Keys of a CA Secret.
pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";

/// Secret holding the cluster CA's certificate and key.
pub fn cluster_ca_secret(cluster: &str) -> String {
    format!("{cluster}-cluster-ca")
}

/// Secret holding the clients CA's certificate and key.
pub fn clients_ca_secret(cluster: &str) -> String {
    format!("{cluster}-clients-ca")
}

/// Secret holding only the cluster CA's certificate (`ca.crt`): what clients trust the brokers
/// with, readable without access to the key.
pub fn cluster_ca_cert_secret(cluster: &str) -> String {
    format!("{cluster}-cluster-ca-cert")
}

/// Secret with a role's certificates, mounted by its pods.
pub fn role_tls_secret(cluster: &str, role: Role) -> String {
    format!("{cluster}-{}-tls", role.component())
}

/// Everything the TLS Secrets of the pods hold.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    pub cluster_ca: Ca,
    pub clients_ca: Ca,
    /// Key and certificate of each role (PEM keystore).
    pub node_keystores: BTreeMap<Role, String>,
    /// Keystores of the listeners whose certificate is the user's, by listener name.
    pub listener_keystores: BTreeMap<String, String>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("listeners", &self.listener_keystores.keys())
            .finish_non_exhaustive()
    }
}

/// Whether `cluster` needs certificates: its nodes use mutual TLS, or a listener uses TLS.
pub fn needed(cluster: &ValidCluster, nodes: NodeTransport) -> bool {
    nodes == NodeTransport::MutualTls || cluster.listeners.iter().any(|l| l.tls.is_some())
}

/// Whether `role`'s pods use certificates (and mount their Secret): the brokers when any TLS is
/// used, the controllers when the nodes use mutual TLS.
pub fn role_uses_tls(cluster: &ValidCluster, role: Role, nodes: NodeTransport) -> bool {
    needed(cluster, nodes) && (role == Role::Broker || nodes == NodeTransport::MutualTls)
}

/// The keystore in a role's existing Secret, if it can stay: issued by the current CA, for the
/// wanted names, with more than a third of its validity left.
pub fn kept_keystore(
    existing: Option<&Secret>,
    ca_cert_pem: &str,
    want: &LeafSpec,
    now: SystemTime,
) -> Option<String> {
    let secret = existing?;
    let keystore = secret_value(secret, NODE_KEYSTORE)?;
    let issued = pki::inspect(&keystore).ok()?;
    let same_ca = secret_value(secret, CLUSTER_CA_FILE).as_deref() == Some(ca_cert_pem);
    (!pki::needs_renewal(Some(&issued), same_ca, want, now)).then_some(keystore)
}

/// The certificate of `role`'s nodes: every pod's name and the role's Service names (brokers
/// also the bootstrap Service's), in the short and the fully qualified forms.
pub fn node_leaf_spec(cluster: &ValidCluster, role: Role) -> LeafSpec {
    let ns = &cluster.namespace;
    let headless = role.headless_service_name(&cluster.name);
    let mut bases = vec![format!("{headless}.{ns}.svc")];
    if role == Role::Broker {
        let bootstrap = bootstrap_service_name(&cluster.name);
        bases.push(format!("{bootstrap}.{ns}.svc"));
        bases.push(format!("{bootstrap}.{ns}"));
        bases.push(bootstrap);
    }
    let mut dns_names = vec![format!("*.{headless}.{ns}.svc")];
    dns_names.extend(bases.iter().cloned());
    dns_names.push(format!("*.{headless}.{ns}.svc.cluster.local"));
    dns_names.extend(
        bases
            .iter()
            .filter(|b| b.ends_with(".svc"))
            .map(|b| format!("{b}.cluster.local")),
    );
    LeafSpec {
        common_name: node_common_name(&cluster.name, role),
        organization: Some(NODE_ORGANIZATION.to_owned()),
        dns_names,
        validity: LEAF_VALIDITY,
    }
}

/// The operator's own client certificate for `ca`'s cluster: a super user there. Issued for each
/// connection and kept nowhere.
pub fn operator_leaf_spec() -> LeafSpec {
    LeafSpec {
        common_name: super::properties::OPERATOR_COMMON_NAME.to_owned(),
        organization: Some(NODE_ORGANIZATION.to_owned()),
        dns_names: Vec::new(),
        validity: std::time::Duration::from_secs(86_400),
    }
}

/// A Secret's value as text.
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
}

/// A Secret of `data`, owned by the cluster and labelled as the cluster's other objects.
pub fn secret(
    cluster: &ValidCluster,
    name: String,
    role: Role,
    data: BTreeMap<String, String>,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(cluster.namespace.clone()),
            labels: Some(role.labels(&cluster.name)),
            owner_references: cluster.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    }
}

/// Reads the CA in Secret `name`, creating it first if there is none.
async fn ca(
    api: &Api<Secret>,
    cluster: &ValidCluster,
    name: String,
    now: SystemTime,
) -> Result<Ca, Error> {
    let read = |s: &Secret| -> Result<Ca, Error> {
        match (secret_value(s, CA_CERT_KEY), secret_value(s, CA_KEY_KEY)) {
            (Some(cert_pem), Some(key_pem)) => Ok(Ca { cert_pem, key_pem }),
            _ => Err(Error::Secret {
                secret: name.clone(),
                reason: format!(
                    "has no {CA_CERT_KEY} and {CA_KEY_KEY}: delete it to have a new CA made (every certificate is then issued again)"
                ),
            }),
        }
    };
    if let Some(existing) = api.get_opt(&name).await? {
        return read(&existing);
    }
    let ca = Ca::generate(&name, now)?;
    let object = secret(
        cluster,
        name.clone(),
        Role::Controller,
        BTreeMap::from([
            (CA_CERT_KEY.to_owned(), ca.cert_pem.clone()),
            (CA_KEY_KEY.to_owned(), ca.key_pem.clone()),
        ]),
    );
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(ca),
        // Another operator replica made it first: use theirs.
        Err(kube::Error::Api(e)) if e.code == 409 => read(&api.get(&name).await?),
        Err(e) => Err(e.into()),
    }
}

/// Reads or makes every certificate `cluster` needs; `None` when it uses no TLS.
pub async fn ensure(
    client: &Client,
    cluster: &ValidCluster,
    nodes: NodeTransport,
    now: SystemTime,
) -> Result<Option<TlsMaterial>, Error> {
    if !needed(cluster, nodes) {
        return Ok(None);
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), &cluster.namespace);
    let cluster_ca = ca(&api, cluster, cluster_ca_secret(&cluster.name), now).await?;
    let clients_ca = ca(&api, cluster, clients_ca_secret(&cluster.name), now).await?;
    let mut node_keystores = BTreeMap::new();
    for role in Role::ALL
        .into_iter()
        .filter(|&r| role_uses_tls(cluster, r, nodes))
    {
        let want = node_leaf_spec(cluster, role);
        let existing = api.get_opt(&role_tls_secret(&cluster.name, role)).await?;
        let keystore = match kept_keystore(existing.as_ref(), &cluster_ca.cert_pem, &want, now) {
            Some(keystore) => keystore,
            None => {
                tracing::info!(cluster = %cluster.name, role = role.component(), "issuing the node certificate");
                cluster_ca.issue(&want, now)?.keystore_pem()
            }
        };
        node_keystores.insert(role, keystore);
    }
    let mut listener_keystores = BTreeMap::new();
    for (i, l) in cluster.listeners.iter().enumerate() {
        let Some(ListenerCertificate::Secret(name)) = &l.tls else {
            continue;
        };
        let field = format!("spec.listeners[{i}].certificateSecret");
        let missing = |what: &str| Error::Secret {
            secret: format!("{field} {name}"),
            reason: what.to_owned(),
        };
        let s = api
            .get_opt(name)
            .await?
            .ok_or_else(|| missing("does not exist"))?;
        let (Some(crt), Some(key)) = (secret_value(&s, "tls.crt"), secret_value(&s, "tls.key"))
        else {
            return Err(missing(
                "needs tls.crt and tls.key (a kubernetes.io/tls Secret)",
            ));
        };
        pki::inspect(&crt).map_err(|e| missing(&format!("tls.crt: {e}")))?;
        check_pair(&crt, &key).map_err(|e| missing(&format!("tls.key: {e}")))?;
        listener_keystores.insert(l.name.clone(), pki::keystore_pem(&key, &crt));
    }
    Ok(Some(TlsMaterial {
        cluster_ca,
        clients_ca,
        node_keystores,
        listener_keystores,
    }))
}

/// The CA kept in Secret `name`, if there is one.
pub async fn read_ca(client: &Client, namespace: &str, name: &str) -> Result<Option<Ca>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(None);
    };
    match (
        secret_value(&secret, CA_CERT_KEY),
        secret_value(&secret, CA_KEY_KEY),
    ) {
        (Some(cert_pem), Some(key_pem)) => Ok(Some(Ca { cert_pem, key_pem })),
        _ => Err(Error::Secret {
            secret: name.to_owned(),
            reason: format!("has no {CA_CERT_KEY} and {CA_KEY_KEY}"),
        }),
    }
}

/// How the operator reaches a cluster whose nodes use mutual TLS: TLS trusting the cluster CA,
/// with a fresh client certificate of its own (a super user).
pub async fn operator_security(
    client: &Client,
    namespace: &str,
    cluster: &str,
) -> Result<sluice_kafka_client::Security, Error> {
    let name = cluster_ca_secret(cluster);
    let ca = read_ca(client, namespace, &name)
        .await?
        .ok_or_else(|| Error::Secret {
            secret: name,
            reason: "does not exist yet".to_owned(),
        })?;
    let leaf = ca.issue(&operator_leaf_spec(), SystemTime::now())?;
    let config = client_tls_config(&ca.cert_pem, Some((&leaf.cert_pem, &leaf.key_pem)))?;
    Ok(sluice_kafka_client::Security {
        tls: Some(std::sync::Arc::new(config)),
        sasl: None,
    })
}

/// Whether `key_pem` is the private key of the first certificate of `chain_pem`, as the broker
/// will check at start: a wrong pair is reported here, naming the listener, and never reaches a pod.
fn check_pair(chain_pem: &str, key_pem: &str) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, key, &provider)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A rustls client config trusting `ca_pem`, presenting `identity` (certificate, key) if given.
pub fn client_tls_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<rustls::ClientConfig, Error> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |e: &dyn std::fmt::Display| Error::Certificate {
        what: "client TLS config".to_owned(),
        reason: e.to_string(),
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| fail(&e))?)
            .map_err(|e| fail(&e))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&e))?
        .with_root_certificates(roots);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(&e))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| fail(&e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| fail(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka_cluster::validate::validate;
    use sluice_crd::{KafkaCluster, KafkaClusterSpec};

    fn cluster() -> ValidCluster {
        let spec: KafkaClusterSpec = serde_json::from_value(serde_json::json!({
            "listeners": [{"name": "tls", "port": 9092, "tls": true}],
        }))
        .unwrap();
        let mut kc = KafkaCluster::new("demo", spec);
        kc.metadata.namespace = Some("kafka".to_owned());
        validate(&kc, "img", "default").unwrap()
    }

    #[test]
    fn node_certificates_name_every_pod_and_service() {
        let c = cluster();
        let broker = node_leaf_spec(&c, Role::Broker);
        assert_eq!(broker.common_name, "demo-broker");
        for name in [
            "*.demo-brokers.kafka.svc",
            "demo-brokers.kafka.svc",
            "demo-bootstrap.kafka.svc",
            "demo-bootstrap",
            "*.demo-brokers.kafka.svc.cluster.local",
            "demo-bootstrap.kafka.svc.cluster.local",
        ] {
            assert!(
                broker.dns_names.iter().any(|n| n == name),
                "{name}: {:?}",
                broker.dns_names
            );
        }
        let controller = node_leaf_spec(&c, Role::Controller);
        assert!(
            controller
                .dns_names
                .contains(&"*.demo-controllers.kafka.svc".to_owned())
        );
        assert!(!controller.dns_names.iter().any(|n| n.contains("bootstrap")));
    }

    #[test]
    fn certificates_are_needed_for_mutual_tls_or_a_tls_listener() {
        let c = cluster();
        assert!(needed(&c, NodeTransport::Plaintext));
        let mut plain = c.clone();
        plain.listeners[0].tls = None;
        assert!(!needed(&plain, NodeTransport::Plaintext));
        assert!(needed(&plain, NodeTransport::MutualTls));
    }

    /// The Secret `build` makes from `tls` for `role`.
    fn role_secret(c: &ValidCluster, tls: &TlsMaterial, role: Role) -> Secret {
        use crate::kafka_cluster::build::{Inputs, PodCounts, build};
        use crate::kafka_cluster::properties::QuorumMode;
        let desired = build(
            c,
            Inputs {
                cluster_id: "id",
                counts: PodCounts::of(c),
                quorum: QuorumMode::Static,
                nodes: NodeTransport::MutualTls,
                tls: Some(tls),
            },
        );
        let name = role_tls_secret(&c.name, role);
        desired
            .secrets
            .into_iter()
            .find(|s| s.metadata.name.as_deref() == Some(name.as_str()))
            .unwrap()
    }

    #[test]
    fn a_node_certificate_is_kept_until_it_must_be_issued_again() {
        let c = cluster();
        let now = SystemTime::now();
        let ca = Ca::generate("demo-cluster-ca", now).unwrap();
        let want = node_leaf_spec(&c, Role::Broker);
        let tls = TlsMaterial {
            node_keystores: Role::ALL
                .into_iter()
                .map(|r| {
                    (
                        r,
                        ca.issue(&node_leaf_spec(&c, r), now)
                            .unwrap()
                            .keystore_pem(),
                    )
                })
                .collect(),
            listener_keystores: BTreeMap::new(),
            clients_ca: Ca::generate("demo-clients-ca", now).unwrap(),
            cluster_ca: ca.clone(),
        };
        let secret = role_secret(&c, &tls, Role::Broker);
        // The next reconcile keeps what the last one wrote.
        assert_eq!(
            kept_keystore(Some(&secret), &ca.cert_pem, &want, now),
            Some(tls.node_keystores[&Role::Broker].clone())
        );
        assert_eq!(kept_keystore(None, &ca.cert_pem, &want, now), None);
        // Another CA, other names, or two thirds of its life gone: issued again.
        let other = Ca::generate("other", now).unwrap();
        assert_eq!(
            kept_keystore(Some(&secret), &other.cert_pem, &want, now),
            None
        );
        let mut renamed = want.clone();
        renamed.dns_names.push("extra.example".to_owned());
        assert_eq!(
            kept_keystore(Some(&secret), &ca.cert_pem, &renamed, now),
            None
        );
        let late = now + LEAF_VALIDITY * 2 / 3 + std::time::Duration::from_secs(60);
        assert_eq!(
            kept_keystore(Some(&secret), &ca.cert_pem, &want, late),
            None
        );
    }

    #[test]
    fn a_certificate_and_a_key_of_another_are_refused() {
        let now = SystemTime::now();
        let ca = Ca::generate("ca", now).unwrap();
        let a = ca
            .issue(&node_leaf_spec(&cluster(), Role::Broker), now)
            .unwrap();
        let b = ca
            .issue(&node_leaf_spec(&cluster(), Role::Broker), now)
            .unwrap();
        assert_eq!(check_pair(&a.cert_pem, &a.key_pem), Ok(()));
        assert!(check_pair(&a.cert_pem, &b.key_pem).is_err());
        assert!(check_pair(&a.cert_pem, "not a key").is_err());
    }

    #[test]
    fn controllers_use_certificates_only_when_the_nodes_use_mutual_tls() {
        let c = cluster();
        assert!(role_uses_tls(&c, Role::Broker, NodeTransport::Plaintext));
        assert!(!role_uses_tls(
            &c,
            Role::Controller,
            NodeTransport::Plaintext
        ));
        assert!(role_uses_tls(
            &c,
            Role::Controller,
            NodeTransport::MutualTls
        ));
    }

    #[test]
    fn the_operator_config_trusts_the_ca_and_presents_its_certificate() {
        let now = SystemTime::now();
        let ca = Ca::generate("demo-cluster-ca", now).unwrap();
        let leaf = ca.issue(&operator_leaf_spec(), now).unwrap();
        let config =
            client_tls_config(&ca.cert_pem, Some((&leaf.cert_pem, &leaf.key_pem))).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
    }
}
