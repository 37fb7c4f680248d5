# shellcheck shell=bash
# The node of `scripts/k8s/up DIR --node`: containerd + runc, CNI bridge, kubelet, kube-scheduler,
# kube-proxy, CoreDNS and local PersistentVolumes, all on this machine. Sourced by up and down,
# which provide DIR, PKI, log, die, start, wait_for, fail and the kubeconfig writer.
#
# Everything it creates carries a name from lib.sh (NODE_IF, POD_BRIDGE, KUBE-*/CNI-* chains,
# /kubepods cgroups, /run/netns/cni-*), so node_sweep can remove what a killed run left behind
# and node_down can prove nothing is left.

NODE_DIR_REL=node

# Sysctls kubelet writes at start (it wants overcommit and panics set its way) and the bridge
# plugin turns on (forwarding): saved before, restored by node_down.
NODE_SYSCTLS=(net.ipv4.ip_forward vm.overcommit_memory kernel.panic kernel.panic_on_oops)

node_save_sysctls() {
    local s
    for s in "${NODE_SYSCTLS[@]}"; do
        echo "$s=$(sysctl -n "$s")"
    done >"$DIR/node/sysctl.saved"
}

node_restore_sysctls() {
    local f=$1/node/sysctl.saved line
    [[ -f $f ]] || return 0
    while read -r line; do
        sysctl -q -w "$line" >/dev/null 2>&1 || true
    done <"$f"
    rm -f "$f"
}

# Processes of pods (in /kubepods cgroups) and of the runtime, whoever started them.
node_kill_pods() {
    local f pid
    for f in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods; do
        [[ -d $f ]] || continue
        while read -r pid; do
            kill -KILL "$pid" 2>/dev/null || true
        done < <(find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null)
    done
    pkill -KILL -f 'containerd-shim-runc-v2 .*-namespace k8s.io' 2>/dev/null || true
}

# Removes the cgroups kubelet made (deepest first: a cgroup goes only once empty).
node_remove_cgroups() {
    local h d
    for h in /sys/fs/cgroup/*/; do
        [[ -d $h/kubepods ]] || continue
        while read -r d; do
            rmdir "$d" 2>/dev/null || true
        done < <(find "$h/kubepods" -depth -type d 2>/dev/null)
    done
}

# Netfilter rules: kube-proxy's and kubelet's KUBE-* chains, the CNI plugins' CNI-* chains and
# our egress guard, in both the nat and filter tables; podman's chains are left alone.
node_flush_rules() {
    local table
    command -v iptables-save >/dev/null || return 0
    for table in nat filter mangle; do
        local rules
        rules=$(iptables-save -t "$table" 2>/dev/null) || continue
        grep -qE 'KUBE-|CNI-|sluice-k8s' <<<"$rules" || continue
        grep -vE 'KUBE-|CNI-|sluice-k8s' <<<"$rules" | iptables-restore -T "$table" 2>/dev/null \
            || log "could not restore the $table table without the node's rules"
    done
}

node_unmount_under() { # DIR
    local m
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(findmnt -rn -o TARGET | grep -F "$1/" | sort -r)
}

# What a run that was killed may have left: its pods, mounts, links, rules and cgroups.
node_sweep() {
    node_kill_pods
    local old
    for old in /tmp/sluice-k8s*/; do
        [[ -d $old/node ]] && node_unmount_under "${old%/}"
    done
    node_remove_host_state
}

# What the node leaves on the machine itself once its processes are gone: pod network namespaces,
# the bridge, the node's address and route, netfilter rules and cgroups.
node_remove_host_state() {
    local ns
    for ns in /run/netns/cni-*; do
        [[ -e $ns ]] && ip netns del "${ns##*/}" 2>/dev/null
    done
    ip link del "$POD_BRIDGE" 2>/dev/null || true
    node_network_remove
    if [[ -x $K8S_BIN/kube-proxy ]]; then "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
    node_flush_rules
    node_remove_cgroups
}

node_network_remove() {
    ip route del "$SERVICE_CIDR" dev lo 2>/dev/null || true
    ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true
}

# The node's address lives on the loopback device (this kernel has no dummy driver): local to the
# machine, reachable from pods through their gateway, never routed off it.
node_network() {
    ip addr add "$NODE_IP/32" dev lo label "lo:$NODE_IF"
    # A Service address the proxy has not programmed yet loops back, not out of the machine.
    ip route add "$SERVICE_CIDR" dev lo
    # Pods reach each other, the node and Services; nothing they send is routed off the machine.
    iptables -I FORWARD 1 -i "$POD_BRIDGE" ! -o "$POD_BRIDGE" -m comment --comment sluice-k8s-egress -j DROP
}

