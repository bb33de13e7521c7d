"""CRD schemas for the test API server: admission of the CRD itself (check_crd) and, per served
version, what the real server does to a custom resource on every write (Validator): prune unknown
fields, apply defaults, validate against the OpenAPI schema, list types and CEL rules.

Fidelity goals, in order: accept and refuse the same objects as kube-apiserver 1.32; word every
error as it does (apimachinery's field.Error: "<field>: <body>", with the body in the Status
cause's message); refuse, when the CRD is created, anything this module cannot evaluate, so that a
test never passes because a rule was silently skipped.

Errors are dicts {"reason", "message", "field"}: `reason` is the StatusCause reason
(FieldValueInvalid, FieldValueRequired, ...), `message` the field error's body (what the server
puts in the cause), `field` the path. field_error_text() joins them as the server's Status message
does; invalid_status() builds the whole 422 Status.

Not implemented (check_crd refuses a CRD that needs them): messageExpression, optionalOldSelf,
$ref, not/anyOf/allOf/oneOf, uniqueItems, x-kubernetes-embedded-resource. The CEL cost budget is
not estimated.
"""
import base64
import copy
import datetime
import ipaddress
import re
import uuid

import cel
import table

__all__ = ["check_crd", "Validator", "field_error_text", "invalid_status"]

_MISSING = object()

# metav1.ObjectMeta's fields: a custom resource's metadata is decoded into it, so anything else is
# an unknown field (reported under Strict/Warn, then dropped) even though the CRD schema leaves
# metadata open.
_OBJECT_META = {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
                "generation", "creationTimestamp", "deletionTimestamp",
                "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
                "finalizers", "managedFields"}
_OWNER_REFERENCE = {"apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion"}
_MANAGED_FIELDS = {"manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1",
                   "subresource"}


def _metadata_unknown(meta):
    if not isinstance(meta, dict):
        return []
    found = [f"metadata.{k}" for k in meta if k not in _OBJECT_META]
    for field, known in (("ownerReferences", _OWNER_REFERENCE), ("managedFields", _MANAGED_FIELDS)):
        for i, item in enumerate(meta.get(field) or []):
            if isinstance(item, dict):
                found += [f"metadata.{field}[{i}].{k}" for k in item if k not in known]
    return found


def _metadata_prune(meta):
    if not isinstance(meta, dict):
        return
    for k in [k for k in meta if k not in _OBJECT_META]:
        del meta[k]
    for field, known in (("ownerReferences", _OWNER_REFERENCE), ("managedFields", _MANAGED_FIELDS)):
        for item in meta.get(field) or []:
            if isinstance(item, dict):
                for k in [k for k in item if k not in known]:
                    del item[k]


# ---- field errors, worded like k8s.io/apimachinery/pkg/util/validation/field ------------------

def _go_float(v):
    """Go's %v of a float64: %g with the shortest digits, so %e below 1e-4 and from 1e6 on."""
    if v != v or v in (float("inf"), float("-inf")):
        return {float("inf"): "+Inf", float("-inf"): "-Inf"}.get(v, "NaN")
    text = repr(v)
    mantissa, _, exp = text.partition("e")
    digits = mantissa.replace("-", "").replace(".", "").lstrip("0") or "0"
    if exp:
        exponent = int(exp)
    else:
        whole = mantissa.replace("-", "").split(".")[0]
        exponent = len(whole.lstrip("0")) - 1 if whole.lstrip("0") else -(
            len(mantissa.split(".")[1]) - len(mantissa.split(".")[1].lstrip("0")) + 1)
    digits = digits.rstrip("0") or "0"
    if exponent < -4 or exponent >= 6:
        sign = "-" if v < 0 else ""
        frac = digits[1:]
        return f"{sign}{digits[0]}{'.' + frac if frac else ''}e{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"
    if v == int(v):
        return str(int(v))
    return repr(v)


