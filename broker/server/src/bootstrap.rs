//! How a node's first start is formatted: Kafka's `kafka-storage format` folded into the start. Besides the
//! cluster id, a dynamic quorum (KIP-853: `controller.quorum.bootstrap.servers` instead of
//! `controller.quorum.voters`) needs each controller told which voters its metadata log starts with, by one of
//! Kafka's format flags, which `sluice-broker` takes itself:
//!
//! - `--standalone`: this controller alone; the others join it with `kafka-metadata-quorum add-controller`.
//! - `--initial-controllers 1@host:port:DIRID,...`: every listed controller started with the same list, each
//!   formatting its metadata dir with the directory id listed for it.
//! - `--no-initial-controllers`: none; this controller waits to be added.
//!
//! A controller that `--initial-controllers` leaves out is formatted as with `--no-initial-controllers` (a
//! Sluice extension): the operator gives every pod of a StatefulSet the same command line, naming the first controller
//! only, and adds the others as voters.
//!
//! The decisions are pure; `broker::Server::start` does the writing.

use std::collections::BTreeMap;

use sluice_quorum::{Member, NodeId};
use uuid::Uuid;

use crate::config::{BrokerConfig, join_host_port};
use crate::error::Error;
use crate::meta_properties::parse_kafka_uuid;

/// Which voters a fresh dynamic quorum's log starts with (the format flag given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum InitialControllers {
    /// No flag: right for a static quorum, a broker-only node, or a restart.
    #[default]
    Unset,
    Standalone,
    Listed(Vec<InitialController>),
    Empty,
}

/// One entry of `--initial-controllers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialController {
    pub id: i32,
    /// `host:port` of its controller listener.
    pub address: String,
    pub directory_id: Uuid,
}

/// What the command line says to format a fresh node with.
#[derive(Clone, Debug, Default)]
pub struct Format {
    pub cluster_id: Option<String>,
    pub initial_controllers: InitialControllers,
}

const FLAGS: &str = "--standalone, --initial-controllers or --no-initial-controllers";

/// Parses `--initial-controllers`: `id@host:port:directoryId` entries separated by commas, as Kafka's
/// `kafka-storage format` takes them (an IPv6 host in brackets).
pub fn parse_initial_controllers(value: &str) -> Result<Vec<InitialController>, Error> {
    let bad = |entry: &str, why: &str| {
        Error::invalid(
            "--initial-controllers",
            entry,
            format!("{why}; expected id@host:port:directoryId, comma-separated"),
        )
    };
    let mut listed: Vec<InitialController> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, rest) = entry
            .split_once('@')
            .ok_or_else(|| bad(entry, "no '@' after the node id"))?;
        let id: i32 = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| bad(entry, "the node id is not a non-negative integer"))?;
        let (address, directory) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad(entry, "no directory id after the port"))?;
        let directory_id = parse_kafka_uuid(directory)
            .filter(|d| !d.is_nil())
            .ok_or_else(|| bad(entry, "the directory id is not a Kafka UUID"))?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| bad(entry, "no port"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(entry, "the port is not a number from 1 to 65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad(entry, "no host"));
        }
        if listed.iter().any(|c| c.id == id) {
            return Err(bad(entry, "the node id is listed twice"));
        }
        listed.push(InitialController {
            id,
            address: join_host_port(host, port),
            directory_id,
        });
    }
    if listed.is_empty() {
        return Err(bad(value, "no controller listed"));
    }
    Ok(listed)
}

/// Whether the voters live in the log only (KIP-853) rather than in `controller.quorum.voters`.
pub fn is_dynamic(config: &BrokerConfig) -> bool {
    config.controller_quorum_voters.is_empty()
}

