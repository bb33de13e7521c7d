#!/usr/bin/env bash
# A real private OCI registry (Docker Distribution) on loopback, for integration and e2e tests.
#
#   registry.sh start DIR [--auth htpasswd|token]   start (no-op when DIR's registry already runs)
#   registry.sh stop DIR                            stop whatever DIR started (safe to repeat)
#   registry.sh authfile DIR OUT                    write an OCI auth file (0600) for DIR's user
#
# Credentials: BERTH_REGISTRY_USER (default "berth") and the password read from the file named by
# BERTH_REGISTRY_PASSWORD_FILE; without that file a random password is generated into
# DIR/password (0600). The password never appears on a command line, in the environment of a
# child process, or on stdout/stderr.
#
# After start, DIR/env holds shell assignments: REGISTRY_HOST=127.0.0.1:PORT, REGISTRY_CA (CA
# file), REGISTRY_CA_DIR (a containers-style cert dir holding only ca.crt), REGISTRY_USER,
# REGISTRY_PASSWORD_FILE, REGISTRY_AUTH (htpasswd|token) and, in token mode, TOKEN_REALM.
# Token mode also runs hack/testenv/token_issuer.py over HTTPS with the same CA. With
# BERTH_TESTENV_OWNER_PID set, a watchdog stops everything once that process is gone.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY=/usr/bin/python3  # Debian's python3, which has python3-cryptography

die() { echo "registry.sh: $*" >&2; exit 1; }

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

running() {  # PID: alive and not a zombie (reaping is up to whoever inherited it)
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null || true)"
  [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}
alive() { [ -f "$1" ] && running "$(cat "$1")"; }

