"""A dynamic controller quorum (KIP-853) grown and shrunk with Kafka's own tool: node 1 (broker and
controller) is formatted `--standalone`, nodes 2 and 3 (controllers only) `--no-initial-controllers`; they
follow as observers until `kafka-metadata-quorum add-controller` makes each a voter (a voter restarted on
another port moves its own entry, UpdateRaftVoter), and `remove-controller`
takes them out again (through a broker, and through a controller listener with `--bootstrap-controller`).
Metadata changes keep working throughout, and every acknowledged message is read back at the end."""

from __future__ import annotations

import json

import pytest

import harness
from clients import unique
from cluster_harness import create_topic_via, wait_listed, wait_until
from harness import BrokerError
from test_separate_roles import consume_all, observers, produce


def voters(c, via) -> dict[int, dict]:
    """CurrentVoters of `describe --status`: id -> {"id", "directoryId", "endpoints"}."""
    return {v["id"]: v for v in json.loads(c.quorum_status(via=via)["CurrentVoters"])}


def directory_id(node) -> str:
    """The directory id a node's metadata log dir was formatted with (`meta.properties`)."""
    for line in (node.data_dir / "meta.properties").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "directory.id":
            return value.strip()
    raise AssertionError(f"no directory.id in node {node.node_id}'s meta.properties")


def tool_refusal(c, *args, via, **kw) -> str:
    """Runs the tool expecting it to fail; answers what it printed."""
    with pytest.raises(BrokerError) as refused:
        c.quorum_tool(*args, via=via, **kw)
    return str(refused.value)


def caught_up(c, via, ids: set[int]) -> bool:
    rows = {int(r["NodeId"]): r for r in c.replication(via=via)}
    return all(i in rows and rows[i]["Status"] in ("Leader", "Follower") and int(rows[i]["Lag"]) == 0 for i in ids)


def test_a_quorum_grows_from_one_controller_to_three_and_shrinks_back(cluster_factory):
    c = cluster_factory(size=3, start=False, roles={2: "controller", 3: "controller"}, dynamic=True)
    one, two, three = c.nodes
    one.format_flags = ("--standalone",)
    two.format_flags = three.format_flags = ("--no-initial-controllers",)

    c.start([1])
    assert set(voters(c, one)) == {1}
    topic = unique("dynamic")
    create_topic_via(one, topic, partitions=2)
    acked = produce(one.bootstrap, topic, [f"alone-{i}".encode() for i in range(200)])

    # New controllers follow the log as observers before anyone adds them.
    c.start([2, 3])
    wait_until(lambda: {2, 3} <= observers(c, one), 30, "controllers 2 and 3 as observers")

    for n in (two, three):
        c.quorum_tool("add-controller", via=one, node_config=n)
        wait_until(lambda: n.node_id in voters(c, one), 20, f"controller {n.node_id} among the voters")
    current = voters(c, one)
    assert set(current) == {1, 2, 3}, current
    assert {i: v["directoryId"] for i, v in current.items()} == {n.node_id: directory_id(n) for n in c.nodes}
    assert current[2]["endpoints"] == [f"CONTROLLER://127.0.0.1:{two.controller_port}"], current
    wait_until(lambda: caught_up(c, one, {1, 2, 3}), 30, "three voters with lag 0")

    # The tool finds the same quorum through a controller listener (KIP-919's --bootstrap-controller).
    through_controller = c.quorum_status(controller=three)
    assert json.loads(through_controller["CurrentVoters"]) == json.loads(c.quorum_status(via=one)["CurrentVoters"])
    assert through_controller["ClusterId"] == c.cluster_id, through_controller

    # Refusals, as Kafka names them: a voter added twice, a voter named by another disk.
    assert "DuplicateVoterException" in tool_refusal(c, "add-controller", via=one, node_config=two)
    refused = tool_refusal(c, "remove-controller", "--controller-id", "3",
                           "--controller-directory-id", "AAAAAAAAAAAAAAAAAAAAAQ", via=one)
    assert "VoterNotFoundException" in refused, refused
    assert set(voters(c, one)) == {1, 2, 3}

    # Three voters survive the loss of one: metadata changes still commit. It comes back on another port, tells
    # the leader (UpdateRaftVoter), and catches up there.
    three.kill9()
    while_down = unique("while-down")
    create_topic_via(one, while_down)
    acked += produce(one.bootstrap, topic, [f"three-{i}".encode() for i in range(200)])
    three.controller_port = harness.free_port()
    c.start([3])
    moved = [f"CONTROLLER://127.0.0.1:{three.controller_port}"]
    wait_until(lambda: voters(c, one)[3]["endpoints"] == moved, 30, "controller 3's new endpoint among the voters")
    wait_until(lambda: caught_up(c, one, {1, 2, 3}), 30, "controller 3 back with lag 0")

    # Back to one voter, one change at a time; the removed controllers are observers until they stop.
    for n, through in ((three, {"controller": two}), (two, {"via": one})):
        c.quorum_tool("remove-controller", "--controller-id", str(n.node_id),
                      "--controller-directory-id", directory_id(n), **through)
        wait_until(lambda: n.node_id not in voters(c, one), 20, f"controller {n.node_id} out of the voters")
    assert set(voters(c, one)) == {1}
    two.stop()
    three.stop()
    alone_again = unique("alone-again")
    create_topic_via(one, alone_again)
    acked += produce(one.bootstrap, topic, [f"again-{i}".encode() for i in range(200)])
    wait_listed([one], {topic: 2, while_down: 1, alone_again: 1})

    got = consume_all(one.bootstrap, topic, len(acked))
    missing = set(acked) - set(got)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:3]}"