def _go_value(v):
    """How field.Error.ErrorBody prints a bad value decoded from JSON."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, str):
        return _go_quote(v)
    return _go_sharp(v)


def _go_quote(s):
    """Go's %q: a double-quoted string with Go escapes."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_sharp(v):
    """Go's %#v of a decoded JSON value (maps print with sorted keys, as fmt does)."""
    if isinstance(v, dict):
        inner = ", ".join(f"{_go_quote(k)}:{_go_sharp_inner(v[k])}" for k in sorted(v))
        return "map[string]interface {}{" + inner + "}"
    if isinstance(v, list):
        return "[]interface {}{" + ", ".join(_go_sharp_inner(x) for x in v) + "}"
    return _go_value(v)


def _go_sharp_inner(v):
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v}"
    if isinstance(v, float):
        return _go_float(v)
    if v is None:
        return "interface {}(nil)"
    return _go_sharp(v)


def _err(reason, field, body):
    return {"reason": reason, "message": body, "field": field}


def _invalid(field, value, detail):
    return _err("FieldValueInvalid", field, f"Invalid value: {_go_value(value)}: {detail}")


def _type_invalid(field, value, detail):
    return _err("FieldValueTypeInvalid", field, f"Invalid value: {_go_value(value)}: {detail}")


def _required(field, detail=""):
    return _err("FieldValueRequired", field, "Required value" + (f": {detail}" if detail else ""))


def _forbidden(field, detail):
    return _err("FieldValueForbidden", field, "Forbidden" + (f": {detail}" if detail else ""))


def _duplicate(field, value):
    return _err("FieldValueDuplicate", field, f"Duplicate value: {_go_value(value)}")


def _not_supported(field, value, allowed):
    detail = ", ".join(_go_quote(a) for a in allowed)
    body = f"Unsupported value: {_go_value(value)}"
    return _err("FieldValueNotSupported", field, body + (f": supported values: {detail}" if allowed else ""))


def _too_long(field, max_length):
    unit = "byte" if max_length == 1 else "bytes"
    return _err("FieldValueTooLong", field, f"Too long: may not be more than {max_length} {unit}")


def _too_many(field, actual, maximum):
    unit = "item" if maximum == 1 else "items"
    return _err("FieldValueTooMany", field, f"Too many: {actual}: must have at most {maximum} {unit}")


def field_error_text(error):
    """One error as the server prints it in a Status message: "<field>: <body>"."""
    return f"{error['field']}: {error['message']}" if error["field"] else error["message"]


def invalid_status(kind, group, name, errors):
    """The 422 Status the server answers when an object fails validation."""
    qualified = f"{kind}.{group}" if group else kind
    texts = []
    for e in errors:  # ToAggregate drops repeated messages
        t = field_error_text(e)
        if t not in texts:
            texts.append(t)
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f'{qualified} "{name}" is invalid: {joined}',
        "reason": "Invalid",
        "details": {"name": name, "group": group, "kind": kind,
                    "causes": [{"reason": e["reason"], "message": e["message"], "field": e["field"]}
                               for e in errors]},
        "code": 422,
    }


# ---- paths ----------------------------------------------------------------------------------

def _child(path, name):
    return f"{path}.{name}" if path else name


def _key(path, key):
    return f"{path}[{key}]"


# ---- JSON types as the schema sees them ------------------------------------------------------

def _json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "integer" if v == int(v) and abs(v) < 2 ** 63 else "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _type_ok(schema_type, v):
    actual = _json_type(v)
    if schema_type == "number":
        return actual in ("integer", "number")
    if schema_type == "integer":
        return actual == "integer"
    return actual == schema_type


# ---- formats (the ones kube-openapi checks; unknown formats pass, as on the real server) ------

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$")


def _format_ok(fmt, v):
    try:
        if fmt == "date-time":
            if not _DATE_TIME.match(v):
                return False
            datetime.datetime.fromisoformat(v[:19].replace("t", "T").replace(" ", "T"))
        elif fmt == "date":
            datetime.date.fromisoformat(v)
        elif fmt == "byte":
            base64.b64decode(v, validate=True)
        elif fmt == "uuid":
            return re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", v) is not None
        elif fmt == "ipv4":
            ipaddress.IPv4Address(v)
        elif fmt == "ipv6":
            ipaddress.IPv6Address(v)
        elif fmt == "hostname":
            return _HOSTNAME.match(v) is not None
        elif fmt == "cidr":
            ipaddress.ip_network(v, strict=False)
        elif fmt in ("uuid3", "uuid4", "uuid5"):
            return uuid.UUID(v).version == int(fmt[-1])
    except (ValueError, TypeError):
        return False
    return True


