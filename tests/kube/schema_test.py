#!/usr/bin/env python3
"""What the test API server does to an AppService on a write, table-driven against the project's
CRD: defaults, pruning, unknown fields, validation with the real server's wording (field, reason,
message), CEL rules (transition rules only on update), ratcheting, and the refusal of CRDs it
cannot evaluate."""
import copy
import sys
import unittest

import kubeapi_testlib
import schema

CRD = kubeapi_testlib.load_crd()
VALIDATOR = schema.Validator(kubeapi_testlib.appservice_schema())


def app(**spec):
    base = {"imageRef": "ghcr.io/example/app:1", "containerPort": 8080}
    base.update(spec)
    for k in [k for k, v in base.items() if v is DROP]:
        del base[k]
    return {"apiVersion": "berth.dev/v1alpha1", "kind": "AppService",
            "metadata": {"name": "a", "namespace": "default"}, "spec": base}


DROP = object()
HC = {"intervalSeconds": 5, "timeoutSeconds": 3, "healthyThreshold": 1}
COND = {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z",
        "reason": "Running", "message": ""}

# (what, object, [(field, reason, message)]) — validated after defaulting, as the server does.
CREATE_CASES = [
    ("a minimal public app", app(), []),
    ("imageRef is required", app(imageRef=DROP),
     [("spec.imageRef", "FieldValueRequired", "Required value")]),
    ("containerPort is required", app(containerPort=DROP),
     [("spec.containerPort", "FieldValueRequired", "Required value")]),
    ("spec is required", {"apiVersion": "berth.dev/v1alpha1", "kind": "AppService", "metadata": {"name": "a"}},
     [("spec", "FieldValueRequired", "Required value")]),
    ("containerPort above the range", app(containerPort=70000),
     [("spec.containerPort", "FieldValueInvalid",
       "Invalid value: 70000: spec.containerPort in body should be less than or equal to 65535")]),
    ("containerPort below the range", app(containerPort=0),
     [("spec.containerPort", "FieldValueInvalid",
       "Invalid value: 0: spec.containerPort in body should be greater than or equal to 1")]),
    ("containerPort of the wrong type", app(containerPort="80"),
     [("spec.containerPort", "FieldValueTypeInvalid",
       'Invalid value: "string": spec.containerPort in body must be of type integer: "string"')]),
    ("an empty imageRef", app(imageRef=""),
     [("spec.imageRef", "FieldValueInvalid",
       'Invalid value: "": spec.imageRef in body should be at least 1 chars long')]),
    ("an overlong imageRef", app(imageRef="x" * 1025),
     [("spec.imageRef", "FieldValueTooLong", "Too long: may not be more than 1024 bytes")]),
    ("a zone that is not a DNS label", app(zone="EU_1"),
     [("spec.zone", "FieldValueInvalid",
       "Invalid value: \"EU_1\": spec.zone in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'")]),
    ("a plan outside tier-1..15", app(planName="tier-16"),
     [("spec.planName", "FieldValueInvalid",
       "Invalid value: \"tier-16\": spec.planName in body should match '^tier-([1-9]|1[0-5])$'")]),
    ("more than 5 custom domains", app(customDomains=[f"d{i}.example.com" for i in range(6)]),
     [("spec.customDomains", "FieldValueTooMany", "Too many: 6: must have at most 5 items")]),
    ("a duplicate custom domain", app(customDomains=["a.example.com", "a.example.com"]),
     [("spec.customDomains[1]", "FieldValueDuplicate", 'Duplicate value: "a.example.com"')]),
    ("more than 100 env entries", app(env={f"V{i}": "x" for i in range(101)}),
     [("spec.env", "FieldValueTooMany", "Too many: 101: must have at most 100 items")]),
    ("an env value with a newline", app(env={"A": "x\ny"}),
     [("spec.env[A]", "FieldValueInvalid",
       "Invalid value: \"x\\ny\": spec.env[A] in body should match '^[^\\n\\r\\x00]*$'")]),
    ("a secret ref without a username", app(registryPasswordSecretRef={"name": "s"}),
     [("spec", "FieldValueInvalid",
       'Invalid value: "object": registryUsername and registryPasswordSecretRef go together '
       "(a private image needs both, a public one neither)")]),
    ("a username without a secret ref", app(registryUsername="bot"),
     [("spec", "FieldValueInvalid",
       'Invalid value: "object": registryUsername and registryPasswordSecretRef go together '
       "(a private image needs both, a public one neither)")]),
    ("a username with a colon", app(registryUsername="a:b", registryPasswordSecretRef={"name": "s"}),
     [("spec.registryUsername", "FieldValueInvalid",
       "Invalid value: \"a:b\": spec.registryUsername in body should match '^[^:\\x00-\\x1F\\x7F]*$'")]),
    ("a timeout longer than the interval", app(healthCheck={"intervalSeconds": 2, "timeoutSeconds": 5}),
     [("spec.healthCheck", "FieldValueInvalid",
       'Invalid value: "object": timeoutSeconds must not exceed intervalSeconds')]),
    ("a timeout longer than the default interval", app(healthCheck={"timeoutSeconds": 6}),
     [("spec.healthCheck", "FieldValueInvalid",
       'Invalid value: "object": timeoutSeconds must not exceed intervalSeconds')]),
    ("a health path without a slash", app(healthCheck={"path": "healthz"}),
     [("spec.healthCheck.path", "FieldValueInvalid",
       "Invalid value: \"healthz\": spec.healthCheck.path in body should match '^(/[\\x21-\\x7E]*)?$'")]),
    ("a phase outside the enum", dict(app(), status={"phase": "Sleeping"}),
     [("status.phase", "FieldValueNotSupported",
       'Unsupported value: "Sleeping": supported values: "Pending", "Running", "Progressing", "Failed", "Deleting"')]),
    ("conditions keyed by type", dict(app(), status={"conditions": [COND, dict(COND, status="False")]}),
     [("status.conditions[1]", "FieldValueDuplicate", 'Duplicate value: map[string]interface {}{"type":"Ready"}')]),
    ("a condition missing its reason", dict(app(), status={"conditions": [{k: v for k, v in COND.items() if k != "reason"}]}),
     [("status.conditions[0].reason", "FieldValueRequired", "Required value")]),
    ("a condition time that is not a date-time", dict(app(), status={"conditions": [dict(COND, lastTransitionTime="yesterday")]}),
     [("status.conditions[0].lastTransitionTime", "FieldValueInvalid",
       'Invalid value: "yesterday": status.conditions[0].lastTransitionTime in body must be of type date-time: "yesterday"')]),
]


