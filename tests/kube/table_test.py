#!/usr/bin/env python3
"""The Table `kubectl get` receives for AppServices (the CRD's printer columns) and for kinds
without printer columns (Name, Age)."""
import datetime
import sys
import unittest

import kubeapi_testlib
import table

COLUMNS = kubeapi_testlib.printer_columns()
NOW = datetime.datetime(2026, 11, 27, 10, 0, 45, tzinfo=datetime.timezone.utc)  # 45s after creation
READY = {"type": "Ready", "status": "True"}


def obj(name="billing", status=None):
    o = {"apiVersion": "berth.dev/v1alpha1", "kind": "AppService",
         "metadata": {"name": name, "namespace": "default", "resourceVersion": "12",
                      "creationTimestamp": "2026-11-27T10:00:00Z"},
         "spec": {"imageRef": "ghcr.io/example/billing:2.3.1", "containerPort": 8080}}
    if status is not None:
        o["status"] = status
    return o


class TableTest(unittest.TestCase):
    def test_columns_are_name_then_the_printer_columns(self):
        t = table.table(COLUMNS, [], "5")
        self.assertEqual((t["kind"], t["apiVersion"]), ("Table", "meta.k8s.io/v1"))
        self.assertEqual(t["metadata"], {"resourceVersion": "5"})
        self.assertEqual([(c["name"], c["type"], c["priority"]) for c in t["columnDefinitions"]],
                         [("Name", "string", 0), ("Image", "string", 0), ("Revision", "integer", 0),
                          ("Status", "string", 0), ("Ready", "string", 0), ("Digest", "string", 1),
                          ("Endpoint", "string", 1), ("Age", "date", 0)])
        self.assertEqual(t["columnDefinitions"][0]["format"], "name")
        self.assertEqual(t["columnDefinitions"][1]["description"],
                         "Custom resource definition column (in JSONPath format): .spec.imageRef")

    # (what, status, cells after Name)
    CELLS = [
        ("no status yet", None,
         ["ghcr.io/example/billing:2.3.1", None, None, None, None, None, "45s"]),
        ("running and ready",
         {"phase": "Running", "currentRevision": 3, "imageDigest": "sha256:ab", "endpoint": "10.0.0.1:8080",
          "conditions": [{"type": "Progressing", "status": "False"}, READY]},
         ["ghcr.io/example/billing:2.3.1", 3, "Running", "True", "sha256:ab", "10.0.0.1:8080",
          "45s"]),
        ("no Ready condition", {"phase": "Pending", "conditions": [{"type": "Degraded", "status": "True"}]},
         ["ghcr.io/example/billing:2.3.1", None, "Pending", None, None, None, "45s"]),
    ]

    def test_cells_follow_the_json_paths(self):
        for what, status, cells in self.CELLS:
            with self.subTest(what):
                row = table.table(COLUMNS, [obj(status=status)], "5", now=NOW)["rows"][0]
                self.assertEqual(row["cells"], ["billing"] + cells)

    def test_include_object(self):
        o = obj()
        self.assertEqual(table.table(COLUMNS, [o], "1")["rows"][0]["object"],
                         {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                          "metadata": o["metadata"]})
        self.assertEqual(table.table(COLUMNS, [o], "1", "Object")["rows"][0]["object"], o)
        self.assertNotIn("object", table.table(COLUMNS, [o], "1", "None")["rows"][0])

    def test_kinds_without_printer_columns_show_name_and_age(self):
        secret = {"kind": "Secret", "metadata": {"name": "s", "creationTimestamp": "2026-11-27T10:00:00Z"}}
        t = table.table(None, [secret], None, now=NOW)
        self.assertEqual([c["name"] for c in t["columnDefinitions"]], ["Name", "Age"])
        self.assertEqual(t["rows"][0]["cells"], ["s", "45s"])
        self.assertEqual(t["metadata"], {})

    def test_dates_print_as_the_servers_human_durations(self):
        cases = [(0, "0s"), (-1.5, "0s"), (-3, "<invalid>"), (119, "119s"), (120, "2m"),
                 (190, "3m10s"), (600, "10m"), (179 * 60 + 59, "179m"), (3 * 3600, "3h"),
                 (3 * 3600 + 60 * 25, "3h25m"), (47 * 3600, "47h"), (3 * 86400 + 5 * 3600, "3d5h"),
                 (30 * 86400, "30d"), (3 * 365 * 86400 + 86400, "3y1d"), (9 * 365 * 86400, "9y")]
        for seconds, want in cases:
            with self.subTest(seconds):
                self.assertEqual(table.human_duration(seconds), want)
        col = [{"name": "When", "type": "date", "jsonPath": ".when"}]
        self.assertEqual(table.table(col, [{"when": "soon"}], "", now=NOW)["rows"][0]["cells"][1], "<invalid>")
        self.assertEqual(table.table(col, [{"when": "2026-11-27T12:00:45+02:00"}], "", now=NOW)["rows"][0]["cells"][1], "0s")

    def test_jsonpath_subset(self):
        doc = {"a": {"b": [{"k": "x", "v": 1}, {"k": "y", "v": 2}], "n": 5, "t": True}}
        cases = [(".a.n", [5]), (".a.b[1].v", [2]), (".a.b[*].k", ["x", "y"]),
                 ('.a.b[?(@.k=="y")].v', [2]), (".a.b[?(@.k!='y')].v", [1]),
                 (".a.b[?(@.v==2)].k", ["y"]), (".a['n']", [5]), ("{.a.t}", [True]),
                 (".missing.x", []), (".a.b[7]", [])]
        for path, want in cases:
            with self.subTest(path):
                self.assertIsNone(table.check_jsonpath(path))
                self.assertEqual(table.find(doc, path), want)
        for path in (".a..b", ".a.b[?(@.k=~/x/)]", ".a.b[0:1]"):
            with self.subTest(path):
                self.assertIsNotNone(table.check_jsonpath(path))
        self.assertEqual(table.table([{"name": "S", "type": "string", "jsonPath": ".a.b"}], [doc], "")["rows"][0]["cells"][1],
                         '[{"k":"x","v":1},{"k":"y","v":2}]')


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False).result.wasSuccessful() else 1)
