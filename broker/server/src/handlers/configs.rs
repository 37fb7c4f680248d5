//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics, and for brokers: the static file's
//! keys (read-only) and the dynamic ones (`dynamic_config`: throttle rates and log defaults), kept in the
//! metadata.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::authz::Authz;
use crate::broker::Broker;
use crate::config::{ConfigEntry, describe_topic_config};
use crate::dynamic_config::{self, DynamicConfigs};
use crate::metadata::MetadataRecord;
use crate::network::ConnectionInfo;
use crate::repeats::first_of_each;
use sluice_metadata::acl::Operation;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub fn describe_configs(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    req: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let authz = Authz::new(broker, conn);
    let resources = first_of_each(req.resources, |r| {
        (
            r.resource_type,
            r.resource_name.clone(),
            r.configuration_keys.clone(),
        )
    });
    let results = resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.as_str().to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            if let Some(code) = authz.configs(Operation::DescribeConfigs, res.resource_type, &name)
            {
                return result
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_static_str("Authorization failed.")));
            }
            let image = broker.metadata.image();
            let entries: Vec<ConfigEntry> = match res.resource_type {
                RESOURCE_TOPIC => match image.topics.get(&name) {
                    Some(t) => describe_topic_config(
                        &broker.config,
                        &DynamicConfigs::of(&image, broker.node_id),
                        &t.configs,
                    ),
                    None => {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "Topic '{name}' does not exist."
                            ))));
                    }
                },
                RESOURCE_BROKER if name.is_empty() || name == broker.node_id.to_string() => {
                    DynamicConfigs::for_resource(&image, &name).describe_broker(&broker.config)
                }
                RESOURCE_BROKER => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "Unknown broker {name}"
                        ))));
                }
                other => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "Resource type {other} is not supported"
                        ))));
                }
            };
            // Null asks for every key; so does an empty list, which no client means as "none".
            let wanted = res.configuration_keys.as_ref().filter(|k| !k.is_empty());
            let configs = entries
                .into_iter()
                .filter(|e| wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name)))
                .map(|e| {
                    DescribeConfigsResourceResult::default()
                        .with_config_source(e.source.kafka_id())
                        .with_name(StrBytes::from_string(e.name))
                        .with_value(e.value.map(StrBytes::from_string))
                        .with_read_only(e.read_only)
                        .with_is_sensitive(e.sensitive)
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

pub async fn incremental_alter_configs(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let authz = Authz::new(broker, conn);
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let answer = 'answer: {
            // Kafka's success has a null message; kafka-protocol's default is "".
            let resp = AlterConfigsResourceResponse::default()
                .with_error_message(None)
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let fail = |code: ResponseError, text: String| {
                resp.clone()
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(text)))
            };
            let name = res.resource_name.as_str().to_string();
            if let Some(code) = authz.configs(Operation::AlterConfigs, res.resource_type, &name) {
                break 'answer fail(code, "Authorization failed.".into());
            }
            let ops = &res.configs;
            if res.resource_type == RESOURCE_BROKER {
                match change_broker_configs(broker, &name, req.validate_only, |current| {
                    incremental_configs(current, ops)
                })
                .await
                {
                    Ok(()) => break 'answer resp,
                    Err((code, text)) => break 'answer fail(code, text),
                }
            }
            if res.resource_type != RESOURCE_TOPIC {
                break 'answer fail(
                    ResponseError::InvalidRequest,
                    format!("resource type {} cannot be altered", res.resource_type),
                );
            }
            match change_topic_configs(broker, &name, req.validate_only, |current| {
                incremental_configs(current, ops)
            })
            .await
            {
                Ok(()) => resp,
                Err((code, text)) => fail(code, text),
            }
        };
        responses.push(answer);
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// The legacy AlterConfigs: the given set replaces the topic's overrides whole, so any override not named
/// goes back to the broker default (what Kafka does; aiokafka and kafka-python's admin clients still use it).
pub async fn alter_configs(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    req: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let authz = Authz::new(broker, conn);
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let answer = 'answer: {
            let resp = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_message(None)
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let fail = |code: ResponseError, text: String| {
                resp.clone()
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(text)))
            };
            if let Some(code) = authz.configs(
                Operation::AlterConfigs,
                res.resource_type,
                res.resource_name.as_str(),
            ) {
                break 'answer fail(code, "Authorization failed.".into());
            }
            if res.resource_type != RESOURCE_TOPIC && res.resource_type != RESOURCE_BROKER {
                break 'answer fail(
                    ResponseError::InvalidRequest,
                    format!("resource type {} cannot be altered", res.resource_type),
                );
            }
            // Kafka's wording for both refusals, checked before the topic is looked up.
            let nulls: Vec<&str> = res
                .configs
                .iter()
                .filter(|c| c.value.is_none())
                .map(|c| c.name.as_str())
                .collect();
            if !nulls.is_empty() {
                break 'answer fail(
                    ResponseError::InvalidRequest,
                    format!("Null value not supported for : {}", nulls.join(", ")),
                );
            }
            let mut seen = BTreeSet::new();
            if !res.configs.iter().all(|c| seen.insert(c.name.as_str())) {
                break 'answer fail(
                    ResponseError::InvalidRequest,
                    "Error due to duplicate config keys".into(),
                );
            }
            let configs: BTreeMap<String, String> = res
                .configs
                .iter()
                .filter_map(|c| {
                    Some((
                        c.name.as_str().to_string(),
                        c.value.as_ref()?.as_str().to_string(),
                    ))
                })
                .collect();
            let name = res.resource_name.as_str().to_string();
            let changed = if res.resource_type == RESOURCE_BROKER {
                change_broker_configs(broker, &name, req.validate_only, |_| Ok(configs)).await
            } else {
                change_topic_configs(broker, &name, req.validate_only, |_| Ok(configs)).await
            };
            match changed {
                Ok(()) => resp,
                Err((code, text)) => fail(code, text),
            }
        };
        responses.push(answer);
    }
    AlterConfigsResponse::default().with_responses(responses)
}

