"""The built-in kinds of the test API server, the registry of served resources, and CRDs.

A CustomResourceDefinition written to the store registers its served versions here (discovery and
routing pick them up at once) and gets the Established and NamesAccepted conditions; deleting it
removes its resources and every custom object of it.
"""
import base64
import copy
import ipaddress
import threading

import schema
import table
from store import ApiError, Resource, invalid, now_rfc3339

VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.4-berth-testenv",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.8", "compiler": "gc",
    "platform": "linux/amd64",
}

# Namespaces that exist when the server starts.
INITIAL_NAMESPACES = ("default", "kube-system", "berth-system")


class _Immutable:
    """ControllerRevision: `data` and `revision` cannot change after create (422 like the real
    apps/v1 validation)."""

    def validate(self, store, res, obj, old):
        if old is None:
            return
        causes = []
        for field in ("data", "revision"):
            if obj.get(field) != old.get(field):
                causes.append({"reason": "FieldValueInvalid", "field": field,
                               "message": "Invalid value: %s: field is immutable"
                                          % _go(obj.get(field))})
        if causes:
            raise invalid(res, obj["metadata"]["name"], causes)


def _go(v):
    if isinstance(v, dict):
        return "runtime.RawExtension{...}"
    if isinstance(v, str):
        return '"%s"' % v
    return str(v).lower() if isinstance(v, bool) else str(v)


class _Secret:
    """stringData merges into data (base64) on every write; data values must be base64."""

    def prepare(self, store, res, obj, old):
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {}) if (string_data or "data" in obj) else None
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj.setdefault("type", "Opaque")

    def validate(self, store, res, obj, old):
        for k, v in (obj.get("data") or {}).items():
            try:
                base64.b64decode(v, validate=True)
            except Exception:
                raise ApiError(400, "BadRequest", "illegal base64 data at input byte 0")
        if old is not None and old.get("type") != obj.get("type"):
            raise invalid(res, obj["metadata"]["name"], [{
                "reason": "FieldValueInvalid", "field": "type",
                "message": 'Invalid value: "%s": field is immutable' % obj.get("type")}])


class _Service:
    _lock = threading.Lock()
    _next = [1]

    def prepare(self, store, res, obj, old):
        spec = obj.setdefault("spec", {})
        if old is not None:
            spec["clusterIP"] = old.get("spec", {}).get("clusterIP", spec.get("clusterIP"))
            spec["clusterIPs"] = old.get("spec", {}).get("clusterIPs", spec.get("clusterIPs"))
            return
        spec.setdefault("type", "ClusterIP")
        if spec.get("clusterIP") in (None, ""):
            with self._lock:
                n = self._next[0]
                self._next[0] += 1
            spec["clusterIP"] = str(ipaddress.IPv4Address("10.96.0.0") + 10 + n)
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("sessionAffinity", "None")
        obj.setdefault("status", {"loadBalancer": {}})


class _Namespace:
    def prepare(self, store, res, obj, old):
        md = obj["metadata"]
        md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        if old is None or "status" not in obj:
            obj.setdefault("status", {"phase": "Active"})


