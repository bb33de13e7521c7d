#pragma once
// An OCI image layout built on disk for the tests that need a large, multi-layer image without
// a registry (podman pulls it as oci:<path>:<tag>; skopeo pushes it): layers of random,
// incompressible bytes, so a pull takes long enough to be measured, and optionally the sample
// app (busybox httpd on 8080 serving /www/index.html) below them, so the image also runs.
//
// Contract: needs python3 (the tests that use it need podman, which brings it). The manifest is
// the only one in index.json, named `tag`. Errors are values.
#include <cstdint>
#include <cstdio>
#include <string>

#include "common/result.h"
#include "support/testenv.h"

namespace berth::testenv {

struct OciLayoutOptions {
  std::string tag = "latest";  // org.opencontainers.image.ref.name
  int random_layers = 4;
  int random_layer_mib = 8;
  // Not empty: the sample app's two layers come first and its page says this.
  std::string app_page;
};

struct OciLayout {
  std::string path;              // the layout directory
  int layers = 0;                // every layer the manifest lists
  std::int64_t layer_bytes = 0;  // the sum of their (compressed) sizes
};

// Builds the layout in `dir`/layout.
inline Result<OciLayout> build_oci_layout(const std::string& dir, const OciLayoutOptions& o) {
  static const char* const kScript = R"PY(
import gzip, hashlib, io, json, os, sys, tarfile
out, tag, random_layers, mib, page = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
blobs = os.path.join(out, "blobs", "sha256"); os.makedirs(blobs)
def put(b):
    d = hashlib.sha256(b).hexdigest(); open(os.path.join(blobs, d), "wb").write(b); return d
layers, ids = [], []
def layer(entries, level):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for path, data, mode in entries:
            info = tarfile.TarInfo(path); info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE; t.addfile(info)
            else:
                info.size = len(data); t.addfile(info, io.BytesIO(data))
    tar = raw.getvalue(); gz = gzip.compress(tar, compresslevel=level, mtime=0)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": "sha256:" + put(gz), "size": len(gz)})
    ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
config = {"Cmd": ["/x"]}
if page:
    layer([("bin", None, 0o755), ("bin/busybox", open("/bin/busybox", "rb").read(), 0o755),
           ("tmp", None, 0o1777)], 6)
    layer([("www", None, 0o755), ("www/index.html", page.encode(), 0o644)], 6)
    config = {"Cmd": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
              "ExposedPorts": {"8080/tcp": {}}, "WorkingDir": "/"}
for i in range(random_layers):
    layer([("data%d" % i, os.urandom(mib * 1024 * 1024), 0o644)], 1)
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": config,
                  "rootfs": {"type": "layers", "diff_ids": ids}}).encode()
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": "sha256:" + put(cfg), "size": len(cfg)},
                "layers": layers}).encode()
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": "sha256:" + put(m), "size": len(m),
           "annotations": {"org.opencontainers.image.ref.name": tag}}]},
          open(os.path.join(out, "index.json"), "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(out, "oci-layout"), "w"))
print(len(layers), sum(l["size"] for l in layers))
)PY";
  OciLayout layout;
  layout.path = dir + "/layout";
  std::string out;
  const int rc =
      run_command({"python3", "-c", kScript, layout.path, o.tag, std::to_string(o.random_layers),
                   std::to_string(o.random_layer_mib), o.app_page},
                  &out, {}, 120);
  if (rc != 0)
    return make_error(ErrorCode::kInternal,
                      "building the OCI layout: exit status " + std::to_string(rc) + ": " + out);
  long long bytes = 0;
  if (std::sscanf(out.c_str(), "%d %lld", &layout.layers, &bytes) != 2)
    return make_error(ErrorCode::kInternal, "building the OCI layout: " + out);
  layout.layer_bytes = static_cast<std::int64_t>(bytes);
  return layout;
}

}  // namespace berth::testenv
