//! The API versions this broker implements.
//!
//! ApiVersions must advertise exactly what the handlers support: clients pick the highest version both sides
//! know, so claiming a version we only half implement breaks them in subtle ways. Each range here is the
//! intersection of what `kafka-protocol` can decode and what the handlers in `sluice-server` fill in.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// (API, lowest, highest) version served.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::FindCoordinator, 0, 5),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::AddRaftVoter, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    // v0 of the handshake would have the tokens follow without Kafka's framing; clients use v1.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// What the controller listener serves: Kafka's controller APIs that brokers send to the active controller
/// (registration, heartbeats, forwarded admin requests), and ApiVersions. The quorum's own Raft messages use
/// private keys routed before this table (`sluice_quorum::rpc`).
pub const CONTROLLER_SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::Envelope, 0, 0),
    (ApiKey::BrokerRegistration, 0, 4),
    (ApiKey::BrokerHeartbeat, 0, 1),
    (ApiKey::AllocateProducerIds, 0, 0),
    (ApiKey::ControllerRegistration, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::AddRaftVoter, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0),
    (ApiKey::UpdateRaftVoter, 0, 0),
    (ApiKey::AlterPartition, 2, 2),
    // A SASL controller listener authenticates the nodes first.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// Which listener a request came in on: each serves its own APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    Client,
    Controller,
}

impl Surface {
    fn table(self) -> &'static [(ApiKey, i16, i16)] {
        match self {
            Surface::Client => SUPPORTED,
            Surface::Controller => CONTROLLER_SUPPORTED,
        }
    }

    /// The (lowest, highest) version served for `key` here, or `None` when the API is not served here.
    pub fn versions(self, key: ApiKey) -> Option<(i16, i16)> {
        self.table()
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|&(_, min, max)| (min, max))
    }
}

/// The (lowest, highest) version a client listener serves for `key`, or `None` when it is not served at all.
pub fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
    Surface::Client.versions(key)
}

/// The ApiVersions answer of a client listener. `error_code` is 0, or UNSUPPORTED_VERSION (35) for the
/// KIP-511 fallback, where the answer is encoded as v0 so that a client newer than us can still read which
/// versions we have.
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    api_versions_response_on(Surface::Client, error_code)
}

/// The ApiVersions answer of one listener.
pub fn api_versions_response_on(surface: Surface, error_code: i16) -> ApiVersionsResponse {
    let api_keys = surface
        .table()
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::VersionRange;

    #[test]
    fn every_advertised_range_is_decodable_by_kafka_protocol() {
        for &(key, min, max) in SUPPORTED.iter().chain(CONTROLLER_SUPPORTED) {
            let VersionRange {
                min: lib_min,
                max: lib_max,
            } = key.valid_versions();
            assert!(min <= max, "{key:?}");
            assert!(
                lib_min <= min && max <= lib_max,
                "{key:?} {min}..{max} outside {lib_min}..{lib_max}"
            );
        }
    }

    #[test]
    fn each_api_listed_once() {
        for (i, (a, _, _)) in SUPPORTED.iter().enumerate() {
            assert!(SUPPORTED[i + 1..].iter().all(|(b, _, _)| a != b), "{a:?}");
        }
    }
}
