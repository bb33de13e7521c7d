#include "e2e/stack.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "support/wait.h"

extern char** environ;

namespace berth::e2e {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string random_hex(std::size_t bytes) {
  std::random_device rd;
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    const unsigned v = rd() & 0xffU;
    out += digits[v >> 4];
    out += digits[v & 0xfU];
  }
  return out;
}

void write_private(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  const bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  REQUIRE(ok);
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::string tail(const std::string& text, std::size_t n) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

void kill_processes_naming(const std::string& dir) {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return;
  const pid_t self = ::getpid();
  while (dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0' || pid == self) continue;
    std::string cmdline = read_file("/proc/" + std::string(e->d_name) + "/cmdline");
    if (cmdline.find(dir) != std::string::npos && cmdline.find("berth-") != std::string::npos) {
      ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
  }
  ::closedir(proc);
}

std::string bin_dir() {
  const char* dir = std::getenv("BERTH_BIN_DIR");
  REQUIRE(dir != nullptr);
  return dir;
}

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string unique_name(const std::string& tag) { return "e2e-" + tag + "-" + random_hex(3); }

std::string wrong_password() { return "berth-wrong-" + random_hex(8) + "\"\\" + random_hex(8); }

// ---------------------------------------------------------------------------------------------
// ChildProcess

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& log_path,
                           const std::vector<std::string>& extra_env,
                           const std::string& stdin_path) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const auto& extra : extra_env) {
    const auto name = extra.substr(0, extra.find('=') + 1);
    std::erase_if(env_strings, [&](const std::string& s) { return s.rfind(name, 0) == 0; });
    env_strings.push_back(extra);
  }
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, stdin_path.empty() ? "/dev/null" : stdin_path.c_str(),
                                   O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argp[0], &fa, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc == 0) pid_ = pid;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(std::exchange(other.status_, std::nullopt)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) stop(2s);
    pid_ = std::exchange(other.pid_, -1);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) stop();
}

bool ChildProcess::running() {
  if (pid_ <= 0 || status_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    status_ = decode_status(status);
    return false;
  }
  return true;
}

void ChildProcess::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

int ChildProcess::wait(std::chrono::milliseconds limit) {
  if (pid_ <= 0) return -1;
  if (!testing::wait_until([this] { return !running(); }, limit)) return -1;
  return *status_;
}

int ChildProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  signal(SIGTERM);
  int rc = wait(grace);
  if (rc == -1 && running()) {
    ::kill(pid_, SIGKILL);
    rc = wait(10s);
  }
  return rc;
}

void ChildProcess::kill_hard() {
  if (pid_ <= 0) return;
  signal(SIGKILL);
  (void)wait(10s);
}

// ---------------------------------------------------------------------------------------------
// Stack

Stack::Stack(StackOptions options) : options_(options) {
  registry_ = &testenv::Registry::shared();
  podman_ = std::make_unique<testenv::PodmanEnv>();
  dir_ = testenv::make_temp_dir("e2e");
  data_dir_ = dir_ + "/data";
  agent_data_dir_ = dir_ + "/agent-data";
  agent_credentials_ = dir_ + "/agent-credentials";
  agent_port_ = free_port();

  account_password_ = "e2e-account-" + random_hex(12);
  const std::string pw_file = dir_ + "/account-password";
  write_private(pw_file, account_password_ + "\n");
  ChildProcess add(
      {bin_dir() + "/berth-controller", "account", "add", account_, "--data-dir", data_dir_},
      dir_ + "/account.log", {}, pw_file);
  REQUIRE(add.started());
  const int rc = add.wait(60s);
  INFO(read_file(dir_ + "/account.log"));
  REQUIRE(rc == 0);

  if (options_.separate_agent) {
    std::string out;
    const int issued = testenv::run_command(
        {bin_dir() + "/berth-controller", "agent-credentials", "--data-dir", data_dir_, "--name",
         "e2e-agent", "--zone", "local", "--out", agent_credentials_},
        &out, {}, 60);
    INFO(out);
    REQUIRE(issued == 0);
  }
}

