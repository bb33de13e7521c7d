#!/usr/bin/env python3
"""The OpenAPI documents kubectl reads for the AppService CRD: the v3 index, the group-version
document (fieldValidation on writes, the schema found by its GVK) and the v2 document."""
import json
import sys
import unittest

import kubeapi_testlib
import openapi

RESOURCES = [
    {"group": "berth.dev", "version": "v1alpha1", "kind": "AppService", "plural": "appservices",
     "singular": "appservice", "namespaced": True, "shortNames": ["appsvc"], "subresources": ["status"],
     "schema": kubeapi_testlib.appservice_schema()},
    {"group": "", "version": "v1", "kind": "Secret", "plural": "secrets", "singular": "secret",
     "namespaced": True, "shortNames": [], "schema": None},
]


class OpenAPITest(unittest.TestCase):
    def test_v3_index_names_every_group_version_with_a_content_hash(self):
        paths = openapi.v3_paths(RESOURCES)["paths"]
        self.assertEqual(sorted(paths), ["api/v1", "apis/berth.dev/v1alpha1"])
        self.assertTrue(paths["apis/berth.dev/v1alpha1"]["serverRelativeURL"].startswith(
            "/openapi/v3/apis/berth.dev/v1alpha1?hash="))

    def test_the_patch_operation_offers_field_validation_for_the_kind(self):
        # kubectl's query-parameter check: without this it validates client-side.
        doc = openapi.v3_group_version(RESOURCES, "apis/berth.dev/v1alpha1")
        item = doc["paths"]["/apis/berth.dev/v1alpha1/namespaces/{namespace}/appservices/{name}"]
        self.assertEqual(item["patch"]["x-kubernetes-group-version-kind"],
                         {"group": "berth.dev", "version": "v1alpha1", "kind": "AppService"})
        self.assertIn("fieldValidation", [p["name"] for p in item["patch"]["parameters"]])
        # A custom resource gets a JSON merge patch from kubectl apply, never a strategic one.
        self.assertNotIn("application/strategic-merge-patch+json", item["patch"]["requestBody"]["content"])
        self.assertIn("/apis/berth.dev/v1alpha1/namespaces/{namespace}/appservices/{name}/status", doc["paths"])

    def test_the_kind_schema_is_found_by_its_gvk_and_keeps_the_crd_schema(self):
        doc = openapi.v3_group_version(RESOURCES, "berth.dev/v1alpha1")
        s = doc["components"]["schemas"]["dev.berth.v1alpha1.AppService"]
        self.assertEqual(s["x-kubernetes-group-version-kind"],
                         [{"group": "berth.dev", "version": "v1alpha1", "kind": "AppService"}])
        self.assertEqual(s["properties"]["spec"]["properties"]["containerPort"]["maximum"], 65535)
        ref = s["properties"]["metadata"]["allOf"][0]["$ref"]
        self.assertEqual(ref, "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        self.assertIn(ref.rsplit("/", 1)[1], doc["components"]["schemas"])
        self.assertIsNone(openapi.v3_group_version(RESOURCES, "apis/apps/v1"))

    def test_v2_uses_definitions_and_every_ref_resolves(self):
        doc = openapi.v2(RESOURCES)
        self.assertEqual(doc["swagger"], "2.0")
        text = json.dumps(doc)
        self.assertNotIn("#/components/", text)
        for ref in set(part.split('"')[0] for part in text.split('"$ref": "')[1:]):
            self.assertIn(ref.split("/")[-1], doc["definitions"], ref)


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False).result.wasSuccessful() else 1)
