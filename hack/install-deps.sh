#!/usr/bin/env bash
# Installs every Debian package berth's build, tests and end-to-end runs need. Idempotent:
# packages already present are not reinstalled, and apt is only touched when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-system1.81-dev libyaml-cpp-dev nlohmann-json3-dev libssl-dev
  libsqlitecpp-dev libsqlite3-dev sqlite3 catch2 libcli11-dev
  clang-14 clang-format clang-tidy libclang-rt-14-dev
  openssl ca-certificates curl python3 python3-cryptography
  podman runc netavark aardvark-dns iptables catatonit skopeo docker-registry apache2-utils busybox-static
  iproute2 procps wrk nginx-light linux-perf
  python3-kubernetes python3-yaml lua5.1 python3-prometheus-client
  faketime libfaketime
  chromium
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# kubectl is not in Debian's archive: Kubernetes-mode tests need it (a real client proving the test
# API server), so say how to get it rather than guess at a download.
check_kubectl() {
  if ! command -v kubectl >/dev/null 2>&1; then
    echo "install-deps: kubectl not found. Install kubectl 1.32 (https://kubernetes.io/docs/tasks/tools/)" \
      "and put it on PATH; Kubernetes-mode tests skip without it (and fail under CI=true)." >&2
  fi
}
trap check_kubectl EXIT

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
