#!/usr/bin/env bash
# Tests charts/sluice-operator: lint, render, the values schema, the copies of crds/ and
# operator/examples/, then against a real kube-apiserver (scripts/k8s/up): server-side dry-run
# of the rendered manifests, a real `helm install` of both value sets, and the RBAC it grants
# (read from operator/controller/README.md, compared rule by rule, plus `kubectl auth can-i`).
# Ends with "N passed, M failed"; exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CHART=$ROOT/charts/sluice-operator
HERE=$ROOT/e2e/chart
EVERYTHING=$HERE/values-everything.yaml
BIN=$ROOT/.cache/k8s/bin

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   - $*"; }
flunk() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }
finish() {
    echo "$PASSED passed, $FAILED failed"
    if ((FAILED == 0)); then exit 0; else exit 1; fi
}

for tool in helm kubectl; do
    if [[ ! -x $BIN/$tool ]]; then
        echo "missing $BIN/$tool: run scripts/k8s/install" >&2
        flunk "$tool present"
        finish
    fi
done
# Every call is bounded so a wedged server fails the test instead of hanging CI.
helm() { timeout 120 "$BIN/helm" "$@"; }
k() { timeout 60 "$BIN/kubectl" --request-timeout=30s "$@"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-chart-test.XXXXXX")
K8S_DIR=""
cleanup() {
    if [[ -n $K8S_DIR ]]; then "$ROOT/scripts/k8s/down" "$K8S_DIR" >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- offline ---------------------------------------------------------------------------------
if helm lint --strict "$CHART" >"$WORK/lint" 2>&1; then pass "helm lint (defaults)"; else cat "$WORK/lint"; flunk "helm lint (defaults)"; fi
if helm lint --strict "$CHART" -f "$EVERYTHING" >"$WORK/lint" 2>&1; then
    pass "helm lint (values-everything)"
else
    cat "$WORK/lint"; flunk "helm lint (values-everything)"
fi

render() { # OUT ARGS...
    local out=$1
    shift
    helm template sluice "$CHART" --namespace sluice-system "$@" >"$out" 2>"$WORK/render.err"
}
has() { grep -qF -- "$2" "$1"; }

if render "$WORK/default.yaml"; then
    pass "helm template (defaults)"
    f=$WORK/default.yaml
    if has "$f" "kind: ClusterRole" && has "$f" "kind: ClusterRoleBinding" && ! has "$f" "kind: Role$" &&
        ! grep -q '^kind: Role$' "$f" && ! has "$f" "leases" && ! has "$f" "--leader-election" &&
        ! has "$f" "--namespace=" && ! has "$f" "ServiceMonitor" &&
        has "$f" "image: \"ghcr.io/sluice-dev/sluice-operator:0.1.0\"" &&
        has "$f" "--broker-image=ghcr.io/sluice-dev/sluice-broker:0.1.0" &&
        has "$f" "--resync-interval=5m" && has "$f" "--log-format=text" &&
        has "$f" "runAsUser: 65532" && has "$f" "readOnlyRootFilesystem: true" &&
        has "$f" "allowPrivilegeEscalation: false" && has "$f" "type: RuntimeDefault" &&
        has "$f" "path: /healthz" && has "$f" "path: /readyz" && has "$f" "port: 8080"; then
        pass "defaults: ClusterRole, no leases, no leader election, default images and args, hardened pod"
    else
        flunk "defaults render as expected"
    fi
else
    cat "$WORK/render.err"; flunk "helm template (defaults)"
fi

if render "$WORK/everything.yaml" -f "$EVERYTHING"; then
    pass "helm template (values-everything)"
    f=$WORK/everything.yaml
    missing=""
    for want in "replicas: 3" "registry.example.com/sluice/sluice-operator:0.1.0-test" "imagePullPolicy: Always" \
        "name: registry-creds" "--broker-image=registry.example.com/sluice/sluice-broker:0.1.0-test" \
        "--namespace=kafka" "--resync-interval=90s" "--log-format=json" "--leader-election" \
        "--lease-name=sluice-operator-e2e" 'resourceNames: ["sluice-operator-e2e"]' "name: sluice-op" \
        "example.com/owner: e2e" "type: NodePort" "port: 9090" "example.com/scrape" "kind: ServiceMonitor" \
        "interval: 15s" "scrapeTimeout: 5s" "release: prometheus" "memory: 512Mi" 'example.com/annotated: "yes"' \
        "example.com/team: streaming" "priorityClassName: system-cluster-critical" "kubernetes.io/os: linux" \
        "key: dedicated" "podAntiAffinity" "namespace: kafka"; do
        has "$f" "$want" || missing+=" [$want]"
    done
    if [[ -z $missing ]] && ! grep -q '^kind: ClusterRole' "$f" && [[ $(grep -c '^kind: Role$' "$f") == 2 ]]; then
        pass "values-everything: every option shows up; Role in kafka + lease Role, no ClusterRole"
    else
        flunk "values-everything: missing$missing (or wrong role kinds)"
    fi
else
    cat "$WORK/render.err"; flunk "helm template (values-everything)"
fi

if render "$WORK/ns.yaml" --set watchNamespace=team-a; then
    f=$WORK/ns.yaml
    if has "$f" "--namespace=team-a" && [[ $(grep -c '^kind: Role$' "$f") == 1 ]] &&
        has "$f" "kind: RoleBinding" && ! grep -q '^kind: ClusterRole' "$f"; then
        pass "watchNamespace: a Role + RoleBinding in that namespace, no ClusterRole"
    else
        flunk "watchNamespace renders a namespaced Role"
    fi
else
    cat "$WORK/render.err"; flunk "helm template (watchNamespace)"
fi

if render "$WORK/two.yaml" --set replicaCount=2 && has "$WORK/two.yaml" "--leader-election" &&
    has "$WORK/two.yaml" "coordination.k8s.io"; then
    pass "replicaCount 2 switches on leader election and its lease Role"
else
    flunk "replicaCount 2 switches on leader election"
fi

# A typo anywhere is refused, naming the key.
typo() { # DESCRIPTION KEY ARGS...
    local what=$1 key=$2
    shift 2
    if render "$WORK/typo.yaml" "$@"; then
        flunk "typo $what accepted"
    elif grep -q "additional properties '$key' not allowed" "$WORK/render.err"; then
        pass "typo $what refused: $(grep -m1 "$key" "$WORK/render.err" | sed 's/^ *//')"
    else
        cat "$WORK/render.err"; flunk "typo $what refused without naming $key"
    fi
}
typo "at top level" replicasCount --set replicasCount=2
typo "in image" tga --set image.tga=x
typo "in metrics.serviceMonitor" enable --set metrics.serviceMonitor.enable=true
if render "$WORK/typo.yaml" --set logFormat=yaml; then flunk "logFormat=yaml accepted"; else pass "logFormat=yaml refused"; fi
if render "$WORK/typo.yaml" --set resyncInterval=5min; then flunk "resyncInterval=5min accepted"; else pass "resyncInterval=5min refused"; fi
if helm install sluice "$CHART" --dry-run=client --set replicasCount=2 >/dev/null 2>"$WORK/install.err" ||
    ! grep -q "replicasCount" "$WORK/install.err"; then
    flunk "helm install refuses a typo"
else
    pass "helm install refuses a typo"
fi

same_dir() { # A B: same file names, byte-identical
    local a=$1 b=$2 ok=1
    [[ $(cd "$a" && ls) == $(cd "$b" && ls) ]] || ok=0
    for x in "$a"/*; do cmp -s "$x" "$b/$(basename "$x")" || ok=0; done
    ((ok))
}
if same_dir "$ROOT/crds" "$CHART/crds"; then pass "chart crds/ = crds/"; else flunk "chart crds/ differs from crds/"; fi
if same_dir "$ROOT/operator/examples" "$CHART/examples"; then
    pass "chart examples/ = operator/examples/"
else
    flunk "chart examples/ differs from operator/examples/"
fi

# --- against a real API server ---------------------------------------------------------------
K8S_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-chart-k8s.XXXXXX")
if timeout 300 "$ROOT/scripts/k8s/up" "$K8S_DIR" >"$WORK/up.log" 2>&1; then
    pass "API server up"
else
    cat "$WORK/up.log"; flunk "API server up (logs in $K8S_DIR)"; finish
fi
# shellcheck source=/dev/null
source "$K8S_DIR/env"

if k apply --server-side -f "$CHART/crds/" >/dev/null && k apply --server-side -f "$HERE/servicemonitor-crd.yaml" >/dev/null &&
    k wait --for=condition=Established --timeout=30s crd/kafkaclusters.sluice.dev crd/topics.sluice.dev \
        crd/servicemonitors.monitoring.coreos.com >/dev/null; then
    pass "CRDs installed (chart's, and a ServiceMonitor stand-in)"
else
    flunk "CRDs installed"
fi
for ns in sluice-system kafka team-a; do k create namespace "$ns" >/dev/null; done

dry_run() { # NAME FILE
    if k apply --dry-run=server --server-side -f "$2" >"$WORK/dry.out" 2>&1; then
        pass "server-side dry-run accepts the $1 manifests ($(wc -l <"$WORK/dry.out") objects)"
    else
        cat "$WORK/dry.out"; flunk "server-side dry-run of the $1 manifests"
    fi
}
dry_run default "$WORK/default.yaml"
dry_run values-everything "$WORK/everything.yaml"
dry_run watchNamespace "$WORK/ns.yaml"
# The examples the NOTES point at are accepted too.
if k apply --dry-run=server -f "$CHART/examples/" >"$WORK/dry.out" 2>&1; then
    pass "server-side dry-run accepts the examples"
else
    cat "$WORK/dry.out"; flunk "examples accepted"
fi

# Real installs: pods never run (no kubelet) so no --wait, but every object must be accepted.
if helm install sluice "$CHART" -n sluice-system >"$WORK/notes" 2>&1; then
    pass "helm install (defaults)"
    if grep -q "kubectl apply -n kafka -f operator/examples/kafkacluster.yaml" "$WORK/notes"; then
        pass "NOTES tell how to create a first cluster"
    else
        cat "$WORK/notes"; flunk "NOTES tell how to create a first cluster"
    fi
else
    cat "$WORK/notes"; flunk "helm install (defaults)"
fi
if k -n sluice-system get deployment/sluice-sluice-operator serviceaccount/sluice-sluice-operator \
    service/sluice-sluice-operator-metrics >/dev/null && k get clusterrole/sluice-sluice-operator \
    clusterrolebinding/sluice-sluice-operator >/dev/null; then
    pass "Deployment, ServiceAccount, Service, ClusterRole, ClusterRoleBinding exist"
else
    flunk "installed objects exist"
fi

# The ClusterRole's rules, one "group/resource verb" per line, must be exactly the README's
# table (without the leases row, which belongs to leader election).
expand_rules='{{range .rules}}{{$r := .}}{{range .apiGroups}}{{$g := .}}{{range $r.resources}}{{$res := .}}{{range $r.verbs}}{{$g}}/{{$res}} {{.}}{{"\n"}}{{end}}{{end}}{{end}}{{end}}'
readme_rules() { # prints the README's RBAC rows as "group/resource verb", except leases
    sed -n '/^### RBAC/,/^## /p' "$ROOT/operator/controller/README.md" | grep '^| `' | while IFS='|' read -r _ g r v _; do
        group=$(grep -o '`[^`]*`' <<<"$g" | tr -d '`' | sed 's/^""$//')
        for res in $(grep -o '`[^`]*`' <<<"$r" | tr -d '`'); do
            [[ $res == leases ]] && continue
            for verb in $(grep -o '`[^`]*`' <<<"$v" | tr -d '`'); do echo "$group/$res $verb"; done
        done
    done | sort
}
readme_rules >"$WORK/want.rules"
k get clusterrole sluice-sluice-operator -o go-template="$expand_rules" | sort >"$WORK/got.rules"
if [[ $(wc -l <"$WORK/want.rules") -gt 20 ]] && diff -u "$WORK/want.rules" "$WORK/got.rules"; then
    pass "ClusterRole grants exactly the README's $(wc -l <"$WORK/want.rules") group/resource/verb triples"
else
    flunk "ClusterRole rules differ from operator/controller/README.md (diff above)"
fi

can_i() { # EXPECT(yes|no) SA_NS SA VERB RESOURCE [ARGS...]
    local want=$1 name=$3 sa="system:serviceaccount:$2:$3" verb=$4 res=$5 got
    shift 5
    got=$(k auth can-i "$verb" "$res" --as="$sa" "$@" 2>/dev/null || true)
    if [[ $got == "$want" ]]; then pass "can-i $verb $res $* as $name: $got"; else flunk "can-i $verb $res $* as $name: got '$got', want '$want'"; fi
}
SA=sluice-sluice-operator
can_i yes sluice-system $SA create statefulsets.apps -n kafka
can_i yes sluice-system $SA patch statefulsets.apps -n team-a
can_i no sluice-system $SA delete statefulsets.apps -n kafka
can_i no sluice-system $SA update statefulsets.apps -n kafka
# Secrets: the CAs, the nodes' certificates and the users' credentials; read one by one, never listed or deleted.
can_i yes sluice-system $SA get secrets -n kafka
can_i no sluice-system $SA list secrets -n kafka
can_i no sluice-system $SA delete secrets -n kafka
can_i yes sluice-system $SA patch kafkausers.sluice.dev -n kafka
can_i yes sluice-system $SA patch kafkausers.sluice.dev -n kafka --subresource=status
can_i no sluice-system $SA delete kafkausers.sluice.dev -n kafka
can_i no sluice-system $SA create pods -n kafka
can_i yes sluice-system $SA patch topics.sluice.dev -n kafka
can_i yes sluice-system $SA patch topics.sluice.dev -n kafka --subresource=status
can_i no sluice-system $SA delete topics.sluice.dev -n kafka
can_i yes sluice-system $SA get kafkaclusters.sluice.dev -n kafka
can_i no sluice-system $SA delete kafkaclusters.sluice.dev -n kafka
can_i yes sluice-system $SA patch kafkaclusters.sluice.dev -n kafka --subresource=status
can_i yes sluice-system $SA create events.events.k8s.io -n kafka
can_i no sluice-system $SA create leases.coordination.k8s.io -n sluice-system

# values-everything: namespaced RBAC in kafka, leader election in the release namespace.
if helm install everything "$CHART" -n ops --create-namespace -f "$EVERYTHING" >"$WORK/notes" 2>&1; then
    pass "helm install (values-everything)"
else
    cat "$WORK/notes"; flunk "helm install (values-everything)"
fi
if k -n ops get deployment/everything-sluice-operator serviceaccount/sluice-op servicemonitor/everything-sluice-operator \
    role/everything-sluice-operator-leader-election >/dev/null && k -n kafka get role/everything-sluice-operator \
    rolebinding/everything-sluice-operator >/dev/null && ! k get clusterrole/everything-sluice-operator >/dev/null 2>&1; then
    pass "values-everything: Deployment, ServiceAccount, ServiceMonitor, lease Role; Role in kafka; no ClusterRole"
else
    flunk "values-everything objects"
fi
k -n kafka get role everything-sluice-operator -o go-template="$expand_rules" | sort >"$WORK/got.rules"
if diff -u "$WORK/want.rules" "$WORK/got.rules"; then
    pass "the namespaced Role grants exactly the README's rules too"
else
    flunk "namespaced Role rules differ from the README"
fi
can_i yes ops sluice-op create statefulsets.apps -n kafka
can_i no ops sluice-op create statefulsets.apps -n team-a
can_i yes ops sluice-op get secrets -n kafka
can_i no ops sluice-op get secrets -n team-a
can_i yes ops sluice-op create leases.coordination.k8s.io -n ops
can_i yes ops sluice-op patch leases.coordination.k8s.io/sluice-operator-e2e -n ops
can_i no ops sluice-op patch leases.coordination.k8s.io/other -n ops
can_i no ops sluice-op delete leases.coordination.k8s.io/sluice-operator-e2e -n ops
can_i no ops sluice-op create leases.coordination.k8s.io -n kafka

if helm uninstall everything -n ops >/dev/null && helm uninstall sluice -n sluice-system >/dev/null &&
    ! k get clusterrole/sluice-sluice-operator >/dev/null 2>&1 && k get crd/kafkaclusters.sluice.dev >/dev/null; then
    pass "helm uninstall removes the release and keeps the CRDs"
else
    flunk "helm uninstall"
fi

finish
