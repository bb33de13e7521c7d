"""The OpenAPI documents kubectl reads: /openapi/v3 (the index), /openapi/v3/<api/v1|apis/G/V>
(one group-version) and /openapi/v2 (JSON; kubectl asks for protobuf there, and the server should
answer 406 to that, which kubectl treats as "no v2": see docs/kubernetes.md).

What kubectl 1.32 does with them:
- apply/create/patch/replace: checks that the PATCH operation of the kind (found by its
  x-kubernetes-group-version-kind) takes the `fieldValidation` query parameter; then it sends
  fieldValidation=Strict and lets the server validate. Without it kubectl validates client-side.
- apply (client-side): uses a strategic merge patch from the v3 schema only when the PATCH
  operation lists application/strategic-merge-patch+json; otherwise a built-in kind falls back to
  kubectl's compiled-in types and a custom resource to a JSON merge patch (the real behaviour for
  CRDs). A built-in given without a schema is therefore published without that content type.
- explain: finds the component schema carrying the kind's x-kubernetes-group-version-kind and
  renders its properties (metadata through a $ref to ObjectMeta, as the real server publishes it).

resources: [{group, version, kind, plural, singular, namespaced, schema, shortNames,
             status or subresources (optional: True / ["status"] when /status is served)}]; schema is the CRD version's
openAPIV3Schema or None for a built-in published without one.
"""
import copy
import hashlib
import json

__all__ = ["v2", "v3_paths", "v3_group_version", "schema_name"]

_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_BUILTIN_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "coordination.k8s.io",
                   "events.k8s.io", "rbac.authorization.k8s.io", "authorization.k8s.io",
                   "apiextensions.k8s.io", "networking.k8s.io", "storage.k8s.io"}


def _gv_path(group, version):
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def schema_name(group, version, kind):
    """The component/definition name the real server uses for a kind."""
    if group == "apiextensions.k8s.io":
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind}"
    if group in _BUILTIN_GROUPS:
        short = "core" if not group else group.split(".")[0]
        return f"io.k8s.api.{short}.{version}.{kind}"
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def _gvk(r):
    return {"group": r["group"], "version": r["version"], "kind": r["kind"]}