# The apiserver's client certificate for kubelet (logs, exec, port-forward).
node_pki() {
    openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/kubelet-client.key"
    openssl req -new -key "$PKI/kubelet-client.key" -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
        -out "$PKI/kubelet-client.csr"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=clientAuth" >"$PKI/kubelet-client.ext"
    openssl x509 -req -in "$PKI/kubelet-client.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
        -sha256 -days 30 -extfile "$PKI/kubelet-client.ext" -out "$PKI/kubelet-client.crt"
    chmod 600 "$PKI/kubelet-client.key"
}

node_configs() {
    local n=$DIR/node
    mkdir -p "$n"/{containerd,cni/net.d,cni/ipam,kubelet,pv}
    : >"$n/resolv.conf" # pods never inherit the machine's nameserver
    printf '%s\n' "nameserver $NODE_IP" "search cluster.local" "options ndots:5" >"$n/host-resolv.conf"

    cat >"$n/containerd/config.toml" <<EOF
version = 2
root = "$n/containerd/root"
state = "$n/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$n/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$n/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # cgroup v1 here has no hugetlb hierarchy: runc would refuse the limits kubelet sends.
  tolerate_missing_hugetlb_controller = true
  disable_hugetlb_controller = true
  disable_apparmor = true
  # root here lacks CAP_SYS_RESOURCE, so runc cannot give a pod an oom_score_adj below its own:
  # keep every pod's at least containerd's (as rootless setups do).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$K8S_BIN/runc"
        Root = "$n/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$n/cni/net.d"
    max_conf_num = 1
EOF

    cat >"$n/cni/net.d/10-sluice.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "sluice", "plugins": [
  {"type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$n/cni/ipam",
            "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF

    cat >"$n/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# No systemd here, and cgroup v1 (kubelet 1.33 warns; the default of failCgroupV1 flips in 1.35).
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$n/containerd/containerd.sock
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: $n/resolv.conf
# The disk is shared with the builds: evict only when it is really full, and never collect the
# imported images (nothing could pull them back).
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
EOF

    cat >"$n/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $DIR/kubeconfig-proxy}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
nodePortAddresses: [$NODE_IP/32]
iptables: {localhostNodePorts: false}
# Leave the machine's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF

    # No `forward`: a name outside the cluster is not looked up off the machine.
    cat >"$n/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    ready 127.0.0.1:$DNS_READY_PORT
    health 127.0.0.1:$DNS_HEALTH_PORT
    errors
    loadbalance
    cache 5
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $DIR/kubeconfig-coredns system:coredns@sluice
        pods insecure
        ttl 5
    }
}
EOF
}

# Local PersistentVolumes on this node and a default StorageClass that binds them when a pod is
# scheduled: PVCs of StatefulSets bind with no provisioner, and a pod deleted by hand comes back
# to the same data.
node_storage() {
    local count=${SLUICE_K8S_PVS:-32} i
    {
        cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: sluice-local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
EOF
        for ((i = 0; i < count; i++)); do
            mkdir -p "$DIR/node/pv/$i"
            chmod 0777 "$DIR/node/pv/$i"
            cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: sluice-pv-$i}
spec:
  capacity: {storage: 100Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: sluice-local
  local: {path: $DIR/node/pv/$i}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}]
EOF
        done
    } >"$DIR/node/storage.yaml"
    KUBECONFIG=$DIR/kubeconfig timeout 60 "$K8S_BIN/kubectl" apply -f "$DIR/node/storage.yaml" >/dev/null
}