type Refusal = (ResponseError, String);

/// Replaces topic `name`'s overrides with what `change` makes of the current ones, after checking that the
/// result is a valid topic config; commits it to the metadata log and applies it to the partition logs.
/// Holding the metadata write lock throughout keeps two concurrent changes from losing one another.
async fn change_topic_configs(
    broker: &Arc<Broker>,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Refusal>,
) -> Result<(), Refusal> {
    let _w = broker.metadata.write_lock().await;
    let Some(topic) = broker.metadata.image().topics.get(name).cloned() else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        ));
    };
    let configs = change(&topic.configs)?;
    broker
        .topic_log_config(&broker.metadata.image(), &configs)
        .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    if validate_only || configs == topic.configs {
        return Ok(());
    }
    // The publisher hands the new config to the partition logs.
    broker
        .propose(vec![MetadataRecord::TopicConfigChanged {
            name: name.to_string(),
            configs: configs.clone(),
        }])
        .await
        .map_err(|e| (e.kafka_error(), e.to_string()))?;
    tracing::info!(topic = %name, configs = ?configs, "changed topic config");
    Ok(())
}

/// As `change_topic_configs`, for a broker's dynamic configs (`name`: a broker id, or "" for the cluster-wide
/// default): the replication throttle rates and the log defaults (`dynamic_config`); any other key is refused,
/// naming it. The publisher hands changed log defaults to every log.
async fn change_broker_configs(
    broker: &Arc<Broker>,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Refusal>,
) -> Result<(), Refusal> {
    let broker_id = if name.is_empty() {
        None
    } else {
        Some(name.parse::<i32>().map_err(|_| {
            (
                ResponseError::InvalidRequest,
                format!("broker resource name {name:?} is not a broker id"),
            )
        })?)
    };
    let _w = broker.metadata.write_lock().await;
    let image = broker.metadata.image();
    let current = image.broker_configs.get(name).cloned().unwrap_or_default();
    let configs = change(&current)?;
    // Kafka answers INVALID_REQUEST both for a key that is not dynamic and for a bad value.
    for (key, value) in &configs {
        dynamic_config::validate(key, value)
            .map_err(|e| (ResponseError::InvalidRequest, e.to_string()))?;
    }
    if validate_only || configs == current {
        return Ok(());
    }
    broker
        .propose(vec![MetadataRecord::BrokerConfigChanged {
            broker_id,
            configs: configs.clone(),
        }])
        .await
        .map_err(|e| (e.kafka_error(), e.to_string()))?;
    tracing::info!(broker = %name, configs = ?configs, "changed dynamic broker config");
    Ok(())
}