def errors_of(obj, old=None):
    obj = copy.deepcopy(obj)
    VALIDATOR.default(obj)
    if old is not None:
        old = copy.deepcopy(old)
        VALIDATOR.default(old)
    return [(e["field"], e["reason"], e["message"]) for e in VALIDATOR.validate(obj, old)]


class ValidateTest(unittest.TestCase):
    def test_create_cases(self):
        for what, obj, want in CREATE_CASES:
            with self.subTest(what):
                self.assertEqual(errors_of(obj), want)

    def test_the_valid_samples_pass(self):
        for name in ("appservice-public.yaml", "appservice-private.yaml"):
            for doc in kubeapi_testlib.load_yaml_docs("manifests", "samples", name):
                if doc["kind"] == "AppService":
                    with self.subTest(name):
                        self.assertEqual(errors_of(doc), [])

    def test_the_invalid_sample_fails_with_the_three_documented_messages(self):
        doc = kubeapi_testlib.load_yaml_docs("manifests", "samples", "invalid", "appservice-invalid.yaml")[0]
        obj = copy.deepcopy(doc)
        VALIDATOR.default(obj)
        status = schema.invalid_status("AppService", "berth.dev", "broken", VALIDATOR.validate(obj, None))
        self.assertEqual(status["code"], 422)
        self.assertEqual(status["reason"], "Invalid")
        self.assertEqual(
            status["message"],
            'AppService.berth.dev "broken" is invalid: ['
            "spec.containerPort: Invalid value: 70000: spec.containerPort in body should be less than or equal to 65535, "
            'spec: Invalid value: "object": registryUsername and registryPasswordSecretRef go together '
            "(a private image needs both, a public one neither), "
            'spec.healthCheck: Invalid value: "object": timeoutSeconds must not exceed intervalSeconds]')
        self.assertEqual([c["field"] for c in status["details"]["causes"]],
                         ["spec.containerPort", "spec", "spec.healthCheck"])

    def test_changing_container_port_is_refused_on_update_only(self):
        old = app(containerPort=8080)
        self.assertEqual(errors_of(app(containerPort=8081)), [])
        self.assertEqual(errors_of(app(containerPort=8081), old),
                         [("spec.containerPort", "FieldValueInvalid",
                           'Invalid value: "integer": containerPort is immutable')])
        self.assertEqual(errors_of(app(containerPort=8080, imageRef="x/y:2"), old), [])

    def test_an_unchanged_invalid_value_is_ratcheted_on_update(self):
        # Stored before a rule tightened: an update that leaves it alone still goes through.
        old = app(zone="EU_1")
        self.assertEqual(errors_of(app(zone="EU_1", imageRef="x/y:2"), old), [])
        self.assertEqual(len(errors_of(app(zone="EU_2"), old)), 1)

    def test_a_status_update_validates_status(self):
        old = app()
        new = dict(app(), status={"phase": "Running", "currentRevision": 2, "conditions": [COND]})
        self.assertEqual(errors_of(new, old), [])


