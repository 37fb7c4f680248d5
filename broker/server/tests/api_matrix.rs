//! Every API at every version the broker advertises gets an answer a Kafka client can decode.
//!
//! kafka-protocol refuses to encode a field that the negotiated version does not have, so a handler that fills
//! in a newer field for an older client would close that client's connection. This walks the whole version
//! table with requests that reach the interesting paths (a real topic with data, a real group).

#![allow(clippy::unwrap_used)] // test support: a failed setup should panic

mod common;

use common::s;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use sluice_protocol::versions::SUPPORTED;

fn topic(v: &str) -> TopicName {
    TopicName(s(v))
}

fn request(key: ApiKey, v: i16, topic_id: uuid::Uuid) -> RequestKind {
    use RequestKind as R;
    let group = GroupId(s(&format!("group-v{v}")));
    match key {
        ApiKey::Produce => R::Produce(
            ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![
                    produce_request::TopicProduceData::default()
                        .with_name(topic("matrix"))
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(common::one_record_batch(
                                    Some(Bytes::from_static(b"k")),
                                    Bytes::from_static(b"value"),
                                ))),
                        ]),
                ]),
        ),
        ApiKey::Fetch => {
            let mut t = fetch_request::FetchTopic::default().with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20),
            ]);
            if v >= 13 {
                t.topic_id = topic_id;
            } else {
                t.topic = topic("matrix");
            }
            R::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(10)
                    .with_max_bytes(1 << 20)
                    .with_topics(vec![t]),
            )
        }
        ApiKey::ListOffsets => R::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic("matrix"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(if v % 2 == 0 { -1 } else { 1_600_000_000_000 }),
                ]),
        ])),
        ApiKey::Metadata => R::Metadata(MetadataRequest::default().with_topics(if v == 0 {
            Some(vec![])
        } else {
            None
        })),
        ApiKey::OffsetCommit => R::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(group)
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic("matrix"))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(1)
                                .with_committed_metadata(Some(s("meta"))),
                        ]),
                ]),
        ),
        ApiKey::OffsetFetch => {
            let topics = Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic("matrix"))
                    .with_partition_indexes(vec![0]),
            ]);
            if v >= 8 {
                R::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(group)
                        .with_topics(None),
                ]))
            } else {
                R::OffsetFetch(
                    OffsetFetchRequest::default()
                        .with_group_id(group)
                        .with_topics(topics),
                )
            }
        }
        ApiKey::FindCoordinator => {
            if v >= 4 {
                R::FindCoordinator(
                    FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g")]),
                )
            } else {
                R::FindCoordinator(FindCoordinatorRequest::default().with_key(s("g")))
            }
        }
        ApiKey::JoinGroup => {
            let mut r = JoinGroupRequest::default()
                .with_group_id(group)
                .with_session_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(s("range"))
                        .with_metadata(Bytes::from_static(b"\x00\x01")),
                ]);
            if v >= 1 {
                r.rebalance_timeout_ms = 10_000;
            }
            R::JoinGroup(r)
        }
        ApiKey::Heartbeat => R::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(group)
                .with_member_id(s("nobody")),
        ),
        ApiKey::LeaveGroup => {
            if v >= 3 {
                R::LeaveGroup(
                    LeaveGroupRequest::default()
                        .with_group_id(group)
                        .with_members(vec![
                            leave_group_request::MemberIdentity::default()
                                .with_member_id(s("nobody")),
                        ]),
                )
            } else {
                R::LeaveGroup(
                    LeaveGroupRequest::default()
                        .with_group_id(group)
                        .with_member_id(s("nobody")),
                )
            }
        }
        ApiKey::SyncGroup => R::SyncGroup(
            SyncGroupRequest::default()
                .with_group_id(group)
                .with_member_id(s("nobody")),
        ),
        ApiKey::DescribeGroups => {
            R::DescribeGroups(DescribeGroupsRequest::default().with_groups(vec![group]))
        }
        ApiKey::ListGroups => R::ListGroups(ListGroupsRequest::default()),
        ApiKey::ApiVersions => R::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(s("matrix"))
                .with_client_software_version(s("1")),
        ),
        ApiKey::CreateTopics => {
            let mut t = create_topics_request::CreatableTopic::default()
                .with_name(topic(&format!("created-v{v}")))
                .with_num_partitions(2)
                .with_replication_factor(1);
            t.configs = vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("60000"))),
            ];
            R::CreateTopics(
                CreateTopicsRequest::default()
                    .with_topics(vec![t])
                    .with_timeout_ms(5000),
            )
        }
        ApiKey::DeleteTopics => {
            let name = format!("created-v{}", v + 1);
            if v >= 6 {
                R::DeleteTopics(DeleteTopicsRequest::default().with_topics(vec![
                        delete_topics_request::DeleteTopicState::default()
                            .with_name(Some(topic(&name))),
                    ]))
            } else {
                R::DeleteTopics(DeleteTopicsRequest::default().with_topic_names(vec![topic(&name)]))
            }
        }
        ApiKey::DeleteRecords => {
            R::DeleteRecords(DeleteRecordsRequest::default().with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic("matrix"))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(0),
                ]),
        ]))
        }
        ApiKey::InitProducerId => R::InitProducerId(
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        ),
        ApiKey::DescribeConfigs => {
            R::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("matrix")),
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(s("1")),
        ]))
        }
        ApiKey::CreatePartitions => {
            R::CreatePartitions(CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(topic("matrix"))
                .with_count(2 + v as i32),
        ]))
        }
        ApiKey::DeleteGroups => R::DeleteGroups(
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("group-v0"))]),
        ),
        ApiKey::AlterConfigs => {
            R::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("matrix"))
                .with_configs(vec![
                    alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s(&format!("{}", 200_000 + v as i32)))),
                ]),
        ]))
        }
        ApiKey::IncrementalAlterConfigs => R::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("matrix"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(s(&format!("{}", 100_000 + v as i32)))),
                    ]),
            ]),
        ),
        ApiKey::DescribeCluster => R::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::DescribeQuorum => R::DescribeQuorum(
            kafka_protocol::messages::DescribeQuorumRequest::default().with_topics(vec![
                kafka_protocol::messages::describe_quorum_request::TopicData::default()
                    .with_topic_name(TopicName(s("__cluster_metadata")))
                    .with_partitions(vec![
                        kafka_protocol::messages::describe_quorum_request::PartitionData::default(),
                    ]),
            ]),
        ),
        ApiKey::AddRaftVoter => R::AddRaftVoter(
            AddRaftVoterRequest::default()
                .with_voter_id(2)
                .with_voter_directory_id(uuid::Uuid::from_u128(2))
                .with_timeout_ms(1000)
                .with_listeners(vec![
                    add_raft_voter_request::Listener::default()
                        .with_name(s("CONTROLLER"))
                        .with_host(s("127.0.0.1"))
                        .with_port(9),
                ]),
        ),
        ApiKey::RemoveRaftVoter => R::RemoveRaftVoter(
            RemoveRaftVoterRequest::default()
                .with_voter_id(1)
                .with_voter_directory_id(uuid::Uuid::from_u128(1)),
        ),
        ApiKey::OffsetForLeaderEpoch => R::OffsetForLeaderEpoch(
            OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                        .with_topic(topic("matrix"))
                        .with_partitions(vec![
                            offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                                .with_partition(0)
                                .with_current_leader_epoch(-1)
                                .with_leader_epoch(0),
                        ]),
                ]),
        ),
        ApiKey::ElectLeaders => R::ElectLeaders(
            ElectLeadersRequest::default()
                .with_election_type(0)
                .with_timeout_ms(1000)
                .with_topic_partitions(Some(vec![
                    elect_leaders_request::TopicPartitions::default()
                        .with_topic(topic("matrix"))
                        .with_partitions(vec![0]),
                ])),
        ),
        ApiKey::AlterPartitionReassignments => R::AlterPartitionReassignments(
            AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(1000)
                .with_allow_replication_factor_change(true)
                .with_topics(vec![
                    alter_partition_reassignments_request::ReassignableTopic::default()
                        .with_name(topic("matrix"))
                        .with_partitions(vec![
                            alter_partition_reassignments_request::ReassignablePartition::default()
                                .with_partition_index(0)
                                .with_replicas(Some(vec![BrokerId(1)])),
                        ]),
                ]),
        ),
        ApiKey::DescribeLogDirs => {
            R::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None))
        }
        ApiKey::ListPartitionReassignments => R::ListPartitionReassignments(
            ListPartitionReassignmentsRequest::default().with_timeout_ms(1000),
        ),
        // On this PLAINTEXT listener both are answered ILLEGAL_SASL_STATE, as Kafka does.
        ApiKey::SaslHandshake => {
            R::SaslHandshake(SaslHandshakeRequest::default().with_mechanism(s("PLAIN")))
        }
        ApiKey::SaslAuthenticate => R::SaslAuthenticate(
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\0a\0b")),
        ),
        ApiKey::AlterUserScramCredentials => R::AlterUserScramCredentials(
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                    .with_name(s("matrix-user"))
                    .with_mechanism(2)
                    .with_iterations(4096)
                    .with_salt(Bytes::from_static(b"salt"))
                    .with_salted_password(Bytes::from_static(&[1; 64])),
            ]),
        ),
        ApiKey::DescribeUserScramCredentials => R::DescribeUserScramCredentials(
            DescribeUserScramCredentialsRequest::default().with_users(None),
        ),
        ApiKey::AlterClientQuotas => {
            R::AlterClientQuotas(AlterClientQuotasRequest::default().with_entries(vec![
                alter_client_quotas_request::EntryData::default()
                    .with_entity(vec![
                        alter_client_quotas_request::EntityData::default()
                            .with_entity_type(s("client-id"))
                            .with_entity_name(Some(s("matrix-client"))),
                    ])
                    .with_ops(vec![
                        alter_client_quotas_request::OpData::default()
                            .with_key(s("consumer_byte_rate"))
                            .with_value(1e12),
                    ]),
            ]))
        }
        ApiKey::DescribeClientQuotas => {
            R::DescribeClientQuotas(DescribeClientQuotasRequest::default().with_components(vec![]))
        }
        ApiKey::CreateAcls => R::CreateAcls(CreateAclsRequest::default().with_creations(vec![
            create_acls_request::AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s("matrix"))
                .with_resource_pattern_type(3)
                .with_principal(s(&format!("User:v{v}")))
                .with_host(s("*"))
                .with_operation(3)
                .with_permission_type(3),
        ])),
        ApiKey::DescribeAcls => R::DescribeAcls(
            DescribeAclsRequest::default()
                .with_resource_name_filter(None)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        ),
        ApiKey::DeleteAcls => R::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
            delete_acls_request::DeleteAclsFilter::default()
                .with_resource_name_filter(None)
                .with_host_filter(None)
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_principal_filter(Some(s(&format!("User:v{v}"))))
                .with_operation(1)
                .with_permission_type(1),
        ])),
        other => panic!("the version table lists {other:?} but this test has no request for it"),
    }
}

