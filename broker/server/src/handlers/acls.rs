//! CreateAcls and DeleteAcls (at the active controller; other nodes forward them) write ACLs into the cluster
//! metadata; DescribeAcls lists them from this node's image. What they mean is `sluice_metadata::acl`; who may
//! call these (ALTER or DESCRIBE on the cluster) is checked here, as Kafka does.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_metadata::MetadataRecord;
use sluice_metadata::acl::{AclBinding, AclCreation, AclFilter, Operation};
use uuid::Uuid;

use super::authz::Authz;
use crate::broker::Broker;
use crate::network::ConnectionInfo;

const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

fn text(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

/// Why the whole request is refused: no authorizer, or no ALTER/DESCRIBE on the cluster.
fn refusal(broker: &Broker, conn: &ConnectionInfo, op: Operation) -> Option<(i16, String)> {
    if broker.config.authorizer.is_none() {
        return Some((ResponseError::SecurityDisabled.code(), NO_AUTHORIZER.into()));
    }
    if !Authz::new(broker, conn).cluster(op) {
        return Some((
            ResponseError::ClusterAuthorizationFailed.code(),
            "Cluster authorization failed.".into(),
        ));
    }
    None
}

pub async fn create_acls(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    r: CreateAclsRequest,
) -> CreateAclsResponse {
    let failed = |code: i16, message: &str| {
        AclCreationResult::default()
            .with_error_code(code)
            .with_error_message(text(message))
    };
    if let Some((code, message)) = refusal(broker, conn, Operation::Alter) {
        return CreateAclsResponse::default()
            .with_results(r.creations.iter().map(|_| failed(code, &message)).collect());
    }
    let _w = broker.metadata.write_lock().await;
    let image = broker.metadata.image();
    let mut records = Vec::new();
    let mut results: Vec<Result<(), String>> = Vec::new();
    for c in &r.creations {
        let creation = AclCreation {
            resource_type: c.resource_type,
            resource_name: c.resource_name.as_str(),
            pattern_type: c.resource_pattern_type,
            principal: c.principal.as_str(),
            host: c.host.as_str(),
            operation: c.operation,
            permission: c.permission_type,
        };
        match creation.validate() {
            Ok(acl) => {
                // An ACL that exists already is no error and no new record, as in Kafka.
                let known = image.acls.values().any(|a| *a == acl)
                    || records.iter().any(
                        |r| matches!(r, MetadataRecord::AclCreated { acl: a, .. } if *a == acl),
                    );
                if !known {
                    records.push(MetadataRecord::AclCreated {
                        id: Uuid::new_v4(),
                        acl,
                    });
                }
                results.push(Ok(()));
            }
            Err(why) => results.push(Err(why)),
        }
    }
    let written = if records.is_empty() {
        Ok(())
    } else {
        let n = records.len();
        broker
            .propose(records)
            .await
            .map(|_| tracing::info!(acls = n, principal = %conn.principal, "created ACLs"))
            .map_err(|e| (e.kafka_error().code(), e.to_string()))
    };
    let results = results
        .into_iter()
        .map(|result| match (result, &written) {
            (Err(why), _) => failed(ResponseError::InvalidRequest.code(), &why),
            (Ok(()), Err((code, message))) => failed(*code, message),
            (Ok(()), Ok(())) => AclCreationResult::default().with_error_message(None),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn filter_of(f: &DeleteAclsFilter) -> AclFilter<'_> {
    AclFilter {
        resource_type: f.resource_type_filter,
        resource_name: f.resource_name_filter.as_ref().map(|s| s.as_str()),
        pattern_type: f.pattern_type_filter,
        principal: f.principal_filter.as_ref().map(|s| s.as_str()),
        host: f.host_filter.as_ref().map(|s| s.as_str()),
        operation: f.operation,
        permission: f.permission_type,
    }
}

pub async fn delete_acls(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    r: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |code: i16, message: &str| {
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(text(message))
    };
    if let Some((code, message)) = refusal(broker, conn, Operation::Alter) {
        return DeleteAclsResponse::default()
            .with_filter_results(r.filters.iter().map(|_| failed(code, &message)).collect());
    }
    let _w = broker.metadata.write_lock().await;
    let image = broker.metadata.image();
    let mut deleted: BTreeMap<Uuid, &AclBinding> = BTreeMap::new();
    let mut matches: Vec<Result<Vec<&AclBinding>, String>> = Vec::new();
    for f in &r.filters {
        let filter = filter_of(f);
        match filter.validate() {
            Ok(()) => {
                let found: Vec<(&Uuid, &AclBinding)> = image
                    .acls
                    .iter()
                    .filter(|(_, a)| filter.matches(a))
                    .collect();
                deleted.extend(found.iter().map(|&(id, a)| (*id, a)));
                matches.push(Ok(found.into_iter().map(|(_, a)| a).collect()));
            }
            Err(why) => matches.push(Err(why)),
        }
    }
    let written = if deleted.is_empty() {
        Ok(())
    } else {
        let n = deleted.len();
        broker
            .propose(
                deleted
                    .keys()
                    .map(|&id| MetadataRecord::AclDeleted { id })
                    .collect(),
            )
            .await
            .map(|_| tracing::info!(acls = n, principal = %conn.principal, "deleted ACLs"))
            .map_err(|e| (e.kafka_error().code(), e.to_string()))
    };
    let results = matches
        .into_iter()
        .map(|m| match (m, &written) {
            (Err(why), _) => failed(ResponseError::InvalidRequest.code(), &why),
            (Ok(_), Err((code, message))) => failed(*code, message),
            (Ok(acls), Ok(())) => DeleteAclsFilterResult::default()
                .with_error_message(None)
                .with_matching_acls(
                    acls.into_iter()
                        .map(|a| {
                            DeleteAclsMatchingAcl::default()
                                .with_error_message(None)
                                .with_resource_type(a.resource_type.id())
                                .with_resource_name(StrBytes::from_string(a.resource_name.clone()))
                                .with_pattern_type(a.pattern_type.id())
                                .with_principal(StrBytes::from_string(a.principal.clone()))
                                .with_host(StrBytes::from_string(a.host.clone()))
                                .with_operation(a.operation.id())
                                .with_permission_type(a.permission.id())
                        })
                        .collect(),
                ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

pub fn describe_acls(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    r: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if let Some((code, message)) = refusal(broker, conn, Operation::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(text(message));
    }
    let filter = AclFilter {
        resource_type: r.resource_type_filter,
        resource_name: r.resource_name_filter.as_ref().map(|s| s.as_str()),
        pattern_type: r.pattern_type_filter,
        principal: r.principal_filter.as_ref().map(|s| s.as_str()),
        host: r.host_filter.as_ref().map(|s| s.as_str()),
        operation: r.operation,
        permission: r.permission_type,
    };
    if let Err(why) = filter.validate() {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(text(why));
    }
    let image = broker.metadata.image();
    // One entry per resource pattern, its ACLs under it.
    let mut resources: BTreeMap<(i8, &str, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in image.acls.values().filter(|a| filter.matches(a)) {
        resources
            .entry((
                acl.resource_type.id(),
                acl.resource_name.as_str(),
                acl.pattern_type.id(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(StrBytes::from_string(acl.principal.clone()))
                    .with_host(StrBytes::from_string(acl.host.clone()))
                    .with_operation(acl.operation.id())
                    .with_permission_type(acl.permission.id()),
            );
    }
    DescribeAclsResponse::default()
        .with_error_message(None)
        .with_resources(
            resources
                .into_iter()
                .map(|((rt, name, pt), acls)| {
                    DescribeAclsResource::default()
                        .with_resource_type(rt)
                        .with_resource_name(StrBytes::from_string(name.to_owned()))
                        .with_pattern_type(pt)
                        .with_acls(acls)
                })
                .collect(),
        )
}
