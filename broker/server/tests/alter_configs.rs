//! The legacy AlterConfigs API (key 33), still what aiokafka's and kafka-python's admin clients send: the given
//! set replaces a topic's overrides whole, the new settings reach DescribeConfigs, and Kafka's refusals (null
//! value, duplicate key, invalid value, unknown topic, broker resource) change nothing.

#![allow(clippy::unwrap_used)] // test support: a failed setup should panic

mod common;

use common::{create_topic, s};

use kafka_protocol::messages::*;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// (error code, error message) of one AlterConfigs resource sent at `version`.
fn alter(
    client: &mut common::Client,
    version: i16,
    resource_type: i8,
    name: &str,
    configs: &[(&str, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            alter_configs_request::AlterableConfig::default()
                .with_name(s(k))
                .with_value(v.map(s))
        })
        .collect();
    let ResponseKind::AlterConfigs(r) = client.call(
        ApiKey::AlterConfigs,
        version,
        &RequestKind::AlterConfigs(
            AlterConfigsRequest::default()
                .with_validate_only(validate_only)
                .with_resources(vec![
                    alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(s(name))
                        .with_configs(configs),
                ]),
        ),
    ) else {
        panic!()
    };
    assert_eq!(r.responses.len(), 1);
    let res = &r.responses[0];
    assert_eq!(
        (res.resource_type, res.resource_name.as_str()),
        (resource_type, name)
    );
    (
        res.error_code,
        res.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// (value, config source) of each named config of a topic.
fn describe(client: &mut common::Client, topic: &str, keys: &[&str]) -> Vec<(String, i8)> {
    let ResponseKind::DescribeConfigs(r) = client.call(
        ApiKey::DescribeConfigs,
        4,
        &RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(s(topic))
                .with_configuration_keys(Some(keys.iter().map(|k| s(k)).collect())),
        ])),
    ) else {
        panic!()
    };
    let res = &r.results[0];
    assert_eq!(res.error_code, 0, "{:?}", res.error_message);
    keys.iter()
        .map(|k| {
            let c = res
                .configs
                .iter()
                .find(|c| c.name.as_str() == *k)
                .unwrap_or_else(|| panic!("{k} not described"));
            (c.value.as_ref().unwrap().to_string(), c.config_source)
        })
        .collect()
}

const DYNAMIC_TOPIC: i8 = 1;
const DEFAULT: i8 = 5;
const KEYS: &[&str] = &["retention.ms", "segment.ms"];

#[test]
fn alter_configs_replaces_the_topic_overrides_whole() {
    let broker = common::TestBroker::start(&[]);
    let mut client = broker.client();
    create_topic(
        &mut client,
        "t",
        &[("retention.ms", "3600000"), ("segment.ms", "100000")],
    );
    assert_eq!(
        describe(&mut client, "t", KEYS),
        [
            ("3600000".into(), DYNAMIC_TOPIC),
            ("100000".into(), DYNAMIC_TOPIC)
        ]
    );

    // Only retention.ms named: segment.ms, not named, goes back to the broker default.
    assert_eq!(
        alter(
            &mut client,
            1,
            TOPIC,
            "t",
            &[("retention.ms", Some("7200000"))],
            false
        ),
        (0, None)
    );
    assert_eq!(
        describe(&mut client, "t", KEYS),
        [
            ("7200000".into(), DYNAMIC_TOPIC),
            ("604800000".into(), DEFAULT)
        ]
    );

    // validate_only checks but keeps the old settings.
    assert_eq!(
        alter(
            &mut client,
            2,
            TOPIC,
            "t",
            &[("segment.ms", Some("5000"))],
            true
        ),
        (0, None)
    );
    assert_eq!(
        describe(&mut client, "t", KEYS)[0],
        ("7200000".into(), DYNAMIC_TOPIC)
    );

    // An empty set removes every override.
    assert_eq!(alter(&mut client, 0, TOPIC, "t", &[], false), (0, None));
    assert_eq!(
        describe(&mut client, "t", KEYS),
        [("604800000".into(), DEFAULT), ("604800000".into(), DEFAULT)]
    );

    // The change is in the metadata log, not only in memory.
    assert_eq!(
        alter(
            &mut client,
            1,
            TOPIC,
            "t",
            &[("retention.ms", Some("900000"))],
            false
        ),
        (0, None)
    );
    drop(client);
    let dir = broker.stop();
    let broker = common::TestBroker::start_in(dir, &[]);
    let mut client = broker.client();
    assert_eq!(
        describe(&mut client, "t", KEYS)[0],
        ("900000".into(), DYNAMIC_TOPIC)
    );
}

/// (resource type, resource name, configs sent, error code wanted, text the message must hold)
type Refusal<'a> = (i8, &'a str, &'a [(&'a str, Option<&'a str>)], i16, &'a str);

#[test]
fn alter_configs_refusals_change_nothing() {
    let broker = common::TestBroker::start(&[]);
    let mut client = broker.client();
    create_topic(&mut client, "t", &[("retention.ms", "3600000")]);
    let invalid_request = 42;
    let invalid_config = 40;
    let cases: &[Refusal] = &[
        (
            TOPIC,
            "t",
            &[("retention.ms", None)],
            invalid_request,
            "Null value not supported for : retention.ms",
        ),
        (
            TOPIC,
            "t",
            &[("retention.ms", Some("1")), ("retention.ms", Some("2"))],
            invalid_request,
            "duplicate config keys",
        ),
        (
            TOPIC,
            "t",
            &[("retention.ms", Some("abc"))],
            invalid_config,
            "retention.ms",
        ),
        (
            TOPIC,
            "t",
            &[("no.such.config", Some("1"))],
            invalid_config,
            "no.such.config",
        ),
        (
            TOPIC,
            "nope",
            &[("retention.ms", Some("1"))],
            3,
            "'nope' does not exist",
        ),
        (
            BROKER,
            "1",
            &[("log.dirs", Some("/elsewhere"))],
            invalid_request,
            "log.dirs: cannot be changed while the broker runs",
        ),
    ];
    for (resource_type, name, configs, code, text) in cases {
        let (got, message) = alter(&mut client, 1, *resource_type, name, configs, false);
        assert_eq!(got, *code, "{name} {configs:?}: {message:?}");
        let message = message.unwrap_or_default();
        assert!(message.contains(text), "{name} {configs:?}: {message}");
        assert_eq!(
            describe(&mut client, "t", &["retention.ms"]),
            [("3600000".into(), DYNAMIC_TOPIC)]
        );
    }
}
