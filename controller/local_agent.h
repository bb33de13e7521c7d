#pragma once
// The local agent of `berth-controller serve --local-agent`: a berth-agent child process on this
// machine with credentials the controller issues itself (DATA_DIR/local-agent/credentials), its
// own data directory (DATA_DIR/local-agent/data) and the controller's zone. The child inherits
// the controller's environment (CONTAINERS_CONF and friends) but none of its descriptors beyond
// stdin/stdout/stderr (no listening socket, database or lock), gets nothing secret on its
// command line, and receives SIGTERM when the controller dies, even by SIGKILL (see
// spawn_child). A supervisor thread starts it and restarts it with backoff if it exits while
// berth runs; stop() sends SIGTERM, waits, then SIGKILL.
#include <sys/types.h>

#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"

namespace berth::controller {

struct LocalAgentOptions {
  std::filesystem::path agent_binary;  // berth-agent
  std::filesystem::path data_dir;      // the controller's data directory
  std::string controller_url;          // wss://127.0.0.1:PORT
  std::string zone = "local";
  std::string name = "local";
  std::vector<std::string> registry_cas;  // HOST=FILE, passed through as --registry-ca
  std::string log_level = "info";
};

class LocalAgent {
 public:
  explicit LocalAgent(LocalAgentOptions options);
  ~LocalAgent();
  Status start();
  void stop();
  pid_t pid() const;

 private:
  Status spawn_locked();
  void supervise(std::promise<Status> first);

  LocalAgentOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  pid_t pid_ = -1;
  bool stopping_ = false;
  std::thread supervisor_;
};

// The berth-agent that sits beside the running berth-controller binary.
std::filesystem::path sibling_binary(const std::string& name);

}  // namespace berth::controller
