#!/usr/bin/env bash
# Builds and runs berth's benchmarks: every figure with its ratio against a baseline measured in
# the same run, and a verdict per ratio. Never fails on a figure (a ratio outside its expected
# bound prints "CHECK"); fails only when the build or a benchmark breaks. Writes the output to
# build-bench/bench-results.txt and, with --write-docs, into the results section of
# docs/benchmarks.md (machine, date, commit, load average). docs/benchmarks.md explains figures.
#
# Usage: hack/bench.sh [--write-docs] [extra berth-bench-scale arguments, e.g. --services 20000]
# Environment: BERTH_JOBS (build parallelism, default 2); BERTH_BENCH_API_ARGS (extra
# berth-bench-api arguments, e.g. "--seconds 8 --rounds 5"); BERTH_BENCH_AGENT_ARGS;
# BERTH_BENCH_AGENTS_ARGS (extra berth-bench-agents arguments, e.g. "--services 2000").
# Needs wrk and nginx-light (hack/install-deps.sh); the agent benchmark needs podman and the
# test registry's tools (docs/testing.md).
#
# Each benchmark is one executable (or script) run in turn; those another part of the tree adds
# (hack/bench-kube.sh) run when they exist.
set -euo pipefail
cd "$(dirname "$0")/.."

write_docs=0
if [ "${1:-}" = "--write-docs" ]; then write_docs=1; shift; fi

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
targets=(berth-bench-micro berth-bench-scale berth-bench-api berth-bench-sqlite berth-bench-agent)
# The real-protocol scale run (docs/benchmarks.md) needs the controller binary beside it.
[ -f bench/agents_bench.cpp ] && targets+=(berth-bench-agents berth-controller)
# Kubernetes mode (hack/bench-kube.sh runs it from the same tree, below).
[ -f bench/kube_bench.cpp ] && targets+=(berth-bench-kube berth-controller)
cmake --build "$dir" -j "${BERTH_JOBS:-2}" --target "${targets[@]}"

out="$dir/bench-results.txt"
{
  echo "berth benchmarks  $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "machine: $(. /etc/os-release && echo "$PRETTY_NAME"), $(nproc) cores, $(uname -m), load average at start $(cut -d' ' -f1-3 /proc/loadavg) (shared machine)"
  "$dir/bin/berth-bench-micro"
  "$dir/bin/berth-bench-scale" "$@"
  # shellcheck disable=SC2086 # word splitting of the extra arguments is intended
  "$dir/bin/berth-bench-api" ${BERTH_BENCH_API_ARGS:-}
  # shellcheck disable=SC2086
  "$dir/bin/berth-bench-agent" ${BERTH_BENCH_AGENT_ARGS:-}
  if [ -x "$dir/bin/berth-bench-agents" ]; then
    # shellcheck disable=SC2086 # word splitting of the extra arguments is intended
    "$dir/bin/berth-bench-agents" --tmpfs ${BERTH_BENCH_AGENTS_ARGS:-}
  fi
  # Its table is part of the results (and of --write-docs); exit 77 (no python3) skips it.
  if [ -x hack/bench-kube.sh ]; then
    BERTH_BENCH_DIR="$dir" hack/bench-kube.sh || { rc=$?; [ "$rc" = 77 ] || exit "$rc"; }
  fi
  echo
  echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
echo
echo "bench.sh: results in $out"

if [ "$write_docs" = 1 ]; then
  # Replaces everything between the two markers in docs/benchmarks.md with this run's output.
  python3 - "$out" docs/benchmarks.md <<'PY'
import sys
results, doc = sys.argv[1], sys.argv[2]
begin, end = "<!-- bench.sh results begin -->", "<!-- bench.sh results end -->"
text = open(doc).read()
if begin not in text or end not in text:
    sys.exit("bench.sh: docs/benchmarks.md has no results markers")
body = open(results).read().rstrip("\n")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(doc, "w").write(head + begin + "\n```\n" + body + "\n```\n" + end + tail)
PY
  echo "bench.sh: results written to docs/benchmarks.md"
fi
