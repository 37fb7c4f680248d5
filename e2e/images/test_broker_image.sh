#!/usr/bin/env bash
# End-to-end test of the sluice-broker container image, run with podman:
#   - the image's configuration: user 65532, ports 9092/9093, the data volume, entrypoint, OCI
#     labels; what it holds (the binary and the data directory owned by 65532, nothing else); size;
#   - the default command starts a broker (in a container with no network);
#   - a broker container serving on loopback (host network, free ports) takes produce and consume
#     from real clients (kcat; confluent-kafka from .cache/venv when scripts/install-e2e made it,
#     with a consumer group), runs as uid/gid 65532 without capabilities and writes its data as
#     65532;
#   - SIGTERM (podman stop) shuts it down cleanly, exit 0, within STOP_BOUND seconds;
#   - a new container on the same volume still serves the messages (recovery from the volume).
# Everything it creates (containers, volume) is removed on exit, also on failure or timeout.
# Ends with the line "N passed, M failed"; exits non-zero if anything failed.
#
# usage: e2e/images/test_broker_image.sh [--no-build]
#   --no-build  use the image named in .cache/images/images.env (default: run scripts/images/build
#               broker first, which is quick when nothing changed)
# Environment: IMAGES_TEST_TIMEOUT (hard limit for the whole test, default 600 s).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2

# The whole test is bounded: re-run under timeout(1); its TERM reaches the trap below.
if [[ -z ${IMAGES_TEST_UNDER_TIMEOUT:-} ]]; then
  IMAGES_TEST_UNDER_TIMEOUT=1 exec timeout -k 20s "${IMAGES_TEST_TIMEOUT:-600}" "$0" "$@"
fi

# shellcheck source=scripts/images/lib.sh
source "$ROOT/scripts/images/lib.sh"

BUILD=1
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument $arg" >&2; exit 2 ;;
  esac
done

# The binary keeps its symbol table so that a panic's backtrace names functions. TLS, SASL/SCRAM, X.509
# principals, ACLs and quotas took the image past 20 MB (bench/results/image-sizes.md).
SIZE_LIMIT_MB=25
STOP_BOUND=15
MESSAGES=200
RUN_ID="sluice-image-test-$$"
VOLUME="$RUN_ID-data"
CONTAINERS=()
PASSED=0
FAILED=0
LOG_DIR="$ROOT/.cache/e2e-logs/images"
mkdir -p "$LOG_DIR"
WORK=$(mktemp -d)

