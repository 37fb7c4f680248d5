//! How this node dials the listeners other nodes serve it on: the controller listener (registration,
//! heartbeats, forwarding, the quorum) and the inter-broker one (replication). For an `SSL` or `SASL_SSL`
//! listener, a TLS client config from the listener's `ssl.*` keys (`crate::tls::client_config`); for a
//! `SASL_*` one, the credentials of the mechanism `sasl.mechanism.controller.protocol` or
//! `sasl.mechanism.inter.broker.protocol` names, from that mechanism's JAAS entry (`username`, `password`), as
//! a Kafka broker takes them. Built at start-up, so a missing piece stops the node with the key named.

use std::collections::BTreeMap;

use sluice_kafka_client::Security;
use sluice_kafka_client::sasl::{Credentials, Mechanism};

use crate::config::BrokerConfig;
use crate::error::Error;

/// The security of each listener this node dials, by listener name (absent: in the clear).
pub fn outbound(config: &BrokerConfig) -> Result<BTreeMap<String, Security>, Error> {
    let inter_broker = config
        .inter_broker_listener_name
        .clone()
        .or_else(|| config.advertised_listeners.first().map(|l| l.name.clone()));
    let dialed = config
        .controller_listener_names
        .iter()
        .map(|n| {
            (
                n,
                "sasl.mechanism.controller.protocol",
                &config.sasl_mechanism_controller,
            )
        })
        .chain(inter_broker.iter().map(|n| {
            (
                n,
                "sasl.mechanism.inter.broker.protocol",
                &config.sasl_mechanism_inter_broker,
            )
        }));
    let mut out = BTreeMap::new();
    for (name, mechanism_key, mechanism) in dialed {
        let sasl = match config.sasl.get(name) {
            None => None,
            Some(settings) => {
                let Some(mechanism) = mechanism.as_deref() else {
                    return Err(Error::config(
                        mechanism_key,
                        format!(
                            "listener {name} uses SASL: name the mechanism this node authenticates with \
                             (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; Kafka's default, GSSAPI, is not supported)"
                        ),
                    ));
                };
                let parsed =
                    Mechanism::from_name(&mechanism.to_ascii_uppercase()).ok_or_else(|| {
                        Error::invalid(
                            mechanism_key,
                            mechanism,
                            "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                        )
                    })?;
                let jaas_key = format!(
                    "listener.name.{}.{}.sasl.jaas.config",
                    name.to_ascii_lowercase(),
                    parsed.name().to_ascii_lowercase()
                );
                let Some((username, password)) = settings.client_credentials.get(parsed.name())
                else {
                    return Err(Error::config(
                        &jaas_key,
                        "this node dials the listener with SASL and needs username=\"…\" password=\"…\" there",
                    ));
                };
                Some(Credentials {
                    mechanism: parsed,
                    username: username.clone(),
                    password: password.clone(),
                })
            }
        };
        // After the SASL keys, so a missing key is reported before an unreadable file.
        let tls = config
            .tls
            .get(name)
            .map(crate::tls::client_config)
            .transpose()?;
        if tls.is_some() || sasl.is_some() {
            out.insert(name.clone(), Security { tls, sasl });
        }
    }
    Ok(out)
}