make_certs() {
  local d="$1"
  [ -f "$d/server.crt" ] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=berth test CA" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1" "basicConstraints=CA:FALSE" \
    "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
  # The token signing certificate: RS256 needs an RSA key; the registry trusts it as a root.
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=berth test token issuer" \
    -keyout "$d/token.key" -out "$d/token.crt" 2>/dev/null
  mkdir -p "$d/certs"
  cp "$d/ca.crt" "$d/certs/ca.crt"
  chmod 600 "$d"/*.key
  chmod 644 "$d/ca.crt" "$d/certs/ca.crt"
}

wait_status() {  # URL CODE: wait up to 15 s until URL answers CODE
  local url="$1" want="$2" code=""
  for _ in $(seq 1 150); do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$dir/ca.crt" "$url" || true)"
    [ "$code" = "$want" ] && return 0
    sleep 0.1
  done
  return 1
}

cmd_start() {
  local mode="htpasswd"
  if [ "${1:-}" = "--auth" ]; then mode="${2:-}"; fi
  case "$mode" in htpasswd|token) ;; *) die "--auth must be htpasswd or token" ;; esac

  if alive "$dir/registry.pid"; then
    echo "registry.sh: already running ($(grep REGISTRY_HOST "$dir/env"))"
    return 0
  fi
  umask 077
  mkdir -p "$dir/data"
  make_certs "$dir"

  local user="${BERTH_REGISTRY_USER:-berth}"
  local pwfile="${BERTH_REGISTRY_PASSWORD_FILE:-$dir/password}"
  if [ ! -s "$pwfile" ]; then
    [ "$pwfile" = "$dir/password" ] || die "password file $pwfile is empty or missing"
    "$PY" -c 'import secrets; print("berth-canary-" + secrets.token_hex(16), end="")' >"$pwfile"
  fi
  chmod 600 "$pwfile"
  # -i reads the password from stdin, so it never shows up in the process list.
  htpasswd -niB "$user" <"$pwfile" >"$dir/htpasswd" 2>/dev/null
  [ -s "$dir/htpasswd" ] || die "htpasswd failed"

  local auth_block token_port="" realm=""
  if [ "$mode" = "token" ]; then
    token_port="$(free_port)"
    realm="https://127.0.0.1:$token_port/token"
    auth_block="  token:
    realm: $realm
    service: berth-test-registry
    issuer: berth-test-issuer
    rootcertbundle: $dir/token.crt"
  else
    auth_block="  htpasswd:
    realm: berth-test-registry
    path: $dir/htpasswd"
  fi

  local attempt port
  for attempt in 1 2 3; do
    port="$(free_port)"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: $("$PY" -c 'import secrets; print(secrets.token_hex(16))')
  tls:
    certificate: $dir/server.crt
    key: $dir/server.key
auth:
$auth_block
EOF
    # setsid: the registry must not die with the shell that started it, nor get its signals.
    setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    echo $! >"$dir/registry.pid"
    if wait_status "https://127.0.0.1:$port/v2/" 401; then break; fi
    kill "$(cat "$dir/registry.pid")" 2>/dev/null || true
    rm -f "$dir/registry.pid"
    [ "$attempt" = 3 ] && { tail -n 20 "$dir/registry.log" >&2; die "registry did not come up"; }
  done

  if [ "$mode" = "token" ]; then
    BERTH_TOKEN_USER="$user" BERTH_TOKEN_PASSWORD_FILE="$pwfile" \
      setsid "$PY" "$here/token_issuer.py" --port "$token_port" \
      --tls-cert "$dir/server.crt" --tls-key "$dir/server.key" \
      --sign-cert "$dir/token.crt" --sign-key "$dir/token.key" \
      --issuer berth-test-issuer --service berth-test-registry \
      --request-log "$dir/token-requests.log" \
      >"$dir/token.log" 2>&1 </dev/null &
    echo $! >"$dir/token.pid"
    wait_status "https://127.0.0.1:$token_port/token" 401 ||
      { tail -n 20 "$dir/token.log" >&2; die "token issuer did not come up"; }
  fi

  # A test process that crashes never runs its fixture's destructor: when the owner named by
  # BERTH_TESTENV_OWNER_PID is gone, the watchdog stops the registry and removes DIR.
  if [ -n "${BERTH_TESTENV_OWNER_PID:-}" ]; then
    # shellcheck disable=SC2016  # expanded by the watchdog's own shell
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done
      for f in "$2/token.pid" "$2/registry.pid"; do [ -f "$f" ] && kill -9 "$(cat "$f")"; done
      rm -rf "$2"' watchdog "$BERTH_TESTENV_OWNER_PID" "$dir" >/dev/null 2>&1 </dev/null &
    echo $! >"$dir/watchdog.pid"
  fi

  cat >"$dir/env" <<EOF
REGISTRY_HOST=127.0.0.1:$port
REGISTRY_CA=$dir/ca.crt
REGISTRY_CA_DIR=$dir/certs
REGISTRY_USER=$user
REGISTRY_PASSWORD_FILE=$pwfile
REGISTRY_AUTH=$mode
TOKEN_REALM=$realm
EOF
  echo "registry.sh: registry on 127.0.0.1:$port (auth $mode)"
}

stop_pid() {
  local f="$1"
  if alive "$f"; then
    local pid; pid="$(cat "$f")"
    # SIGKILL straight away: a test registry holds nothing worth a graceful drain (which costs
    # the registry about a second per stop).
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do running "$pid" || break; sleep 0.05; done
  fi
  rm -f "$f"
}

cmd_stop() {
  stop_pid "$dir/watchdog.pid"
  stop_pid "$dir/token.pid"
  stop_pid "$dir/registry.pid"
}

cmd_authfile() {
  local out="${1:?usage: registry.sh authfile DIR OUT}"
  [ -f "$dir/env" ] || die "$dir/env missing: start the registry first"
  # shellcheck disable=SC1091
  . "$dir/env"
  umask 077
  REGISTRY_HOST="$REGISTRY_HOST" REGISTRY_USER="$REGISTRY_USER" \
    "$PY" - "$REGISTRY_PASSWORD_FILE" "$out" <<'EOF'
import base64, json, os, sys
password = open(sys.argv[1]).read()
token = base64.b64encode(f"{os.environ['REGISTRY_USER']}:{password}".encode()).decode()
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    json.dump({"auths": {os.environ["REGISTRY_HOST"]: {"auth": token}}}, f)
EOF
}

action="${1:-}"
dir="${2:-}"
if [ -z "$action" ] || [ -z "$dir" ]; then
  die "usage: registry.sh start|stop|authfile DIR [...]"
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
shift 2
case "$action" in
  start) cmd_start "$@" ;;
  stop) cmd_stop ;;
  authfile) cmd_authfile "$@" ;;
  *) die "unknown action $action" ;;
esac
