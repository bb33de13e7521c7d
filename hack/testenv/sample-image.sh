#!/usr/bin/env bash
# Pushes berth's sample images to a registry:
#   sample-image.sh REGISTRY_HOST AUTHFILE CA_DIR REPO
# Tags: v1 and v2 (busybox httpd on 8080 serving /www/index.html = "v1" / "v2") and "broken"
# (same files, but the command only sleeps, so a health check never passes).
#
# AUTHFILE is an OCI auth file ({"auths": {HOST: {"auth": base64(user:pass)}}}); it must be mode
# 0600 and this script deletes it when it exits, whatever happens. CA_DIR is a containers-style
# cert dir (ca.crt inside). Prints "TAG DIGEST" per pushed tag.
#
# The OCI layout is built by hand (deterministic tars: fixed mtimes, owners and order), so the
# digests only change when busybox or this script changes; it is cached under
# ${BERTH_CACHE_DIR:-/tmp}/berth-sample-oci-<content hash>.
set -euo pipefail

[ $# -eq 4 ] || { echo "usage: sample-image.sh REGISTRY_HOST AUTHFILE CA_DIR REPO" >&2; exit 2; }
host="$1" authfile="$2" ca_dir="$3" repo="$4"
trap 'rm -f "$authfile"' EXIT

[ -f "$authfile" ] || { echo "sample-image.sh: auth file $authfile missing" >&2; exit 1; }
mode="$(stat -c '%a' "$authfile")"
[ "$mode" = "600" ] || { echo "sample-image.sh: auth file must be 0600, is $mode" >&2; exit 1; }

BUSYBOX=/bin/busybox
key="$(cat "$BUSYBOX" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
layout="${BERTH_CACHE_DIR:-/tmp}/berth-sample-oci-$key"

if [ ! -f "$layout/index.json" ]; then
  tmp="$(mktemp -d "${BERTH_CACHE_DIR:-/tmp}/berth-sample-build.XXXXXX")"
  /usr/bin/python3 - "$tmp" "$BUSYBOX" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile
out, busybox = sys.argv[1], sys.argv[2]
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs)

def put(data: bytes) -> str:
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return d

def layer(entries):
    """entries: (path, bytes or None for a directory, mode). Returns (descriptor, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for path, data, mode in entries:
            info = tarfile.TarInfo(path)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    tar = raw.getvalue()
    gz = gzip.compress(tar, compresslevel=6, mtime=0)
    d = put(gz)
    return ({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": "sha256:" + d, "size": len(gz)},
            "sha256:" + hashlib.sha256(tar).hexdigest())

with open(busybox, "rb") as f:
    bb = f.read()
base, base_id = layer([("bin", None, 0o755), ("bin/busybox", bb, 0o755), ("tmp", None, 0o1777)])
www = {v: layer([("www", None, 0o755), ("www/index.html", (v + "\n").encode(), 0o644)])
       for v in ("v1", "v2")}

httpd = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
images = {"v1": ("v1", httpd), "v2": ("v2", httpd),
          "broken": ("v1", ["/bin/busybox", "sleep", "86400"])}
manifests = []
for tag, (content, cmd) in images.items():
    top, top_id = www[content]
    config = {"created": "1970-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
              "config": {"Cmd": cmd, "ExposedPorts": {"8080/tcp": {}}, "WorkingDir": "/",
                         "Labels": {"dev.berth.sample": tag}},
              "rootfs": {"type": "layers", "diff_ids": [base_id, top_id]}}
    cbytes = json.dumps(config, sort_keys=True).encode()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": "sha256:" + put(cbytes), "size": len(cbytes)},
                "layers": [base, top]}
    mbytes = json.dumps(manifest, sort_keys=True).encode()
    manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "digest": "sha256:" + put(mbytes), "size": len(mbytes),
                      "annotations": {"org.opencontainers.image.ref.name": tag}})
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": manifests}, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
EOF
  # Another process may have built the same layout concurrently: either copy is identical.
  mv -T "$tmp" "$layout" 2>/dev/null || rm -rf "$tmp"
fi

# One copy at a time: docker-registry 2.8 races when two uploads of the same blob (the busybox
# layer all three tags share) run at once, and a HEAD of that blob can then answer 500 "invalid
# checksum digest format", failing a push now and then. After the first tag only small layers move.
work="$(mktemp -d)"
trap 'rm -f "$authfile"; rm -rf "$work"' EXIT
for tag in v1 v2 broken; do
  if ! skopeo copy -q --dest-authfile "$authfile" --dest-cert-dir "$ca_dir" \
    --digestfile "$work/$tag.digest" "oci:$layout:$tag" "docker://$host/$repo:$tag" \
    >"$work/$tag.log" 2>&1; then
    cat "$work/$tag.log" >&2
    echo "sample-image.sh: pushing $repo:$tag to $host failed (above); the registry's own log says why" >&2
    exit 1
  fi
done
for tag in v1 v2 broken; do echo "$tag $(cat "$work/$tag.digest")"; done
