"""Shared setup for the unit tests of hack/testenv/kubeapi (the test API server's schema side):
finds the source tree, puts the server's modules on sys.path, loads the AppService CRD.

A missing python3-yaml exits 77 (ctest: skipped) unless CI is set, where it is a failure."""
import os
import sys

ROOT = os.environ.get("BERTH_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "hack", "testenv", "kubeapi"))

try:
    import yaml
except ImportError:
    print("python3-yaml is missing (apt-get install python3-yaml)", file=sys.stderr)
    sys.exit(1 if os.environ.get("CI") == "true" else 77)


def load_crd():
    with open(os.path.join(ROOT, "crds", "appservices.berth.dev.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def appservice_schema():
    return load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def printer_columns():
    return load_crd()["spec"]["versions"][0]["additionalPrinterColumns"]


def load_yaml_docs(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]
