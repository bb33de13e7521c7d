#pragma once
// The end-to-end harness: berth's real stack on one machine, for tests/e2e/*_itest.cpp.
//
//   Stack stack({.separate_agent = true, .probe_deadline_seconds = 5});
//   stack.start();                                   // controller (+ agent), waits for /healthz
//   auto svc = stack.create_service("e2e-x", "v1");  // POST with the registry's credentials
//   stack.wait_running(svc["id"], 1);                // fails the test with the last body
//   REQUIRE(stack.page(svc_url) == "v1\n");
//
// What is real: the private registry (testenv::Registry::shared, one per test process), podman
// with a private configuration (testenv::PodmanEnv), the berth-controller and berth-agent binaries
// from BERTH_BIN_DIR as child processes, SQLite in a temp data dir. Each child's stdout+stderr
// go to a file in the stack's dir, so a test can grep the logs for secrets.
//
// Cleanup is RAII: the destructor kills every process the stack started (SIGTERM, then SIGKILL),
// then PodmanEnv removes every container, then the temp dir is deleted. Safe when a test fails
// half-way (REQUIRE throws).
//
// Threading: use a Stack from the test thread only; `ChildProcess` is not thread-safe either.
// Helpers that wait take a deadline and FAIL the test (Catch2) with the last body they saw.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/http_client.h"
#include "support/secret_scan.h"
#include "support/testenv.h"

namespace berth::e2e {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::seconds;

// BERTH_BIN_DIR (set by ctest); fails the test (REQUIRE) when unset.
std::string bin_dir();
// A loopback TCP port that was free a moment ago (bind port 0, read it, close).
std::uint16_t free_port();
std::string read_file(const std::string& path);
// "e2e-<tag>-<6 hex>": a fresh DNS-label service name.
std::string unique_name(const std::string& tag);
// A random string in the registry canary's shape (quote and backslash included) but never
// accepted by it.
std::string wrong_password();
// The last `n` bytes of a log, for failure messages.
std::string tail(const std::string& text, std::size_t n = 3000);
// SIGKILLs every berth process whose command line names `dir`: children of ours that outlived
// their parent (the local agent after a SIGKILLed controller).
void kill_processes_naming(const std::string& dir);
// IDs of the containers matching podman `label` filter (e.g. "berth.service=<id>") in `podman`'s
// environment; `all` includes stopped ones. REQUIREs podman to answer.
std::vector<std::string> podman_container_ids(const testenv::PodmanEnv& podman,
                                              const std::string& label, bool all);

// A child process started with posix_spawn, stdout+stderr appended to `log_path`, stdin from
// `stdin_path` (or /dev/null), this process's environment plus `extra_env` ("K=V").
// Destruction stops it (SIGTERM, 10 s, SIGKILL) and reaps it.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path,
               const std::vector<std::string>& extra_env = {}, const std::string& stdin_path = {});
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }
  // True while the child has not exited (reaps it if it has).
  bool running();
  void signal(int sig);
  // Waits for the exit; the exit status, 128+signal when killed, -1 on timeout (still running).
  int wait(std::chrono::milliseconds limit);
  // SIGTERM, up to `grace`, then SIGKILL; reaps. Returns the exit status as wait() does.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // SIGKILL and reap, no grace.
  void kill_hard();

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

struct StackOptions {
  // false: `serve --local-agent` (the controller runs and supervises the agent).
  // true: the agent is a separate berth-agent process the test can kill and restart on its own.
  bool separate_agent = false;
  // Passed to the separate agent as --probe-deadline (0: the agent's default, 120 s).
  int probe_deadline_seconds = 0;
  // Passed to the separate agent as --stop-grace-period (-1: the agent's default, 5 s). The
  // sample app ignores SIGTERM, so every stop waits this long.
  int stop_grace_seconds = -1;
  // Other addresses of the registry (a fault proxy in front of it, "127.0.0.1:PORT"): each gets
  // the registry's CA too (--registry-ca on the controller and the agent).
  std::vector<std::string> registry_aliases;
  // The separate agent dials this port instead of the controller's agent port (0: that port),
  // e.g. a fault proxy in front of agent_port().
  std::uint16_t agent_dial_port = 0;
  // The controller runs as controller_prefix + its argv + controller_args (e.g. a
  // mount-namespace wrapper; shorter timeouts), with controller_env ("K=V") added to its
  // environment.
  std::vector<std::string> controller_prefix;
  std::vector<std::string> controller_args;
  std::vector<std::string> controller_env;
  // The separate agent runs as agent_prefix + its argv (e.g. a launcher that sets its cwd and
  // rlimits).
  std::vector<std::string> agent_prefix;
};

