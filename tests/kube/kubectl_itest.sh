#!/usr/bin/env bash
# Proves the test API server with a client the project did not write: kubectl 1.32 installs the
# CRD and the samples, prints the AppService printer columns, patches spec and status, is refused
# by the schema and the CEL immutability rule, deletes through a finalizer, watches, discovers,
# explains, applies server-side, and renders the kustomize base.
#
# Exit 0 when every step behaves like a real cluster, 1 on the first step that does not (its
# command and output are printed), 77 (ctest: skipped) when kubectl or python3 is missing and CI
# is not set; under CI=true a missing tool is a failure.
set -euo pipefail

ROOT="${BERTH_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
PYTHON="${PYTHON:-python3}"

missing() {
  echo "SKIP: $1" >&2
  if [[ "${CI:-}" == "true" ]]; then exit 1; fi
  exit 77
}
command -v kubectl >/dev/null || missing "kubectl is not installed (see docs/kubernetes.md)"
command -v "$PYTHON" >/dev/null || missing "python3 is not installed"
"$PYTHON" -c 'import yaml' 2>/dev/null || missing "python3-yaml is not installed"

WORK="$(mktemp -d)"
SERVER_PID=""
WATCH_PID=""
cleanup() {
  if [[ -n "$WATCH_PID" ]]; then kill "$WATCH_PID" 2>/dev/null || true; fi
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

exec 3>&2  # the test's stderr, also from inside commands whose output is captured
fail() {
  {
    echo "FAIL: $1"
    if [[ -f "$WORK/out" ]]; then sed 's/^/  | /' "$WORK/out"; fi
    echo "--- server log (last 40 lines)"
    tail -n 40 "$WORK/server.log" || true
  } >&3
  exit 1
}

# run DESC CMD...: the command must succeed; its output (stdout+stderr) is left in $WORK/out.
run() {
  local desc="$1"; shift
  echo "== $desc: $*"
  "$@" >"$WORK/out" 2>&1 || fail "$desc (exit $?)"
}
# refused DESC CMD...: the command must fail.
refused() {
  local desc="$1"; shift
  echo "== $desc: $*"
  if "$@" >"$WORK/out" 2>&1; then fail "$desc: succeeded but must be refused"; fi
}
# has TEXT...: every TEXT occurs in the last output.
has() {
  local t
  for t in "$@"; do
    grep -qF -- "$t" "$WORK/out" || fail "expected output to contain: $t"
  done
}
# eventually DESC CMD...: retries CMD until it succeeds, for at most 30 seconds (a state to
# reach, e.g. a watch line arriving; not a timing assertion).
eventually() {
  local desc="$1"; shift
  local deadline=$((SECONDS + 30))
  until "$@" >"$WORK/out" 2>&1; do
    ((SECONDS < deadline)) || fail "$desc: not reached within 30s"
    sleep 0.2
  done
}

# --- the server ----------------------------------------------------------------------------------
"$PYTHON" "$ROOT/hack/testenv/kubeapi" --dir "$WORK/server" --port 0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
server_ready() {
  [[ -s "$WORK/server/ready.json" ]] && return 0
  kill -0 "$SERVER_PID" 2>/dev/null || fail "the test API server exited before it was ready"
  return 1
}
eventually "the test API server writes ready.json" server_ready
export KUBECONFIG="$WORK/server/kubeconfig"
# A cache of its own: discovery and OpenAPI documents from an earlier run never leak in.
K=(kubectl --context berth-test --request-timeout=20s --cache-dir "$WORK/cache")

run "the server answers" "${K[@]}" version
has "Server Version: v1.32"

# --- the CRD -------------------------------------------------------------------------------------
run "apply the CRD" "${K[@]}" apply -f "$ROOT/crds/"
has "customresourcedefinition.apiextensions.k8s.io/appservices.berth.dev created"
run "the CRD becomes Established" "${K[@]}" wait --for condition=Established --timeout=30s \
  crd/appservices.berth.dev
run "get crd prints the default table convertor's columns" "${K[@]}" get crd
head -n1 "$WORK/out" | grep -Eq '^NAME +CREATED AT$' || fail "get crd: header is not NAME CREATED AT"
grep -Eq '^appservices\.berth\.dev +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' "$WORK/out" ||
  fail "get crd: no row for appservices.berth.dev with its creation timestamp"
run "api-resources lists AppService" "${K[@]}" api-resources --api-group=berth.dev
grep -Eq '^appservices +appsvc +berth.dev/v1alpha1 +true +AppService' "$WORK/out" ||
  fail "api-resources: no appservices row with short name, group version, namespaced, kind"
run "the category berth finds AppServices" "${K[@]}" get berth -n default
has "No resources found"

# --- the samples ---------------------------------------------------------------------------------
run "apply the valid samples" "${K[@]}" apply -f "$ROOT/manifests/samples/"
has "secret/ghcr-deploy-token created" "appservice.berth.dev/billing created" \
  "appservice.berth.dev/hello created"
refused "the invalid sample is refused" "${K[@]}" apply -f "$ROOT/manifests/samples/invalid/"
has 'The AppService "broken" is invalid' \
  "spec.containerPort: Invalid value: 70000: spec.containerPort in body should be less than or equal to 65535" \
  'spec: Invalid value: "object": registryUsername and registryPasswordSecretRef go together' \
  'spec.healthCheck: Invalid value: "object": timeoutSeconds must not exceed intervalSeconds'
refused "a field the schema does not declare is refused (kubectl validates strictly)" \
  "${K[@]}" apply -f - <<'EOF'
apiVersion: berth.dev/v1alpha1
kind: AppService
metadata: {name: typo, namespace: default}
spec: {imageRef: "docker.io/library/nginx:1.27", containerPort: 80, contianerPort: 81}
EOF
has 'AppService in version "v1alpha1" cannot be handled as a AppService: strict decoding error: unknown field "spec.contianerPort"'
run "apply is idempotent" "${K[@]}" apply -f "$ROOT/manifests/samples/"
has "appservice.berth.dev/hello unchanged"

# --- reading -------------------------------------------------------------------------------------
run "get shows the printer columns" "${K[@]}" get appservices -n default
head -n1 "$WORK/out" | grep -Eq '^NAME +IMAGE +REVISION +STATUS +READY +AGE$' ||
  fail "get appservices: header is not NAME IMAGE REVISION STATUS READY AGE"
grep -Eq '^hello +docker.io/library/nginx:1.27 +[0-9]+[smh][0-9smh]*$' "$WORK/out" ||
  fail "get appservices: no row for hello with empty status columns and an age in seconds"
run "get -o wide adds the priority-1 columns" "${K[@]}" get appsvc -n default -o wide
head -n1 "$WORK/out" | grep -Eq 'DIGEST +ENDPOINT' || fail "-o wide: no DIGEST and ENDPOINT"

run "get -o yaml shows the defaults" "${K[@]}" get appservice hello -n default -o yaml
has "imageRef: docker.io/library/nginx:1.27" "planName: tier-1" "intervalSeconds: 5" \
  "timeoutSeconds: 3" "healthyThreshold: 1" "generation: 1" "uid: " "resourceVersion: "
run "the private sample's secret ref got its default key" \
  "${K[@]}" get appservice billing -n default -o 'jsonpath={.spec.registryPasswordSecretRef.key}'
has "password"

# --- status ---------------------------------------------------------------------------------------
run "patch status through the subresource" "${K[@]}" patch appservice hello -n default \
  --subresource=status --type merge -p '{"status":{"phase":"Running","currentRevision":2,
  "observedGeneration":1,"endpoint":"10.0.0.7:80","conditions":[{"type":"Ready","status":"True",
  "lastTransitionTime":"2026-11-27T10:00:00Z","reason":"Running","message":"serving"}]}}'
