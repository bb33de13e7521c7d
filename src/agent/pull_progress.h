#pragma once
// Pull progress (docs/agent.md "Pull progress"): how many layers and bytes of an image the agent
// has pulled, measured while podman pulls, and when that is worth reporting.
//
// Where the numbers come from. podman prints no byte counts when its output is not a terminal,
// and its "Copying blob" lines mark the start of a blob, not its end (several are copied at
// once). So the totals come from the image manifest (layer sizes, read from the registry with
// the task's credential just before the pull), and what is done from the blob files podman
// writes into its temporary directory (TMPDIR, one fresh directory per pull): a file as large
// as a layer is that layer, done; the sum of the files is the bytes written.
//
// Pure functions and a small state machine, no I/O except registry_layer_sizes(); thread-safe
// except PullThrottle and PullMeter (one per pull).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentlink/messages.h"
#include "common/result.h"
#include "core/types.h"
#include "registry/client.h"

namespace berth::agent {

// Manifests are read by the registry protocol's parser (registry/protocol.h), which a fuzz
// target feeds (tests/fuzz/manifest.cpp); these names stay for the agent's callers.
using registry::ManifestLayers;
using registry::parse_manifest_layers;
// The architecture this agent runs images for, in OCI terms ("amd64", "arm64", ...).
std::string_view host_oci_arch();

// Counts against `layer_sizes` (empty: totals unknown) given the sizes of the blob files podman
// has written so far. Each file as large as a not-yet-matched layer completes that layer; bytes
// done are the files' sum, capped at the total when it is known.
agentlink::PullCounts count_pull(const std::vector<std::int64_t>& layer_sizes,
                                 const std::vector<std::int64_t>& blob_sizes);

// Keeps the counts of one pull monotonic: a runtime that commits a finished blob and deletes
// its temporary file must not make the reported bytes go back.
class PullMeter {
 public:
  explicit PullMeter(std::vector<std::int64_t> layer_sizes) : sizes_(std::move(layer_sizes)) {}
  const agentlink::PullCounts& update(const std::vector<std::int64_t>& blob_sizes);
  // The counts once the pull succeeded: every layer done (layers the runtime already had count
  // as done; their bytes were never transferred, so bytes_done keeps what was written unless the
  // total is known).
  agentlink::PullCounts finished() const;
  const agentlink::PullCounts& counts() const { return counts_; }
  std::int64_t bytes_written() const { return written_; }

 private:
  std::vector<std::int64_t> sizes_;
  agentlink::PullCounts counts_;
  std::int64_t written_ = 0;
};

// "pulling: 3/5 layers, 41.2 MB of 80.0 MB" (totals unknown: "pulling: 41.2 MB"); with `done`,
// "pulled: ..." instead.
std::string describe_pull(const agentlink::PullCounts& c, bool done = false);
// Decimal units with one digit: "812 B", "41.2 kB", "41.2 MB", "1.3 GB".
std::string format_bytes(std::int64_t bytes);

// At most one report per `min_interval_ms`, and (when totals are known) only when the bytes
// crossed into a new `step_percent` step or a layer completed since the last report. The
// first report is due as soon as anything was written. So a pull reports at most about
// 100/step_percent + layers times, however large the image.
class PullThrottle {
 public:
  explicit PullThrottle(std::int64_t min_interval_ms = 1000, int step_percent = 10)
      : interval_ms_(min_interval_ms), step_(step_percent > 0 ? step_percent : 10) {}
  // Whether `c` at `now` is to be reported; when it is, it becomes the last report.
  bool due(const agentlink::PullCounts& c, core::UnixMillis now);

 private:
  int bucket(const agentlink::PullCounts& c) const;
  std::int64_t interval_ms_;
  int step_;
  bool reported_ = false;
  core::UnixMillis last_at_ = 0;
  agentlink::PullCounts last_;
};

// Fetches the manifest of `image` (pinned or tagged; an index is followed to the linux/host
// child) and returns its layer sizes, authenticating as `auth` when set. Bounded by
// options.timeout per request; errors as registry/client.h.
using LayerSizesFn = std::function<Result<std::vector<std::int64_t>>(
    const std::string& image, const std::optional<agentlink::RegistryAuth>& auth)>;
LayerSizesFn registry_layer_sizes(registry::RegistryOptions options);

}  // namespace berth::agent
