#!/usr/bin/env python3
"""Semantics of the test API server's store (hack/testenv/kubeapi/store.py), without HTTP:
resourceVersion ordering, watch resume, 410 after compaction, 409 on stale writes, generation,
status subresource, finalizers, garbage collection, server-side apply, namespaces."""
import os
import sys
import unittest

SOURCE = os.environ.get("BERTH_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(SOURCE, "hack", "testenv", "kubeapi"))

import builtin  # noqa: E402
import openapi  # noqa: E402
import protobuf  # noqa: E402
import store as kstore  # noqa: E402
import table  # noqa: E402
from store import ApiError  # noqa: E402


def drain(w):
    out = []
    while not w.events.empty():
        typ, obj = w.events.get_nowait()
        if typ is None:
            break
        out.append((typ, obj["metadata"]["name"], obj))
    return out


class Base(unittest.TestCase):
    def setUp(self):
        self.s = kstore.Store()
        self.reg = builtin.Registry(self.s)
        self.ns = self.reg.find("", "v1", "namespaces")
        for n in builtin.INITIAL_NAMESPACES:
            self.s.create(self.ns, "", {"metadata": {"name": n}})
        self.cm = self.reg.find("", "v1", "configmaps")
        self.deploy = self.reg.find("apps", "v1", "deployments")

    def mk(self, name, ns="default", res=None, **extra):
        obj = {"metadata": {"name": name}}
        obj.update(extra)
        return self.s.create(res or self.cm, ns, obj)

    def code(self, fn, *a, **kw):
        with self.assertRaises(ApiError) as cm:
            fn(*a, **kw)
        return cm.exception


class ResourceVersions(Base):
    def test_one_global_counter_orders_every_write(self):
        a = self.mk("a")
        d = self.mk("d", res=self.deploy, spec={"replicas": 1})
        a2 = self.s.update(self.cm, "default", "a", dict(a, data={"x": "1"}))
        rvs = [int(o["metadata"]["resourceVersion"]) for o in (a, d, a2)]
        self.assertEqual(rvs, sorted(rvs))
        self.assertEqual(len(set(rvs)), 3)
        _, list_rv, _, _ = self.s.list(self.cm, "default")
        self.assertEqual(int(list_rv), self.s.current_rv())

    def test_stale_update_is_409_and_empty_rv_is_unconditional(self):
        a = self.mk("a")
        self.s.update(self.cm, "default", "a", dict(a, data={"x": "1"}))
        err = self.code(self.s.update, self.cm, "default", "a", dict(a, data={"x": "2"}))
        self.assertEqual((err.code, err.reason), (409, "Conflict"))
        self.assertIn("the object has been modified", err.message)
        blind = dict(a, data={"x": "3"})
        blind["metadata"] = {"name": "a"}
        self.assertEqual(self.s.update(self.cm, "default", "a", blind)["data"], {"x": "3"})

    def test_noop_update_keeps_the_resource_version(self):
        a = self.mk("a", data={"x": "1"})
        same = self.s.update(self.cm, "default", "a", a)
        self.assertEqual(same["metadata"]["resourceVersion"], a["metadata"]["resourceVersion"])


class Watches(Base):
    def test_resume_delivers_only_later_changes_in_order(self):
        a = self.mk("a")
        self.mk("b")
        self.s.delete(self.cm, "default", "a")
        w = self.s.watch(self.cm, "default", a["metadata"]["resourceVersion"])
        self.assertEqual([(t, n) for t, n, _ in drain(w)], [("ADDED", "b"), ("DELETED", "a")])
        self.mk("c")
        self.assertEqual([(t, n) for t, n, _ in drain(w)], [("ADDED", "c")])

    def test_rv_zero_starts_with_the_current_state(self):
        self.mk("a")
        self.mk("b", ns="kube-system")
        w = self.s.watch(self.cm, "default", "0")
        self.assertEqual([(t, n) for t, n, _ in drain(w)], [("ADDED", "a")])

    def test_watch_and_continue_older_than_compaction_are_410(self):
        a = self.mk("a")
        self.mk("b")
        items, list_rv, token, remaining = self.s.list(self.cm, "default", limit=1)
        self.assertEqual((len(items), remaining), (1, 1))
        self.s.compact()
        err = self.code(self.s.watch, self.cm, "default", a["metadata"]["resourceVersion"])
        self.assertEqual((err.code, err.reason), (410, "Expired"))
        # The watch cache's wording: the version asked for, then the oldest one still resumable.
        self.assertEqual(err.message, "too old resource version: %s (%d)" % (
            a["metadata"]["resourceVersion"], self.s.compacted))
        err = self.code(self.s.list, self.cm, "default", cont=token)
        self.assertEqual(err.code, 410)
        self.assertIn("continue parameter is too old", err.message)
        # Even the latest version handed out before compaction is too old; the current works.
        self.assertEqual(self.code(self.s.watch, self.cm, "default", list_rv).code, 410)
        w = self.s.watch(self.cm, "default", str(self.s.current_rv()))
        self.mk("c")
        self.assertEqual([n for _, n, _ in drain(w)], ["c"])

    def test_bounded_history_compacts_itself(self):
        s = kstore.Store(history_limit=3)
        reg = builtin.Registry(s)
        s.create(reg.find("", "v1", "namespaces"), "", {"metadata": {"name": "default"}})
        cm = reg.find("", "v1", "configmaps")
        first = s.create(cm, "default", {"metadata": {"name": "a"}})
        for n in "bcde":
            s.create(cm, "default", {"metadata": {"name": n}})
        self.assertEqual(self.code(s.watch, cm, "default",
                                   first["metadata"]["resourceVersion"]).code, 410)

    def test_a_selector_watch_sees_objects_enter_and_leave(self):
        w = self.s.watch(self.cm, "default", str(self.s.current_rv()), label_selector="app=x")
        a = self.mk("a")
        a["metadata"]["labels"] = {"app": "x"}
        a = self.s.update(self.cm, "default", "a", a)
        a["data"] = {"k": "v"}
        a = self.s.update(self.cm, "default", "a", a)
        a["metadata"]["labels"] = {"app": "y"}
        left = self.s.update(self.cm, "default", "a", a)
        events = drain(w)
        self.assertEqual([t for t, _, _ in events], ["ADDED", "MODIFIED", "DELETED"])
        # As the watch cache does: the object as it last matched, at the change's version.
        gone = events[-1][2]
        self.assertEqual(gone["metadata"]["labels"], {"app": "x"})
        self.assertEqual(gone["metadata"]["resourceVersion"], left["metadata"]["resourceVersion"])

    def test_a_selector_watch_resumed_from_history_sees_the_same_delete(self):
        a = self.mk("a")
        a["metadata"]["labels"] = {"app": "x"}
        a = self.s.update(self.cm, "default", "a", a)
        since = a["metadata"]["resourceVersion"]
        a["metadata"]["labels"] = {}
        left = self.s.update(self.cm, "default", "a", a)
        w = self.s.watch(self.cm, "default", since, label_selector="app=x")
        events = drain(w)
        self.assertEqual([t for t, _, _ in events], ["DELETED"])
        self.assertEqual(events[0][2]["metadata"]["labels"], {"app": "x"})
        self.assertEqual(events[0][2]["metadata"]["resourceVersion"],
                         left["metadata"]["resourceVersion"])

    def test_selectors(self):
        self.mk("a", metadata={"name": "a", "labels": {"app": "x", "tier": "web"}})
        self.mk("b", metadata={"name": "b", "labels": {"app": "y"}})
        self.mk("c")

        def names(**kw):
            return [o["metadata"]["name"] for o in self.s.list(self.cm, "default", **kw)[0]]
        self.assertEqual(names(label_selector="app=x"), ["a"])
        self.assertEqual(names(label_selector="app in (x,y)"), ["a", "b"])
        self.assertEqual(names(label_selector="app notin (x),app"), ["b"])
        self.assertEqual(names(label_selector="!app"), ["c"])
        self.assertEqual(names(field_selector="metadata.name!=a"), ["b", "c"])

    def test_label_and_field_selectors_share_the_equality_grammar(self):
        self.mk("a", metadata={"name": "a", "labels": {"app": "x"}})
        self.mk("b", metadata={"name": "b", "labels": {"app": "y"}})

        def names(**kw):
            return [o["metadata"]["name"] for o in self.s.list(self.cm, "default", **kw)[0]]
        for op in ("=", "=="):
            self.assertEqual(names(label_selector="app%s x" % op), ["a"])
            self.assertEqual(names(field_selector="metadata.name %s b" % op), ["b"])
        self.assertEqual(names(label_selector="app != x"), ["b"])
        self.assertEqual(names(label_selector="app!=x,metadata!=z"), ["b"])
        with self.assertRaises(ApiError) as cm:
            names(field_selector="metadata.name")
        self.assertEqual(cm.exception.code, 400)


class GenerationAndStatus(Base):
    def test_generation_bumps_on_spec_changes_only(self):
        d = self.mk("d", res=self.deploy, spec={"replicas": 1})
        self.assertEqual(d["metadata"]["generation"], 1)
        d["metadata"]["labels"] = {"a": "b"}
        d = self.s.update(self.deploy, "default", "d", d)
        self.assertEqual(d["metadata"]["generation"], 1)
        d["spec"]["replicas"] = 2
        d = self.s.update(self.deploy, "default", "d", d)
        self.assertEqual(d["metadata"]["generation"], 2)
        d["status"] = {"readyReplicas": 2}
        d = self.s.update(self.deploy, "default", "d", d, subresource="status")
        self.assertEqual(d["metadata"]["generation"], 2)
        self.assertEqual(d["status"], {"readyReplicas": 2})

    def test_status_and_main_resource_change_only_their_part(self):
        d = self.mk("d", res=self.deploy, spec={"replicas": 1})
        d["status"] = {"readyReplicas": 5}
        d["spec"]["replicas"] = 3
        d = self.s.update(self.deploy, "default", "d", d)
        self.assertEqual(d["spec"]["replicas"], 3)
        self.assertNotIn("status", d)  # ignored on the main resource
        d["status"] = {"readyReplicas": 1}
        d["spec"]["replicas"] = 9
        d = self.s.update(self.deploy, "default", "d", d, subresource="status")
        self.assertEqual((d["spec"]["replicas"], d["status"]["readyReplicas"]), (3, 1))

    def test_labels_are_validated(self):
        err = self.code(self.mk, "a", metadata={"name": "a", "labels": {"app": "bad value!"}})
        self.assertEqual((err.code, err.reason), (422, "Invalid"))
        self.assertIn('metadata.labels: Invalid value: "bad value!": a valid label must be an '
                      "empty string", err.message)
        a = self.mk("a", metadata={"name": "a", "labels": {"example.com/app": "web"}})
        a["metadata"]["labels"] = {"-x": ""}
        self.assertEqual(self.code(self.s.update, self.cm, "default", "a", a).code, 422)

    def test_controllerrevision_data_is_immutable(self):
        cr = self.reg.find("apps", "v1", "controllerrevisions")
        obj = self.mk("r", res=cr, data={"a": 1}, revision=1)
        obj["revision"] = 2
        err = self.code(self.s.update, cr, "default", "r", obj)
        self.assertEqual((err.code, err.reason), (422, "Invalid"))
        self.assertIn("revision: Invalid value: 2: field is immutable", err.message)


class Deletion(Base):
    def test_finalizers_hold_the_object_until_removed(self):
        self.mk("a", metadata={"name": "a", "finalizers": ["berth.dev/cleanup"]})
        w = self.s.watch(self.cm, "default", str(self.s.current_rv()))
        obj, gone = self.s.delete(self.cm, "default", "a")
        self.assertFalse(gone)
        self.assertTrue(obj["metadata"]["deletionTimestamp"])
        self.assertEqual(obj["metadata"]["deletionGracePeriodSeconds"], 0)
        self.assertTrue(self.s.get(self.cm, "default", "a"))
        obj["metadata"]["finalizers"].append("another")
        self.assertEqual(self.code(self.s.update, self.cm, "default", "a", obj).code, 422)
        obj["metadata"]["finalizers"] = []
        self.s.update(self.cm, "default", "a", obj)
        self.assertEqual(self.code(self.s.get, self.cm, "default", "a").code, 404)
        self.assertEqual([t for t, _, _ in drain(w)], ["MODIFIED", "DELETED"])

    def test_preconditions(self):
        a = self.mk("a")
        err = self.code(self.s.delete, self.cm, "default", "a", preconditions={"uid": "other"})
        self.assertEqual(err.code, 409)
        self.s.delete(self.cm, "default", "a", preconditions={"uid": a["metadata"]["uid"]})

    def owned(self, owner, name):
        ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner["metadata"]["name"],
               "uid": owner["metadata"]["uid"]}
        return self.mk(name, metadata={"name": name, "ownerReferences": [ref]})

    def test_background_gc_deletes_dependents(self):
        d = self.mk("d", res=self.deploy, spec={})
        self.owned(d, "dep1")
        self.owned(d, "dep2")
        self.mk("unrelated")
        self.s.delete(self.deploy, "default", "d")
        left = [o["metadata"]["name"] for o in self.s.list(self.cm, "default")[0]]
        self.assertEqual(left, ["unrelated"])

    def test_orphan_keeps_dependents_without_the_reference(self):
        d = self.mk("d", res=self.deploy, spec={})
        self.owned(d, "dep")
        self.s.delete(self.deploy, "default", "d", propagation="Orphan")
        self.assertEqual(self.code(self.s.get, self.deploy, "default", "d").code, 404)
        self.assertNotIn("ownerReferences", self.s.get(self.cm, "default", "dep")["metadata"])

    def test_foreground_waits_for_dependents(self):
        d = self.mk("d", res=self.deploy, spec={})
        dep = self.owned(d, "dep")
        dep["metadata"]["finalizers"] = ["hold"]
        self.s.update(self.cm, "default", "dep", dep)
        obj, gone = self.s.delete(self.deploy, "default", "d", propagation="Foreground")
        self.assertFalse(gone)
        self.assertIn("foregroundDeletion", obj["metadata"]["finalizers"])
        dep = self.s.get(self.cm, "default", "dep")
        self.assertTrue(dep["metadata"]["deletionTimestamp"])
        dep["metadata"]["finalizers"] = []
        self.s.update(self.cm, "default", "dep", dep)
        self.assertEqual(self.code(self.s.get, self.deploy, "default", "d").code, 404)

    def test_namespaces_must_exist_and_take_their_content_along(self):
        err = self.code(self.mk, "a", ns="nowhere")
        self.assertEqual((err.code, err.message), (404, 'namespaces "nowhere" not found'))
        self.s.create(self.ns, "", {"metadata": {"name": "tmp"}})
        self.mk("a", ns="tmp")
        obj, gone = self.s.delete(self.ns, "", "tmp")
        self.assertFalse(gone)
        self.assertEqual(obj["status"]["phase"], "Terminating")
        self.assertEqual(self.code(self.mk, "b", ns="tmp").code, 403)
        self.s.namespace_pass()
        self.assertEqual(self.code(self.s.get, self.ns, "", "tmp").code, 404)
        self.assertEqual(self.s.list(self.cm, "tmp")[0], [])


