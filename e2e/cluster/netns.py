"""Per-node network namespaces for e2e/cluster (`Cluster(netns=True)`), so a test can cut one node off from
the others while clients (this process, in the root namespace) still reach every node.

Layout, for nodes 1..N of one cluster (TAG: 6 random hex digits, S: a free 10.77.S.0/24):

- node i runs in namespace `sluice-e2e-<pytest pid>-TAG-n<i>` with address 10.77.S.(10+i) on its end of a
  veth pair (`slTAGn<i>`) and a route to the rest of 10.77.S.0/24 through 10.77.S.1;
- the root namespace holds the other end (`slTAGr<i>`) with 10.77.S.1, a /32 route to the node, and IPv4
  forwarding switched on for that interface only (the host's global `ip_forward` is left alone): traffic
  between two nodes is routed through the root namespace, traffic between a client here and a node is not.

`partition(i)` adds policy rules in the root namespace that drop (blackhole) every packet node i sends to
another node and every packet another node sends to i: a silent cut, as a pulled cable looks (connections
hang, new ones get no SYN-ACK), while this process still talks to all of them. `heal()` removes the rules.

`teardown()` removes every rule, interface and namespace made here (and kills what still runs inside one: only
the nodes started in it can be there) and reports whatever it could not remove. `setup()` first sweeps what a
crashed earlier run left (namespaces whose pytest pid is gone, with their rules and interfaces).
Needs root and iproute2 (`ip`).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
from pathlib import Path

NAME_PREFIX = "sluice-e2e"
ADDRESS_PREFIX = "10.77"
RULE_PRIORITY = 1077  # after the local table (0), before main (32766)
_NS_RE = re.compile(rf"^{NAME_PREFIX}-(\d+)-([0-9a-f]{{6}})-n\d+$")
_LINK_RE = re.compile(r"^sl([0-9a-f]{6})[rn]\d+$")


class NetnsError(Exception):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _links() -> list[str]:
    out = _ip("-o", "link", "show", check=False).stdout
    return [m.group(1) for m in re.finditer(r"^\d+:\s+([^:@\s]+)", out, re.M)]


def _rules() -> list[str]:
    return _ip("-4", "rule", "show", check=False).stdout.splitlines()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_inside(namespace: str) -> list[int]:
    """SIGKILL whatever still runs in `namespace` (only nodes this suite started there can be); returns the pids."""
    pids = [int(p) for p in _ip("netns", "pids", namespace, check=False).stdout.split() if p.isdigit()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def _delete_rules(tags: set[str]) -> None:
    for line in _rules():
        m = re.search(r"iif (sl([0-9a-f]{6})r\d+)", line)
        if m and m.group(2) in tags and "blackhole" in line:
            selector = line.split(":", 1)[1].split()
            prio = line.split(":", 1)[0].strip()
            # "from all iif X [detached] to Y blackhole" -> the same selector, minus the status word
            args = [w for w in selector if w != "[detached]"]
            _ip("-4", "rule", "del", "priority", prio, *args, check=False)


def sweep_stale() -> list[str]:
    """Remove namespaces, rules and interfaces left by runs whose pytest process is gone; returns their names."""
    live_tags, stale_tags, removed = set(), set(), []
    for ns in _namespaces():
        m = _NS_RE.match(ns)
        if not m:
            continue
        if _pid_alive(int(m.group(1))):
            live_tags.add(m.group(2))
            continue
        stale_tags.add(m.group(2))
        _kill_inside(ns)
        _ip("netns", "del", ns, check=False)
        removed.append(ns)
    for link in _links():
        m = _LINK_RE.match(link)
        if m and m.group(1) not in live_tags:
            stale_tags.add(m.group(1))
            _ip("link", "del", link, check=False)
            removed.append(link)
    for line in _rules():
        m = re.search(r"iif sl([0-9a-f]{6})r\d+", line)
        if m and m.group(1) not in live_tags:
            stale_tags.add(m.group(1))
    if stale_tags:
        _delete_rules(stale_tags)
    return removed


def _free_subnet() -> str:
    used = _ip("-4", "-o", "addr", "show", check=False).stdout + _ip("-4", "route", "show", "table", "all", check=False).stdout
    for s in range(256):
        if f"{ADDRESS_PREFIX}.{s}." not in used:
            return f"{ADDRESS_PREFIX}.{s}"
    raise NetnsError(f"no free {ADDRESS_PREFIX}.S.0/24 subnet")


class NodeNetwork:
    """One namespace per node id, routed through the root namespace (see the module docstring)."""

    def __init__(self, node_ids: list[int]):
        self.node_ids = list(node_ids)
        self.tag = secrets.token_hex(3)
        self.owner = os.getpid()
        self.subnet = ""
        self.cut: set[int] = set()
        self._made_ns: list[str] = []
        self._made_links: list[str] = []
        self._rules: list[tuple[str, str]] = []  # (iif, destination address)

    # -- names and addresses -----------------------------------------------------------------------

    def namespace(self, node_id: int) -> str:
        return f"{NAME_PREFIX}-{self.owner}-{self.tag}-n{node_id}"

    def address(self, node_id: int) -> str:
        return f"{self.subnet}.{10 + node_id}"

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    def root_link(self, node_id: int) -> str:
        return f"sl{self.tag}r{node_id}"

    def node_link(self, node_id: int) -> str:
        return f"sl{self.tag}n{node_id}"

    # -- life cycle --------------------------------------------------------------------------------

    def setup(self) -> None:
        if os.geteuid() != 0:
            raise NetnsError("Cluster(netns=True) needs root (ip netns, veth pairs, policy rules)")
        sweep_stale()
        self.subnet = _free_subnet()
        try:
            for i in self.node_ids:
                self._add_node(i)
        except Exception:
            self.teardown()
            raise

    def _add_node(self, i: int) -> None:
        ns, root, inner, addr = self.namespace(i), self.root_link(i), self.node_link(i), self.address(i)
        _ip("netns", "add", ns)
        self._made_ns.append(ns)
        _ip("link", "add", root, "type", "veth", "peer", "name", inner)
        self._made_links.append(root)
        _ip("link", "set", inner, "netns", ns)
        _ip("addr", "add", f"{self.gateway}/32", "dev", root)
        _ip("link", "set", root, "up")
        Path(f"/proc/sys/net/ipv4/conf/{root}/forwarding").write_text("1\n")
        _ip("route", "add", f"{addr}/32", "dev", root)
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{addr}/32", "dev", inner)
        _ip("-n", ns, "link", "set", inner, "up")
        _ip("-n", ns, "route", "add", f"{self.gateway}/32", "dev", inner)
        _ip("-n", ns, "route", "add", f"{self.subnet}.0/24", "via", self.gateway)

    def partition(self, node_id: int) -> None:
        """Drop every packet between node `node_id` and the other nodes, both ways; clients here still reach it."""
        if node_id in self.cut:
            return
        for j in self.node_ids:
            if j == node_id:
                continue
            for iif, dst in ((self.root_link(node_id), self.address(j)), (self.root_link(j), self.address(node_id))):
                _ip("-4", "rule", "add", "priority", str(RULE_PRIORITY), "iif", iif, "to", f"{dst}/32", "blackhole")
                self._rules.append((iif, dst))
        self.cut.add(node_id)

    def heal(self) -> None:
        """Remove every cut: the nodes reach each other again."""
        errors = []
        for iif, dst in self._rules:
            proc = _ip("-4", "rule", "del", "priority", str(RULE_PRIORITY), "iif", iif, "to", f"{dst}/32",
                       "blackhole", check=False)
            if proc.returncode != 0:
                errors.append(f"rule iif {iif} to {dst}: {proc.stderr.strip()}")
        self._rules.clear()
        self.cut.clear()
        if errors:
            raise NetnsError("heal: " + "; ".join(errors))

    def teardown(self) -> list[str]:
        """Remove everything made here; returns what is still there afterwards (empty: all gone)."""
        try:
            self.heal()
        except NetnsError:
            pass
        _delete_rules({self.tag})
        for ns in self._made_ns:
            _kill_inside(ns)
        for link in self._made_links:
            if link in _links():
                _ip("link", "del", link, check=False)
        for ns in self._made_ns:
            _ip("netns", "del", ns, check=False)
        left = [ns for ns in _namespaces() if ns in self._made_ns]
        left += [link for link in _links() if _LINK_RE.match(link) and self.tag in link]
        left += [rule for rule in _rules() if f"sl{self.tag}r" in rule]
        return [f"network namespace setup not fully removed: {x}" for x in left]