_STRING_FORMATS = {"date-time", "date", "byte", "uuid", "uuid3", "uuid4", "uuid5", "ipv4", "ipv6",
                   "hostname", "cidr"}


# ---- the CRD's own admission ----------------------------------------------------------------

_UNSUPPORTED = ("$ref", "not", "anyOf", "allOf", "oneOf", "x-kubernetes-embedded-resource",
                "patternProperties", "dependencies", "additionalItems", "definitions")


def _walk_schema(node, path, problems, root=False, in_metadata=False):
    if not isinstance(node, dict):
        problems.append(f"{path}: Invalid value: must be an object")
        return
    for word in _UNSUPPORTED:
        if word in node:
            problems.append(f"{path}.{word}: Forbidden: not supported by the test API server")
    if node.get("uniqueItems") is True:
        problems.append(f"{path}.uniqueItems: Forbidden: uniqueItems cannot be set to true since "
                        "the runtime complexity becomes quadratic")
    typ = node.get("type")
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    if not typ and not int_or_string and not preserve:
        problems.append(f"{path}.type: Required value: must not be empty for specified "
                        f"{'object' if 'properties' in node else 'array' if 'items' in node else 'value'} fields")
    if root and typ != "object":
        problems.append(f"{path}.type: Invalid value: {_go_quote(str(typ))}: must be object at the root")
    if "properties" in node and "additionalProperties" in node and node["additionalProperties"] is not False:
        problems.append(f"{path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive")
    if typ == "array" and "items" not in node:
        problems.append(f"{path}.items: Required value: must be specified")
    list_type = node.get("x-kubernetes-list-type")
    if list_type is not None:
        if typ != "array":
            problems.append(f"{path}.x-kubernetes-list-type: Invalid value: {_go_quote(list_type)}: must only be used if type is array")
        elif list_type not in ("atomic", "set", "map"):
            problems.append(f"{path}.x-kubernetes-list-type: Unsupported value: {_go_quote(list_type)}: "
                            'supported values: "atomic", "set", "map"')
        elif list_type == "map":
            keys = node.get("x-kubernetes-list-map-keys") or []
            item = node.get("items") or {}
            if not keys:
                problems.append(f"{path}.x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map")
            for k in keys:
                prop = (item.get("properties") or {}).get(k)
                if prop is None:
                    problems.append(f"{path}.x-kubernetes-list-map-keys: Invalid value: {_go_quote(k)}: entries must all be names of item properties")
                elif k not in (item.get("required") or []) and "default" not in prop:
                    problems.append(f"{path}.items.properties[{k}]: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property")
        elif list_type == "set":
            item_type = (node.get("items") or {}).get("type")
            if item_type in ("object", "array"):
                problems.append(f"{path}.items.type: Invalid value: {_go_quote(item_type)}: must be a scalar type if parent array type is set")
    for i, rule in enumerate(node.get("x-kubernetes-validations") or []):
        rpath = f"{path}.x-kubernetes-validations[{i}]"
        if not isinstance(rule, dict) or not rule.get("rule"):
            problems.append(f"{rpath}.rule: Required value")
            continue
        if "messageExpression" in rule:
            problems.append(f"{rpath}.messageExpression: Forbidden: not supported by the test API server")
        if rule.get("optionalOldSelf"):
            problems.append(f"{rpath}.optionalOldSelf: Forbidden: not supported by the test API server")
        if rule.get("reason") not in (None, "FieldValueInvalid", "FieldValueForbidden",
                                      "FieldValueRequired", "FieldValueDuplicate"):
            problems.append(f"{rpath}.reason: Unsupported value: {_go_quote(str(rule['reason']))}: supported values: "
                            '"FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"')
        if rule.get("fieldPath") and not re.fullmatch(r"(\.[A-Za-z_][A-Za-z0-9_]*)+", rule["fieldPath"]):
            problems.append(f"{rpath}.fieldPath: Invalid value: {_go_quote(rule['fieldPath'])}: "
                            "only simple field paths are supported by the test API server")
        try:
            program = cel.compile_rule(rule["rule"])
        except cel.CompileError as e:
            problems.append(f"{rpath}.rule: Invalid value: {_go_quote(rule['rule'])}: compilation failed: {e}")
            continue
        if program.uses_old_self and root:
            problems.append(f"{rpath}.rule: Invalid value: {_go_quote(rule['rule'])}: oldSelf cannot be used on the root of the schema")
    for name, sub in (node.get("properties") or {}).items():
        if root and name == "metadata":
            extra = set(sub) - {"type", "description", "properties"}
            allowed_props = {"name", "generateName"}
            if extra or set((sub.get("properties") or {})) - allowed_props:
                problems.append(f"{path}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified")
            continue
        _walk_schema(sub, f"{path}.properties[{name}]", problems)
    if isinstance(node.get("additionalProperties"), dict):
        _walk_schema(node["additionalProperties"], f"{path}.additionalProperties", problems)
    if isinstance(node.get("items"), dict):
        _walk_schema(node["items"], f"{path}.items", problems)
    if "default" in node and not root:
        default_errors = Validator(node).validate_value(copy.deepcopy(node["default"]), f"{path}.default")
        for e in default_errors:
            problems.append(field_error_text(e))


