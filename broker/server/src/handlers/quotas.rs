//! Client quotas (`kafka-configs --entity-type users|clients --add-config producer_byte_rate=…`):
//! AlterClientQuotas writes them into the metadata (at the active controller; others forward it) and
//! DescribeClientQuotas lists them from this node's image, with Kafka's checks and filters. Enforcement is
//! `crate::quotas`.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlteredEntity, EntryData as AlteredEntry,
};
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_metadata::MetadataRecord;
use sluice_metadata::acl::Operation;
use sluice_metadata::quota::{KEYS, QuotaEntity, QuotaEntry};

use super::authz::Authz;
use crate::broker::Broker;
use crate::network::ConnectionInfo;

fn text(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

/// One entry's records, or why Kafka would refuse it (INVALID_REQUEST).
fn entry_records(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<Vec<MetadataRecord>, String> {
    let entity = QuotaEntity::from_parts(entry.entity.iter().map(|e| {
        (
            e.entity_type.as_str(),
            e.entity_name.as_ref().map(|n| n.as_str()),
        )
    }))?;
    let mut seen = BTreeSet::new();
    let mut records = Vec::new();
    for op in &entry.ops {
        let key = op.key.as_str();
        if !KEYS.contains(&key) {
            return Err(format!("Unknown quota key {key}"));
        }
        if !seen.insert(key) {
            return Err(format!("Duplicate quota key {key}"));
        }
        let positive = op.value.is_finite() && op.value > 0.0;
        if !op.remove && !positive {
            return Err(format!(
                "Quota {key} must be a positive number, not {}",
                op.value
            ));
        }
        records.push(MetadataRecord::ClientQuotaChanged {
            entity: entity.clone(),
            key: key.to_owned(),
            value: (!op.remove).then_some(op.value),
        });
    }
    Ok(records)
}

pub async fn alter_client_quotas(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    r: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let allowed = Authz::new(broker, conn).cluster(Operation::AlterConfigs);
    let mut answers = Vec::with_capacity(r.entries.len());
    let mut records = Vec::new();
    for entry in &r.entries {
        let outcome = if allowed {
            entry_records(entry).map_err(|why| (ResponseError::InvalidRequest, why))
        } else {
            Err((
                ResponseError::ClusterAuthorizationFailed,
                "Cluster authorization failed.".into(),
            ))
        };
        if let Ok(rs) = &outcome {
            records.extend(rs.iter().cloned());
        }
        answers.push((entry, outcome.map(|_| ())));
    }
    let written = if r.validate_only || records.is_empty() {
        Ok(())
    } else {
        let _w = broker.metadata.write_lock().await;
        broker
            .propose(records)
            .await
            .map(|_| tracing::info!(principal = %conn.principal, "changed client quotas"))
            .map_err(|e| (e.kafka_error(), e.to_string()))
    };
    let entries = answers
        .into_iter()
        .map(|(entry, outcome)| {
            let a = AlteredEntry::default().with_entity(
                entry
                    .entity
                    .iter()
                    .map(|e| {
                        AlteredEntity::default()
                            .with_entity_type(e.entity_type.clone())
                            .with_entity_name(e.entity_name.clone())
                    })
                    .collect(),
            );
            match outcome.and(written.clone()) {
                Ok(()) => a.with_error_message(None),
                Err((code, why)) => a.with_error_code(code.code()).with_error_message(text(why)),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// Whether `entity` passes DescribeClientQuotas' filter; `Err` for a filter Kafka refuses.
fn matches(entity: &QuotaEntity, r: &DescribeClientQuotasRequest) -> Result<bool, String> {
    let parts = entity.parts();
    for c in &r.components {
        let kind = c.entity_type.as_str();
        if kind != sluice_metadata::quota::USER && kind != sluice_metadata::quota::CLIENT_ID {
            return Err(format!("Unhandled client quota entity type: {kind}"));
        }
        let Some((_, name)) = parts.iter().find(|(k, _)| *k == kind) else {
            return Ok(false);
        };
        let ok = match c.match_type {
            MATCH_EXACT => match (&c._match, name) {
                (Some(m), Some(n)) => m.as_str() == *n,
                _ => false,
            },
            MATCH_DEFAULT => name.is_none(),
            MATCH_SPECIFIED => name.is_some(),
            other => return Err(format!("Unknown match type {other}")),
        };
        if !ok {
            return Ok(false);
        }
    }
    if r.strict && parts.len() != r.components.len() {
        return Ok(false);
    }
    Ok(true)
}

pub fn describe_client_quotas(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    r: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    if !Authz::new(broker, conn).cluster(Operation::DescribeConfigs) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_entries(None);
    }
    let image = broker.metadata.image();
    let mut entries = Vec::new();
    for QuotaEntry { entity, values } in image.client_quotas.values() {
        match matches(entity, &r) {
            Ok(false) => {}
            Ok(true) => entries.push(
                EntryData::default()
                    .with_entity(
                        entity
                            .parts()
                            .into_iter()
                            .map(|(kind, name)| {
                                EntityData::default()
                                    .with_entity_type(StrBytes::from_static_str(kind))
                                    .with_entity_name(
                                        name.map(|n| StrBytes::from_string(n.to_owned())),
                                    )
                            })
                            .collect(),
                    )
                    .with_values(
                        values
                            .iter()
                            .map(|(k, v)| {
                                ValueData::default()
                                    .with_key(StrBytes::from_string(k.clone()))
                                    .with_value(*v)
                            })
                            .collect(),
                    ),
            ),
            Err(why) => {
                return DescribeClientQuotasResponse::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(text(why))
                    .with_entries(None);
            }
        }
    }
    DescribeClientQuotasResponse::default()
        .with_error_message(None)
        .with_entries(Some(entries))
}
