// What the agent observes: the start-up reconcile, Hello's view of every app, and the watch
// that keeps checking serving containers between tasks (deployer.h has the contract).
#include <cstdio>
#include <filesystem>

#include "agent/deployer.h"
#include "agent/deployer_internal.h"
#include "common/log.h"

namespace berth::agent {
namespace fs = std::filesystem;
using agentlink::AppState;

namespace {

// Auth and env files only outlive their step when the agent died during it: overwrite and
// remove them before anything else.
void wipe_tmp(const std::string& data_dir) {
  const fs::path tmp = fs::path(data_dir) / "tmp";
  std::error_code ec;
  if (data_dir.empty() || !fs::exists(tmp, ec)) return;
  for (const auto& e : fs::recursive_directory_iterator(tmp, ec)) {
    if (!e.is_regular_file(ec) || e.is_symlink(ec)) continue;
    const auto size = static_cast<std::size_t>(e.file_size(ec));
    if (std::FILE* f = std::fopen(e.path().c_str(), "r+b")) {
      const std::string zeros(size, '\0');
      std::fwrite(zeros.data(), 1, zeros.size(), f);
      std::fclose(f);
    }
  }
  for (const auto& e : fs::directory_iterator(tmp, ec)) {
    fs::remove_all(e.path(), ec);
    log::info("removed a file left by an interrupted task", {{"path", e.path().string()}});
  }
}

std::chrono::milliseconds interval_of(const AppRecord& app) {
  return std::chrono::seconds(std::max(1, app.health.interval_seconds));
}

}  // namespace

Status Deployer::reconcile() {
  wipe_tmp(options_.data_dir);
  auto apps = deps_.state->apps();
  if (!apps.ok()) return apps.error();
  std::map<std::string, AppRecord> by_id;
  for (auto& a : *apps) by_id[a.service_id] = a;
  auto listed = deps_.driver->list_by_label(kLabelService, "");
  if (!listed.ok()) return listed.error();
  std::map<std::string, ContainerInfo> serving;
  for (const auto& c : *listed) {
    const auto svc = c.labels.count(kLabelService) ? c.labels.at(kLabelService) : "";
    auto it = by_id.find(svc);
    if (it != by_id.end() && !it->second.container.empty() && it->second.container == c.name) {
      serving[svc] = c;
      continue;
    }
    // Not the serving container of a known app: a green that never became current, or a blue
    // whose removal was interrupted. Nothing routes to it.
    log::info("removing a container that is not serving", {{"app", svc}, {"container", c.name}});
    if (auto st = deps_.driver->remove(c.name); !st.ok())
      log::warn("could not remove a container",
                {{"app", svc}, {"container", c.name}, {"error", st.error().message}});
  }
  for (auto& [id, app] : by_id) {
    if (!app.pending_container.empty()) {
      app.pending_container.clear();
      (void)deps_.state->put_app(app);
    }
    if (app.container.empty()) continue;
    auto s = serving.find(id);
    if (s == serving.end()) {
      // Gone with a host reboot or a `podman rm`: nothing to serve, the controller redeploys.
      log::warn("the serving container of an app is missing",
                {{"app", id}, {"container", app.container}});
      watch_mark(id, AppState::kMissing, "The container " + app.container + " no longer exists.");
      continue;
    }
    if (!s->second.running()) {
      if (auto st = deps_.driver->restart(app.container); !st.ok())
        log::warn("could not start the serving container",
                  {{"app", id}, {"container", app.container}, {"error", st.error().message}});
    }
    auto routed = deps_.proxies->route(id, app.stable_port, app.backend_port);
    if (!routed.ok()) {
      log::error("could not reopen the stable port",
                 {{"app", id}, {"port", app.stable_port}, {"error", routed.error().message}});
    } else if (*routed != app.stable_port) {
      app.stable_port = *routed;
      (void)deps_.state->put_app(app);
    }
  }
  return Status::Ok();
}

std::vector<agentlink::ObservedApp> Deployer::observe() {
  std::vector<agentlink::ObservedApp> out;
  auto apps = deps_.state->apps();
  if (!apps.ok()) return out;
  std::lock_guard lock(mu_);
  for (const auto& a : *apps) {
    const auto w = watched_.find(a.service_id);
    const AppState state = w == watched_.end() ? AppState::kRunning : w->second.watch.state();
    agentlink::ObservedApp o;
    o.service_id = a.service_id;
    o.revision_id = a.revision_id;
    o.image_digest = a.image_digest;
    o.stable_port = a.stable_port;
    o.container = state == AppState::kMissing ? "" : a.container;
    o.healthy =
        !a.container.empty() && state == AppState::kRunning && deps_.proxies->is_open(a.service_id);
    o.last_task_id = a.last_task_id;
    out.push_back(std::move(o));
  }
  return out;
}

void Deployer::report_all_on_next_watch() {
  std::lock_guard lock(mu_);
  report_all_ = true;
}

Observation Deployer::look_at(const AppRecord& app) {
  using Kind = Observation::Kind;
  auto info = deps_.driver->inspect(app.container);
  if (!info.ok()) {
    if (info.error().code == ErrorCode::kNotFound)
      return {Kind::kMissing, "The container " + app.container + " no longer exists."};
    return {Kind::kUnknown, info.error().message};
  }
  if (!info->running())
    return {Kind::kMissing, "The container " + app.container + " is not running (state " +
                                (info->state.empty() ? "unknown" : info->state) + ")."};
  const ProbeOutcome outcome = deps_.prober->probe(single_check(app.health, app.backend_port));
  if (outcome.healthy) return {Kind::kHealthy, {}};
  return {Kind::kUnhealthy, "The health check failed: " + outcome.last_error};
}

std::vector<agentlink::AppStatus> Deployer::watch() {
  std::vector<agentlink::AppStatus> out;
  auto apps = deps_.state->apps();
  if (!apps.ok()) return out;
  bool report_all = false;
  {
    std::lock_guard lock(mu_);
    std::swap(report_all, report_all_);
  }
  for (const auto& listed : *apps) {
    if (listed.container.empty()) continue;
    // A running task owns the app (and reports its own outcome): skip it this round.
    auto app_mu = app_mutex(listed.service_id);
    std::unique_lock app_lock(*app_mu, std::try_to_lock);
    if (!app_lock.owns_lock()) continue;
    auto fresh = deps_.state->app(listed.service_id);  // as the last task left it
    if (!fresh.ok() || !fresh->has_value() || (*fresh)->container.empty()) continue;
    const AppRecord& app = **fresh;

    bool due = false;
    {
      std::lock_guard lock(mu_);
      due = deps_.now() >= watched_[app.service_id].next_at;
    }
    // The check runs without mu_: it calls podman and the app's health check.
    std::optional<Observation> seen;
    if (due) seen = look_at(app);

    std::lock_guard lock(mu_);
    Watched& w = watched_[app.service_id];
    if (seen) {
      w.next_at = deps_.now() + interval_of(app).count();
      const WatchThresholds t{std::max(1, app.health.healthy_threshold),
                              std::max(1, options_.unhealthy_threshold)};
      if (auto changed = w.watch.observe(*seen, t)) {
        w.pending = true;
        nlohmann::json fields{{"app", app.service_id},
                              {"container", app.container},
                              {"state", agentlink::to_string(*changed)}};
        if (!w.watch.detail().empty()) fields["detail"] = w.watch.detail();
        log::info("app state changed", fields);
      } else if (seen->kind == Observation::Kind::kUnknown) {
        log::debug("app state unknown", {{"app", app.service_id}, {"error", seen->detail}});
      }
    }
    const bool failing = w.watch.state() != AppState::kRunning;
    if (w.pending || (report_all && failing)) {
      agentlink::AppStatus s;
      s.service_id = app.service_id;
      s.revision_id = app.revision_id;
      s.container = w.watch.state() == AppState::kMissing ? "" : app.container;
      s.state = w.watch.state();
      s.detail = w.watch.detail();
      s.observed_at_ms = deps_.now();
      out.push_back(std::move(s));
      w.pending = false;
    }
  }
  return out;
}

void Deployer::watch_fresh(const std::string& service_id) {
  std::lock_guard lock(mu_);
  Watched& w = watched_[service_id];
  // The controller heard it was failing: tell it the app serves again.
  const bool was_failing = w.watch.state() != AppState::kRunning;
  w.watch = AppWatch(AppState::kRunning);
  w.pending = was_failing || w.pending;
  w.next_at = 0;  // checked at the next round: a fresh container is watched from the start
}

void Deployer::watch_mark(const std::string& service_id, AppState state, std::string detail) {
  std::lock_guard lock(mu_);
  Watched& w = watched_[service_id];
  w.watch = AppWatch(state, std::move(detail));
  w.pending = true;
}

void Deployer::watch_forget(const std::string& service_id) {
  std::lock_guard lock(mu_);
  watched_.erase(service_id);
}

}  // namespace berth::agent
