//! The KafkaUser reconciler: gives a user of a `KafkaCluster` its credential (a generated SCRAM
//! password, or a certificate from the cluster's clients CA) in a Secret named like the user, and
//! makes the ACLs of `User:NAME` on the cluster exactly the ones its spec lists. The finalizer
//! takes the credential and the ACLs away again when the resource is deleted.
//!
//! Stages as in the other reconcilers: validate (the schema does most), read the cluster and the
//! Secret, [`build`] what is wanted (pure), apply it with admin calls and server-side apply, write
//! the status.

pub mod build;

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use sluice_crd::{KafkaCluster, KafkaUser, KafkaUserStatus, UserAuthentication};
use sluice_kafka_admin::{AdminClient, ScramMechanism};

use crate::context::Context;
use crate::error::Error;
use crate::kafka_cluster::certificates::{self, secret_value};
use crate::kafka_cluster::role::MANAGED_BY;
use crate::kafka_cluster::{access, apply};
use crate::pki::{self, LEAF_VALIDITY, LeafSpec};
use crate::status_patch::condition;
use crate::topic::read::{ClusterState, cluster};

/// The `kind` label of this reconciler's metrics.
pub const KIND: &str = "KafkaUser";
/// Held until the user's credential and ACLs are gone from the cluster (or the cluster is).
pub const FINALIZER: &str = "sluice.dev/delete-user";
/// On a certificate user's Secret: SHA-256 of the clients CA certificate that signed it, so a
/// certificate from a CA since replaced is issued again.
const ISSUER_ANNOTATION: &str = "sluice.dev/issuer";
/// On a SCRAM user's Secret: SHA-256 of the mechanism and password last given to the cluster, so
/// that a password changed in the Secret is given again.
const PASSWORD_ANNOTATION: &str = "sluice.dev/password-applied";

fn key(user: &KafkaUser) -> String {
    format!(
        "{}/{}",
        user.namespace().unwrap_or_default(),
        user.name_any()
    )
}

fn sha256_hex(text: &str) -> String {
    crate::kafka_cluster::properties::hash(text)
}

/// Reconciles one KafkaUser.
pub async fn reconcile(user: Arc<KafkaUser>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = with_finalizer(user.clone(), &ctx).await;
    ctx.metrics.record(KIND, started.elapsed(), result.is_err());
    if result.is_ok() {
        ctx.reset_backoff(&key(&user));
    }
    result
}

/// Retries a failed reconcile with exponential backoff.
pub fn error_policy(user: Arc<KafkaUser>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.next_backoff(&key(&user));
    tracing::warn!(user = %key(&user), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn with_finalizer(user: Arc<KafkaUser>, ctx: &Context) -> Result<Action, Error> {
    let namespace = user.namespace().ok_or(Error::MissingField {
        kind: KIND,
        field: "metadata.namespace",
    })?;
    let api: Api<KafkaUser> = Api::namespaced(ctx.client.clone(), &namespace);
    let object = key(&user);
    let api_ref = &api;
    finalizer::finalizer(&api, FINALIZER, user, |event| async move {
        match event {
            FinalizerEvent::Apply(user) => reconcile_user(&user, api_ref, ctx).await,
            FinalizerEvent::Cleanup(user) => cleanup(&user, ctx).await,
        }
    })
    .await
    .map_err(|e| crate::context::finalizer_error(e, KIND, FINALIZER, object))
}

/// Why a user is not ready; the condition's reason.
#[derive(Debug, Clone, Copy)]
enum Reason {
    ClusterNotFound,
    ClusterDeleting,
    NoTls,
    ClusterUnreachable,
    KafkaRejected,
    SecretConflict,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::ClusterNotFound => "ClusterNotFound",
            Reason::ClusterDeleting => "ClusterDeleting",
            Reason::NoTls => "NoTls",
            Reason::ClusterUnreachable => "ClusterUnreachable",
            Reason::KafkaRejected => "KafkaRejected",
            Reason::SecretConflict => "SecretConflict",
        }
    }
}

