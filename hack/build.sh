#!/usr/bin/env bash
# Configures and builds berth. Usage: hack/build.sh [release|sanitize]
#   release  (default) -> build/           binaries in build/bin/
#   sanitize           -> build-sanitize/  ASan + UBSan
set -euo pipefail
cd "$(dirname "$0")/.."

flavor=${1:-release}
case "$flavor" in
  release) dir=build; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  sanitize) dir=build-sanitize; args=(-DCMAKE_BUILD_TYPE=Debug -DBERTH_SANITIZE=ON) ;;
  *) echo "usage: hack/build.sh [release|sanitize]" >&2; exit 2 ;;
esac

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
# Configure once. Afterwards `cmake --build` re-runs CMake by itself when a CMakeLists.txt, an
# included .cmake file or a CONFIGURE_DEPENDS glob changed, and only then: configuring again on
# every call would redo the checks and touch generated files for nothing. A configure that failed
# half-way leaves a cache but no build file: configure again then.
if [ ! -f "$dir/CMakeCache.txt" ] || { [ ! -f "$dir/build.ninja" ] && [ ! -f "$dir/Makefile" ]; }; then
  cmake -S . -B "$dir" "${generator[@]}" "${args[@]}"
fi
cmake --build "$dir" -j "${BERTH_JOBS:-2}"
echo "build.sh: $flavor build in $dir/ (binaries in $dir/bin/)"
