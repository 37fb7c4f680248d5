"""Connection limits as Kafka's keys set them: `max.connections.per.ip` (and its overrides) turns away a flood
of connections from one address while others are still served, and `max.connections` keeps a broker that is
full from taking more until a connection closes. The connections are raw sockets sending ApiVersions, which a
SASL listener answers before authentication; they come from their own loopback addresses (127.0.0.x), so the
harness's own clients do not count against the address under test."""

import socket
import struct
import time

from test_sasl import sasl_config

API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 1, -1)


def connect(port: int, source: str) -> socket.socket:
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def answered(s: socket.socket, timeout: float = 3) -> bool:
    """Whether an ApiVersions request on `s` is answered within `timeout` seconds."""
    s.settimeout(timeout)
    try:
        s.sendall(struct.pack(">i", len(API_VERSIONS_V0)) + API_VERSIONS_V0)
        head = s.recv(4)
        return len(head) == 4
    except OSError:
        return False


def test_a_flood_from_one_address_is_turned_away(broker_factory):
    b = broker_factory(sasl_config("SASL_PLAINTEXT", {"max.connections.per.ip.overrides": "127.0.0.2:3"}),
                       secure="SASL_PLAINTEXT")
    held = [connect(b.secure_port, "127.0.0.2") for _ in range(3)]
    assert all(answered(s) for s in held)
    flood = [connect(b.secure_port, "127.0.0.2") for _ in range(20)]
    assert not any(answered(s, timeout=2) for s in flood[:3]), "a fourth connection from 127.0.0.2 was served"
    other = connect(b.secure_port, "127.0.0.3")
    assert answered(other), "another address is still served"
    for s in flood:
        s.close()
    held.pop().close()
    # The broker notices the close and gives the place back.
    deadline = time.time() + 10
    while True:
        s = connect(b.secure_port, "127.0.0.2")
        if answered(s, timeout=2):
            break
        s.close()
        assert time.time() < deadline, "no place came back after a connection closed"
    for s in held + [other, s]:
        s.close()


def test_a_full_broker_waits_for_a_connection_to_close(broker_factory):
    b = broker_factory(sasl_config("SASL_PLAINTEXT", {"max.connections": "12"}), secure="SASL_PLAINTEXT")
    held = []
    waiting = None
    for _ in range(30):
        s = connect(b.secure_port, "127.0.0.4")
        if not answered(s, timeout=3):
            waiting = s
            break
        held.append(s)
    assert waiting is not None, "30 client connections were all served under max.connections=12"
    # The broker's and the harness's own connections may count too (Kafka counts its inter-broker listener).
    assert 6 <= len(held) <= 12, f"{len(held)} connections served before the broker was full"
    held.pop().close()
    # The waiting connection's request is answered once there is room.
    waiting.settimeout(15)
    assert len(waiting.recv(4)) == 4, "the waiting connection was not served after one closed"
    for s in held + [waiting]:
        s.close()
