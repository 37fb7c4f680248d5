//! Broker registrations and heartbeats as the active controller keeps them (Kafka's `ClusterControlManager`
//! and `BrokerHeartbeatManager`), as plain state with the clock passed in.
//!
//! Two kinds of state live here. What a broker registered (its id, incarnation, epoch, listeners, rack) and
//! whether it is fenced is cluster metadata: a decision here returns a [`Change`], the controller commits it
//! as a record, and every node [`apply`](BrokerSessions::apply)s it in log order. When a broker was last
//! heard from is the active controller's alone: a new active controller starts every broker with a fresh
//! session ([`activate`](BrokerSessions::activate)), so a failover fences nobody.
//!
//! The rules, Kafka's:
//! - A registration gets a new epoch (the offset of its record) and starts fenced.
//! - A registration for an id whose session is still live is refused as a duplicate, unless it carries the
//!   same incarnation (the same process retrying), which keeps its epoch.
//! - A heartbeat must carry the broker's current epoch. A fenced broker is unfenced once it has caught up to
//!   its own registration (its metadata offset reached its epoch) and does not ask to stay fenced.
//! - A broker not heard from for `broker.session.timeout.ms` is fenced, and a new incarnation may then
//!   register under its id.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One listener a broker registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's security protocol id (0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT, 3 SASL_SSL).
    pub security_protocol: i16,
}

/// What a broker sends to register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub broker_id: i32,
    /// Random per process: tells a restart from a retry.
    pub incarnation: Uuid,
    pub listeners: Vec<Endpoint>,
    pub rack: Option<String>,
}

/// A registered broker, as the metadata records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredBroker {
    pub registration: Registration,
    /// The offset of the registration record; heartbeats must carry it.
    pub epoch: i64,
    pub fenced: bool,
}

/// A change of cluster metadata a decision calls for; the controller commits it, then everyone applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Registered(RegisteredBroker),
    Fenced { broker_id: i32 },
    Unfenced { broker_id: i32 },
}

/// Why a registration was refused: Kafka's DUPLICATE_BROKER_REGISTRATION.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "Another broker is registered with that broker id: node {broker_id} is live as incarnation {live_incarnation} \
     (session of {session_timeout_ms} ms, last heard {since_ms} ms ago)"
)]
pub struct DuplicateRegistration {
    pub broker_id: i32,
    pub live_incarnation: Uuid,
    pub session_timeout_ms: i64,
    pub since_ms: i64,
}

/// Why a heartbeat was refused: Kafka's STALE_BROKER_EPOCH.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("heartbeat of node {broker_id} carries epoch {found}, its registration has {expected:?}")]
pub struct StaleEpoch {
    pub broker_id: i32,
    pub expected: Option<i64>,
    pub found: i64,
}

/// What a heartbeat is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub should_shut_down: bool,
}

/// What a broker reports in a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// The last metadata offset the broker has applied.
    pub metadata_offset: i64,
    pub want_fence: bool,
    pub want_shut_down: bool,
}

#[derive(Clone, Debug)]
pub struct BrokerSessions {
    session_timeout_ms: i64,
    brokers: BTreeMap<i32, RegisteredBroker>,
    /// When each broker was last heard from, on this controller's clock.
    last_contact_ms: HashMap<i32, i64>,
    /// Brokers this controller has heard from itself. A session it only inherited at activation keeps the
    /// broker unfenced through a failover, but does not make a new process under that id a duplicate: after
    /// a whole-cluster restart every broker comes back as a new process at once.
    heard: HashSet<i32>,
}

impl BrokerSessions {
    pub fn new(session_timeout_ms: i64) -> BrokerSessions {
        BrokerSessions {
            session_timeout_ms,
            brokers: BTreeMap::new(),
            last_contact_ms: HashMap::new(),
            heard: HashSet::new(),
        }
    }

    fn live(&self, broker_id: i32, now_ms: i64) -> Option<i64> {
        let last = *self.last_contact_ms.get(&broker_id)?;
        let since = now_ms.saturating_sub(last);
        (since < self.session_timeout_ms).then_some(since)
    }

