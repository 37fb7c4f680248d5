//! The admin client: which connection a request goes to, and each admin call as typed request and answer.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::Mutex;
use tokio::time::{Instant, timeout, timeout_at};

use crate::error::AdminError;
use crate::types::{
    BrokerInfo, ClusterInfo, ConfigSource, ConfigValue, NewTopic, PartitionInfo, TopicCreated,
    TopicInfo,
};
use sluice_kafka_client::{Connection, Security};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// An async Kafka admin client for topics and their configs.
///
/// Holds at most two connections, each used by one request at a time: one to a bootstrap broker (metadata,
/// configs) and, in a multi-broker cluster, one to the controller (topic changes). A connection that fails is
/// dropped and dialed again on the next call. Every call, including any reconnect, finishes within `timeout`.
pub struct AdminClient {
    bootstrap: Vec<String>,
    client_id: String,
    timeout: Duration,
    /// How every broker is dialed (TLS, a client certificate, SASL).
    security: Security,
    connections: Mutex<Connections>,
}

#[derive(Default)]
struct Connections {
    bootstrap: Option<Connection>,
    /// Only while the controller is another broker than the bootstrap one; keyed by its node id.
    controller: Option<(i32, Connection)>,
}

impl AdminClient {
    /// Connect to the first reachable broker of `bootstrap` (`host:port[,host:port...]`) and negotiate versions.
    pub async fn connect(
        bootstrap: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<AdminClient, AdminError> {
        AdminClient::connect_with(bootstrap, client_id, timeout, Security::default()).await
    }

    /// As [`AdminClient::connect`], dialing every broker as `security` says: over TLS, with a
    /// client certificate, authenticated with SASL.
    pub async fn connect_with(
        bootstrap: &str,
        client_id: &str,
        timeout: Duration,
        security: Security,
    ) -> Result<AdminClient, AdminError> {
        let bootstrap = parse_bootstrap(bootstrap)?;
        let client = AdminClient {
            bootstrap,
            client_id: client_id.to_string(),
            timeout,
            security,
            connections: Mutex::new(Connections::default()),
        };
        let conn = client.dial_bootstrap(Instant::now() + timeout).await?;
        client.connections.lock().await.bootstrap = Some(conn);
        Ok(client)
    }

    /// Cluster id, controller and brokers (from Metadata, which every broker answers).
    pub async fn cluster(&self) -> Result<ClusterInfo, AdminError> {
        let deadline = self.deadline();
        let mut conns = self.lock(deadline).await?;
        self.cluster_on(&mut conns, deadline).await
    }

    /// Every topic, internal ones included, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, AdminError> {
        let deadline = self.deadline();
        let mut conns = self.lock(deadline).await?;
        let (resp, version) = self
            .on_bootstrap(&mut conns, deadline, |_| Ok(metadata_request(None)))
            .await?;
        let mut topics = resp
            .topics
            .into_iter()
            .map(|t| topic_info(t, version))
            .collect::<Result<Vec<_>, _>>()?;
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// One topic, or `None` if it does not exist. Never creates it, whatever `auto.create.topics.enable` says.
    pub async fn describe_topic(&self, name: &str) -> Result<Option<TopicInfo>, AdminError> {
        let deadline = self.deadline();
        let mut conns = self.lock(deadline).await?;
        let (resp, version) = self
            .on_bootstrap(&mut conns, deadline, |_| {
                Ok(metadata_request(Some(&[name])))
            })
            .await?;
        let topic = find(resp.topics, ApiKey::Metadata, name, |t| {
            t.name.as_ref().map(|n| n.0.as_str())
        })?;
        if topic.error_code == ResponseError::UnknownTopicOrPartition.code() {
            return Ok(None);
        }
        topic_info(topic, version).map(Some)
    }

    pub async fn create_topic(&self, spec: &NewTopic) -> Result<TopicCreated, AdminError> {
        let timeout_ms = self.timeout_ms();
        let build = |version: i16| {
            if version < 4 && (spec.partitions.is_none() || spec.replication_factor.is_none()) {
                return Err(AdminError::UnsupportedVersion {
                    api: ApiKey::CreateTopics,
                    reason: format!(
                        "the broker's default partition count or replication factor needs v4+, broker speaks v{version}"
                    ),
                });
            }
            let configs = spec
                .configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_value(Some(StrBytes::from_string(v.clone())))
                })
                .collect();
            let topic = CreatableTopic::default()
                .with_name(topic_name(&spec.name))
                .with_num_partitions(spec.partitions.unwrap_or(-1))
                .with_replication_factor(spec.replication_factor.unwrap_or(-1))
                .with_configs(configs);
            Ok(CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(timeout_ms))
        };
        let (resp, version) = self.call_controller(build).await?;
        let topic = find(resp.topics, ApiKey::CreateTopics, &spec.name, |t| {
            Some(t.name.0.as_str())
        })?;
        check(
            ApiKey::CreateTopics,
            &spec.name,
            topic.error_code,
            topic.error_message,
        )?;
        Ok(TopicCreated {
            id: (version >= 7 && !topic.topic_id.is_nil()).then_some(topic.topic_id),
            partitions: (version >= 5 && topic.num_partitions > 0).then_some(topic.num_partitions),
            replication_factor: (version >= 5 && topic.replication_factor > 0)
                .then_some(topic.replication_factor),
        })
    }

    /// Grow `name` to `total` partitions. Kafka cannot shrink a topic: a smaller or equal count is
    /// refused with INVALID_PARTITIONS.
    pub async fn create_partitions(&self, name: &str, total: i32) -> Result<(), AdminError> {
        let timeout_ms = self.timeout_ms();
        let (resp, _) = self
            .call_controller(|_| {
                Ok(CreatePartitionsRequest::default()
                    .with_topics(vec![
                        CreatePartitionsTopic::default()
                            .with_name(topic_name(name))
                            .with_count(total),
                    ])
                    .with_timeout_ms(timeout_ms))
            })
            .await?;
        let result = find(resp.results, ApiKey::CreatePartitions, name, |r| {
            Some(r.name.0.as_str())
        })?;
        check(
            ApiKey::CreatePartitions,
            name,
            result.error_code,
            result.error_message,
        )
    }

    /// Every config of the topic with its effective value and where that value comes from.
    pub async fn topic_configs(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, ConfigValue>, AdminError> {
        self.describe_configs(RESOURCE_TOPIC, name).await
    }

    /// The cluster-wide dynamic broker configs (`kafka-configs --entity-type brokers --entity-default`):
    /// only the keys set dynamically, with their values.
    pub async fn cluster_default_configs(&self) -> Result<BTreeMap<String, String>, AdminError> {
        let all = self.describe_configs(RESOURCE_BROKER, "").await?;
        Ok(all
            .into_iter()
            .filter(|(_, c)| c.source == ConfigSource::DynamicDefaultBroker)
            .filter_map(|(k, c)| c.value.map(|v| (k, v)))
            .collect())
    }

    async fn describe_configs(
        &self,
        resource_type: i8,
        name: &str,
    ) -> Result<BTreeMap<String, ConfigValue>, AdminError> {
        let deadline = self.deadline();
        let mut conns = self.lock(deadline).await?;
        let (resp, _) = self
            .on_bootstrap(&mut conns, deadline, |_| {
                Ok(DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(StrBytes::from_string(name.to_string()))
                        .with_configuration_keys(None),
                ]))
            })
            .await?;
        let result = find(resp.results, ApiKey::DescribeConfigs, name, |r| {
            Some(r.resource_name.as_str())
        })?;
        check(
            ApiKey::DescribeConfigs,
            name,
            result.error_code,
            result.error_message,
        )?;
        Ok(result
            .configs
            .into_iter()
            .map(|c| {
                (
                    c.name.as_str().to_string(),
                    ConfigValue {
                        value: c.value.map(|v| v.as_str().to_string()),
                        source: ConfigSource::from_kafka_id(c.config_source),
                        read_only: c.read_only,
                        sensitive: c.is_sensitive,
                    },
                )
            })
            .collect())
    }

    /// Set the keys in `set` and remove the overrides named in `delete` (they fall back to the defaults),
    /// in one IncrementalAlterConfigs request. Other overrides are left as they are.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), AdminError> {
        self.alter_configs(RESOURCE_TOPIC, name, set, delete).await
    }

    /// As `alter_topic_configs`, for the cluster-wide dynamic broker configs: applied by every
    /// broker at once, without a restart.
    pub async fn alter_cluster_default_configs(
        &self,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), AdminError> {
        self.alter_configs(RESOURCE_BROKER, "", set, delete).await
    }

    async fn alter_configs(
        &self,
        resource_type: i8,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), AdminError> {
        let what = if resource_type == RESOURCE_TOPIC {
            format!("topic '{name}'")
        } else {
            "the cluster-wide broker defaults".to_owned()
        };
        if let Some(both) = delete.iter().find(|k| set.contains_key(*k)) {
            return Err(AdminError::InvalidRequest(format!(
                "config '{both}' of {what} is both set and deleted"
            )));
        }
        if set.is_empty() && delete.is_empty() {
            return Ok(());
        }
        let ops: Vec<AlterableConfig> = set
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(OP_SET)
                    .with_value(Some(StrBytes::from_string(v.clone())))
            })
            .chain(delete.iter().map(|k| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(OP_DELETE)
                    .with_value(None)
            }))
            .collect();
        let (resp, _) = self
            .call_controller(|_| {
                Ok(
                    IncrementalAlterConfigsRequest::default().with_resources(vec![
                        AlterConfigsResource::default()
                            .with_resource_type(resource_type)
                            .with_resource_name(StrBytes::from_string(name.to_string()))
                            .with_configs(ops),
                    ]),
                )
            })
            .await?;
        let result = find(resp.responses, ApiKey::IncrementalAlterConfigs, name, |r| {
            Some(r.resource_name.as_str())
        })?;
        check(
            ApiKey::IncrementalAlterConfigs,
            name,
            result.error_code,
            result.error_message,
        )
    }

    /// Delete the topic. A topic that does not exist is an error (`is_unknown_topic()`).
    pub async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        let timeout_ms = self.timeout_ms();
        let (resp, _) = self
            .call_controller(|version| {
                let req = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
                // v6 names topics by name or id in `topics`; older versions list names in `topic_names`.
                Ok(if version >= 6 {
                    req.with_topics(vec![
                        DeleteTopicState::default().with_name(Some(topic_name(name))),
                    ])
                } else {
                    req.with_topic_names(vec![topic_name(name)])
                })
            })
            .await?;
        let result = find(resp.responses, ApiKey::DeleteTopics, name, |r| {
            r.name.as_ref().map(|n| n.0.as_str())
        })?;
        check(
            ApiKey::DeleteTopics,
            name,
            result.error_code,
            result.error_message,
        )
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    pub(crate) fn timeout_ms(&self) -> i32 {
        i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX)
    }

    async fn lock(
        &self,
        deadline: Instant,
    ) -> Result<tokio::sync::MutexGuard<'_, Connections>, AdminError> {
        timeout_at(deadline, self.connections.lock())
            .await
            .map_err(|_| AdminError::Timeout {
                op: "waiting for another admin call to finish".into(),
                after: self.timeout,
            })
    }

    /// Send one request, built for the negotiated version, to the controller; all within one timeout.
    pub(crate) async fn call_controller<R: Request>(
        &self,
        build: impl FnOnce(i16) -> Result<R, AdminError>,
    ) -> Result<(R::Response, i16), AdminError> {
        let deadline = self.deadline();
        let mut conns = self.lock(deadline).await?;
        self.on_controller(&mut conns, deadline, build).await
    }

    async fn cluster_on(
        &self,
        conns: &mut Connections,
        deadline: Instant,
    ) -> Result<ClusterInfo, AdminError> {
        let (resp, _) = self
            .on_bootstrap(conns, deadline, |_| Ok(metadata_request(Some(&[]))))
            .await?;
        Ok(cluster_info(&resp))
    }

    async fn on_bootstrap<R: Request>(
        &self,
        conns: &mut Connections,
        deadline: Instant,
        build: impl FnOnce(i16) -> Result<R, AdminError>,
    ) -> Result<(R::Response, i16), AdminError> {
        // Taken out of its slot while in use: if this future is dropped mid-request, so is the connection,
        // and no half-read answer is left for the next call.
        let mut conn = match conns.bootstrap.take() {
            Some(conn) => conn,
            None => self.dial_bootstrap(deadline).await?,
        };
        let result = self.exchange(&mut conn, deadline, build).await;
        if reusable(&result) {
            conns.bootstrap = Some(conn);
        }
        result
    }

    /// Requests that change the cluster go to the controller Metadata names, over the bootstrap connection
    /// when that is the same broker (or the only one).
    async fn on_controller<R: Request>(
        &self,
        conns: &mut Connections,
        deadline: Instant,
        build: impl FnOnce(i16) -> Result<R, AdminError>,
    ) -> Result<(R::Response, i16), AdminError> {
        let info = self.cluster_on(conns, deadline).await?;
        let dialed = conns
            .bootstrap
            .as_ref()
            .map(|c| c.addr.clone())
            .unwrap_or_default();
        let Some((id, addr)) = controller_address(&dialed, &info) else {
            conns.controller = None;
            return self.on_bootstrap(conns, deadline, build).await;
        };
        let mut conn = match conns.controller.take() {
            Some((known, conn)) if known == id && conn.addr == addr => conn,
            _ => match timeout_at(
                deadline,
                Connection::open_with(&addr, &self.client_id, &self.security),
            )
            .await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    return Err(AdminError::NoBroker(format!(
                        "controller {id} at {addr}: {e}"
                    )));
                }
                Err(_) => {
                    return Err(AdminError::NoBroker(format!(
                        "controller {id} at {addr}: no answer within {:?}",
                        self.timeout
                    )));
                }
            },
        };
        let result = self.exchange(&mut conn, deadline, build).await;
        if reusable(&result) {
            conns.controller = Some((id, conn));
        }
        result
    }

    async fn exchange<R: Request>(
        &self,
        conn: &mut Connection,
        deadline: Instant,
        build: impl FnOnce(i16) -> Result<R, AdminError>,
    ) -> Result<(R::Response, i16), AdminError> {
        let key = ApiKey::try_from(R::KEY)
            .map_err(|()| AdminError::Protocol(format!("unknown API key {}", R::KEY)))?;
        let version = conn.versions.pick(key)?;
        let req = build(version)?;
        match timeout_at(deadline, conn.send(&req, version)).await {
            Ok(result) => result.map(|resp| (resp, version)).map_err(AdminError::from),
            Err(_) => Err(AdminError::Timeout {
                op: format!("{key:?} v{version} to {}", conn.addr),
                after: self.timeout,
            }),
        }
    }

    /// Try each bootstrap address in turn. Each gets an equal share of the time left, so one address that
    /// swallows packets does not use up the whole budget before the others are tried.
    async fn dial_bootstrap(&self, deadline: Instant) -> Result<Connection, AdminError> {
        let mut failures = Vec::new();
        for (i, addr) in self.bootstrap.iter().enumerate() {
            let now = Instant::now();
            if now >= deadline {
                failures.push(format!("{addr}: not tried, out of time"));
                continue;
            }
            let left = u32::try_from(self.bootstrap.len() - i).unwrap_or(u32::MAX);
            let budget = (deadline - now) / left;
            match timeout(
                budget,
                Connection::open_with(addr, &self.client_id, &self.security),
            )
            .await
            {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(sluice_kafka_client::ClientError::Io { source, .. })) => {
                    failures.push(format!("{addr}: {source}"));
                }
                Ok(Err(e)) => failures.push(format!("{addr}: {e}")),
                Err(_) => failures.push(format!("{addr}: no answer within {budget:?}")),
            }
        }
        tracing::debug!(failures = ?failures, "no bootstrap broker reachable");
        Err(AdminError::NoBroker(failures.join("; ")))
    }
}

