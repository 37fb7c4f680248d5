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
