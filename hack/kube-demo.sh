#!/usr/bin/env bash
# berth in Kubernetes mode on one machine, without a cluster:
#   - starts the project's TEST API server (hack/testenv/kubeapi, a Python program that serves the
#     Kubernetes API for tests; it is not a real kube-apiserver and there are no nodes);
#   - starts a private registry on loopback (htpasswd + TLS) holding a sample image in two
#     versions, and a podman configuration under the demo directory;
#   - installs the CRD with kubectl, runs `berth-controller serve --kubernetes` with a local agent;
#   - walks the story with real kubectl commands, printing each one before it runs: a private
#     AppService and its Secret -> v1 served; imageRef v2 -> v2 served; a new username without a
#     new password -> refused (CredentialsResolved=False, PasswordRequired), v2 still served;
#     revert -> v1 served from revision 1's digest; delete -> the container is removed first.
# Then it keeps everything running until Ctrl-C (or stops at once with --exit) and cleans up.
# Exit status with --exit: 0 only when every step behaved, 1 otherwise, 77 when a tool it needs
# is missing (a failure under CI=true).
#
# The registry password stays off command lines: it lives in a 0600 file and reaches the Secret
# through `kubectl create secret --from-file`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

usage() {
  cat <<'USAGE'
Usage: hack/kube-demo.sh [--exit] [-h|--help]

Runs berth in Kubernetes mode against the project's test API server (NOT a real cluster), a
private registry and podman on this machine, and walks the AppService story with kubectl.

Options:
  --exit       stop everything and exit once the story is done (0 only if every step behaved)
  -h, --help   print this help

Environment:
  BERTH_BIN_DIR    built binaries (default build/bin; build with hack/build.sh)
  BERTH_DEMO_DIR   working directory (default: a fresh temp dir, removed at exit)
  BERTH_DEMO_LOG_LEVEL  berth's log level (default info)
USAGE
}

exit_after=0
for arg in "$@"; do
  case "$arg" in
    --exit) exit_after=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "kube-demo.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

