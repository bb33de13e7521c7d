#include "e2e/kube_stack.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "common/base64.h"
#include "support/skip.h"
#include "support/wait.h"

extern char** environ;

namespace berth::e2e {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// The identity the controller runs as: the manifests' service account, bound by
// manifests/rbac.yaml, so the tests prove those permissions are enough.
constexpr const char* kServiceAccountUser = KubeStack::kControllerUser;

void write_private(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  const bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  REQUIRE(ok);
}

// Runs argv (no shell, no PATH search) with stdout and stderr into separate files, killing it
// after `timeout_seconds`. kubectl prints warnings on stderr that must not spoil a JSON stdout.
KubectlResult run_split(const std::vector<std::string>& argv, const std::string& out_path,
                        const std::string& err_path, int timeout_seconds) {
  KubectlResult result;
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argp[0], &fa, nullptr, argp.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    result.err = "cannot run " + argv[0];
    return result;
  }
  int status = 0;
  const bool done = testing::wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; },
                                        std::chrono::seconds(timeout_seconds), 5ms);
  if (!done) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  } else if (WIFEXITED(status)) {
    result.rc = WEXITSTATUS(status);
  }
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  return result;
}

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

bool is_not_found(const KubectlResult& r) {
  return r.rc != 0 && r.err.find("NotFound") != std::string::npos;
}

std::string decode_data(const json& secret, const std::string& key) {
  const auto& data = secret.value("data", json::object());
  REQUIRE(data.contains(key));
  std::string out;
  REQUIRE(base64::decode(data[key].get<std::string>(), out));
  return out;
}

}  // namespace

std::string missing_kube_peers() {
  std::string missing;
  if (find_on_path("kubectl").empty()) missing = "kubectl: not on PATH (see docs/kubernetes.md)";
  if (find_on_path("python3").empty()) {
    missing += std::string(missing.empty() ? "" : "; ") + "python3: not on PATH (test API server)";
  }
  return missing;
}

// ---------------------------------------------------------------------------------------------

KubeStack::KubeStack(KubeStackOptions options) : options_(options) {
  if (options_.replicas > 1) options_.leader_elect = true;
  registry_ = &testenv::Registry::shared();
  podman_ = std::make_unique<testenv::PodmanEnv>();
  dir_ = testenv::make_temp_dir("e2e-kube");
  agent_port_ = free_port();
  agent_credentials_ = dir_ + "/agent-credentials";

  testenv::KubeApiServerOptions server_options;
  server_options.default_crds = false;  // the user installs the CRD with kubectl below
  auto started = testenv::KubeApiServer::start(server_options);
  INFO((started.ok() ? std::string() : started.error().message));
  REQUIRE(started.ok());
  server_ = std::make_unique<testenv::KubeApiServer>(std::move(started).value());

  // The user's install: the CRD, then the controller's service account and RBAC as
  // manifests/ define them (the kustomize base puts the namespaced ones into berth-system).
  const std::string root = testenv::source_dir();
  kubectl_ok({"apply", "-f", root + "/crds/"});
  kubectl_ok(
      {"wait", "--for", "condition=Established", "--timeout=30s", "crd/appservices.berth.dev"});
  kubectl_ok({"apply", "-n", kControllerNamespace, "-f", root + "/manifests/serviceaccount.yaml",
              "-f", root + "/manifests/rbac.yaml"});
  ns_ = unique_name("ns");
  kubectl_ok({"create", "namespace", ns_});

  // The controller's kubeconfig: the server's, with a token of the service account instead of
  // the admin's.
  const std::string token = "berth-e2e-sa-" + unique_name("t").substr(6);
  server_->set_token(kServiceAccountUser, token);
  auto config = read_file(server_->kubeconfig_file());
  const std::string admin = server_->admin_token();
  const auto at = config.find(admin);
  REQUIRE(at != std::string::npos);
  config.replace(at, admin.size(), token);
  write_private(dir_ + "/controller.kubeconfig", config);

  replicas_.resize(static_cast<std::size_t>(std::max(1, options_.replicas)));
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    replicas_[i].data_dir = dir_ + "/data-" + std::to_string(i);
  }
}

KubeStack::~KubeStack() {
  for (auto& r : replicas_) r.process.stop();
  agent_.stop();
  kill_processes_naming(dir_);
  podman_.reset();  // removes every container of this stack
  server_.reset();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

testing::SecretScan KubeStack::registry_secret_scan() const {
  return testing::SecretScan(registry_->password(), registry_->username());
}

// --- processes ---------------------------------------------------------------------------------

std::string KubeStack::replica_log_path(int i) const {
  return dir_ + "/controller-" + std::to_string(i) + ".log";
}

std::string KubeStack::all_logs() const {
  std::string out;
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    out += "--- controller " + std::to_string(i) + " log:\n" +
           tail(replica_log(static_cast<int>(i))) + "\n";
  }
  if (options_.separate_agent) out += "--- agent log:\n" + tail(agent_log()) + "\n";
  return out;
}

