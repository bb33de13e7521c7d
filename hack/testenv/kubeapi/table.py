"""Server-side printing: the meta.k8s.io/v1 Table that `kubectl get` asks for
(Accept: application/json;as=Table;v=v1;g=meta.k8s.io).

For a CRD the columns are Name and then the version's additionalPrinterColumns, each evaluated
with its JSONPath the way the real server's table convertor does: no result -> null cell (kubectl
prints <none>), the first result only, string columns printed (non-strings as JSON), integer and
number columns as numbers, date columns as the age the server computes (apimachinery's
HumanDuration: "45s", "3m10s", "5h", "12d"...), "<invalid>" when the value is not a timestamp.
Without printer columns (columns None: built-ins and CRDs that declare none) the columns are Name
and Age; CREATED_AT gives Name and Created At (the timestamp as stored), what the real server's
default table convertor prints for kinds such as CustomResourceDefinition.

JSONPath subset: `.field`, `['field']`, `[N]`, `[*]` and filters `[?(@.a.b=="x")]` / `!=`
(string, number or bool literal), as CRD printer columns use them. check_jsonpath() reports
anything else so the CRD can be refused rather than printing blanks.
"""
import datetime
import json
import re

__all__ = ["table", "check_jsonpath", "find", "human_duration", "CREATED_AT"]

_NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
_AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. "
    "It is not guaranteed to be set in happens-before order across separate operations. Clients "
    "may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the "
    "system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")

_SEGMENT = re.compile(r"""
    \.(?P<field>[A-Za-z0-9_$-]+)
  | \[(?P<quoted>'[^']*'|"[^"]*")\]
  | \[(?P<index>-?\d+)\]
  | \[(?P<star>\*)\]
  | \[\?\(@(?P<fpath>(?:\.[A-Za-z0-9_$-]+)+)\s*(?P<fop>==|!=)\s*(?P<fval>"[^"]*"|'[^']*'|-?\d+(?:\.\d+)?|true|false)\)\]
""", re.VERBOSE)


def _parse(path):
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    segments, pos = [], 0
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if not m:
            raise ValueError(f"unsupported JSONPath {path!r} at {path[pos:]!r}")
        pos = m.end()
        if m.group("field") is not None:
            segments.append(("field", m.group("field")))
        elif m.group("quoted") is not None:
            segments.append(("field", m.group("quoted")[1:-1]))
        elif m.group("index") is not None:
            segments.append(("index", int(m.group("index"))))
        elif m.group("star") is not None:
            segments.append(("star", None))
        else:
            raw = m.group("fval")
            value = raw[1:-1] if raw[0] in "\"'" else json.loads(raw)
            segments.append(("filter", (m.group("fpath")[1:].split("."), m.group("fop"), value)))
    return segments


def check_jsonpath(path):
    """None when path is in the supported subset, else why not."""
    try:
        _parse(path)
    except ValueError as e:
        return str(e)
    return None


def find(obj, path):
    """Every value path selects in obj (possibly none)."""
    current = [obj]
    for kind, arg in _parse(path):
        nxt = []
        for value in current:
            if kind == "field":
                if isinstance(value, dict) and arg in value:
                    nxt.append(value[arg])
            elif kind == "index":
                if isinstance(value, list) and -len(value) <= arg < len(value):
                    nxt.append(value[arg])
            elif kind == "star":
                if isinstance(value, list):
                    nxt.extend(value)
                elif isinstance(value, dict):
                    nxt.extend(value.values())
            else:
                fields, op, want = arg
                items = value if isinstance(value, list) else []
                for item in items:
                    got = item
                    for f in fields:
                        got = got.get(f) if isinstance(got, dict) else None
                    if (got == want and type(got) is type(want)) == (op == "=="):
                        if op == "!=" and got is None:
                            continue
                        nxt.append(item)
        current = nxt
    return current


def _cell(column, obj, now):
    try:
        results = find(obj, column["jsonPath"])
    except ValueError:
        return None
    if not results:
        return None
    value = results[0]
    typ = column.get("type", "string")
    if typ == "string":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if typ == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value == int(value):
            return int(value)
        return None
    if typ == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if typ == "boolean":
        return value if isinstance(value, bool) else None
    if typ == "date":
        if not isinstance(value, str):
            return None
        if column.get("verbatim"):
            return value
        when = _parse_time(value)
        return human_duration((now - when).total_seconds()) if when else "<invalid>"
    return None


def _parse_time(text):
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})", text)
    if not m:
        return None
    zone = "+00:00" if m.group(4) == "Z" else m.group(4)
    try:
        return datetime.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{zone}")
    except ValueError:
        return None


def human_duration(seconds):
    """apimachinery's duration.HumanDuration, which kubectl prints in AGE columns."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


# The columns of apiserver's default table convertor, which the kinds without a printer of their
# own (CustomResourceDefinition among them) are printed with: the timestamp itself, not an age.
CREATED_AT = [{"name": "Created At", "type": "date", "jsonPath": ".metadata.creationTimestamp",
               "description": _AGE_DESCRIPTION, "verbatim": True}]


def _partial(obj):
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {})}


def table(columns, objs, list_rv, include_object="Metadata", now=None):
    """The Table for objs (one object for a GET, the items for a LIST).

    columns: the CRD version's additionalPrinterColumns, or None for Name + Age.
    list_rv: the list's resourceVersion ("" or None for a single object).
    include_object: "None", "Metadata" (the default: PartialObjectMetadata) or "Object".
    now: the time ages are computed from (default: the current time, as the real server)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    definitions = [{"name": "Name", "type": "string", "format": "name",
                    "description": _NAME_DESCRIPTION, "priority": 0}]
    if columns is None:
        columns = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                    "description": _AGE_DESCRIPTION}]
    for col in columns:
        definitions.append({
            "name": col["name"], "type": col.get("type", "string"), "format": col.get("format", ""),
            "description": col.get("description") or
            f"Custom resource definition column (in JSONPath format): {col['jsonPath']}",
            "priority": col.get("priority", 0)})
    rows = []
    for obj in objs:
        row = {"cells": [obj.get("metadata", {}).get("name")] + [_cell(c, obj, now) for c in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = _partial(obj)
        rows.append(row)
    metadata = {}
    if list_rv:
        metadata["resourceVersion"] = str(list_rv)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": definitions, "rows": rows}
