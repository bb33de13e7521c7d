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
# everything it started. Run directory: $BERTH_RUN_DIR (default: .run/ in the checkout).
#
# Secrets stay off command lines: the account and registry passwords live in 0600 files and reach
# curl through a config file and request bodies on stdin.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

exit_after=0
for arg in "$@"; do
  case "$arg" in
    --exit) exit_after=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "run.sh: $*" >&2; exit 1; }

bin="${BERTH_BIN_DIR:-$repo/build/bin}"
if [ -z "${BERTH_BIN_DIR:-}" ]; then
  say "installing dependencies and building"
  hack/install-deps.sh
  hack/build.sh release >/dev/null
fi

run="${BERTH_RUN_DIR:-$repo/.run}"
mkdir -p "$run"
chmod 700 "$run"
data="$run/data"
api_port="${BERTH_API_PORT:-18080}"
agent_port="${BERTH_AGENT_PORT:-18443}"
api="http://127.0.0.1:$api_port"

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
  rm -f "$run/curl.conf"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "podman configuration in $run/containers"
eval "$(hack/testenv/podman-conf.sh "$run/containers")"

say "private registry (htpasswd + TLS) on loopback"
hack/testenv/registry.sh start "$run/registry" >/dev/null
# shellcheck disable=SC1091
. "$run/registry/env"
echo "registry: $REGISTRY_HOST (user $REGISTRY_USER)"
hack/testenv/registry.sh authfile "$run/registry" "$run/push-auth.json"
hack/testenv/sample-image.sh "$REGISTRY_HOST" "$run/push-auth.json" "$REGISTRY_CA_DIR" berth/sample

say "berth account"
account_pw_file="$run/account-password"
if [ ! -f "$data/berth.db" ]; then
  umask 077
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$account_pw_file"
  "$bin/berth-controller" account add demo --data-dir "$data" <"$account_pw_file" >/dev/null
  umask 022
fi
# curl reads the Basic credentials from a 0600 config file, never from its argv.
( umask 077; printf 'user = "demo:%s"\n' "$(cat "$account_pw_file")" >"$run/curl.conf" )
echo "account: demo (password in $account_pw_file)"

say "starting berth-controller serve (SQLite in $data, local agent)"
"$bin/berth-controller" serve --data-dir "$data" --listen "127.0.0.1:$api_port" \
  --agent-listen "127.0.0.1:$agent_port" --local-agent \
  --registry-ca "$REGISTRY_HOST=$REGISTRY_CA" >>"$run/berth.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fs -o /dev/null "$api/healthz" && break
  kill -0 "${pids[0]}" 2>/dev/null || die "berth-controller exited; see $run/berth.log"
  sleep 0.2
done
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

say "the story is done: v1 -> v2 -> 422 -> rollback to v1"
if [ "$exit_after" = 1 ]; then exit 0; fi
echo "berth keeps running: API $api (curl -K $run/curl.conf $api/app-services); Ctrl-C stops everything."
wait "${pids[0]}"