async fn write_status(
    ctx: &Context,
    user: &KafkaUser,
    api: &Api<KafkaUser>,
    outcome: Result<Option<String>, (Reason, String)>,
) -> Result<(), Error> {
    let previous = user.status.clone().unwrap_or_default();
    let name = user.name_any();
    let (condition, secret) = match &outcome {
        Ok(secret) => (
            condition(
                "Ready",
                true,
                "Ready",
                format!(
                    "User:{name} has its credential and {} ACL bindings",
                    build::desired_acls(user, &name).len()
                ),
            ),
            secret.clone(),
        ),
        Err((reason, message)) => (
            condition("Ready", false, reason.as_str(), message.clone()),
            previous.secret.clone(),
        ),
    };
    let generation = user.metadata.generation;
    let new = KafkaUserStatus {
        observed_generation: generation,
        conditions: crate::status_patch::stamp_conditions(
            [condition],
            &previous.conditions,
            generation,
            k8s_openapi::jiff::Timestamp::now(),
        ),
        username: Some(name.clone()),
        secret,
    };
    let changed = crate::status_patch::patch_status(api, &name, user.status.as_ref(), &new).await?;
    if changed && let Err((reason, message)) = &outcome {
        ctx.event(user, EventType::Warning, reason.as_str(), message.clone())
            .await;
    }
    Ok(())
}

async fn reconcile_user(
    user: &KafkaUser,
    api: &Api<KafkaUser>,
    ctx: &Context,
) -> Result<Action, Error> {
    let resync = Action::requeue(ctx.settings.resync_interval);
    let namespace = user.namespace().unwrap_or_default();
    let cluster_name = &user.spec.cluster_ref.name;
    let kc = match cluster(&ctx.client, &namespace, cluster_name).await? {
        ClusterState::Present(kc) => kc,
        ClusterState::Missing => {
            let message = format!(
                "KafkaCluster {cluster_name} does not exist in namespace {namespace}: create it or \
                 fix spec.clusterRef.name"
            );
            write_status(ctx, user, api, Err((Reason::ClusterNotFound, message))).await?;
            return Ok(resync);
        }
        ClusterState::Deleting => {
            let message = format!("KafkaCluster {cluster_name} is being deleted");
            write_status(ctx, user, api, Err((Reason::ClusterDeleting, message))).await?;
            return Ok(resync);
        }
    };
    match apply_user(user, &kc, &namespace, ctx).await {
        Ok(done) => {
            write_status(ctx, user, api, Ok(done)).await?;
            Ok(resync)
        }
        Err((reason, error)) => {
            write_status(ctx, user, api, Err((reason, error.to_string()))).await?;
            Err(error)
        }
    }
}

