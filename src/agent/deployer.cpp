#include "agent/deployer.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <system_error>

#include "agent/auth_file.h"
#include "common/log.h"

namespace berth::agent {
namespace fs = std::filesystem;

namespace {

// The probe of one container: the app's health-check settings (each at least 1) on its loopback
// port, within the agent's overall deadline. Deploy and restart probe the same way.
ProbeSpec probe_spec(const core::HealthCheck& health, int port,
                     std::chrono::milliseconds deadline) {
  ProbeSpec spec;
  spec.port = port;
  spec.path = health.path;
  spec.attempt_timeout = std::chrono::seconds(std::max(1, health.timeout_seconds));
  spec.interval = std::chrono::seconds(std::max(1, health.interval_seconds));
  spec.healthy_threshold = std::max(1, health.healthy_threshold);
  spec.deadline = deadline;
  return spec;
}

// Collects the deploy log of one task: each entry is kept and reported as progress.
class StepLog {
 public:
  StepLog(const std::function<core::UnixMillis()>& now, const ProgressFn& progress)
      : now_(now), progress_(progress) {}

  // A step that has started; finish it with ok()/failed().
  struct Step {
    std::string name;
    core::UnixMillis started_at = 0;
  };
  Step begin(std::string name) { return Step{std::move(name), now_()}; }
  void ok(const Step& s, std::string message, std::string detail = {}) {
    add(s, "ok", std::move(message), std::move(detail));
  }
  void failed(const Step& s, std::string message, std::string detail = {}) {
    add(s, "failed", std::move(message), std::move(detail));
  }
  void info(std::string step, std::string message, std::string detail = {}) {
    add(begin(std::move(step)), "info", std::move(message), std::move(detail));
  }
  std::vector<core::DeployLogEntry>& entries() { return entries_; }

 private:
  void add(const Step& s, const char* status, std::string message, std::string detail) {
    core::DeployLogEntry e;
    e.step = s.name;
    e.status = status;
    e.message = std::move(message);
    e.detail = std::move(detail);
    e.started_at = s.started_at;
    e.duration_ms = now_() - s.started_at;
    if (e.duration_ms < 0) e.duration_ms = 0;
    entries_.push_back(e);
    if (progress_) progress_(e);
  }
  const std::function<core::UnixMillis()>& now_;
  const ProgressFn& progress_;
  std::vector<core::DeployLogEntry> entries_;
};

std::string ensure_dir(const std::string& path, fs::perms perms) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return "Could not create " + path + ": " + ec.message() + ".";
  fs::permissions(path, perms, ec);
  return {};
}

std::string sanitize(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
  return s;
}

// Removes the green container unless the rollout committed to it: every failure path, early
// return and exception leaves blue alone and green gone.
class GreenGuard {
 public:
  GreenGuard(RuntimeDriver& d, std::string name) : d_(d), name_(std::move(name)) {}
  ~GreenGuard() {
    if (armed_) {
      if (auto st = d_.remove(name_); !st.ok())
        log::warn("could not remove a failed green container",
                  {{"container", name_}, {"error", st.error().message}});
    }
  }
  void commit() { armed_ = false; }

 private:
  RuntimeDriver& d_;
  std::string name_;
  bool armed_ = true;
};

agentlink::TaskResult failure(agentlink::TaskResult r, std::string error) {
  r.ok = false;
  r.error = std::move(error);
  return r;
}

}  // namespace

std::string pull_image(const agentlink::DeployTask& task) {
  std::string image = task.pull_ref.empty() ? task.image_ref : task.pull_ref;
  if (task.image_digest.empty()) return image;
  if (const auto at = image.find('@'); at != std::string::npos) image = image.substr(0, at);
  const auto slash = image.rfind('/');
  const auto colon = image.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
    image = image.substr(0, colon);  // drop the tag: the digest names the bits
  return image + "@" + task.image_digest;
}

std::string image_host(const std::string& image) {
  const auto slash = image.find('/');
  if (slash == std::string::npos) return "docker.io";
  const std::string first = image.substr(0, slash);
  if (first == "localhost" || first.find_first_of(".:") != std::string::npos) return first;
  for (char c : first)
    if (std::isupper(static_cast<unsigned char>(c))) return first;
  return "docker.io";
}

