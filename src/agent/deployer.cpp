// The deploy task, phase by phase (deployer.h has the contract). Restart and remove are in
// deployer_tasks.cpp; start-up reconcile, Hello's view and the watch in deployer_watch.cpp.
#include "agent/deployer.h"

#include <algorithm>
#include "common/clock.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <system_error>

#include "agent/auth_file.h"
#include "agent/deployer_internal.h"
#include "agent/step_log.h"
#include "common/log.h"
#include "common/pause_point.h"
#include "core/image_ref.h"

namespace berth::agent {
namespace fs = std::filesystem;

namespace {

// Removes the green container unless the rollout committed to it: every failure path, early
// return and exception leaves blue alone and green gone.
// A green that cannot be removed is handed to `on_leftover`, so a later cleanup retries it.
class GreenGuard {
 public:
  GreenGuard(RuntimeDriver& d, std::string name,
             std::function<void(const std::string&)> on_leftover)
      : d_(d), name_(std::move(name)), on_leftover_(std::move(on_leftover)) {}
  GreenGuard(const GreenGuard&) = delete;
  GreenGuard& operator=(const GreenGuard&) = delete;
  ~GreenGuard() {
    if (armed_) {
      if (auto st = d_.remove(name_); !st.ok()) {
        log::warn("could not remove a failed green container",
                  {{"container", name_}, {"error", st.error().message}});
        on_leftover_(name_);
      }
    }
  }
  void commit() { armed_ = false; }

 private:
  RuntimeDriver& d_;
  std::string name_;
  std::function<void(const std::string&)> on_leftover_;
  bool armed_ = true;
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

Error failed(std::string why) { return make_error(ErrorCode::kUnavailable, std::move(why)); }

// The credential as an OCI auth file in the data dir's tmp/ (see auth_file.h); null when the
// image is public.
Result<std::unique_ptr<AuthFile>> write_auth(const std::string& tmp_dir,
                                             const std::optional<agentlink::RegistryAuth>& auth) {
  if (!auth) return std::unique_ptr<AuthFile>();
  return AuthFile::create(tmp_dir, auth->auth_keys, auth->username, auth->password);
}

}  // namespace

// One deploy in progress: what the phases read and fill in, in the order they run.
struct Deployer::Rollout {
  const agentlink::DeployTask& task;
  StepLog& steps;
  std::string tmp_dir;            // DATA_DIR/tmp: the auth and env files of this task
  std::string image;              // what is pulled and run (pinned to the digest)
  std::string registry_host;      // from the core's parser
  std::optional<AppRecord> blue;  // the app as it served before this deploy
  AppRecord record;               // the app's record, updated as the phases go
  std::string green;              // the new container
  int green_port = 0;
  bool pending_written = false;       // the record names green as pending
  bool switched = false;              // the stable port serves green
  std::unique_ptr<GreenGuard> guard;  // removes green unless switched

