#pragma once
// PortProxy: the stable port of one app. Listens on 127.0.0.1:<port> and forwards every new
// connection to 127.0.0.1:<backend>, the serving container's published port. switch_backend()
// only affects connections accepted afterwards: open ones finish on the old backend, which is
// how blue drains while green takes new traffic. Each direction has a bounded buffer and
// half-close is forwarded (EOF from one side shuts down sending to the other). Connecting to
// the backend has a deadline and idle connections are closed after `idle_timeout`.
//
// Runs its own I/O thread; all public methods are thread-safe. The destructor closes.
#include <chrono>
#include <memory>
#include <string>

#include "common/result.h"

namespace berth::agent {

struct ProxyOptions {
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds idle_timeout{300000};
  std::size_t buffer_size = 16 * 1024;
};

class PortProxy {
 public:
  // listen_port 0 picks a free port. Errors: kUnavailable when the port cannot be bound.
  static Result<std::unique_ptr<PortProxy>> start(int listen_port, int backend_port,
                                                  ProxyOptions options = {});
  virtual ~PortProxy() = default;
  virtual int port() const = 0;
  virtual int backend() const = 0;
  virtual void switch_backend(int backend_port) = 0;
  // Connections currently open to a backend port.
  virtual int connections_to(int backend_port) const = 0;
  // Stops accepting and closes every open connection; idempotent.
  virtual void close() = 0;
};

}  // namespace berth::agent