void KubeStack::start() {
  for (std::size_t i = 0; i < replicas_.size(); ++i) start_replica(static_cast<int>(i));
  if (options_.separate_agent) start_agent();
}

std::uint16_t KubeStack::read_port_file(int i, Seconds limit) {
  const std::string path = dir_ + "/health-port-" + std::to_string(i);
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    std::ifstream in(path);
    int port = 0;
    if (in >> port && port > 0) return static_cast<std::uint16_t>(port);
    if (!replica(i).running()) break;
    std::this_thread::sleep_for(50ms);
  }
  FAIL("berth-controller " << i << " wrote no port file; log:\n" << tail(replica_log(i)));
  return 0;
}

void KubeStack::start_replica(int i) {
  auto& r = replicas_.at(static_cast<std::size_t>(i));
  REQUIRE_FALSE(r.process.running());
  std::error_code ec;
  fs::remove(dir_ + "/health-port-" + std::to_string(i), ec);
  std::vector<std::string> argv = {bin_dir() + "/berth-controller",
                                   "serve",
                                   "--kubernetes",
                                   "--kubeconfig",
                                   dir_ + "/controller.kubeconfig",
                                   "--data-dir",
                                   r.data_dir,
                                   "--agent-listen",
                                   "127.0.0.1:" + std::to_string(agent_port_),
                                   "--registry-ca",
                                   registry_->host() + "=" + registry_->ca_file(),
                                   "--health-listen",
                                   "127.0.0.1:0",
                                   "--port-file",
                                   dir_ + "/health-port-" + std::to_string(i)};
  if (!options_.separate_agent) argv.push_back("--local-agent");
  if (options_.leader_elect) {
    argv.insert(argv.end(), {"--leader-elect", "--identity", identity(i)});
  }
  if (options_.deletion_timeout_seconds > 0) {
    argv.insert(argv.end(),
                {"--deletion-timeout-seconds", std::to_string(options_.deletion_timeout_seconds)});
  }
  r.process = ChildProcess(argv, replica_log_path(i));
  REQUIRE(r.process.started());
  r.health_port = read_port_file(i, 30s);
  testing::HttpResult h;
  if (testing::wait_until([&] { return (h = health(i, "/healthz")).status == 200; }, 30s, 100ms)) {
    return;
  }
  FAIL("berth-controller " << i << " does not answer /healthz: " << h.error << " " << h.status
                           << " " << h.body << "\nlog:\n"
                           << tail(replica_log(i)));
}

void KubeStack::kill_replica(int i) { replica(i).kill_hard(); }
void KubeStack::stop_replica(int i) { CHECK(replica(i).stop() == 0); }

testing::HttpResult KubeStack::health(int i, const std::string& path) const {
  testing::HttpClientOptions o;
  o.port = health_port(i);
  o.timeout = 5000ms;
  return testing::http_request(o, "GET", path);
}

int KubeStack::count_in(const std::string& text, const std::string& needle) {
  int found = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++found;
  }
  return found;
}

void KubeStack::wait_log(int i, const std::string& needle, int count, Seconds limit) {
  if (testing::wait_until([&] { return count_in(replica_log(i), needle) >= count; }, limit,
                          100ms)) {
    return;
  }
  FAIL("controller " << i << "'s log never showed " << needle << " x" << count << "\n"
                     << all_logs());
}

void KubeStack::issue_agent_credentials() {
  // The first leader creates the key Secret; the agent's certificate comes from its CA.
  json keys;
  const bool found = testing::wait_until(
      [&] {
        return !(keys = get("secret", "berth-controller-keys", kControllerNamespace)).is_null();
      },
      60s, 300ms);
  if (!found) FAIL("no Secret berth-system/berth-controller-keys appeared\n" << all_logs());
  const std::string pki = dir_ + "/agent-ca/pki";
  fs::create_directories(pki);
  fs::permissions(dir_ + "/agent-ca", fs::perms::owner_all, fs::perm_options::replace);
  write_private(pki + "/ca.crt", decode_data(keys, "agent-ca.crt"));
  write_private(pki + "/ca.key", decode_data(keys, "agent-ca.key"));
  std::string out;
  const int issued = testenv::run_command(
      {bin_dir() + "/berth-controller", "agent-credentials", "--data-dir", dir_ + "/agent-ca",
       "--name", "e2e-agent", "--zone", "local", "--out", agent_credentials_},
      &out, {}, 60);
  INFO(out);
  REQUIRE(issued == 0);
}