def check_crd(crd):
    """The messages the real server would refuse this CRD with (empty when it is acceptable),
    plus a refusal for every construct this module cannot evaluate."""
    problems = []
    if not isinstance(crd, dict) or crd.get("apiVersion") != "apiextensions.k8s.io/v1":
        return ["apiVersion: Unsupported value: only apiextensions.k8s.io/v1 is served"]
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    if not group or "." not in group:
        problems.append(f"spec.group: Invalid value: {_go_quote(group)}: should be a domain with at least one dot")
    for key in ("plural", "kind"):
        if not names.get(key):
            problems.append(f"spec.names.{key}: Required value")
    expected = f"{names.get('plural', '')}.{group}"
    name = (crd.get("metadata") or {}).get("name", "")
    if name != expected:
        problems.append(f"metadata.name: Invalid value: {_go_quote(name)}: must be spec.names.plural+\".\"+spec.group")
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        problems.append(f"spec.scope: Unsupported value: {_go_quote(str(spec.get('scope')))}: "
                        'supported values: "Cluster", "Namespaced"')
    versions = spec.get("versions") or []
    if not versions:
        problems.append("spec.versions: Invalid value: null: must have exactly one version marked as storage version")
    if sum(1 for v in versions if v.get("storage")) != 1:
        problems.append("spec.versions: Invalid value: " + _go_sharp(versions)[:60] +
                        ": must have exactly one version marked as storage version")
    for i, version in enumerate(versions):
        vpath = f"spec.versions[{i}]"
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            problems.append(f"{vpath}.schema.openAPIV3Schema: Required value: schemas are required")
            continue
        _walk_schema(schema, f"{vpath}.schema.openAPIV3Schema", problems, root=True)
        for j, col in enumerate(version.get("additionalPrinterColumns") or []):
            cpath = f"{vpath}.additionalPrinterColumns[{j}]"
            if col.get("type") not in ("integer", "number", "string", "boolean", "date"):
                problems.append(f"{cpath}.type: Unsupported value: {_go_quote(str(col.get('type')))}: "
                                'supported values: "boolean", "date", "integer", "number", "string"')
            if not str(col.get("jsonPath", "")).startswith("."):
                problems.append(f"{cpath}.jsonPath: Invalid value: {_go_quote(str(col.get('jsonPath')))}: must be a simple json path starting with .")
            elif table.check_jsonpath(col["jsonPath"]):
                problems.append(f"{cpath}.jsonPath: Invalid value: {_go_quote(col['jsonPath'])}: "
                                f"not supported by the test API server: {table.check_jsonpath(col['jsonPath'])}")
    return problems


# ---- the per-version validator ---------------------------------------------------------------

