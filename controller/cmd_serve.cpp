// `berth-controller serve`: standalone mode. Opens the SQLite state in the data directory,
// serves the REST API, the agent link (WebSocket over TLS 1.3 with client certificates) and
// runs the reconcile loop until SIGTERM or SIGINT; with --local-agent it also runs a berth-agent
// on this machine. run_serve() is the one place where the concrete adapters of standalone mode
// are wired together.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent_gateway.h"
#include "agentlink/server.h"
#include "api/server.h"
#include "command.h"
#include "common/clock.h"
#include "common/dir_lock.h"
#include "common/log.h"
#include "crypto/password.h"
#include "local_agent.h"
#include "pki.h"
#include "registry/digest_resolver.h"
#include "runtime/controller.h"
#include "runtime/reconciler.h"
#include "runtime/workqueue.h"
#include "serve_options.h"
#include "store/sqlite_store.h"

namespace berth::controller {
namespace {

int run_serve(const ServeOptions& o) {
  log::Level level;
  if (!log::parse_level(o.log_level, level)) {
    std::fprintf(stderr, "serve: --log-level must be debug, info, warn or error\n");
    return 2;
  }
  log::set_level(level);

  api::ApiOptions api_options;
  if (!split_listen(o.listen, api_options.listen_host, api_options.listen_port)) {
    std::fprintf(stderr, "serve: --listen must be HOST:PORT\n");
    return 2;
  }
  api_options.tls_cert_file = o.tls_cert;
  api_options.tls_key_file = o.tls_key;
  api_options.allow_insecure_http = o.insecure_http;
  api_options.default_zone = o.default_zone;
  api_options.max_connections = o.max_connections;
  api_options.auth.cache.ttl = std::chrono::seconds(std::max(0, o.auth_cache_ttl_seconds));
  api_options.new_id = [] { return crypto::random_uuid(); };

  // Block the stop signals before any thread starts, so every thread inherits the mask and
  // sigwait() below is the only place they arrive.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto opened = store::SqliteStore::open(o.data_dir);
  if (!opened) {
    log::error("cannot open the data directory",
               {{"data_dir", o.data_dir}, {"error", opened.error().message}});
    return 1;
  }
  std::unique_ptr<store::SqliteStore> store = std::move(opened).value();
  // One serve per data directory: a second one would run a second reconcile loop and a second
  // local agent against the same apps.
  auto dir_lock =
      DirLock::acquire(std::filesystem::path(o.data_dir) / "berth.lock", "berth-controller serve");
  if (!dir_lock) {
    log::error("cannot start: the data directory is in use",
               {{"data_dir", o.data_dir}, {"error", dir_lock.error().message}});
    std::fprintf(stderr, "serve: %s\n", dir_lock.error().message.c_str());
    return 1;
  }

  registry::RegistryOptions registry_options;
  registry::RegistryOptions check_options;
  if (!registry_options_from(o, registry_options, check_options)) return 2;
  registry::RegistryDigestResolver credential_check(std::move(check_options));
  api_options.credential_check = &credential_check;

  // The reconcile loop: work queue -> workers -> reconciler -> ports.
  runtime::SteadyClock clock;
  runtime::WorkQueue queue(
      clock, runtime::BackoffPolicy{std::chrono::milliseconds(5),
                                    std::chrono::seconds(o.backoff_cap_seconds), 0.1});
  registry::RegistryDigestResolver resolver(registry_options);
  AgentGateway gateway;
  runtime::ReconcilerOptions reconciler_options{o.history, system_now,
                                                [] { return crypto::random_uuid(); }, "127.0.0.1"};
  reconciler_options.steady_now = steady_now_ms;  // memory-only timers ignore wall-clock steps
  runtime::Reconciler reconciler(*store, gateway, resolver, queue, std::move(reconciler_options));
  runtime::ControllerOptions controller_options;
  controller_options.workers = o.workers;
  controller_options.resync_period = std::chrono::seconds(o.resync_seconds);
  core::StateStore& state = *store;
  controller_options.list_keys = [&state] {
    auto ids = state.list_service_ids();
    return ids.ok() ? std::move(ids).value() : std::vector<std::string>{};
  };
  runtime::Controller controller(
      queue, [&reconciler](const std::string& key) { return reconciler.reconcile(key); },
      controller_options);

  // The agent link.
  std::string agent_listen = o.agent_listen;
  if (agent_listen.empty() && o.local_agent) agent_listen = "127.0.0.1:0";
  std::unique_ptr<agentlink::Server> link;
  if (!agent_listen.empty()) {
    auto pki = ensure_pki(o.data_dir, o.agent_hosts);
    if (!pki.ok()) {
      log::error("cannot prepare the agent-link certificates", {{"error", pki.error().message}});
      return 1;
    }
    agentlink::ServerOptions link_options;
    link_options.listen = agent_listen;
    link_options.ca_cert_pem = pki->ca.cert_pem;
    link_options.server_cert_pem = pki->server.cert_pem;
    link_options.server_key_pem = pki->server.key_pem;
    link_options.renew_certificate = [ca = pki->ca, hosts = o.agent_hosts] {
      return issue_server_certificate(ca, hosts);
    };
    auto revocations = RevocationWatcher::open(o.data_dir);
    if (!revocations.ok()) {
      log::error("cannot read the agent revocation list", {{"error", revocations.error().message}});
      return 1;
    }
    link_options.refusal_reason =
        [watcher = std::shared_ptr<RevocationWatcher>(std::move(revocations).value())](
            const agentlink::AgentIdentity& id) {
          return watcher->reason(id.name, id.fingerprint);
        };
    route_link_events(link_options, reconciler, *store, system_now);
    link = std::make_unique<agentlink::Server>(std::move(link_options));
    if (auto st = link->start(); !st.ok()) {
      log::error("cannot start the agent endpoint",
                 {{"listen", agent_listen}, {"error", st.error().message}});
      return 1;
    }
    gateway.attach(link.get());
    log::info("agent endpoint listening", {{"listen", agent_listen}, {"port", link->port()}});

    if (o.local_agent) {
      const auto creds = std::filesystem::path(o.data_dir) / "local-agent" / "credentials";
      if (Status st =
              issue_agent_credentials(pki->ca, "local", o.default_zone, creds, 365LL * 24 * 3600);
          !st.ok()) {
        log::error("cannot issue the local agent's credentials", {{"error", st.error().message}});
        return 1;
      }
    }
  }

  // /readyz: ready while the work queue's workers run and the store takes writes; not ready
  // (503 with the reason) before they start, once shutdown begins, and while the last write
  // found the database unwritable (disk full, read-only) and a probe write still fails. The store
  // is open by construction: the API server starts after it. /healthz stays 200 as long as the
  // process serves. An idle controller writes nothing, so while the verdict stands /readyz itself
  // tries a write that changes nothing, at most every 2 s: readiness returns once space is freed.
  std::atomic<bool> shutting_down{false};
  std::atomic<std::int64_t> last_write_probe{0};
  store::SqliteStore& sqlite = *store;
  api_options.not_ready = [&controller, &sqlite, &shutting_down,
                           &last_write_probe]() -> std::optional<std::string> {
    if (shutting_down.load()) return std::string("the controller is shutting down");
    if (!controller.running()) return std::string("the work queue's workers are not running");
    if (sqlite.write_blocked()) {
      const std::int64_t now = steady_now_ms();
      std::int64_t last = last_write_probe.load();
      if (now - last >= 2000 && last_write_probe.compare_exchange_strong(last, now)) {
        (void)sqlite.probe_write();  // its outcome is what write_blocked() says next
      }
    }
    if (auto why = sqlite.write_blocked()) return "the store cannot be written: " + *why;
    return std::nullopt;
  };

  // Rollout progress is served from the reconciler's memory: no store read or write per report.
  api_options.progress = [&reconciler](const std::string& id) { return reconciler.progress(id); };

  if (Status st = reconciler.prime(); !st.ok()) {
    log::error("cannot load app services", {{"error", st.error().message}});
    return 1;
  }
  controller.start();

  auto on_change = [&queue](const std::string& service_id) { queue.add(service_id); };

  api::ApiServer server(std::move(api_options), *store, system_now, on_change);
  if (auto s = server.start(); !s) {
    log::error("cannot start the API server", {{"error", s.error().message}});
    controller.stop();
    if (link) link->stop();
    return 1;
  }
  if (!o.port_file.empty() && !write_port_file(o.port_file, server.port())) {
    log::error("cannot write the port file", {{"path", o.port_file}});
    server.stop();
    controller.stop();
    if (link) link->stop();
    return 1;
  }

  std::unique_ptr<LocalAgent> local;
  if (o.local_agent) {
    local = std::make_unique<LocalAgent>(local_agent_options(o, link->port()));
    if (Status st = local->start(); !st.ok()) {
      log::error("cannot start the local agent", {{"error", st.error().message}});
      server.stop();
      controller.stop();
      link->stop();
      return 1;
    }
  }
  log::info("controller ready", {{"data_dir", o.data_dir}, {"address", server.bound_address()}});

  int sig = 0;
  sigwait(&stop_signals, &sig);
  log::info("controller stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  shutting_down.store(true);
  server.stop();
  if (local) local->stop();
  if (link) link->stop();
  controller.stop();
  log::info("controller stopped");
  return 0;
}

const Registration kServe([](CLI::App& root, Runner& run) {
  auto* sub = root.add_subcommand("serve", "Run standalone mode: REST API + SQLite state");
  auto o = std::make_shared<ServeOptions>();
  sub->add_option("--data-dir", o->data_dir, "State directory (created 0700)")->required();
  sub->add_option("--listen", o->listen, "HOST:PORT for the REST API (port 0: any free port)")
      ->capture_default_str();
  sub->add_option("--tls-cert", o->tls_cert, "PEM certificate chain: serve HTTPS");
  sub->add_option("--tls-key", o->tls_key, "PEM private key for --tls-cert");
  sub->add_flag("--insecure-http", o->insecure_http,
                "Allow plain HTTP on a non-loopback listen address");
  sub->add_option("--default-zone", o->default_zone, "Zone of app services that name none")
      ->capture_default_str();
  sub->add_option("--log-level", o->log_level, "debug|info|warn|error")->capture_default_str();
  sub->add_option("--port-file", o->port_file, "Write the bound port to this file once listening");
  sub->add_option("--max-connections", o->max_connections, "Concurrent API connections")
      ->capture_default_str();
  sub->add_option("--auth-cache-ttl-seconds", o->auth_cache_ttl_seconds,
                  "how long a verified Basic password is reused (0: verify every request)")
      ->capture_default_str();
  sub->add_option("--agent-listen", o->agent_listen,
                  "HOST:PORT for agents (WebSocket over TLS 1.3, client certificates)");
  sub->add_option("--agent-host", o->agent_hosts,
                  "extra DNS name or IP for the agent endpoint's certificate (repeatable)");
  sub->add_flag("--local-agent", o->local_agent, "also run a berth-agent on this machine");
  sub->add_option("--registry-ca", o->registry_cas,
                  "HOST=FILE: trust the PEM CA in FILE for registry HOST (repeatable; handed to "
                  "the local agent)");
  sub->add_option("--workers", o->workers, "reconcile workers")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  sub->add_option("--resync-seconds", o->resync_seconds, "re-check every app service this often")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  sub->add_option("--backoff-cap-seconds", o->backoff_cap_seconds, "longest retry backoff")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  sub->add_option("--history", o->history, "successful revisions kept per app service")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  sub->add_option("--registry-token-realm", o->registry_token_realms,
                  "REGISTRY=REALM_HOST[:PORT]: let registry REGISTRY's password go to its token "
                  "realm on another host (repeatable; a registry's own host needs none)");
  sub->add_option("--registry-timeout-seconds", o->registry_timeout_seconds,
                  "registry request deadline")
      ->check(CLI::Range(1, 600))
      ->capture_default_str();
  sub->add_option("--credential-check-timeout", o->credential_check_timeout_seconds,
                  "seconds the API waits for the registry to check a new password; on timeout "
                  "the change is accepted")
      ->check(CLI::Range(1, 600))
      ->capture_default_str();
  // Kubernetes mode (cmd_serve_kube.cpp).
  sub->add_flag("--kubernetes", o->kubernetes,
                "Kubernetes mode: AppService objects are the desired state, status and "
                "ControllerRevisions the record (no REST API, nothing authoritative on disk)");
  sub->add_option("--kubeconfig", o->kubeconfig,
                  "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  sub->add_option("--context", o->context, "kubeconfig context (default: the current one)");
  sub->add_option("--namespace", o->namespaces,
                  "watch AppServices in this namespace (repeatable; default: all namespaces)");
  sub->add_flag("--leader-elect", o->leader_elect,
                "run for the Lease; only the leader reconciles (15 s lease, 10 s renew deadline, "
                "2 s retry)");
  sub->add_option("--leader-election-namespace", o->leader_election_namespace,
                  "namespace of the Lease (default: the controller namespace)");
  sub->add_option("--leader-election-id", o->leader_election_id, "name of the Lease")
      ->capture_default_str();
  sub->add_option("--identity", o->identity,
                  "this replica's name in the Lease and in events (default: $POD_NAME or the "
                  "host name, with a random suffix)");
  sub->add_option("--controller-namespace", o->controller_namespace,
                  "namespace of the key Secret berth-controller-keys (default: $POD_NAMESPACE, "
                  "else berth-system)");
  sub->add_option("--master-key-file", o->master_key_file,
                  "32-byte master key file; without it the key lives in the key Secret");
  sub->add_option("--health-listen", o->health_listen,
                  "HOST:PORT for /healthz and /readyz in Kubernetes mode (port 0: any free port; "
                  "--port-file receives it)");
  sub->add_option("--deletion-timeout-seconds", o->deletion_timeout_seconds,
                  "how long a deleted AppService waits for its agent to remove the app before "
                  "berth releases it anyway (with a Warning event)")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  sub->add_option("--kube-api-qps", o->kube_qps, "requests per second to the API server")
      ->capture_default_str();
  sub->add_option("--kube-api-burst", o->kube_burst, "burst of requests to the API server")
      ->capture_default_str();
  sub->callback(
      [o, &run] { run = [o] { return o->kubernetes ? run_serve_kube(*o) : run_serve(*o); }; });
});

}  // namespace
}  // namespace berth::controller
