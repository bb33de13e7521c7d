#!/usr/bin/env bash
# berth's main job on its embedded defaults, on one machine:
#   - installs what is needed (apt), builds berth;
#   - writes a podman configuration under the run directory (CONTAINERS_CONF; /etc is untouched);
#   - starts a private registry on loopback (htpasswd + TLS) holding a sample image in two
#     versions (a static busybox httpd page "v1" / "v2");
#   - starts `berth-controller serve` with SQLite in the run directory and a local agent;
#   - walks the private-registry story with curl: create with credentials -> v1 served; PATCH to
#     v2 without the password -> v2 served; PATCH with a new username and no password -> 422;
#     rollback to the first deployment -> v1 served.
# Then it keeps the stack running until Ctrl-C (or stops at once with --exit) and stops
# everything it started. Options and environment (ports, run directory): hack/run.sh --help.
#
# Secrets stay off command lines: the account and registry passwords live in 0600 files and reach
# curl through a config file and request bodies on stdin.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

usage() {
  cat <<'USAGE'
Usage: hack/run.sh [--exit] [-h|--help]

Installs what berth needs (apt), builds it, starts a private registry (htpasswd + TLS on loopback)
holding a sample image in two versions, starts `berth-controller serve` with a local agent, and
walks the private-registry story with curl: create -> v1 served, PATCH to v2 without the
password -> v2 served, PATCH with a new username and no password -> 422, rollback -> v1 served.
Then it keeps everything running until Ctrl-C and stops what it started.

Options:
  --exit         stop everything and exit 0 once the story is done
  -h, --help     print this help

Environment:
  BERTH_API_PORT    loopback port of berth's REST API         (default 18080)
  BERTH_AGENT_PORT  loopback port of the agent link (TLS)     (default 18443)
  BERTH_RUN_DIR     run directory: data, logs, registry, podman storage (default .run/)
  BERTH_BIN_DIR     use these built binaries; skips installing and building (default build/bin)

Each run starts from a clean story: the data, registry and containers of an earlier run in the
same run directory are removed first. Both ports must be free: a port held by another process
(an earlier run that is still up, another berth) is reported at start.
USAGE
}

exit_after=0
for arg in "$@"; do
  case "$arg" in
    --exit) exit_after=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $arg (see hack/run.sh --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "run.sh: $*" >&2; exit 1; }

api_port="${BERTH_API_PORT:-18080}"
agent_port="${BERTH_AGENT_PORT:-18443}"
api="http://127.0.0.1:$api_port"
run="${BERTH_RUN_DIR:-$repo/.run}"

# A port someone else holds would otherwise surface much later and misleadingly: curl would talk
# to that other server (an earlier berth answers 401 to this run's account) or serve would die.
port_holder() {  # PORT -> "pid N (command)" of the listener when ss can tell, else ""
  ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/pid \2 (\1)/p' | head -n 1
}
check_port_free() {  # PORT VARIABLE
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    local holder
    holder="$(port_holder "$1")"
    die "port $1 is already in use${holder:+ by $holder}: stop it or choose another port with $2=PORT (see --help)"
  fi
}
[ "$api_port" != "$agent_port" ] || die "BERTH_API_PORT and BERTH_AGENT_PORT must differ (both $api_port)"
check_port_free "$api_port" BERTH_API_PORT
check_port_free "$agent_port" BERTH_AGENT_PORT

bin="${BERTH_BIN_DIR:-$repo/build/bin}"
if [ -z "${BERTH_BIN_DIR:-}" ]; then
  say "installing dependencies and building"
  hack/install-deps.sh
  hack/build.sh release >/dev/null
fi

mkdir -p "$run"
chmod 700 "$run"
data="$run/data"
# An earlier run that is still up (on other ports) owns this run directory: never wipe it.
if [ -f "$run/serve.pid" ]; then
  earlier="$(cat "$run/serve.pid")"
  if [ -n "$earlier" ] && tr '\0' ' ' 2>/dev/null <"/proc/$earlier/cmdline" | grep -q "berth-controller serve --data-dir $data "; then
    die "an earlier hack/run.sh is still running in $run (berth-controller pid $earlier): stop it first"
  fi