    /// Decides on a registration. `new_epoch` is the epoch a new registration gets (the offset its record
    /// will have). The caller commits the returned change and then applies it.
    pub fn register(
        &mut self,
        registration: Registration,
        new_epoch: i64,
        now_ms: i64,
    ) -> Result<Change, DuplicateRegistration> {
        let id = registration.broker_id;
        if let Some(current) = self.brokers.get(&id) {
            if current.registration.incarnation == registration.incarnation {
                // The same process again (a retry after a lost answer): same epoch, details refreshed.
                self.last_contact_ms.insert(id, now_ms);
                self.heard.insert(id);
                return Ok(Change::Registered(RegisteredBroker {
                    registration,
                    epoch: current.epoch,
                    fenced: current.fenced,
                }));
            }
            if let Some(since_ms) = self.live(id, now_ms).filter(|_| self.heard.contains(&id)) {
                return Err(DuplicateRegistration {
                    broker_id: id,
                    live_incarnation: current.registration.incarnation,
                    session_timeout_ms: self.session_timeout_ms,
                    since_ms,
                });
            }
        }
        self.last_contact_ms.insert(id, now_ms);
        self.heard.insert(id);
        Ok(Change::Registered(RegisteredBroker {
            registration,
            epoch: new_epoch,
            fenced: true,
        }))
    }

    /// Decides on a heartbeat: the reply, and the change of fencing it calls for, if any.
    pub fn heartbeat(
        &mut self,
        beat: Heartbeat,
        now_ms: i64,
    ) -> Result<(HeartbeatReply, Option<Change>), StaleEpoch> {
        let id = beat.broker_id;
        let Some(current) = self
            .brokers
            .get(&id)
            .filter(|b| b.epoch == beat.broker_epoch)
        else {
            return Err(StaleEpoch {
                broker_id: id,
                expected: self.brokers.get(&id).map(|b| b.epoch),
                found: beat.broker_epoch,
            });
        };
        let caught_up = beat.metadata_offset >= current.epoch;
        // A broker shutting down is fenced, and its session ends with it, so the next process under its id
        // registers at once instead of waiting the session out.
        let want_fence = beat.want_fence || beat.want_shut_down;
        let change = match (current.fenced, want_fence) {
            (true, false) if caught_up => Some(Change::Unfenced { broker_id: id }),
            (false, true) => Some(Change::Fenced { broker_id: id }),
            _ => None,
        };
        let fenced_after = match change {
            Some(Change::Unfenced { .. }) => false,
            Some(Change::Fenced { .. }) => true,
            _ => current.fenced,
        };
        if beat.want_shut_down {
            self.last_contact_ms.remove(&id);
            self.heard.remove(&id);
        } else {
            self.last_contact_ms.insert(id, now_ms);
            self.heard.insert(id);
        }
        Ok((
            HeartbeatReply {
                is_caught_up: caught_up,
                is_fenced: fenced_after,
                // No partition leadership to hand over yet (replication is the next issue): at once.
                should_shut_down: beat.want_shut_down,
            },
            change,
        ))
    }

    /// Unfenced brokers whose session ran out by `now_ms`, to be fenced.
    pub fn expired(&self, now_ms: i64) -> Vec<Change> {
        self.brokers
            .values()
            .filter(|b| !b.fenced && self.live(b.registration.broker_id, now_ms).is_none())
            .map(|b| Change::Fenced {
                broker_id: b.registration.broker_id,
            })
            .collect()
    }

    /// Takes the registrations and fencing from the committed metadata (the image is the truth; this keeps
    /// only when each broker was last heard from).
    pub fn sync(&mut self, brokers: &BTreeMap<i32, RegisteredBroker>) {
        self.brokers = brokers.clone();
    }