class Stack {
 public:
  // Starts nothing yet but the shared registry (first use in this process), the podman env,
  // the data dirs and the account (berth-controller account add, password on stdin).
  explicit Stack(StackOptions options = {});
  ~Stack();
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  testenv::Registry& registry() { return *registry_; }
  // A scan for the registry password in every encoded form (support/secret_scan.h).
  testing::SecretScan registry_secret_scan() const;
  const testenv::PodmanEnv& podman() const { return *podman_; }
  const std::string& dir() const { return dir_; }
  const std::string& data_dir() const { return data_dir_; }              // the controller's
  const std::string& agent_data_dir() const { return agent_data_dir_; }  // the separate agent's
  std::uint16_t agent_port() const { return agent_port_; }  // the controller's agent link
  // The options, to adjust before start() (a proxy needs the ports chosen by the constructor).
  StackOptions& options() { return options_; }
  std::string controller_log_path() const { return dir_ + "/controller.log"; }
  std::string agent_log_path() const { return dir_ + "/agent.log"; }
  std::string controller_log() const { return read_file(controller_log_path()); }
  std::string agent_log() const { return read_file(agent_log_path()); }

  // Controller + (separate) agent; waits until the API answers /healthz and, with a separate
  // agent, until the controller logged the agent's hello.
  void start();
  // `serve` on the same data dir and agent port; a fresh API port (port file). Waits for
  // /healthz. The agent link port stays the same so a running agent reconnects.
  void start_controller();
  void kill_controller();  // SIGKILL
  void stop_controller();  // SIGTERM
  ChildProcess& controller() { return controller_; }
  void start_agent();  // separate_agent only
  void kill_agent();   // SIGKILL (separate agent)
  ChildProcess& agent() { return agent_; }
  // Waits until `needle` appears in the controller log at least `count` times.
  void wait_log(const std::string& needle, int count, Seconds limit);

  // The controller's API as a browser reaches it, and the account it signs in with.
  std::string api_url() const { return "http://127.0.0.1:" + std::to_string(api_port_); }
  const std::string& account_name() const { return account_; }
  const std::string& account_password() const { return account_password_; }

  // --- API (Basic auth as the stack's account). Every response body is kept for secret scans.
  testing::HttpResult api(const std::string& method, const std::string& path,
                          const nlohmann::json& body = nullptr);
  const std::vector<std::string>& response_bodies() const { return bodies_; }
  // The header block of every response api() received ("name: value" lines), for the same scans.
  const std::vector<std::string>& response_headers() const { return headers_; }
  // POST /app-services for registry image `tag`, with the registry's username and `password`
  // (default: the right one). REQUIREs 201; returns the body.
  nlohmann::json create_service(const std::string& name, const std::string& tag,
                                const std::optional<std::string>& password = std::nullopt,
                                const nlohmann::json& extra_config = nlohmann::json::object());
  // PATCH app_config {image_ref: tag, container_port, registry_username[, registry_password]}.
  nlohmann::json patch_image(const std::string& id, const std::string& tag,
                             const std::optional<std::string>& password = std::nullopt,
                             const nlohmann::json& extra_config = nlohmann::json::object());
  nlohmann::json get_service(const std::string& id);
  // GET deployments?all=true, newest first.
  nlohmann::json all_deployments(const std::string& id);
  // The revision with `number`, or null.
  nlohmann::json deployment(const std::string& id, int number);

  // Polls until the service is Running and its current deployment is revision `revision`
  // (which must be `succeeded`); FAILs the test with the last bodies after `limit`. Returns the
  // service. Fails at once when that revision failed.
  nlohmann::json wait_running(const std::string& id, int revision, Seconds limit = Seconds(90));
  // Polls until revision `revision` is no longer pending; FAILs after `limit`. Returns it.
  nlohmann::json wait_revision_done(const std::string& id, int revision,
                                    Seconds limit = Seconds(90));
  // Polls `pred(service)` until true; FAILs with `what` and the last body after `limit`.
  nlohmann::json wait_service(const std::string& id,
                              const std::function<bool(const nlohmann::json&)>& pred,
                              const std::string& what, Seconds limit);

  // GET `url` (http://127.0.0.1:PORT) with a 5 s deadline: the body, or "<error ...>".
  static std::string page(const std::string& url);
  // Polls page(url) until it equals `expected`; FAILs after `limit`.
  static void wait_page(const std::string& url, const std::string& expected, Seconds limit);

  // IDs of the containers labelled berth.service=<id>; `all` includes stopped ones.
  std::vector<std::string> containers(const std::string& service_id, bool all = false);

  static constexpr int kContainerPort = 8080;

 private:
  std::uint16_t read_port_file(Seconds limit);

  StackOptions options_;
  testenv::Registry* registry_ = nullptr;
  // Declared before the processes: destroyed after them, so no agent recreates containers
  // while PodmanEnv removes them.
  std::unique_ptr<testenv::PodmanEnv> podman_;
  std::string dir_;
  std::string data_dir_;
  std::string agent_data_dir_;
  std::string agent_credentials_;
  std::string account_ = "e2e";
  std::string account_password_;
  std::uint16_t agent_port_ = 0;
  std::uint16_t api_port_ = 0;
  std::vector<std::string> bodies_;
  std::vector<std::string> headers_;
  ChildProcess agent_;
  ChildProcess controller_;
};

}  // namespace berth::e2e
