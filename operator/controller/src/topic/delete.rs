//! What the finalizer does when a Topic is deleted: delete the Kafka topic, unless it is to be
//! kept. Returning `Ok` releases the finalizer; an error keeps it and retries with backoff.
//!
//! A finalizer must never hang a namespace, so the topic is released without touching the
//! brokers when the KafkaCluster is gone or being deleted (its brokers go with it), when the
//! resource never named a valid topic, and when the brokers refuse the deletion outright
//! (e.g. `delete.topic.enable=false`; a Warning event says so). It is kept only while the
//! brokers may still answer: transport failures are retried.

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use sluice_crd::Topic;

use super::apply::is_refusal;
use super::read::{self, ClusterState};
use super::validate::{self, DELETION_POLICY_ANNOTATION, DeletionPolicy};
use super::{Context, key};
use crate::error::Error;

pub async fn cleanup(topic: &Topic, ctx: &Context) -> Result<Action, Error> {
    let done = Ok(Action::await_change());
    let Ok(name) = validate::topic_name(topic) else {
        // Never a valid Kafka name, so never created.
        return done;
    };
    match validate::deletion_policy(topic) {
        Ok(DeletionPolicy::Delete) => {}
        Ok(DeletionPolicy::Retain) => {
            let note = format!("kept topic '{name}' ({DELETION_POLICY_ANNOTATION}: retain)");
            ctx.event(topic, EventType::Normal, "TopicRetained", note)
                .await;
            return done;
        }
        Err(e) => {
            // When in doubt, keep the data.
            let note = format!("kept topic '{name}': {e}");
            ctx.event(topic, EventType::Warning, "TopicRetained", note)
                .await;
            return done;
        }
    }

    let namespace = topic.namespace().unwrap_or_default();
    let cluster = &topic.spec.cluster_ref.name;
    let kc = match read::cluster(&ctx.client, &namespace, cluster).await? {
        ClusterState::Present(kc) => kc,
        ClusterState::Missing | ClusterState::Deleting => {
            let note = format!(
                "KafkaCluster {cluster} is gone or being deleted; released the resource without \
                 deleting topic '{name}'"
            );
            ctx.event(topic, EventType::Normal, "ClusterGone", note)
                .await;
            return done;
        }
    };
    let others = read::other_topics(&ctx.client, topic).await?;
    if let Some(other) = read::still_wanted(topic, &others) {
        let note = format!(
            "kept topic '{name}': Topic {} still manages it",
            other.name_any()
        );
        ctx.event(topic, EventType::Normal, "TopicRetained", note)
            .await;
        return done;
    }

    let endpoint = read::endpoint(&ctx.client, &ctx.settings, &kc, &namespace).await?;
    let bootstrap = endpoint.to_string();
    let admin_error = |source| Error::Admin {
        bootstrap: bootstrap.clone(),
        source,
    };
    let admin = read::connect(&endpoint).await?;
    match admin.describe_topic(name).await.map_err(admin_error)? {
        None => return done,
        Some(info) if info.internal => return done,
        Some(_) => {}
    }
    match admin.delete_topic(name).await {
        Ok(()) => {
            tracing::info!(topic = %key(topic), "deleted topic '{name}'");
            let note = format!("deleted topic '{name}'");
            ctx.event(topic, EventType::Normal, "TopicDeleted", note)
                .await;
        }
        Err(e) if e.is_unknown_topic() => {}
        Err(e) if is_refusal(&e) => {
            let note = format!("the brokers refused to delete topic '{name}', so it is kept: {e}");
            ctx.event(topic, EventType::Warning, "TopicNotDeleted", note)
                .await;
        }
        Err(e) => return Err(admin_error(e)),
    }
    done
}