def builtin_resources():
    R = Resource
    core = [
        R("", "v1", "Namespace", "namespaces", namespaced=False, short_names=["ns"],
          status=True, hooks=_Namespace()),
        R("", "v1", "Secret", "secrets", hooks=_Secret()),
        R("", "v1", "ConfigMap", "configmaps", short_names=["cm"]),
        R("", "v1", "ServiceAccount", "serviceaccounts", short_names=["sa"]),
        R("", "v1", "Service", "services", short_names=["svc"], status=True, hooks=_Service(),
          categories=["all"]),
        R("", "v1", "Event", "events", short_names=["ev"]),
        R("apps", "v1", "ControllerRevision", "controllerrevisions", hooks=_Immutable()),
        R("apps", "v1", "Deployment", "deployments", short_names=["deploy"], status=True,
          generation=True, categories=["all"]),
        R("coordination.k8s.io", "v1", "Lease", "leases"),
        R("events.k8s.io", "v1", "Event", "events", short_names=["ev"]),
        R("rbac.authorization.k8s.io", "v1", "Role", "roles"),
        R("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
        R("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False),
        R("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings",
          namespaced=False),
        R("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
          "customresourcedefinitions", namespaced=False, short_names=["crd", "crds"],
          status=True, generation=True, hooks=None, columns=table.CREATED_AT),
        R("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
          namespaced=False, verbs=["create"]),
    ]
    return core


class Registry:
    """Served resources by (group, version, plural), kept in step with the CRDs in the store."""

    def __init__(self, store):
        self.store = store
        self.lock = threading.RLock()
        self.by_gvr = {}
        self.crd_versions = {}  # CRD name -> [Resource]
        for res in builtin_resources():
            if res.kind == "CustomResourceDefinition":
                res.hooks = _CrdHooks()
            self.add(res)
        store.on_change.append(self._on_change)

    def add(self, res):
        with self.lock:
            self.by_gvr[(res.group, res.version, res.plural)] = res
            if res.verbs != ["create"]:
                self.store.register(res)

    def find(self, group, version, plural):
        with self.lock:
            return self.by_gvr.get((group, version, plural))

    def all(self):
        with self.lock:
            return list(self.by_gvr.values())

    def groups(self):
        """[(group, [versions], preferred)] in a stable order (core first)."""
        with self.lock:
            out = {}
            for (g, v, _), res in self.by_gvr.items():
                vs = out.setdefault(g, [])
                if v not in vs:
                    vs.append(v)
            result = []
            for g in sorted(out, key=lambda g: (g != "", g)):
                vs = sorted(out[g], key=_version_priority)
                result.append((g, vs, vs[0]))
            return result

    def find_by_kind(self, api_version, kind):
        group, _, version = api_version.rpartition("/")
        with self.lock:
            for res in self.by_gvr.values():
                if res.group == group and res.version == version and res.kind == kind:
                    return res
        return None

    def _on_change(self, typ, key, obj):
        if key != ("apiextensions.k8s.io", "customresourcedefinitions"):
            return
        name = obj["metadata"]["name"]
        with self.lock:
            old = self.crd_versions.pop(name, [])
            for res in old:
                self.by_gvr.pop((res.group, res.version, res.plural), None)
            if typ == "DELETED":
                if old:
                    self.store.unregister(old[0].key)
                return
            spec = obj.get("spec", {})
            names = spec.get("names", {})
            served = []
            for v in spec.get("versions", []):
                if not v.get("served", True):
                    continue
                sub = v.get("subresources") or {}
                res = Resource(
                    spec.get("group", ""), v["name"], names.get("kind", ""),
                    names.get("plural", ""), singular=names.get("singular"),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    short_names=names.get("shortNames"), status="status" in sub,
                    generation=True, categories=names.get("categories"),
                    schema=(v.get("schema") or {}).get("openAPIV3Schema"),
                    columns=v.get("additionalPrinterColumns"), strategic=False,
                    list_kind=names.get("listKind"), crd=True, hooks=_CrHooks())
                res.storage = bool(v.get("storage"))
                served.append(res)
                self.by_gvr[(res.group, res.version, res.plural)] = res
            self.crd_versions[name] = served
            if served:
                storage = next((r for r in served if r.storage), served[0])
                self.store.objects.setdefault(storage.key, {})
                self.store.resources[storage.key] = storage


def _version_priority(v):
    """Kubernetes version priority: GA > beta > alpha, higher numbers first, others last."""
    import re
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
    if not m:
        return (3, 0, 0, v)
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), v)


class _CrHooks:
    """Custom objects: the version's structural schema validates every write (422)."""

    def validate(self, store, res, obj, old):
        if not res.schema:
            return
        v = getattr(res, "_validator", None)
        if v is None:
            v = res._validator = schema.Validator(res.schema)
        errors = v.validate(obj, old)
        if errors:
            st = schema.invalid_status(res.kind, res.group, obj["metadata"].get("name", ""),
                                        errors)
            raise ApiError(422, "Invalid", st["message"], st["details"])


class _CrdHooks:
    def prepare(self, store, res, obj, old):
        spec = obj.setdefault("spec", {})
        spec.setdefault("scope", "Namespaced")
        names = spec.setdefault("names", {})
        if names.get("kind"):
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
        for v in spec.get("versions", []):
            v.setdefault("served", True)
        spec.setdefault("conversion", {"strategy": "None"})
        if old is not None and "status" in old:
            obj["status"] = copy.deepcopy(old["status"])
        ts = now_rfc3339()
        obj["status"] = {
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": ts},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": ts},
            ],
            "acceptedNames": copy.deepcopy(names),
            "storedVersions": sorted({v["name"] for v in spec.get("versions", [])
                                      if v.get("storage")}),
        }
        if old is not None and old.get("status", {}).get("conditions"):
            obj["status"]["conditions"] = copy.deepcopy(old["status"]["conditions"])

    def validate(self, store, res, obj, old):
        name = obj["metadata"]["name"]
        spec = obj.get("spec", {})
        names = spec.get("names", {})
        causes = []
        if not spec.get("group"):
            causes.append({"reason": "FieldValueRequired", "field": "spec.group",
                           "message": "Required value"})
        if not names.get("plural"):
            causes.append({"reason": "FieldValueRequired", "field": "spec.names.plural",
                           "message": "Required value"})
        if not names.get("kind"):
            causes.append({"reason": "FieldValueRequired", "field": "spec.names.kind",
                           "message": "Required value"})
        if spec.get("group") and names.get("plural") and \
                name != "%s.%s" % (names["plural"], spec["group"]):
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                           "message": 'Invalid value: "%s": must be spec.names.plural+"."+'
                                      'spec.group' % name})
        if not spec.get("versions"):
            causes.append({"reason": "FieldValueInvalid", "field": "spec.versions",
                           "message": "Invalid value: null: must have exactly one version "
                                      "marked as storage version"})
        elif sum(1 for v in spec["versions"] if v.get("storage")) != 1:
            causes.append({"reason": "FieldValueInvalid", "field": "spec.versions",
                           "message": "Invalid value: %s: must have exactly one version marked "
                                      "as storage version" % "[]v1.CustomResourceDefinition"
                                                            "Version{...}"})
        if not causes:
            for text in schema.check_crd(obj):
                field, _, msg = text.partition(": ")
                causes.append({"reason": "FieldValueInvalid", "field": field if msg else "",
                               "message": msg or text})
        if causes:
            raise invalid(res, name, causes)
