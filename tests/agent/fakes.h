#pragma once
// Test doubles for the agent's unit suite: a runtime, a prober and a proxy set that record
// what they were asked and fail on demand. No processes, sockets or clocks.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "agent/deployer.h"
#include "agent/health_probe.h"
#include "agent/proxy_set.h"
#include "agent/runtime_driver.h"

namespace berth::agent::testing {

class FakeDriver final : public RuntimeDriver {
 public:
  std::vector<std::string> calls;  // "pull IMAGE", "run NAME", "stop NAME", "rm NAME", ...
  std::map<std::string, ContainerInfo> containers;
  std::map<std::string, ContainerSpec> specs;
  std::string fail_pull;  // non-empty: pull fails with this reason
  std::string fail_run;
  bool fail_remove = false;
  std::string logs;  // non-empty: what logs_tail returns
  // What the auth file held at pull time (to check its content and mode).
  std::string authfile_seen;
  std::string authfile_content;
  unsigned authfile_mode = 0;
  unsigned authfile_dir_mode = 0;
  std::string env_file_content;
  // Given to a pull's on_blobs one after the other, as if podman had written these files.
  std::vector<std::vector<std::int64_t>> blob_samples;
  std::string pull_tmp_dir;               // the TMPDIR the last pull was given
  std::set<std::string> local_images;     // images local storage holds (none unless a test adds)
  std::vector<std::string> local_checks;  // the images local_image was asked about
  int lists = 0;                          // list_by_label calls
  std::set<std::string> fail_remove_of;   // removing these fails (until erased)

  Result<std::string> pull(const PullRequest& r) override {
    calls.push_back("pull " + r.image);
    pull_tmp_dir = r.tmp_dir;
    if (r.on_blobs)
      for (const auto& sample : blob_samples) r.on_blobs(sample);
    authfile_seen = r.authfile;
    if (!r.authfile.empty()) {
      std::ifstream in(r.authfile);
      std::stringstream ss;
      ss << in.rdbuf();
      authfile_content = ss.str();
      namespace fs = std::filesystem;
      authfile_mode = static_cast<unsigned>(fs::status(r.authfile).permissions() & fs::perms::mask);
      authfile_dir_mode = static_cast<unsigned>(
          fs::status(fs::path(r.authfile).parent_path()).permissions() & fs::perms::mask);
    }
    if (!fail_pull.empty()) return make_error(ErrorCode::kUnavailable, fail_pull);
    return std::string("sha256:imageid");
  }
  Result<std::optional<std::string>> local_image(const std::string& image) override {
    local_checks.push_back(image);
    if (local_images.count(image) == 0) return std::optional<std::string>{};
    return std::optional<std::string>("sha256:localid");
  }
  Result<std::string> run(const ContainerSpec& s) override {
    calls.push_back("run " + s.name);
    if (!s.env_file.empty()) {
      std::ifstream in(s.env_file);
      std::stringstream ss;
      ss << in.rdbuf();
      env_file_content = ss.str();
    }
    // podman creates the container even when starting it fails.
    ContainerInfo c{"id-" + s.name, s.name, s.image, fail_run.empty() ? "running" : "created",
                    s.labels};
    containers[s.name] = c;
    specs[s.name] = s;
    if (!fail_run.empty()) return make_error(ErrorCode::kUnavailable, fail_run);
    return c.id;
  }
  Result<ContainerInfo> inspect(const std::string& name) override {
    auto it = containers.find(name);
    if (it == containers.end()) return make_error(ErrorCode::kNotFound, "no such container");
    return it->second;
  }
  Result<std::vector<ContainerInfo>> list_by_label(const std::string& key,
                                                   const std::string& value) override {
    ++lists;
    std::vector<ContainerInfo> out;
    for (auto& [n, c] : containers) {
      auto it = c.labels.find(key);
      if (it != c.labels.end() && (value.empty() || it->second == value)) out.push_back(c);
    }
    return out;
  }
  Status stop(const std::string& name, int) override {
    calls.push_back("stop " + name);
    if (auto it = containers.find(name); it != containers.end()) it->second.state = "exited";
    return Status::Ok();
  }
  Status remove(const std::string& name) override {
    calls.push_back("rm " + name);
    if (fail_remove || fail_remove_of.count(name))
      return make_error(ErrorCode::kUnavailable, "device busy");
    containers.erase(name);
    return Status::Ok();
  }
  Status restart(const std::string& name) override {
    calls.push_back("restart " + name);
    if (auto it = containers.find(name); it != containers.end()) it->second.state = "running";
    return Status::Ok();
  }
  Result<std::string> logs_tail(const std::string& name, int) override {
    if (!logs.empty()) return logs;
    return std::string("log of ") + name;
  }
};

class FakeProber final : public HealthProber {
 public:
  bool healthy = true;
  std::vector<ProbeSpec> probes;
  std::vector<std::string>* calls = nullptr;  // shared call log, to check step order
  ProbeOutcome probe(const ProbeSpec& spec) override {
    probes.push_back(spec);
    if (calls) calls->push_back("probe " + std::to_string(spec.port));
    return healthy ? ProbeOutcome{true, 1, ""}
                   : ProbeOutcome{false, 3, "GET /health answered 404."};
  }
};

class FakeProxies final : public ProxySet {
 public:
  std::map<std::string, std::pair<int, int>> routes;  // service -> (stable, backend)
  std::vector<std::string>* calls = nullptr;
  int next_port = 40000;
  bool fail = false;
  Result<int> route(const std::string& id, int port, int backend) override {
    if (calls) calls->push_back("switch " + std::to_string(backend));
    if (fail)
      return make_error(ErrorCode::kUnavailable,
                        "Could not listen on 127.0.0.1:1: address in use.");
    auto it = routes.find(id);
    if (it != routes.end()) {
      it->second.second = backend;
      return it->second.first;
    }
    const int p = port != 0 ? port : next_port++;
    routes[id] = {p, backend};
    return p;
  }
  void wait_drained(const std::string&, int, std::chrono::milliseconds) override {}
  bool is_open(const std::string& id) override { return routes.count(id) > 0; }
  void close(const std::string& id) override {
    if (calls) calls->push_back("close " + id);
    routes.erase(id);
  }
};

}  // namespace berth::agent::testing
