#include "agent/proxy_set.h"

#include <thread>

namespace berth::agent {

AsioProxySet::~AsioProxySet() { close_all(); }

Result<int> AsioProxySet::route(const std::string& service_id, int port, int backend) {
  std::lock_guard lock(mu_);
  auto it = proxies_.find(service_id);
  if (it != proxies_.end()) {
    it->second->switch_backend(backend);
    return it->second->port();
  }
  auto p = PortProxy::start(port, backend, options_);
  if (!p.ok()) return p.take_error();
  const int bound = (*p)->port();
  proxies_[service_id] = std::shared_ptr<PortProxy>(std::move(p).value());
  return bound;
}

void AsioProxySet::wait_drained(const std::string& service_id, int backend,
                                std::chrono::milliseconds timeout) {
  std::shared_ptr<PortProxy> p;
  {
    std::lock_guard lock(mu_);
    auto it = proxies_.find(service_id);
    if (it == proxies_.end()) return;
    p = it->second;
  }
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (p->connections_to(backend) > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

bool AsioProxySet::is_open(const std::string& service_id) {
  std::lock_guard lock(mu_);
  return proxies_.count(service_id) > 0;
}

void AsioProxySet::close(const std::string& service_id) {
  std::shared_ptr<PortProxy> p;
  {
    std::lock_guard lock(mu_);
    auto it = proxies_.find(service_id);
    if (it == proxies_.end()) return;
    p = std::move(it->second);
    proxies_.erase(it);
  }
  p->close();
}

void AsioProxySet::close_all() {
  std::map<std::string, std::shared_ptr<PortProxy>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(proxies_);
  }
  for (auto& [id, p] : all) p->close();
}

}  // namespace berth::agent
