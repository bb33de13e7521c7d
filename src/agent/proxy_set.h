#pragma once
// ProxySet: the stable ports of all apps on this agent, one PortProxy per app (port_proxy.h).
// The Deployer talks to this interface so its unit tests need no sockets. Thread-safe.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "agent/port_proxy.h"
#include "common/result.h"

namespace berth::agent {

class ProxySet {
 public:
  virtual ~ProxySet() = default;
  // Makes the app's stable port forward new connections to `backend`. When the app has no
  // proxy yet one is opened on `port` (0: a free port). Returns the stable port.
  // Errors: kUnavailable when the port cannot be bound.
  virtual Result<int> route(const std::string& service_id, int port, int backend) = 0;
  // Waits until no connection to `backend` is open, at most `timeout`.
  virtual void wait_drained(const std::string& service_id, int backend,
                            std::chrono::milliseconds timeout) = 0;
  virtual bool is_open(const std::string& service_id) = 0;
  // Idempotent.
  virtual void close(const std::string& service_id) = 0;
};

class AsioProxySet final : public ProxySet {
 public:
  explicit AsioProxySet(ProxyOptions options = {}) : options_(options) {}
  ~AsioProxySet() override;
  Result<int> route(const std::string& service_id, int port, int backend) override;
  void wait_drained(const std::string& service_id, int backend,
                    std::chrono::milliseconds timeout) override;
  bool is_open(const std::string& service_id) override;
  void close(const std::string& service_id) override;
  void close_all();

 private:
  ProxyOptions options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<PortProxy>> proxies_;  // guarded by mu_
};

}  // namespace berth::agent
