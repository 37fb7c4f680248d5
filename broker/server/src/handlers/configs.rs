//! DescribeConfigs and IncrementalAlterConfigs for topics (and read-only broker configs).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::config::{ConfigEntry, describe_topic_config};
use crate::metadata::MetadataRecord;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub fn describe_configs(
    broker: &Arc<Broker>,
    req: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.as_str().to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let entries: Vec<ConfigEntry> = match res.resource_type {
                RESOURCE_TOPIC => {
                    let overrides = broker
                        .metadata
                        .image()
                        .topics
                        .get(&name)
                        .map(|t| t.configs.clone());
                    match overrides {
                        Some(o) => describe_topic_config(&broker.config, &o),
                        None => {
                            return result
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                                .with_error_message(Some(StrBytes::from_string(format!(
                                    "Topic '{name}' does not exist."
                                ))));
                        }
                    }
                }
                RESOURCE_BROKER if name.is_empty() || name == broker.node_id.to_string() => {
                    broker.config.describe_broker_config()
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

pub fn incremental_alter_configs(
    broker: &Arc<Broker>,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let resp = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let fail = |code: ResponseError, text: String| {
                resp.clone()
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(text)))
            };
            if res.resource_type != RESOURCE_TOPIC {
                return fail(
                    ResponseError::InvalidRequest,
                    "only topic configs can be altered; broker configs are static (server.properties)".into(),
                );
            }
            let name = res.resource_name.as_str().to_string();
            let _w = broker.metadata.write_lock();
            let Some(topic) = broker.metadata.image().topics.get(&name).cloned() else {
                return fail(ResponseError::UnknownTopicOrPartition, format!("Topic '{name}' does not exist."));
            };
            let mut configs = topic.configs.clone();
            for op in &res.configs {
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
                        let mut items: Vec<String> = configs
                            .get(&key)
                            .map(|c| c.split(',').map(str::to_string).filter(|s| !s.is_empty()).collect())
                            .unwrap_or_default();
                        for item in v.split(',').filter(|s| !s.is_empty()) {
                            if op.config_operation == OP_APPEND {
                                if !items.iter().any(|i| i == item) {
                                    items.push(item.to_string());
                                }
                            } else {
                                items.retain(|i| i != item);
                            }
                        }
                        configs.insert(key, items.join(","));
                    }
                    (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
                        return fail(ResponseError::InvalidRequest, format!("no value given for {key}"));
                    }
                    (other, _) => {
                        return fail(ResponseError::InvalidRequest, format!("unknown operation {other} on {key}"));
                    }
                }
            }
            let log_config = match broker.topic_log_config(&configs) {
                Ok(c) => c,
                Err(e) => return fail(ResponseError::InvalidConfig, e.to_string()),
            };
            if req.validate_only || configs == topic.configs {
                return resp;
            }
            if let Err(e) = broker.metadata.commit(&[MetadataRecord::TopicConfigChanged {
                name: name.clone(),
                configs: configs.clone(),
            }]) {
                return fail(ResponseError::KafkaStorageError, e.to_string());
            }
            for p in 0..topic.partitions {
                if let Some(log) = broker.log(&name, p) {
                    log.lock().update_config(log_config.clone());
                }
            }
            tracing::info!(topic = %name, configs = ?configs, "changed topic config");
            resp
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
