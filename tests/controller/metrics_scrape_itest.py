#!/usr/bin/env python3
"""Scrapes GET /metrics from a running `berth-controller serve` and reads it with a parser berth
did not write: Debian's python3-prometheus-client (prometheus_client.parser).

  metrics_scrape_itest.py scrape       the exposition parses; every documented metric is there
                                       with its type and labels; route labels are templates
  metrics_scrape_itest.py monitoring   every metric manifests/monitoring/ refers to is one the
                                       controller exposes
  metrics_scrape_itest.py agent        berth-agent --metrics-listen serves its own metrics, and
                                       the controller's berth_agents_connected follows the agent

Exit 0 on success, 1 on a failure, 77 (ctest: skipped) when python3-prometheus-client or the
binary is missing and CI is not set (under CI=true that is a failure)."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.environ.get("BERTH_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def skip(reason):
    if os.environ.get("CI") == "true":
        print(f"FAIL (CI=true, so not skipped): {reason}")
        sys.exit(1)
    print(f"SKIP: {reason}")
    sys.exit(77)


try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    skip("python3-prometheus-client is not installed (hack/install-deps.sh installs it)")

# name -> (type, label names) as docs/metrics.md lists them for standalone mode.
EXPECTED = {
    "controller_runtime_reconcile_total": ("counter", {"controller", "result"}),
    "controller_runtime_reconcile_errors_total": ("counter", {"controller"}),
    "controller_runtime_terminal_reconcile_errors_total": ("counter", {"controller"}),
    "controller_runtime_reconcile_time_seconds": ("histogram", {"controller"}),
    "controller_runtime_max_concurrent_reconciles": ("gauge", {"controller"}),
    "controller_runtime_active_workers": ("gauge", {"controller"}),
    "workqueue_depth": ("gauge", {"name"}),
    "workqueue_adds_total": ("counter", {"name"}),
    "workqueue_queue_duration_seconds": ("histogram", {"name"}),
    "workqueue_work_duration_seconds": ("histogram", {"name"}),
    "workqueue_retries_total": ("counter", {"name"}),
    "workqueue_unfinished_work_seconds": ("gauge", {"name"}),
    "workqueue_longest_running_processor_seconds": ("gauge", {"name"}),
    "berth_agents_connected": ("gauge", set()),
    "berth_deploys_total": ("counter", {"outcome"}),
    "berth_deploy_step_duration_seconds": ("histogram", {"step"}),
    "berth_credential_checks_total": ("counter", {"result"}),
    "berth_api_requests_total": ("counter", {"route", "code"}),
    "berth_api_request_duration_seconds": ("histogram", {"route"}),
}


def family_name(sample_or_family_name, kind):
    # prometheus_client names a counter family without its _total suffix.
    return sample_or_family_name + "_total" if kind == "counter" else sample_or_family_name


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, dict(res.headers), res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def binary(name):
    bin_dir = os.environ.get("BERTH_BIN_DIR")
    exe = os.path.join(bin_dir or "", name)
    if not bin_dir or not os.access(exe, os.X_OK):
        skip(f"no {name} binary at {exe} (set BERTH_BIN_DIR)")
    return exe


def wait_for(what, predicate, timeout=60):
    """Polls predicate() until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def log_field(path, msg, field):
    """`field` of the first JSON log line in `path` whose msg is `msg`, else None."""
    with open(path) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == msg and field in entry:
                return entry[field]
    return None