/// A failed exchange may have left bytes in flight; only errors raised before anything was sent keep the
/// connection.
fn reusable<T>(result: &Result<T, AdminError>) -> bool {
    matches!(
        result,
        Ok(_) | Err(AdminError::UnsupportedVersion { .. } | AdminError::InvalidRequest(_))
    )
}

fn parse_bootstrap(bootstrap: &str) -> Result<Vec<String>, AdminError> {
    let addrs: Vec<String> = bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    if addrs.is_empty() {
        return Err(AdminError::InvalidRequest(
            "empty bootstrap server list".into(),
        ));
    }
    for addr in &addrs {
        let port_ok = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(AdminError::InvalidRequest(format!(
                "bootstrap address '{addr}' is not host:port"
            )));
        }
    }
    Ok(addrs)
}

/// The controller's id and address when requests for it must go over a separate connection; `None` when the
/// bootstrap connection will do: a single-broker cluster, no known controller (any broker then answers or
/// forwards), or the controller's advertised address being the one already dialed.
fn controller_address(dialed: &str, info: &ClusterInfo) -> Option<(i32, String)> {
    if info.brokers.len() <= 1 {
        return None;
    }
    let id = info.controller_id?;
    let broker = info.brokers.iter().find(|b| b.id == id)?;
    let addr = broker.address();
    (addr != dialed).then_some((id, addr))
}

