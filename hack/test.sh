#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test suite: the release build (unit, integration
# and end-to-end suites) and the sanitize build (ASan + UBSan; unit and integration suites).
# Exits non-zero on any failure.
#   BERTH_SKIP_SANITIZE=1  skip the sanitize build (local iteration only; CI runs it)
#   BERTH_CTEST_ARGS="-L unit"  extra ctest arguments (e.g. run one label)
set -euo pipefail
cd "$(dirname "$0")/.."

hack/install-deps.sh
hack/build.sh release

status=0
ctest_args=(--output-on-failure --timeout 600 -j "${BERTH_TEST_JOBS:-2}")
# shellcheck disable=SC2206
extra=(${BERTH_CTEST_ARGS:-})

echo "test.sh: release suites"
ctest --test-dir build "${ctest_args[@]}" "${extra[@]}" || status=1

if [ "${BERTH_SKIP_SANITIZE:-0}" != "1" ]; then
  hack/build.sh sanitize
  echo "test.sh: sanitize suites (ASan + UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-sanitize "${ctest_args[@]}" -LE e2e "${extra[@]}" || status=1
fi

if [ "$status" -ne 0 ]; then
  echo "test.sh: FAILED" >&2
else
  echo "test.sh: all suites passed"
fi
exit "$status"
