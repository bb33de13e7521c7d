// berth-agent: the composition root of the agent. Flags, then the wiring of the concrete
// pieces: podman driver, health prober, stable-port proxies, SQLite state, deployer, and the
// TLS WebSocket link to the controller. Stops cleanly on SIGTERM/SIGINT.
#include <signal.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "agent/agent.h"
#include "agent/agent_state.h"
#include "agent/deployer.h"
#include "agent/health_probe.h"
#include "agent/outcome_counter.h"
#include "agent/podman_driver.h"
#include "agent/proxy_set.h"
#include "agentlink/client.h"
#include "api/metrics_server.h"
#include "common/dir_lock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "crypto/certs.h"
#include "registry/client.h"

namespace fs = std::filesystem;
using namespace berth;

namespace {

int fail(const std::string& message) {
  log::error("berth-agent cannot start", {{"error", message}});
  return 1;
}

bool read_file(const fs::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Before anything reads a secret: a process that cannot turn core files off does not start.
  if (const berth::Status hardened = berth::harden_process(); !hardened) {
    berth::log::error("cannot harden the process, refusing to start",
                      {{"error", hardened.error().message}});
    return 1;
  }
  CLI::App app{"berth-agent: runs berth's deploy tasks on this machine"};
  std::string controller, credentials, data_dir, zone, podman = "podman", level = "info";
  std::string metrics_listen;
  std::vector<std::string> registry_cas;
  int probe_deadline_s = 120;
  int stop_grace_s = agent::DeployerOptions{}.stop_grace_seconds;
  int unhealthy_threshold = agent::DeployerOptions{}.unhealthy_threshold;
  app.add_option("--controller", controller, "controller agent endpoint, wss://HOST:PORT")
      ->required();
  app.add_option(
         "--credentials", credentials,
         "directory with ca.crt, agent.crt and agent.key (berth-controller agent-credentials)")
      ->required();
  app.add_option("--data-dir", data_dir, "agent state, short-lived auth files, CA dirs")
      ->required();
  app.add_option("--zone", zone, "zone reported to the controller (default: from the certificate)");
  app.add_option("--podman", podman, "podman command (default: podman on PATH)");
  app.add_option("--registry-ca", registry_cas, "HOST=FILE: trust FILE (PEM) for registry HOST");
  app.add_option("--probe-deadline", probe_deadline_s,
                 "seconds a new container has to become healthy");
  app.add_option("--stop-grace-period", stop_grace_s,
                 "seconds an old container has to exit after SIGTERM before it is killed")
      ->check(CLI::Range(0, 3600));
  app.add_option("--unhealthy-threshold", unhealthy_threshold,
                 "consecutive failed health checks after which a running app is reported "
                 "unhealthy")
      ->check(CLI::Range(1, 1000));
  app.add_option("--log-level", level, "debug|info|warn|error");
  app.add_option("--metrics-listen", metrics_listen,
                 "HOST:PORT: serve GET /metrics (Prometheus text format, no authentication)");
  std::string log_format;
  app.add_option("--log-format", log_format,
                 "json|text (default: text when stderr is a terminal, else json)")
      ->check(CLI::IsMember({"json", "text"}));
  CLI11_PARSE(app, argc, argv);

  log::Format format = log::default_format();
  if (!log_format.empty()) log::parse_format(log_format, format);
  log::set_format(format);

  log::Level parsed;
  if (!log::parse_level(level, parsed))
    return fail("--log-level must be debug, info, warn or error.");
  log::set_level(parsed);

  std::map<std::string, std::string> ca_by_host;
  for (const auto& spec : registry_cas) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      return fail("--registry-ca must be HOST=FILE.");
    const std::string file = spec.substr(eq + 1);
    if (!fs::is_regular_file(file)) return fail("--registry-ca file " + file + " does not exist.");
    ca_by_host[spec.substr(0, eq)] = fs::absolute(file).string();
  }

  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) return fail("Could not create the data dir " + data_dir + ": " + ec.message() + ".");
  ::chmod(data_dir.c_str(), 0700);
  data_dir = fs::absolute(data_dir).string();
  // Before anything in the directory is read or changed: a second agent here would remove the
  // first one's containers as leftovers.
  auto dir_lock = DirLock::acquire(fs::path(data_dir) / "agent.lock", "berth-agent");
  if (!dir_lock.ok()) return fail(dir_lock.error().message);

  auto pair = crypto::read_pem_files(credentials, "agent");
  if (!pair.ok()) return fail(pair.error().message);
  std::string ca_pem;
  if (!read_file(fs::path(credentials) / "ca.crt", ca_pem))
    return fail("Could not read " + (fs::path(credentials) / "ca.crt").string() + ".");
  auto info = crypto::inspect_certificate(pair->cert_pem);
  if (!info.ok()) return fail(info.error().message);
  if (zone.empty()) zone = info->zone.empty() ? "default" : info->zone;

  auto state = agent::AgentState::open(data_dir + "/state.db");
  if (!state.ok()) return fail(state.error().message);

  // Signals are handled by sigwait in this thread only; every thread started below inherits
  // the mask (child processes get an empty mask: see subprocess.cpp).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  agent::PodmanOptions podman_options;
  podman_options.command = podman;
  agent::PodmanDriver driver(podman_options);
  agent::AsioHealthProber prober;
  agent::AsioProxySet proxies;
  agent::DeployerOptions deployer_options;
  deployer_options.data_dir = data_dir;
  deployer_options.registry_ca = ca_by_host;
  deployer_options.probe_deadline = std::chrono::seconds(std::max(1, probe_deadline_s));
  deployer_options.stop_grace_seconds = stop_grace_s;
  deployer_options.unhealthy_threshold = unhealthy_threshold;
  agent::DeployerDeps deps;
  deps.driver = &driver;
  deps.prober = &prober;
  deps.proxies = &proxies;
  deps.state = state->get();
  // Pull progress reads the image's layer sizes from the registry with the same CAs podman
  // trusts; a short deadline, since it only decorates the pull (docs/agent.md).
  registry::RegistryOptions manifest_options;
  manifest_options.ca_files = ca_by_host;
  manifest_options.timeout = std::chrono::seconds(10);
  deps.layer_sizes = agent::registry_layer_sizes(manifest_options);
  metrics::Registry& registry = metrics::process_registry();
  metrics::Counter& pull_bytes =
      registry
          .counter("berth_pull_bytes_total",
                   "Image bytes this agent's pulls wrote (layers it already had "
                   "are not pulled again)",
                   {})
          .with({});
  deps.pulled_bytes = [&pull_bytes](std::int64_t bytes) {
    pull_bytes.inc(static_cast<double>(bytes));
  };
  agent::Deployer deployer(deployer_options, deps);

  // Metrics: the wiring sees every task that comes in and every result that goes out, so deploy
  // outcomes are counted here without the deployer knowing about metrics.
  auto& deploys_family = registry.counter(
      "berth_agent_deploys_total", "Deploy tasks this agent finished, by outcome", {"outcome"});
  agent::OutcomeCounter deploy_outcomes(deploys_family.with({"succeeded"}),
                                        deploys_family.with({"failed"}));
  std::unique_ptr<api::MetricsServer> metrics_server;
  if (!metrics_listen.empty()) {
    api::MetricsServerOptions mo;
    const auto colon = metrics_listen.rfind(':');
    int port = -1;
    if (colon != std::string::npos) {
      try {
        port = std::stoi(metrics_listen.substr(colon + 1));
      } catch (const std::exception&) {
        port = -1;
      }
    }
    if (colon == std::string::npos || colon == 0 || port < 0 || port > 65535)
      return fail("--metrics-listen must be HOST:PORT.");
    mo.listen_host = metrics_listen.substr(0, colon);
    if (mo.listen_host.size() > 2 && mo.listen_host.front() == '[')
      mo.listen_host = mo.listen_host.substr(1, mo.listen_host.size() - 2);
    mo.listen_port = static_cast<std::uint16_t>(port);
    metrics_server = std::make_unique<api::MetricsServer>(mo, registry);
    if (auto st = metrics_server->start(); !st.ok()) return fail(st.error().message);
    log::info("metrics listening",
              {{"address", mo.listen_host}, {"port", static_cast<int>(metrics_server->port())}});
  }

  std::atomic<agentlink::Client*> link{nullptr};
  agent::Agent::Options agent_options{info->common_name, zone, "0.1.0"};
  agent_options.watch_every = std::chrono::milliseconds(500);
  agent::Agent worker(agent_options, deployer, [&](agentlink::Message m) {
    if (const auto* result = std::get_if<agentlink::TaskResult>(&m))
      deploy_outcomes.answered(result->task_id, result->ok);
    agentlink::Client* c = link.load();
    if (c == nullptr) return;
    // Not connected: the controller re-sends unfinished tasks and the agent answers from its
    // record, and the next Hello carries the observed state.
    if (auto st = c->send(m); !st.ok())
      log::debug("message not sent", {{"error", st.error().message}});
  });
  if (auto st = worker.start(); !st.ok()) return fail(st.error().message);

  agentlink::ClientOptions client_options;
  client_options.url = controller;
  client_options.ca_cert_pem = ca_pem;
  client_options.cert_pem = pair->cert_pem;
  client_options.key_pem = pair->key_pem;
  client_options.hello = [&] { return worker.hello(); };
  client_options.on_message = [&](const agentlink::Message& m) {
    if (const auto* task = std::get_if<agentlink::DeployTask>(&m))
      deploy_outcomes.received(task->task_id);
    worker.handle(m);
  };
  agentlink::Client client(std::move(client_options));
  link.store(&client);
  if (auto st = client.start(); !st.ok()) {
    link.store(nullptr);
    worker.stop();
    return fail(st.error().message);
  }
  log::info("berth-agent started", {{"agent", info->common_name},
                                    {"zone", zone},
                                    {"controller", controller},
                                    {"data_dir", data_dir}});

  int sig = 0;
  sigwait(&stop_signals, &sig);
  log::info("berth-agent stopping", {{"signal", sig}});
  // Finish the running task (its result goes out if the link is up), then disconnect. The
  // containers keep running; the stable ports close with this process and reopen at its next
  // start (see docs/agent.md).
  worker.stop();
  link.store(nullptr);
  client.stop();
  proxies.close_all();
  if (metrics_server) metrics_server->stop();
  log::info("berth-agent stopped");
  return 0;
}