#[test]
fn every_api_answers_every_advertised_version() {
    // With the authorizer on, User:ANONYMOUS a super user: every API passes its checks and the ACL APIs work.
    let broker = common::TestBroker::start(&[
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:ANONYMOUS"),
    ]);
    let mut client = broker.client();
    // A topic with data for the data-path APIs.
    let created = client.call(
        ApiKey::CreateTopics,
        7,
        &RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(topic("matrix"))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ])),
    );
    let ResponseKind::CreateTopics(created) = created else {
        panic!()
    };
    assert_eq!(created.topics[0].error_code, 0);
    let topic_id = created.topics[0].topic_id;

    for &(key, min, max) in SUPPORTED {
        for v in min..=max {
            let answer = client.call(key, v, &request(key, v, topic_id));
            // Spot checks that the paths did real work, not just answered.
            match answer {
                ResponseKind::Produce(r) => {
                    let p = &r.responses[0].partition_responses[0];
                    assert_eq!(p.error_code, 0, "Produce v{v}");
                    assert!(p.base_offset >= 0, "Produce v{v}");
                }
                ResponseKind::Fetch(r) => {
                    let p = &r.responses[0].partitions[0];
                    assert!(
                        p.error_code == 0 || p.error_code == 1,
                        "Fetch v{v}: {}",
                        p.error_code
                    );
                    assert!(
                        p.records.is_some(),
                        "Fetch v{v}: records must never be null"
                    );
                }
                ResponseKind::Metadata(r) => {
                    assert!(
                        r.topics
                            .iter()
                            .any(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "matrix")),
                        "Metadata v{v}"
                    )
                }
                ResponseKind::CreateTopics(r) => {
                    assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}")
                }
                ResponseKind::DeleteTopics(r) => {
                    assert_eq!(r.responses[0].error_code, 0, "DeleteTopics v{v}")
                }
                ResponseKind::CreatePartitions(r) => {
                    assert_eq!(r.results[0].error_code, 0, "CreatePartitions v{v}")
                }
                ResponseKind::AlterConfigs(r) => {
                    assert_eq!(r.responses[0].error_code, 0, "AlterConfigs v{v}")
                }
                ResponseKind::IncrementalAlterConfigs(r) => {
                    assert_eq!(r.responses[0].error_code, 0, "IncrementalAlterConfigs v{v}")
                }
                ResponseKind::DescribeConfigs(r) => {
                    assert!(
                        r.results
                            .iter()
                            .all(|res| res.error_code == 0 && !res.configs.is_empty()),
                        "DescribeConfigs v{v}: {r:?}"
                    )
                }
                ResponseKind::AlterUserScramCredentials(r) => {
                    assert_eq!(r.results[0].error_code, 0, "AlterUserScramCredentials v{v}")
                }
                ResponseKind::DescribeUserScramCredentials(r) => assert!(
                    r.error_code == 0 && r.results.iter().any(|u| u.user.as_str() == "matrix-user"),
                    "DescribeUserScramCredentials v{v}: {r:?}"
                ),
                ResponseKind::AlterClientQuotas(r) => {
                    assert_eq!(r.entries[0].error_code, 0, "AlterClientQuotas v{v}: {r:?}")
                }
                ResponseKind::DescribeClientQuotas(r) => assert!(
                    r.error_code == 0
                        && r.entries.as_ref().is_some_and(|e| e.iter().any(|e| e
                            .values
                            .iter()
                            .any(|x| x.key.as_str() == "consumer_byte_rate"))),
                    "DescribeClientQuotas v{v}: {r:?}"
                ),
                ResponseKind::CreateAcls(r) => {
                    assert_eq!(r.results[0].error_code, 0, "CreateAcls v{v}")
                }
                // CreateAcls of the same version ran first (the table lists it before).
                ResponseKind::DescribeAcls(r) => {
                    assert!(
                        r.error_code == 0 && !r.resources.is_empty(),
                        "DescribeAcls v{v}: {r:?}"
                    )
                }
                ResponseKind::DeleteAcls(r) => assert_eq!(
                    (
                        r.filter_results[0].error_code,
                        r.filter_results[0].matching_acls.len()
                    ),
                    (0, 1),
                    "DeleteAcls v{v}"
                ),
                // A single node's voters are fixed, as a Kafka quorum's with kraft.version 0 are.
                ResponseKind::AddRaftVoter(r) => assert_eq!(r.error_code, 35, "AddRaftVoter v{v}"),
                ResponseKind::RemoveRaftVoter(r) => {
                    assert_eq!(r.error_code, 35, "RemoveRaftVoter v{v}")
                }
                // The matrix topic's single partition leads here at epoch 0, which ends at the log end.
                ResponseKind::OffsetForLeaderEpoch(r) => {
                    let p = &r.topics[0].partitions[0];
                    assert_eq!(p.error_code, 0, "OffsetForLeaderEpoch v{v}");
                    assert_eq!(p.leader_epoch, 0, "OffsetForLeaderEpoch v{v}");
                    assert!(
                        p.end_offset > 0,
                        "OffsetForLeaderEpoch v{v}: {}",
                        p.end_offset
                    );
                }
                // Its only replica already leads.
                ResponseKind::ElectLeaders(r) => {
                    let p = &r.replica_election_results[0].partition_result[0];
                    assert_eq!(p.error_code, 84, "ElectLeaders v{v}: ELECTION_NOT_NEEDED");
                }
                ResponseKind::AlterPartitionReassignments(r) => {
                    assert_eq!(r.error_code, 0, "AlterPartitionReassignments v{v}");
                    assert_eq!(r.responses[0].partitions[0].error_code, 0);
                }
                ResponseKind::DescribeLogDirs(r) => {
                    assert_eq!(r.results.len(), 1, "DescribeLogDirs v{v}");
                    assert!(
                        r.results[0]
                            .topics
                            .iter()
                            .any(|t| t.name.0.as_str() == "matrix"),
                        "DescribeLogDirs v{v}: {r:?}"
                    );
                }
                ResponseKind::ListPartitionReassignments(r) => {
                    assert!(r.topics.is_empty(), "ListPartitionReassignments v{v}")
                }
                ResponseKind::InitProducerId(r) => {
                    assert_eq!(r.error_code, 0, "InitProducerId v{v}");
                    assert!(r.producer_id.0 >= 0);
                }
                ResponseKind::ApiVersions(r) => {
                    assert_eq!(r.error_code, 0);
                    assert_eq!(r.api_keys.len(), SUPPORTED.len());
                }
                _ => {}
            }
        }
    }
}

#[test]
fn too_new_api_versions_gets_the_kip_511_answer_and_connection_survives() {
    let broker = common::TestBroker::start(&[]);
    let mut client = broker.client();
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    frame.extend_from_slice(&99i16.to_be_bytes());
    frame.extend_from_slice(&7i32.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0]); // client id length, tagged fields, whatever v99 would have
    client.send_frame(&frame);
    let mut answer = client.read_frame().unwrap();
    let header = kafka_protocol::protocol::Decodable::decode(&mut answer, 0);
    let header: ResponseHeader = header.unwrap();
    assert_eq!(header.correlation_id, 7);
    let body: ApiVersionsResponse =
        kafka_protocol::protocol::Decodable::decode(&mut answer, 0).unwrap();
    assert_eq!(body.error_code, 35);
    assert!(
        body.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Fetch as i16)
    );
    // Still usable.
    let ResponseKind::ApiVersions(ok) = client.call(
        ApiKey::ApiVersions,
        3,
        &request(ApiKey::ApiVersions, 3, uuid::Uuid::nil()),
    ) else {
        panic!()
    };
    assert_eq!(ok.error_code, 0);
}