/// Checks the format flags against the configuration before anything is written. `formatted`: the log dirs
/// hold a `meta.properties` already (a restart, where the flags no longer matter).
pub fn validate(config: &BrokerConfig, format: &Format, formatted: bool) -> Result<(), Error> {
    let flagged = format.initial_controllers != InitialControllers::Unset;
    if !is_dynamic(config) {
        if flagged {
            return Err(Error::config(
                "controller.quorum.voters",
                format!(
                    "{FLAGS} start a dynamic quorum (controller.quorum.bootstrap.servers); a static quorum's \
                     voters are controller.quorum.voters, so leave that key unset to use them"
                ),
            ));
        }
        return Ok(());
    }
    if !config.process_roles.controller {
        if flagged {
            return Err(Error::config(
                "process.roles",
                format!(
                    "{FLAGS} format a controller; node {} is a broker only",
                    config.node_id
                ),
            ));
        }
        return Ok(());
    }
    if formatted {
        return Ok(());
    }
    match format.initial_controllers {
        InitialControllers::Unset => Err(Error::config(
            "controller.quorum.bootstrap.servers",
            format!(
                "node {} is a controller of a dynamic quorum and its log dirs are not formatted: start it \
                 once with --standalone (the first controller), --initial-controllers (every controller at \
                 once) or --no-initial-controllers (one to add later with kafka-metadata-quorum \
                 add-controller)",
                config.node_id
            ),
        )),
        InitialControllers::Standalone => Ok(()),
        _ if format.cluster_id.is_none() && config.cluster_id.is_none() => Err(Error::config(
            "cluster.id",
            "a controller joining a dynamic quorum must be given the cluster's id (--cluster-id, as \
             kafka-storage format takes it, or cluster.id)",
        )),
        _ => Ok(()),
    }
}

/// The directory id a fresh metadata dir is formatted with: the one `--initial-controllers` lists for this node,
/// else a new one.
pub fn listed_directory_id(config: &BrokerConfig, format: &Format) -> Option<Uuid> {
    match &format.initial_controllers {
        InitialControllers::Listed(listed) => listed
            .iter()
            .find(|c| c.id == config.node_id)
            .map(|c| c.directory_id),
        _ => None,
    }
}