class DefaultPruneTest(unittest.TestCase):
    def test_defaults_apply_like_the_server(self):
        obj = app()
        VALIDATOR.default(obj)
        self.assertEqual(obj["spec"]["planName"], "tier-1")
        self.assertEqual(obj["spec"]["healthCheck"], HC)  # default {} then its fields' defaults
        self.assertNotIn("registryPasswordSecretRef", obj["spec"])  # nested only when present
        obj = app(registryUsername="u", registryPasswordSecretRef={"name": "s"},
                  healthCheck={"intervalSeconds": 10})
        VALIDATOR.default(obj)
        self.assertEqual(obj["spec"]["registryPasswordSecretRef"], {"name": "s", "key": "password"})
        self.assertEqual(obj["spec"]["healthCheck"], dict(HC, intervalSeconds=10))
        self.assertNotIn("status", obj)

    def test_a_null_for_a_defaulted_field_gets_the_default(self):
        obj = app(planName=None)
        VALIDATOR.default(obj)
        self.assertEqual(obj["spec"]["planName"], "tier-1")

    def test_unknown_fields_are_listed_and_pruned(self):
        obj = app(foo=1, healthCheck={"bar": 2}, env={"ANY": "x"})
        obj["status"] = {"conditions": [dict(COND, extra=True)]}
        obj["top"] = 1
        obj["metadata"]["labels"] = {"a": "b"}
        self.assertEqual(VALIDATOR.unknown_fields(obj),
                         ["spec.foo", "spec.healthCheck.bar", "status.conditions[0].extra", "top"])
        VALIDATOR.prune(obj)
        self.assertEqual(VALIDATOR.unknown_fields(obj), [])
        self.assertNotIn("foo", obj["spec"])
        self.assertEqual(obj["spec"]["env"], {"ANY": "x"})  # additionalProperties are declared
        self.assertEqual(obj["metadata"]["labels"], {"a": "b"})  # metadata is the server's

    def test_metadata_is_checked_against_object_meta(self):
        obj = app()
        obj["metadata"].update(labels={"a": "b"}, lables={"a": "b"},
                               ownerReferences=[{"apiVersion": "v1", "kind": "X", "name": "x",
                                                 "uid": "1", "controler": True}])
        self.assertEqual(VALIDATOR.unknown_fields(obj),
                         ["metadata.lables", "metadata.ownerReferences[0].controler"])
        VALIDATOR.prune(obj)
        self.assertEqual(VALIDATOR.unknown_fields(obj), [])
        self.assertEqual(obj["metadata"]["labels"], {"a": "b"})
        self.assertEqual(obj["metadata"]["ownerReferences"][0]["kind"], "X")

    def test_preserve_unknown_fields_keeps_them(self):
        v = schema.Validator({"type": "object", "properties": {"spec": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"known": {"type": "string"}}}}})
        obj = {"spec": {"known": "x", "free": {"deep": 1}}}
        self.assertEqual(v.unknown_fields(obj), [])
        v.prune(obj)
        self.assertEqual(obj["spec"]["free"], {"deep": 1})


SYNTHETIC = schema.Validator({"type": "object", "properties": {"spec": {
    "type": "object",
    "x-kubernetes-validations": [
        {"rule": "self.min <= self.max"},
        {"rule": "!has(self.locked) || !self.locked", "message": "locked", "reason": "FieldValueForbidden",
         "fieldPath": ".locked"},
    ],
    "properties": {
        "min": {"type": "integer"}, "max": {"type": "integer", "exclusiveMaximum": True, "maximum": 10},
        "locked": {"type": "boolean"},
        "port": {"x-kubernetes-int-or-string": True},
        "note": {"type": "string", "nullable": True},
        "id": {"type": "string", "format": "uuid"},
        "step": {"type": "number", "multipleOf": 0.5},
        "big": {"type": "number", "maximum": 1e6},
        "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "required": ["name"],
                            "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
                            "x-kubernetes-validations": [{"rule": "self.size >= oldSelf.size",
                                                          "message": "size may only grow"}]}},
    }}}})


