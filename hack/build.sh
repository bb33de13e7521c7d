#!/usr/bin/env bash
# Configures and builds berth. Usage: hack/build.sh [release|sanitize]
#   release  (default) -> build/           binaries in build/bin/
#   sanitize           -> build-sanitize/  ASan + UBSan
set -euo pipefail
cd "$(dirname "$0")/.."

flavor=${1:-release}
case "$flavor" in
  release) dir=build; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  # hack/test.sh runs no end-to-end suite and no benchmark on this build: build neither.
  sanitize) dir=build-sanitize; args=(-DCMAKE_BUILD_TYPE=Debug -DBERTH_SANITIZE=ON -DBERTH_E2E=OFF -DBERTH_BENCH=OFF) ;;
  *) echo "usage: hack/build.sh [release|sanitize]" >&2; exit 2 ;;
esac

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
# Configure once. Afterwards `cmake --build` re-runs CMake by itself when a CMakeLists.txt, an
# included .cmake file or a CONFIGURE_DEPENDS glob changed, and only then: configuring again on
# every call would redo the checks and touch generated files for nothing. A configure that failed
# half-way leaves a cache but no build file: configure again then.
# A cache made before an option of this flavour existed (BERTH_E2E) is configured again too.
configured() {
  [ -f "$dir/CMakeCache.txt" ] && { [ -f "$dir/build.ninja" ] || [ -f "$dir/Makefile" ]; } || return 1
  local a name value
  for a in "${args[@]}"; do
    name=${a#-D}; value=${name#*=}; name=${name%%=*}
    grep -Eq "^${name}:[A-Z]+=${value}\$" "$dir/CMakeCache.txt" || return 1
  done
}
if ! configured; then
  cmake -S . -B "$dir" "${generator[@]}" "${args[@]}"
fi
cmake --build "$dir" -j "${BERTH_JOBS:-2}"
echo "build.sh: $flavor build in $dir/ (binaries in $dir/bin/)"
