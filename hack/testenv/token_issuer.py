#!/usr/bin/python3
"""A Docker-registry bearer token issuer for tests (the ghcr.io / Docker Hub scheme).

GET /token?service=S&scope=repository:REPO:pull[,push] with HTTP Basic credentials returns
{"token", "access_token", "expires_in"}: an RS256 JWT signed with --sign-key, whose x5c header
carries --sign-cert (the registry's rootcertbundle). A wrong user or password gets 401.
Without credentials a token is still issued (as Docker Hub does), granting pull only on
repositories under "public/"; the registry then refuses everything else.

The expected password is read from the file named by BERTH_TOKEN_PASSWORD_FILE, never from the
command line. Serves HTTPS with --tls-cert/--tls-key. Never logs credentials; with
--request-log FILE it appends one line per request saying only whether the request carried
Basic credentials and whether they held the expected password, so a test can prove that a
client withheld them.
"""
import argparse
import base64
import hmac
import json
import os
import secrets
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-cert", required=True)
    ap.add_argument("--tls-key", required=True)
    ap.add_argument("--sign-cert", required=True)
    ap.add_argument("--sign-key", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--request-log", default="")
    args = ap.parse_args()

    user = os.environ.get("BERTH_TOKEN_USER", "berth")
    with open(os.environ["BERTH_TOKEN_PASSWORD_FILE"]) as f:
        password = f.read()
    with open(args.sign_key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(args.sign_cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    def sign(claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode()))
        sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(sig)

    log_lock = threading.Lock()

    def record(path: str, authz: str) -> None:
        if not args.request_log:
            return
        basic = authz.startswith("Basic ")
        carried = False
        if basic:
            try:
                carried = password in base64.b64decode(authz[6:]).decode(errors="replace")
            except Exception:
                carried = False
        carried = carried or (bool(password) and password in authz)
        line = (f"GET {path} basic={'yes' if basic else 'no'} "
                f"password={'yes' if carried else 'no'}\n")
        with log_lock, open(args.request_log, "a") as f:
            f.write(line)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):  # the default logs to stderr per request; keep it quiet
            pass

        def reply(self, code: int, body: dict, extra=None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path != "/token":
                self.reply(404, {"errors": [{"code": "NOT_FOUND"}]})
                return
            q = parse_qs(url.query)
            authz = self.headers.get("Authorization", "")
            record(url.path, authz)
            subject = ""
            if authz.startswith("Basic "):
                try:
                    u, _, p = base64.b64decode(authz[6:]).decode().partition(":")
                except Exception:
                    u, p = "", ""
                if u != user or not hmac.compare_digest(p.encode(), password.encode()):
                    self.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                                 "message": "invalid username or password"}]},
                               {"WWW-Authenticate": 'Basic realm="berth-test-token"'})
                    return
                subject = u
            elif authz or "service" not in q:
                # A probe without service, or an unknown scheme: ask for Basic credentials.
                self.reply(401, {"errors": [{"code": "UNAUTHORIZED"}]},
                           {"WWW-Authenticate": 'Basic realm="berth-test-token"'})
                return
            access = []
            for scope in q.get("scope", []):
                for one in scope.split(" "):
                    parts = one.split(":")
                    if len(parts) < 3 or parts[0] != "repository":
                        continue
                    name, actions = ":".join(parts[1:-1]), parts[-1].split(",")
                    if subject:
                        granted = [a for a in actions if a in ("pull", "push", "delete", "*")]
                    else:
                        granted = ["pull"] if name.startswith("public/") and "pull" in actions else []
                    access.append({"type": "repository", "name": name, "actions": granted})
            now = int(time.time())
            claims = {"iss": args.issuer, "aud": q.get("service", [args.service])[0],
                      "sub": subject, "exp": now + 300, "nbf": now - 10, "iat": now,
                      "jti": secrets.token_hex(16), "access": access}
            token = sign(claims)
            self.reply(200, {"token": token, "access_token": token, "expires_in": 300,
                             "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))})

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"token issuer on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