Stack::~Stack() {
  controller_.stop();
  agent_.stop();
  kill_processes_naming(dir_);
  podman_.reset();  // removes every container of this stack
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

testing::SecretScan Stack::registry_secret_scan() const {
  return testing::SecretScan(registry_->password(), registry_->username());
}

void Stack::start() {
  start_controller();
  if (options_.separate_agent) {
    start_agent();
    wait_log("\"agent connected\"", 1, 30s);
  }
}

std::uint16_t Stack::read_port_file(Seconds limit) {
  const std::string path = dir_ + "/api-port";
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    std::ifstream in(path);
    int port = 0;
    if (in >> port && port > 0) return static_cast<std::uint16_t>(port);
    if (!controller_.running()) break;
    std::this_thread::sleep_for(50ms);
  }
  FAIL("berth-controller wrote no port file; log:\n" << tail(controller_log()));
  return 0;
}

void Stack::start_controller() {
  REQUIRE_FALSE(controller_.running());
  std::error_code ec;
  fs::remove(dir_ + "/api-port", ec);
  std::vector<std::string> argv = {bin_dir() + "/berth-controller",
                                   "serve",
                                   "--data-dir",
                                   data_dir_,
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--agent-listen",
                                   "127.0.0.1:" + std::to_string(agent_port_),
                                   "--registry-ca",
                                   registry_->host() + "=" + registry_->ca_file(),
                                   "--port-file",
                                   dir_ + "/api-port"};
  for (const auto& alias : options_.registry_aliases) {
    argv.insert(argv.end(), {"--registry-ca", alias + "=" + registry_->ca_file()});
  }
  if (!options_.separate_agent) argv.push_back("--local-agent");
  argv.insert(argv.end(), options_.controller_args.begin(), options_.controller_args.end());
  argv.insert(argv.begin(), options_.controller_prefix.begin(), options_.controller_prefix.end());
  controller_ = ChildProcess(argv, controller_log_path(), options_.controller_env);
  REQUIRE(controller_.started());
  api_port_ = read_port_file(30s);
  testing::HttpClientOptions o;
  o.port = api_port_;
  o.timeout = 5000ms;
  const auto deadline = Clock::now() + 30s;
  testing::HttpResult r;
  while (Clock::now() < deadline) {
    r = testing::http_request(o, "GET", "/healthz");
    if (r.status == 200) return;
    std::this_thread::sleep_for(100ms);
  }
  FAIL("berth-controller does not answer /healthz: " << r.error << " " << r.body << "\nlog:\n"
                                                     << tail(controller_log()));
}

void Stack::kill_controller() { controller_.kill_hard(); }
void Stack::stop_controller() { CHECK(controller_.stop() == 0); }

void Stack::start_agent() {
  REQUIRE(options_.separate_agent);
  REQUIRE_FALSE(agent_.running());
  std::vector<std::string> argv = {
      bin_dir() + "/berth-agent",
      "--controller",
      "wss://127.0.0.1:" +
          std::to_string(options_.agent_dial_port > 0 ? options_.agent_dial_port : agent_port_),
      "--credentials",
      agent_credentials_,
      "--data-dir",
      agent_data_dir_,
      "--zone",
      "local",
      "--registry-ca",
      registry_->host() + "=" + registry_->ca_file()};
  for (const auto& alias : options_.registry_aliases) {
    argv.insert(argv.end(), {"--registry-ca", alias + "=" + registry_->ca_file()});
  }
  if (options_.probe_deadline_seconds > 0) {
    argv.push_back("--probe-deadline");
    argv.push_back(std::to_string(options_.probe_deadline_seconds));
  }
  if (options_.stop_grace_seconds >= 0) {
    argv.push_back("--stop-grace-period");
    argv.push_back(std::to_string(options_.stop_grace_seconds));
  }
  argv.insert(argv.begin(), options_.agent_prefix.begin(), options_.agent_prefix.end());
  agent_ = ChildProcess(argv, agent_log_path());
  REQUIRE(agent_.started());
}

