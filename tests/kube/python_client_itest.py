#!/usr/bin/env python3
"""Proves the test API server with the official Python client (Debian's python3-kubernetes 22.6),
a second client the project did not write: custom objects with list pagination, watch with resume
from a resourceVersion, 410 Gone after compaction (as ApiException 410 from a continue token and
from a watch), the status subresource, and the built-in kinds berth uses (Secret,
ControllerRevision, Lease).

Exit 0 when all pass, 1 on a failure, 77 (ctest: skipped) when python3-kubernetes or python3-yaml
is missing and CI is not set; under CI=true a missing package is a failure."""
import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
import warnings

ROOT = os.environ.get("BERTH_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _skip(why):
    print(f"SKIP: {why}", file=sys.stderr)
    sys.exit(1 if os.environ.get("CI") == "true" else 77)


try:
    import yaml
    from kubernetes import client, config, watch
    from kubernetes.client.rest import ApiException
except ImportError as missing:
    # Debian's package lives in the system interpreter's dist-packages; a python3 earlier on PATH
    # (a virtualenv, pyenv) does not see it. Re-run under the system one before giving up.
    system = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system) \
            and not os.environ.get("BERTH_PY_REEXEC"):
        os.environ["BERTH_PY_REEXEC"] = "1"
        os.execv(system, [system] + sys.argv)
    _skip(f"{missing.name} is not installed (apt-get install python3-kubernetes python3-yaml)")

GROUP, VERSION, PLURAL, NS = "berth.dev", "v1alpha1", "appservices", "default"
DEADLINE = 30  # seconds for the server to come up; a state to reach, not a timing assertion


def appservice(name, image="docker.io/library/nginx:1.27", port=80):
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AppService",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"imageRef": image, "containerPort": port}}


