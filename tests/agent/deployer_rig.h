#pragma once
// The Deployer on fakes (fakes.h), an in-memory state DB and a clock that only moves when asked
// to (each reading adds 5 ms). Shared by the agent's unit suites.
#include <stdlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>

#include "agent/agent_state.h"
#include "agent/deployer.h"
#include "fakes.h"

namespace berth::agent::testing {
namespace fs = std::filesystem;

inline const char* kCanary = "canary-pass-7f3a9c";

inline std::string temp_dir() {
  std::string t = (fs::temp_directory_path() / "berth-agent-unit-XXXXXX").string();
  REQUIRE(::mkdtemp(t.data()) != nullptr);
  return t;
}

struct Rig {
  std::string dir = temp_dir();
  FakeDriver driver;
  FakeProber prober;
  FakeProxies proxies;
  std::unique_ptr<AgentState> state;
  core::UnixMillis clock = 1'000'000;
  int next_port = 30000;
  int next_suffix = 0;
  std::unique_ptr<Deployer> deployer;
  std::vector<core::DeployLogEntry> progress;
  LayerSizesFn layer_sizes;  // set, then make_deployer(), to give the deployer pull totals
  std::int64_t pulled_bytes = 0;

  Rig() {
    auto s = AgentState::open(":memory:");
    REQUIRE(s.ok());
    state = std::move(s).value();
    prober.calls = &driver.calls;
    proxies.calls = &driver.calls;
    make_deployer();
  }
  ~Rig() { fs::remove_all(dir); }

  void make_deployer() {
    DeployerOptions o;
    o.data_dir = dir;
    DeployerDeps d;
    d.driver = &driver;
    d.prober = &prober;
    d.proxies = &proxies;
    d.state = state.get();
    d.now = [this] { return clock += 5; };
    d.allocate_port = [this]() -> Result<int> { return next_port++; };
    d.suffix = [this] { return "s" + std::to_string(next_suffix++); };
    d.layer_sizes = layer_sizes;
    d.pulled_bytes = [this](std::int64_t b) { pulled_bytes += b; };
    deployer = std::make_unique<Deployer>(o, d);
  }

  agentlink::DeployTask task(const std::string& id, int rev, bool with_auth = true) {
    agentlink::DeployTask t;
    t.task_id = id;
    t.service_id = "svc1";
    t.revision_id = "rev" + std::to_string(rev);
    t.revision = rev;
    t.image_ref = "127.0.0.1:5000/app:v" + std::to_string(rev);
    t.pull_ref = t.image_ref;
    t.image_digest = "sha256:" + std::string(64, static_cast<char>('0' + rev));
    t.container_port = 8080;
    t.health.path = "/health";
    if (with_auth) t.auth = agentlink::RegistryAuth{{"127.0.0.1:5000"}, "berth", Secret(kCanary)};
    return t;
  }

  agentlink::TaskResult deploy(const agentlink::DeployTask& t) {
    return deployer->deploy(t, [this](const core::DeployLogEntry& e) { progress.push_back(e); });
  }

  bool tmp_is_empty() const {
    const fs::path tmp = fs::path(dir) / "tmp";
    return !fs::exists(tmp) || fs::is_empty(tmp);
  }
};

inline std::vector<std::string> steps_of(const agentlink::TaskResult& r) {
  std::vector<std::string> s;
  for (const auto& e : r.logs) s.push_back(e.step + ":" + e.status);
  return s;
}

inline std::size_t index_of(const std::vector<std::string>& v, const std::string& x) {
  auto it = std::find(v.begin(), v.end(), x);
  REQUIRE(it != v.end());
  return static_cast<std::size_t>(it - v.begin());
}

}  // namespace berth::agent::testing
