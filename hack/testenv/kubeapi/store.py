"""Object storage of the test API server: the semantics, without HTTP.

One global resourceVersion counter (like etcd's revision), a bounded change history that watches
resume from and that compact() forgets, watch fan-out, metadata.generation, finalizers with
deletionTimestamp, garbage collection of dependents by ownerReferences, and the field ownership
bookkeeping server-side apply needs. Every mutation runs under one lock, so events reach watchers
in resourceVersion order.

Errors are ApiError exceptions carrying the Kubernetes Status the server answers with.
"""
import base64
import copy
import datetime
import json
import queue
import random
import re
import string
import threading
import time
import uuid

HISTORY_LIMIT = 10000

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """A failed request: `code`, `reason` and `message` of a metav1.Status."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            st["details"] = self.details
        return st


class Resource:
    """One served group/version/resource. Versions of a CRD share storage (same `key`)."""

    def __init__(self, group, version, kind, plural, singular=None, namespaced=True,
                 short_names=None, status=False, generation=False, categories=None,
                 schema=None, columns=None, strategic=True, verbs=None, list_kind=None,
                 hooks=None, crd=False):
        self.group = group
        self.version = version
        self.kind = kind
        self.plural = plural
        self.singular = singular or kind.lower()
        self.namespaced = namespaced
        self.short_names = short_names or []
        self.status = status  # has a /status subresource
        self.generation = generation  # maintains metadata.generation
        self.categories = categories or []
        self.schema = schema  # openAPIV3Schema of this version (CRDs)
        self.columns = columns  # additionalPrinterColumns (CRDs)
        self.strategic = strategic  # accepts strategic merge patch (built-ins)
        self.verbs = verbs or ["create", "delete", "deletecollection", "get", "list", "patch",
                               "update", "watch"]
        self.list_kind = list_kind or kind + "List"
        self.hooks = hooks  # object with optional prepare(store, res, obj, old) / validate(...)
        self.crd = crd

    @property
    def key(self):
        return (self.group, self.plural)

    @property
    def api_version(self):
        return self.version if not self.group else self.group + "/" + self.version

    @property
    def qualified(self):
        """"appservices.berth.dev" or "secrets": how error messages name the resource."""
        return self.plural if not self.group else self.plural + "." + self.group

    @property
    def kind_qualified(self):
        return self.kind if not self.group else self.kind + "." + self.group

    def describe(self):
        """What openapi.py publishes of this resource ("status": whether /status is served)."""
        return {"group": self.group, "version": self.version, "kind": self.kind,
                "plural": self.plural, "singular": self.singular, "namespaced": self.namespaced,
                "schema": self.schema, "shortNames": list(self.short_names),
                "status": bool(self.status)}


# --- errors with the real server's wording ---------------------------------------------------

def not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (res.qualified, name),
                    {"name": name, "group": res.group, "kind": res.plural})


def already_exists(res, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res.qualified, name),
                    {"name": name, "group": res.group, "kind": res.plural})


def conflict(res, name, why=None):
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (res.qualified, name, why),
                    {"name": name, "group": res.group, "kind": res.plural})


def invalid(res, name, causes):
    """causes: [{"reason", "message", "field"}] (message without the field prefix)."""
    text = ", ".join(("%s: %s" % (c["field"], c["message"])) if c.get("field") else c["message"]
                     for c in causes)
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (res.kind_qualified, name, text),
                    {"name": name, "group": res.group, "kind": res.kind,
                     "causes": [dict(c) for c in causes]})


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def gone(message):
    return ApiError(410, "Expired", message)


_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def metadata_errors(obj):
    """Label keys and values, annotation keys: the real server's ObjectMeta validation."""
    md = obj.get("metadata") or {}
    causes = []

    def bad(field, value, detail):
        causes.append({"reason": "FieldValueInvalid", "field": field,
                       "message": 'Invalid value: "%s": %s' % (value, detail)})

    def key_errors(field, key):
        prefix, _, name = key.rpartition("/")
        if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
            bad(field, key, "prefix part a lowercase RFC 1123 subdomain must consist of lower "
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
        if not name or len(name) > 63 or not _LABEL_NAME.match(name):
            bad(field, key, "name part must consist of alphanumeric characters, '-', '_' or '.', "
                "and must start and end with an alphanumeric character (e.g. 'MyName',  or "
                "'my.name',  or '123-abc', regex used for validation is "
                "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")

    for key, value in (md.get("labels") or {}).items():
        key_errors("metadata.labels", key)
        if not isinstance(value, str) or len(value) > 63 or \
                (value and not _LABEL_NAME.match(value)):
            bad("metadata.labels", value, "a valid label must be an empty string or consist of "
                "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex "
                "used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    for key in (md.get("annotations") or {}):
        key_errors("metadata.annotations", key)
    return causes


# --- selectors -------------------------------------------------------------------------------

def _split_top(text):
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


# Checked in this order: "a!=b" and "a==b" also contain "=".
_EQUALITY_OPS = (("!=", "!="), ("==", "="), ("=", "="))


def _equality(part):
    """(key, "=" or "!=", value) for key=value, key==value and key!=value; None otherwise.
    Label and field selectors share this grammar."""
    for token, op in _EQUALITY_OPS:
        if token in part:
            key, value = part.split(token, 1)
            return (key.strip(), op, value.strip())
    return None


_SET_RE = re.compile(r"^([^\s!=()]+)\s+(in|notin)\s+\((.*)\)$")


def parse_label_selector(text):
    """Equality (=, ==, !=), set-based (in, notin) and existence (key, !key) requirements."""
    reqs = []
    for part in _split_top(text or ""):
        m = _SET_RE.match(part)
        equality = None if m else _equality(part)
        if m:
            values = {v.strip() for v in m.group(3).split(",") if v.strip()}
            reqs.append((m.group(1), m.group(2), values))
        elif equality is not None:
            reqs.append(equality)
        elif part.startswith("!"):
            reqs.append((part[1:].strip(), "!exists", None))
        elif re.match(r"^[A-Za-z0-9./_-]+$", part):
            reqs.append((part, "exists", None))
        else:
            raise bad_request("unable to parse requirement: %s" % part)
    return reqs


def label_match(reqs, labels):
    labels = labels or {}
    for key, op, val in reqs:
        have = key in labels
        if op == "=" and labels.get(key) != val:
            return False
        if op == "!=" and have and labels[key] == val:
            return False
        if op == "in" and (not have or labels[key] not in val):
            return False
        if op == "notin" and have and labels[key] in val:
            return False
        if op == "exists" and not have:
            return False
        if op == "!exists" and have:
            return False
    return True


def parse_field_selector(text):
    reqs = []
    for part in _split_top(text or ""):
        req = _equality(part)
        if req is None:
            raise bad_request("invalid selector: '%s'; can't understand '%s'" % (text, part))
        reqs.append(req)
    return reqs


def field_value(obj, path):
    cur = obj
    for seg in path.split("."):
        if not isinstance(cur, dict) or seg not in cur:
            return ""
        cur = cur[seg]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)


def field_match(reqs, obj):
    for key, op, val in reqs:
        have = field_value(obj, key)
        if op == "=" and have != val:
            return False
        if op == "!=" and have == val:
            return False
    return True


# --- field ownership (managedFields) ---------------------------------------------------------

def field_paths(obj, prefix=()):
    """Leaf paths of an object as tuples. Maps recurse; lists and scalars are atomic leaves.
    metadata contributes only labels, annotations, finalizers and ownerReferences."""
    out = set()
    for k, v in obj.items():
        if not prefix and k in ("apiVersion", "kind"):
            continue
        path = prefix + (k,)
        if path == ("metadata",):
            for mk in ("labels", "annotations"):
                for lk in (v.get(mk) or {}):
                    out.add(("metadata", mk, lk))
            for mk in ("finalizers", "ownerReferences"):
                if v.get(mk):
                    out.add(("metadata", mk))
            continue
        if isinstance(v, dict) and v:
            out |= field_paths(v, path)
        else:
            out.add(path)
    return out


def lookup(obj, path):
    cur = obj
    for seg in path:
        if not isinstance(cur, dict) or seg not in cur:
            return (False, None)
        cur = cur[seg]
    return (True, cur)


def remove_path(obj, path):
    parents = []
    cur = obj
    for seg in path[:-1]:
        if not isinstance(cur, dict) or seg not in cur:
            return
        parents.append((cur, seg))
        cur = cur[seg]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    # Drop maps the removal left empty (not metadata itself).
    for parent, seg in reversed(parents):
        if parent[seg] == {} and (parent is not obj or seg != "metadata"):
            del parent[seg]
        else:
            break


def paths_to_fieldsv1(paths):
    root = {}
    for p in sorted(paths):
        cur = root
        for seg in p:
            cur = cur.setdefault("f:" + seg, {})
    return root


def fieldsv1_to_paths(fields, prefix=()):
    out = set()
    for k, v in (fields or {}).items():
        if not k.startswith("f:"):
            continue
        path = prefix + (k[2:],)
        if v:
            out |= fieldsv1_to_paths(v, path)
        else:
            out.add(path)
    return out


def merge_apply(base, applied):
    """Applied configuration over the live object: maps merge, everything else replaces."""
    for k, v in applied.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge_apply(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def _apply_conflict(res, name, conflicts):
    """409 worded like the real server (structured-merge-diff's conflict list)."""
    causes = [{"reason": "FieldManagerConflict",
               "message": 'conflict with "%s" using %s' % (m, av),
               "field": "." + ".".join(p)} for m, av, p in conflicts]
    n = len(conflicts)
    if n == 1:
        text = "Apply failed with 1 conflict: %s: %s" % (causes[0]["message"], causes[0]["field"])
    else:
        groups = {}
        for c in causes:
            groups.setdefault(c["message"], []).append(c["field"])
        parts = []
        for msg, fields in groups.items():
            head = msg.replace("conflict with", "conflicts with", 1) if len(fields) > 1 else msg
            parts.append(head + ":\n" + "\n".join("- " + f for f in fields))
        text = "Apply failed with %d conflicts: %s" % (n, "\n".join(parts))
    return ApiError(409, "Conflict", text,
                    {"name": name, "group": res.group, "kind": res.plural, "causes": causes})


# --- the store -------------------------------------------------------------------------------

class Watcher:
    """One open watch: events land in `events` as (type, object) tuples; None means closed."""

    def __init__(self, key, namespace, label_reqs, field_reqs):
        self.key = key
        self.namespace = namespace
        self.label_reqs = label_reqs
        self.field_reqs = field_reqs
        self.events = queue.Queue()
        self.closed = False

    def matches(self, key, obj):
        if key != self.key:
            return False
        md = obj.get("metadata", {})
        if self.namespace and md.get("namespace") != self.namespace:
            return False
        return label_match(self.label_reqs, md.get("labels")) and \
            field_match(self.field_reqs, obj)

    def event_for(self, key, typ, obj, old):
        """The event this watch sees for a change as (type, object), None for none: with a
        selector, an object that starts matching is ADDED and one that stops matching is
        DELETED, as the real server's watch cache filters. That DELETED carries the object as it
        last matched, with the change's resourceVersion (the watch cache sends the previous
        object, its version moved forward, so a client resumes after the change)."""
        if key != self.key:
            return None
        now = self.matches(key, obj)
        before = old is not None and self.matches(key, old)
        if typ == "MODIFIED" and old is not None:
            if now and not before:
                return "ADDED", obj
            if before and not now:
                gone = copy.deepcopy(old)
                _meta(gone)["resourceVersion"] = obj["metadata"]["resourceVersion"]
                return "DELETED", gone
        return (typ, obj) if now else None

    def send(self, typ, obj):
        if not self.closed:
            self.events.put((typ, obj))

    def close(self, reason="closed"):
        """Ends the stream; `reason` "gone" makes the server send an in-stream 410 first."""
        if not self.closed:
            self.closed = True
            self.events.put((None, reason))


def _meta(obj):
    md = obj.get("metadata")
    if not isinstance(md, dict):
        md = obj["metadata"] = {}
    return md


def _without(obj, *keys):
    return {k: v for k, v in obj.items() if k not in keys}


class Store:
    def __init__(self, history_limit=HISTORY_LIMIT):
        self.lock = threading.RLock()
        self.rv = 0
        self.objects = {}  # (group, plural) -> {(namespace, name): object}
        self.resources = {}  # (group, plural) -> Resource of the storage version
        self.history = []  # [(rv, key, type, object, previous object)], rv ascending
        self.history_limit = history_limit
        self.compacted = 0  # changes at or below this rv are forgotten
        self.watchers = []
        self.uids = {}  # uid -> (key, namespace, name)
        # Owners that existed and were deleted. The collector removes a dependent when every
        # owner is absent and one of them is known deleted, so a dependent created pointing at an
        # owner that never existed here is left alone (the real collector would remove it).
        self.deleted_uids = set()
        self._terminating = {}  # namespace uid -> monotonic time its deletion was first seen
        self.on_change = []  # callables(typ, res_key, obj) run under the lock (CRD registration)

    # --- bookkeeping ---

    def register(self, res):
        with self.lock:
            self.resources.setdefault(res.key, res)
            self.objects.setdefault(res.key, {})

    def unregister(self, key):
        with self.lock:
            for (ns, name), obj in list(self.objects.get(key, {}).items()):
                self._remove(key, ns, name)
            self.resources.pop(key, None)
            self.objects.pop(key, None)
            for w in list(self.watchers):
                if w.key == key:
                    w.close()

    def _next_rv(self):
        self.rv += 1
        return self.rv

    def _record(self, key, typ, obj, old=None):
        snapshot = copy.deepcopy(obj)
        old = copy.deepcopy(old) if old is not None else None
        rv = int(snapshot["metadata"]["resourceVersion"])
        self.history.append((rv, key, typ, snapshot, old))
        if len(self.history) > self.history_limit:
            drop = len(self.history) - self.history_limit
            self.compacted = self.history[drop - 1][0]
            del self.history[:drop]
        for w in list(self.watchers):
            if w.closed:
                self.watchers.remove(w)
            else:
                seen = w.event_for(key, typ, snapshot, old)
                if seen:
                    w.send(seen[0], copy.deepcopy(seen[1]))
        for hook in self.on_change:
            hook(typ, key, snapshot)

    def current_rv(self):
        with self.lock:
            return self.rv

    def compact(self):
        """Forgets every change so far: every resourceVersion and continue token handed out
        before is too old (410). The counter moves on by one so that this holds for the latest
        version too, which is what a test of relisting after compaction needs."""
        with self.lock:
            self.rv += 1
            self.compacted = self.rv
            self.history = []
            return self.rv

    def _bucket(self, res):
        try:
            return self.objects[res.key]
        except KeyError:
            raise not_found(res, "")

    def _ns_check(self, res, ns, creating=True):
        if not res.namespaced:
            return
        if not ns:
            raise bad_request("the server could not find the requested resource")
        nsobj = self.objects.get(("", "namespaces"), {}).get(("", ns))
        if nsobj is None:
            raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns,
                           {"name": ns, "kind": "namespaces"})
        if creating and nsobj["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden",
                           "%s \"%s\" is forbidden: unable to create new content in namespace %s "
                           "because it is being terminated" % (res.qualified, "", ns),
                           {"kind": res.plural, "group": res.group})

    # --- reads ---

    def get(self, res, ns, name):
        with self.lock:
            obj = self._bucket(res).get((ns or "", name))
            if obj is None:
                raise not_found(res, name)
            return copy.deepcopy(obj)

    def list(self, res, ns, label_selector="", field_selector="", limit=0, cont=""):
        """-> (items, list_rv, continue_token, remaining_count)."""
        lreqs = parse_label_selector(label_selector)
        freqs = parse_field_selector(field_selector)
        with self.lock:
            bucket = self._bucket(res)
            list_rv = self.rv
            start = None
            if cont:
                try:
                    token = json.loads(base64.b64decode(cont))
                    token_rv, start = int(token["rv"]), tuple(token["start"])
                except Exception:
                    raise bad_request("continue key is not valid: illegal base64 data")
                if token_rv < self.compacted:
                    raise gone(
                        "The provided continue parameter is too old to display a consistent list "
                        "result. You can start a new list without the continue parameter, or use "
                        "the continue token in this response to retrieve the remainder of the "
                        "results. Continuing with the provided token results in an inconsistent "
                        "list - objects that were created, modified, or deleted between the time "
                        "the first chunk was returned and now may show up in the list.")
                list_rv = token_rv
            items = []
            for k in sorted(bucket):
                if ns and k[0] != ns:
                    continue
                if start is not None and k <= start:
                    continue
                obj = bucket[k]
                if not label_match(lreqs, obj["metadata"].get("labels")):
                    continue
                if not field_match(freqs, obj):
                    continue
                items.append((k, obj))
            token, remaining = "", None
            if limit and len(items) > limit:
                remaining = len(items) - limit
                last = items[limit - 1][0]
                items = items[:limit]
                token = base64.b64encode(json.dumps(
                    {"rv": list_rv, "start": list(last)}).encode()).decode()
            return [copy.deepcopy(o) for _, o in items], str(list_rv), token, remaining

    def watch(self, res, ns, rv="", label_selector="", field_selector=""):
        """Opens a watch. rv "" or "0": synthetic ADDED events for the current state first;
        otherwise every change after rv. Raises 410 Expired when rv is older than the compacted
        history (the server turns that into an ERROR event in a 200 stream)."""
        lreqs = parse_label_selector(label_selector)
        freqs = parse_field_selector(field_selector)
        with self.lock:
            bucket = self._bucket(res)
            w = Watcher(res.key, ns, lreqs, freqs)
            if rv in ("", "0", None):
                for k in sorted(bucket):
                    if w.matches(res.key, bucket[k]):
                        w.send("ADDED", copy.deepcopy(bucket[k]))
            else:
                try:
                    since = int(rv)
                except ValueError:
                    raise bad_request('invalid resource version: %s' % rv)
                if since < self.compacted:
                    # The watch cache's wording: the second number is the oldest version it can
                    # still resume from.
                    raise gone("too old resource version: %d (%d)" % (since, self.compacted))
                for hrv, key, typ, obj, old in self.history:
                    seen = w.event_for(key, typ, obj, old) if hrv > since else None
                    if seen:
                        w.send(seen[0], copy.deepcopy(seen[1]))
            self.watchers.append(w)
            return w

    def open_watchers(self, key=None):
        with self.lock:
            return [w for w in self.watchers if not w.closed and (key is None or w.key == key)]

    # --- writes ---

    def _admit_meta(self, res, ns, obj):
        md = _meta(obj)
        name = md.get("name") or ""
        if not name and md.get("generateName"):
            suffix = "".join(random.choice(string.ascii_lowercase + string.digits)
                             for _ in range(5))
            name = md["name"] = md["generateName"] + suffix
        if not name:
            raise invalid(res, "", [{"reason": "FieldValueRequired", "field": "metadata.name",
                                     "message": "Required value: name or generateName is "
                                                "required"}])
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            raise invalid(res, name, [{
                "reason": "FieldValueInvalid", "field": "metadata.name",
                "message": 'Invalid value: "%s": a lowercase RFC 1123 subdomain must consist of '
                           "lower case alphanumeric characters, '-' or '.', and must start and "
                           "end with an alphanumeric character" % name}])
        if res.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        return name

    def create(self, res, ns, obj, dry_run=False, manager=None, operation="Update",
               owned_paths=None):
        with self.lock:
            bucket = self._bucket(res)
            ns = ns if res.namespaced else ""
            name = self._admit_meta(res, ns, obj)
            self._ns_check(res, ns)
            if (ns, name) in bucket:
                raise already_exists(res, name)
            md = obj["metadata"]
            for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "managedFields", "selfLink"):
                md.pop(k, None)
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now_rfc3339()
            if res.generation:
                md["generation"] = 1
            else:
                md.pop("generation", None)
            obj["apiVersion"] = res.api_version
            obj["kind"] = res.kind
            if res.status and not res.crd:
                pass  # built-ins keep the status a creator sends (the real strategies vary)
            causes = metadata_errors(obj)
            if causes:
                raise invalid(res, name, causes)
            if res.hooks and hasattr(res.hooks, "prepare"):
                res.hooks.prepare(self, res, obj, None)
            if res.hooks and hasattr(res.hooks, "validate"):
                res.hooks.validate(self, res, obj, None)
            if manager:
                self._own(obj, None, manager, operation, res,
                          field_paths(obj) if owned_paths is None else owned_paths)
            if dry_run:
                return copy.deepcopy(obj)
            md["resourceVersion"] = str(self._next_rv())
            bucket[(ns, name)] = obj
            self.uids[md["uid"]] = (res.key, ns, name)
            self._record(res.key, "ADDED", obj)
            self._gc()
            return copy.deepcopy(obj)

    def update(self, res, ns, name, obj, subresource="", dry_run=False, manager=None,
               operation="Update", owned_paths=None, check_rv=True):
        """PUT semantics: metadata.resourceVersion, when set, must match (409 otherwise)."""
        with self.lock:
            bucket = self._bucket(res)
            ns = ns if res.namespaced else ""
            old = bucket.get((ns, name))
            if old is None:
                raise not_found(res, name)
            md = _meta(obj)
            if md.get("name") and md["name"] != name:
                raise bad_request("the name of the object (%s) does not match the name on the "
                                  "URL (%s)" % (md["name"], name))
            if res.namespaced and md.get("namespace") and md["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            want_rv = md.get("resourceVersion")
            if check_rv and want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            new = self._merge_update(res, old, obj, subresource)
            causes = metadata_errors(new)
            if causes:
                raise invalid(res, name, causes)
            if res.hooks and hasattr(res.hooks, "prepare"):
                res.hooks.prepare(self, res, new, old)
            if res.hooks and hasattr(res.hooks, "validate"):
                res.hooks.validate(self, res, new, old)
            if manager:
                changed = owned_paths
                if changed is None:
                    changed = {p for p in field_paths(new) | field_paths(old)
                               if lookup(new, p) != lookup(old, p)}
                self._own(new, old, manager, operation, res, changed,
                          subresource=subresource, exclusive=owned_paths is not None)
            return self._commit(res, ns, name, old, new, dry_run)

    def _merge_update(self, res, old, obj, subresource):
        new = copy.deepcopy(obj)
        nmd = _meta(new)
        omd = old["metadata"]
        # Fields the server owns cannot be changed by a client.
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "generation", "namespace", "name", "resourceVersion"):
            if k in omd:
                nmd[k] = omd[k]
            else:
                nmd.pop(k, None)
        if "managedFields" not in nmd and "managedFields" in omd:
            nmd["managedFields"] = copy.deepcopy(omd["managedFields"])
        new["apiVersion"] = old.get("apiVersion", res.api_version)
        new["kind"] = res.kind
        if subresource == "status":
            # The status subresource changes only the status.
            kept = copy.deepcopy(old)
            if "status" in new:
                kept["status"] = new["status"]
            else:
                kept.pop("status", None)
            kept["metadata"]["managedFields"] = nmd.get("managedFields", [])
            return kept
        if res.status:
            # The main resource ignores status changes when there is a status subresource.
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        # A deleting object may drop finalizers but not gain new ones (the real server refuses
        # with 422 "no new finalizers can be added if the object is being deleted").
        if omd.get("deletionTimestamp"):
            added = set(nmd.get("finalizers") or []) - set(omd.get("finalizers") or [])
            if added:
                raise invalid(res, omd["name"], [{
                    "reason": "FieldValueForbidden", "field": "metadata.finalizers",
                    "message": "Forbidden: no new finalizers can be added if the object is "
                               "being deleted, found new finalizers %s" % json.dumps(
                                   sorted(added))}])
        return new

    def _commit(self, res, ns, name, old, new, dry_run):
        md = new["metadata"]
        if res.generation:
            ignore = ("metadata", "status") if res.status else ("metadata",)
            if _without(new, *ignore) != _without(old, *ignore):
                md["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if not md.get("finalizers"):
            md.pop("finalizers", None)
        if _without(new, "metadata") == _without(old, "metadata") and \
                _without(md, "managedFields") == _without(old["metadata"], "managedFields"):
            return copy.deepcopy(old)  # a no-op write does not bump resourceVersion
        if dry_run:
            return copy.deepcopy(new)
        md["resourceVersion"] = str(self._next_rv())
        bucket = self.objects[res.key]
        if md.get("deletionTimestamp") and not md.get("finalizers"):
            del bucket[(ns, name)]
            self.uids.pop(md["uid"], None)
            self.deleted_uids.add(md["uid"])
            self._record(res.key, "DELETED", new)
        else:
            bucket[(ns, name)] = new
            self._record(res.key, "MODIFIED", new, old)
        self._gc()
        return copy.deepcopy(new)

    def _own(self, new, old, manager, operation, res, paths, subresource="", exclusive=False):
        """Records that `manager` (by `operation`) owns `paths`, taking them from others.
        exclusive: the manager's set becomes exactly `paths` (server-side apply)."""
        entries = copy.deepcopy((old or new)["metadata"].get("managedFields") or [])
        mine = None
        for e in entries:
            if e.get("manager") == manager and e.get("operation") == operation and \
                    e.get("subresource", "") == subresource:
                mine = e
        kept = []
        for e in entries:
            if e is mine:
                continue
            theirs = fieldsv1_to_paths(e.get("fieldsV1")) - set(paths)
            if theirs:
                e["fieldsV1"] = paths_to_fieldsv1(theirs)
                kept.append(e)
        own = set(paths) if exclusive or mine is None else \
            fieldsv1_to_paths(mine.get("fieldsV1")) | set(paths)
        own = {p for p in own if lookup(new, p)[0]}
        if own:
            entry = {"manager": manager, "operation": operation, "apiVersion": res.api_version,
                     "time": now_rfc3339(), "fieldsType": "FieldsV1",
                     "fieldsV1": paths_to_fieldsv1(own)}
            if subresource:
                entry["subresource"] = subresource
            kept.append(entry)
        if kept:
            new["metadata"]["managedFields"] = kept
        else:
            new["metadata"].pop("managedFields", None)

    def apply(self, res, ns, name, applied, manager, force=False, subresource="",
              dry_run=False, paths=None):
        """Server-side apply: create, or merge `applied` into the live object. Fields another
        manager owns with a different value are a 409 conflict unless `force`; fields this
        manager applied before and no longer applies are removed unless someone else owns them."""
        with self.lock:
            bucket = self._bucket(res)
            ns = ns if res.namespaced else ""
            amd = _meta(applied)
            if amd.get("name") and amd["name"] != name:
                raise bad_request("the name of the object (%s) does not match the name on the "
                                  "URL (%s)" % (amd["name"], name))
            amd["name"] = name
            old = bucket.get((ns, name))
            if paths is None:
                paths = field_paths(applied)
            if subresource == "status":
                paths = {p for p in paths if p[0] == "status"}
            if old is None:
                if subresource:
                    raise not_found(res, name)
                obj = copy.deepcopy(applied)
                return self.create(res, ns, obj, dry_run=dry_run, manager=manager,
                                   operation="Apply", owned_paths=paths)
            conflicts = []  # (manager, apiVersion, path)
            for e in old["metadata"].get("managedFields") or []:
                if e.get("manager") == manager:
                    continue
                for p in fieldsv1_to_paths(e.get("fieldsV1")) & paths:
                    if lookup(old, p) != lookup(applied, p):
                        conflicts.append((e.get("manager"), e.get("apiVersion", ""), p))
            if conflicts and not force:
                raise _apply_conflict(res, name, sorted(conflicts))
            new = copy.deepcopy(old)
            previously = set()
            for e in old["metadata"].get("managedFields") or []:
                if e.get("manager") == manager and e.get("operation") == "Apply":
                    previously |= fieldsv1_to_paths(e.get("fieldsV1"))
            others = set()
            for e in old["metadata"].get("managedFields") or []:
                if not (e.get("manager") == manager and e.get("operation") == "Apply"):
                    others |= fieldsv1_to_paths(e.get("fieldsV1"))
            for p in sorted(previously - paths - others, key=len, reverse=True):
                remove_path(new, p)
            body = copy.deepcopy(applied)
            if subresource == "status":
                body = {"status": body.get("status", {})}
            else:
                body.pop("status", None) if res.status else None
            for k in ("apiVersion", "kind"):
                body.pop(k, None)
            bmd = body.get("metadata", {})
            body["metadata"] = {k: v for k, v in bmd.items()
                                if k in ("labels", "annotations", "finalizers",
                                         "ownerReferences")}
            merge_apply(new, body)
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return self.update(res, ns, name, new, subresource=subresource, dry_run=dry_run,
                               manager=manager, operation="Apply", owned_paths=paths)

    def mutate(self, res, ns, name, fn, **kw):
        """Read-modify-write under the lock (PATCH): fn(current copy) -> the new object."""
        with self.lock:
            cur = self.get(res, ns, name)
            new = fn(copy.deepcopy(cur))
            nmd = _meta(new)
            want = nmd.get("resourceVersion")
            if want and want != cur["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            nmd["resourceVersion"] = cur["metadata"]["resourceVersion"]
            return self.update(res, ns, name, new, **kw)

    def delete(self, res, ns, name, propagation="Background", preconditions=None,
               dry_run=False):
        """-> (object, deleted_now). Objects with finalizers get deletionTimestamp instead."""
        with self.lock:
            bucket = self._bucket(res)
            ns = ns if res.namespaced else ""
            obj = bucket.get((ns, name))
            if obj is None:
                raise not_found(res, name)
            md = obj["metadata"]
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != md["uid"]:
                raise conflict(res, name, "Precondition failed: UID in precondition: %s, UID in "
                               "object meta: %s" % (pre["uid"], md["uid"]))
            if pre.get("resourceVersion") and pre["resourceVersion"] != md["resourceVersion"]:
                raise conflict(res, name, "Precondition failed: ResourceVersion in "
                               "precondition: %s, ResourceVersion in object meta: %s"
                               % (pre["resourceVersion"], md["resourceVersion"]))
            new = copy.deepcopy(obj)
            nmd = new["metadata"]
            fins = list(nmd.get("finalizers") or [])
            if propagation == "Foreground" and "foregroundDeletion" not in fins and \
                    self._dependents(md["uid"]):
                fins.append("foregroundDeletion")
            if propagation == "Orphan" and "orphan" not in fins and \
                    self._dependents(md["uid"]):
                fins.append("orphan")
            if res.key == ("", "namespaces"):
                new.setdefault("status", {})["phase"] = "Terminating"
                if any(k[0] == name for key, b in self.objects.items() for k in b):
                    fins.append("kubernetes")  # stands for spec.finalizers: content goes first
            if fins:
                if md.get("deletionTimestamp") and fins == list(md.get("finalizers") or []):
                    return copy.deepcopy(obj), False
                nmd["finalizers"] = fins
                nmd.setdefault("deletionTimestamp", now_rfc3339())
                nmd.setdefault("deletionGracePeriodSeconds", 0)
                if dry_run:
                    return new, False
                nmd["resourceVersion"] = str(self._next_rv())
                bucket[(ns, name)] = new
                self._record(res.key, "MODIFIED", new, obj)
                self._gc()
                return copy.deepcopy(new), False
            if dry_run:
                return new, True
            self._remove(res.key, ns, name)
            self._gc()
            return copy.deepcopy(self._last_deleted), True

    def _remove(self, key, ns, name):
        obj = self.objects[key].pop((ns, name))
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        self.uids.pop(obj["metadata"]["uid"], None)
        self.deleted_uids.add(obj["metadata"]["uid"])
        self._last_deleted = obj
        self._record(key, "DELETED", obj)

    def _dependents(self, uid):
        out = []
        for key, bucket in self.objects.items():
            for (ns, name), obj in bucket.items():
                for ref in obj["metadata"].get("ownerReferences") or []:
                    if ref.get("uid") == uid:
                        out.append((key, ns, name))
        return out

    def _drop_finalizer(self, key, ns, name, finalizer):
        obj = copy.deepcopy(self.objects[key][(ns, name)])
        obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers", [])
                                         if f != finalizer]
        res = self.resources[key]
        self._commit(res, ns, name, self.objects[key][(ns, name)], obj, False)

    def _gc(self):
        """The garbage collector and namespace controller, run to a fixpoint after each write:
        dependents of deleted owners go (background), foreground owners wait for theirs,
        orphaning owners release theirs, terminating namespaces empty out."""
        if getattr(self, "_in_gc", False):
            return
        self._in_gc = True
        try:
            for _ in range(1000):
                if not self._gc_step():
                    return
        finally:
            self._in_gc = False

    def _gc_step(self):
        for key, bucket in list(self.objects.items()):
            for (ns, name), obj in list(bucket.items()):
                md = obj["metadata"]
                if not md.get("deletionTimestamp"):
                    # Dependents whose every owner is gone are deleted.
                    refs = md.get("ownerReferences") or []
                    if refs and not any(r.get("uid") in self.uids for r in refs) and \
                            any(r.get("uid") in self.deleted_uids for r in refs):
                        self.delete(self.resources[key], ns, name)
                        return True
                    continue
                fins = md.get("finalizers") or []
                if "orphan" in fins:
                    for dkey, dns, dname in self._dependents(md["uid"]):
                        dep = copy.deepcopy(self.objects[dkey][(dns, dname)])
                        dep["metadata"]["ownerReferences"] = [
                            r for r in dep["metadata"]["ownerReferences"]
                            if r.get("uid") != md["uid"]]
                        if not dep["metadata"]["ownerReferences"]:
                            del dep["metadata"]["ownerReferences"]
                        self._commit(self.resources[dkey], dns, dname,
                                     self.objects[dkey][(dns, dname)], dep, False)
                    self._drop_finalizer(key, ns, name, "orphan")
                    return True
                if "foregroundDeletion" in fins:
                    deps = self._dependents(md["uid"])
                    for dkey, dns, dname in deps:
                        if not self.objects[dkey][(dns, dname)]["metadata"].get(
                                "deletionTimestamp"):
                            self.delete(self.resources[dkey], dns, dname,
                                        propagation="Foreground")
                            return True
                    if not deps:
                        self._drop_finalizer(key, ns, name, "foregroundDeletion")
                        return True
        return False

    def namespace_pass(self, delay=0.0):
        """One pass of the namespace controller: a terminating namespace's content is deleted
        (background), and the namespace goes once it is empty. The server runs this every
        fraction of a second with a `delay` (seconds since the delete), so like on a real
        cluster a namespace outlives its delete call for a moment and clients can still delete
        what was in it."""
        now = time.monotonic()
        with self.lock:
            nss = self.objects.get(("", "namespaces"), {})
            for (_, name), obj in list(nss.items()):
                md = obj["metadata"]
                if not md.get("deletionTimestamp") or \
                        "kubernetes" not in (md.get("finalizers") or []):
                    continue
                seen = self._terminating.setdefault(md["uid"], now)
                if now - seen < delay:
                    continue
                content = [(k, n) for k, b in self.objects.items() for n in b
                           if n[0] == name and self.resources[k].namespaced]
                for k, n in content:
                    if n in self.objects[k] and \
                            not self.objects[k][n]["metadata"].get("deletionTimestamp"):
                        self.delete(self.resources[k], n[0], n[1])
                if not [n for k, n in content if n in self.objects[k]]:
                    self._drop_finalizer(("", "namespaces"), "", name, "kubernetes")