/// Gives the user its credential and ACLs. Answers the Secret's name.
async fn apply_user(
    user: &KafkaUser,
    kc: &KafkaCluster,
    namespace: &str,
    ctx: &Context,
) -> Result<Option<String>, (Reason, Error)> {
    let name = user.name_any();
    let client = &ctx.client;
    let kube_error = |e: Error| (Reason::ClusterUnreachable, e);
    let endpoint = access::endpoint(
        client,
        kc,
        namespace,
        &ctx.settings.broker_image,
        ctx.settings.bootstrap_override.as_deref(),
    )
    .await
    .map_err(kube_error)?;
    let admin = endpoint.connect(MANAGED_BY).await.map_err(|source| {
        (
            Reason::ClusterUnreachable,
            Error::Admin {
                bootstrap: endpoint.to_string(),
                source,
            },
        )
    })?;
    let admin_error = |source: sluice_kafka_admin::AdminError| {
        let reason = if matches!(source, sluice_kafka_admin::AdminError::Kafka { .. }) {
            Reason::KafkaRejected
        } else {
            Reason::ClusterUnreachable
        };
        (
            reason,
            Error::Admin {
                bootstrap: endpoint.to_string(),
                source,
            },
        )
    };

    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = secrets
        .get_opt(&name)
        .await
        .map_err(|e| kube_error(e.into()))?;
    // Never take over a Secret someone else made: deleting the user would delete it.
    if user.spec.authentication.is_some()
        && let Some(s) = &existing
        && !owned_by(s, user)
    {
        return Err((
            Reason::SecretConflict,
            Error::Secret {
                secret: name.clone(),
                reason:
                    "already exists and is not this KafkaUser's: rename the KafkaUser or delete \
                         the Secret"
                        .to_owned(),
            },
        ));
    }
    // The CA clients trust the brokers with (none while the cluster uses no TLS).
    let cluster_ca = certificates::read_ca(
        client,
        namespace,
        &certificates::cluster_ca_secret(&kc.name_any()),
    )
    .await
    .map_err(kube_error)?
    .map(|ca| ca.cert_pem);
    let have = admin.scram_mechanisms(&name).await.map_err(admin_error)?;
    let want = build::scram_mechanism(user.spec.authentication);
    for &m in have.iter().filter(|&&m| Some(m) != want) {
        admin
            .delete_scram_credential(&name, m)
            .await
            .map_err(admin_error)?;
    }

    let mut secret_data = None;
    let mut annotations = None;
    match user.spec.authentication {
        None => {}
        Some(UserAuthentication::Tls) => {
            let kc_name = kc.name_any();
            let ca_name = certificates::clients_ca_secret(&kc_name);
            let Some(clients_ca) = certificates::read_ca(client, namespace, &ca_name)
                .await
                .map_err(kube_error)?
            else {
                return Err((
                    Reason::NoTls,
                    Error::Secret {
                        secret: ca_name,
                        reason: format!(
                            "does not exist: KafkaCluster {kc_name} has no TLS listener, so no client \
                             certificate can be used with it"
                        ),
                    },
                ));
            };
            let issuer = sha256_hex(&clients_ca.cert_pem);
            let want = LeafSpec {
                common_name: name.clone(),
                organization: None,
                dns_names: Vec::new(),
                validity: LEAF_VALIDITY,
            };
            let now = SystemTime::now();
            let current = existing.as_ref().and_then(|s| {
                let same_issuer = s.annotations().get(ISSUER_ANNOTATION) == Some(&issuer);
                let crt = secret_value(s, "user.crt")?;
                let key = secret_value(s, "user.key")?;
                let issued = pki::inspect(&crt).ok()?;
                (!pki::needs_renewal(Some(&issued), same_issuer, &want, now)).then_some((crt, key))
            });
            let (crt, key) = match current {
                Some(pair) => pair,
                None => {
                    let leaf = clients_ca.issue(&want, now).map_err(kube_error)?;
                    tracing::info!(user = %key_of(user), "issued a client certificate");
                    (leaf.cert_pem, leaf.key_pem)
                }
            };
            let Some(cluster_ca) = cluster_ca.as_deref() else {
                return Err((
                    Reason::NoTls,
                    Error::Secret {
                        secret: certificates::cluster_ca_secret(&kc_name),
                        reason: "does not exist yet".to_owned(),
                    },
                ));
            };
            secret_data = Some(build::tls_secret_data(&crt, &key, cluster_ca));
            annotations = Some(std::collections::BTreeMap::from([(
                ISSUER_ANNOTATION.to_owned(),
                issuer,
            )]));
        }
        Some(_) => {
            let mechanism = want.unwrap_or(ScramMechanism::Sha512);
            let password = existing
                .as_ref()
                .and_then(|s| secret_value(s, "password"))
                .filter(|p| !p.is_empty())
                .unwrap_or_else(new_password);
            // Kept on the Secret, which only those who may read the password can read: the
            // cluster keeps a salted hash it cannot compare.
            let hash = sha256_hex(&format!("{mechanism:?}/{password}"));
            let applied = existing
                .as_ref()
                .and_then(|s| s.annotations().get(PASSWORD_ANNOTATION));
            if !have.contains(&mechanism) || applied != Some(&hash) {
                admin
                    .upsert_scram_credential(&name, mechanism, &password)
                    .await
                    .map_err(admin_error)?;
                tracing::info!(user = %key_of(user), ?mechanism, "SCRAM credential set");
            }
            annotations = Some(std::collections::BTreeMap::from([(
                PASSWORD_ANNOTATION.to_owned(),
                hash,
            )]));
            secret_data = Some(build::scram_secret_data(
                &name,
                &password,
                cluster_ca.as_deref(),
            ));
        }
    }
    let secret_name = match secret_data {
        None => None,
        Some(data) => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.to_owned()),
                    labels: Some(std::collections::BTreeMap::from([
                        ("app.kubernetes.io/name".to_owned(), "sluice".to_owned()),
                        ("app.kubernetes.io/instance".to_owned(), kc.name_any()),
                        (
                            "app.kubernetes.io/managed-by".to_owned(),
                            MANAGED_BY.to_owned(),
                        ),
                    ])),
                    annotations,
                    owner_references: user.controller_owner_ref(&()).map(|o| vec![o]),
                    ..ObjectMeta::default()
                },
                data: Some(
                    data.into_iter()
                        .map(|(k, v)| (k, k8s_openapi::ByteString(v.into_bytes())))
                        .collect(),
                ),
                type_: Some("Opaque".to_owned()),
                ..Secret::default()
            };
            apply::apply(&secrets, &secret).await.map_err(kube_error)?;
            Some(name.clone())
        }
    };

    sync_acls(&admin, &build::desired_acls(user, &name), &name)
        .await
        .map_err(admin_error)?;
    Ok(secret_name)
}

