#!/usr/bin/env bash
# Counts the CPU instructions a cold compile of some files costs, which, unlike seconds, does not
# depend on how loaded the machine is (docs/testing.md "CI time").
# Usage: hack/compile-cost.sh BUILD_DIR FILE... > costs.csv
#   BUILD_DIR  a configured tree (its compile_commands.json gives each file's command)
#   FILE       a source path as in compile_commands.json, relative to the source tree
#   COST_SED   optional sed expression applied to each command (e.g. 's/ -O2 / -O0 /')
#   COST_JOBS  files compiled at once (default 2)
# Prints "file,instructions" a line; ccache is off (CCACHE_DISABLE=1) and objects are written
# to a temporary folder, so the tree's own objects are untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "$1")
shift
out=$(mktemp -d /tmp/berth-cost.XXXXXX)
trap 'rm -rf "$out"' EXIT

python3 - "$build/compile_commands.json" "$PWD" "$out" "$@" <<'EOF' >"$out/jobs"
import json, shlex, sys
db, src, out, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
by_file = {e["file"]: e for e in json.load(open(db))}
for n, f in enumerate(files):
    e = by_file.get(f"{src}/{f}")
    if e is None:
        sys.exit(f"compile-cost: {f} is not in {db}")
    args = shlex.split(e["command"])
    args[args.index("-o") + 1] = f"{out}/{n}.o"
    print(f"{f}\t{e['directory']}\t{shlex.join(args)}")
EOF

# One file: its command under perf, which counts the compiler's children (cc1plus) too.
cost_one() {
  local file="$1" dir="$2" cmd="$3" stat
  if [ -n "${COST_SED:-}" ]; then cmd=$(sed -e "$COST_SED" <<<"$cmd"); fi
  stat=$(mktemp "$out/stat.XXXXXX")
  (cd "$dir" && CCACHE_DISABLE=1 perf stat -e instructions -x, -o "$stat" -- sh -c "$cmd") >&2
  echo "$file,$(awk -F, '$3 ~ /instructions/ {print $1}' "$stat")"
}
export -f cost_one
export out
tr '\t' '\037' <"$out/jobs" |
  xargs -d '\n' -P "${COST_JOBS:-2}" -I{} bash -c 'IFS=$'"'"'\037'"'"' read -r f d c <<<"$1"; cost_one "$f" "$d" "$c"' _ {}
