#!/usr/bin/env python3
"""Runs manifests/argocd/health.lua on every case of manifests/argocd/health_test.yaml (Argo CD's
own test layout) with Lua 5.1, the version Argo CD embeds, and checks status and message.

Exit 0 when every case matches, 1 on a mismatch, 77 (ctest: skipped) when lua5.1 is missing and
CI is not set (under CI=true a missing lua5.1 is a failure)."""
import json
import os
import shutil
import subprocess
import sys

import yaml

ROOT = os.environ.get("BERTH_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
ARGOCD = os.path.join(ROOT, "manifests", "argocd")


def lua_literal(value):
    """A Lua table constructor for a decoded YAML value (the shape Argo CD hands the script)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid Lua escapes for these inputs
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{json.dumps(str(k))}] = {lua_literal(v)}"
                               for k, v in value.items()) + "}"
    if hasattr(value, "isoformat"):  # YAML timestamps arrive as strings in Argo CD
        return json.dumps(value.isoformat().replace("+00:00", "Z"))
    raise TypeError(f"cannot express {type(value).__name__} in Lua")


def run_case(lua, script, obj):
    program = (f"obj = {lua_literal(obj)}\n"
               f"local hs = dofile({json.dumps(script)})\n"
               "io.write(tostring(hs.status), '\\n', tostring(hs.message))\n")
    out = subprocess.run([lua, "-"], input=program, capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        return None, out.stderr.strip()
    status, _, message = out.stdout.partition("\n")
    return status, message


def main():
    lua = shutil.which("lua5.1")
    if lua is None:
        ci = os.environ.get("CI", "").lower() in ("true", "1")
        print("argocd_health_test: lua5.1 not found (apt install lua5.1)", file=sys.stderr)
        return 1 if ci else 77
    script = os.path.join(ARGOCD, "health.lua")
    with open(os.path.join(ARGOCD, "health_test.yaml")) as f:
        cases = yaml.safe_load(f)["tests"]
    if not cases:
        print("argocd_health_test: health_test.yaml has no tests", file=sys.stderr)
        return 1
    failures = 0
    for case in cases:
        with open(os.path.join(ARGOCD, case["inputPath"])) as f:
            obj = yaml.safe_load(f)
        want = case["healthStatus"]
        status, message = run_case(lua, script, obj)
        if status != want["status"] or message != want.get("message", message):
            failures += 1
            print(f"FAIL {case['inputPath']}: got {status!r} {message!r}, "
                  f"want {want['status']!r} {want.get('message')!r}")
        else:
            print(f"ok   {case['inputPath']}: {status}")
    print(f"argocd_health_test: {len(cases) - failures}/{len(cases)} cases match")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