/// Whether the KafkaUser is the Secret's controlling owner.
fn owned_by(secret: &Secret, user: &KafkaUser) -> bool {
    secret
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == user.metadata.uid.as_ref())
}

fn key_of(user: &KafkaUser) -> String {
    key(user)
}

/// 32 random letters and digits (190 bits).
fn new_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

async fn sync_acls(
    admin: &AdminClient,
    desired: &[sluice_kafka_admin::Acl],
    name: &str,
) -> Result<(), sluice_kafka_admin::AdminError> {
    let actual = match admin.acls_of(&build::principal(name)).await {
        // A cluster without authorization has no ACLs to remove (and refuses any to add).
        Err(sluice_kafka_admin::AdminError::Kafka {
            error: sluice_kafka_admin::ResponseError::SecurityDisabled,
            ..
        }) if desired.is_empty() => return Ok(()),
        other => other?,
    };
    let (create, delete) = build::acl_changes(desired, &actual);
    admin.create_acls(&create).await?;
    admin.delete_acls(&delete).await?;
    if !create.is_empty() || !delete.is_empty() {
        tracing::info!(
            user = name,
            created = create.len(),
            deleted = delete.len(),
            "ACLs changed"
        );
    }
    Ok(())
}

/// The finalizer: the user's credential and every ACL of its principal go from the cluster. A
/// cluster that is gone or going takes them with it, so the resource is then released at once.
async fn cleanup(user: &KafkaUser, ctx: &Context) -> Result<Action, Error> {
    let done = Ok(Action::await_change());
    let namespace = user.namespace().unwrap_or_default();
    let name = user.name_any();
    let kc = match cluster(&ctx.client, &namespace, &user.spec.cluster_ref.name).await? {
        ClusterState::Present(kc) => kc,
        ClusterState::Missing | ClusterState::Deleting => return done,
    };
    let endpoint = access::endpoint(
        &ctx.client,
        &kc,
        &namespace,
        &ctx.settings.broker_image,
        ctx.settings.bootstrap_override.as_deref(),
    )
    .await?;
    let admin_error = |source| Error::Admin {
        bootstrap: endpoint.to_string(),
        source,
    };
    let admin = endpoint.connect(MANAGED_BY).await.map_err(admin_error)?;
    for m in admin.scram_mechanisms(&name).await.map_err(admin_error)? {
        admin
            .delete_scram_credential(&name, m)
            .await
            .map_err(admin_error)?;
    }
    sync_acls(&admin, &[], &name).await.map_err(admin_error)?;
    tracing::info!(user = %key(user), "removed the user's credential and ACLs");
    ctx.event(
        user,
        EventType::Normal,
        "UserDeleted",
        format!(
            "removed User:{name}'s credential and ACLs from KafkaCluster {}",
            kc.name_any()
        ),
    )
    .await;
    done
}

/// The controller: KafkaUsers, plus their KafkaClusters (a cluster that appears or changes
/// triggers the users naming it). Fails at once if the CRDs are not installed.
async fn controller(
    client: &Client,
    namespace: Option<&str>,
) -> Result<Controller<KafkaUser>, Error> {
    let api = |client: &Client| -> (Api<KafkaUser>, Api<KafkaCluster>) {
        match namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        }
    };
    let (users, clusters) = api(client);
    users
        .list(&kube::api::ListParams::default().limit(1))
        .await?;
    let controller = Controller::new(users, watcher::Config::default());
    let store = controller.store();
    Ok(
        controller.watches(clusters, watcher::Config::default(), move |kc| {
            let namespace = kc.namespace();
            let name = kc.name_any();
            store
                .state()
                .into_iter()
                .filter(|u| u.namespace() == namespace && u.spec.cluster_ref.name == name)
                .map(|u| ObjectRef::from_obj(&*u))
                .collect::<Vec<_>>()
        }),
    )
}

/// Runs the KafkaUser controller until `shutdown` completes. Calls `on_started` once the watches
/// are set up.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    on_started: impl FnOnce(),
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let controller = controller(&ctx.client, namespace)
        .await?
        .graceful_shutdown_on(shutdown);
    on_started();
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(user = %object, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
            }
        })
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_random_and_plain() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