# Colours only on a terminal (CI logs get plain text).
if [ -t 1 ]; then bold=$'\033[1m' cyan=$'\033[36m' plain=$'\033[0m'; else bold="" cyan="" plain=""; fi
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
die() { echo "kube-demo.sh: FAILED: $*" >&2; exit 1; }
missing() {
  echo "kube-demo.sh: SKIP: $1" >&2
  if [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; then exit 1; fi
  exit 77
}
for tool in kubectl podman docker-registry skopeo htpasswd openssl curl /usr/bin/python3; do
  command -v "$tool" >/dev/null || missing "$tool is not installed (hack/install-deps.sh)"
done
/usr/bin/python3 -c 'import yaml, cryptography' 2>/dev/null ||
  missing "python3-yaml and python3-cryptography are needed by the test API server"

bin="${BERTH_BIN_DIR:-$repo/build/bin}"
[ -x "$bin/berth-controller" ] || die "$bin/berth-controller not found: build first (hack/build.sh)"

if [ -n "${BERTH_DEMO_DIR:-}" ]; then
  work="$BERTH_DEMO_DIR"
  mkdir -p "$work"
  remove_work=0
else
  work="$(mktemp -d /tmp/berth-kube-demo.XXXXXX)"
  remove_work=1
fi
chmod 700 "$work"

# show CMD...: prints the command as a user would type it (arguments with spaces or quotes in
# single quotes).
show() {
  local out="" a
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then out+=" $a"; else out+=" '${a//\'/\'\\\'\'}'"; fi
  done
  printf '%s$%s%s\n' "$cyan" "$out" "$plain"
}
# run CMD...: print, then run; the step fails when the command does.
run() { show "$@"; "$@" || die "command failed (exit $?): $*"; }

pids=()
cleanup() {
  set +e
  say "cleaning up"
  # The controller's children (its local agent) by parent pid, in case it has to be SIGKILLed.
  local children=()
  if [ -n "${controller:-}" ]; then mapfile -t children < <(pgrep -P "$controller" 2>/dev/null); fi
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}" "${children[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  if [ -n "${CONTAINERS_CONF:-}" ]; then
    podman ps -a --filter label=berth.service --format '{{.ID}}' 2>/dev/null |
      xargs -r podman rm -f -t 0 >/dev/null 2>&1
  fi
  hack/testenv/registry.sh stop "$work/registry" >/dev/null 2>&1
  if [ "$remove_work" = 1 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "NOTE: the API server in this demo is berth's own TEST API server (hack/testenv/kubeapi),"
echo "    a Python program that implements the Kubernetes API for berth's tests. It is not a real"
echo "    kube-apiserver and there is no cluster: no nodes, no kubelet. kubectl is the real kubectl."

say "podman configuration in $work/containers"
eval "$(hack/testenv/podman-conf.sh "$work/containers")"

say "private registry (htpasswd + TLS) on loopback with the sample image v1 and v2"
hack/testenv/registry.sh start "$work/registry" >/dev/null
# shellcheck disable=SC1091
. "$work/registry/env"
hack/testenv/registry.sh authfile "$work/registry" "$work/push-auth.json"
hack/testenv/sample-image.sh "$REGISTRY_HOST" "$work/push-auth.json" "$REGISTRY_CA_DIR" berth/sample ||
  { echo "kube-demo.sh: the sample images could not be pushed to the registry (above). Run hack/kube-demo.sh again." >&2; exit 1; }
image="$REGISTRY_HOST/berth/sample"
echo "registry: $REGISTRY_HOST, user $REGISTRY_USER, password in $REGISTRY_PASSWORD_FILE"

say "the test API server"
/usr/bin/python3 hack/testenv/kubeapi --dir "$work/apiserver" --port 0 \
  --log "$work/apiserver-errors.log" >>"$work/apiserver.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
  [ -s "$work/apiserver/ready.json" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || die "the test API server exited; see $work/apiserver.log"
  sleep 0.2
done
[ -s "$work/apiserver/ready.json" ] || die "the test API server did not start within 30 s"
export KUBECONFIG="$work/apiserver/kubeconfig"
export PATH="$bin:$PATH"  # kubectl finds the kubectl-berth plugin there
echo "KUBECONFIG=$KUBECONFIG"
run kubectl version

say "install the AppService CRD"
run kubectl apply -f crds/
run kubectl wait --for condition=Established --timeout=30s crd/appservices.berth.dev

say "start berth in Kubernetes mode (local agent; logs in $work/berth.log)"
agent_port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
show berth-controller serve --kubernetes --kubeconfig "$KUBECONFIG" --data-dir "$work/data" \
  --log-level "${BERTH_DEMO_LOG_LEVEL:-info}" \
  --agent-listen "127.0.0.1:$agent_port" --local-agent \
  --registry-ca "$REGISTRY_HOST=$REGISTRY_CA" --health-listen 127.0.0.1:0 \
  --port-file "$work/health-port"
"$bin/berth-controller" serve --kubernetes --kubeconfig "$KUBECONFIG" --data-dir "$work/data" \
  --log-level "${BERTH_DEMO_LOG_LEVEL:-info}" \
  --agent-listen "127.0.0.1:$agent_port" --local-agent \
  --registry-ca "$REGISTRY_HOST=$REGISTRY_CA" --health-listen 127.0.0.1:0 \
  --port-file "$work/health-port" >>"$work/berth.log" 2>&1 &
controller=$!
pids+=("$controller")
ready=0
for _ in $(seq 1 300); do
  kill -0 "$controller" 2>/dev/null || { tail -n 30 "$work/berth.log" >&2; die "berth-controller exited"; }
  port="$(cat "$work/health-port" 2>/dev/null || true)"
  if [ -n "$port" ] && curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz"; then
    ready=1
    break
  fi
  sleep 0.2
done
[ "$ready" = 1 ] || { tail -n 30 "$work/berth.log" >&2; die "berth-controller not ready within 60 s"; }
echo "health: http://127.0.0.1:$port/healthz and /readyz answer 200"

# jsonpath of the app, and a wait on it that prints the command once.
app_field() { kubectl get appservice my-api -n demo -o "jsonpath=$1" 2>/dev/null || true; }
wait_for() {  # DESCRIPTION JSONPATH EXPECTED
  show kubectl get appservice my-api -n demo -o "jsonpath=$2"
  local got=""
  for _ in $(seq 1 600); do
    got="$(app_field "$2")"
    [ "$got" = "$3" ] && { echo "$got"; return 0; }
    sleep 0.3
  done
  kubectl get appservice my-api -n demo -o yaml >&2 || true
  tail -n 30 "$work/berth.log" >&2
  die "$1: expected '$3', last saw '$got'"
}
# Running at revision N, with the latest generation observed.
running_at() {
  wait_for "revision $1 running" \
    '{.status.currentRevision} {.status.phase} {.status.conditions[?(@.type=="Ready")].status} {.status.observedGeneration}/{.metadata.generation}' \
    "$1 Running True $(app_field '{.metadata.generation}')/$(app_field '{.metadata.generation}')"
}
page() { curl -fs --max-time 5 "$1" || true; }
expect_page() {  # URL EXPECTED
  local got=""
  show curl -s "$1"
  for _ in $(seq 1 100); do
    got="$(page "$1")"
    [ "$got" = "$2" ] && { echo "$got"; return 0; }
    sleep 0.3
  done
  die "$1 serves '$got', expected '$2'"
}

say "1. a namespace, the registry password as a Secret (from the 0600 file), a private AppService"
run kubectl create namespace demo
run kubectl create secret generic registry-creds -n demo --from-file=password="$REGISTRY_PASSWORD_FILE"
# berth uses a Secret as a registry password only when it opted in with this label.
run kubectl label secret registry-creds -n demo berth.dev/registry-credential=true
cat >"$work/my-api.yaml" <<YAML
apiVersion: berth.dev/v1alpha1
kind: AppService
metadata:
  name: my-api
  namespace: demo
spec:
  imageRef: $image:v1
  containerPort: 8080
  registryUsername: $REGISTRY_USER
  registryPasswordSecretRef: {name: registry-creds, key: password}
YAML
sed 's/^/    /' "$work/my-api.yaml"
run kubectl apply -f "$work/my-api.yaml"
running_at 1
run kubectl get appservices -n demo -o wide
url="$(app_field '{.status.endpoint}')"
expect_page "$url" v1

say "2. change the image to v2 (the sealed password is reused)"
run kubectl patch appservice my-api -n demo --type merge -p "{\"spec\":{\"imageRef\":\"$image:v2\"}}"
running_at 2
expect_page "$url" v2

say "3. a new username without a new password is refused; v2 keeps serving"
run kubectl patch appservice my-api -n demo --type merge -p '{"spec":{"registryUsername":"someone-else"}}'
wait_for "the refusal" \
  '{.status.conditions[?(@.type=="CredentialsResolved")].status} {.status.conditions[?(@.type=="CredentialsResolved")].reason} {.status.observedGeneration}/{.metadata.generation}' \
  "False PasswordRequired $(app_field '{.metadata.generation}')/$(app_field '{.metadata.generation}')"
run kubectl get appservice my-api -n demo \
  -o 'jsonpath={.status.conditions[?(@.type=="CredentialsResolved")].message}{"\n"}'
expect_page "$url" v2

say "4. revert the spec to v1 with the original username: revision 1's digest, the sealed password"
run kubectl patch appservice my-api -n demo --type merge \
  -p "{\"spec\":{\"imageRef\":\"$image:v1\",\"registryUsername\":\"$REGISTRY_USER\"}}"
running_at 3
expect_page "$url" v1
[ "$(app_field '{.status.imageDigest}')" = \
  "$(kubectl get controllerrevision my-api-1 -n demo -o 'jsonpath={.data.imageDigest}')" ] ||
  die "revision 3 does not run revision 1's digest"
echo "revision 3 runs revision 1's digest $(app_field '{.status.imageDigest}')"
if [ -x "$bin/kubectl-berth" ]; then run kubectl berth history my-api -n demo; fi
run kubectl get controllerrevisions -n demo -l berth.dev/appservice=my-api
run kubectl get events.v1.events.k8s.io -n demo \
  -o 'custom-columns=TYPE:.type,REASON:.reason,OBJECT:.regarding.name,CONTROLLER:.reportingController,NOTE:.note'
run kubectl describe appservice my-api -n demo

say "5. delete the AppService: berth removes the container, then the object goes"
run kubectl delete appservice my-api -n demo --timeout=120s
left="$(podman ps -a --filter label=berth.service --format '{{.ID}}' | wc -l)"
show podman ps -a --filter label=berth.service
[ "$left" = 0 ] || die "$left container(s) left after the delete"
echo "no container left"
run kubectl get controllerrevisions,secrets -n demo

# The password never reached berth's log (the file holds it without a newline: one pattern).
if grep -qFf "$REGISTRY_PASSWORD_FILE" "$work/berth.log"; then die "the registry password is in berth's log"; fi

say "the story is done: v1 -> v2 -> refused -> revert to v1 -> deleted"
if [ "$exit_after" = 1 ]; then exit 0; fi
echo "berth keeps running against the test API server. Try:"
echo "  export KUBECONFIG=$KUBECONFIG PATH=$bin:\$PATH"
echo "  kubectl get appservices -A"
echo "Ctrl-C stops everything."
wait "$controller"
