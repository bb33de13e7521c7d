#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/, cmake/BerthFuzz.cmake) with clang 14 in build-fuzz/
# and runs each for a bounded time from its seed corpus, two at a time. Prints the executions
# per target (libFuzzer's stat::number_of_executed_units) and exits non-zero when any target
# crashed, leaked, hit a sanitizer report or broke a contract it checks; the input that did it
# is kept in build-fuzz/crashes/.
#   hack/fuzz.sh [SECONDS_PER_TARGET]   default 15 (what CI runs, hack/test.sh)
#   BERTH_FUZZ_TARGETS="image_ref manifest"  run only these
#   BERTH_FUZZ_JOBS=2                   targets run at once (each is one process)
# New inputs a run finds go to build-fuzz/corpus/<target>/, not into the tree: add one to
# tests/fuzz/corpus/<target>/ by hand when it is worth keeping (every crash is).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-15}"
build=build-fuzz
jobs="${BERTH_FUZZ_JOBS:-2}"
cxx="$(command -v clang++-14 || command -v clang++ || true)"
if [ -z "$cxx" ]; then
  echo "fuzz.sh: clang++-14 not found (hack/install-deps.sh installs clang-14)" >&2
  exit 1
fi

cmake -S . -B "$build" -G Ninja -DBERTH_FUZZ=ON -DBERTH_TESTS=OFF -DBERTH_E2E=OFF \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" >/dev/null
cmake --build "$build" -j2 --target berth_fuzz_all

targets="${BERTH_FUZZ_TARGETS:-$(cd tests/fuzz && ls -1 *.cpp | sed -n 's/\.cpp$//p' |
  grep -v -x -e replay_main)}"
mkdir -p "$build/crashes" "$build/logs"

# run_target NAME: one bounded libFuzzer run; its output goes to build-fuzz/logs/NAME.log.
run_target() {
  local name="$1" work="$build/corpus/$1" dict=()
  mkdir -p "$work"
  if [ -f "tests/fuzz/$name.dict" ]; then dict=("-dict=tests/fuzz/$name.dict"); fi
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/bin/berth_fuzz_$name" "$work" "tests/fuzz/corpus/$name" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/crashes/$name-" >"$build/logs/$name.log" 2>&1
}

declare -A pids=()
failed=()
running=0
finish_one() {
  local name
  for name in "${!pids[@]}"; do
    if ! kill -0 "${pids[$name]}" 2>/dev/null; then
      if ! wait "${pids[$name]}"; then failed+=("$name"); fi
      unset "pids[$name]"
      running=$((running - 1))
      return
    fi
  done
  sleep 0.2
}
for name in $targets; do
  while [ "$running" -ge "$jobs" ]; do finish_one; done
  run_target "$name" &
  pids[$name]=$!
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do finish_one; done

printf '%-20s %14s %10s  %s\n' target executions "exec/s" result
for name in $targets; do
  log="$build/logs/$name.log"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  result=ok
  for f in "${failed[@]}"; do [ "$f" = "$name" ] && result="FAILED (see $log)"; done
  printf '%-20s %14s %10s  %s\n' "$name" "${execs:-?}" "${rate:-?}" "$result"
done
if [ "${#failed[@]}" -ne 0 ]; then
  for name in "${failed[@]}"; do
    echo "fuzz.sh: $name failed; the end of its log:" >&2
    tail -40 "$build/logs/$name.log" >&2
  done
  echo "fuzz.sh: FAILED (${failed[*]}); inputs in $build/crashes/" >&2
  exit 1
fi
echo "fuzz.sh: all targets ran ${seconds}s without a crash"