/// Metadata for the named topics, or for all (`None`); no names asks only about the cluster.
fn metadata_request(topics: Option<&[&str]>) -> MetadataRequest {
    let topics = topics.map(|names| {
        names
            .iter()
            .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
            .collect()
    });
    MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(false)
}

fn cluster_info(resp: &MetadataResponse) -> ClusterInfo {
    let mut brokers: Vec<BrokerInfo> = resp
        .brokers
        .iter()
        .map(|b| BrokerInfo {
            id: b.node_id.0,
            host: b.host.as_str().to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.as_str().to_string()),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    ClusterInfo {
        cluster_id: resp.cluster_id.as_ref().map(|c| c.as_str().to_string()),
        controller_id: (resp.controller_id.0 >= 0).then_some(resp.controller_id.0),
        brokers,
    }
}

fn topic_info(t: MetadataResponseTopic, version: i16) -> Result<TopicInfo, AdminError> {
    let name = t.name.map(|n| n.0.as_str().to_string()).ok_or_else(|| {
        AdminError::Protocol("Metadata response has a topic without a name".into())
    })?;
    // LEADER_NOT_AVAILABLE is how a broker reports a topic still being created: it exists, partitions follow.
    if t.error_code != ResponseError::LeaderNotAvailable.code() {
        check(ApiKey::Metadata, &name, t.error_code, None)?;
    }
    let mut partitions: Vec<PartitionInfo> = t
        .partitions
        .into_iter()
        .map(|p| PartitionInfo {
            id: p.partition_index,
            leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
        })
        .collect();
    partitions.sort_by_key(|p| p.id);
    Ok(TopicInfo {
        name,
        id: (version >= 10 && !t.topic_id.is_nil()).then_some(t.topic_id),
        internal: t.is_internal,
        partitions,
    })
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// The entry of a per-topic response that answers for `topic`.
fn find<T>(
    items: Vec<T>,
    api: ApiKey,
    topic: &str,
    name_of: impl Fn(&T) -> Option<&str>,
) -> Result<T, AdminError> {
    items
        .into_iter()
        .find(|item| name_of(item) == Some(topic))
        .ok_or_else(|| {
            AdminError::Protocol(format!("{api:?} response has no entry for topic '{topic}'"))
        })
}

pub(crate) fn check(
    api: ApiKey,
    topic: &str,
    code: i16,
    message: Option<StrBytes>,
) -> Result<(), AdminError> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(error) => Err(AdminError::Kafka {
            api,
            topic: topic.to_string(),
            error,
            message: message.map(|m| m.as_str().to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32, host: &str, port: i32) -> BrokerInfo {
        BrokerInfo {
            id,
            host: host.into(),
            port,
            rack: None,
        }
    }

    #[test]
    fn controller_route() {
        let one = ClusterInfo {
            cluster_id: None,
            controller_id: Some(1),
            brokers: vec![broker(1, "kafka-0.kafka", 9092)],
        };
        assert_eq!(controller_address("kafka:9092", &one), None);

        let three = ClusterInfo {
            cluster_id: None,
            controller_id: Some(2),
            brokers: vec![
                broker(1, "kafka-0.kafka", 9092),
                broker(2, "kafka-1.kafka", 9092),
                broker(3, "kafka-2.kafka", 9092),
            ],
        };
        assert_eq!(
            controller_address("kafka:9092", &three),
            Some((2, "kafka-1.kafka:9092".to_string()))
        );
        assert_eq!(controller_address("kafka-1.kafka:9092", &three), None);
        let unknown = ClusterInfo {
            controller_id: None,
            ..three.clone()
        };
        assert_eq!(controller_address("kafka:9092", &unknown), None);
        let v6 = ClusterInfo {
            controller_id: Some(3),
            brokers: vec![broker(1, "a", 1), broker(3, "::1", 9092)],
            ..three
        };
        assert_eq!(
            controller_address("a:1", &v6),
            Some((3, "[::1]:9092".to_string()))
        );
    }

    #[test]
    fn bootstrap_list() {
        assert_eq!(
            parse_bootstrap(" a:1, b:2 ,,").unwrap(),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert_eq!(parse_bootstrap("[::1]:9092").unwrap(), vec!["[::1]:9092"]);
        assert!(matches!(
            parse_bootstrap(" , "),
            Err(AdminError::InvalidRequest(_))
        ));
        let err = parse_bootstrap("kafka").unwrap_err();
        assert!(
            err.to_string().contains("'kafka' is not host:port"),
            "{err}"
        );
        assert!(parse_bootstrap("kafka:99999").is_err());
    }
}
