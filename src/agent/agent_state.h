#pragma once
// AgentState: the agent's own small SQLite database (WAL) in its data dir. It holds, per app,
// the serving revision/container/ports, the previous revision, the container being rolled out
// (so a crash mid-deploy can be cleaned up), and the recorded result of every applied task id
// (the last 1000), so a re-delivered task is answered without being redone.
// It never holds a password: nothing here receives one.
//
// Thread-safe (one connection behind a mutex). Errors: kUnavailable (busy/locked),
// kDataLoss (corrupt file), kPermissionDenied / kResourceExhausted from the file system.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agentlink/messages.h"
#include "common/result.h"
#include "core/types.h"

namespace berth::agent {

struct AppRecord {
  std::string service_id;
  int stable_port = 0;      // the proxy's port; kept for the life of the app
  std::string revision_id;  // serving revision, empty before the first success
  std::int64_t revision = 0;
  std::string container;  // serving container name
  int backend_port = 0;   // its published loopback port
  std::string image_digest;
  std::string previous_revision;
  std::string pending_container;  // green being rolled out; empty when none
  int container_port = 0;
  core::HealthCheck health;
  std::string last_task_id;
};

class AgentState {
 public:
  // path ":memory:" gives a private in-memory database (unit tests).
  static Result<std::unique_ptr<AgentState>> open(const std::string& path);
  ~AgentState();

  Result<std::optional<agentlink::TaskResult>> recorded_result(const std::string& task_id);
  Result<std::optional<AppRecord>> app(const std::string& service_id);
  Result<std::vector<AppRecord>> apps();
  Status put_app(const AppRecord& app);
  // Records a finished task and, in the same transaction, the app's new record (or forgets the
  // app when `forget` is set).
  Status finish_task(const agentlink::TaskResult& result, const std::string& kind,
                     const std::optional<AppRecord>& app, bool forget = false);

 private:
  struct Impl;
  explicit AgentState(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace berth::agent