Result<int> pick_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(ErrorCode::kResourceExhausted, "Could not open a socket.");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return make_error(ErrorCode::kResourceExhausted, "No free loopback port.");
  }
  ::close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s;
  auto v = rng();
  for (int i = 0; i < 8; ++i, v >>= 4) s += hex[v & 15];
  return s;
}

core::UnixMillis wall_clock_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

Deployer::Deployer(DeployerOptions options, DeployerDeps deps)
    : options_(std::move(options)), deps_(std::move(deps)) {
  if (!deps_.now) deps_.now = wall_clock_ms;
  if (!deps_.allocate_port) deps_.allocate_port = pick_loopback_port;
  if (!deps_.suffix) deps_.suffix = random_suffix;
}

std::shared_ptr<std::mutex> Deployer::app_mutex(const std::string& service_id) {
  std::lock_guard lock(mu_);
  auto& m = app_mutexes_[service_id];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

std::string Deployer::cert_dir_for(const std::string& image, std::string& error) {
  const std::string host = image_host(image);
  auto it = options_.registry_ca.find(host);
  if (it == options_.registry_ca.end()) return {};
  // podman --cert-dir reads every *.crt in the directory; keep one directory per host so a CA
  // trusted for one registry is not trusted for another.
  const std::string dir = options_.data_dir + "/certs/" + sanitize(host);
  if (error = ensure_dir(dir, fs::perms::owner_all); !error.empty()) return {};
  std::error_code ec;
  fs::copy_file(it->second, dir + "/ca.crt", fs::copy_options::overwrite_existing, ec);
  if (ec) {
    error = "Could not copy the CA file for " + host + ": " + ec.message() + ".";
    return {};
  }
  return dir;
}

agentlink::TaskResult Deployer::deploy(const agentlink::DeployTask& task,
                                       const ProgressFn& progress) {
  auto lock_ptr = app_mutex(task.service_id);
  std::lock_guard app_lock(*lock_ptr);
  agentlink::TaskResult result;
  result.task_id = task.task_id;
  result.service_id = task.service_id;
  result.revision_id = task.revision_id;
  result.image_digest = task.image_digest;

  if (auto rec = deps_.state->recorded_result(task.task_id); rec.ok() && rec->has_value()) {
    log::info("task already applied", {{"task", task.task_id}, {"app", task.service_id}});
    return **rec;
  }
  StepLog steps(deps_.now, progress);
  auto finish = [&](agentlink::TaskResult r, const std::optional<AppRecord>& app) {
    r.logs = steps.entries();
    if (auto st = deps_.state->finish_task(r, "deploy", app); !st.ok())
      log::error("could not record a task result",
                 {{"task", r.task_id}, {"error", st.error().message}});
    log::info(r.ok ? "deploy succeeded" : "deploy failed", {{"task", r.task_id},
                                                            {"app", r.service_id},
                                                            {"revision", r.revision_id},
                                                            {"error", r.error}});
    return r;
  };

  try {
    auto loaded = deps_.state->app(task.service_id);
    if (!loaded.ok()) return finish(failure(result, loaded.error().message), std::nullopt);
    const std::optional<AppRecord> blue = *loaded;
    AppRecord record = blue.value_or(AppRecord{});
    record.service_id = task.service_id;
    result.stable_port = record.stable_port;
    log::info("deploy started",
              {{"task", task.task_id}, {"app", task.service_id}, {"revision", task.revision_id}});

    const std::string tmp_dir = options_.data_dir + "/tmp";
    if (auto e = ensure_dir(tmp_dir, fs::perms::owner_all); !e.empty())
      return finish(failure(result, e), std::nullopt);
    const std::string image = pull_image(task);

    // Pull. The auth file exists only for the duration of this block.
    {
      auto step = steps.begin("pull");
      PullRequest pull;
      pull.image = image;
      std::string ca_error;
      pull.cert_dir = cert_dir_for(image, ca_error);
      if (!ca_error.empty()) {
        steps.failed(step, ca_error);
        return finish(failure(result, ca_error), std::nullopt);
      }
      std::unique_ptr<AuthFile> auth;
      if (task.auth) {
        auto a = AuthFile::create(tmp_dir, task.auth->auth_keys, task.auth->username,
                                  task.auth->password);
        if (!a.ok()) {
          steps.failed(step, a.error().message);
          return finish(failure(result, a.error().message), std::nullopt);
        }
        auth = std::move(a).value();
        pull.authfile = auth->path();
      }
      auto pulled = deps_.driver->pull(pull);
      if (auth) auth->remove();
      if (!pulled.ok()) {
        const std::string why = "Pulling " + image + " failed: " + pulled.error().message;
        steps.failed(step, why);
        return finish(failure(result, why), std::nullopt);
      }
      steps.ok(step, "Pulled " + image + ".", *pulled);
    }

    // Start green.
    auto port = deps_.allocate_port();
    if (!port.ok()) return finish(failure(result, port.error().message), std::nullopt);
    const int green_port = *port;
    const std::string green =
        "berth-" + task.service_id + "-r" + std::to_string(task.revision) + "-" + deps_.suffix();
    record.pending_container = green;
    if (auto st = deps_.state->put_app(record); !st.ok())
      return finish(failure(result, st.error().message), std::nullopt);
    AppRecord unchanged = record;
    unchanged.pending_container.clear();
    GreenGuard guard(*deps_.driver, green);
    {
      auto step = steps.begin("start");
      std::unique_ptr<EnvFile> env;
      if (!task.env.empty()) {
        auto e = EnvFile::create(tmp_dir, task.env);
        if (!e.ok()) {
          steps.failed(step, e.error().message);
          return finish(failure(result, e.error().message), unchanged);
        }
        env = std::move(e).value();
      }
      ContainerSpec spec;
      spec.name = green;
      spec.image = image;
      spec.host_port = green_port;
      spec.container_port = task.container_port;
      spec.env_file = env ? env->path() : "";
      spec.labels = {{kLabelService, task.service_id},
                     {kLabelRevision, task.revision_id},
                     {kLabelTask, task.task_id}};
      auto started = deps_.driver->run(spec);
      if (!started.ok()) {
        const std::string why = "Starting the new container failed: " + started.error().message;
        steps.failed(step, why);
        return finish(failure(result, why), unchanged);
      }
      steps.ok(step, "Started " + green + " on 127.0.0.1:" + std::to_string(green_port) + ".");
    }

    // Probe.
    {
      auto step = steps.begin("probe");
      const ProbeOutcome outcome =
          deps_.prober->probe(probe_spec(task.health, green_port, options_.probe_deadline));
      if (!outcome.healthy) {
        std::string detail;
        if (auto logs = deps_.driver->logs_tail(green, 20); logs.ok()) detail = *logs;
        const std::string why = "The new container did not become healthy: " + outcome.last_error;
        steps.failed(step, why, detail);
        return finish(failure(result, why), unchanged);
      }
      steps.ok(step, "Healthy after " + std::to_string(outcome.attempts) + " attempt(s).");
    }

    // Switch the stable port.
    {
      auto step = steps.begin("switch");
      auto routed = deps_.proxies->route(task.service_id, record.stable_port, green_port);
      if (!routed.ok()) {
        steps.failed(step, routed.error().message);
        return finish(failure(result, routed.error().message), unchanged);
      }
      record.stable_port = *routed;
      result.stable_port = *routed;
      guard.commit();
      record.previous_revision = blue ? blue->revision_id : "";
      record.revision_id = task.revision_id;
      record.revision = task.revision;
      record.container = green;
      record.backend_port = green_port;
      record.image_digest = task.image_digest;
      record.pending_container.clear();
      record.container_port = task.container_port;
      record.health = task.health;
      record.last_task_id = task.task_id;
      // Recorded before blue is touched: after a crash from here on, restart converges on green.
      if (auto st = deps_.state->put_app(record); !st.ok())
        log::error("could not record the new serving container",
                   {{"app", task.service_id}, {"error", st.error().message}});
      steps.ok(step,
               "127.0.0.1:" + std::to_string(record.stable_port) + " now serves " + green + ".");
    }

    // Remove blue (and any stray berth container of this app), after open connections drain.
    {
      auto step = steps.begin("cleanup");
      std::vector<std::string> removed, failed;
      if (blue && !blue->container.empty()) {
        deps_.proxies->wait_drained(task.service_id, blue->backend_port, options_.drain_timeout);
        if (auto st = deps_.driver->stop(blue->container, options_.stop_grace_seconds); !st.ok())
          log::warn("could not stop the old container",
                    {{"container", blue->container}, {"error", st.error().message}});
      }
      std::vector<std::string> names;
      if (blue && !blue->container.empty()) names.push_back(blue->container);
      if (auto listed = deps_.driver->list_by_label(kLabelService, task.service_id); listed.ok())
        for (const auto& c : *listed)
          if (c.name != green && (names.empty() || c.name != names.front()))
            names.push_back(c.name);
      for (const auto& n : names) {
        if (auto st = deps_.driver->remove(n); st.ok())
          removed.push_back(n);
        else
          failed.push_back(n + " (" + st.error().message + ")");
      }
      std::string msg =
          removed.empty() ? "No previous container to remove."
                          : "Removed " + std::to_string(removed.size()) + " previous container(s).";
      std::string detail;
      for (const auto& n : removed) detail += (detail.empty() ? "" : ", ") + n;
      if (!failed.empty()) {
        std::string f;
        for (const auto& n : failed) f += (f.empty() ? "" : ", ") + n;
        steps.info("cleanup",
                   "Some previous containers could not be removed; the next start retries.", f);
      } else {
        steps.ok(step, msg, detail);
      }
    }
    result.ok = true;
    return finish(result, record);
  } catch (const std::exception& e) {
    return finish(
        failure(result, std::string("Internal error during the deploy: ") + e.what() + "."),
        std::nullopt);
  }
}

agentlink::TaskResult Deployer::restart(const agentlink::RestartTask& task,
                                        const ProgressFn& progress) {
  auto lock_ptr = app_mutex(task.service_id);
  std::lock_guard app_lock(*lock_ptr);
  agentlink::TaskResult result;
  result.task_id = task.task_id;
  result.service_id = task.service_id;
  if (auto rec = deps_.state->recorded_result(task.task_id); rec.ok() && rec->has_value())
    return **rec;
  StepLog steps(deps_.now, progress);
  auto finish = [&](agentlink::TaskResult r, const std::optional<AppRecord>& app) {
    r.logs = steps.entries();
    if (auto st = deps_.state->finish_task(r, "restart", app); !st.ok())
      log::error("could not record a task result",
                 {{"task", r.task_id}, {"error", st.error().message}});
    log::info(r.ok ? "restart succeeded" : "restart failed",
              {{"task", r.task_id}, {"app", r.service_id}, {"error", r.error}});
    return r;
  };
  auto loaded = deps_.state->app(task.service_id);
  if (!loaded.ok()) return finish(failure(result, loaded.error().message), std::nullopt);
  if (!loaded->has_value() || (*loaded)->container.empty())
    return finish(failure(result, "The app has no running container on this agent."), std::nullopt);
  AppRecord app = **loaded;
  result.revision_id = app.revision_id;
  result.image_digest = app.image_digest;
  result.stable_port = app.stable_port;
  {
    auto step = steps.begin("restart");
    if (auto st = deps_.driver->restart(app.container); !st.ok()) {
      const std::string why = "Restarting the container failed: " + st.error().message;
      steps.failed(step, why);
      return finish(failure(result, why), std::nullopt);
    }
    steps.ok(step, "Restarted " + app.container + ".");
  }
  {
    auto step = steps.begin("probe");
    const ProbeOutcome outcome =
        deps_.prober->probe(probe_spec(app.health, app.backend_port, options_.probe_deadline));
    if (!outcome.healthy) {
      const std::string why =
          "The restarted container did not become healthy: " + outcome.last_error;
      steps.failed(step, why);
      return finish(failure(result, why), std::nullopt);
    }
    steps.ok(step, "Healthy after " + std::to_string(outcome.attempts) + " attempt(s).");
  }
  // The proxy survives a container restart; reopen it if it was missing.
  if (!deps_.proxies->is_open(task.service_id))
    if (auto r = deps_.proxies->route(task.service_id, app.stable_port, app.backend_port); r.ok())
      app.stable_port = *r;
  app.last_task_id = task.task_id;
  result.ok = true;
  return finish(result, app);
}

agentlink::TaskResult Deployer::remove(const agentlink::RemoveTask& task,
                                       const ProgressFn& progress) {
  auto lock_ptr = app_mutex(task.service_id);
  std::lock_guard app_lock(*lock_ptr);
  agentlink::TaskResult result;
  result.task_id = task.task_id;
  result.service_id = task.service_id;
  if (auto rec = deps_.state->recorded_result(task.task_id); rec.ok() && rec->has_value())
    return **rec;
  StepLog steps(deps_.now, progress);
  auto step = steps.begin("remove");
  deps_.proxies->close(task.service_id);
  std::vector<std::string> names;
  if (auto loaded = deps_.state->app(task.service_id); loaded.ok() && loaded->has_value()) {
    if (!(*loaded)->container.empty()) names.push_back((*loaded)->container);
    if (!(*loaded)->pending_container.empty()) names.push_back((*loaded)->pending_container);
  }
  auto listed = deps_.driver->list_by_label(kLabelService, task.service_id);
  if (!listed.ok()) {
    steps.failed(step, "Listing the app's containers failed: " + listed.error().message);
    result = failure(result, "Listing the app's containers failed: " + listed.error().message);
    result.logs = steps.entries();
    return result;  // not recorded: a re-delivery retries
  }
  for (const auto& c : *listed)
    if (std::find(names.begin(), names.end(), c.name) == names.end()) names.push_back(c.name);
  std::string failed;
  for (const auto& n : names) {
    (void)deps_.driver->stop(n, options_.stop_grace_seconds);
    if (auto st = deps_.driver->remove(n); !st.ok())
      failed += (failed.empty() ? "" : "; ") + n + ": " + st.error().message;
  }
  if (!failed.empty()) {
    const std::string why = "Removing the app's containers failed: " + failed;
    steps.failed(step, why);
    result = failure(result, why);
    result.logs = steps.entries();
    return result;  // not recorded: the app stays known so a retry can finish the job
  }
  steps.ok(step,
           "Removed " + std::to_string(names.size()) + " container(s) and closed the stable port.");
  result.ok = true;
  result.logs = steps.entries();
  if (auto st = deps_.state->finish_task(result, "remove", std::nullopt, /*forget=*/true); !st.ok())
    log::error("could not record a task result",
               {{"task", result.task_id}, {"error", st.error().message}});
  log::info("app removed", {{"task", task.task_id}, {"app", task.service_id}});
  return result;
}

Status Deployer::reconcile() {
  // Auth and env files only outlive their step when the agent died during it: overwrite and
  // remove them before anything else.
  const fs::path tmp = fs::path(options_.data_dir) / "tmp";
  std::error_code ec;
  if (!options_.data_dir.empty() && fs::exists(tmp, ec)) {
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
                {{"container", c.name}, {"error", st.error().message}});
  }
  for (auto& [id, app] : by_id) {
    if (!app.pending_container.empty()) {
      app.pending_container.clear();
      (void)deps_.state->put_app(app);
    }
    if (app.container.empty()) continue;
    auto s = serving.find(id);
    if (s == serving.end()) {
      log::warn("the serving container of an app is missing",
                {{"app", id}, {"container", app.container}});
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
  for (const auto& a : *apps) {
    agentlink::ObservedApp o;
    o.service_id = a.service_id;
    o.revision_id = a.revision_id;
    o.image_digest = a.image_digest;
    o.stable_port = a.stable_port;
    o.container = a.container;
    o.healthy = !a.container.empty() && deps_.proxies->is_open(a.service_id);
    o.last_task_id = a.last_task_id;
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace berth::agent
