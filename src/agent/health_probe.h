#pragma once
// Health probing of a container published on loopback. A probe is healthy after
// `healthy_threshold` consecutive successful attempts; an attempt succeeds when
//   - path non-empty: HTTP/1.1 GET path answers with a 2xx or 3xx status, or
//   - path empty: a TCP connection is accepted.
// Each attempt has its own timeout, attempts are `interval` apart, and the whole probe gives up
// at `deadline` (counted from the start). Blocking; thread-safe (no shared state).
#include <atomic>
#include <chrono>
#include <string>

namespace berth::agent {

struct ProbeSpec {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path;  // empty: TCP connect
  std::chrono::milliseconds attempt_timeout{3000};
  std::chrono::milliseconds interval{5000};
  int healthy_threshold = 1;
  std::chrono::milliseconds deadline{60000};
};

struct ProbeOutcome {
  bool healthy = false;
  int attempts = 0;
  std::string last_error;  // one sentence: why the last attempt failed, empty when healthy
};

class HealthProber {
 public:
  virtual ~HealthProber() = default;
  virtual ProbeOutcome probe(const ProbeSpec& spec) = 0;
};

// The real prober, with Boost.Asio/Beast sockets.
class AsioHealthProber final : public HealthProber {
 public:
  ProbeOutcome probe(const ProbeSpec& spec) override;
};

// One attempt (exposed for tests): empty string when it succeeded, else the reason.
std::string probe_once(const ProbeSpec& spec);

}  // namespace berth::agent
