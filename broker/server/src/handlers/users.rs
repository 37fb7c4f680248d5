//! SCRAM credentials (`kafka-configs --entity-type users --add-config 'SCRAM-SHA-512=[…]'`): AlterUserScram-
//! Credentials writes them into the cluster metadata (at the active controller; other nodes forward it) and
//! DescribeUserScramCredentials lists them from this node's image. Kafka's checks and error codes.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_metadata::scram::{MAX_ITERATIONS, MIN_ITERATIONS};
use sluice_metadata::{MetadataImage, MetadataRecord, ScramMechanism};

use crate::broker::Broker;
use crate::scram;

type Refusal = (ResponseError, String);

/// The records one user's part of an AlterUserScramCredentials makes, or why all of it is refused.
#[derive(Debug, Default)]
struct UserChange {
    records: Vec<MetadataRecord>,
    refusal: Option<Refusal>,
    /// Alterations of this user in the request: Kafka refuses more than one (even of two mechanisms).
    seen: usize,
}

/// Decides an AlterUserScramCredentials against `image` (pure): per user, its record or its refusal. As in
/// Kafka, a user may be altered once per request.
fn decide(
    image: &MetadataImage,
    r: &AlterUserScramCredentialsRequest,
) -> BTreeMap<String, UserChange> {
    // Who and which mechanism, checked alike for deletions and upsertions.
    let target = |user: &str, mechanism: i8| -> Result<ScramMechanism, Refusal> {
        if user.is_empty() {
            return Err((
                ResponseError::UnacceptableCredential,
                "Username must not be empty".into(),
            ));
        }
        ScramMechanism::from_id(mechanism).ok_or((
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism".into(),
        ))
    };
    let deletions = r.deletions.iter().map(|d| {
        let user = d.name.as_str();
        let record = target(user, d.mechanism).and_then(|m| {
            if image.scram_credential(user, m).is_none() {
                return Err((
                    ResponseError::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist".into(),
                ));
            }
            Ok(MetadataRecord::ScramCredentialChanged {
                user: user.to_owned(),
                mechanism: m,
                credential: None,
            })
        });
        (user, record)
    });
    let upsertions = r.upsertions.iter().map(|u| {
        let user = u.name.as_str();
        let record = target(user, u.mechanism).and_then(|m| {
            if u.iterations < MIN_ITERATIONS {
                return Err((
                    ResponseError::UnacceptableCredential,
                    format!("Too few iterations: the minimum is {MIN_ITERATIONS}"),
                ));
            }
            if u.iterations > MAX_ITERATIONS {
                return Err((
                    ResponseError::UnacceptableCredential,
                    format!("Too many iterations: the maximum is {MAX_ITERATIONS}"),
                ));
            }
            if u.salt.is_empty() || u.salted_password.is_empty() {
                return Err((
                    ResponseError::UnacceptableCredential,
                    "Salt and salted password must not be empty".into(),
                ));
            }
            Ok(MetadataRecord::ScramCredentialChanged {
                user: user.to_owned(),
                mechanism: m,
                credential: Some(scram::credential(
                    m,
                    &u.salted_password,
                    &u.salt,
                    u.iterations,
                )),
            })
        });
        (user, record)
    });
    let mut users: BTreeMap<String, UserChange> = BTreeMap::new();
    for (user, record) in deletions.chain(upsertions) {
        let change = users.entry(user.to_owned()).or_default();
        change.seen += 1;
        let record = if change.seen > 1 {
            Err(twice())
        } else {
            record
        };
        match record {
            Ok(record) => change.records.push(record),
            Err(refusal) => {
                change.refusal.get_or_insert(refusal);
            }
        }
    }
    users
}

fn twice() -> Refusal {
    (
        ResponseError::DuplicateResource,
        "A user credential cannot be altered twice in the same request".into(),
    )
}