void KubeStack::start_agent() {
  REQUIRE(options_.separate_agent);
  REQUIRE_FALSE(agent_.running());
  if (!fs::exists(agent_credentials_ + "/agent.crt")) issue_agent_credentials();
  std::vector<std::string> argv = {bin_dir() + "/berth-agent",
                                   "--controller",
                                   "wss://127.0.0.1:" + std::to_string(agent_port_),
                                   "--credentials",
                                   agent_credentials_,
                                   "--data-dir",
                                   dir_ + "/agent-data",
                                   "--zone",
                                   "local",
                                   "--registry-ca",
                                   registry_->host() + "=" + registry_->ca_file()};
  if (options_.stop_grace_seconds >= 0) {
    argv.insert(argv.end(), {"--stop-grace-period", std::to_string(options_.stop_grace_seconds)});
  }
  agent_ = ChildProcess(argv, agent_log_path());
  REQUIRE(agent_.started());
}

void KubeStack::kill_agent() { agent_.kill_hard(); }

// --- kubectl -----------------------------------------------------------------------------------

std::vector<std::string> KubeStack::kubectl_base() const {
  static const std::string kubectl = find_on_path("kubectl");
  return {kubectl,       "--kubeconfig",         server_->kubeconfig_file(),
          "--context",   "berth-test",           "--request-timeout=20s",
          "--cache-dir", dir_ + "/kubectl-cache"};
}

KubectlResult KubeStack::kubectl(const std::vector<std::string>& args, int timeout_seconds) {
  auto argv = kubectl_base();
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_split(argv, dir_ + "/kubectl.out", dir_ + "/kubectl.err", timeout_seconds);
  outputs_.push_back(r.out);
  outputs_.push_back(r.err);
  return r;
}

