"""kubectl and helm as the user runs them, against the node scripts/k8s/up --node started (its
DIR/env is in the environment: KUBECONFIG, PATH, SLUICE_K8S_*). Every call is bounded, so a wedged
server fails a test instead of hanging the suite."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

from cluster_harness import wait_until  # noqa: F401 - the suite's one polling helper, e2e/cluster's

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, input: str | None = None, timeout: float = 120, check: bool = True) -> str:
    p = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


def kubectl(*args: str, input: str | None = None, timeout: float = 90, check: bool = True) -> str:
    return run("kubectl", "--request-timeout=60s", *args, input=input, timeout=timeout, check=check)


def helm(*args: str, timeout: float = 300) -> str:
    return run("helm", *args, timeout=timeout)


def get(kind: str, name: str | None = None, ns: str | None = None, selector: str | None = None) -> dict:
    args = ["get", kind] + ([name] if name else []) + (["-n", ns] if ns else []) + (["-l", selector] if selector else [])
    return json.loads(kubectl(*args, "-o", "json"))


def exists(kind: str, name: str, ns: str | None = None) -> bool:
    out = kubectl("get", kind, name, *(["-n", ns] if ns else []), "--ignore-not-found", "-o", "name")
    return bool(out.strip())


def apply(manifest: str, ns: str | None = None) -> None:
    kubectl("apply", *(["-n", ns] if ns else []), "-f", "-", input=manifest)


def secret_data(name: str, ns: str) -> dict[str, str]:
    """A Secret's data, base64-decoded; the Secrets read here hold text (PEM, passwords, JAAS)."""
    data = get("secret", name, ns).get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def condition(obj: dict, kind: str) -> dict | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def pods(ns: str, selector: str) -> list[dict]:
    return get("pods", ns=ns, selector=selector)["items"]


def pod_ready(pod: dict) -> bool:
    c = condition(pod, "Ready")
    return bool(c and c.get("status") == "True" and not pod["metadata"].get("deletionTimestamp"))


def describe_failure(ns: str) -> str:
    """What a user would look at when something does not come up: events and pod states."""
    out = [kubectl("get", "pods,pvc,statefulsets,jobs", "-n", ns, "-o", "wide", check=False)]
    out.append(kubectl("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False)[-4000:])
    return "\n".join(out)


def node_env() -> dict[str, str]:
    need = ["KUBECONFIG", "SLUICE_K8S_DIR", "SLUICE_K8S_NODE"]
    missing = [k for k in need if not os.environ.get(k)]
    if missing or os.environ.get("SLUICE_K8S_NODE") != "1":
        raise RuntimeError(f"no node to test on ({missing or 'SLUICE_K8S_NODE != 1'}): run e2e/k8s/run, "
                           "which starts one with scripts/k8s/up --node")
    return dict(os.environ)


def images() -> dict[str, str]:
    """BROKER_IMAGE, OPERATOR_IMAGE, ... as scripts/images/build wrote them."""
    out = {}
    for line in (REPO / ".cache/images/images.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip().removeprefix("export ")] = v.strip().strip("'\"")
    return out