/// The voters a fresh log starts with, for `sluice_quorum::Settings::initial_voters`: `None` for a static
/// quorum (its voters are the configured ones). `me` is this controller as the others reach it.
pub fn initial_voters(
    config: &BrokerConfig,
    format: &Format,
    me: Member,
) -> Option<BTreeMap<NodeId, Member>> {
    if !is_dynamic(config) {
        return None;
    }
    Some(match &format.initial_controllers {
        InitialControllers::Standalone if config.process_roles.controller => {
            BTreeMap::from([(config.node_id as NodeId, me)])
        }
        // A controller the list leaves out joins later, as with --no-initial-controllers: one command line then
        // serves every pod of a StatefulSet, where only the first ones start the quorum.
        InitialControllers::Listed(listed)
            if config.process_roles.controller && listed.iter().any(|c| c.id == config.node_id) =>
        {
            listed
                .iter()
                .map(|c| {
                    (
                        c.id as NodeId,
                        Member::with_directory(&c.address, Some(c.directory_id)),
                    )
                })
                .collect()
        }
        _ => BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(roles: &str, quorum: (&str, &str)) -> BrokerConfig {
        let mut props = vec![
            ("process.roles", roles),
            ("node.id", "2"),
            ("controller.listener.names", "CONTROLLER"),
            quorum,
        ];
        let listeners = match roles {
            "broker" => "PLAINTEXT://127.0.0.1:9092",
            "controller" => "CONTROLLER://127.0.0.1:9093",
            _ => "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        };
        props.push(("listeners", listeners));
        let text: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.properties");
        std::fs::write(&path, text).unwrap();
        BrokerConfig::load(Some(&path), &[]).unwrap()
    }

    const DYNAMIC: (&str, &str) = ("controller.quorum.bootstrap.servers", "127.0.0.1:9093");
    const STATIC: (&str, &str) = ("controller.quorum.voters", "2@127.0.0.1:9093");
    const DIR: &str = "b7M5dZmkTjWX1Cq2cGVaTQ";

    fn flagged(initial_controllers: InitialControllers) -> Format {
        Format {
            cluster_id: Some("MkU3OEVBNTcwNTJENDM2Qk".into()),
            initial_controllers,
        }
    }

    #[test]
    fn initial_controllers_parse_as_kafka_writes_them() {
        let listed =
            parse_initial_controllers(&format!("1@c-1.ns:9093:{DIR}, 2@[::1]:9094:{DIR}")).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].id, 1);
        assert_eq!(listed[0].address, "c-1.ns:9093");
        assert_eq!(listed[1].address, "[::1]:9094");
        assert_eq!(Some(listed[1].directory_id), parse_kafka_uuid(DIR));
        for bad in [
            "",
            "1@host:9093",
            &format!("x@host:9093:{DIR}"),
            &format!("1@host:0:{DIR}"),
            &format!("1@:9093:{DIR}"),
            "1@host:9093:not-a-uuid",
            &format!("1@a:1:{DIR},1@b:2:{DIR}"),
        ] {
            let e = parse_initial_controllers(bad).unwrap_err().to_string();
            assert!(e.contains("--initial-controllers"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_fresh_dynamic_controller_needs_exactly_the_flags_kafka_needs() {
        let controller = config("controller", DYNAMIC);
        let e = validate(&controller, &Format::default(), false).unwrap_err();
        assert!(e.to_string().contains("--standalone"), "{e}");
        // A restart needs no flag, and a flag on a restart changes nothing.
        validate(&controller, &Format::default(), true).unwrap();
        validate(&controller, &flagged(InitialControllers::Standalone), true).unwrap();
        validate(&controller, &flagged(InitialControllers::Empty), false).unwrap();
        // Joining needs the cluster's id; standing alone makes one.
        let no_id = Format {
            cluster_id: None,
            initial_controllers: InitialControllers::Empty,
        };
        let e = validate(&controller, &no_id, false).unwrap_err();
        assert!(e.to_string().contains("cluster.id"), "{e}");
        let alone = Format {
            cluster_id: None,
            initial_controllers: InitialControllers::Standalone,
        };
        validate(&controller, &alone, false).unwrap();
        // A node a listed set leaves out joins later, as with --no-initial-controllers: it starts with no
        // voters and a new directory id, and, joining, needs the cluster's id.
        let others = parse_initial_controllers(&format!("1@a:1:{DIR},3@b:2:{DIR}")).unwrap();
        let left_out = flagged(InitialControllers::Listed(others.clone()));
        validate(&controller, &left_out, false).unwrap();
        assert_eq!(listed_directory_id(&controller, &left_out), None);
        let me = Member::with_directory("127.0.0.1:9093", None);
        assert_eq!(
            initial_voters(&controller, &left_out, me),
            Some(BTreeMap::new())
        );
        let no_id = Format {
            cluster_id: None,
            initial_controllers: InitialControllers::Listed(others),
        };
        let e = validate(&controller, &no_id, false).unwrap_err();
        assert!(e.to_string().contains("cluster.id"), "{e}");
    }

    #[test]
    fn the_flags_are_refused_where_they_mean_nothing() {
        let e = validate(
            &config("broker,controller", STATIC),
            &flagged(InitialControllers::Standalone),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("controller.quorum.voters"), "{e}");
        let e = validate(
            &config("broker", DYNAMIC),
            &flagged(InitialControllers::Empty),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("process.roles"), "{e}");
        validate(&config("broker", DYNAMIC), &Format::default(), false).unwrap();
        validate(
            &config("broker,controller", STATIC),
            &Format::default(),
            false,
        )
        .unwrap();
    }

    #[test]
    fn initial_voters_follow_the_flag() {
        let me = Member::with_directory("127.0.0.1:9093", parse_kafka_uuid(DIR));
        let controller = config("controller", DYNAMIC);
        assert_eq!(
            initial_voters(
                &config("controller", STATIC),
                &Format::default(),
                me.clone()
            ),
            None
        );
        let alone = initial_voters(
            &controller,
            &flagged(InitialControllers::Standalone),
            me.clone(),
        )
        .unwrap();
        assert_eq!(alone, BTreeMap::from([(2, me.clone())]));
        let listed = parse_initial_controllers(&format!("1@a:1:{DIR},2@b:2:{DIR}")).unwrap();
        let voters = initial_voters(
            &controller,
            &flagged(InitialControllers::Listed(listed)),
            me.clone(),
        )
        .unwrap();
        assert_eq!(voters.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(voters[&2].addr, "b:2");
        for joining in [InitialControllers::Empty, InitialControllers::Unset] {
            let voters = initial_voters(&controller, &flagged(joining), me.clone()).unwrap();
            assert!(voters.is_empty());
        }
    }
}
