"""The user's path on a real node: the operator installed with helm, a KafkaCluster applied with
kubectl, and clients producing and consuming. One operator and one cluster serve the whole session
(a three-by-three cluster takes a minute to come up on two cores); tests run in file order and the
destructive ones come last."""

from __future__ import annotations

import pytest

import kube

OPERATOR_NS = "sluice-system"
NS = "sluice-e2e"
CLUSTER = "demo"

# Small requests: the node has two cores, and six broker pods at the example's 500m would not schedule.
CLUSTER_SPEC = f"""
apiVersion: sluice.dev/v1alpha1
kind: KafkaCluster
metadata:
  name: {CLUSTER}
  namespace: {NS}
spec:
  controllers:
    replicas: 3
    storage: {{size: 1Gi}}
    resources: {{requests: {{cpu: 50m, memory: 64Mi}}}}
  brokers:
    replicas: 3
    storage: {{size: 1Gi}}
    resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
  config:
    default.replication.factor: "3"
    min.insync.replicas: "2"
    num.partitions: "3"
    replica.lag.time.max.ms: "10000"
"""


@pytest.fixture(scope="session")
def env() -> dict[str, str]:
    return kube.node_env()


@pytest.fixture(scope="session")
def operator(env) -> str:
    """`helm install` of charts/sluice-operator with the images scripts/images/build made; the
    operator Deployment Available."""
    images = kube.images()
    repo, _, tag = images["OPERATOR_IMAGE"].rpartition(":")
    kube.helm("upgrade", "--install", "sluice", str(kube.REPO / "charts/sluice-operator"),
              "--namespace", OPERATOR_NS, "--create-namespace",
              "--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
              "--set", f"brokerImage={images['BROKER_IMAGE']}",
              "--set", "resyncInterval=30s",
              "--wait", "--timeout", "180s")
    return OPERATOR_NS


@pytest.fixture(scope="session")
def cluster(operator) -> dict:
    """The KafkaCluster, Ready=True with no operation left (its controllers all voters)."""
    kube.kubectl("create", "namespace", NS, check=False)
    kube.apply(CLUSTER_SPEC)

    def ready():
        kc = kube.get("kafkacluster", CLUSTER, NS)
        c = kube.condition(kc, "Ready")
        settled = c and c.get("status") == "True" and not (kc.get("status") or {}).get("operation")
        return kc if settled else None
    try:
        return kube.wait_until(ready, 300, f"KafkaCluster {CLUSTER} Ready=True", interval=2)
    except TimeoutError:
        print(kube.describe_failure(NS))
        raise