def _meta_schemas():
    string = {"type": "string"}
    time = {"type": "string", "format": "date-time"}
    string_map = {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
    return {
        f"{_META}.ObjectMeta": {
            "description": "ObjectMeta is metadata that all persisted resources must have, which "
                           "includes all objects users must create.",
            "type": "object",
            "properties": {
                "annotations": dict(string_map, description="Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata."),
                "creationTimestamp": dict(time, description="CreationTimestamp is a timestamp representing the server time when this object was created."),
                "deletionGracePeriodSeconds": {"type": "integer", "format": "int64", "description": "Number of seconds allowed for this object to gracefully terminate before it will be removed from the system."},
                "deletionTimestamp": dict(time, description="DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."),
                "finalizers": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge", "description": "Must be empty before the object is deleted from the registry."},
                "generateName": dict(string, description="GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
                "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
                "labels": dict(string_map, description="Map of string keys and values that can be used to organize and categorize (scope and select) objects."),
                "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}, "x-kubernetes-list-type": "atomic", "description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow."},
                "name": dict(string, description="Name must be unique within a namespace."),
                "namespace": dict(string, description="Namespace defines the space within which each name must be unique."),
                "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge", "description": "List of objects depended by this object."},
                "resourceVersion": dict(string, description="An opaque value that represents the internal version of this object."),
                "selfLink": dict(string, description="Deprecated: selfLink is a legacy read-only field that is no longer populated by the system."),
                "uid": dict(string, description="UID is the unique in time and space value for this object."),
            },
        },
        f"{_META}.ListMeta": {
            "description": "ListMeta describes metadata that synthetic resources must have.",
            "type": "object",
            "properties": {"continue": string, "remainingItemCount": {"type": "integer", "format": "int64"},
                           "resourceVersion": string, "selfLink": string},
        },
        f"{_META}.Status": {
            "description": "Status is a return value for calls that don't return other objects.",
            "type": "object",
            "properties": {"apiVersion": string, "code": {"type": "integer", "format": "int32"},
                           "details": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                           "kind": string, "message": string,
                           "metadata": {"$ref": f"#/components/schemas/{_META}.ListMeta"},
                           "reason": string, "status": string},
            "x-kubernetes-group-version-kind": [{"group": "", "kind": "Status", "version": "v1"}],
        },
        f"{_META}.DeleteOptions": {
            "description": "DeleteOptions may be provided when deleting an API object.",
            "type": "object",
            "properties": {"apiVersion": string, "kind": string,
                           "dryRun": {"type": "array", "items": string},
                           "gracePeriodSeconds": {"type": "integer", "format": "int64"},
                           "propagationPolicy": string},
        },
        f"{_META}.Patch": {"description": "Patch is provided to give a concrete name and type to "
                                          "the Kubernetes PATCH request body.", "type": "object"},
    }


def _kind_schema(r, ref_prefix):
    """The published schema of a kind: the CRD schema with apiVersion, kind and metadata
    described as the server publishes them, tagged with the kind's GVK."""
    if r.get("schema") is None:
        out = {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
               "description": f"{r['kind']} (published without a schema by the test API server)"}
    else:
        out = copy.deepcopy(r["schema"])
    props = out.setdefault("properties", {}) if r.get("schema") is not None else None
    if props is not None:
        props["apiVersion"] = {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this representation of an "
                           "object. Servers should convert recognized schemas to the latest internal "
                           "value, and may reject unrecognized values. More info: https://git.k8s.io/"
                           "community/contributors/devel/sig-architecture/api-conventions.md#resources"}
        props["kind"] = {
            "type": "string",
            "description": "Kind is a string value representing the REST resource this object "
                           "represents. Servers may infer this from the endpoint the client submits "
                           "requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/"
                           "community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}
        props["metadata"] = {
            "allOf": [{"$ref": f"{ref_prefix}{_META}.ObjectMeta"}],
            "default": {},
            "description": "Standard object's metadata. More info: https://git.k8s.io/community/"
                           "contributors/devel/sig-architecture/api-conventions.md#metadata"}
    out["x-kubernetes-group-version-kind"] = [_gvk(r)]
    return out


def _list_schema(r, ref_prefix, name):
    return {
        "description": f"{r['kind']}List is a list of {r['kind']}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": f"{ref_prefix}{name}"},
                      "description": f"List of {r['plural']}."},
            "kind": {"type": "string"},
            "metadata": {"allOf": [{"$ref": f"{ref_prefix}{_META}.ListMeta"}], "default": {}},
        },
        "x-kubernetes-group-version-kind": [dict(_gvk(r), kind=r["kind"] + "List")],
    }


