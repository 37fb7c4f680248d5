# shellcheck shell=bash disable=SC2034
# Shared by scripts/images/build and e2e/images: sourced, not run.

# What `podman run` needs on this kind of machine: crun cannot create containers here, and the
# default rlimits podman asks for exceed the sandbox's hard limits.
PODMAN_RUN_FLAGS=(--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=4096:4096)

# Installs podman and buildah from Debian when either is missing (apt-get update only then).
images_install_tools() {
  command -v podman >/dev/null && command -v buildah >/dev/null && command -v runc >/dev/null && return 0
  echo "[images] installing podman, buildah and runc (apt-get)" >&2
  local apt=(apt-get)
  [[ $(id -u) -eq 0 ]] || apt=(sudo apt-get)
  "${apt[@]}" update -qq >/dev/null \
    && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq podman buildah runc >/dev/null
}

# The [workspace.package] version from the root Cargo.toml.
workspace_version() {
  awk '/^\[workspace.package\]/ { in_pkg = 1; next }
       /^\[/ { in_pkg = 0 }
       in_pkg && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.toml"
}

# Bytes to megabytes (10^6, as registries and `podman images` count them), one decimal.
bc_mb() {
  awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000000 }'
}