run "get shows the status columns" "${K[@]}" get appservices -n default
grep -Eq '^hello +docker.io/library/nginx:1.27 +2 +Running +True +[0-9]+[smh][0-9smh]*$' "$WORK/out" ||
  fail "get appservices after the status patch: hello is not 2 Running True"
run "a status patch leaves generation alone" \
  "${K[@]}" get appservice hello -n default -o 'jsonpath={.metadata.generation}'
[[ "$(cat "$WORK/out")" == "1" ]] || fail "generation changed on a status patch"
refused "a status patch outside the schema is refused" "${K[@]}" patch appservice hello \
  -n default --subresource=status --type merge -p '{"status":{"phase":"Sleeping"}}'
has 'status.phase: Unsupported value: "Sleeping": supported values: "Pending", "Running"'
run "a spec change through the main resource does not touch status" \
  "${K[@]}" patch appservice hello -n default --type merge -p '{"status":{"phase":"Failed"}}'
run "status is unchanged" "${K[@]}" get appservice hello -n default -o 'jsonpath={.status.phase}'
[[ "$(cat "$WORK/out")" == "Running" ]] || fail "a patch of the main resource changed status"

# --- describe -------------------------------------------------------------------------------------
run "describe" "${K[@]}" describe appservice hello -n default
has "Name:" "hello" "Namespace:" "default" "API Version:  berth.dev/v1alpha1" \
  "Kind:         AppService" "Container Port:" "Image Ref:" "Current Revision:" "Phase:" "Running"