class SyntheticSchemaTest(unittest.TestCase):
    """Schema features the AppService CRD does not use, with the server's wording."""

    def errors(self, spec, old_spec=None):
        old = {"spec": old_spec} if old_spec is not None else None
        return [(e["field"], e["reason"], e["message"]) for e in SYNTHETIC.validate({"spec": spec}, old)]

    def test_cases(self):
        base = {"min": 1, "max": 2}
        cases = [
            ("a rule without a message", {"min": 3, "max": 2},
             [("spec", "FieldValueInvalid", 'Invalid value: "object": failed rule: self.min <= self.max')]),
            ("a rule that cannot evaluate", {"max": 2},
             [("spec", "FieldValueInvalid", 'Invalid value: "object": no such key: min evaluating rule: self.min <= self.max')]),
            ("reason and fieldPath", dict(base, locked=True),
             [("spec.locked", "FieldValueForbidden", "Forbidden: locked")]),
            ("exclusiveMaximum", {"min": 1, "max": 10},
             [("spec.max", "FieldValueInvalid", "Invalid value: 10: spec.max in body should be less than 10")]),
            ("int-or-string takes both", dict(base, port="http"), []),
            ("int-or-string refuses others", dict(base, port=True),
             [("spec.port", "FieldValueTypeInvalid",
               'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"')]),
            ("nullable", dict(base, note=None), []),
            ("not nullable", dict(base, min=None),
             [("spec.min", "FieldValueTypeInvalid", 'Invalid value: "null": spec.min in body must be of type integer: "null"'),
              ("spec", "FieldValueInvalid", 'Invalid value: "object": no such overload: _<=_(null_type, int) evaluating rule: self.min <= self.max')]),
            ("format uuid", dict(base, id="nope"),
             [("spec.id", "FieldValueInvalid", 'Invalid value: "nope": spec.id in body must be of type uuid: "nope"')]),
            ("floats print like Go's %v", dict(base, big=2500000.5),
             [("spec.big", "FieldValueInvalid",
               "Invalid value: 2.5000005e+06: spec.big in body should be less than or equal to 1e+06")]),
            ("multipleOf", dict(base, step=0.7),
             [("spec.step", "FieldValueInvalid", "Invalid value: 0.7: spec.step in body should be a multiple of 0.5")]),
        ]
        for what, spec, want in cases:
            with self.subTest(what):
                self.assertEqual(self.errors(spec), want)

    def test_transition_rules_correlate_map_list_items_by_key(self):
        old = {"min": 1, "max": 2, "items": [{"name": "a", "size": 5}, {"name": "b", "size": 5}]}
        new = {"min": 1, "max": 2, "items": [{"name": "b", "size": 4}, {"name": "a", "size": 6},
                                             {"name": "c", "size": 1}]}
        self.assertEqual(self.errors(new, old),
                         [("spec.items[0]", "FieldValueInvalid", 'Invalid value: "object": size may only grow')])
        self.assertEqual(self.errors(new), [], "no transition rule on create")


def crd_with(mutate):
    crd = copy.deepcopy(CRD)
    mutate(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"])
    return crd


class CheckCrdTest(unittest.TestCase):
    def test_the_project_crd_is_accepted(self):
        self.assertEqual(schema.check_crd(CRD), [])

    def test_refusals_name_the_offending_place(self):
        cases = [
            ("a rule outside the CEL subset",
             lambda s: s["x-kubernetes-validations"].append({"rule": "self.imageRef.lowerAscii() == self.imageRef"}),
             "properties[spec].x-kubernetes-validations[1].rule: Invalid value: \"self.imageRef.lowerAscii() == self.imageRef\": compilation failed"),
            ("a messageExpression",
             lambda s: s["x-kubernetes-validations"][0].update(messageExpression="'x'"),
             "x-kubernetes-validations[0].messageExpression: Forbidden"),
            ("a field without a type",
             lambda s: s["properties"].update(untyped={"description": "no type"}),
             "properties[untyped].type: Required value"),
            ("properties and additionalProperties together",
             lambda s: s["properties"]["env"].update(properties={"A": {"type": "string"}}),
             "properties[env].additionalProperties: Forbidden"),
            ("a list-map key that is neither required nor defaulted",
             lambda s: s["properties"].update(items={"type": "array", "x-kubernetes-list-type": "map",
                                                      "x-kubernetes-list-map-keys": ["k"],
                                                      "items": {"type": "object", "properties": {"k": {"type": "string"}}}}),
             "properties[items].items.properties[k]: Required value"),
            ("a default that fails its own schema",
             lambda s: s["properties"]["planName"].update(default="gold"),
             "properties[planName].default: Invalid value: \"gold\""),
            ("a $ref", lambda s: s["properties"].update(r={"$ref": "#/x"}), "properties[r].$ref: Forbidden"),
        ]
        for what, mutate, fragment in cases:
            with self.subTest(what):
                problems = schema.check_crd(crd_with(mutate))
                self.assertTrue(any(fragment in p for p in problems), problems)

    def test_a_printer_column_outside_the_jsonpath_subset_is_refused(self):
        crd = copy.deepcopy(CRD)
        crd["spec"]["versions"][0]["additionalPrinterColumns"].append(
            {"name": "X", "type": "string", "jsonPath": ".status.conditions[?(@.type=~/R/)].status"})
        self.assertTrue(any("additionalPrinterColumns[7].jsonPath" in p for p in schema.check_crd(crd)))


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False).result.wasSuccessful() else 1)