cleanup() {
  local c
  for c in "${CONTAINERS[@]}"; do
    podman container exists "$c" || continue
    podman logs "$c" > "$LOG_DIR/$c.log" 2>&1 || true
    podman rm -f -v -t 5 "$c" >/dev/null 2>&1 || true
  done
  podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
finish() {
  cleanup
  echo
  echo "container logs: ${LOG_DIR#"$ROOT"/}/"
  echo "$PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]] || exit 1
  exit 0
}
trap 'FAILED=$((FAILED + 1)); echo "FAIL  interrupted (timeout or signal)"; exit 1' TERM INT
trap finish EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok    $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL  $1${2:+: $2}"; }
# check NAME CMD...: one test; its output is shown only when it fails.
check() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(tail -n 20 <<<"$out")"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_log CONTAINER TEXT SECONDS
wait_for_log() {
  local deadline=$((SECONDS + $3))
  # Logs are read whole before grepping: grep -q closing the pipe early would fail it (pipefail).
  until grep -qF "$2" <<<"$(podman logs "$1" 2>&1)"; do
    [[ $(podman inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]] || { echo "container $1 exited"; podman logs "$1" 2>&1 | tail -n 20; return 1; }
    (( SECONDS < deadline )) || { echo "no '$2' in $3 s"; podman logs "$1" 2>&1 | tail -n 20; return 1; }
    sleep 0.2
  done
}

# --- the image --------------------------------------------------------------------------------
images_install_tools || { fail "podman and buildah installed"; exit 1; }
command -v kcat >/dev/null || { fail "kcat installed (scripts/install-e2e)"; exit 1; }
if [[ $BUILD -eq 1 ]]; then
  start=$SECONDS
  if "$ROOT/scripts/images/build" broker > "$LOG_DIR/build.log" 2>&1; then
    pass "scripts/images/build broker ($((SECONDS - start)) s)"
  else
    fail "scripts/images/build broker" "$(tail -n 20 "$LOG_DIR/build.log")"; exit 1
  fi
fi
BROKER_IMAGE=$(sed -n 's/^BROKER_IMAGE=//p' "$ROOT/.cache/images/images.env" 2>/dev/null)
[[ -n $BROKER_IMAGE ]] || { fail "an image in .cache/images/images.env (run scripts/images/build)"; exit 1; }
podman image exists "$BROKER_IMAGE" || { fail "image $BROKER_IMAGE in local storage"; exit 1; }
echo "image: $BROKER_IMAGE"
VERSION=${BROKER_IMAGE##*:}

podman image inspect "$BROKER_IMAGE" > "$WORK/inspect.json"
image_config() {
  python3 - "$WORK/inspect.json" "$VERSION" <<'EOF'
import json, sys
image = json.load(open(sys.argv[1]))[0]
c = image["Config"]
problems = []
def expect(what, got, want):
    if got != want:
        problems.append(f"{what}: {got!r}, expected {want!r}")
expect("User", c.get("User"), "65532:65532")
expect("ExposedPorts", sorted(c.get("ExposedPorts") or {}), ["9092/tcp", "9093/tcp"])
expect("Volumes", sorted(c.get("Volumes") or {}), ["/var/lib/sluice"])
expect("Entrypoint", c.get("Entrypoint"), ["/usr/local/bin/sluice-broker"])
labels = c.get("Labels") or {}
for key in ("source", "version", "licenses", "title", "description"):
    if not labels.get(f"org.opencontainers.image.{key}"):
        problems.append(f"label org.opencontainers.image.{key} missing")
expect("version label", labels.get("org.opencontainers.image.version"), sys.argv[2])
expect("licenses label", labels.get("org.opencontainers.image.licenses"), "Apache-2.0")
expect("title label", labels.get("org.opencontainers.image.title"), "sluice-broker")
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF
}
check "image config: user 65532, ports 9092+9093, volume, entrypoint, OCI labels" image_config

image_size() {
  local bytes
  bytes=$(podman image inspect -f '{{.Size}}' "$BROKER_IMAGE")
  echo "image size $(bc_mb "$bytes") MB"
  (( bytes < SIZE_LIMIT_MB * 1000 * 1000 ))
}
check "image is smaller than $SIZE_LIMIT_MB MB ($(bc_mb "$(podman image inspect -f '{{.Size}}' "$BROKER_IMAGE")") MB)" image_size

# The filesystem, as a container would see it before it runs: the binary, the data directory
# owned by 65532, and nothing else (no shell, no libc).
image_content() {
  podman create "${PODMAN_RUN_FLAGS[@]}" --name "$RUN_ID-content" "$BROKER_IMAGE" >/dev/null || return 1
  podman export "$RUN_ID-content" | tar -tv --numeric-owner > "$WORK/content.txt" || return 1
  python3 - "$WORK/content.txt" <<'EOF'
import sys
entries = {}
for line in open(sys.argv[1]):
    perms, owner, _size, _date, _time, name = line.split(None, 5)
    entries[name.strip().rstrip("/")] = (perms, owner)
# podman adds these mount points (and /run/.containerenv) to every container.
runtime = {"dev", "proc", "sys", "etc", "etc/hosts", "etc/resolv.conf", "etc/hostname", "run",
           "run/.containerenv", "run/secrets"}
expected = {"usr", "usr/local", "usr/local/bin", "usr/local/bin/sluice-broker",
            "var", "var/lib", "var/lib/sluice", "var/lib/sluice/data"}
extra = set(entries) - expected - runtime
missing = expected - set(entries)
problems = [f"unexpected {sorted(extra)}"] if extra else []
if missing:
    problems.append(f"missing {sorted(missing)}")
if "var/lib/sluice/data" in entries and entries["var/lib/sluice/data"][1] != "65532/65532":
    problems.append(f"data dir owned by {entries['var/lib/sluice/data'][1]}")
binary = entries.get("usr/local/bin/sluice-broker")
if binary and (binary[1] != "0/0" or binary[0][0] != "-" or "x" not in binary[0]):
    problems.append(f"binary {binary}: want an executable file owned by root")
print("\n".join(problems) or "\n".join(sorted(entries)))
sys.exit(1 if problems else 0)
EOF
}
# check runs its command in a subshell: containers are named up front for the cleanup to find.
CONTAINERS+=("$RUN_ID-content" "$RUN_ID-default")
check "image holds only the binary (root-owned) and /var/lib/sluice/data (65532)" image_content

# --- the default command ----------------------------------------------------------------------
# Its own network namespace with no network: the default listeners (0.0.0.0:9092) cannot clash
# with anything on this machine, and the anonymous volume from VOLUME must be writable.
default_cmd() {
  local c=$RUN_ID-default
  podman run -d "${PODMAN_RUN_FLAGS[@]}" --network none --name "$c" "$BROKER_IMAGE" >/dev/null || return 1
  wait_for_log "$c" "broker ready" 30 || return 1
  grep -F "listening" <<<"$(podman logs "$c" 2>&1)" | grep -F "0.0.0.0:9092" >/dev/null \
    || { echo "no listener on 0.0.0.0:9092:"; podman logs "$c" 2>&1 | tail -n 20; return 1; }
  podman stop -t 10 "$c" >/dev/null
}
check "default command: broker ready on 0.0.0.0:9092 with data in the image's volume" default_cmd

# --- a served broker --------------------------------------------------------------------------
# Host network with loopback listeners on free ports: clients reach the broker exactly as
# advertised, and no traffic leaves loopback.
PORT=$(free_port)
CPORT=$(free_port)
while [[ $CPORT == "$PORT" ]]; do CPORT=$(free_port); done
BOOTSTRAP="127.0.0.1:$PORT"
BROKER_ARGS=(
  --override "listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT"
  --override "advertised.listeners=PLAINTEXT://127.0.0.1:$PORT"
  --override "controller.quorum.voters=1@127.0.0.1:$CPORT"
  --override "log.dirs=/var/lib/sluice/data"
)
podman volume create "$VOLUME" >/dev/null
run_broker() {
  podman run -d "${PODMAN_RUN_FLAGS[@]}" --network host --name "$1" \
    -v "$VOLUME:/var/lib/sluice/data" "$BROKER_IMAGE" "${BROKER_ARGS[@]}"
}
BROKER=$RUN_ID-broker
if c=$(run_broker "$BROKER" 2>&1); then
  CONTAINERS+=("$BROKER")
  check "broker container starts and listens on $BOOTSTRAP" wait_for_log "$BROKER" "broker ready" 30
else
  fail "broker container starts" "$c"; exit 1
fi

runs_as_65532() {
  local pid status
  pid=$(podman inspect -f '{{.State.Pid}}' "$BROKER") || return 1
  status=$(cat "/proc/$pid/status") || return 1
  grep -E '^(Name|Uid|Gid|Groups|CapEff):' <<<"$status"
  grep -qE '^Uid:\s+65532\s+65532\s+65532\s+65532$' <<<"$status" \
    && grep -qE '^Gid:\s+65532\s+65532\s+65532\s+65532$' <<<"$status" \
    && grep -qE '^CapEff:\s+0+$' <<<"$status"
}
check "broker process runs as uid/gid 65532 with no capabilities" runs_as_65532

metadata() {
  local out
  out=$(kcat -b "$BOOTSTRAP" -L -m 10) || return 1
  echo "$out"
  grep -qF "at 127.0.0.1:$PORT" <<<"$out"
}
check "kcat metadata: the broker advertises 127.0.0.1:$PORT" metadata

TOPIC=image-test-kcat
seq 1 "$MESSAGES" | awk '{ printf "key-%d:value-%d\n", $1, $1 }' > "$WORK/sent.txt"
kcat_produce() {
  timeout 60 kcat -b "$BOOTSTRAP" -P -t "$TOPIC" -K: -X acks=all -m 30 < "$WORK/sent.txt"
}
check "kcat produces $MESSAGES messages" kcat_produce

kcat_consume() {
  timeout 60 kcat -b "$BOOTSTRAP" -C -t "$TOPIC" -o beginning -c "$MESSAGES" -e -m 30 -f '%k:%s\n' \
    > "$WORK/received.txt" || return 1
  diff "$WORK/sent.txt" "$WORK/received.txt"
}
check "kcat consumes the same $MESSAGES messages in order" kcat_consume

PY="$ROOT/.cache/venv/bin/python"
if [[ -x $PY ]] && "$PY" -c 'import confluent_kafka' 2>/dev/null; then
  confluent_group() {
    timeout 90 "$PY" - "$BOOTSTRAP" <<'EOF'
import sys, uuid
from confluent_kafka import Consumer, Producer
bootstrap = sys.argv[1]
topic = "image-test-confluent"
want = [f"m{i}".encode() for i in range(50)]
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 20000})
errors = []
for value in want:
    producer.produce(topic, value, on_delivery=lambda err, _msg: err and errors.append(err))
left = producer.flush(30)
assert left == 0 and not errors, f"undelivered: {left}, errors: {errors}"
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"image-test-{uuid.uuid4()}",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
consumer.subscribe([topic])
got = []
import time
deadline = time.monotonic() + 45
while len(got) < len(want) and time.monotonic() < deadline:
    msg = consumer.poll(1.0)
    if msg is None:
        continue
    assert not msg.error(), msg.error()
    got.append(msg.value())
assert got == want, f"got {len(got)} of {len(want)} messages"
consumer.commit(asynchronous=False)
committed = consumer.committed(consumer.assignment(), timeout=10)
assert sum(tp.offset for tp in committed) == len(want), committed
consumer.close()
print(f"produced, consumed and committed {len(got)} messages")
EOF
  }
  check "confluent-kafka produces, consumes in a group and commits offsets" confluent_group
else
  echo "skip  confluent-kafka (no .cache/venv: run scripts/install-e2e)"
fi

data_owned_by_65532() {
  local dir bad
  dir=$(podman volume inspect -f '{{.Mountpoint}}' "$VOLUME") || return 1
  [[ -d $dir/$TOPIC-0 ]] || { echo "no $TOPIC-0 in the volume:"; ls -la "$dir"; return 1; }
  bad=$(find "$dir" \( ! -uid 65532 -o ! -gid 65532 \) -print)
  [[ -z $bad ]] || { echo "not owned by 65532:"; xargs -d "\n" ls -ldn <<<"$bad"; return 1; }
}
check "the broker's data in the volume belongs to 65532" data_owned_by_65532

# podman stop sends SIGTERM (the image sets no other stop signal) and kills after -t seconds; a
# clean shutdown exits 0 well before that.
stop_cleanly() {
  local start=$SECONDS code
  podman stop -t $((STOP_BOUND * 2)) "$BROKER" >/dev/null || return 1
  local took=$((SECONDS - start))
  code=$(podman inspect -f '{{.State.ExitCode}}' "$BROKER")
  echo "stopped in ${took}s, exit code $code"
  podman logs "$BROKER" 2>&1 | tail -n 5
  [[ $code == 0 ]] && (( took <= STOP_BOUND )) && grep -qF "shutdown complete" <<<"$(podman logs "$BROKER" 2>&1)"
}
check "SIGTERM: clean shutdown (exit 0, 'shutdown complete') within $STOP_BOUND s" stop_cleanly

# A new container on the same volume recovers the log.
BROKER2=$RUN_ID-broker2
if c=$(run_broker "$BROKER2" 2>&1); then
  CONTAINERS+=("$BROKER2")
  recovered() {
    wait_for_log "$BROKER2" "broker ready" 30 || return 1
    timeout 60 kcat -b "$BOOTSTRAP" -C -t "$TOPIC" -o beginning -c "$MESSAGES" -e -m 30 -f '%k:%s\n' \
      > "$WORK/recovered.txt" || return 1
    diff "$WORK/sent.txt" "$WORK/recovered.txt"
  }
  check "a new container on the same volume serves the $MESSAGES messages again" recovered
  check "second container: clean shutdown within $STOP_BOUND s" \
    bash -c "s=\$SECONDS; podman stop -t $((STOP_BOUND * 2)) $BROKER2 >/dev/null && (( SECONDS - s <= $STOP_BOUND )) && [[ \$(podman inspect -f '{{.State.ExitCode}}' $BROKER2) == 0 ]]"
else
  fail "second broker container starts" "$c"
fi
