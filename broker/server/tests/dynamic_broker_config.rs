//! Dynamic log defaults over the wire (IncrementalAlterConfigs on a BROKER resource, "" or this broker's id):
//! produce sees a changed `message.max.bytes` at once, a topic override still wins, DescribeConfigs names the
//! dynamic source, the values outlive a restart (and reach the logs opened from disk), and bad changes are
//! refused with Kafka's INVALID_REQUEST.

#![allow(clippy::unwrap_used)] // test support: a failed setup should panic

mod common;

use common::{create_topic, s};

use bytes::Bytes;
use kafka_protocol::messages::*;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_REQUEST: i16 = 42;
const DYNAMIC_TOPIC: i8 = 1;
const DYNAMIC_BROKER: i8 = 2;
const DYNAMIC_DEFAULT_BROKER: i8 = 3;
const DEFAULT: i8 = 5;

/// The error code of an acks=1 Produce of one record with a `value_len`-byte value.
fn produce(client: &mut common::Client, topic: &str, value_len: usize) -> i16 {
    common::produce_value(client, topic, Bytes::from(vec![b'v'; value_len]))
}

/// (error code, error message) of one IncrementalAlterConfigs resource of operations (op, key, value).
fn alter(
    client: &mut common::Client,
    resource_type: i8,
    name: &str,
    ops: &[(i8, &str, &str)],
) -> (i16, String) {
    let configs = ops
        .iter()
        .map(|(op, k, v)| {
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(*op)
                .with_value(Some(s(v)))
        })
        .collect();
    let ResponseKind::IncrementalAlterConfigs(r) = client.call(
        ApiKey::IncrementalAlterConfigs,
        1,
        &RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(s(name))
                    .with_configs(configs),
            ]),
        ),
    ) else {
        panic!()
    };
    let res = &r.responses[0];
    (
        res.error_code,
        res.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// (value, config source, read-only) of `key` on a resource.
fn describe(
    client: &mut common::Client,
    resource_type: i8,
    name: &str,
    key: &str,
) -> (String, i8, bool) {
    let ResponseKind::DescribeConfigs(r) = client.call(
        ApiKey::DescribeConfigs,
        4,
        &RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configuration_keys(Some(vec![s(key)])),
        ])),
    ) else {
        panic!()
    };
    let res = &r.results[0];
    assert_eq!(res.error_code, 0, "{:?}", res.error_message);
    let c = &res.configs[0];
    (
        c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        c.config_source,
        c.read_only,
    )
}

#[test]
fn log_defaults_change_live_and_outlive_a_restart() {
    let broker = common::TestBroker::start(&[]);
    let mut client = broker.client();
    create_topic(&mut client, "plain", &[]);
    create_topic(&mut client, "roomy", &[("max.message.bytes", "500000")]);
    create_topic(&mut client, "tight", &[("max.message.bytes", "500")]);
    assert_eq!(produce(&mut client, "plain", 3000), 0);

    assert_eq!(
        alter(
            &mut client,
            BROKER,
            "",
            &[(SET, "message.max.bytes", "2000")]
        ),
        (0, String::new())
    );
    assert_eq!(produce(&mut client, "plain", 3000), MESSAGE_TOO_LARGE);
    assert_eq!(produce(&mut client, "plain", 1000), 0);
    assert_eq!(produce(&mut client, "roomy", 3000), 0, "the override wins");
    assert_eq!(
        describe(&mut client, TOPIC, "plain", "max.message.bytes"),
        ("2000".into(), DYNAMIC_DEFAULT_BROKER, false)
    );
    assert_eq!(
        describe(&mut client, TOPIC, "roomy", "max.message.bytes"),
        ("500000".into(), DYNAMIC_TOPIC, false)
    );
    assert_eq!(
        describe(&mut client, BROKER, "1", "message.max.bytes"),
        ("2000".into(), DYNAMIC_DEFAULT_BROKER, false)
    );

    // This broker's own value wins over the cluster default.
    assert_eq!(
        alter(
            &mut client,
            BROKER,
            "1",
            &[(SET, "message.max.bytes", "5000")]
        )
        .0,
        0
    );
    assert_eq!(produce(&mut client, "plain", 3000), 0);
    assert_eq!(
        describe(&mut client, TOPIC, "plain", "max.message.bytes"),
        ("5000".into(), DYNAMIC_BROKER, false)
    );
    assert_eq!(
        describe(&mut client, BROKER, "1", "message.max.bytes"),
        ("5000".into(), DYNAMIC_BROKER, false)
    );
    assert_eq!(
        alter(
            &mut client,
            BROKER,
            "1",
            &[(DELETE, "message.max.bytes", "")]
        )
        .0,
        0
    );
    assert_eq!(produce(&mut client, "plain", 3000), MESSAGE_TOO_LARGE);

    // After a restart the logs found on disk get the dynamic default, and the topic overrides, again.
    drop(client);
    let dir = broker.stop();
    let broker = common::TestBroker::start_in(dir, &[]);
    let mut client = broker.client();
    assert_eq!(produce(&mut client, "plain", 3000), MESSAGE_TOO_LARGE);
    assert_eq!(produce(&mut client, "plain", 1000), 0);
    assert_eq!(produce(&mut client, "roomy", 3000), 0);
    assert_eq!(produce(&mut client, "tight", 1000), MESSAGE_TOO_LARGE);

    assert_eq!(
        alter(
            &mut client,
            BROKER,
            "",
            &[(DELETE, "message.max.bytes", "")]
        )
        .0,
        0
    );
    assert_eq!(produce(&mut client, "plain", 3000), 0);
    assert_eq!(
        describe(&mut client, TOPIC, "plain", "max.message.bytes"),
        ("1048588".into(), DEFAULT, false)
    );
}

#[test]
fn bad_broker_config_changes_are_refused_and_change_nothing() {
    let broker = common::TestBroker::start(&[]);
    let mut client = broker.client();
    let cases: &[(&str, &str, &str)] = &[
        ("log.retention.ms", "abc", "log.retention.ms"),
        ("log.segment.bytes", "1000", "log.segment.bytes"),
        ("min.insync.replicas", "0", "min.insync.replicas"),
        (
            "log.dirs",
            "/elsewhere",
            "log.dirs: cannot be changed while the broker runs",
        ),
        (
            "log.retention.hours",
            "1",
            "log.retention.hours: cannot be changed",
        ),
    ];
    for name in ["", "1"] {
        for (key, value, text) in cases {
            let (code, message) = alter(&mut client, BROKER, name, &[(SET, key, value)]);
            assert_eq!(code, INVALID_REQUEST, "{key}={value}: {message}");
            assert!(message.contains(text), "{key}={value}: {message}");
        }
    }
    assert_eq!(
        describe(&mut client, BROKER, "", "log.retention.ms"),
        ("".into(), DEFAULT, false)
    );
    // A list key takes APPEND on a broker as on a topic.
    assert_eq!(
        alter(
            &mut client,
            BROKER,
            "",
            &[(APPEND, "log.cleanup.policy", "delete")]
        ),
        (0, String::new())
    );
    assert_eq!(
        describe(&mut client, BROKER, "", "log.cleanup.policy"),
        ("delete".into(), DYNAMIC_DEFAULT_BROKER, false)
    );
}