def _v2_schema(node):
    """OpenAPI v2 cannot say nullable or carry allOf next to siblings the way v3 does."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "nullable":
                continue
            if k == "allOf" and len(v) == 1 and "$ref" in v[0]:
                out["$ref"] = v[0]["$ref"]
                continue
            out[k] = _v2_schema(v)
        if "$ref" in out:
            return {k: out[k] for k in ("$ref", "description") if k in out}
        return out
    if isinstance(node, list):
        return [_v2_schema(x) for x in node]
    return node


_WRITE_PARAMS = [
    ("dryRun", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed"),
    ("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
    ("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict"),
]
_LIST_PARAMS = ["allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
                "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds",
                "watch"]
_INT_PARAMS = {"limit", "timeoutSeconds", "gracePeriodSeconds"}
_BOOL_PARAMS = {"allowWatchBookmarks", "watch", "sendInitialEvents", "force"}


class _Builder:
    def __init__(self, v3):
        self.v3 = v3
        self.ref = "#/components/schemas/" if v3 else "#/definitions/"

    def param(self, name, where="query", description="", required=False):
        typ = "integer" if name in _INT_PARAMS else "boolean" if name in _BOOL_PARAMS else "string"
        p = {"name": name, "in": where, "description": description or name}
        if required:
            p["required"] = True
        if self.v3:
            p["schema"] = {"type": typ, "uniqueItems": True}
        else:
            p["type"] = typ
            p["uniqueItems"] = True
        return p

    def body(self, ref, content_types):
        if self.v3:
            return {"requestBody": {"required": True, "content": {
                ct: {"schema": {"$ref": ref}} for ct in content_types}}}
        return {"parameters": [{"name": "body", "in": "body", "required": True,
                                "schema": {"$ref": ref}}],
                "consumes": list(content_types)}

    def response(self, ref, codes=("200",)):
        if self.v3:
            content = {ct: {"schema": {"$ref": ref}} for ct in
                       ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")}
            return {"responses": {c: {"description": "OK" if c == "200" else "Created" if c == "201" else "Accepted",
                                      "content": content} for c in codes}}
        return {"produces": ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
                "responses": {c: {"description": "OK", "schema": {"$ref": ref}} for c in codes}}

    def operation(self, r, op_id, action, description, params=(), body=None, response=None):
        op = {"description": description, "operationId": op_id,
              "tags": [_tag(r)], "parameters": list(params)}
        if body:
            extra = body.get("parameters", [])
            op["parameters"] = op["parameters"] + extra
            op.update({k: v for k, v in body.items() if k != "parameters"})
        if response:
            op.update(response)
        if not self.v3:
            op["schemes"] = ["https"]
        op["x-kubernetes-action"] = action
        op["x-kubernetes-group-version-kind"] = _gvk(r)
        return op

    def paths(self, r):
        name = schema_name(r["group"], r["version"], r["kind"])
        ref, list_ref = f"{self.ref}{name}", f"{self.ref}{name}List"
        status_ref = f"{self.ref}{_META}.Status"
        prefix = "/" + _gv_path(r["group"], r["version"])
        g = "".join(p.capitalize() for p in (r["group"] or "core").split(".")[:1])
        v = r["version"].capitalize()
        scope = "Namespaced" if r["namespaced"] else ""
        kind = r["kind"]
        write = [self.param(n, description=d) for n, d in _WRITE_PARAMS]
        listp = [self.param(n) for n in _LIST_PARAMS]
        patch_types = ["application/json-patch+json", "application/merge-patch+json",
                       "application/apply-patch+yaml"]
        if r.get("schema") is not None and r["group"] in _BUILTIN_GROUPS:
            patch_types.append("application/strategic-merge-patch+json")
        common = [self.param("pretty", description="If 'true', then the output is pretty printed.")]
        ns = [self.param("namespace", "path", "object name and auth scope, such as for teams and projects", True)] if r["namespaced"] else []
        named = [self.param("name", "path", f"name of the {kind}", True)]
        base = f"{prefix}/namespaces/{{namespace}}/{r['plural']}" if r["namespaced"] else f"{prefix}/{r['plural']}"
        out = {
            base: {
                "get": self.operation(r, f"list{g}{v}{scope}{kind}", "list", f"list objects of kind {kind}", listp, None, self.response(list_ref)),
                "post": self.operation(r, f"create{g}{v}{scope}{kind}", "post", f"create a {kind}", write, self.body(ref, ["*/*"]), self.response(ref, ("200", "201", "202"))),
                "delete": self.operation(r, f"deletecollection{g}{v}{scope}{kind}", "deletecollection", f"delete collection of {kind}", listp + [self.param("gracePeriodSeconds"), self.param("propagationPolicy")], None, self.response(status_ref)),
                "parameters": ns + common,
            },
            f"{base}/{{name}}": {
                "get": self.operation(r, f"read{g}{v}{scope}{kind}", "get", f"read the specified {kind}", [], None, self.response(ref)),
                "put": self.operation(r, f"replace{g}{v}{scope}{kind}", "put", f"replace the specified {kind}", write, self.body(ref, ["*/*"]), self.response(ref, ("200", "201"))),
                "patch": self.operation(r, f"patch{g}{v}{scope}{kind}", "patch", f"partially update the specified {kind}", write + [self.param("force")], self.body(f"{self.ref}{_META}.Patch", patch_types), self.response(ref, ("200", "201"))),
                "delete": self.operation(r, f"delete{g}{v}{scope}{kind}", "delete", f"delete a {kind}", [self.param("dryRun"), self.param("gracePeriodSeconds"), self.param("propagationPolicy")], self.body(f"{self.ref}{_META}.DeleteOptions", ["*/*"]), self.response(status_ref, ("200", "202"))),
                "parameters": named + ns + common,
            },
        }
        if r.get("status") or "status" in (r.get("subresources") or []):
            out[f"{base}/{{name}}/status"] = {
                "get": self.operation(r, f"read{g}{v}{scope}{kind}Status", "get", f"read status of the specified {kind}", [], None, self.response(ref)),
                "put": self.operation(r, f"replace{g}{v}{scope}{kind}Status", "put", f"replace status of the specified {kind}", write, self.body(ref, ["*/*"]), self.response(ref, ("200", "201"))),
                "patch": self.operation(r, f"patch{g}{v}{scope}{kind}Status", "patch", f"partially update status of the specified {kind}", write + [self.param("force")], self.body(f"{self.ref}{_META}.Patch", patch_types), self.response(ref, ("200", "201"))),
                "parameters": named + ns + common,
            }
        if r["namespaced"]:
            out[f"{prefix}/{r['plural']}"] = {
                "get": self.operation(r, f"list{g}{v}{kind}ForAllNamespaces", "list", f"list objects of kind {kind}", listp, None, self.response(list_ref)),
                "parameters": common,
            }
        return out

    def schemas(self, r):
        name = schema_name(r["group"], r["version"], r["kind"])
        kind_schema = _kind_schema(r, self.ref)
        list_schema = _list_schema(r, self.ref, name)
        if not self.v3:
            kind_schema, list_schema = _v2_schema(kind_schema), _v2_schema(list_schema)
        return {name: kind_schema, f"{name}List": list_schema}


def _tag(r):
    return (r["group"] or "core").split(".")[0] + "_" + r["version"]


def _meta_for(v3):
    metas = _meta_schemas()
    if v3:
        return metas
    return {k: json.loads(json.dumps(_v2_schema(v)).replace("#/components/schemas/", "#/definitions/"))
            for k, v in metas.items()}


def v2(resources):
    """The swagger 2.0 document (/openapi/v2 as JSON)."""
    b = _Builder(v3=False)
    paths, definitions = {}, _meta_for(False)
    for r in resources:
        paths.update(b.paths(r))
        definitions.update(b.schemas(r))
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": dict(sorted(paths.items())), "definitions": dict(sorted(definitions.items())),
            "security": [{"BearerToken": []}],
            "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication",
                                                    "in": "header", "name": "authorization",
                                                    "type": "apiKey"}}}


def _normalize_gv(gv):
    gv = gv.strip("/")
    if gv.startswith("api/") or gv.startswith("apis/"):
        return gv
    if "/" not in gv:
        return f"api/{gv}"
    return f"apis/{gv}"


def v3_group_version(resources, gv):
    """The OpenAPI 3.0 document of one group-version ("apis/berth.dev/v1alpha1", "api/v1", or
    "berth.dev/v1alpha1"/"v1"); None when no resource is in it (the server answers 404)."""
    want = _normalize_gv(gv)
    members = [r for r in resources if _gv_path(r["group"], r["version"]) == want]
    if not members:
        return None
    b = _Builder(v3=True)
    paths, schemas = {}, _meta_for(True)
    for r in members:
        paths.update(b.paths(r))
        schemas.update(b.schemas(r))
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": dict(sorted(paths.items())),
            "components": {"schemas": dict(sorted(schemas.items())),
                           "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}}}}


def v3_paths(resources):
    """The /openapi/v3 index: every group-version with the URL of its document. The hash in the
    URL changes whenever the document does (clients cache by it)."""
    gvs = sorted({_gv_path(r["group"], r["version"]) for r in resources})
    paths = {}
    for gv in gvs:
        doc = json.dumps(v3_group_version(resources, gv), sort_keys=True).encode()
        digest = hashlib.sha512(doc).hexdigest().upper()
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}
