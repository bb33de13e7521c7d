"""HTTP side of the test API server: TLS, authentication, RBAC authorization, routing of the
Kubernetes REST paths onto the store, watch streaming, discovery, fault injection, the request
log and the /_test control endpoints."""
import copy
import json
import queue
import select
import socket
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

import builtin
import openapi
import protobuf
import schema
import table
from store import ApiError, bad_request, field_paths, invalid, parse_field_selector

MASTERS = "system:masters"
DEFAULT_WATCH_TIMEOUT = 1800


def _not_found_path():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


# --- authorization ---------------------------------------------------------------------------

class Authorizer:
    """RBAC over the Roles, ClusterRoles and bindings in the store; system:masters bypasses."""

    def __init__(self, store, registry):
        self.store = store
        self.registry = registry

    def _objs(self, group, version, plural, ns=None):
        res = self.registry.find(group, version, plural)
        items, _, _, _ = self.store.list(res, ns or "")
        return items

    @staticmethod
    def _subject_matches(subj, user, groups):
        kind = subj.get("kind")
        if kind == "User":
            return subj.get("name") == user
        if kind == "Group":
            return subj.get("name") in groups
        if kind == "ServiceAccount":
            return user == "system:serviceaccount:%s:%s" % (subj.get("namespace", ""),
                                                            subj.get("name"))
        return False

    def _rules(self, user, groups, ns):
        g = "rbac.authorization.k8s.io"
        for b in self._objs(g, "v1", "clusterrolebindings"):
            if any(self._subject_matches(s, user, groups) for s in b.get("subjects") or []):
                yield from self._role_rules(b, None)
        if ns:
            for b in self._objs(g, "v1", "rolebindings", ns):
                if any(self._subject_matches(s, user, groups) for s in b.get("subjects") or []):
                    yield from self._role_rules(b, ns)

    def _role_rules(self, binding, ns):
        ref = binding.get("roleRef") or {}
        g = "rbac.authorization.k8s.io"
        try:
            if ref.get("kind") == "ClusterRole":
                role = self.store.get(self.registry.find(g, "v1", "clusterroles"), "",
                                      ref.get("name"))
            elif ref.get("kind") == "Role" and ns:
                role = self.store.get(self.registry.find(g, "v1", "roles"), ns, ref.get("name"))
            else:
                return
        except ApiError:
            return
        yield from role.get("rules") or []

    def allowed(self, user, groups, attrs):
        """attrs: {verb, group, resource, subresource, namespace, name} or {verb, path}."""
        if MASTERS in groups:
            return True
        for rule in self._rules(user, groups, attrs.get("namespace")):
            verbs = rule.get("verbs") or []
            if "*" not in verbs and attrs["verb"] not in verbs:
                continue
            if "path" in attrs:
                for u in rule.get("nonResourceURLs") or []:
                    if u == attrs["path"] or (u.endswith("*") and attrs["path"].startswith(u[:-1])):
                        return True
                continue
            ag = rule.get("apiGroups") or []
            if "*" not in ag and attrs.get("group", "") not in ag:
                continue
            resource = attrs["resource"]
            if attrs.get("subresource"):
                resource += "/" + attrs["subresource"]
            rs = rule.get("resources") or []
            if "*" not in rs and resource not in rs and not (
                    attrs.get("subresource") and "*/" + attrs["subresource"] in rs):
                continue
            names = rule.get("resourceNames") or []
            if names and attrs.get("name") not in names:
                continue
            return True
        return False

    @staticmethod
    def forbidden(user, attrs):
        if "path" in attrs:
            msg = 'forbidden: User "%s" cannot %s path "%s"' % (user, attrs["verb"],
                                                                   attrs["path"])
            return ApiError(403, "Forbidden", msg, {})
        resource = attrs["resource"]
        if attrs.get("subresource"):
            resource += "/" + attrs["subresource"]
        qualified = attrs["resource"] + ("." + attrs["group"] if attrs.get("group") else "")
        if attrs.get("subresource"):
            qualified += "/" + attrs["subresource"]
        what = '%s "%s"' % (qualified, attrs["name"]) if attrs.get("name") else qualified
        where = ('in the namespace "%s"' % attrs["namespace"]) if attrs.get("namespace") \
            else "at the cluster scope"
        msg = '%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s" %s' % (
            what, user, attrs["verb"], resource, attrs.get("group", ""), where)
        details = {"group": attrs.get("group", ""), "kind": attrs["resource"]}
        if attrs.get("name"):
            details["name"] = attrs["name"]
        return ApiError(403, "Forbidden", msg, details)


