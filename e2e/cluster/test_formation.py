"""Three combined nodes with one static voter set form one cluster."""

from __future__ import annotations

from cluster_harness import metadata


def test_three_nodes_form_one_cluster(cluster_factory):
    c = cluster_factory()
    want = {n.node_id: ("127.0.0.1", n.port) for n in c.nodes}
    for n in c.nodes:
        md = metadata(n.bootstrap)
        # Every node reports every broker at its advertised address, and the one cluster id.
        assert md.brokers == want, f"node {n.node_id}"
        assert md.cluster_id == c.cluster_id, f"node {n.node_id}"
        # KRaft brokers name a random live broker as "controller" to clients (clients only need
        # someone who forwards); it is one of the three either way.
        assert md.controller_id in want, f"node {n.node_id}"

    # Kafka's own tool, through DescribeQuorum on a broker listener: one leader among three voters.
    status = c.quorum_status(via=c.node(3))
    assert status["ClusterId"] == c.cluster_id
    assert int(status["LeaderId"]) in want
    for i, n in want.items():
        assert f'"id": {i}' in status["CurrentVoters"], status["CurrentVoters"]
    rows = c.replication(via=c.node(2))
    assert sorted(int(r["NodeId"]) for r in rows) == [1, 2, 3], rows
    assert [r["NodeId"] for r in rows if r["Status"] == "Leader"] == [status["LeaderId"]], rows


def test_java_admin_and_franz_kadm_see_one_cluster(cluster_factory):
    """The Java admin client's describeCluster and franz-go's kadm, each through one node only."""
    from clients import java, unique
    from test_franz_go import franz

    c = cluster_factory()
    want = sorted((n.node_id, n.port) for n in c.nodes)
    for n in c.nodes:
        rc, results, err = java("admin", "--bootstrap", n.bootstrap, stdin="describe-cluster\n")
        assert rc == 0 and results and results[0]["ok"], f"node {n.node_id}: {results} {err}"
        got = results[0]
        assert got["cluster_id"] == c.cluster_id, f"node {n.node_id}"
        assert sorted((x["id"], x["port"]) for x in got["nodes"]) == want, f"node {n.node_id}: {got}"

    # kadm creates through node 1; node 3 alone describes it, led by the brokers of this cluster.
    topic = unique("kadm")
    [created] = franz("admin", "create-topic", "-brokers", c.node(1).bootstrap, "-topic", topic, "-partitions", "6")
    assert created["partitions"] == 6, created

    def described():
        [d] = franz("admin", "describe-topic", "-brokers", c.node(3).bootstrap, "-topic", topic)
        if "error" in d or len(d["partitions"]) != 6 or any(p["leader"] < 0 for p in d["partitions"]):
            return None
        return d

    from cluster_harness import wait_until

    d = wait_until(described, 30, f"{topic} described through node 3")
    assert d["id"] == created["id"], (d, created)
    leaders = {p["leader"] for p in d["partitions"]}
    assert leaders <= {n.node_id for n in c.nodes} and len(leaders) > 1, d