# --- spec changes and the CEL rule ------------------------------------------------------------------
WATCH_OUT="$WORK/watch.out"
"${K[@]}" get appservice hello -n default -w -o 'jsonpath={.spec.imageRef}{"\n"}' \
  >"$WATCH_OUT" 2>&1 &
WATCH_PID=$!
eventually "the watch prints the current object" grep -q "nginx:1.27" "$WATCH_OUT"

run "patch spec with a merge patch" "${K[@]}" patch appservice hello -n default --type merge \
  -p '{"spec":{"imageRef":"docker.io/library/nginx:1.28"}}'
has "appservice.berth.dev/hello patched"
run "a spec change bumps generation" \
  "${K[@]}" get appservice hello -n default -o 'jsonpath={.metadata.generation}'
[[ "$(cat "$WORK/out")" == "2" ]] || fail "generation is not 2 after a spec change"
eventually "get -w sees the update" grep -q "nginx:1.28" "$WATCH_OUT"
kill "$WATCH_PID" 2>/dev/null || true
wait "$WATCH_PID" 2>/dev/null || true
WATCH_PID=""

refused "changing containerPort is refused by the CEL rule" "${K[@]}" patch appservice hello \
  -n default --type merge -p '{"spec":{"containerPort":81}}'
has 'spec.containerPort: Invalid value: "integer": containerPort is immutable'
refused "a username without a secret ref is refused by the CEL rule" "${K[@]}" patch \
  appservice hello -n default --type merge -p '{"spec":{"registryUsername":"bot"}}'
has 'registryUsername and registryPasswordSecretRef go together'

# --- server-side apply ------------------------------------------------------------------------------
cat >"$WORK/ssa.yaml" <<'EOF'
apiVersion: berth.dev/v1alpha1
kind: AppService
metadata: {name: ssa, namespace: default}
spec: {imageRef: "docker.io/library/busybox:1.36", containerPort: 8080}
EOF
run "apply --server-side creates" "${K[@]}" apply --server-side -f "$WORK/ssa.yaml"
has "appservice.berth.dev/ssa serverside-applied"
sed -i 's/busybox:1.36/busybox:1.37/' "$WORK/ssa.yaml"
run "apply --server-side updates" "${K[@]}" apply --server-side -f "$WORK/ssa.yaml"
run "the applied change is stored" \
  "${K[@]}" get appservice ssa -n default -o 'jsonpath={.spec.imageRef}'
has "busybox:1.37"
run "the field manager is kubectl" "${K[@]}" get appservice ssa -n default --show-managed-fields \
  -o 'jsonpath={.metadata.managedFields[*].manager}'
has "kubectl"

# --- delete with a finalizer ------------------------------------------------------------------------
run "add a finalizer" "${K[@]}" patch appservice billing -n default --type merge \
  -p '{"metadata":{"finalizers":["berth.dev/cleanup"]}}'
run "delete returns at once" "${K[@]}" delete appservice billing -n default --wait=false
has 'appservice.berth.dev "billing" deleted'
run "the object stays, marked for deletion" \
  "${K[@]}" get appservice billing -n default -o 'jsonpath={.metadata.deletionTimestamp}'
[[ -n "$(cat "$WORK/out")" ]] || fail "no deletionTimestamp on an object with a finalizer"
run "removing the finalizer" "${K[@]}" patch appservice billing -n default --type json \
  -p '[{"op":"remove","path":"/metadata/finalizers"}]'
run "... lets it go" "${K[@]}" wait --for=delete appservice/billing -n default --timeout=30s
refused "it is gone" "${K[@]}" get appservice billing -n default
has 'appservices.berth.dev "billing" not found'

# --- explain ---------------------------------------------------------------------------------------
run "explain reads the schema from OpenAPI v3" "${K[@]}" explain appservice.spec
has "GROUP:      berth.dev" "KIND:       AppService" "VERSION:    v1alpha1" \
  "containerPort	<integer> -required-" "imageRef	<string> -required-" \
  "The port the container listens on. Immutable."
run "explain a nested field" "${K[@]}" explain appservice.spec.healthCheck.intervalSeconds
has "FIELD: intervalSeconds <integer>"

# --- kustomize -------------------------------------------------------------------------------------
run "kubectl kustomize renders the base" kubectl kustomize "$ROOT/manifests/"
has "kind: Deployment" "kind: ClusterRole" "namespace: berth-system" "kind: Service"

echo "PASS: kubectl against the test API server"