std::string KubeStack::kubectl_ok(const std::vector<std::string>& args, int timeout_seconds) {
  auto r = kubectl(args, timeout_seconds);
  std::string command = "kubectl";
  for (const auto& a : args) command += " " + a;
  INFO(command << "\nexit " << r.rc << "\nstdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.rc == 0);
  return r.out;
}

void KubeStack::apply(const std::string& yaml) {
  const std::string file = dir_ + "/apply.yaml";
  write_private(file, yaml);
  auto r = kubectl({"apply", "-f", file});
  std::error_code ec;
  fs::remove(file, ec);
  INFO("kubectl apply\n"
       << yaml << "\nexit " << r.rc << "\nstdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.rc == 0);
}

void KubeStack::apply_password_secret(const std::string& name, const std::string& password,
                                      const std::string& key, bool opted_in) {
  json secret = {{"apiVersion", "v1"},
                 {"kind", "Secret"},
                 {"metadata", {{"name", name}, {"namespace", ns_}}},
                 {"type", "Opaque"},
                 {"data", {{key, base64::encode(password)}}}};
  if (opted_in) secret["metadata"]["labels"] = {{"berth.dev/registry-credential", "true"}};
  apply(secret.dump());  // JSON is YAML
}

std::string KubeStack::app_yaml(const std::string& name, const std::string& tag,
                                const std::string& secret, const json& extra_spec,
                                const std::string& username) const {
  json spec = {{"imageRef", registry_->image(tag)}, {"containerPort", kContainerPort}};
  if (!secret.empty()) {
    spec["registryUsername"] = username.empty() ? registry_->username() : username;
    spec["registryPasswordSecretRef"] = {{"name", secret}, {"key", "password"}};
  }
  spec.update(extra_spec);
  const json app = {{"apiVersion", "berth.dev/v1alpha1"},
                    {"kind", "AppService"},
                    {"metadata", {{"name", name}, {"namespace", ns_}}},
                    {"spec", spec}};
  return app.dump();
}

json KubeStack::get(const std::string& kind, const std::string& name,
                    const std::optional<std::string>& ns) {
  std::vector<std::string> args = {"get", kind, name, "-o", "json"};
  const std::string where = ns.value_or(ns_);
  if (!where.empty()) args.insert(args.end(), {"-n", where});
  auto r = kubectl(args);
  if (is_not_found(r)) return nullptr;
  INFO("kubectl get " << kind << " " << name << ": exit " << r.rc << " " << r.err);
  REQUIRE(r.rc == 0);
  auto parsed = json::parse(r.out, nullptr, false);
  REQUIRE_FALSE(parsed.is_discarded());
  return parsed;
}

json KubeStack::list(const std::string& kind, const std::string& selector,
                     const std::optional<std::string>& ns) {
  std::vector<std::string> args = {"get", kind, "-o", "json"};
  const std::string where = ns.value_or(ns_);
  if (!where.empty()) args.insert(args.end(), {"-n", where});
  if (!selector.empty()) args.insert(args.end(), {"-l", selector});
  const auto out = kubectl_ok(args);
  auto parsed = json::parse(out, nullptr, false);
  REQUIRE_FALSE(parsed.is_discarded());
  return parsed.value("items", json::array());
}

void KubeStack::patch(const std::string& kind, const std::string& name, const json& merge_patch) {
  kubectl_ok({"patch", kind, name, "-n", ns_, "--type", "merge", "-p", merge_patch.dump()});
}

void KubeStack::remove(const std::string& kind, const std::string& name) {
  kubectl_ok({"delete", kind, name, "-n", ns_, "--wait=false"});
}

json KubeStack::revisions(const std::string& name) {
  auto items = list("controllerrevisions.apps", "berth.dev/appservice=" + name);
  std::sort(items.begin(), items.end(), [](const json& a, const json& b) {
    return a.value("revision", 0) < b.value("revision", 0);
  });
  return items;
}

json KubeStack::events_for(const std::string& name) {
  json out = json::array();
  for (const auto& e : list("events.v1.events.k8s.io")) {
    const auto& regarding = e.value("regarding", json::object());
    if (regarding.value("kind", "") == "AppService" && regarding.value("name", "") == name) {
      out.push_back(e);
    }
  }
  return out;
}

json KubeStack::lease() {
  return get("lease.coordination.k8s.io", "berth-controller", kControllerNamespace);
}

json KubeStack::wait_for(const std::string& name, const std::function<bool(const json&)>& pred,
                         const std::string& what, Seconds limit) {
  const auto deadline = Clock::now() + limit;
  json last;
  while (Clock::now() < deadline) {
    last = app(name);
    if (!last.is_null() && pred(last)) return last;
    std::this_thread::sleep_for(300ms);
  }
  FAIL("timed out after " << limit.count() << " s waiting for " << name << ": " << what
                          << "\nlast object: " << last.dump(2)
                          << "\nrevisions: " << revisions(name).dump()
                          << "\nevents: " << events_for(name).dump() << "\n"
                          << all_logs());
  return nullptr;
}

void KubeStack::wait_gone(const std::string& kind, const std::string& name, Seconds limit) {
  json last;
  if (testing::wait_until([&] { return (last = get(kind, name)).is_null(); }, limit, 300ms)) {
    return;
  }
  FAIL(kind << " " << name << " still there after " << limit.count() << " s; last: " << last.dump(2)
            << "\n"
            << all_logs());
}

std::vector<std::string> KubeStack::dump_everything(const std::vector<std::string>& except) {
  const auto names = kubectl_ok({"api-resources", "--verbs=list", "-o", "name"});
  std::vector<std::string> dumps;
  std::istringstream lines(names);
  std::string resource;
  while (std::getline(lines, resource)) {
    if (resource.empty()) continue;
    auto r = kubectl({"get", resource, "-A", "-o", "json"});
    INFO("kubectl get " << resource << " -A: " << r.err);
    REQUIRE(r.rc == 0);
    auto parsed = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(parsed.is_discarded());
    json kept = json::array();
    for (auto& item : parsed.value("items", json::array())) {
      const auto& meta = item.value("metadata", json::object());
      const std::string id =
          resource + "/" + meta.value("namespace", "") + "/" + meta.value("name", "");
      if (std::find(except.begin(), except.end(), id) == except.end()) kept.push_back(item);
    }
    dumps.push_back(resource + ": " + kept.dump());
  }
  REQUIRE(dumps.size() > 10);  // the dump really covered the server's resources
  return dumps;
}

std::vector<std::string> KubeStack::containers(bool all) {
  return podman_container_ids(*podman_, "berth.service", all);
}

// --- predicates --------------------------------------------------------------------------------

const json* KubeStack::condition(const json& app, const std::string& type) {
  if (!app.contains("status")) return nullptr;
  const auto& status = app["status"];
  if (!status.contains("conditions") || !status["conditions"].is_array()) return nullptr;
  for (const auto& c : status["conditions"]) {
    if (c.value("type", "") == type) return &c;
  }
  return nullptr;
}

std::string KubeStack::condition_status(const json& app, const std::string& type) {
  const json* c = condition(app, type);
  return c == nullptr ? std::string() : c->value("status", "");
}

std::string KubeStack::condition_reason(const json& app, const std::string& type) {
  const json* c = condition(app, type);
  return c == nullptr ? std::string() : c->value("reason", "");
}

bool KubeStack::observed(const json& app) {
  const auto generation = app["metadata"].value("generation", 0);
  return generation > 0 &&
         app.value("status", json::object()).value("observedGeneration", 0) == generation;
}

std::function<bool(const json&)> KubeStack::running_at(int revision) {
  return [revision](const json& app) {
    const auto status = app.value("status", json::object());
    return status.value("phase", "") == "Running" && condition_status(app, "Ready") == "True" &&
           observed(app) && status.value("currentRevision", 0) == revision &&
           !status.value("endpoint", "").empty();
  };
}

}  // namespace berth::e2e