void Stack::kill_agent() { agent_.kill_hard(); }

void Stack::wait_log(const std::string& needle, int count, Seconds limit) {
  std::string log;
  const bool seen = testing::wait_until(
      [&] {
        log = controller_log();
        int found = 0;
        for (auto pos = log.find(needle); pos != std::string::npos;
             pos = log.find(needle, pos + 1)) {
          ++found;
        }
        return found >= count;
      },
      limit, 100ms);
  if (seen) return;
  FAIL("the controller log never showed " << needle << " x" << count << ":\n"
                                          << tail(log) << "\nagent log:\n"
                                          << tail(agent_log()));
}

testing::HttpResult Stack::api(const std::string& method, const std::string& path,
                               const nlohmann::json& body) {
  testing::HttpClientOptions o;
  o.port = api_port_;
  o.timeout = 10000ms;
  std::map<std::string, std::string> headers = {
      {"Authorization", testing::basic_auth(account_, account_password_)},
      {"Content-Type", "application/json"}};
  auto r =
      testing::http_request(o, method, path, body.is_null() ? std::string() : body.dump(), headers);
  bodies_.push_back(r.body);
  std::string head;
  for (const auto& [name, value] : r.headers) head += name + ": " + value + "\n";
  headers_.push_back(std::move(head));
  return r;
}

nlohmann::json Stack::create_service(const std::string& name, const std::string& tag,
                                     const std::optional<std::string>& password,
                                     const nlohmann::json& extra_config) {
  nlohmann::json config = {{"image_ref", registry_->image(tag)},
                           {"container_port", kContainerPort},
                           {"registry_username", registry_->username()},
                           {"registry_password", password.value_or(registry_->password())}};
  config.update(extra_config);
  auto r = api("POST", "/app-services",
               {{"name", name}, {"plan_name", "tier-2"}, {"app_config", config}});
  INFO(r.error << " " << r.body);
  REQUIRE(r.status == 201);
  return r.json();
}

nlohmann::json Stack::patch_image(const std::string& id, const std::string& tag,
                                  const std::optional<std::string>& password,
                                  const nlohmann::json& extra_config) {
  nlohmann::json config = {{"image_ref", registry_->image(tag)},
                           {"container_port", kContainerPort},
                           {"registry_username", registry_->username()}};
  if (password) config["registry_password"] = *password;
  config.update(extra_config);
  auto r = api("PATCH", "/app-services/" + id, {{"app_config", config}});
  INFO(r.error << " " << r.body);
  REQUIRE(r.status == 200);
  return r.json();
}

nlohmann::json Stack::get_service(const std::string& id) {
  auto r = api("GET", "/app-services/" + id);
  INFO(r.error << " " << r.body);
  REQUIRE(r.status == 200);
  return r.json();
}

nlohmann::json Stack::all_deployments(const std::string& id) {
  auto r = api("GET", "/app-services/" + id + "/deployments?all=true");
  INFO(r.error << " " << r.body);
  REQUIRE(r.status == 200);
  return r.json().value("deployments", nlohmann::json::array());
}

nlohmann::json Stack::deployment(const std::string& id, int number) {
  for (const auto& d : all_deployments(id)) {
    if (d.value("revision", 0) == number) return d;
  }
  return nullptr;
}

nlohmann::json Stack::wait_service(const std::string& id,
                                   const std::function<bool(const nlohmann::json&)>& pred,
                                   const std::string& what, Seconds limit) {
  const auto deadline = Clock::now() + limit;
  std::string last;
  while (Clock::now() < deadline) {
    auto r = api("GET", "/app-services/" + id);
    last = r.ok() ? std::to_string(r.status) + " " + r.body : r.error;
    if (r.status == 200) {
      auto service = r.json();
      if (pred(service)) return service;
    }
    std::this_thread::sleep_for(250ms);
  }
  std::string deployments;
  if (auto r = api("GET", "/app-services/" + id + "/deployments?all=true"); r.ok()) {
    deployments = r.body;
  }
  FAIL("timed out after " << limit.count() << " s waiting for " << what << "\nlast service: "
                          << last << "\ndeployments: " << deployments << "\ncontroller log:\n"
                          << tail(controller_log()) << "\nagent log:\n"
                          << tail(agent_log()));
  return nullptr;
}

