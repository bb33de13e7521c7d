#!/usr/bin/env bash
# Builds and runs berth's benchmarks and prints their table: every figure with its ratio against
# a baseline measured in the same run, and a verdict per ratio. Never fails on a figure (a
# ratio outside its expected bound prints "CHECK"); fails only when the build or a benchmark
# breaks. docs/benchmarks.md explains the figures.
#
# Usage: hack/bench.sh [extra berth-bench-scale arguments, e.g. --services 20000]
# Environment: BERTH_JOBS (build parallelism, default 2); BERTH_BENCH_API_ARGS (extra
# berth-bench-api arguments, e.g. "--seconds 8 --rounds 5"); BERTH_BENCH_AGENTS_ARGS (extra
# berth-bench-agents arguments, e.g. "--services 2000"). The API benchmark needs wrk
# (Debian package `wrk`, installed by hack/install-deps.sh).
# Output is also written to build-bench/bench-results.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build-bench
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
# -O2: GCC 12 at -O3 reports a false -Wrestrict inside std::string in src/core (-Werror).
args=(-DCMAKE_BUILD_TYPE=Release -DBERTH_BENCH=ON -DBERTH_TESTS=OFF "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG")
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" "${generator[@]}" "${args[@]}" >/dev/null
else
  cmake -S . -B "$dir" "${args[@]}" >/dev/null
fi
cmake --build "$dir" -j "${BERTH_JOBS:-2}" --target berth-bench-micro berth-bench-scale berth-bench-api
# The real-protocol scale run (docs/benchmarks-scale.md) needs the controller binary beside it.
cmake --build "$dir" -j "${BERTH_JOBS:-2}" --target berth-bench-agents berth-controller

out="$dir/bench-results.txt"
{
  echo "berth benchmarks  $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "machine: $(. /etc/os-release && echo "$PRETTY_NAME"), $(nproc) cores, $(uname -m), load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$dir/bin/berth-bench-micro"
  "$dir/bin/berth-bench-scale" "$@"
  # shellcheck disable=SC2086 # word splitting of the extra arguments is intended
  "$dir/bin/berth-bench-api" ${BERTH_BENCH_API_ARGS:-}
  if [ -x "$dir/bin/berth-bench-agents" ]; then
    # shellcheck disable=SC2086 # word splitting of the extra arguments is intended
    "$dir/bin/berth-bench-agents" --tmpfs ${BERTH_BENCH_AGENTS_ARGS:-}
  fi
} | tee "$out"
echo
echo "bench.sh: results in $out"