# --- patches ---------------------------------------------------------------------------------

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _strip_directives(patch):
    if isinstance(patch, dict):
        return {k: _strip_directives(v) for k, v in patch.items()
                if not k.startswith("$") and not k.startswith("$setElementOrder")}
    if isinstance(patch, list):
        return [_strip_directives(v) for v in patch if not (isinstance(v, dict) and
                                                            v.get("$patch") == "delete")]
    return patch


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request("invalid JSON pointer: %s" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc, segs):
    cur = doc
    for s in segs:
        if isinstance(cur, list):
            cur = cur[int(s)]
        else:
            cur = cur[s]
    return cur


def json_patch(doc, ops):
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    for op in ops:
        try:
            kind = op["op"]
            segs = _pointer(op["path"])
            if kind in ("add", "replace", "test"):
                value = copy.deepcopy(op["value"])
            if kind in ("move", "copy"):
                src = _pointer(op["from"])
                value = copy.deepcopy(_resolve(doc, src))
                if kind == "move":
                    _remove(doc, src)
                kind = "add"
            if kind == "test":
                if _resolve(doc, segs) != value:
                    raise ApiError(422, "Invalid", "the server rejected our request due to an "
                                   "error in our request: testing value %s failed" % op["path"])
                continue
            if kind == "remove":
                _remove(doc, segs)
                continue
            if not segs:
                doc = value
                continue
            parent = _resolve(doc, segs[:-1])
            last = segs[-1]
            if isinstance(parent, list):
                if kind == "replace":
                    parent[int(last)] = value
                elif last == "-":
                    parent.append(value)
                else:
                    parent.insert(int(last), value)
            else:
                if kind == "replace" and last not in parent:
                    raise KeyError(last)
                parent[last] = value
        except ApiError:
            raise
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(422, "Invalid", "the server rejected our request due to an error in "
                           "our request: jsonpatch %s operation does not apply: doc is missing "
                           "path: \"%s\"" % (op.get("op"), op.get("path")))
    return doc


def _remove(doc, segs):
    parent = _resolve(doc, segs[:-1])
    if isinstance(parent, list):
        del parent[int(segs[-1])]
    else:
        del parent[segs[-1]]


# --- server ----------------------------------------------------------------------------------

class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, fault):
        f = {"verb": fault.get("verb", ""), "resource": fault.get("resource", ""),
             "kind": fault.get("kind", "status"), "code": int(fault.get("code", 500)),
             "seconds": float(fault.get("seconds", 0)), "count": int(fault.get("count", 1)),
             "user": fault.get("user", "")}
        with self.lock:
            self.items.append(f)
        return f

    def clear(self):
        with self.lock:
            self.items = []

    # user: the requester; a fault with a "user" applies to that client's requests only.
    def take(self, verb, resource, kinds=None, user=None):
        with self.lock:
            for f in self.items:
                if f["count"] <= 0:
                    continue
                if kinds and f["kind"] not in kinds:
                    continue
                if f["verb"] and f["verb"] != verb:
                    continue
                if f["resource"] and f["resource"] != resource:
                    continue
                if f["user"] and f["user"] != user:
                    continue
                f["count"] -= 1
                self.items = [x for x in self.items if x["count"] > 0]
                return dict(f)
        return None


class KubeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, store, registry, ssl_context, tokens, bookmark_interval=2.0):
        super().__init__(addr, Handler)
        self.store = store
        self.registry = registry
        self.ssl_context = ssl_context
        self.tokens = tokens  # token -> (user, [groups])
        self.tokens_lock = threading.Lock()
        self.authorizer = Authorizer(store, registry)
        self.faults = Faults()
        self.log = []
        self.log_lock = threading.Lock()
        self.stopping = threading.Event()
        self.bookmark_interval = bookmark_interval

    def get_request(self):
        sock, addr = self.socket.accept()
        # The handshake runs in the request's thread (Handler.setup), so a client that never
        # completes one cannot stall the accept loop.
        return self.ssl_context.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        pass  # a client that goes away mid-request is not the server's error


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "berth-kubeapi"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        self.request.settimeout(30)  # the deadline of the TLS handshake
        self.request.do_handshake()
        self.request.settimeout(None)
        super().setup()

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # --- plumbing ---

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        for w in self.warnings:
            self.send_header("Warning", w)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.code = code

    def _error(self, err):
        headers = dict(err.headers)
        if err.code == 429 and "Retry-After" not in headers:
            headers["Retry-After"] = "1"
        self._send(err.code, err.status(), headers)

    def _decode(self, raw, allow_yaml=True):
        ctype = self.headers.get("Content-Type", "application/json").split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf.decode(raw)
            except (protobuf.DecodeError, ValueError, KeyError, IndexError) as e:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted "
                               "media types include: application/json, application/yaml (%s)"
                               % e)
        if ctype not in ("application/json", "application/yaml", "") and \
                not ctype.endswith("+json") and not ctype.endswith("+yaml"):
            # Protobuf (kubectl's typed clients, e.g. `kubectl create namespace`) and CBOR are
            # not decoded here; JSON and YAML are.
            raise ApiError(415, "UnsupportedMediaType",
                           'the body of the request was in an unknown format - accepted media '
                           'types include: application/json, application/yaml')
        try:
            if "yaml" in ctype and allow_yaml:
                obj = yaml.safe_load(raw.decode() or "{}")
            else:
                obj = json.loads(raw.decode() or "null")
        except Exception as e:
            raise bad_request("the body of the request could not be decoded: %s" % str(e)[:200])
        return obj

    # --- the request ---

    def _dispatch(self, method):
        self.warnings = []
        self.code = 0
        self.info = {"verb": method.lower(), "group": "", "resource": "", "subresource": "",
                     "namespace": "", "name": "", "user": "", "code": 0}
        url = urllib.parse.urlsplit(self.path)
        self.query = {k: v[-1] for k, v in
                      urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        path = url.path
        if "labelSelector" in self.query:  # what a list or watch asked for, for tests to check
            self.info["labelSelector"] = self.query["labelSelector"]
        try:
            raw = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
            self.user, self.groups = self._authenticate(path)
            self.info["user"] = self.user or ""
            self._route(method, path, raw)
        except ApiError as e:
            self._error(e)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # a bug here must still answer like a server, not hang
            self._error(ApiError(500, "InternalError", "Internal error occurred: %s" % e))
        finally:
            self._log_entry()

    def _log_entry(self):
        if self.info.get("logged"):
            return
        self.info["code"] = self.code
        with self.server.log_lock:
            self.server.log.append(dict(self.info))
        self.info["logged"] = True

    def _authenticate(self, path):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            with self.server.tokens_lock:
                who = self.server.tokens.get(auth[7:].strip())
            if who is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            return who[0], list(who[1])
        try:
            cert = self.connection.getpeercert()
        except Exception:
            cert = None
        if cert:
            user, groups = None, []
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        user = v
                    elif k == "organizationName":
                        groups.append(v)
            if user:
                return user, groups + ["system:authenticated"]
        if path in ("/healthz", "/livez", "/readyz", "/version"):
            return "system:anonymous", ["system:unauthenticated"]
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def _route(self, method, path, raw):
        srv = self.server
        parts = [p for p in path.split("/") if p]
        if path.startswith("/_test/"):
            self.info["resource"] = path
            if MASTERS not in self.groups:
                raise Authorizer.forbidden(self.user, {"verb": method.lower(), "path": path})
            return self._control(method, path, raw)
        if not parts or parts[0] not in ("api", "apis") or \
                (parts[0] == "api" and len(parts) < 3) or (parts[0] == "apis" and len(parts) < 4):
            self.info["resource"] = path
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                                                        "on the requested resource")
            return self._nonresource(path, parts)
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        watch = False
        if rest and rest[0] == "watch":
            watch, rest = True, rest[1:]
        if self.query.get("watch") in ("1", "true", "True"):
            watch = True
        ns, name, sub = "", "", ""
        if len(rest) >= 3 and rest[0] == "namespaces" and srv.registry.find(group, version,
                                                                            rest[2]):
            ns, plural = rest[1], rest[2]
            name = rest[3] if len(rest) > 3 else ""
            sub = rest[4] if len(rest) > 4 else ""
            tail = rest[5:]
        else:
            plural = rest[0] if rest else ""
            name = rest[1] if len(rest) > 1 else ""
            sub = rest[2] if len(rest) > 2 else ""
            tail = rest[3:]
        res = srv.registry.find(group, version, plural)
        verb = {"GET": "watch" if watch else ("get" if name else "list"), "POST": "create",
                "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}[method]
        self.info.update(verb=verb, group=group, resource=plural, subresource=sub, namespace=ns,
                         name=name)
        if res is None or tail or (sub and (sub != "status" or not res.status)) or \
                (ns and not res.namespaced):
            raise _not_found_path()
        if verb not in res.verbs and not (sub == "status" and verb in ("get", "update",
                                                                        "patch")):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                                                    "the requested resource",
                           {"group": res.group, "kind": res.plural})
        fault = srv.faults.take(verb, plural, kinds=("status", "stall"), user=self.user)
        if fault and fault["kind"] == "stall":
            time.sleep(fault["seconds"])
        elif fault:
            reasons = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
                       504: "Timeout", 409: "Conflict", 404: "NotFound", 403: "Forbidden",
                       401: "Unauthorized", 410: "Expired"}
            raise ApiError(fault["code"], reasons.get(fault["code"], "InternalError"),
                           "injected fault %d" % fault["code"])
        attrs = {"verb": verb, "group": group, "resource": plural, "subresource": sub,
                 "namespace": ns, "name": name}
        if res.kind != "SelfSubjectAccessReview" and \
                not srv.authorizer.allowed(self.user, self.groups, attrs):
            raise Authorizer.forbidden(self.user, attrs)
        handler = getattr(self, "_" + verb)
        return handler(res, ns, name, sub, raw)

    # --- helpers for resources ---

    def _out(self, res, obj):
        """The stored object as this version serves it (versions share storage, no conversion)."""
        obj["apiVersion"] = res.api_version
        return obj

    def _table_wanted(self):
        return "as=Table" in self.headers.get("Accept", "")

    def _table(self, res, objs, list_rv):
        include = self.query.get("includeObject", "Metadata")
        objs = [self._out(res, o) for o in objs]
        return table.table(res.columns, objs, list_rv, include)

    def _validator(self, res):
        if not res.crd or not res.schema:
            return None
        v = getattr(res, "_validator", None)
        if v is None:
            v = res._validator = schema.Validator(res.schema)
        return v

    def _admit_body(self, res, obj, validation_default="Warn", default=True):
        """fieldValidation, pruning and defaulting of a decoded request body."""
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be an object")
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if (av and av != res.api_version) or (kind and kind != res.kind):
            raise bad_request("the API version in the data (%s) does not match the expected API "
                              "version (%s)" % (av, res.api_version) if av != res.api_version
                              else "the kind in the data (%s) does not match the expected kind "
                                   "(%s)" % (kind, res.kind))
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        obj.setdefault("metadata", {})
        mode = self.query.get("fieldValidation", validation_default) or validation_default
        v = self._validator(res)
        if v is not None:
            unknown = v.unknown_fields(obj)
            if unknown and mode == "Strict":
                # The decoder's wording, prefixed as the real server's codec does.
                raise bad_request('%s in version "%s" cannot be handled as a %s: strict decoding '
                                  'error: %s' % (res.kind, res.version, res.kind, ", ".join(
                                      'unknown field "%s"' % f for f in unknown)))
            if unknown and mode == "Warn":
                for f in unknown:
                    self.warnings.append('299 - "unknown field \\"%s\\""' % f)
            v.prune(obj)
            if default:
                v.default(obj)
        return obj

    def _manager(self):
        m = self.query.get("fieldManager")
        if m:
            return m
        ua = self.headers.get("User-Agent", "unknown")
        return ua.split("/")[0] or "unknown"

    def _dry(self):
        return self.query.get("dryRun") == "All"

    # --- admission ---

    def _owner_refs_admission(self, res, ns, new, old):
        """OwnerReferencesPermissionEnforcement, as the admission plugin of that name checks it
        (not on by default in kube-apiserver, on in several distributions; manifests/rbac.yaml
        grants for it): changing an object's ownerReferences needs delete on the object (not on
        create), and a new blockOwnerDeletion=true reference needs update on the owner's
        finalizers subresource. The checks are recorded on the request's log entry ("checks")."""
        if MASTERS in self.groups:
            return
        refs = (new.get("metadata") or {}).get("ownerReferences") or []
        old_refs = ((old or {}).get("metadata") or {}).get("ownerReferences") or []
        if old is not None and refs == old_refs:
            return
        if old is None and not refs:
            return
        name = (new.get("metadata") or {}).get("name") or ""
        if old is not None:
            self._admission_check(
                {"verb": "delete", "group": res.group, "resource": res.plural, "subresource": "",
                 "namespace": ns, "name": name}, res, name,
                "cannot set an ownerRef on a resource you can't delete")
        blocking_before = {r.get("uid") for r in old_refs if r.get("blockOwnerDeletion")}
        for ref in refs:
            if not ref.get("blockOwnerDeletion") or ref.get("uid") in blocking_before:
                continue
            owner = self.server.registry.find_by_kind(ref.get("apiVersion", ""),
                                                      ref.get("kind", ""))
            if owner is None:
                raise self._admission_forbidden(
                    res, name, "cannot set blockOwnerDeletion in this case because cannot find "
                    "RESTMapping for APIVersion %s Kind %s" % (ref.get("apiVersion"),
                                                               ref.get("kind")))
            self._admission_check(
                {"verb": "update", "group": owner.group, "resource": owner.plural,
                 "subresource": "finalizers", "namespace": ns, "name": ref.get("name", "")},
                res, name, "cannot set blockOwnerDeletion if an ownerReference refers to a "
                           "resource you can't set finalizers on")

    def _admission_check(self, attrs, res, name, why):
        allowed = self.server.authorizer.allowed(self.user, self.groups, attrs)
        self.info.setdefault("checks", []).append(dict(attrs, allowed=allowed))
        if not allowed:
            raise self._admission_forbidden(res, name, why)

    @staticmethod
    def _admission_forbidden(res, name, why):
        qualified = res.plural + ("." + res.group if res.group else "")
        details = {"group": res.group, "kind": res.plural}
        if name:
            details["name"] = name
        return ApiError(403, "Forbidden", '%s "%s" is forbidden: %s: , <nil>' % (
            qualified, name, why), details)

    # --- verbs ---

    def _get(self, res, ns, name, sub, raw):
        obj = self.server.store.get(res, ns, name)
        if self._table_wanted():
            return self._send(200, self._table(res, [obj], obj["metadata"]["resourceVersion"]))
        self._send(200, self._out(res, obj))

    def _list(self, res, ns, name, sub, raw):
        limit = int(self.query.get("limit") or 0)
        items, list_rv, token, remaining = self.server.store.list(
            res, ns, self.query.get("labelSelector", ""), self.query.get("fieldSelector", ""),
            limit, self.query.get("continue", ""))
        if self._table_wanted():
            t = self._table(res, items, list_rv)
            if token:
                t["metadata"]["continue"] = token
            return self._send(200, t)
        md = {"resourceVersion": list_rv}
        if token:
            md["continue"] = token
            md["remainingItemCount"] = remaining
        self._send(200, {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": md,
                         "items": [self._out(res, o) for o in items]})

    def _create(self, res, ns, name, sub, raw):
        if name:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                                                    "the requested resource")
        if res.namespaced and not ns:
            raise _not_found_path()
        body = self._decode(raw)
        if res.kind == "SelfSubjectAccessReview":
            return self._ssar(res, body)
        obj = self._admit_body(res, body)
        self._owner_refs_admission(res, ns, obj, None)
        out = self.server.store.create(res, ns, obj, dry_run=self._dry(),
                                       manager=self._manager())
        self._send(201, self._out(res, out))

    def _update(self, res, ns, name, sub, raw):
        obj = self._admit_body(res, self._decode(raw))
        if not sub:
            try:
                old = self.server.store.get(res, ns, name)
            except ApiError:
                old = None  # the store's update answers the 404
            if old is not None:
                self._owner_refs_admission(res, ns, obj, old)
        out = self.server.store.update(res, ns, name, obj, subresource=sub,
                                       dry_run=self._dry(), manager=self._manager())
        self._send(200, self._out(res, out))

    def _patch(self, res, ns, name, sub, raw):
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
        store = self.server.store
        if ctype == "application/apply-patch+yaml":
            manager = self.query.get("fieldManager")
            if not manager:
                raise bad_request("PATCH /apply requires fieldManager")
            applied = self._admit_body(res, self._decode(raw), validation_default="Strict",
                                       default=False)
            # The applier owns what it sent, not what defaulting adds.
            paths = field_paths(applied)
            v = self._validator(res)
            if v is not None:
                v.default(applied)
            force = self.query.get("force") in ("true", "1")
            out = store.apply(res, ns, name, applied, manager, force=force, subresource=sub,
                              dry_run=self._dry(), paths=paths)
            return self._send(200, self._out(res, out))
        if ctype == "application/strategic-merge-patch+json" and not res.strategic:
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media "
                           "types include: application/json-patch+json, "
                           "application/merge-patch+json, application/apply-patch+yaml")
        if ctype not in ("application/merge-patch+json", "application/json-patch+json",
                         "application/strategic-merge-patch+json"):
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media "
                           "types include: application/json-patch+json, "
                           "application/merge-patch+json, application/apply-patch+yaml" +
                           (", application/strategic-merge-patch+json" if res.strategic else ""))
        patch = self._decode(raw, allow_yaml=False)

        def apply_patch(cur):
            if ctype == "application/json-patch+json":
                new = json_patch(cur, patch)
            elif ctype == "application/strategic-merge-patch+json":
                new = merge_patch(cur, _strip_directives(patch))
            else:
                if not isinstance(patch, dict):
                    raise bad_request("merge patch must be a JSON object")
                new = merge_patch(cur, patch)
            new.setdefault("metadata", {})
            if patch_rv(patch) is None:
                new["metadata"].pop("resourceVersion", None)
            new = self._admit_body(res, new)
            if not sub:
                self._owner_refs_admission(res, ns, new, cur)
            return new

        out = store.mutate(res, ns, name, apply_patch, subresource=sub, dry_run=self._dry(),
                           manager=self._manager())
        self._send(200, self._out(res, out))

    def _delete(self, res, ns, name, sub, raw):
        opts = {}
        if raw.strip():
            opts = self._decode(raw) or {}
        policy = self.query.get("propagationPolicy") or opts.get("propagationPolicy") or \
            ("Orphan" if opts.get("orphanDependents") else "Background")
        dry = self._dry() or opts.get("dryRun") == ["All"]
        obj, gone = self.server.store.delete(res, ns, name, propagation=policy,
                                             preconditions=opts.get("preconditions"),
                                             dry_run=dry)
        if gone and not res.crd:
            # Built-in stores answer an immediate deletion with a Status; custom resources (and
            # any pending deletion) with the object.
            details = {"name": name, "kind": res.plural, "uid": obj["metadata"].get("uid")}
            if res.group:
                details["group"] = res.group
            return self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                    "status": "Success", "details": details})
        self._send(200, self._out(res, obj))

    def _deletecollection(self, res, ns, name, sub, raw):
        store = self.server.store
        items, list_rv, _, _ = store.list(res, ns, self.query.get("labelSelector", ""),
                                          self.query.get("fieldSelector", ""))
        out = []
        for o in items:
            try:
                d, _ = store.delete(res, o["metadata"].get("namespace", ""),
                                    o["metadata"]["name"], dry_run=self._dry())
                out.append(self._out(res, d))
            except ApiError as e:
                if e.code != 404:
                    raise
        self._send(200, {"kind": res.list_kind, "apiVersion": res.api_version,
                         "metadata": {"resourceVersion": str(store.current_rv())},
                         "items": out})

    def _ssar(self, res, body):
        spec = (body or {}).get("spec") or {}
        ra = spec.get("resourceAttributes")
        nra = spec.get("nonResourceAttributes")
        if ra:
            attrs = {"verb": ra.get("verb", ""), "group": ra.get("group", ""),
                     "resource": ra.get("resource", ""), "subresource": ra.get("subresource", ""),
                     "namespace": ra.get("namespace", ""), "name": ra.get("name", "")}
        elif nra:
            attrs = {"verb": nra.get("verb", ""), "path": nra.get("path", "")}
        else:
            raise invalid(res, "", [{"reason": "FieldValueRequired",
                                     "field": "spec.resourceAttributes",
                                     "message": "Required value: exactly one of "
                                                "nonResourceAttributes or resourceAttributes "
                                                "must be specified"}])
        allowed = self.server.authorizer.allowed(self.user, self.groups, attrs)
        status = {"allowed": allowed}
        if allowed and MASTERS not in self.groups:
            status["reason"] = "allowed by RBAC"
        body = dict(body)
        body["apiVersion"], body["kind"] = res.api_version, res.kind
        body.setdefault("metadata", {})["creationTimestamp"] = None
        body["status"] = status
        self._send(201, body)

    def _watch(self, res, ns, name, sub, raw):
        srv = self.server
        store = srv.store
        fsel = self.query.get("fieldSelector", "")
        if name:
            fsel = ",".join(x for x in (fsel, "metadata.name=" + name) if x)
        parse_field_selector(fsel)
        rv = self.query.get("resourceVersion", "")
        try:
            w = store.watch(res, ns, rv, self.query.get("labelSelector", ""), fsel)
        except ApiError as e:
            if e.code != 410:
                raise
            # Like the real watch cache: once the request is admitted, a resourceVersion older
            # than the history is an ERROR event in a 200 stream, not an HTTP 410.
            return self._expired_watch(e)
        fault = srv.faults.take("watch", res.plural, kinds=("drop-watch", "gone-in-stream"))
        if fault:
            w.close("gone" if fault["kind"] == "gone-in-stream" else "drop")
        bookmarks = self.query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(self.query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        deadline = time.monotonic() + timeout
        as_table = self._table_wanted()
        self._start_stream()
        next_bookmark = time.monotonic()  # one as soon as the replayed events are out
        try:
            while not srv.stopping.is_set():
                now = time.monotonic()
                if now >= deadline:
                    break
                try:
                    typ, obj = w.events.get(timeout=max(0.01, min(0.25, deadline - now)))
                except queue.Empty:
                    if self._peer_gone():
                        break
                    if bookmarks and time.monotonic() >= next_bookmark:
                        with store.lock:
                            if not w.events.empty():
                                continue
                            rv_now = str(store.rv)
                        self._emit({"type": "BOOKMARK", "object": {
                            "kind": res.kind, "apiVersion": res.api_version,
                            "metadata": {"resourceVersion": rv_now}}})
                        next_bookmark = time.monotonic() + srv.bookmark_interval
                    continue
                if typ is None:
                    if obj == "gone":
                        self._emit({"type": "ERROR", "object": ApiError(
                            410, "Expired", "too old resource version: %s (%d)" % (
                                rv or "0", store.current_rv())).status()})
                    break
                out = self._out(res, obj)
                if as_table:
                    out = self._table(res, [out], obj["metadata"]["resourceVersion"])
                self._emit({"type": typ, "object": out})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            w.close()
            with store.lock:
                if w in store.watchers:
                    store.watchers.remove(w)
        if srv.stopping.is_set():
            self.close_connection = True

    def _start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.code = 200
        # A watch is in the request log from the moment it streams, not only when it ends.
        self._log_entry()

    def _emit(self, event):
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _expired_watch(self, err):
        """A watch stream of one ERROR event carrying err's Status, then its end."""
        self._start_stream()
        try:
            self._emit({"type": "ERROR", "object": err.status()})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def _peer_gone(self):
        """Whether the client closed a watch it no longer reads (a watch client sends nothing
        while it streams, so anything readable is EOF or TLS close_notify)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            self.connection.settimeout(0)
            try:
                return self.connection.recv(1) == b""
            finally:
                self.connection.settimeout(None)
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        except (OSError, ValueError):
            return True

    # --- discovery and other non-resource paths ---

    def _nonresource(self, path, parts):
        srv = self.server
        reg = srv.registry
        public = path in ("/healthz", "/livez", "/readyz", "/version")
        if not public and MASTERS not in self.groups and not path.startswith(("/api", "/openapi")):
            if not srv.authorizer.allowed(self.user, self.groups, {"verb": "get", "path": path}):
                raise Authorizer.forbidden(self.user, {"verb": "get", "path": path})
        if path in ("/healthz", "/livez", "/readyz"):
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.code = 200
            return
        if path == "/version":
            return self._send(200, builtin.VERSION)
        if path == "/api":
            host = "127.0.0.1:%d" % srv.server_address[1]
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": [
                                        {"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        if path == "/apis":
            groups = []
            for g, versions, preferred in reg.groups():
                if not g:
                    continue
                groups.append({"name": g, "versions": [
                    {"groupVersion": g + "/" + v, "version": v} for v in versions],
                    "preferredVersion": {"groupVersion": g + "/" + preferred,
                                         "version": preferred}})
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                    "groups": groups})
        if len(parts) == 2 and parts[0] == "api" or len(parts) == 3 and parts[0] == "apis":
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            return self._send(200, self._resource_list(group, version))
        if len(parts) == 2 and parts[0] == "apis":
            for g, versions, preferred in reg.groups():
                if g == parts[1]:
                    return self._send(200, {
                        "kind": "APIGroup", "apiVersion": "v1", "name": g,
                        "versions": [{"groupVersion": g + "/" + v, "version": v}
                                     for v in versions],
                        "preferredVersion": {"groupVersion": g + "/" + preferred,
                                             "version": preferred}})
            raise _not_found_path()
        resources = [r.describe() for r in reg.all()]
        if path == "/openapi/v2":
            if not self._accepts_json():
                # kubectl asks for v2 as protobuf only; the real server's 406 to a type it cannot
                # produce makes kubectl go on without v2 (it uses v3).
                raise ApiError(406, "NotAcceptable",
                               "only the following media types are accepted: application/json")
            return self._send(200, openapi.v2(resources))
        if path == "/openapi/v3":
            return self._send(200, openapi.v3_paths(resources))
        if path.startswith("/openapi/v3/"):
            doc = openapi.v3_group_version(resources, path[len("/openapi/v3/"):])
            if doc is not None:
                return self._send(200, doc)
        raise _not_found_path()

    def _accepts_json(self):
        """Whether the Accept header allows JSON (no header allows anything)."""
        accept = self.headers.get("Accept", "")
        if not accept.strip():
            return True
        for item in accept.split(","):
            media = item.split(";")[0].strip().lower()
            if media in ("application/json", "application/*", "*/*"):
                return True
        return False

    def _resource_list(self, group, version):
        found = False
        out = []
        for r in sorted(self.server.registry.all(), key=lambda r: r.plural):
            if r.group != group or r.version != version:
                continue
            found = True
            entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                     "kind": r.kind, "verbs": list(r.verbs)}
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.categories:
                entry["categories"] = list(r.categories)
            out.append(entry)
            if r.status:
                out.append({"name": r.plural + "/status", "singularName": "",
                            "namespaced": r.namespaced, "kind": r.kind,
                            "verbs": ["get", "patch", "update"]})
        if not found:
            raise _not_found_path()
        gv = version if not group else group + "/" + version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": out}

    # --- /_test control ---

    def _control(self, method, path, raw):
        srv = self.server
        try:
            body = json.loads(raw.decode() or "{}") if raw else {}
        except ValueError:
            raise bad_request("the body of a control request must be JSON")
        if method == "GET" and path == "/_test/requests":
            with srv.log_lock:
                return self._send(200, {"requests": list(srv.log)})
        if method == "GET" and path == "/_test/watches":
            return self._send(200, {"open": len(srv.store.open_watchers())})
        if method != "POST":
            raise ApiError(405, "MethodNotAllowed", "POST only")
        if path == "/_test/compact":
            rv = srv.store.compact()
            return self._send(200, {"compactedResourceVersion": str(rv)})
        if path == "/_test/faults":
            fault = srv.faults.add(body)
            if fault["kind"] in ("drop-watch", "gone-in-stream"):
                # Watches already open are the first to get it.
                for w in srv.store.open_watchers():
                    if fault["resource"] and w.key[1] != fault["resource"]:
                        continue
                    if fault["verb"] not in ("", "watch"):
                        continue
                    if srv.faults.take("watch", w.key[1], kinds=(fault["kind"],)):
                        w.close("gone" if fault["kind"] == "gone-in-stream" else "drop")
            return self._send(200, {"faults": srv.faults.items})
        if path == "/_test/faults/clear":
            srv.faults.clear()
            return self._send(200, {"faults": []})
        if path == "/_test/tokens":
            if not body.get("user") or not body.get("token"):
                raise bad_request("user and token are required")
            with srv.tokens_lock:
                srv.tokens[body["token"]] = (body["user"],
                                             list(body.get("groups") or []) +
                                             ["system:authenticated"])
            return self._send(200, {"user": body["user"]})
        if path == "/_test/tokens/remove":
            with srv.tokens_lock:
                srv.tokens.pop(body.get("token", ""), None)
            return self._send(200, {})
        raise _not_found_path()


def patch_rv(patch):
    if isinstance(patch, dict):
        return (patch.get("metadata") or {}).get("resourceVersion")
    if isinstance(patch, list):
        for op in patch:
            if isinstance(op, dict) and op.get("path") == "/metadata/resourceVersion":
                return op.get("value")
    return None
