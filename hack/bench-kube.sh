#!/usr/bin/env bash
# The Kubernetes-mode benchmark (docs/benchmarks.md, "Kubernetes mode"): berth-bench-kube with
# 1,000 AppServices on the test API server (hack/testenv/kubeapi) and simulated agents, each
# figure beside a bare controller on a fresh test API server in the same run. hack/bench.sh
# runs it after the other benchmarks when this file is executable, and its output is part of
# what `hack/bench.sh --write-docs` writes into docs/benchmarks.md.
#
# Usage: hack/bench-kube.sh [berth-bench-kube arguments, e.g. --apps 2000 --agents 20]
# Environment: BERTH_BENCH_DIR (the build tree, default build-bench; built here when the
# executable is missing), BERTH_JOBS (build parallelism, default 2), BERTH_BENCH_KUBE_ARGS (extra
# arguments, after the command line's).
# Needs python3 (the test API server); exits 77 when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v python3 >/dev/null 2>&1; then
  echo "bench-kube.sh: skipped: python3 (the test API server) is missing" >&2
  exit 77
fi

dir=${BERTH_BENCH_DIR:-build-bench}
if [ ! -x "$dir/bin/berth-bench-kube" ] || [ ! -x "$dir/bin/berth-controller" ]; then
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    generator=()
    if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
    cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DBERTH_BENCH=ON \
      -DBERTH_TESTS=OFF "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" >/dev/null
  fi
  cmake --build "$dir" -j "${BERTH_JOBS:-2}" --target berth-bench-kube berth-controller >&2
fi

# The test API server is found through BERTH_SOURCE_DIR (tests/support/testenv.cpp).
export BERTH_SOURCE_DIR="$PWD"
# shellcheck disable=SC2086 # word splitting of the extra arguments is intended
exec "$dir/bin/berth-bench-kube" "$@" ${BERTH_BENCH_KUBE_ARGS:-}