nlohmann::json Stack::wait_revision_done(const std::string& id, int revision, Seconds limit) {
  const auto deadline = Clock::now() + limit;
  nlohmann::json last;
  while (Clock::now() < deadline) {
    last = deployment(id, revision);
    if (!last.is_null() && last.value("state", "") != "pending") return last;
    std::this_thread::sleep_for(250ms);
  }
  FAIL("revision " << revision << " still pending after " << limit.count() << " s: " << last.dump()
                   << "\ncontroller log:\n"
                   << tail(controller_log()) << "\nagent log:\n"
                   << tail(agent_log()));
  return nullptr;
}

nlohmann::json Stack::wait_running(const std::string& id, int revision, Seconds limit) {
  const auto deadline = Clock::now() + limit;
  std::string last;
  while (Clock::now() < deadline) {
    auto d = deployment(id, revision);
    if (!d.is_null() && d.value("state", "") == "failed") {
      FAIL("revision " << revision << " failed: " << d.dump() << "\ncontroller log:\n"
                       << tail(controller_log()) << "\nagent log:\n"
                       << tail(agent_log()));
    }
    auto r = api("GET", "/app-services/" + id);
    last = r.ok() ? std::to_string(r.status) + " " + r.body : r.error;
    if (r.status == 200 && !d.is_null()) {
      auto service = r.json();
      if (service.value("status", "") == "Running" &&
          service.value("current_deployment_id", "") == d.value("id", "") &&
          d.value("state", "") == "succeeded" && !service.value("url", "").empty()) {
        return service;
      }
    }
    std::this_thread::sleep_for(250ms);
  }
  FAIL("timed out after " << limit.count() << " s waiting for revision " << revision
                          << " to run\nlast service: " << last << "\ndeployments: "
                          << all_deployments(id).dump() << "\ncontroller log:\n"
                          << tail(controller_log()) << "\nagent log:\n"
                          << tail(agent_log()));
  return nullptr;
}

std::string Stack::page(const std::string& url) {
  const std::string prefix = "http://127.0.0.1:";
  if (url.rfind(prefix, 0) != 0) return "<not a loopback url: " + url + ">";
  testing::HttpClientOptions o;
  o.port = static_cast<std::uint16_t>(std::stoi(url.substr(prefix.size())));
  o.timeout = 5000ms;
  auto r = testing::http_request(o, "GET", "/");
  if (!r.ok()) return "<error " + r.error + ">";
  if (r.status != 200) return "<status " + std::to_string(r.status) + ">";
  return r.body;
}

void Stack::wait_page(const std::string& url, const std::string& expected, Seconds limit) {
  std::string last;
  if (testing::wait_until([&] { return (last = page(url)) == expected; }, limit, 200ms)) return;
  FAIL(url << " never served " << expected << "; last answer: " << last);
}

std::vector<std::string> podman_container_ids(const testenv::PodmanEnv& podman,
                                              const std::string& label, bool all) {
  std::vector<std::string> argv = {"podman",         "ps",       "--filter",
                                   "label=" + label, "--format", "{{.ID}}"};
  if (all) argv.insert(argv.begin() + 2, "-a");
  std::string out;
  const int rc = testenv::run_command(argv, &out, podman.env(), 60);
  INFO(out);
  REQUIRE(rc == 0);
  std::vector<std::string> ids;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) ids.push_back(line);
  }
  return ids;
}

std::vector<std::string> Stack::containers(const std::string& service_id, bool all) {
  return podman_container_ids(*podman_, "berth.service=" + service_id, all);
}

}  // namespace berth::e2e
