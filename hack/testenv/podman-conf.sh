#!/usr/bin/env bash
# Writes a podman configuration that works in this sandbox without touching /etc:
#   podman-conf.sh DIR
# DIR/containers.conf (runc, cgroupfs, no default ulimits: crun and the default RLIMIT_NOFILE
# fail here) and DIR/storage.conf (vfs, graphroot and runroot inside DIR, so every image and
# container lives under DIR and `rm -rf DIR` after `podman rm -af` forgets them). Prints the two
# export lines to eval. Safe to run twice.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: podman-conf.sh DIR" >&2; exit 2; }
mkdir -p "$1"
dir="$(cd "$1" && pwd)"
mkdir -p "$dir/storage" "$dir/run"
cat >"$dir/containers.conf" <<CONF
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat >"$dir/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$dir/storage"
runroot = "$dir/run"
CONF
echo "export CONTAINERS_CONF=$dir/containers.conf"
echo "export CONTAINERS_STORAGE_CONF=$dir/storage.conf"