/// IncrementalAlterConfigs' operations (SET, DELETE, APPEND, SUBTRACT) applied to a copy of `current`.
fn incremental_configs(
    current: &BTreeMap<String, String>,
    ops: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
) -> Result<BTreeMap<String, String>, Refusal> {
    let mut configs = current.clone();
    for op in ops {
        let key = op.name.as_str().to_string();
        let value = op.value.as_ref().map(|v| v.as_str().to_string());
        match (op.config_operation, value) {
            (OP_SET, Some(v)) => {
                configs.insert(key, v);
            }
            (OP_DELETE, _) => {
                configs.remove(&key);
            }
            (OP_APPEND | OP_SUBTRACT, Some(v)) => {
                let append = op.config_operation == OP_APPEND;
                if !dynamic_config::is_list(&key) {
                    // Kafka's refusal, word for word.
                    let verb = if append { "APPEND" } else { "SUBTRACT" };
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("Can't {verb} to key {key} because its type is not LIST."),
                    ));
                }
                // Sets alongside the lists keep this linear in the number of items, whatever a request holds.
                let mut items: Vec<String> = Vec::new();
                let mut present: HashSet<String> = HashSet::new();
                for item in configs.get(&key).map_or("", String::as_str).split(',') {
                    if !item.is_empty() {
                        present.insert(item.to_string());
                        items.push(item.to_string());
                    }
                }
                let given: Vec<&str> = v.split(',').filter(|s| !s.is_empty()).collect();
                if append {
                    for item in given {
                        if present.insert(item.to_string()) {
                            items.push(item.to_string());
                        }
                    }
                } else {
                    let gone: HashSet<&str> = given.into_iter().collect();
                    items.retain(|i| !gone.contains(i.as_str()));
                }
                configs.insert(key, items.join(","));
            }
            (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("no value given for {key}"),
                ));
            }
            (other, _) => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("unknown operation {other} on {key}"),
                ));
            }
        }
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;

    fn op(operation: i8, name: &str, value: &str) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name.into()))
            .with_config_operation(operation)
            .with_value(Some(StrBytes::from_string(value.into())))
    }

    #[test]
    fn append_and_subtract_work_item_by_item_on_list_keys_only() {
        let current: BTreeMap<String, String> =
            [("cleanup.policy".to_string(), "delete".to_string())].into();
        // Many items, repeated: appended once each, in order, after what was there.
        let many: Vec<String> = (0..50_000).map(|i| format!("x{}", i % 1000)).collect();
        let appended = incremental_configs(
            &current,
            &[op(OP_APPEND, "cleanup.policy", &many.join(","))],
        )
        .unwrap();
        let items: Vec<&str> = appended["cleanup.policy"].split(',').collect();
        assert_eq!(items.len(), 1001);
        assert_eq!((items[0], items[1], items[1000]), ("delete", "x0", "x999"));
        let subtracted = incremental_configs(
            &appended,
            &[op(OP_SUBTRACT, "cleanup.policy", &many.join(","))],
        )
        .unwrap();
        assert_eq!(subtracted["cleanup.policy"], "delete");
        let (code, message) =
            incremental_configs(&current, &[op(OP_APPEND, "retention.ms", "1")]).unwrap_err();
        assert_eq!(code, ResponseError::InvalidConfig);
        assert_eq!(
            message,
            "Can't APPEND to key retention.ms because its type is not LIST."
        );
    }
}
