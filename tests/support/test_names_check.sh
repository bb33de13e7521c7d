#!/usr/bin/env bash
# ctest splits a discovered test's name at ';' (catch_discover_tests cannot escape it), and each
# half then runs a Catch filter that matches nothing and "passes" without running a line. This
# check fails when any TEST_CASE name of any suite in BERTH_BIN_DIR contains ';', naming it, so a
# test can never silently drop out of the run again.
set -euo pipefail
bin="${BERTH_BIN_DIR:?BERTH_BIN_DIR is not set}"
shopt -s nullglob
suites=("$bin"/berth_*_tests)
if [[ ${#suites[@]} -eq 0 ]]; then
  echo "no test suites in $bin" >&2
  exit 1
fi
bad=0
for suite in "${suites[@]}"; do
  while IFS= read -r name; do
    if [[ "$name" == *";"* ]]; then
      echo "$(basename "$suite"): test name contains ';' (ctest would not run it): $name" >&2
      bad=1
    fi
  done < <("$suite" --list-test-names-only)
done
[[ $bad -eq 0 ]] && echo "test names: none of ${#suites[@]} suites has a ';' in a test name"
exit $bad