class Controller:
    """berth-controller serve on a loopback port 0, in a temporary data directory."""

    def __init__(self, agent_credentials=False):
        self.agent_credentials = agent_credentials

    def __enter__(self):
        exe = binary("berth-controller")
        self.dir = tempfile.mkdtemp(prefix="berth-metrics-")
        data = os.path.join(self.dir, "data")
        port_file = os.path.join(self.dir, "port")
        extra = []
        if self.agent_credentials:
            # Before serve takes the data directory: the CA the agent link trusts is made here.
            self.credentials = os.path.join(self.dir, "agent-credentials")
            subprocess.run([exe, "agent-credentials", "--data-dir", data, "--name", "vm-1",
                            "--out", self.credentials], check=True, stdout=subprocess.DEVNULL)
            extra = ["--agent-listen", "127.0.0.1:0"]
        self.log_path = os.path.join(self.dir, "log")
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(
            [exe, "serve", "--data-dir", data, "--listen", "127.0.0.1:0",
             "--port-file", port_file] + extra, stdout=self.log, stderr=subprocess.STDOUT)
        # The port file is written once the API listens; the process exiting first is a failure.
        deadline = time.monotonic() + 60
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError("berth-controller serve did not start:\n" + self.log.read())
            time.sleep(0.05)
        self.base = "http://127.0.0.1:" + open(port_file).read().strip()
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def scrape(base):
    status, headers, body = get(base + "/metrics")
    assert status == 200, f"/metrics answered {status} without credentials"
    content_type = headers.get("Content-Type", "")
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type, content_type
    return body, list(text_string_to_metric_families(body))


def check_scrape(base):
    raw_id = "5f1d3c1e-0000-4000-8000-00000000abcd"
    get(base + "/healthz")
    get(base + "/app-services")                       # 401: no credentials
    get(base + "/app-services/" + raw_id)             # 401, on the item route
    get(base + "/no/such/" + raw_id)                  # 404, an unknown path
    body, families = scrape(base)
    by_name = {family_name(f.name, f.type): f for f in families}
    failures = []
    for name, (kind, labels) in EXPECTED.items():
        f = by_name.get(name)
        if f is None:
            failures.append(f"{name}: missing")
            continue
        if f.type != kind:
            failures.append(f"{name}: type {f.type}, expected {kind}")
        for s in f.samples:
            got = set(s.labels) - {"le"}
            if got != labels:
                failures.append(f"{s.name}: labels {sorted(got)}, expected {sorted(labels)}")
    # Histograms: +Inf bucket == _count, buckets cumulative.
    for f in families:
        if f.type != "histogram":
            continue
        series = {}
        for s in f.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(key, {"buckets": [], "count": None})
            if s.name.endswith("_bucket"):
                series[key]["buckets"].append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                series[key]["count"] = s.value
        for key, v in series.items():
            values = [c for _, c in sorted(v["buckets"])]
            if values != sorted(values):
                failures.append(f"{f.name}{key}: buckets not cumulative")
            if not v["buckets"] or v["buckets"][-1][0] != float("inf") or \
                    values[-1] != v["count"]:
                failures.append(f"{f.name}{key}: +Inf bucket differs from _count")
    # Route labels are templates: the raw id never appears, the item route does.
    if raw_id in body:
        failures.append("a raw path (with an id) reached a label value")
    requests = by_name.get("berth_api_requests_total")
    seen = {(s.labels.get("route"), s.labels.get("code")) for s in requests.samples} \
        if requests else set()
    for want in [("/app-services/{id}", "401"), ("/app-services", "401"), ("/healthz", "200"),
                 ("other", "404")]:
        if want not in seen:
            failures.append(f"berth_api_requests_total has no series {want}; has {sorted(seen)}")
    reconciles = by_name.get("controller_runtime_reconcile_total")
    results = {s.labels.get("result") for s in reconciles.samples} if reconciles else set()
    if results != {"success", "error", "requeue", "requeue_after"}:
        failures.append(f"controller_runtime_reconcile_total results {sorted(results)}")
    return failures


PROMQL_WORDS = {
    # functions and aggregations used by manifests/monitoring/
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
    "absent", "clamp_min", "by", "without", "on", "ignoring", "and", "or", "unless", "bool",
    # label names
    "le", "controller", "name", "result", "outcome", "step", "route", "code", "job", "instance",
}