/// The answer refusing all of `r` with `code`: one result per user named, as Kafka answers.
pub fn refuse_all(
    r: &AlterUserScramCredentialsRequest,
    code: i16,
    message: Option<&str>,
) -> AlterUserScramCredentialsResponse {
    let users: std::collections::BTreeSet<&str> = r
        .deletions
        .iter()
        .map(|d| d.name.as_str())
        .chain(r.upsertions.iter().map(|u| u.name.as_str()))
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(
        users
            .into_iter()
            .map(|u| {
                AlterUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(u.to_owned()))
                    .with_error_code(code)
                    .with_error_message(message.map(|m| StrBytes::from_string(m.to_owned())))
            })
            .collect(),
    )
}

pub async fn alter_user_scram_credentials(
    broker: &Arc<Broker>,
    r: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let _w = broker.metadata.write_lock().await;
    let users = decide(&broker.metadata.image(), &r);
    let records: Vec<MetadataRecord> = users
        .values()
        .filter(|c| c.refusal.is_none())
        .flat_map(|c| c.records.iter().cloned())
        .collect();
    // One write for the whole request; if it fails, every user that had changes gets its error.
    let written: Result<(), Refusal> = if records.is_empty() {
        Ok(())
    } else {
        broker
            .propose(records)
            .await
            .map(|_| ())
            .map_err(|e| (e.kafka_error(), e.to_string()))
    };
    let results = users
        .into_iter()
        .map(|(user, change)| {
            let outcome = match change.refusal {
                Some(refusal) => Err(refusal),
                None => written.clone(),
            };
            if outcome.is_ok() {
                tracing::info!(%user, "changed SCRAM credentials");
            }
            let result =
                AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
            match outcome {
                Ok(()) => result.with_error_message(None),
                Err((code, message)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

pub fn describe_user_scram_credentials(
    broker: &Arc<Broker>,
    r: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    describe(&broker.metadata.image(), &r)
}

fn describe(
    image: &MetadataImage,
    r: &DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let infos = |user: &str| -> Vec<CredentialInfo> {
        image
            .scram
            .get(user)
            .map(|creds| {
                creds
                    .iter()
                    .map(|(m, c)| {
                        CredentialInfo::default()
                            .with_mechanism(m.id())
                            .with_iterations(c.iterations)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let result = |user: &str| {
        DescribeUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(user.to_owned()))
    };
    let results = match r.users.as_deref() {
        None | Some([]) => image
            .scram
            .keys()
            .map(|user| result(user).with_credential_infos(infos(user)))
            .collect(),
        Some(users) => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for u in users {
                *counts.entry(u.name.as_str()).or_default() += 1;
            }
            counts
                .into_iter()
                .map(|(user, n)| {
                    if n > 1 {
                        result(user)
                            .with_error_code(ResponseError::DuplicateResource.code())
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                            ))))
                    } else if !image.scram.contains_key(user) {
                        result(user)
                            .with_error_code(ResponseError::ResourceNotFound.code())
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "Attempt to describe a user credential that does not exist: {user}"
                            ))))
                    } else {
                        result(user).with_credential_infos(infos(user))
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default()
        .with_error_message(None)
        .with_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;

    fn upsert(user: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.into()))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(bytes::Bytes::from_static(b"salt"))
            .with_salted_password(bytes::Bytes::from_static(&[7; 32]))
    }

    fn delete(user: &str, mechanism: i8) -> ScramCredentialDeletion {
        ScramCredentialDeletion::default()
            .with_name(StrBytes::from_string(user.into()))
            .with_mechanism(mechanism)
    }

    fn apply(image: &mut MetadataImage, changes: &BTreeMap<String, UserChange>) {
        for c in changes.values().filter(|c| c.refusal.is_none()) {
            for r in &c.records {
                image.apply_at(r, image.offset + 1);
            }
        }
    }

    fn refusals(changes: &BTreeMap<String, UserChange>) -> Vec<(&str, Option<ResponseError>)> {
        changes
            .iter()
            .map(|(u, c)| (u.as_str(), c.refusal.as_ref().map(|r| r.0)))
            .collect()
    }

    #[test]
    fn alterations_are_checked_per_user_as_kafka_does() {
        let mut image = MetadataImage::default();
        let r = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            upsert("alice", 1, 4096),
            upsert("bob", 1, 100),
            upsert("carol", 3, 4096),
            upsert("dave", 2, 20000),
            upsert("erin", 1, 4096),
            upsert("erin", 1, 4096),
            upsert("", 1, 4096),
        ]);
        let changes = decide(&image, &r);
        assert_eq!(
            refusals(&changes),
            vec![
                ("", Some(ResponseError::UnacceptableCredential)),
                ("alice", None),
                ("bob", Some(ResponseError::UnacceptableCredential)),
                ("carol", Some(ResponseError::UnsupportedSaslMechanism)),
                ("dave", Some(ResponseError::UnacceptableCredential)),
                ("erin", Some(ResponseError::DuplicateResource)),
            ]
        );
        apply(&mut image, &changes);
        let r = AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![upsert("alice", 2, 8192), upsert("bob", 1, 4096)])
            .with_deletions(vec![delete("bob", 1)]);
        let changes = decide(&image, &r);
        assert_eq!(
            refusals(&changes),
            vec![
                ("alice", None),
                ("bob", Some(ResponseError::ResourceNotFound))
            ],
            "the first refusal of a user is reported"
        );
        apply(&mut image, &changes);
        assert_eq!(image.scram["alice"].len(), 2);
        assert_eq!(image.scram.len(), 1, "refused users change nothing");
        // The stored keys come from the salted password, never the password itself.
        let c = image
            .scram_credential("alice", ScramMechanism::Sha256)
            .unwrap();
        assert_eq!(
            c,
            &scram::credential(ScramMechanism::Sha256, &[7; 32], b"salt", 4096)
        );

        // Deleting: what is there goes; what is not is RESOURCE_NOT_FOUND, and that user's other changes wait.
        let r = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![delete("alice", 1), delete("bob", 1)])
            .with_upsertions(vec![upsert("bob", 2, 4096)]);
        let changes = decide(&image, &r);
        assert_eq!(
            refusals(&changes),
            vec![
                ("alice", None),
                ("bob", Some(ResponseError::ResourceNotFound))
            ]
        );
        apply(&mut image, &changes);
        assert!(
            image
                .scram_credential("alice", ScramMechanism::Sha256)
                .is_none()
        );
        assert!(!image.scram.contains_key("bob"));
    }

    #[test]
    fn descriptions_list_mechanisms_and_iterations_or_say_why_not() {
        let mut image = MetadataImage::default();
        let changes = decide(
            &image,
            &AlterUserScramCredentialsRequest::default()
                .with_upsertions(vec![upsert("alice", 1, 4096), upsert("bob", 2, 5000)]),
        );
        apply(&mut image, &changes);
        let changes = decide(
            &image,
            &AlterUserScramCredentialsRequest::default()
                .with_upsertions(vec![upsert("alice", 2, 8192)]),
        );
        apply(&mut image, &changes);
        let all = describe(&image, &DescribeUserScramCredentialsRequest::default());
        let seen: Vec<(String, Vec<(i8, i32)>)> = all
            .results
            .iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    r.credential_infos
                        .iter()
                        .map(|c| (c.mechanism, c.iterations))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("alice".into(), vec![(1, 4096), (2, 8192)]),
                ("bob".into(), vec![(2, 5000)])
            ]
        );
        let name = |n: &str| UserName::default().with_name(StrBytes::from_string(n.into()));
        let some = describe(
            &image,
            &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                name("bob"),
                name("zed"),
                name("alice"),
                name("alice"),
            ])),
        );
        let codes: Vec<(String, i16)> = some
            .results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("alice".into(), ResponseError::DuplicateResource.code()),
                ("bob".into(), 0),
                ("zed".into(), ResponseError::ResourceNotFound.code())
            ]
        );
    }
}