class Validator:
    """What the server does with one CRD version's openAPIV3Schema. Stateless after construction
    (the CEL programs are compiled once); safe to share between requests."""

    def __init__(self, version_schema):
        self.schema = version_schema or {"type": "object"}
        self._programs = {}

    # -- defaulting (structural defaulting: set missing fields, then recurse, like the server) --
    def default(self, obj):
        self._default(obj, self.schema, root=True)

    def _default(self, value, schema, root=False):
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            for name, sub in props.items():
                if root and name == "metadata":
                    continue
                if name in value and value[name] is None and not sub.get("nullable") and "default" in sub:
                    del value[name]  # a null for a non-nullable field is pruned before defaulting
                if name not in value and "default" in sub:
                    value[name] = copy.deepcopy(sub["default"])
            for name, child in value.items():
                if root and name == "metadata":
                    continue
                if name in props:
                    self._default(child, props[name])
                elif isinstance(schema.get("additionalProperties"), dict):
                    self._default(child, schema["additionalProperties"])
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for item in value:
                self._default(item, schema["items"])

    # -- unknown fields and pruning --
    def unknown_fields(self, obj):
        """Paths ("spec.foo", "spec.list[0].bar") that the schema does not declare, in document
        order; what a Strict fieldValidation refuses and a Warn one reports."""
        found = []
        self._unknown(obj, self.schema, "", found, root=True)
        return found

    def _unknown(self, value, schema, path, found, root=False):
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
            for name, child in value.items():
                if root and name == "metadata":
                    found.extend(_metadata_unknown(child))
                    continue
                if root and name in ("apiVersion", "kind"):
                    continue
                if name in props:
                    self._unknown(child, props[name], _child(path, name), found)
                elif isinstance(extra, dict):
                    self._unknown(child, extra, _key(path, name) if path else name, found)
                elif extra is True or preserve:
                    continue
                else:
                    found.append(_child(path, name))
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                self._unknown(item, schema["items"], f"{path}[{i}]", found)

    def prune(self, obj):
        self._prune(obj, self.schema, root=True)

    def _prune(self, value, schema, root=False):
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
            for name in list(value):
                if root and name == "metadata":
                    _metadata_prune(value[name])
                    continue
                if root and name in ("apiVersion", "kind"):
                    continue
                if name in props:
                    self._prune(value[name], props[name])
                elif isinstance(extra, dict):
                    self._prune(value[name], extra)
                elif not (extra is True or preserve):
                    del value[name]
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for item in value:
                self._prune(item, schema["items"])

    # -- validation --
    def validate(self, obj, old=None):
        """Schema, list-type and CEL errors for a create (old None) or an update. On update,
        unchanged values are not re-validated (CRD validation ratcheting, on by default since
        1.30) and transition rules (those using oldSelf) run where an old value correlates."""
        errors = []
        root_old = old if isinstance(old, dict) else _MISSING
        self._schema_errors(obj, self.schema, "", root_old, errors, root=True)
        self._list_errors(obj, self.schema, "", root_old, errors, root=True)
        self._cel_errors(obj, self.schema, "", root_old, errors, root=True)
        return errors

    def validate_value(self, value, path):
        """Schema errors of one value against this (sub)schema; for checking defaults."""
        errors = []
        self._schema_errors(value, self.schema, path, _MISSING, errors)
        return errors

    def _schema_errors(self, value, schema, path, old, errors, root=False):
        if old is not _MISSING and value == old and not root:
            return  # ratcheting: an unchanged value keeps whatever it had
        name = path or "<root>"
        if value is None:
            if schema.get("nullable"):
                return
            typ = schema.get("type")
            if typ:
                errors.append(_type_invalid(path, "null", f'{name} in body must be of type {typ}: "null"'))
            return
        typ = schema.get("type")
        if schema.get("x-kubernetes-int-or-string"):
            if _json_type(value) not in ("integer", "string"):
                errors.append(_type_invalid(path, _json_type(value),
                                            f'{name} in body must be of type integer,string: "{_json_type(value)}"'))
                return
        elif typ and not _type_ok(typ, value):
            actual = _json_type(value)
            errors.append(_type_invalid(path, actual, f'{name} in body must be of type {typ}: "{actual}"'))
            return
        if isinstance(value, dict):
            self._object_errors(value, schema, path, old, errors, root)
        elif isinstance(value, list):
            self._array_errors(value, schema, path, old, errors)
        elif isinstance(value, str):
            self._string_errors(value, schema, path, errors)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self._number_errors(value, schema, path, errors)
        if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
            errors.append(_not_supported(path, value, [_enum_text(e) for e in schema["enum"]]))

    def _object_errors(self, value, schema, path, old, errors, root):
        name = path or "<root>"
        props = schema.get("properties") or {}
        for req in schema.get("required") or []:
            if req not in value:
                errors.append(_required(_child(path, req)))
        old_map = old if isinstance(old, dict) else {}
        for key, child in value.items():
            if root and key == "metadata":
                continue
            if key in props:
                self._schema_errors(child, props[key], _child(path, key),
                                    old_map.get(key, _MISSING), errors)
            elif isinstance(schema.get("additionalProperties"), dict):
                self._schema_errors(child, schema["additionalProperties"], _key(path, key),
                                    old_map.get(key, _MISSING), errors)
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append(_too_many(path, len(value), schema["maxProperties"]))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            errors.append(_invalid(path, len(value),
                                   f"{name} in body should have at least {schema['minProperties']} properties"))

    def _array_errors(self, value, schema, path, old, errors):
        name = path or "<root>"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(_too_many(path, len(value), schema["maxItems"]))
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(_invalid(path, len(value),
                                   f"{name} in body should have at least {schema['minItems']} items"))
        items = schema.get("items")
        if isinstance(items, dict):
            olds = _correlate_items(schema, old)
            for i, item in enumerate(value):
                self._schema_errors(item, items, f"{path}[{i}]", olds(item), errors)

    def _string_errors(self, value, schema, path, errors):
        name = path or "<root>"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(_too_long(path, schema["maxLength"]))
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(_invalid(path, value, f"{name} in body should be at least {schema['minLength']} chars long"))
        if "pattern" in schema and re.search(_python_regex(schema["pattern"]), value) is None:
            errors.append(_invalid(path, value, f"{name} in body should match '{schema['pattern']}'"))
        fmt = schema.get("format")
        if fmt in _STRING_FORMATS and not _format_ok(fmt, value):
            errors.append(_invalid(path, value, f"{name} in body must be of type {fmt}: {_go_quote(value)}"))

    def _number_errors(self, value, schema, path, errors):
        name = path or "<root>"
        if "multipleOf" in schema and value % schema["multipleOf"] != 0:
            errors.append(_invalid(path, value, f"{name} in body should be a multiple of {_num(schema['multipleOf'])}"))
        if "maximum" in schema:
            limit = schema["maximum"]
            if schema.get("exclusiveMaximum") and value >= limit:
                errors.append(_invalid(path, value, f"{name} in body should be less than {_num(limit)}"))
            elif value > limit:
                errors.append(_invalid(path, value, f"{name} in body should be less than or equal to {_num(limit)}"))
        if "minimum" in schema:
            limit = schema["minimum"]
            if schema.get("exclusiveMinimum") and value <= limit:
                errors.append(_invalid(path, value, f"{name} in body should be greater than {_num(limit)}"))
            elif value < limit:
                errors.append(_invalid(path, value, f"{name} in body should be greater than or equal to {_num(limit)}"))

    def _list_errors(self, value, schema, path, old, errors, root=False):
        """x-kubernetes-list-type set and map: duplicates (structurallisttype)."""
        if old is not _MISSING and value == old and not root:
            return
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            old_map = old if isinstance(old, dict) else {}
            for key, child in value.items():
                if root and key == "metadata":
                    continue
                sub = props.get(key)
                if sub is None and isinstance(schema.get("additionalProperties"), dict):
                    sub = schema["additionalProperties"]
                    child_path = _key(path, key)
                else:
                    child_path = _child(path, key)
                if sub is not None:
                    self._list_errors(child, sub, child_path, old_map.get(key, _MISSING), errors)
        elif isinstance(value, list):
            list_type = schema.get("x-kubernetes-list-type")
            if list_type == "set":
                seen = []
                for i, item in enumerate(value):
                    if any(_same(item, s) for s in seen):
                        errors.append(_duplicate(f"{path}[{i}]", item))
                    else:
                        seen.append(item)
            elif list_type == "map":
                keys = schema.get("x-kubernetes-list-map-keys") or []
                seen = []
                for i, item in enumerate(value):
                    if not isinstance(item, dict):
                        continue
                    ident = {k: item.get(k) for k in keys if k in item}
                    if ident in seen:
                        errors.append(_duplicate(f"{path}[{i}]", ident))
                    else:
                        seen.append(ident)
            items = schema.get("items")
            if isinstance(items, dict):
                olds = _correlate_items(schema, old)
                for i, item in enumerate(value):
                    self._list_errors(item, items, f"{path}[{i}]", olds(item), errors)

    def _program(self, rule_text):
        program = self._programs.get(rule_text)
        if program is None:
            program = self._programs[rule_text] = cel.compile_rule(rule_text)
        return program

    def _cel_errors(self, value, schema, path, old, errors, root=False):
        """x-kubernetes-validations: the node's own rules first, then its children (the order of
        the server's CEL validator)."""
        if value is None:
            return
        unchanged = old is not _MISSING and value == old
        typ = schema.get("type") or ("object" if isinstance(value, dict) else _json_type(value))
        for rule in schema.get("x-kubernetes-validations") or []:
            program = self._program(rule["rule"])
            if program.uses_old_self and old is _MISSING:
                continue  # a transition rule runs only on an update with a correlated old value
            if unchanged and not program.uses_old_self:
                continue  # ratcheting
            text = (rule.get("message") or "").strip() or rule["rule"].strip()
            try:
                # self is the decoded JSON as stored: pruned and defaulted before validation.
                result = program.evaluate(value, old if old is not _MISSING else None)
            except cel.EvalError as e:
                errors.append(_invalid(path, typ, f"{e} evaluating rule: {text}"))
                continue
            if result is True:
                continue
            if not isinstance(result, bool):
                errors.append(_invalid(path, typ, f"rule did not evaluate to a bool: {text}"))
                continue
            detail = (rule.get("message") or "").strip() or f"failed rule: {rule['rule'].strip()}"
            field = path + (rule.get("fieldPath") or "") if rule.get("fieldPath") else path
            if field.startswith("."):
                field = field[1:]
            errors.append(_rule_error(rule.get("reason"), field, typ, detail))
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            old_map = old if isinstance(old, dict) else {}
            for key, child in value.items():
                if root and key == "metadata":
                    continue
                if key in props:
                    self._cel_errors(child, props[key], _child(path, key), old_map.get(key, _MISSING), errors)
                elif isinstance(extra, dict):
                    self._cel_errors(child, extra, _key(path, key), old_map.get(key, _MISSING), errors)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            olds = _correlate_items(schema, old, cel_only=True)
            for i, item in enumerate(value):
                self._cel_errors(item, schema["items"], f"{path}[{i}]", olds(item), errors)


