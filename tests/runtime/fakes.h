#pragma once
// In-memory fakes of the reconciler's ports, for unit tests only (the real adapters are exercised
// by the integration and end-to-end suites).
#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/execution.h"
#include "core/ports.h"

namespace berth::testing {

class FakeStore : public core::StateStore {
 public:
  std::map<std::string, core::AppService> services;
  std::map<std::string, core::Revision> revisions;  // by id
  std::map<std::string, core::Task> tasks;          // by id
  std::map<std::string, core::StoredCredential> credentials;
  std::map<std::string, std::string> passwords;
  int writes = 0;
  // Test hooks: runs once at the start of the next unseal_password (a concurrent change landing
  // between the plan and the dispatch); number of record_outcome calls to fail (kUnavailable).
  std::function<void()> before_unseal;
  int fail_record_outcome = 0;

  Result<std::string> authenticate_password(std::string_view, const Secret&) override {
    return make_error(ErrorCode::kUnauthenticated, "no");
  }
  Result<std::string> authenticate_token(const Secret&) override {
    return make_error(ErrorCode::kUnauthenticated, "no");
  }
  Result<core::AppService> get_service(std::string_view, std::string_view id) override {
    return load_service(id);
  }
  Result<std::vector<core::AppService>> list_services(std::string_view) override {
    std::vector<core::AppService> out;
    for (auto& [id, s] : services) out.push_back(s);
    return out;
  }
  Result<core::AppService> load_service(std::string_view id) override {
    auto it = services.find(std::string(id));
    if (it == services.end()) return make_error(ErrorCode::kNotFound, "no such service");
    return it->second;
  }
  Result<std::vector<std::string>> list_service_ids() override {
    std::vector<std::string> out;
    for (auto& [id, s] : services) out.push_back(id);
    return out;
  }
  Status create_service(const core::Change& c) override {
    services[c.service.id] = c.service;
    apply_rest(c);
    return Status::Ok();
  }
  Status apply_change(const core::Change& c, std::int64_t expected) override {
    auto it = services.find(c.service.id);
    if (it == services.end()) return make_error(ErrorCode::kNotFound, "no such service");
    if (it->second.generation != expected)
      return make_error(ErrorCode::kConflict, "generation moved");
    it->second = c.service;
    apply_rest(c);
    return Status::Ok();
  }
  Status delete_service(std::string_view id) override {
    services.erase(std::string(id));
    return Status::Ok();
  }
  Result<std::vector<core::Revision>> list_revisions(std::string_view sid, bool) override {
    std::vector<core::Revision> out;
    for (auto& [id, r] : revisions) {
      if (r.service_id == sid) out.push_back(r);
    }
    return out;
  }
  Result<core::Revision> get_revision(std::string_view, std::string_view rid) override {
    auto it = revisions.find(std::string(rid));
    if (it == revisions.end()) return make_error(ErrorCode::kNotFound, "no such revision");
    return it->second;
  }
  Result<std::int64_t> next_revision_number(std::string_view) override {
    return static_cast<std::int64_t>(revisions.size() + 1);
  }
  Status record_outcome(const core::Revision& r, const core::AppService& s, int) override {
    if (fail_record_outcome > 0) {
      --fail_record_outcome;
      return make_error(ErrorCode::kUnavailable, "database is locked");
    }
    revisions[r.id] = r;
    return update_observed(s);
  }
  Status update_observed(const core::AppService& s) override {
    auto it = services.find(s.id);
    if (it == services.end()) return make_error(ErrorCode::kNotFound, "no such service");
    ++writes;
    auto& t = it->second;
    t.status = s.status;
    t.url = s.url;
    t.current_deployment_id = s.current_deployment_id;
    t.agent = s.agent;
    t.conditions = s.conditions;
    t.last_error = s.last_error;
    t.updated_at = s.updated_at;
    return Status::Ok();
  }
  Result<std::optional<core::StoredCredential>> get_credential(std::string_view sid) override {
    auto it = credentials.find(std::string(sid));
    if (it == credentials.end()) return std::optional<core::StoredCredential>();
    return std::optional<core::StoredCredential>(it->second);
  }
  Result<Secret> unseal_password(std::string_view sid, std::string_view host,
                                 std::string_view user) override {
    if (before_unseal) std::exchange(before_unseal, nullptr)();
    auto it = passwords.find(std::string(sid));
    if (it == passwords.end()) return make_error(ErrorCode::kNotFound, "no credential");
    auto c = credentials.find(std::string(sid));
    if (c != credentials.end() && (c->second.registry_host != host || c->second.username != user)) {
      return make_error(ErrorCode::kFailedPrecondition, "credential for another registry");
    }
    return Secret(it->second);
  }
  Result<std::vector<core::Task>> pending_tasks(std::string_view sid) override {
    std::vector<core::Task> out;
    for (auto& [id, t] : tasks) {
      if (t.service_id == sid && t.state != core::TaskState::kDone) out.push_back(t);
    }
    return out;
  }
  Status update_task(const core::Task& t) override {
    auto it = tasks.find(t.id);
    if (it == tasks.end()) return make_error(ErrorCode::kNotFound, "no task");
    if (it->second.state == core::TaskState::kDone) {
      return make_error(ErrorCode::kFailedPrecondition, "the task is already done");
    }
    it->second = t;
    return Status::Ok();
  }
  Status upsert_agent(const core::AgentRecord&) override { return Status::Ok(); }
  Result<std::vector<core::AgentRecord>> list_agents() override {
    return std::vector<core::AgentRecord>{};
  }

 private:
  void apply_rest(const core::Change& c) {
    ++writes;
    if (c.revision) revisions[c.revision->id] = *c.revision;
    if (c.task) tasks[c.task->id] = *c.task;
  }
};

class FakeGateway : public core::AgentGateway {
 public:
  struct Sent {
    std::string agent, kind, task_id;
    core::DeployOrder order;
    bool had_password = false;
    std::string password;
  };
  std::vector<Sent> sent;
  bool connected = true;
  // Runs after a task is recorded as sent, as a fast agent answering before send() returns.
  std::function<void(const Sent&)> on_send;

  Status send_deploy(const std::string& agent, const core::DeployOrder& order,
                     const Secret* password) override {
    if (!connected) return make_error(ErrorCode::kUnavailable, "not connected");
    sent.push_back({agent, "deploy", order.task_id, order, password != nullptr,
                    password ? std::string(password->reveal()) : std::string()});
    if (on_send) on_send(sent.back());
    return Status::Ok();
  }
  Status send_restart(const std::string& agent, const std::string& task_id,
                      const std::string&) override {
    if (!connected) return make_error(ErrorCode::kUnavailable, "not connected");
    sent.push_back({agent, "restart", task_id, {}, false, {}});
    if (on_send) on_send(sent.back());
    return Status::Ok();
  }
  Status send_remove(const std::string& agent, const std::string& task_id,
                     const std::string&) override {
    if (!connected) return make_error(ErrorCode::kUnavailable, "not connected");
    sent.push_back({agent, "remove", task_id, {}, false, {}});
    if (on_send) on_send(sent.back());
    return Status::Ok();
  }
};

class FakeResolver : public core::DigestResolver {
 public:
  Result<std::string> answer = std::string("sha256:") + std::string(64, 'a');
  int calls = 0;
  std::string last_username;
  Result<std::string> resolve(const std::string&, const core::RegistryLogin* login) override {
    ++calls;
    last_username = login ? login->username : "";
    return answer;
  }
};

}  // namespace berth::testing
