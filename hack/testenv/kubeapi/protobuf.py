"""Decoding of the few protobuf request bodies kubectl's typed commands send.

kubectl sends `application/vnd.kubernetes.protobuf` for built-in kinds in imperative commands
(`kubectl create namespace|configmap|secret|serviceaccount`, `kubectl auth can-i`). The envelope
is the magic "k8s\\0" and a runtime.Unknown {typeMeta{apiVersion, kind}, raw}; `raw` is the
object in the field numbers of k8s.io/api's generated.proto. Only the kinds and fields below are
known; anything else is refused (415) by the caller rather than half-decoded.
"""
import base64

MAGIC = b"k8s\x00"

# field number -> (json name, type); a type is "string", "bytes", "int", "bool", a message name,
# ("map", value type), ("list", element type).
_META = {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
         6: ("resourceVersion", "string"), 11: ("labels", ("map", "string")),
         12: ("annotations", ("map", "string")),
         13: ("ownerReferences", ("list", "OwnerReference")),
         14: ("finalizers", ("list", "string"))}
_OWNER = {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"),
          5: ("apiVersion", "string"), 6: ("controller", "bool"),
          7: ("blockOwnerDeletion", "bool")}
_MESSAGES = {
    "ObjectMeta": _META,
    "OwnerReference": _OWNER,
    "LocalObjectReference": {1: ("name", "string")},
    "ObjectReference": {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", ("map", "string")),
                  3: ("binaryData", ("map", "bytes")), 4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", ("map", "bytes")),
               3: ("type", "string"), 4: ("stringData", ("map", "string")),
               5: ("immutable", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", ("list", "string"))},
    "ServiceAccount": {1: ("metadata", "ObjectMeta"),
                       2: ("secrets", ("list", "ObjectReference")),
                       3: ("imagePullSecrets", ("list", "LocalObjectReference")),
                       4: ("automountServiceAccountToken", "bool")},
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta"),
                                2: ("spec", "SelfSubjectAccessReviewSpec")},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes"),
                                    2: ("nonResourceAttributes", "NonResourceAttributes")},
    "ResourceAttributes": {1: ("namespace", "string"), 2: ("verb", "string"),
                           3: ("group", "string"), 4: ("version", "string"),
                           5: ("resource", "string"), 6: ("subresource", "string"),
                           7: ("name", "string")},
    "NonResourceAttributes": {1: ("path", "string"), 2: ("verb", "string")},
}
_UNKNOWN = {1: ("typeMeta", "TypeMeta"), 2: ("raw", "bytes"), 3: ("contentEncoding", "string"),
            4: ("contentType", "string")}
_TYPEMETA = {1: ("apiVersion", "string"), 2: ("kind", "string")}


class DecodeError(Exception):
    pass


def _varint(buf, i):
    shift = result = 0
    while True:
        if i >= len(buf):
            raise DecodeError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            val = buf[i:i + n]
            if len(val) != n:
                raise DecodeError("truncated field")
            i += n
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise DecodeError("unsupported wire type %d" % wire)
        yield num, val


def _scalar(typ, val):
    if typ == "string":
        return bytes(val).decode()
    if typ == "bytes":
        return base64.b64encode(bytes(val)).decode()
    if typ == "int":
        return val
    if typ == "bool":
        return bool(val)
    return _message(typ, val)


def _message(name, buf, table=None):
    table = table or _MESSAGES[name]
    out = {}
    for num, val in _fields(buf):
        if num not in table:
            continue  # a field this decoder does not know (status, timestamps): not needed
        key, typ = table[num]
        if isinstance(typ, tuple) and typ[0] == "map":
            entry = dict(_fields(val))
            out.setdefault(key, {})[bytes(entry.get(1, b"")).decode()] = \
                _scalar(typ[1], entry.get(2, b"" if typ[1] in ("string", "bytes") else 0))
        elif isinstance(typ, tuple) and typ[0] == "list":
            out.setdefault(key, []).append(_scalar(typ[1], val))
        elif typ == "TypeMeta":
            out[key] = _message("TypeMeta", val, _TYPEMETA)
        else:
            value = _scalar(typ, val)
            # Go's protobuf writes empty strings and false; its JSON (omitempty) does not.
            if value not in ("", False, 0) or typ not in ("string", "bool", "int"):
                out[key] = value
    return out


def decode(body):
    """-> the object as JSON would have carried it. DecodeError for anything not understood."""
    if not body.startswith(MAGIC):
        raise DecodeError("missing the protobuf envelope")
    unknown = _message("Unknown", body[len(MAGIC):], _UNKNOWN)
    tm = unknown.get("typeMeta", {})
    kind = tm.get("kind", "")
    if kind not in _MESSAGES or kind[0].islower():
        raise DecodeError("kind %r is not decoded from protobuf here" % kind)
    raw = base64.b64decode(unknown.get("raw", ""))
    obj = _message(kind, raw)
    obj["apiVersion"] = tm.get("apiVersion", "")
    obj["kind"] = kind
    return obj