fi

pids=()
cleanup() {
  set +e
  say "stopping"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  if [ -n "${CONTAINERS_CONF:-}" ]; then
    podman ps -a --filter label=berth.service --format '{{.ID}}' 2>/dev/null | xargs -r podman rm -f >/dev/null 2>&1
  fi
  hack/testenv/registry.sh stop "$run/registry" >/dev/null 2>&1
  rm -f "$run/curl.conf" "$run/serve.pid"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "podman configuration in $run/containers"
eval "$(hack/testenv/podman-conf.sh "$run/containers")"

# A clean story: services of an earlier run point at that run's registry, whose port is gone, so
# they would linger failing. Remove the earlier run's containers, registry and data.
if [ -e "$data" ] || [ -e "$run/registry" ]; then
  say "removing the state of an earlier run in $run"
  podman ps -a --filter label=berth.service --format '{{.ID}}' 2>/dev/null | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  hack/testenv/registry.sh stop "$run/registry" >/dev/null 2>&1 || true
  rm -rf "$data" "$run/registry" "$run/account-password" "$run/curl.conf" "$run/push-auth.json"
  : >"$run/berth.log"
fi

say "private registry (htpasswd + TLS) on loopback"
hack/testenv/registry.sh start "$run/registry" >/dev/null
# shellcheck disable=SC1091
. "$run/registry/env"
echo "registry: $REGISTRY_HOST (user $REGISTRY_USER)"
hack/testenv/registry.sh authfile "$run/registry" "$run/push-auth.json"
hack/testenv/sample-image.sh "$REGISTRY_HOST" "$run/push-auth.json" "$REGISTRY_CA_DIR" berth/sample ||
  { echo "run.sh: the sample images could not be pushed; the registry log is $run/registry/registry.log. Run hack/run.sh again." >&2; exit 1; }

say "berth account"
account_pw_file="$run/account-password"
umask 077
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$account_pw_file"
"$bin/berth-controller" account add demo --data-dir "$data" <"$account_pw_file" >/dev/null
umask 022
# curl reads the Basic credentials from a 0600 config file, never from its argv.
( umask 077; printf 'user = "demo:%s"\n' "$(cat "$account_pw_file")" >"$run/curl.conf" )
echo "account: demo (password in $account_pw_file)"

say "starting berth-controller serve (SQLite in $data, local agent)"
rm -f "$run/api-port"
"$bin/berth-controller" serve --data-dir "$data" --listen "127.0.0.1:$api_port" \
  --agent-listen "127.0.0.1:$agent_port" --local-agent --port-file "$run/api-port" \
  --registry-ca "$REGISTRY_HOST=$REGISTRY_CA" >>"$run/berth.log" 2>&1 &
pids+=($!)
echo "$!" >"$run/serve.pid"
# Only our controller writes the port file, and only once it holds the API port: a /healthz
# answer before that could come from anyone.
ready=0
for _ in $(seq 1 150); do
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    # Taken since the check at start?
    check_port_free "$api_port" BERTH_API_PORT
    check_port_free "$agent_port" BERTH_AGENT_PORT
    die "berth-controller exited; see $run/berth.log"
  fi
  if [ "$(cat "$run/api-port" 2>/dev/null)" = "$api_port" ] && curl -fs -o /dev/null "$api/healthz"; then
    ready=1
    break
  fi
  sleep 0.2
done
[ "$ready" = 1 ] || die "berth-controller did not start listening on $api_port within 30 s; see $run/berth.log"
echo "API: $api   logs: $run/berth.log"

# api METHOD PATH [BODY on stdin] -> prints the body, sets $code
api() {
  local method="$1" path="$2" out
  out="$(curl -s -K "$run/curl.conf" -X "$method" -H 'Content-Type: application/json' \
    ${3:+--data-binary @-} -w '\n%{http_code}' "$api$path")"
  code="${out##*$'\n'}"
  body="${out%$'\n'*}"
}
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }

wait_running() {  # ID DEPLOYMENT_COUNT
  for _ in $(seq 1 300); do
    api GET "/app-services/$1"
    status="$(printf '%s' "$body" | json 'd["status"]')"
    if [ "$status" = "Running" ]; then
      api GET "/app-services/$1/deployments"
      n="$(printf '%s' "$body" | json 'len(d["deployments"])')"
      [ "$n" -ge "$2" ] && return 0
    fi
    [ "$status" = "Failed" ] && { api GET "/app-services/$1"; echo "$body"; die "deploy failed"; }
    sleep 0.5
  done
  api GET "/app-services/$1"; echo "$body"
  die "timed out waiting for $1 to run"
}
page() { curl -fs --max-time 5 "$1"; }

password="$(cat "$REGISTRY_PASSWORD_FILE")"
image="$REGISTRY_HOST/berth/sample"

say "1. create my-api from $image:v1 with registry credentials"
name="my-api-$(date +%s)"
api POST /app-services 1 <<JSON
{"name": "$name", "plan_name": "tier-2",
 "app_config": {"image_ref": "$image:v1", "container_port": 8080,
                "registry_username": "$REGISTRY_USER", "registry_password": "$password"}}
JSON
[ "$code" = 201 ] || die "create answered $code: $body"
id="$(printf '%s' "$body" | json 'd["id"]')"
echo "created $id (status $(printf '%s' "$body" | json 'd["status"]'))"
wait_running "$id" 1
url="$(printf '%s' "$body" | json 'd.get("url","")')"
api GET "/app-services/$id"; url="$(printf '%s' "$body" | json 'd["url"]')"
echo "Running at $url: $(page "$url")"
[ "$(page "$url")" = v1 ] || die "expected page v1"
first="$(printf '%s' "$body" | json 'd["current_deployment_id"]')"

say "2. PATCH to v2 without the password (the stored one is reused)"
api PATCH "/app-services/$id" 1 <<JSON
{"app_config": {"image_ref": "$image:v2", "container_port": 8080, "registry_username": "$REGISTRY_USER"}}
JSON
[ "$code" = 200 ] || die "PATCH answered $code: $body"
wait_running "$id" 2
echo "serving: $(page "$url")"
[ "$(page "$url")" = v2 ] || die "expected page v2"

say "3. PATCH with a new username and no password is refused"
api PATCH "/app-services/$id" 1 <<JSON
{"app_config": {"image_ref": "$image:v2", "container_port": 8080, "registry_username": "someone-else"}}
JSON
echo "$code $body"
[ "$code" = 422 ] || die "expected 422"

say "4. roll back to the first deployment ($first)"
api POST "/app-services/$id/rollback" 1 <<JSON
{"deployment_id": "$first"}
JSON
[ "$code" = 200 ] || [ "$code" = 202 ] || die "rollback answered $code: $body"
wait_running "$id" 3
echo "serving: $(page "$url")"
[ "$(page "$url")" = v1 ] || die "expected page v1 after rollback"

api GET "/app-services/$id/deployments"
printf '%s' "$body" | python3 -c '
import json, sys
for d in json.load(sys.stdin)["deployments"]:
    print("  revision %s: %s %s... (%s)" % (d["revision"], d["image_ref"], d["image_digest"][:19], d["reason"]))'

api GET /app-services
echo "app services: $(printf '%s' "$body" | json 'len(d["app_services"])')"

say "the story is done: v1 -> v2 -> 422 -> rollback to v1"
if [ "$exit_after" = 1 ]; then exit 0; fi
echo "berth keeps running: API $api (curl -K $run/curl.conf $api/app-services); Ctrl-C stops everything."
wait "${pids[0]}"