class ServerSideApply(Base):
    def test_create_merge_conflict_force_and_removal(self):
        applied = {"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "1", "j": "2"}}
        obj = self.s.apply(self.cm, "default", "a", applied, "mgr-a")
        entry = obj["metadata"]["managedFields"][0]
        self.assertEqual((entry["manager"], entry["operation"]), ("mgr-a", "Apply"))
        self.assertIn("f:k", entry["fieldsV1"]["f:data"])
        # Another manager changing mgr-a's field conflicts; force takes it over.
        err = self.code(self.s.apply, self.cm, "default", "a",
                        {"metadata": {"name": "a"}, "data": {"k": "other"}}, "mgr-b")
        self.assertEqual((err.code, err.reason), (409, "Conflict"))
        self.assertIn('conflict with "mgr-a"', err.message)
        obj = self.s.apply(self.cm, "default", "a",
                           {"metadata": {"name": "a"}, "data": {"k": "other"}}, "mgr-b",
                           force=True)
        self.assertEqual(obj["data"], {"k": "other", "j": "2"})
        # mgr-a stops applying j: it goes; k is mgr-b's now and stays.
        obj = self.s.apply(self.cm, "default", "a",
                           {"metadata": {"name": "a", "labels": {"x": "1"}}}, "mgr-a")
        self.assertEqual(obj["data"], {"k": "other"})
        managers = {e["manager"] for e in obj["metadata"]["managedFields"]}
        self.assertEqual(managers, {"mgr-a", "mgr-b"})

    def test_same_value_is_no_conflict(self):
        self.s.apply(self.cm, "default", "a", {"metadata": {"name": "a"}, "data": {"k": "1"}},
                     "mgr-a")
        obj = self.s.apply(self.cm, "default", "a",
                           {"metadata": {"name": "a"}, "data": {"k": "1"}}, "mgr-b")
        self.assertEqual(obj["data"], {"k": "1"})


class Publishing(Base):
    """What the registry's resources tell the OpenAPI and Table sides."""

    def test_openapi_publishes_status_paths_only_where_status_is_served(self):
        docs = [r.describe() for r in self.reg.all()]
        paths = openapi.v3_group_version(docs, "apis/apps/v1")["paths"]
        self.assertIn("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status", paths)
        self.assertNotIn("/apis/apps/v1/namespaces/{namespace}/controllerrevisions/{name}/status",
                         paths)
        core = openapi.v3_group_version(docs, "api/v1")["paths"]
        self.assertIn("/api/v1/namespaces/{name}/status", core)
        self.assertNotIn("/api/v1/namespaces/{namespace}/configmaps/{name}/status", core)

    def test_crds_print_name_and_created_at_like_the_default_table_convertor(self):
        crds = self.reg.find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        crd = {"metadata": {"name": "things.example.com",
                            "creationTimestamp": "2026-01-02T03:04:05Z"}}
        t = table.table(crds.columns, [crd], "7")
        self.assertEqual([c["name"] for c in t["columnDefinitions"]], ["Name", "Created At"])
        self.assertEqual(t["columnDefinitions"][1]["type"], "date")
        self.assertEqual(t["rows"][0]["cells"], ["things.example.com", "2026-01-02T03:04:05Z"])
        # Kinds with no columns of their own still print an age.
        ages = table.table(self.cm.columns, [crd], "7")
        self.assertEqual([c["name"] for c in ages["columnDefinitions"]], ["Name", "Age"])


def _pb_field(num, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return bytes([num << 3 | 2, len(payload)]) + payload


class Protobuf(unittest.TestCase):
    """The envelope and field numbers kubectl's typed commands send (kubectl create configmap)."""

    def test_configmap(self):
        meta = _pb_field(1, "x") + _pb_field(2, "") + _pb_field(11, _pb_field(1, "app") +
                                                                 _pb_field(2, "web"))
        raw = _pb_field(1, meta) + _pb_field(2, _pb_field(1, "k") + _pb_field(2, "v"))
        body = protobuf.MAGIC + _pb_field(1, _pb_field(1, "v1") + _pb_field(2, "ConfigMap")) + \
            _pb_field(2, raw)
        self.assertEqual(protobuf.decode(body), {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"app": "web"}}, "data": {"k": "v"}})

    def test_unknown_kinds_are_refused(self):
        body = protobuf.MAGIC + _pb_field(1, _pb_field(1, "v1") + _pb_field(2, "Pod"))
        with self.assertRaises(protobuf.DecodeError):
            protobuf.decode(body)
        with self.assertRaises(protobuf.DecodeError):
            protobuf.decode(b"{}")


if __name__ == "__main__":
    unittest.main()
