//! Which version of each API to speak with one broker: the highest that both sides support.

use std::collections::HashMap;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::protocol::VersionRange;

use crate::error::ClientError;

/// The versions this client can build requests for. The wire crate's range, except Metadata: below v4 a
/// request cannot turn off topic auto-creation, and describing a missing topic must never create it.
pub fn client_range(key: ApiKey) -> VersionRange {
    let crate_range = key.valid_versions();
    match key {
        ApiKey::Metadata => VersionRange {
            min: crate_range.min.max(4),
            max: crate_range.max,
        },
        _ => crate_range,
    }
}

/// The version ranges one broker advertised in ApiVersions.
#[derive(Debug, Clone, Default)]
pub struct BrokerVersions {
    ranges: HashMap<i16, VersionRange>,
}

impl BrokerVersions {
    pub fn from_api_keys(keys: &[ApiVersion]) -> BrokerVersions {
        BrokerVersions {
            ranges: keys
                .iter()
                .map(|k| {
                    (
                        k.api_key,
                        VersionRange {
                            min: k.min_version,
                            max: k.max_version,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The highest version of `key` both sides support.
    pub fn pick(&self, key: ApiKey) -> Result<i16, ClientError> {
        let ours = client_range(key);
        let Some(theirs) = self.ranges.get(&(key as i16)) else {
            return Err(ClientError::UnsupportedVersion {
                api: key,
                reason: format!("the broker does not offer it (client supports {ours})"),
            });
        };
        let both = ours.intersect(theirs);
        if both.is_empty() {
            return Err(ClientError::UnsupportedVersion {
                api: key,
                reason: format!("client supports {ours}, broker supports {theirs}"),
            });
        }
        Ok(both.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(entries: &[(ApiKey, i16, i16)]) -> BrokerVersions {
        let keys: Vec<ApiVersion> = entries
            .iter()
            .map(|(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect();
        BrokerVersions::from_api_keys(&keys)
    }

    #[test]
    fn picks_the_highest_common_version() {
        let b = broker(&[(ApiKey::Metadata, 0, 12), (ApiKey::CreateTopics, 2, 99)]);
        assert_eq!(b.pick(ApiKey::Metadata).unwrap(), 12);
        assert_eq!(
            b.pick(ApiKey::CreateTopics).unwrap(),
            ApiKey::CreateTopics.valid_versions().max
        );
    }

    #[test]
    fn refuses_when_ranges_do_not_meet() {
        let b = broker(&[(ApiKey::Metadata, 0, 3)]);
        let err = b.pick(ApiKey::Metadata).unwrap_err();
        assert!(err.to_string().contains("broker supports 0..3"), "{err}");
        let err = b.pick(ApiKey::DeleteTopics).unwrap_err();
        assert!(err.to_string().contains("does not offer it"), "{err}");
    }
}
