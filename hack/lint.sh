#!/usr/bin/env bash
# clang-tidy (the checks in .clang-tidy) over the project's sources, using the release build's
# compile_commands.json. Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "${BERTH_LINT_BUILD:-build}/compile_commands.json" ] || hack/build.sh release >/dev/null
mapfile -t files < <(git ls-files 'src/*.cpp' 'controller/*.cpp' 'agent/*.cpp' 'plugin/*.cpp')
jobs=${BERTH_JOBS:-2}
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -n 4 clang-tidy -p "${BERTH_LINT_BUILD:-build}" --quiet --warnings-as-errors='*' 2>/dev/null
echo "lint.sh: clang-tidy clean on ${#files[@]} files"