    /// This node became the active controller: every unfenced broker gets a full session from now.
    pub fn activate(&mut self, now_ms: i64) {
        self.last_contact_ms = self
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| (b.registration.broker_id, now_ms))
            .collect();
        self.heard.clear();
    }

    /// Applies a committed change (on every node, in log order).
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Registered(b) => {
                self.brokers.insert(b.registration.broker_id, b.clone());
            }
            Change::Fenced { broker_id } => {
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    b.fenced = true;
                }
            }
            Change::Unfenced { broker_id } => {
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    b.fenced = false;
                }
            }
        }
    }

    pub fn broker(&self, broker_id: i32) -> Option<&RegisteredBroker> {
        self.brokers.get(&broker_id)
    }

    /// Registered and not fenced: the brokers Metadata and DescribeCluster list.
    pub fn unfenced(&self) -> impl Iterator<Item = &RegisteredBroker> {
        self.brokers.values().filter(|b| !b.fenced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: i64 = 9000;

    fn registration(id: i32, incarnation: u128) -> Registration {
        Registration {
            broker_id: id,
            incarnation: Uuid::from_u128(incarnation),
            listeners: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: format!("broker-{id}"),
                port: 9092,
                security_protocol: 0,
            }],
            rack: None,
        }
    }

    fn beat(id: i32, epoch: i64, offset: i64) -> Heartbeat {
        Heartbeat {
            broker_id: id,
            broker_epoch: epoch,
            metadata_offset: offset,
            want_fence: false,
            want_shut_down: false,
        }
    }

    /// Decide, then apply what was decided, as the controller does after the commit.
    fn commit(s: &mut BrokerSessions, change: Change) -> Change {
        s.apply(&change);
        change
    }

    fn registered(s: &mut BrokerSessions, id: i32, incarnation: u128, epoch: i64, now: i64) {
        let change = s
            .register(registration(id, incarnation), epoch, now)
            .unwrap();
        commit(s, change);
    }

    #[test]
    fn a_new_broker_starts_fenced_and_is_unfenced_once_caught_up_to_its_registration() {
        let mut s = BrokerSessions::new(TIMEOUT);
        let change = s.register(registration(1, 7), 100, 0).unwrap();
        assert_eq!(
            change,
            Change::Registered(RegisteredBroker {
                registration: registration(1, 7),
                epoch: 100,
                fenced: true
            })
        );
        commit(&mut s, change);
        assert_eq!(s.unfenced().count(), 0);

        // Behind its own registration record: stays fenced.
        let (reply, change) = s.heartbeat(beat(1, 100, 99), 2000).unwrap();
        assert_eq!(
            (reply.is_caught_up, reply.is_fenced, change),
            (false, true, None)
        );
        let (reply, change) = s.heartbeat(beat(1, 100, 100), 4000).unwrap();
        assert_eq!((reply.is_caught_up, reply.is_fenced), (true, false));
        assert_eq!(change, Some(Change::Unfenced { broker_id: 1 }));
        commit(&mut s, change.unwrap());
        assert_eq!(
            s.unfenced()
                .map(|b| b.registration.broker_id)
                .collect::<Vec<_>>(),
            vec![1]
        );
        // Once unfenced, heartbeats change nothing.
        let (_, change) = s.heartbeat(beat(1, 100, 120), 6000).unwrap();
        assert_eq!(change, None);
    }

    #[test]
    fn heartbeats_with_another_epoch_or_from_unknown_brokers_are_stale() {
        let mut s = BrokerSessions::new(TIMEOUT);
        registered(&mut s, 1, 7, 100, 0);
        assert_eq!(
            s.heartbeat(beat(1, 99, 200), 1).unwrap_err(),
            StaleEpoch {
                broker_id: 1,
                expected: Some(100),
                found: 99
            }
        );
        assert_eq!(
            s.heartbeat(beat(2, 100, 200), 1).unwrap_err().expected,
            None
        );
    }

    #[test]
    fn a_second_incarnation_is_refused_while_the_first_is_live_and_accepted_after_its_session() {
        let mut s = BrokerSessions::new(TIMEOUT);
        registered(&mut s, 1, 7, 100, 0);
        s.heartbeat(beat(1, 100, 100), 5000).unwrap();
        let err = s.register(registration(1, 8), 200, 13_999).unwrap_err();
        assert_eq!(
            (err.broker_id, err.live_incarnation, err.since_ms),
            (1, Uuid::from_u128(7), 8999)
        );
        assert!(err.to_string().contains("node 1"), "{err}");
        // The session ends exactly broker.session.timeout.ms after the last heartbeat.
        let change = s.register(registration(1, 8), 200, 14_000).unwrap();
        assert_eq!(
            change,
            Change::Registered(RegisteredBroker {
                registration: registration(1, 8),
                epoch: 200,
                fenced: true
            })
        );
        commit(&mut s, change);
        // The old incarnation's epoch is stale now.
        assert!(s.heartbeat(beat(1, 100, 300), 14_001).is_err());
    }

    #[test]
    fn the_same_incarnation_registering_again_keeps_its_epoch_and_fencing() {
        let mut s = BrokerSessions::new(TIMEOUT);
        registered(&mut s, 1, 7, 100, 0);
        let (_, unfence) = s.heartbeat(beat(1, 100, 100), 10).unwrap();
        commit(&mut s, unfence.unwrap());
        let mut moved = registration(1, 7);
        moved.listeners[0].port = 9093;
        let change = s.register(moved.clone(), 500, 20).unwrap();
        assert_eq!(
            change,
            Change::Registered(RegisteredBroker {
                registration: moved,
                epoch: 100,
                fenced: false
            })
        );
    }

    #[test]
    fn a_silent_broker_is_fenced_when_its_session_ends_and_a_failover_fences_nobody() {
        let mut s = BrokerSessions::new(TIMEOUT);
        registered(&mut s, 1, 7, 100, 0);
        registered(&mut s, 2, 9, 101, 0);
        for id in [1, 2] {
            let (_, change) = s.heartbeat(beat(id, 99 + id as i64, 200), 1000).unwrap();
            commit(&mut s, change.unwrap());
        }
        s.heartbeat(beat(2, 101, 200), 5000).unwrap();
        assert_eq!(s.expired(9999), vec![]);
        assert_eq!(s.expired(10_000), vec![Change::Fenced { broker_id: 1 }]);
        commit(&mut s, Change::Fenced { broker_id: 1 });
        // Fenced brokers are not fenced again.
        assert_eq!(s.expired(20_000), vec![Change::Fenced { broker_id: 2 }]);

        // A new active controller has heard from nobody, yet gives everyone a full session.
        let mut other = BrokerSessions::new(TIMEOUT);
        for change in [
            Change::Registered(s.broker(2).unwrap().clone()),
            Change::Unfenced { broker_id: 2 },
        ] {
            other.apply(&change);
        }
        other.activate(50_000);
        assert_eq!(other.expired(58_999), vec![]);
        assert_eq!(other.expired(59_000), vec![Change::Fenced { broker_id: 2 }]);
    }

    #[test]
    fn a_broker_may_ask_to_be_fenced_and_to_shut_down() {
        let mut s = BrokerSessions::new(TIMEOUT);
        registered(&mut s, 1, 7, 100, 0);
        let (_, unfence) = s.heartbeat(beat(1, 100, 100), 10).unwrap();
        commit(&mut s, unfence.unwrap());
        let (reply, change) = s
            .heartbeat(
                Heartbeat {
                    want_fence: true,
                    want_shut_down: true,
                    ..beat(1, 100, 100)
                },
                20,
            )
            .unwrap();
        assert_eq!(change, Some(Change::Fenced { broker_id: 1 }));
        assert!(reply.is_fenced && reply.should_shut_down);
        commit(&mut s, change.unwrap());
        // While it wants to stay fenced, catching up does not unfence it.
        let (reply, change) = s
            .heartbeat(
                Heartbeat {
                    want_fence: true,
                    ..beat(1, 100, 500)
                },
                30,
            )
            .unwrap();
        assert_eq!((reply.is_fenced, change), (true, None));
    }

    #[test]
    fn a_broker_that_shuts_down_is_fenced_and_its_next_process_registers_at_once() {
        let mut s = BrokerSessions::new(TIMEOUT);
        registered(&mut s, 1, 7, 100, 0);
        let (_, change) = s.heartbeat(beat(1, 100, 100), 1000).unwrap();
        commit(&mut s, change.unwrap());
        // While the session is live, another process under the same id is refused...
        assert!(s.register(registration(1, 8), 200, 2000).is_err());
        // ...until this one says it is going.
        let going = Heartbeat {
            want_shut_down: true,
            ..beat(1, 100, 100)
        };
        let (reply, change) = s.heartbeat(going, 3000).unwrap();
        assert!(reply.should_shut_down && reply.is_fenced);
        assert_eq!(change, Some(Change::Fenced { broker_id: 1 }));
        commit(&mut s, change.unwrap());
        let change = s.register(registration(1, 8), 200, 3500).unwrap();
        assert!(matches!(change, Change::Registered(b) if b.epoch == 200 && b.fenced));
    }

    #[test]
    fn after_a_failover_a_new_process_may_take_over_an_inherited_session() {
        let mut s = BrokerSessions::new(TIMEOUT);
        registered(&mut s, 1, 7, 100, 0);
        let (_, change) = s.heartbeat(beat(1, 100, 100), 1000).unwrap();
        commit(&mut s, change.unwrap());
        // A new active controller: the broker keeps a session (it is not fenced for the failover)...
        s.activate(5000);
        assert!(s.expired(5000 + TIMEOUT - 1).is_empty());
        // ...but that session is only inherited, so a restarted process (the whole cluster came back) registers.
        assert!(s.register(registration(1, 8), 300, 5100).is_ok());
        // Once heard from, the usual rule holds again.
        let mut s = BrokerSessions::new(TIMEOUT);
        registered(&mut s, 1, 7, 100, 0);
        s.activate(5000);
        s.heartbeat(beat(1, 100, 100), 5200).unwrap();
        assert!(s.register(registration(1, 8), 300, 5300).is_err());
    }
}
