#!/usr/bin/env python3
"""The CEL subset the test API server evaluates for CRD rules: results follow CEL's semantics
(not Python's), and anything outside the subset is refused at compile time."""
import sys
import unittest

import kubeapi_testlib  # noqa: F401  (sys.path)
import cel

SELF = {"a": 1, "b": 2, "s": "hello", "l": [1, 2, 3], "m": {"k": "v"}, "t": True,
        "hc": {"intervalSeconds": 5, "timeoutSeconds": 3}, "conds": [{"type": "Ready"}]}

# (rule, self, oldSelf, expected value)
EVALUATES = [
    ("self.a == 1", SELF, None, True),
    ("self.a != 1", SELF, None, False),
    ("self.a < self.b && self.b <= 2 && self.b > 1 && self.a >= 1", SELF, None, True),
    ("has(self.a)", SELF, None, True),
    ("has(self.zz)", SELF, None, False),
    ("has(self.zz) == has(self.yy)", SELF, None, True),
    ("has(self.a) == has(self.zz)", SELF, None, False),
    ("!has(self.zz) || self.zz > 0", SELF, None, True),
    ("self.t ? 'y' : 'n'", SELF, None, "y"),
    ("2 in self.l", SELF, None, True),
    ("'k' in self.m", SELF, None, True),
    ("'v' in self.m", SELF, None, False),
    ("size(self.s) == 5 && self.s.size() == 5 && size(self.l) == 3 && size(self.m) == 1", SELF, None, True),
    ("self.s.startsWith('he') && self.s.endsWith('lo') && self.s.contains('ll')", SELF, None, True),
    ("self.s.matches('^h.*o$')", SELF, None, True),
    ("self.s.matches('ell')", SELF, None, True),  # unanchored, like RE2's partial match
    ("self.l.all(x, x > 0)", SELF, None, True),
    ("self.l.exists(x, x == 3)", SELF, None, True),
    ("self.l.exists_one(x, x > 1)", SELF, None, False),
    ("self.m.all(k, k == 'k')", SELF, None, True),
    ("self.conds.exists(c, c.type == 'Ready')", SELF, None, True),
    ("self.l.map(x, x * 2) == [2, 4, 6]", SELF, None, True),
    ("self.l.filter(x, x % 2 == 1) == [1, 3]", SELF, None, True),
    ("[1, 2] == [1, 2] && {'a': 1} == {'a': 1}", SELF, None, True),
    ("self.hc.timeoutSeconds <= self.hc.intervalSeconds", SELF, None, True),
    ("self == oldSelf", 8080, 8080, True),
    ("self == oldSelf", 8080, 8081, False),
    ("self.a + self.b * 3 - 1", SELF, None, 6),
    ("-7 / 2", SELF, None, -3),        # truncates toward zero
    ("-7 % 2", SELF, None, -1),
    ("1 == 1.0", SELF, None, True),    # heterogeneous numeric equality
    ("1 == '1'", SELF, None, False),   # no conversions
    ("true == 1", SELF, None, False),  # bool is not an int
    ("'a\\nb'.size()", SELF, None, 3),
    ("r'a\\nb'.size()", SELF, None, 4),
    ("self.zz == 1 || true", SELF, None, True),   # || absorbs an error on the other side
    ("false && self.zz == 1", SELF, None, False),
    ("self.zz == 1 && false", SELF, None, False),  # commutative
    ("self.l[1]", SELF, None, 2),
    ("self.m['k']", SELF, None, "v"),
    ("null == null", SELF, None, True),
    # Property names that are not CEL identifiers, escaped the Kubernetes way.
    ("self.__namespace__ == 'ns' && self.x__dash__y == 1 && has(self.a__dot__b) && self.__if__",
     {"namespace": "ns", "x-y": 1, "a.b": 0, "if": True}, None, True),
    ("self.a__underscores__b__slash__c == 2", {"a__b/c": 2}, None, True),
]

# (rule, self, error text the server quotes before "evaluating rule")
EVAL_ERRORS = [
    ("self.zz == 1", SELF, "no such key: zz"),
    ("self.l[5] == 1", SELF, "index out of bounds: 5"),
    ("self.a / 0 == 1", SELF, "division by zero"),
    ("self.a < 's'", SELF, "no such overload: _<_(int, string)"),
    ("self.a && true", SELF, "no such overload: _&&_(int)"),
    ("self.zz == 1 && true", SELF, "no such key: zz"),
    ("9223372036854775807 + 1 > 0", SELF, "integer overflow"),
]

# Rules outside the subset: refused when the CRD is created, never silently passed.
REFUSED = [
    "self.name.lowerAscii() == 'a'",
    "int(self.port) > 0",
    "self.?optional.orValue(1) == 1",
    "quantity(self.q).isGreaterThan(quantity('1'))",
    "other == 1",
    "self.a ==",
    "self.l.sortBy(x, x)",
    "has(self)",
    "",
    "self.a = 1",
    "self.namespace == 'x'",  # a reserved word must be written __namespace__
]


class CelTest(unittest.TestCase):
    def test_rules_evaluate_with_cel_semantics(self):
        for rule, this, old, want in EVALUATES:
            with self.subTest(rule=rule):
                got = cel.compile_rule(rule).evaluate(this, old)
                self.assertEqual(got, want)
                self.assertIs(type(got), type(want))

    def test_runtime_errors_are_worded_like_cel_go(self):
        for rule, this, text in EVAL_ERRORS:
            with self.subTest(rule=rule):
                with self.assertRaises(cel.EvalError) as ctx:
                    cel.compile_rule(rule).evaluate(this)
                self.assertEqual(str(ctx.exception), text)

    def test_rules_outside_the_subset_are_refused_at_compile_time(self):
        for rule in REFUSED:
            with self.subTest(rule=rule):
                with self.assertRaises(cel.CompileError):
                    cel.compile_rule(rule)

    def test_a_rule_using_old_self_is_a_transition_rule(self):
        self.assertTrue(cel.compile_rule("self == oldSelf").uses_old_self)
        self.assertTrue(cel.compile_rule("self.l.all(x, x in oldSelf.l)").uses_old_self)
        self.assertFalse(cel.compile_rule("self.a == 1").uses_old_self)

    def test_the_crd_rules_all_compile(self):
        schema = kubeapi_testlib.appservice_schema()
        rules = []

        def walk(node):
            rules.extend(r["rule"] for r in node.get("x-kubernetes-validations", []))
            for sub in (node.get("properties") or {}).values():
                walk(sub)
        walk(schema)
        self.assertEqual(len(rules), 3)
        for rule in rules:
            cel.compile_rule(rule)


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False).result.wasSuccessful() else 1)