def referenced_metrics(expr):
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values are not metric names
    expr = re.sub(r"\[[^\]]*\]", "", expr)           # range selectors: [5m]
    names = set(re.findall(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return names - PROMQL_WORDS


def monitoring_exprs():
    exprs = []
    for path in glob.glob(os.path.join(ROOT, "manifests", "monitoring", "*.json")):
        def walk(node):
            if isinstance(node, dict):
                if isinstance(node.get("expr"), str):
                    exprs.append((os.path.basename(path), node["expr"]))
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
        walk(json.load(open(path)))
    import yaml
    for path in glob.glob(os.path.join(ROOT, "manifests", "monitoring", "*.yaml")):
        doc = yaml.safe_load(open(path))
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                exprs.append((os.path.basename(path), str(rule["expr"])))
    return exprs


def check_monitoring(base):
    _, families = scrape(base)
    exposed = set()
    for f in families:
        # Declared families count even before their first sample (e.g. no deploy yet).
        exposed.add(f.name)
        exposed.update(s.name for s in f.samples)
        if f.type == "counter":
            exposed.add(f.name + "_total")
        if f.type == "histogram":
            exposed.update(f.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    exprs = monitoring_exprs()
    failures = []
    if len(exprs) < 5:
        failures.append(f"only {len(exprs)} expressions found under manifests/monitoring/")
    for source, expr in exprs:
        for name in sorted(referenced_metrics(expr) - exposed):
            failures.append(f"{source}: {name} is not a metric the controller exposes ({expr})")
    return failures


def agents_connected(base):
    _, families = scrape(base)
    for f in families:
        if f.name == "berth_agents_connected":
            return f.samples[0].value if f.samples else None
    return None


def check_agent(controller):
    failures = []
    agent_port = wait_for("the agent endpoint", lambda: log_field(
        controller.log_path, "agent endpoint listening", "port"))
    if agents_connected(controller.base) != 0:
        failures.append("berth_agents_connected is not 0 before any agent connected")
    agent_dir = os.path.join(controller.dir, "agent")
    agent_log_path = os.path.join(controller.dir, "agent.log")
    with open(agent_log_path, "w") as agent_log:
        agent = subprocess.Popen(
            [binary("berth-agent"), "--controller", f"wss://127.0.0.1:{agent_port}",
             "--credentials", controller.credentials, "--data-dir", agent_dir,
             "--podman", "/bin/true", "--metrics-listen", "127.0.0.1:0"],
            stdout=agent_log, stderr=subprocess.STDOUT)
        try:
            port = wait_for("the agent's metrics listener", lambda: log_field(
                agent_log_path, "metrics listening", "port") or agent.poll() is not None)
            if port is True:
                raise RuntimeError("berth-agent exited:\n" + open(agent_log_path).read())
            wait_for("berth_agents_connected == 1",
                     lambda: agents_connected(controller.base) == 1)
            status, headers, body = get(f"http://127.0.0.1:{port}/metrics")
            if status != 200 or "version=0.0.4" not in headers.get("Content-Type", ""):
                failures.append(f"agent /metrics answered {status} {headers}")
            families = {f.name: f for f in text_string_to_metric_families(body)}
            deploys = families.get("berth_agent_deploys")
            if deploys is None or deploys.type != "counter":
                failures.append(f"agent exposes no berth_agent_deploys_total counter: {body}")
            else:
                outcomes = {s.labels.get("outcome") for s in deploys.samples}
                if outcomes != {"succeeded", "failed"}:
                    failures.append(f"berth_agent_deploys_total outcomes {sorted(outcomes)}")
            if get(f"http://127.0.0.1:{port}/other")[0] != 404:
                failures.append("the agent's metrics listener serves more than /metrics")
        finally:
            agent.terminate()
            agent.wait(timeout=30)
    wait_for("berth_agents_connected == 0 after the agent stopped",
             lambda: agents_connected(controller.base) == 0)
    return failures


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "scrape"
    with Controller(agent_credentials=(mode == "agent")) as c:
        if mode == "scrape":
            failures = check_scrape(c.base)
        elif mode == "monitoring":
            failures = check_monitoring(c.base)
        else:
            failures = check_agent(c)
    for f in failures:
        print("FAIL:", f)
    if failures:
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