def _rule_error(reason, field, typ, detail):
    if reason == "FieldValueForbidden":
        return _forbidden(field, detail)
    if reason == "FieldValueRequired":
        return _required(field, detail)
    if reason == "FieldValueDuplicate":
        return _duplicate(field, typ)
    return _invalid(field, typ, detail)


def _correlate_items(schema, old, cel_only=False):
    """A function from a new list item to its old counterpart, or _MISSING. Only map lists
    correlate for CEL (by their keys); for ratcheting, sets also correlate by value."""
    if not isinstance(old, list):
        return lambda item: _MISSING
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []

        def by_key(item):
            if not isinstance(item, dict):
                return _MISSING
            for o in old:
                if isinstance(o, dict) and all(o.get(k) == item.get(k) for k in keys):
                    return o
            return _MISSING
        return by_key
    if list_type == "set" and not cel_only:
        return lambda item: item if any(_same(item, o) for o in old) else _MISSING
    return lambda item: _MISSING


def _same(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b and type(a) in (type(b), int, float) and type(b) in (type(a), int, float)


def _enum_text(v):
    if isinstance(v, str):
        return v
    return _go_value(v)


def _num(v):
    return _go_float(float(v)) if isinstance(v, float) else str(v)


def _python_regex(pattern):
    r"""ECMA/RE2 pattern to Python: the differences that matter for CRD patterns (\z, \Z)."""
    return pattern.replace(r"\z", r"\Z")
