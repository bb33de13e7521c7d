#include "agent/pull_progress.h"

#include <algorithm>
#include <cstdio>

#include "core/image_ref.h"

namespace berth::agent {

std::string_view host_oci_arch() {
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__powerpc64__)
  return "ppc64le";
#elif defined(__s390x__)
  return "s390x";
#else
  return "unknown";
#endif
}

agentlink::PullCounts count_pull(const std::vector<std::int64_t>& layer_sizes,
                                 const std::vector<std::int64_t>& blob_sizes) {
  agentlink::PullCounts c;
  c.layers_total = static_cast<int>(layer_sizes.size());
  for (auto s : layer_sizes) c.bytes_total += s;
  for (auto s : blob_sizes) c.bytes_done += std::max<std::int64_t>(0, s);
  if (c.bytes_total > 0) c.bytes_done = std::min(c.bytes_done, c.bytes_total);
  // Multiset match: each blob file completes at most one layer of exactly its size.
  std::vector<std::int64_t> open = layer_sizes;
  std::sort(open.begin(), open.end());
  std::vector<std::int64_t> blobs = blob_sizes;
  std::sort(blobs.begin(), blobs.end());
  std::size_t i = 0, k = 0;
  while (i < open.size() && k < blobs.size()) {
    if (open[i] == blobs[k]) {
      ++c.layers_done;
      ++i;
      ++k;
    } else if (open[i] < blobs[k]) {
      ++i;
    } else {
      ++k;
    }
  }
  return c;
}

const agentlink::PullCounts& PullMeter::update(const std::vector<std::int64_t>& blob_sizes) {
  const auto now = count_pull(sizes_, blob_sizes);
  std::int64_t sum = 0;
  for (auto s : blob_sizes) sum += std::max<std::int64_t>(0, s);
  written_ = std::max(written_, sum);
  counts_.layers_total = now.layers_total;
  counts_.bytes_total = now.bytes_total;
  counts_.layers_done = std::max(counts_.layers_done, now.layers_done);
  counts_.bytes_done = std::max(counts_.bytes_done, now.bytes_done);
  return counts_;
}

agentlink::PullCounts PullMeter::finished() const {
  agentlink::PullCounts c = counts_;
  c.layers_done = c.layers_total;
  c.bytes_done = c.bytes_total > 0 ? c.bytes_total : written_;
  return c;
}

std::string format_bytes(std::int64_t bytes) {
  if (bytes < 1000) return std::to_string(std::max<std::int64_t>(0, bytes)) + " B";
  static const char* units[] = {"kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes) / 1000.0;
  int u = 0;
  while (v >= 999.95 && u < 3) {
    v /= 1000.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

std::string describe_pull(const agentlink::PullCounts& c, bool done) {
  std::string s = done ? "pulled: " : "pulling: ";
  if (c.layers_total > 0) {
    s += std::to_string(c.layers_done) + "/" + std::to_string(c.layers_total) + " layers, ";
  }
  s += format_bytes(c.bytes_done);
  if (c.bytes_total > 0) s += " of " + format_bytes(c.bytes_total);
  return s;
}

int PullThrottle::bucket(const agentlink::PullCounts& c) const {
  if (c.bytes_total <= 0) return 0;
  return static_cast<int>(c.bytes_done * 100 / c.bytes_total) / step_;
}

bool PullThrottle::due(const agentlink::PullCounts& c, core::UnixMillis now) {
  if (c.bytes_done <= 0 && c.layers_done <= 0) return false;
  if (reported_) {
    if (now - last_at_ < interval_ms_) return false;
    const bool moved = c.bytes_total > 0
                           ? (bucket(c) > bucket(last_) || c.layers_done > last_.layers_done)
                           : c.bytes_done > last_.bytes_done;
    if (!moved) return false;
  }
  reported_ = true;
  last_at_ = now;
  last_ = c;
  return true;
}

LayerSizesFn registry_layer_sizes(registry::RegistryOptions options) {
  return [options](const std::string& image, const std::optional<agentlink::RegistryAuth>& auth)
             -> Result<std::vector<std::int64_t>> {
    auto ref = core::parse_image_ref(image);
    if (!ref.ok()) return ref.take_error();
    std::optional<registry::RegistryCredential> cred;
    if (auth) cred = registry::RegistryCredential{auth->username, auth->password};
    core::ImageRef target = *ref;
    // An index names one child per platform: at most one more request.
    for (int hop = 0; hop < 2; ++hop) {
      auto manifest = registry::fetch_manifest(target, cred, options);
      if (!manifest.ok()) return manifest.take_error();
      auto layers = parse_manifest_layers(manifest->body, host_oci_arch());
      if (!layers.ok()) return layers.take_error();
      if (layers->child_digest.empty()) return std::move(layers->sizes);
      auto child = core::parse_image_ref(target.pinned(layers->child_digest));
      if (!child.ok()) return child.take_error();
      target = *child;
    }
    return make_error(ErrorCode::kInvalidArgument, "the image index nests another index");
  };
}

}  // namespace berth::agent