# Imports the pause image and whatever images scripts/images/build saved.
node_import_images() {
    local archive ctr=("$K8S_BIN/ctr" --address "$DIR/node/containerd/containerd.sock" -n k8s.io)
    local archives=("$K8S_IMAGES/pause.oci.tar")
    for archive in "$REPO_ROOT"/.cache/images/*.oci.tar "$K8S_IMAGES"/e2e-*.oci.tar; do
        [[ -f $archive ]] && archives+=("$archive")
    done
    for archive in "${archives[@]}"; do
        timeout 120 "${ctr[@]}" images import --all-platforms --digests "$archive" >/dev/null \
            || fail "importing $archive into containerd"
    done
    "${ctr[@]}" images ls -q | grep -v '^sha256:' >"$DIR/node/images"
}

# Starts the node; the API server is up. Each component is ready before the next starts.
node_up() {
    local t=$SECONDS
    start kube-scheduler "$K8S_BIN/kube-scheduler" \
        --kubeconfig="$DIR/kubeconfig-scheduler" --authentication-kubeconfig="$DIR/kubeconfig-scheduler" \
        --authorization-kubeconfig="$DIR/kubeconfig-scheduler" \
        --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --leader-elect=false --profiling=false
    sched_healthy() { curl -skf --max-time 3 "https://127.0.0.1:$SCHED_PORT/healthz" | grep -qx ok; }
    wait_for kube-scheduler "${PID[kube-scheduler]}" "$START_TIMEOUT" sched_healthy
    ready kube-scheduler "${PID[kube-scheduler]}" "https://127.0.0.1:$SCHED_PORT/healthz" "$((SECONDS - t))s"

    t=$SECONDS
    # containerd finds its shim through PATH.
    start containerd env PATH="$K8S_BIN:$PATH" "$K8S_BIN/containerd" --config "$DIR/node/containerd/config.toml"
    ctr_ready() { "$K8S_BIN/ctr" --address "$DIR/node/containerd/containerd.sock" version; }
    wait_for containerd "${PID[containerd]}" "$START_TIMEOUT" ctr_ready
    node_import_images
    ready containerd "${PID[containerd]}" "$DIR/node/containerd/containerd.sock ($(wc -l <"$DIR/node/images") images)" "$((SECONDS - t))s"

    t=$SECONDS
    start kubelet env PATH="$K8S_BIN:$PATH" "$K8S_BIN/kubelet" \
        --config="$DIR/node/kubelet.yaml" --kubeconfig="$DIR/kubeconfig-kubelet" \
        --root-dir="$DIR/node/kubelet" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
        --pod-infra-container-image="$PAUSE_IMAGE" --v=1
    node_ready() {
        [[ $(KUBECONFIG=$DIR/kubeconfig "$K8S_BIN/kubectl" get node "$NODE_NAME" \
            -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
    }
    wait_for kubelet "${PID[kubelet]}" "$START_TIMEOUT" node_ready
    ready kubelet "${PID[kubelet]}" "https://$NODE_IP:$KUBELET_PORT (node $NODE_NAME Ready)" "$((SECONDS - t))s"

    t=$SECONDS
    start kube-proxy "$K8S_BIN/kube-proxy" --config="$DIR/node/kube-proxy.yaml"
    proxy_ready() {
        curl -sf --max-time 3 "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz" >/dev/null \
            && iptables-save -t nat | grep -q 'default/kubernetes:https'
    }
    wait_for kube-proxy "${PID[kube-proxy]}" "$START_TIMEOUT" proxy_ready
    ready kube-proxy "${PID[kube-proxy]}" "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz" "$((SECONDS - t))s"

    t=$SECONDS
    start coredns "$K8S_BIN/coredns" -conf "$DIR/node/Corefile"
    dns_ready() {
        curl -sf --max-time 3 "http://127.0.0.1:$DNS_READY_PORT/ready" >/dev/null \
            && [[ $(python3 "$K8S_SCRIPTS/dns-query" "$NODE_IP" kubernetes.default.svc.cluster.local) == "$SERVICE_IP" ]]
    }
    wait_for coredns "${PID[coredns]}" "$START_TIMEOUT" dns_ready
    ready coredns "${PID[coredns]}" "$NODE_IP:53 (kubernetes.default resolves)" "$((SECONDS - t))s"

    t=$SECONDS
    node_storage || fail "creating the local PersistentVolumes"
    ready storage - "StorageClass sluice-local, ${SLUICE_K8S_PVS:-32} local PVs" "$((SECONDS - t))s"
}

# Stops the node of DIR and removes everything it made; non-zero when something is left.
node_down() { # DIR
    local dir=$1 left=()
    [[ -d $dir/node ]] || return 0
    # Pods first, through kubelet, so their network is torn down by the CNI plugins.
    if [[ -f $dir/kubeconfig ]]; then
        KUBECONFIG=$dir/kubeconfig timeout 30 "$K8S_BIN/kubectl" delete pods --all -A --grace-period=0 --force \
            --wait=true --timeout=20s >/dev/null 2>&1 || true
    fi
    local name
    for name in coredns kube-proxy kubelet; do
        stop_named "$name"
    done
    node_kill_pods
    stop_named containerd
    stop_named kube-scheduler
    node_unmount_under "$dir"
    node_remove_host_state
    node_restore_sysctls "$dir"

    # Prove it.
    pgrep -f "containerd-shim-runc-v2 .*-namespace k8s.io" >/dev/null && left+=("containerd shims")
    findmnt -rn -o TARGET | grep -qF "$dir/" && left+=("mounts under $dir")
    ip link show "$POD_BRIDGE" >/dev/null 2>&1 && left+=("link $POD_BRIDGE")
    ip addr show dev lo | grep -qF " $NODE_IP/" && left+=("address $NODE_IP")
    ip route show "$SERVICE_CIDR" | grep -q . && left+=("route $SERVICE_CIDR")
    iptables-save 2>/dev/null | grep -qE 'KUBE-|CNI-|sluice-k8s' && left+=("netfilter rules")
    compgen -G "/run/netns/cni-*" >/dev/null && left+=("network namespaces")
    [[ -d /sys/fs/cgroup/pids/kubepods ]] && left+=("cgroups")
    if ((${#left[@]})); then
        log "left behind: ${left[*]}"
        return 1
    fi
    log "node removed: no pod, mount, link, rule, namespace or cgroup left"
}
