//! Client quotas with Kafka's model: a quota is set on an entity (a user, a client id, or both; each named or
//! `<default>`) and a key (`producer_byte_rate`, `consumer_byte_rate`, …); a connection's quota for a key is
//! the most specific entity that matches its user and client id, in Kafka's order. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// The keys Kafka takes for users and client ids.
pub const KEYS: &[&str] = &[
    PRODUCER_BYTE_RATE,
    CONSUMER_BYTE_RATE,
    "request_percentage",
    "controller_mutation_rate",
];

/// One quota entity: for each of user and client id, absent, named (`Some(name)`) or the default (`None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Option<String>>,
}

impl QuotaEntity {
    /// From the wire's (type, name) pairs; `Err` names what is wrong, as Kafka's INVALID_REQUEST says.
    pub fn from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<QuotaEntity, String> {
        let mut entity = QuotaEntity::default();
        for (kind, name) in parts {
            let slot = match kind {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                other => return Err(format!("Unhandled client quota entity type: {other}")),
            };
            if slot.is_some() {
                return Err(format!("Duplicate {kind} in the quota entity"));
            }
            if name == Some("") {
                return Err(format!("Empty {kind} name: give a name or the default"));
            }
            *slot = Some(name.map(str::to_owned));
        }
        if entity.user.is_none() && entity.client_id.is_none() {
            return Err("Invalid empty client quota entity".into());
        }
        Ok(entity)
    }

    /// The (type, name) pairs, user first.
    pub fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = Vec::new();
        if let Some(user) = &self.user {
            out.push((USER, user.as_deref()));
        }
        if let Some(client) = &self.client_id {
            out.push((CLIENT_ID, client.as_deref()));
        }
        out
    }

    /// The image's map key: one string per entity, so the image stays plain JSON.
    pub fn key(&self) -> String {
        self.parts()
            .iter()
            .map(|(kind, name)| {
                format!(
                    "{kind}={}",
                    name.map_or("<default>".into(), |n| format!("'{n}'"))
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The quotas set on one entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaEntry {
    pub entity: QuotaEntity,
    pub values: BTreeMap<String, f64>,
}

/// Kafka's precedence (`ClientQuotaManager`): user and client id, then user with the default client, the
/// user alone, the default user with the client id, with the default client, the default user, then the
/// client id alone and the default client id.
fn candidates(user: &str, client_id: &str) -> [QuotaEntity; 8] {
    let named = |s: &str| Some(Some(s.to_owned()));
    let default = Some(None);
    [
        QuotaEntity {
            user: named(user),
            client_id: named(client_id),
        },
        QuotaEntity {
            user: named(user),
            client_id: default.clone(),
        },
        QuotaEntity {
            user: named(user),
            client_id: None,
        },
        QuotaEntity {
            user: default.clone(),
            client_id: named(client_id),
        },
        QuotaEntity {
            user: default.clone(),
            client_id: default.clone(),
        },
        QuotaEntity {
            user: default.clone(),
            client_id: None,
        },
        QuotaEntity {
            user: None,
            client_id: named(client_id),
        },
        QuotaEntity {
            user: None,
            client_id: default,
        },
    ]
}

/// The quota for `key` of a connection of `user` (its principal's name) and `client_id`, and the entity it
/// comes from; `None`: unlimited.
pub fn resolve<'a>(
    quotas: &'a BTreeMap<String, QuotaEntry>,
    user: &str,
    client_id: &str,
    key: &str,
) -> Option<(&'a QuotaEntity, f64)> {
    candidates(user, client_id).iter().find_map(|c| {
        let entry = quotas.get(&c.key())?;
        entry.values.get(key).map(|v| (&entry.entity, *v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(quotas: &mut BTreeMap<String, QuotaEntry>, parts: &[(&str, Option<&str>)], rate: f64) {
        let entity = QuotaEntity::from_parts(parts.iter().copied()).unwrap();
        quotas.insert(
            entity.key(),
            QuotaEntry {
                entity,
                values: BTreeMap::from([(PRODUCER_BYTE_RATE.to_owned(), rate)]),
            },
        );
    }

    #[test]
    fn the_most_specific_entity_wins_in_kafkas_order() {
        let mut q = BTreeMap::new();
        let rate = |q: &BTreeMap<String, QuotaEntry>, u: &str, c: &str| {
            resolve(q, u, c, PRODUCER_BYTE_RATE).map(|(_, r)| r)
        };
        assert_eq!(rate(&q, "alice", "app"), None);
        set(&mut q, &[(CLIENT_ID, None)], 8.0);
        assert_eq!(rate(&q, "alice", "app"), Some(8.0));
        set(&mut q, &[(CLIENT_ID, Some("app"))], 7.0);
        assert_eq!(rate(&q, "alice", "app"), Some(7.0));
        set(&mut q, &[(USER, None)], 6.0);
        assert_eq!(
            rate(&q, "alice", "app"),
            Some(6.0),
            "users before client ids"
        );
        set(&mut q, &[(USER, None), (CLIENT_ID, None)], 5.0);
        set(&mut q, &[(USER, None), (CLIENT_ID, Some("app"))], 4.0);
        assert_eq!(rate(&q, "alice", "app"), Some(4.0));
        set(&mut q, &[(USER, Some("alice"))], 3.0);
        assert_eq!(rate(&q, "alice", "app"), Some(3.0));
        assert_eq!(rate(&q, "bob", "app"), Some(4.0));
        assert_eq!(rate(&q, "bob", "other"), Some(5.0));
        set(&mut q, &[(USER, Some("alice")), (CLIENT_ID, None)], 2.0);
        set(
            &mut q,
            &[(USER, Some("alice")), (CLIENT_ID, Some("app"))],
            1.0,
        );
        assert_eq!(rate(&q, "alice", "app"), Some(1.0));
        assert_eq!(rate(&q, "alice", "other"), Some(2.0));
        assert_eq!(resolve(&q, "alice", "app", CONSUMER_BYTE_RATE), None);
    }

    #[test]
    fn entities_are_checked() {
        assert!(QuotaEntity::from_parts([(USER, Some("a")), (CLIENT_ID, None)]).is_ok());
        for bad in [
            vec![],
            vec![("ip", Some("1.2.3.4"))],
            vec![(USER, Some("a")), (USER, Some("b"))],
            vec![(USER, Some(""))],
        ] {
            assert!(QuotaEntity::from_parts(bad.clone()).is_err(), "{bad:?}");
        }
        let e = QuotaEntity::from_parts([(CLIENT_ID, Some("x")), (USER, None)]).unwrap();
        assert_eq!(e.key(), "user=<default>,client-id='x'");
    }
}
