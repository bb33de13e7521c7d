#include "support/kube_testenv.h"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "common/process.h"
#include "support/http_client.h"
#include "support/testenv.h"

namespace berth::testenv {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// spawn_child() does not search PATH.
std::string find_python() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/python3";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// Whether `pid` has exited (reaped here); false while it runs.
bool reaped(int pid) {
  int status = 0;
  const pid_t r = ::waitpid(pid, &status, WNOHANG);
  return r == pid || (r < 0 && errno == ECHILD);
}

void stop_process(int pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  // SIGTERM stops the server within a poll interval; SIGKILL if it does not.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (reaped(pid)) return;
    std::this_thread::sleep_for(20ms);
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

// Stops the server and removes its directory; never throws (destructors call it).
void shut_down(int& pid, std::string& dir) noexcept {
  stop_process(pid);
  pid = -1;
  if (!dir.empty()) {
    std::error_code ec;
    fs::remove_all(dir, ec);  // a leftover temp dir is harmless
    dir.clear();
  }
}

}  // namespace

Result<KubeApiServer> KubeApiServer::start(KubeApiServerOptions options) {
  const std::string python = find_python();
  if (python.empty()) {
    return make_error(ErrorCode::kUnavailable, "test API server cannot start: python3 not found");
  }
  KubeApiServer api;
  try {
    api.dir_ = make_temp_dir("kubeapi");
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kUnavailable, e.what());
  }
  // The server's stderr goes to a file, so a start failure can say why.
  const std::string log = api.dir_ + "/server.log";
  std::vector<std::string> argv = {
      python, source_dir() + "/hack/testenv/kubeapi", "--dir", api.dir_, "--port", "0", "--log",
      log};
  if (options.default_crds) {
    argv.push_back("--crd");
    argv.push_back(source_dir() + "/crds/appservices.berth.dev.yaml");
  }
  for (const auto& file : options.crd_files) {
    argv.push_back("--crd");
    argv.push_back(file);
  }
  auto child = spawn_child({argv, SIGTERM});
  if (!child.ok()) return child.error();
  api.pid_ = child.value();

  // ready.json appears (renamed into place) once the port is bound and the files are written.
  const std::string ready = api.dir_ + "/ready.json";
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!fs::exists(ready)) {
    if (reaped(api.pid_)) {
      api.pid_ = -1;
      std::string why = read_file(log);
      if (why.size() > 2000) why = "..." + why.substr(why.size() - 2000);
      return make_error(ErrorCode::kUnavailable,
                        "test API server exited before it was ready: " + why);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return make_error(ErrorCode::kUnavailable, "test API server not ready after 30 s");
    }
    std::this_thread::sleep_for(20ms);
  }
  const auto info = nlohmann::json::parse(read_file(ready), nullptr, false);
  if (info.is_discarded() || !info.contains("port")) {
    return make_error(ErrorCode::kUnavailable, "test API server wrote an unreadable ready.json");
  }
  api.server_ = "https://127.0.0.1:" + std::to_string(info["port"].get<int>());
  return api;
}

KubeApiServer::KubeApiServer(KubeApiServer&& other) noexcept
    : server_(std::move(other.server_)),
      dir_(std::exchange(other.dir_, {})),
      pid_(std::exchange(other.pid_, -1)) {}

KubeApiServer& KubeApiServer::operator=(KubeApiServer&& other) noexcept {
  if (this != &other) {
    shut_down(pid_, dir_);
    server_ = std::move(other.server_);
    dir_ = std::exchange(other.dir_, {});
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

KubeApiServer::~KubeApiServer() { shut_down(pid_, dir_); }

std::string KubeApiServer::ca_file() const { return dir_ + "/ca.crt"; }
std::string KubeApiServer::admin_token() const { return read_file(dir_ + "/admin.token"); }
std::string KubeApiServer::client_cert_file() const { return dir_ + "/client.crt"; }
std::string KubeApiServer::client_key_file() const { return dir_ + "/client.key"; }
std::string KubeApiServer::kubeconfig_file() const { return dir_ + "/kubeconfig"; }

nlohmann::json KubeApiServer::control(const std::string& path, const nlohmann::json& body) const {
  const auto colon = server_.rfind(':');
  testing::HttpClientOptions options;
  options.port = static_cast<std::uint16_t>(std::stoi(server_.substr(colon + 1)));
  options.tls = true;
  options.ca_pem = read_file(ca_file());
  const bool get = body.is_null();
  auto r = testing::http_request(
      options, get ? "GET" : "POST", path, get ? "" : body.dump(),
      {{"Authorization", "Bearer " + admin_token()}, {"Content-Type", "application/json"}});
  if (!r.ok()) throw std::runtime_error("test API server " + path + ": " + r.error);
  if (r.status != 200) {
    throw std::runtime_error("test API server " + path + ": HTTP " + std::to_string(r.status) +
                             ": " + r.body);
  }
  return r.json();
}

void KubeApiServer::compact() { control("/_test/compact", nlohmann::json::object()); }

void KubeApiServer::inject_fault(const nlohmann::json& fault) { control("/_test/faults", fault); }

void KubeApiServer::clear_faults() { control("/_test/faults/clear", nlohmann::json::object()); }

void KubeApiServer::set_token(const std::string& user, const std::string& token) {
  control("/_test/tokens", {{"user", user}, {"token", token}});
}

void KubeApiServer::remove_token(const std::string& token) {
  control("/_test/tokens/remove", {{"token", token}});
}

nlohmann::json KubeApiServer::requests() const {
  return control("/_test/requests", nullptr)["requests"];
}

}  // namespace berth::testenv
