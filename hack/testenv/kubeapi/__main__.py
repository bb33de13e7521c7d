"""The test Kubernetes API server (tests only; see docs/kubernetes.md, "The test API server").

    python3 hack/testenv/kubeapi --dir DIR [--port 0] [--crd FILE]... [--bookmark-interval S]
                                 [--history N] [--log FILE]

Makes a throwaway CA in DIR (ca.crt; server.crt for 127.0.0.1 and localhost; client.crt/.key
with CN=berth-test, O=system:masters; admin.token for user "admin" in system:masters), binds
127.0.0.1:PORT (0 = a free port), writes DIR/kubeconfig (context "berth-test", token auth) and
then DIR/ready.json {port, pid}. SIGTERM stops it.
"""
import argparse
import datetime
import ipaddress
import json
import os
import secrets
import signal
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import yaml  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

import builtin  # noqa: E402
import server  # noqa: E402
import store as storemod  # noqa: E402


def _write(path, data, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject, issuer, key, issuer_key, ca=False, server_names=None, client=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=7))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                          crl_sign=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False,
                                          decipher_only=False), critical=True)
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                            critical=False)
    else:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False)
    if server_names:
        b = b.add_extension(x509.SubjectAlternativeName(server_names), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_pki(d):
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth-test-ca")])
    ca = _cert(ca_name, ca_name, ca_key, ca_key, ca=True)
    srv_key = _key()
    srv = _cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]), ca_name,
                srv_key, ca_key, server_names=[
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                    x509.DNSName("localhost")])
    cl_key = _key()
    cl = _cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth-test"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")]),
               ca_name, cl_key, ca_key, client=True)
    pem = serialization.Encoding.PEM
    _write(os.path.join(d, "ca.crt"), ca.public_bytes(pem), 0o644)
    _write(os.path.join(d, "server.crt"), srv.public_bytes(pem), 0o644)
    _write(os.path.join(d, "server.key"), _pem_key(srv_key))
    _write(os.path.join(d, "client.crt"), cl.public_bytes(pem), 0o644)
    _write(os.path.join(d, "client.key"), _pem_key(cl_key))
    token = "berth-admin-" + secrets.token_hex(16)
    _write(os.path.join(d, "admin.token"), token.encode())
    return token


def load_crds(st, registry, files):
    res = registry.find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    for path in files:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    st.create(res, "", doc, manager="berth-testenv")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="kubeapi", description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--crd", action="append", default=[])
    ap.add_argument("--bookmark-interval", type=float, default=2.0)
    ap.add_argument("--history", type=int, default=storemod.HISTORY_LIMIT)
    ap.add_argument("--log", help="write stderr (errors, tracebacks) to this file")
    args = ap.parse_args(argv)
    if args.log:
        fd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 2)
        os.close(fd)
    d = os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)
    admin_token = make_pki(d)

    st = storemod.Store(history_limit=args.history)
    registry = builtin.Registry(st)
    ns_res = registry.find("", "v1", "namespaces")
    for ns in builtin.INITIAL_NAMESPACES:
        st.create(ns_res, "", {"metadata": {"name": ns}})
    load_crds(st, registry, args.crd)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
    ctx.load_verify_locations(os.path.join(d, "ca.crt"))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])

    tokens = {admin_token: ("admin", [server.MASTERS, "system:authenticated"])}
    srv = server.KubeServer(("127.0.0.1", args.port), st, registry, ctx, tokens,
                            bookmark_interval=args.bookmark_interval)
    port = srv.server_address[1]
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "berth-test", "cluster": {
            "server": "https://127.0.0.1:%d" % port,
            "certificate-authority": os.path.join(d, "ca.crt")}}],
        "users": [{"name": "berth-test-admin", "user": {"token": admin_token}}],
        "contexts": [{"name": "berth-test", "context": {
            "cluster": "berth-test", "user": "berth-test-admin", "namespace": "default"}}],
        "current-context": "berth-test",
    }
    _write(os.path.join(d, "kubeconfig"), yaml.safe_dump(kubeconfig).encode())

    def stop(signum, frame):
        srv.stopping.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    def namespace_controller():
        while not srv.stopping.wait(0.2):
            st.namespace_pass(delay=1.0)

    threading.Thread(target=namespace_controller, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ready = os.path.join(d, "ready.json")
    _write(ready + ".tmp", json.dumps({"port": port, "pid": os.getpid()}).encode(), 0o644)
    os.rename(ready + ".tmp", ready)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.stopping.set()
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
