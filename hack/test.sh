#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test suite: the release build (unit, integration
# and end-to-end suites) and the sanitize build (ASan + UBSan; unit and integration suites).
# Exits non-zero on any failure.
#   BERTH_SKIP_SANITIZE=1  skip the sanitize build (local iteration only; CI runs it)
#   BERTH_SKIP_FUZZ=1  skip the fuzz phase (hack/fuzz.sh; BERTH_FUZZ_SECONDS per target, 15)
#   BERTH_CTEST_ARGS="-L unit"  extra ctest arguments (e.g. run one label)
#   CI=true  a test skipped because a peer (podman, the registry, skopeo) is missing fails the run:
#            the tests themselves fail under CI=true (tests/support/skip.h), and this script also
#            fails on any test ctest reports as Skipped. See docs/testing.md.
# Budget: CI runs this in under 45 minutes on 2 cores; keep -j2 for builds and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

ci=0
case "${CI:-}" in true|TRUE|True|1) ci=1 ;; esac
ctest_log="$(mktemp /tmp/berth-ctest.XXXXXX)"

# run_ctest DIR ARGS...: ctest with its output kept; under CI a skipped test is a failure.
run_ctest() {
  local dir="$1" rc=0
  shift
  ctest --test-dir "$dir" "$@" 2>&1 | tee "$ctest_log" || rc=$?
  if [ "$ci" = 1 ] && grep -q '(Skipped)' "$ctest_log"; then
    echo "test.sh: CI=true, and these tests were skipped instead of run (a peer is missing):" >&2
    grep '(Skipped)' "$ctest_log" >&2
    rc=1
  fi
  return "$rc"
}

# phase NAME CMD...: runs CMD and records its wall time for the summary printed at the end, so
# that CI logs show where the time goes. Returns CMD's status.
phase_names=()
phase_secs=()
phase() {
  local name="$1" start rc=0
  shift
  start=$SECONDS
  "$@" || rc=$?
  phase_names+=("$name")
  phase_secs+=($((SECONDS - start)))
  return "$rc"
}
print_phases() {
  local i
  echo "test.sh: wall time per phase"
  for i in "${!phase_names[@]}"; do
    printf 'test.sh:   %-20s %5d s (%d min)\n' "${phase_names[$i]}" "${phase_secs[$i]}" \
      $((phase_secs[i] / 60))
  done
  printf 'test.sh:   %-20s %5d s (%d min)\n' total "$SECONDS" $((SECONDS / 60))
}
trap 'rm -f "$ctest_log"; print_phases' EXIT

phase install-deps hack/install-deps.sh
phase "build release" hack/build.sh release

status=0
ctest_args=(--output-on-failure --timeout 600 -j "${BERTH_TEST_JOBS:-2}")
# shellcheck disable=SC2206
extra=(${BERTH_CTEST_ARGS:-})

echo "test.sh: release suites"
phase "release suites" run_ctest build "${ctest_args[@]}" "${extra[@]}" || status=1

if [ "${BERTH_SKIP_SANITIZE:-0}" != "1" ]; then
  phase "build sanitize" hack/build.sh sanitize
  echo "test.sh: sanitize suites (ASan + UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    phase "sanitize suites" run_ctest build-sanitize "${ctest_args[@]}" -LE e2e "${extra[@]}" ||
    status=1
fi

if [ "${BERTH_SKIP_FUZZ:-0}" != "1" ]; then
  # libFuzzer targets (tests/fuzz, clang): a bounded run of each from its corpus.
  echo "test.sh: fuzz targets (libFuzzer, ${BERTH_FUZZ_SECONDS:-15} s each)"
  phase "fuzz targets" hack/fuzz.sh "${BERTH_FUZZ_SECONDS:-15}" || status=1
fi

if [ "$status" -ne 0 ]; then
  echo "test.sh: FAILED" >&2
else
  echo "test.sh: all suites passed"
fi
exit "$status"
