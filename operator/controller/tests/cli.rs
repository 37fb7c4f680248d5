//! The `sluice-operator` binary as a user runs it: `crd` and `render`.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic

use std::process::{Command, Output};

fn operator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice-operator"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn crd_prints_every_crd_as_in_the_crds_folder() {
    let out = stdout(&operator(&["crd"]));
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "kafkaclusters.sluice.dev",
            "topics.sluice.dev",
            "kafkausers.sluice.dev"
        ]
    );
    for (doc, name) in docs.iter().zip(&names) {
        let file = std::fs::read_to_string(format!("../../crds/{name}.yaml")).unwrap();
        let on_disk: serde_json::Value = serde_saphyr::from_str(&file).unwrap();
        assert_eq!(doc, &on_disk, "crds/{name}.yaml");
    }
}

#[test]
fn render_prints_every_object_of_the_example() {
    let out = stdout(&operator(&[
        "render",
        "../examples/kafkacluster.yaml",
        "--cluster-id",
        "MkU3OEVBNTcwNTJENDM2Qg",
        "--broker-image",
        "sluice-broker:example",
    ]));
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
    let kinds: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap/demo-controller-config",
            "ConfigMap/demo-broker-config",
            "Service/demo-controllers",
            "Service/demo-brokers",
            "Service/demo-bootstrap",
            "PodDisruptionBudget/demo-controller",
            "PodDisruptionBudget/demo-broker",
            "StatefulSet/demo-controller",
            "StatefulSet/demo-broker",
        ]
    );
    insta::assert_snapshot!("render_example", out);
}

#[test]
fn render_without_cluster_id_makes_a_fresh_one() {
    let id = |out: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix("cluster.id="))
            .unwrap()
            .to_owned()
    };
    let a = id(&stdout(&operator(&[
        "render",
        "../examples/kafkacluster.yaml",
    ])));
    let b = id(&stdout(&operator(&[
        "render",
        "../examples/kafkacluster.yaml",
    ])));
    assert_eq!(a.len(), 22);
    assert_ne!(a, b);
}

#[test]
fn render_rejects_other_kinds_and_invalid_clusters() {
    let out = operator(&["render", "../examples/topic.yaml"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("expected KafkaCluster, found \"Topic\""),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: sluice.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: bad\n\
         spec:\n  controllers:\n    replicas: 2\n  config:\n    node.id: \"1\"\n",
    )
    .unwrap();
    let out = operator(&["render", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.controllers.replicas: is 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("spec.config: must not set node.id"),
        "{stderr}"
    );

    let out = operator(&["render", "../examples/missing.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read ../examples/missing.yaml"));
}