  // The record to write back when the deploy fails after green was marked pending.
  AppRecord unchanged() const {
    AppRecord a = record;
    a.pending_container.clear();
    return a;
  }
};

Result<std::string> pull_image(const agentlink::DeployTask& task) {
  auto ref = core::parse_image_ref(task.pull_ref.empty() ? task.image_ref : task.pull_ref);
  if (!ref.ok()) return ref.take_error();
  // The digest names the bits: the tag (and any older digest) is dropped.
  if (!task.image_digest.empty()) return ref->pinned(task.image_digest);
  return ref->normalized();
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

core::UnixMillis wall_clock_ms() { return system_now(); }

Deployer::Deployer(DeployerOptions options, DeployerDeps deps)
    : options_(std::move(options)), deps_(std::move(deps)) {
  if (!deps_.now) deps_.now = wall_clock_ms;
  if (!deps_.allocate_port) deps_.allocate_port = pick_loopback_port;
  if (!deps_.suffix) deps_.suffix = random_suffix;
}

Deployer::~Deployer() = default;

std::shared_ptr<std::mutex> Deployer::app_mutex(const std::string& service_id) {
  std::lock_guard lock(mu_);
  auto& m = app_mutexes_[service_id];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

Result<std::string> Deployer::cert_dir_for(const std::string& registry_host) {
  auto it = options_.registry_ca.find(registry_host);
  if (it == options_.registry_ca.end()) return std::string();
  // podman --cert-dir reads every *.crt in the directory; keep one directory per host so a CA
  // trusted for one registry is not trusted for another.
  const std::string dir = options_.data_dir + "/certs/" + sanitize(registry_host);
  if (auto e = ensure_dir(dir, fs::perms::owner_all); !e.empty()) return failed(e);
  std::error_code ec;
  fs::copy_file(it->second, dir + "/ca.crt", fs::copy_options::overwrite_existing, ec);
  if (ec)
    return failed("Could not copy the CA file for " + registry_host + ": " + ec.message() + ".");
  return dir;
}

agentlink::TaskResult Deployer::finish(agentlink::TaskResult result, const char* kind,
                                       const std::vector<core::DeployLogEntry>& logs,
                                       const std::optional<AppRecord>& app, bool forget) {
  result.logs = logs;
  result = bounded_result(std::move(result));
  if (auto st = deps_.state->finish_task(result, kind, app, forget); !st.ok())
    log::error(
        "could not record a task result",
        {{"task_id", result.task_id}, {"app", result.service_id}, {"error", st.error().message}});
  nlohmann::json fields{{"task_id", result.task_id},
                        {"kind", kind},
                        {"app", result.service_id},
                        {"revision_id", result.revision_id}};
  if (!result.ok) fields["error"] = result.error;
  // From the first step's start to the last step's end, on the steps' own clock.
  if (!result.logs.empty()) {
    std::int64_t first = result.logs.front().started_at, last = first;
    for (const auto& e : result.logs) {
      first = std::min<std::int64_t>(first, e.started_at);
      last = std::max<std::int64_t>(last, e.started_at + e.duration_ms);
    }
    fields["duration_ms"] = last - first;
  }
  if (result.ok)
    log::info("task succeeded", fields);
  else
    log::warn("task failed", fields);
  return result;
}

agentlink::TaskResult Deployer::deploy(const agentlink::DeployTask& task,
                                       const ProgressFn& progress,
                                       const PullProgressFn& pull_progress) {
  auto lock_ptr = app_mutex(task.service_id);
  std::lock_guard app_lock(*lock_ptr);
  if (auto rec = deps_.state->recorded_result(task.task_id); rec.ok() && rec->has_value()) {
    log::info("task already applied", {{"task_id", task.task_id}, {"app", task.service_id}});
    return **rec;
  }
  log::info("deploy started", {{"task_id", task.task_id},
                               {"app", task.service_id},
                               {"revision", task.revision},
                               {"revision_id", task.revision_id}});
  StepLog steps(deps_.now, progress, &pull_progress);
  Rollout r{task, steps};
  Status outcome = Status::Ok();
  try {
    outcome = prepare(r);
    if (outcome.ok()) outcome = pull(r);
    if (outcome.ok()) outcome = start_green(r);
    if (outcome.ok()) outcome = probe_green(r);
    if (outcome.ok()) outcome = switch_to_green(r);
    if (outcome.ok()) clean_up_blue(r);
  } catch (const std::exception& e) {
    outcome = make_error(ErrorCode::kInternal,
                         std::string("Internal error during the deploy: ") + e.what() + ".");
  }

  agentlink::TaskResult result;
  result.task_id = task.task_id;
  result.service_id = task.service_id;
  result.revision_id = task.revision_id;
  result.image_digest = task.image_digest;
  result.stable_port = r.record.stable_port;
  result.ok = outcome.ok();
  if (!outcome.ok()) result.error = outcome.error().message;
  // Record: on success the new serving app; on a failure before the switch, the app as it
  // was (without the pending mark); after the switch, what switch_to_green already wrote.
  std::optional<AppRecord> app;
  if (result.ok)
    app = r.record;
  else if (r.pending_written && !r.switched)
    app = r.unchanged();
  result = finish(std::move(result), "deploy", steps.entries(), app);
  if (result.ok) watch_fresh(task.service_id);
  return result;  // r.guard, leaving scope, removes green unless the rollout switched to it
}

Status Deployer::prepare(Rollout& r) {
  auto loaded = deps_.state->app(r.task.service_id);
  if (!loaded.ok()) return loaded.error();
  r.blue = *loaded;
  r.record = r.blue.value_or(AppRecord{});
  r.record.service_id = r.task.service_id;
  r.tmp_dir = options_.data_dir + "/tmp";
  if (auto e = ensure_dir(r.tmp_dir, fs::perms::owner_all); !e.empty()) return failed(e);
  auto ref = core::parse_image_ref(r.task.pull_ref.empty() ? r.task.image_ref : r.task.pull_ref);
  if (!ref.ok()) return ref.take_error();
  r.registry_host = ref->registry_host;
  auto image = pull_image(r.task);
  if (!image.ok()) return image.take_error();
  r.image = *image;
  return Status::Ok();
}

// The auth file exists only for the duration of this phase.
Status Deployer::pull(Rollout& r) {
  auto step = r.steps.begin("pull");
  auto fail = [&](std::string why) -> Status {
    r.steps.failed(step, why);
    return failed(std::move(why));
  };
  // A digest names the bits: when local storage already holds repository@digest, that image is
  // the one the task asks for, and a pull would only be a registry round trip (~265 ms warm,
  // docs/benchmarks.md). Checked before the auth file exists, so none is written then. A tag
  // (no digest pinned) is always pulled: the local copy may be stale.
  if (!r.task.image_digest.empty()) {
    auto local = deps_.driver->local_image(r.image);
    if (local.ok() && local->has_value()) {
      r.steps.ok(step, "Image " + r.image + " is already present; not pulled.", **local);
      return Status::Ok();
    }
    if (!local.ok())
      log::info("local image check failed; pulling",
                {{"task_id", r.task.task_id}, {"error", local.error().message}});
  }
  PullRequest request;
  request.image = r.image;
  auto cert_dir = cert_dir_for(r.registry_host);
  if (!cert_dir.ok()) return fail(cert_dir.error().message);
  request.cert_dir = *cert_dir;
  auto auth = write_auth(r.tmp_dir, r.task.auth);
  if (!auth.ok()) return fail(auth.error().message);
  if (*auth) request.authfile = (*auth)->path();
  pause_point("pull");  // the auth file is on disk (tests/crash)

  // Progress: totals from the manifest, bytes from the blob files podman writes into a fresh
  // directory of its own (docs/agent.md "Pull progress"). A manifest that cannot be read costs
  // the totals only, never the deploy.
  std::vector<std::int64_t> layer_sizes;
  if (deps_.layer_sizes) {
    auto sizes = deps_.layer_sizes(r.image, r.task.auth);
    if (sizes.ok()) {
      layer_sizes = std::move(*sizes);
    } else {
      log::info("pull totals unknown",
                {{"task_id", r.task.task_id}, {"error", sizes.error().message}});
    }
  }
  PullMeter meter(layer_sizes);
  PullThrottle throttle;
  std::string pull_dir = r.tmp_dir + "/pull-XXXXXX";
  if (::mkdtemp(pull_dir.data()) != nullptr) {
    request.tmp_dir = pull_dir;
    request.on_blobs = [&](const std::vector<std::int64_t>& blobs) {
      const auto& counts = meter.update(blobs);
      if (throttle.due(counts, deps_.now())) r.steps.pull(step, describe_pull(counts), counts);
    };
  } else {
    pull_dir.clear();
    log::info("pull progress off: no temporary directory", {{"task_id", r.task.task_id}});
  }
  auto pulled = deps_.driver->pull(request);
  if (*auth) (*auth)->remove();
  if (!pull_dir.empty()) {
    std::error_code ec;
    fs::remove_all(pull_dir, ec);
  }
  if (!pulled.ok()) return fail("Pulling " + r.image + " failed: " + pulled.error().message);
  const auto done = meter.finished();
  if (done.layers_total > 0 || done.bytes_done > 0)
    r.steps.pull(step, describe_pull(done, /*done=*/true), done);
  if (deps_.pulled_bytes && meter.bytes_written() > 0) deps_.pulled_bytes(meter.bytes_written());
  r.steps.ok(step, "Pulled " + r.image + ".", *pulled);
  return Status::Ok();
}

Status Deployer::start_green(Rollout& r) {
  auto step = r.steps.begin("start");
  auto fail = [&](std::string why) -> Status {
    r.steps.failed(step, why);
    return failed(std::move(why));
  };
  auto port = deps_.allocate_port();
  if (!port.ok()) return fail(port.error().message);
  r.green_port = *port;
  r.green =
      "berth-" + r.task.service_id + "-r" + std::to_string(r.task.revision) + "-" + deps_.suffix();
  // Marked before it exists: a crash from here on leaves a container the restart removes.
  r.record.pending_container = r.green;
  if (auto st = deps_.state->put_app(r.record); !st.ok()) return fail(st.error().message);
  r.pending_written = true;
  r.guard = std::make_unique<GreenGuard>(
      *deps_.driver, r.green,
      [this, id = r.task.service_id](const std::string& name) { remember_leftover(id, name); });

  std::unique_ptr<EnvFile> env;
  if (!r.task.env.empty()) {
    auto e = EnvFile::create(r.tmp_dir, r.task.env);
    if (!e.ok()) return fail(e.error().message);
    env = std::move(e).value();
  }
  ContainerSpec spec;
  spec.name = r.green;
  spec.image = r.image;
  spec.host_port = r.green_port;
  spec.container_port = r.task.container_port;
  spec.env_file = env ? env->path() : "";
  spec.stop_grace_seconds = options_.stop_grace_seconds;
  spec.labels = {{kLabelService, r.task.service_id},
                 {kLabelRevision, r.task.revision_id},
                 {kLabelTask, r.task.task_id}};
  auto started = deps_.driver->run(spec);
  if (!started.ok()) return fail("Starting the new container failed: " + started.error().message);
  r.steps.ok(step, "Started " + r.green + " on 127.0.0.1:" + std::to_string(r.green_port) + ".");
  return Status::Ok();
}

Status Deployer::probe_green(Rollout& r) {
  auto step = r.steps.begin("probe");
  pause_point("health-check");  // green runs, not yet probed (tests/crash)
  const ProbeOutcome outcome =
      deps_.prober->probe(probe_spec(r.task.health, r.green_port, options_.probe_deadline));
  if (!outcome.healthy) {
    std::string logs;
    if (auto tail = deps_.driver->logs_tail(r.green, 20); tail.ok()) logs = *tail;
    const std::string why = "The new container did not become healthy: " + outcome.last_error;
    r.steps.failed(step, why, logs);
    return failed(why);
  }
  r.steps.ok(step, "Healthy after " + std::to_string(outcome.attempts) + " attempt(s).");
  return Status::Ok();
}

Status Deployer::switch_to_green(Rollout& r) {
  auto step = r.steps.begin("switch");
  auto routed = deps_.proxies->route(r.task.service_id, r.record.stable_port, r.green_port);
  if (!routed.ok()) {
    r.steps.failed(step, routed.error().message);
    return failed(routed.error().message);
  }
  pause_point("cutover");  // the stable port serves green, not yet recorded (tests/crash)
  r.switched = true;
  r.guard->commit();
  AppRecord& a = r.record;
  a.stable_port = *routed;
  a.previous_revision = r.blue ? r.blue->revision_id : "";
  a.revision_id = r.task.revision_id;
  a.revision = r.task.revision;
  a.container = r.green;
  a.backend_port = r.green_port;
  a.image_digest = r.task.image_digest;
  a.pending_container.clear();
  a.container_port = r.task.container_port;
  a.health = r.task.health;
  a.last_task_id = r.task.task_id;
  // Recorded before blue is touched: after a crash from here on, restart converges on green.
  if (auto st = deps_.state->put_app(a); !st.ok())
    log::error("could not record the new serving container",
               {{"app", r.task.service_id}, {"error", st.error().message}});
  r.steps.ok(step, "127.0.0.1:" + std::to_string(a.stable_port) + " now serves " + r.green + ".");
  return Status::Ok();
}

// Blue (and any stray container of this app) goes after its open connections drain. A failure
// here does not fail the deploy: green serves, and the next start removes what is left.
void Deployer::clean_up_blue(Rollout& r) {
  auto step = r.steps.begin("cleanup");
  std::vector<std::string> names;
  if (r.blue && !r.blue->container.empty()) {
    names.push_back(r.blue->container);
    deps_.proxies->wait_drained(r.task.service_id, r.blue->backend_port, options_.drain_timeout);
    if (auto st = deps_.driver->stop(r.blue->container, options_.stop_grace_seconds); !st.ok())
      log::warn("could not stop the old container", {{"app", r.task.service_id},
                                                     {"container", r.blue->container},
                                                     {"error", st.error().message}});
  }
  // No listing: what else may be left is known (leftovers_); reconcile() sweeps at start.
  for (const auto& n : take_leftovers(r.task.service_id))
    if (n != r.green && std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  pause_point("teardown");  // green recorded, blue stopped, not yet removed (tests/crash)
  std::string removed, failed_names;
  int count = 0;
  for (const auto& n : names) {
    if (auto st = deps_.driver->remove(n); st.ok()) {
      removed += (removed.empty() ? "" : ", ") + n;
      ++count;
    } else {
      failed_names += (failed_names.empty() ? "" : ", ") + n + " (" + st.error().message + ")";
      remember_leftover(r.task.service_id, n);
    }
  }
  if (!failed_names.empty())
    r.steps.info(step, "Some previous containers could not be removed; the next start retries.",
                 failed_names);
  else if (count == 0)
    r.steps.ok(step, "No previous container to remove.");
  else
    r.steps.ok(step, "Removed " + std::to_string(count) + " previous container(s).", removed);
}

void Deployer::remember_leftover(const std::string& service_id, const std::string& name) {
  std::lock_guard lock(mu_);
  leftovers_[service_id].insert(name);
}

std::vector<std::string> Deployer::take_leftovers(const std::string& service_id) {
  std::lock_guard lock(mu_);
  auto it = leftovers_.find(service_id);
  if (it == leftovers_.end()) return {};
  std::vector<std::string> out(it->second.begin(), it->second.end());
  leftovers_.erase(it);
  return out;
}

}  // namespace berth::agent
