//! Users and what they may do: SCRAM credentials (AlterUserScramCredentials,
//! DescribeUserScramCredentials) and ACLs (CreateAcls, DescribeAcls, DeleteAcls), as
//! `kafka-configs --entity-type users` and `kafka-acls` use them. Every request goes to the
//! controller broker, which forwards the changes to the active controller.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, CreateAclsRequest, DeleteAclsRequest,
    DescribeAclsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use sluice_kafka_client::scram::{ScramHash, salted_password};

use crate::AdminClient;
use crate::client::check;
use crate::error::AdminError;

/// The SCRAM iterations of the credentials this client creates (Kafka's minimum and its tools' default).
pub const SCRAM_ITERATIONS: i32 = 4096;

/// A SCRAM mechanism, by its wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    fn hash(self) -> ScramHash {
        match self {
            ScramMechanism::Sha256 => ScramHash::Sha256,
            ScramMechanism::Sha512 => ScramHash::Sha512,
        }
    }

    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        match code {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }
}

/// One ACL, with Kafka's wire codes: resource type (2 topic, 3 group, 4 cluster, 5 transactional
/// id), pattern type (3 literal, 4 prefixed), operation (2 all … 12 idempotent write) and
/// permission (2 deny, 3 allow).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acl {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// The wire code of "any" in ACL filters.
const ANY: i8 = 1;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

impl AdminClient {
    /// Creates or replaces `user`'s credential for `mechanism`, salted here with a random salt: the
    /// password itself never leaves this process.
    pub async fn upsert_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        password: &str,
    ) -> Result<(), AdminError> {
        let salt: [u8; 32] = {
            // Two v4 UUIDs: 244 random bits from the operating system's generator.
            let mut s = [0u8; 32];
            s[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            s[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            s
        };
        let salted = salted_password(
            mechanism.hash(),
            password.as_bytes(),
            &salt,
            SCRAM_ITERATIONS as u32,
        );
        let upsertion = ScramCredentialUpsertion::default()
            .with_name(text(user))
            .with_mechanism(mechanism.code())
            .with_iterations(SCRAM_ITERATIONS)
            .with_salt(Bytes::copy_from_slice(&salt))
            .with_salted_password(Bytes::from(salted));
        self.alter_scram(
            user,
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]),
        )
        .await
    }

    /// Deletes `user`'s credential for `mechanism`; one that does not exist is not an error.
    pub async fn delete_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<(), AdminError> {
        let deletion = ScramCredentialDeletion::default()
            .with_name(text(user))
            .with_mechanism(mechanism.code());
        match self
            .alter_scram(
                user,
                AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]),
            )
            .await
        {
            Err(AdminError::Kafka {
                error: ResponseError::ResourceNotFound,
                ..
            }) => Ok(()),
            other => other,
        }
    }

    async fn alter_scram(
        &self,
        user: &str,
        request: AlterUserScramCredentialsRequest,
    ) -> Result<(), AdminError> {
        let (resp, _) = self.call_controller(|_| Ok(request)).await?;
        for r in resp.results {
            check(
                ApiKey::AlterUserScramCredentials,
                &format!("User:{user}"),
                r.error_code,
                r.error_message,
            )?;
        }
        Ok(())
    }

    /// The SCRAM mechanisms `user` has a credential for.
    pub async fn scram_mechanisms(&self, user: &str) -> Result<Vec<ScramMechanism>, AdminError> {
        let (resp, _) = self
            .call_controller(|_| {
                Ok(DescribeUserScramCredentialsRequest::default()
                    .with_users(Some(vec![UserName::default().with_name(text(user))])))
            })
            .await?;
        let principal = format!("User:{user}");
        check(
            ApiKey::DescribeUserScramCredentials,
            &principal,
            resp.error_code,
            resp.error_message,
        )?;
        let mut out = Vec::new();
        for r in resp.results {
            if r.error_code == ResponseError::ResourceNotFound.code() {
                continue;
            }
            check(
                ApiKey::DescribeUserScramCredentials,
                &principal,
                r.error_code,
                r.error_message,
            )?;
            out.extend(
                r.credential_infos
                    .iter()
                    .filter_map(|c| ScramMechanism::from_code(c.mechanism)),
            );
        }
        out.sort();
        Ok(out)
    }

    /// Every ACL of `principal` (e.g. `User:alice`), sorted.
    pub async fn acls_of(&self, principal: &str) -> Result<Vec<Acl>, AdminError> {
        let (resp, _) = self
            .call_controller(|_| {
                Ok(DescribeAclsRequest::default()
                    .with_resource_type_filter(ANY)
                    .with_resource_name_filter(None)
                    .with_pattern_type_filter(ANY)
                    .with_principal_filter(Some(text(principal)))
                    .with_host_filter(None)
                    .with_operation(ANY)
                    .with_permission_type(ANY))
            })
            .await?;
        check(
            ApiKey::DescribeAcls,
            principal,
            resp.error_code,
            resp.error_message,
        )?;
        let mut out: Vec<Acl> = resp
            .resources
            .into_iter()
            .flat_map(|r| {
                let (resource_type, name, pattern_type) =
                    (r.resource_type, r.resource_name.to_string(), r.pattern_type);
                r.acls.into_iter().map(move |a| Acl {
                    resource_type,
                    resource_name: name.clone(),
                    pattern_type,
                    principal: a.principal.to_string(),
                    host: a.host.to_string(),
                    operation: a.operation,
                    permission: a.permission_type,
                })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    pub async fn create_acls(&self, acls: &[Acl]) -> Result<(), AdminError> {
        if acls.is_empty() {
            return Ok(());
        }
        let creations = acls
            .iter()
            .map(|a| {
                AclCreation::default()
                    .with_resource_type(a.resource_type)
                    .with_resource_name(text(&a.resource_name))
                    .with_resource_pattern_type(a.pattern_type)
                    .with_principal(text(&a.principal))
                    .with_host(text(&a.host))
                    .with_operation(a.operation)
                    .with_permission_type(a.permission)
            })
            .collect();
        let (resp, _) = self
            .call_controller(|_| Ok(CreateAclsRequest::default().with_creations(creations)))
            .await?;
        for (r, a) in resp.results.into_iter().zip(acls) {
            check(
                ApiKey::CreateAcls,
                &a.principal,
                r.error_code,
                r.error_message,
            )?;
        }
        Ok(())
    }

    /// Deletes exactly these ACLs (each filter matches one binding).
    pub async fn delete_acls(&self, acls: &[Acl]) -> Result<(), AdminError> {
        if acls.is_empty() {
            return Ok(());
        }
        let filters = acls
            .iter()
            .map(|a| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(a.resource_type)
                    .with_resource_name_filter(Some(text(&a.resource_name)))
                    .with_pattern_type_filter(a.pattern_type)
                    .with_principal_filter(Some(text(&a.principal)))
                    .with_host_filter(Some(text(&a.host)))
                    .with_operation(a.operation)
                    .with_permission_type(a.permission)
            })
            .collect();
        let (resp, _) = self
            .call_controller(|_| Ok(DeleteAclsRequest::default().with_filters(filters)))
            .await?;
        for (r, a) in resp.filter_results.into_iter().zip(acls) {
            check(
                ApiKey::DeleteAcls,
                &a.principal,
                r.error_code,
                r.error_message,
            )?;
        }
        Ok(())
    }
}