class Server:
    """The test API server as a process: python3 hack/testenv/kubeapi --dir DIR --port 0."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="berth-kubeapi-")
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "hack", "testenv", "kubeapi"), "--dir",
             os.path.join(self.dir, "server"), "--port", "0", "--crd",
             os.path.join(ROOT, "crds", "appservices.berth.dev.yaml")],
            stdout=self.log, stderr=subprocess.STDOUT)
        ready = os.path.join(self.dir, "server", "ready.json")
        end = time.monotonic() + DEADLINE
        while not (os.path.exists(ready) and os.path.getsize(ready) > 0):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise RuntimeError("the test API server did not start; see its log")
            time.sleep(0.1)
        with open(ready, encoding="utf-8") as f:
            self.port = json.load(f)["port"]
        self.kubeconfig = os.path.join(self.dir, "server", "kubeconfig")
        self.ca = os.path.join(self.dir, "server", "ca.crt")
        with open(self.kubeconfig, encoding="utf-8") as f:
            users = yaml.safe_load(f)["users"]
        self.token = users[0]["user"]["token"]

    def control(self, path, body=None):
        """POST /_test/<path> with the admin token (compaction, faults)."""
        ctx = ssl.create_default_context(cafile=self.ca)
        req = urllib.request.Request(
            f"https://127.0.0.1:{self.port}/_test/{path}", method="POST",
            data=json.dumps(body or {}).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def tail_log(self):
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read()[-4000:].decode(errors="replace")


SERVER = None


def setUpModule():
    global SERVER
    # The client's connection pool leaves sockets to the GC; not this test's concern.
    warnings.filterwarnings("ignore", category=ResourceWarning)
    SERVER = Server()
    config.load_kube_config(config_file=SERVER.kubeconfig, context="berth-test")


def tearDownModule():
    if SERVER:
        SERVER.stop()
        SERVER.log_tail = SERVER.tail_log()  # kept for the failure report; the dir goes now
        shutil.rmtree(SERVER.dir, ignore_errors=True)


class CustomObjectsTest(unittest.TestCase):
    def setUp(self):
        self.api = client.CustomObjectsApi()

    def create(self, name, **kw):
        return self.api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, appservice(name, **kw))

    def test_list_pages_with_limit_and_continue(self):
        names = {f"page-{i}" for i in range(5)}
        for n in sorted(names):
            self.create(n)
        seen, token, pages = [], None, 0
        while True:
            kw = {"limit": 2}
            if token:
                kw["_continue"] = token
            page = self.api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, **kw)
            pages += 1
            self.assertLessEqual(len(page["items"]), 2)
            seen += [o["metadata"]["name"] for o in page["items"]]
            token = page["metadata"].get("continue")
            if not token:
                break
        self.assertTrue(names <= set(seen))
        self.assertEqual(len(seen), len(set(seen)), "an object appeared on two pages")
        self.assertGreaterEqual(pages, 3)

    def test_watch_resumes_from_a_resource_version(self):
        listed = self.api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
        rv = listed["metadata"]["resourceVersion"]
        self.create("watched")
        w = watch.Watch()
        events = []
        for event in w.stream(self.api.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL,
                              resource_version=rv, timeout_seconds=10):
            events.append(event)
            if event["object"]["metadata"]["name"] == "watched":
                w.stop()
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                         [("ADDED", "watched")], "a watch from a list's version sees only what came after")
        resume = events[-1]["object"]["metadata"]["resourceVersion"]
        self.api.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "watched",
                                                {"spec": {"imageRef": "docker.io/library/nginx:1.28"}})
        w = watch.Watch()
        for event in w.stream(self.api.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL,
                              resource_version=resume, timeout_seconds=10):
            self.assertEqual(event["type"], "MODIFIED")
            self.assertEqual(event["object"]["spec"]["imageRef"], "docker.io/library/nginx:1.28")
            self.assertEqual(event["object"]["metadata"]["generation"], 2)
            w.stop()
            break
        else:
            self.fail("no MODIFIED event after resuming")

    def test_status_subresource(self):
        self.create("status-app")
        patched = self.api.patch_namespaced_custom_object_status(
            GROUP, VERSION, NS, PLURAL, "status-app",
            {"status": {"phase": "Running", "currentRevision": 1, "observedGeneration": 1,
                        "conditions": [{"type": "Ready", "status": "True", "reason": "Running",
                                        "message": "serving",
                                        "lastTransitionTime": "2026-11-27T10:00:00Z"}]}})
        self.assertEqual(patched["status"]["phase"], "Running")
        self.assertEqual(patched["metadata"]["generation"], 1, "a status write does not bump generation")
        got = self.api.get_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "status-app")
        self.assertEqual(got["status"]["conditions"][0]["type"], "Ready")
        # The main resource ignores status; the status subresource ignores spec.
        self.api.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "status-app",
                                                {"status": {"phase": "Failed"}})
        self.api.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "status-app",
                                                       {"spec": {"imageRef": "x/y:1"}})
        got = self.api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "status-app")
        self.assertEqual((got["status"]["phase"], got["spec"]["imageRef"]),
                         ("Running", "docker.io/library/nginx:1.27"))
        with self.assertRaises(ApiException) as ctx:
            self.api.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "status-app",
                                                           {"status": {"phase": "Sleeping"}})
        self.assertEqual(ctx.exception.status, 422)
        self.assertIn('status.phase: Unsupported value: "Sleeping"', json.loads(ctx.exception.body)["message"])

    def test_validation_errors_come_back_as_422_with_causes(self):
        with self.assertRaises(ApiException) as ctx:
            self.create("bad-port", port=70000)
        self.assertEqual(ctx.exception.status, 422)
        status = json.loads(ctx.exception.body)
        self.assertEqual(status["reason"], "Invalid")
        self.assertEqual(status["details"]["causes"][0],
                         {"reason": "FieldValueInvalid", "field": "spec.containerPort",
                          "message": "Invalid value: 70000: spec.containerPort in body should be "
                                     "less than or equal to 65535"})

    def test_stale_update_is_a_conflict(self):
        obj = self.create("conflict-app")
        obj["spec"]["imageRef"] = "docker.io/library/nginx:1.28"
        self.api.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "conflict-app", obj)
        obj["spec"]["imageRef"] = "docker.io/library/nginx:1.29"  # still the old resourceVersion
        with self.assertRaises(ApiException) as ctx:
            self.api.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "conflict-app", obj)
        self.assertEqual(ctx.exception.status, 409)


class CompactionTest(unittest.TestCase):
    """Runs last in its own class: compaction forgets history for every other test too."""

    def test_410_after_compaction(self):
        api = client.CustomObjectsApi()
        for i in range(3):
            api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, appservice(f"gone-{i}"))
        page = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, limit=1)
        token = page["metadata"]["continue"]
        old_rv = page["metadata"]["resourceVersion"]
        api.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "gone-0",
                                           {"spec": {"imageRef": "docker.io/library/nginx:1.28"}})
        SERVER.control("compact")

        with self.assertRaises(ApiException) as ctx:
            api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, limit=1, _continue=token)
        self.assertEqual(ctx.exception.status, 410)
        self.assertEqual(json.loads(ctx.exception.body)["reason"], "Expired")

        # A watch from before the compaction: an in-stream ERROR event, as the real watch cache
        # answers (with timeout_seconds the client does not retry and raises ApiException 410).
        w = watch.Watch()
        with self.assertRaises(ApiException) as ctx:
            for _ in w.stream(api.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL,
                              resource_version=old_rv, timeout_seconds=10):
                self.fail("an event was delivered from a compacted resourceVersion")
        self.assertEqual(ctx.exception.status, 410)
        self.assertTrue(ctx.exception.reason.startswith(
            "Expired: too old resource version: %s (" % old_rv), ctx.exception.reason)
        self.assertIsNone(ctx.exception.body, "in-stream, not an HTTP 410")

        # An ERROR event with code 410 in an open stream (what a real server sends when a watch
        # falls out of its window) reaches the caller as ApiException 410 with the Status reason.
        rv = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["metadata"]["resourceVersion"]
        SERVER.control("faults", {"kind": "gone-in-stream", "verb": "watch", "resource": PLURAL})
        w = watch.Watch()
        with self.assertRaises(ApiException) as ctx:
            for _ in w.stream(api.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL,
                              resource_version=rv, timeout_seconds=10):
                self.fail("an event was delivered before the injected 410")
        self.assertEqual(ctx.exception.status, 410)
        self.assertTrue(ctx.exception.reason.startswith("Expired: "), ctx.exception.reason)
        self.assertIsNone(ctx.exception.body, "in-stream, not an HTTP 410")

        # Relisting gives a fresh version to watch from.
        fresh = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
        self.assertGreater(int(fresh["metadata"]["resourceVersion"]), int(old_rv))


class BuiltinsTest(unittest.TestCase):
    def test_secrets(self):
        core = client.CoreV1Api()
        core.create_namespaced_secret(NS, client.V1Secret(
            metadata=client.V1ObjectMeta(name="registry-password"), type="Opaque",
            string_data={"password": "s3cret"}))
        got = core.read_namespaced_secret("registry-password", NS)
        self.assertEqual(base64.b64decode(got.data["password"]), b"s3cret")
        self.assertIsNone(got.string_data)
        names = [s.metadata.name for s in core.list_namespaced_secret(NS).items]
        self.assertIn("registry-password", names)
        core.patch_namespaced_secret("registry-password", NS,
                                     {"data": {"password": base64.b64encode(b"n3w").decode()}})
        self.assertEqual(base64.b64decode(core.read_namespaced_secret("registry-password", NS).data["password"]), b"n3w")
        core.delete_namespaced_secret("registry-password", NS)
        with self.assertRaises(ApiException) as ctx:
            core.read_namespaced_secret("registry-password", NS)
        self.assertEqual(ctx.exception.status, 404)

    def test_controller_revisions(self):
        apps = client.AppsV1Api()
        rev = apps.create_namespaced_controller_revision(NS, client.V1ControllerRevision(
            metadata=client.V1ObjectMeta(name="hello-1", labels={"berth.dev/app": "hello"}),
            revision=1, data={"imageRef": "docker.io/library/nginx:1.27", "containerPort": 80}))
        self.assertEqual(rev.revision, 1)
        listed = apps.list_namespaced_controller_revision(NS, label_selector="berth.dev/app=hello")
        self.assertEqual([r.metadata.name for r in listed.items], ["hello-1"])
        self.assertEqual(listed.items[0].data["imageRef"], "docker.io/library/nginx:1.27")
        with self.assertRaises(ApiException) as ctx:  # data and revision are immutable
            apps.patch_namespaced_controller_revision("hello-1", NS, {"revision": 2})
        self.assertEqual(ctx.exception.status, 422)

    def test_leases(self):
        coord = client.CoordinationV1Api()
        lease = coord.create_namespaced_lease("berth-system", client.V1Lease(
            metadata=client.V1ObjectMeta(name="berth-controller"),
            spec=client.V1LeaseSpec(holder_identity="pod-a", lease_duration_seconds=15)))
        stale = coord.read_namespaced_lease("berth-controller", "berth-system")
        lease.spec.holder_identity = "pod-b"
        renewed = coord.replace_namespaced_lease("berth-controller", "berth-system", lease)
        self.assertEqual(renewed.spec.holder_identity, "pod-b")
        self.assertNotEqual(renewed.metadata.resource_version, stale.metadata.resource_version)
        stale.spec.holder_identity = "pod-c"  # a second candidate with an old version loses
        with self.assertRaises(ApiException) as ctx:
            coord.replace_namespaced_lease("berth-controller", "berth-system", stale)
        self.assertEqual(ctx.exception.status, 409)


def load_tests(loader, standard_tests, pattern):
    # Compaction forgets history for everyone: run it after the others.
    suite = unittest.TestSuite()
    for case in (CustomObjectsTest, BuiltinsTest, CompactionTest):
        suite.addTests(loader.loadTestsFromTestCase(case))
    return suite


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    if not result.wasSuccessful() and SERVER is not None:
        print("--- server log (tail)\n" + getattr(SERVER, "log_tail", ""), file=sys.stderr)
    sys.exit(0 if result.wasSuccessful() else 1)
