#pragma once
// MetricsServer: a plain-HTTP listener that answers GET /metrics with a registry in the
// Prometheus text format, for processes that have no API server of their own (berth-agent's
// --metrics-listen). Nothing it serves is secret (docs/metrics.md), so it authenticates no one.
//
// Contract:
//   - start() binds and serves on one background thread; errors are values (kInvalidArgument:
//     a bad address; kUnavailable: the address is in use).
//   - GET /metrics is 200 with the registry's render(); any other path 404, any other method
//     on /metrics 405. One request per connection (Connection: close).
//   - Every read and write has a deadline (`io_timeout`); at most `max_connections` at once,
//     further ones are closed at once.
//   - stop() closes the listener and every connection and joins the thread. Idempotent; the
//     destructor calls it. The registry must outlive the server.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/metrics.h"
#include "common/result.h"

namespace berth::api {

struct MetricsServerOptions {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 0;  // 0: any free port
  std::chrono::milliseconds io_timeout{10'000};
  std::size_t max_connections = 16;
};

class MetricsServer {
 public:
  MetricsServer(MetricsServerOptions options, metrics::Registry& registry);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  Status start();
  std::uint16_t port() const;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace berth::api
