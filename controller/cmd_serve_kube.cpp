// `berth-controller serve --kubernetes`: Kubernetes mode. AppService objects are the desired
// state; berth keeps its record in their status, in ControllerRevisions and in Secrets it owns
// (src/kube/state_store.h), and runs the same reconciler as standalone mode behind that store.
// run_serve_kube() is the one place where the adapters of Kubernetes mode are wired together:
//
//   informers (AppService, Secret) -> KubeStateStore + work queue
//   work queue -> AppIntake (spec -> core change) -> runtime::Reconciler -> agents
//   LeaderElector: only the leader loads the keys, listens for agents and reconciles
//   ApiServer (health only): /healthz, /readyz
//
// Losing the lease ends the process at once (exit 1), as controller-runtime's manager does: no
// reconcile, dispatch or status write can happen after another replica may have taken over,
// and the Deployment starts a fresh standby.
#include <openssl/rand.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent_gateway.h"
#include "agentlink/server.h"
#include "api/server.h"
#include "common/base64.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "crypto/password.h"
#include "crypto/sealer.h"
#include "kube/app_intake.h"
#include "kube/config.h"
#include "kube/event_recorder.h"
#include "kube/informer.h"
#include "kube/leader_election.h"
#include "kube/progress_writer.h"
#include "kube/state_store.h"
#include "kube/transport.h"
#include "kube_revocations.h"
#include "local_agent.h"
#include "pki.h"
#include "registry/digest_resolver.h"
#include "runtime/controller.h"
#include "runtime/reconciler.h"
#include "runtime/workqueue.h"
#include "serve_options.h"

namespace berth::controller {
namespace {

using nlohmann::json;

constexpr const char* kKeySecret = "berth-controller-keys";
constexpr const char* kMasterKeyField = "master-key";
constexpr const char* kCaCertField = "agent-ca.crt";
constexpr const char* kCaKeyField = "agent-ca.key";

struct Keys {
  std::optional<crypto::Keyring> keyring;
  crypto::PemPair ca;
};

std::string controller_namespace(const ServeOptions& o) {
  if (!o.controller_namespace.empty()) return o.controller_namespace;
  if (const char* ns = std::getenv("POD_NAMESPACE"); ns != nullptr && *ns != '\0') return ns;
  return "berth-system";
}

// The key Secret: read it, or create it when it is missing (one replica's create wins; the
// others read what it wrote). It holds the master key (unless --master-key-file) and the
// agent-link CA, so a replica that takes over needs nothing from another's disk.
Result<Keys> ensure_keys(kube::Transport& transport, const std::string& ns,
                         const std::string& master_key_file) {
  kube::Typed<kube::KubeSecret> secrets(transport);
  auto secret = secrets.get(ns, kKeySecret);
  if (!secret && secret.error().code == ErrorCode::kNotFound) {
    auto ca = create_agent_ca();
    if (!ca) return ca.error();
    json data = {{kCaCertField, base64::encode(ca->cert_pem)},
                 {kCaKeyField, base64::encode(ca->key_pem.reveal())}};
    if (master_key_file.empty()) {
      std::string key(32, '\0');
      if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), 32) != 1)
        return make_error(ErrorCode::kInternal, "no randomness for the master key");
      data[kMasterKeyField] = base64::encode(key);
      wipe_string(key);
    }
    json object = {{"apiVersion", "v1"},
                   {"kind", "Secret"},
                   {"type", "Opaque"},
                   {"metadata",
                    {{"name", kKeySecret},
                     {"namespace", ns},
                     {"labels", {{"app.kubernetes.io/managed-by", "berth"}}}}},
                   {"data", std::move(data)}};
    auto created = secrets.raw().create(object);
    if (created) {
      log::info("created the key Secret", {{"namespace", ns}, {"name", kKeySecret}});
      secret = kube::KubeSecret::from_json(*created);
    } else if (created.error().code == ErrorCode::kConflict) {
      secret = secrets.get(ns, kKeySecret);
    } else {
      return created.error();
    }
  }
  if (!secret) return secret.error();
  auto field = [&](const char* name) -> const Secret* {
    auto it = secret->data.find(name);
    return it == secret->data.end() ? nullptr : &it->second;
  };
  Keys keys;
  const Secret* cert = field(kCaCertField);
  const Secret* key = field(kCaKeyField);
  if (cert == nullptr || key == nullptr)
    return make_error(ErrorCode::kFailedPrecondition,
                      "Secret " + ns + "/" + kKeySecret + " has no agent-ca.crt or agent-ca.key");
  keys.ca.cert_pem = std::string(cert->reveal());
  keys.ca.key_pem = *key;
  if (!master_key_file.empty()) {
    auto ring = crypto::Keyring::load(master_key_file);
    if (!ring) return ring.error();
    keys.keyring.emplace(std::move(ring).value());
  } else {
    const Secret* master = field(kMasterKeyField);
    if (master == nullptr)
      return make_error(ErrorCode::kFailedPrecondition,
                        "Secret " + ns + "/" + kKeySecret +
                            " has no master-key and --master-key-file was not given");
    auto ring = crypto::Keyring::from_key(*master);
    if (!ring) return ring.error();
    keys.keyring.emplace(std::move(ring).value());
  }
  return keys;
}

// What changed in an AppService that the controller must look at again: not its status (berth
// wrote that itself).
bool worth_a_look(const json& before, const json& after) {
  const json& a = before.value("metadata", json::object());
  const json& b = after.value("metadata", json::object());
  for (const char* k : {"generation", "deletionTimestamp", "finalizers", "annotations", "uid"}) {
    if (a.value(k, json()) != b.value(k, json())) return true;
  }
  return false;
}

}  // namespace

int run_serve_kube(const ServeOptions& o) {
  log::Level level;
  if (!log::parse_level(o.log_level, level)) {
    std::fprintf(stderr, "serve: --log-level must be debug, info, warn or error\n");
    return 2;
  }
  log::set_level(level);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // --- the API server connection ---
  kube::LoadOptions load;
  load.kubeconfig = o.kubeconfig;
  load.context = o.context;
  auto cluster = kube::load_config(load);
  if (!cluster) {
    std::fprintf(stderr, "serve: %s\n", cluster.error().message.c_str());
    return 2;
  }
  const std::string origin = cluster->origin;
  kube::TransportOptions transport_options;
  transport_options.qps = o.kube_qps;
  transport_options.burst = o.kube_burst;
  auto made = kube::make_transport(std::move(cluster).value(), transport_options);
  if (!made) {
    std::fprintf(stderr, "serve: %s\n", made.error().message.c_str());
    return 2;
  }
  std::unique_ptr<kube::Transport> transport = std::move(made).value();

  registry::RegistryOptions registry_options;
  registry::RegistryOptions check_options;
  if (!registry_options_from(o, registry_options, check_options)) return 2;
  registry::RegistryDigestResolver credential_check(std::move(check_options));
  registry::RegistryDigestResolver resolver(registry_options);

  const std::string identity = o.identity.empty() ? kube::default_identity() : o.identity;
  const std::string keys_namespace = controller_namespace(o);

  // --- events and state ---
  kube::EventRecorderOptions recorder_options;
  recorder_options.reporting_instance = identity;
  kube::EventRecorder recorder(*transport, recorder_options);
  kube::KubeStateStoreOptions store_options;
  store_options.default_zone = o.default_zone;
  store_options.now = system_now;
  store_options.on_event = [&recorder](const kube::StoreEvent& e) {
    recorder.record(e.regarding, e.warning ? kube::EventType::kWarning : kube::EventType::kNormal,
                    e.reason, e.action, e.note);
  };
  kube::KubeStateStore store(*transport, store_options);

  runtime::SteadyClock clock;
  runtime::WorkQueue queue(
      clock, runtime::BackoffPolicy{std::chrono::milliseconds(5),
                                    std::chrono::seconds(o.backoff_cap_seconds), 0.1});
  AgentGateway gateway;
  runtime::ReconcilerOptions reconciler_options{o.history, system_now,
                                                [] { return crypto::random_uuid(); }, "127.0.0.1"};
  reconciler_options.steady_now = steady_now_ms;  // memory-only timers ignore wall-clock steps
  runtime::Reconciler reconciler(store, gateway, resolver, queue, std::move(reconciler_options));
  // Rollout progress goes to status.progress at most every 3 s per app (each write is an API
  // server request; the reports themselves stay in memory) and is removed when the rollout
  // ends, by one worker so the agent link's thread never waits on the API server.
  kube::ProgressWriterOptions progress_options;
  progress_options.now = system_now;
  kube::ProgressWriter progress(
      [&store](const std::string& id, const std::optional<core::RolloutProgress>& p) {
        return store.write_progress(id, p);
      },
      progress_options);
  reconciler.set_progress_listener(
      [&progress](const std::string& id, const std::optional<core::RolloutProgress>& p) {
        progress.report(id, p);
      });

  // --- informers: AppServices (the desired state) and Secrets (only as a trigger) ---
  const std::vector<std::string> namespaces =
      o.namespaces.empty() ? std::vector<std::string>{""} : o.namespaces;
  kube::ResourceClient app_client(*transport, kube::AppService::kType);
  kube::ResourceClient secret_client(*transport, kube::KubeSecret::kType);
  std::vector<std::unique_ptr<kube::Informer>> app_informers;
  std::vector<std::unique_ptr<kube::Informer>> secret_informers;
  auto on_app = [&store, &queue](const json& object) {
    auto app = kube::AppService::from_json(object);
    if (!app) {
      log::warn("an AppService could not be read", {{"error", app.error().message}});
      return;
    }
    store.observe(*app);
    queue.add(app->metadata.uid);
  };
  kube::InformerHandlers app_handlers;
  app_handlers.on_add = on_app;
  app_handlers.on_update = [on_app](const json& before, const json& after) {
    if (worth_a_look(before, after)) on_app(after);
  };
  app_handlers.on_delete = [&store, &queue](const json& object) {
    auto app = kube::AppService::from_json(object);
    if (!app) return;
    store.observe_deleted(*app);
    queue.add(app->metadata.uid);
  };
  auto on_secret = [&store, &queue](const json& object) {
    const json& m = object.value("metadata", json::object());
    for (const auto& id :
         store.apps_referencing_secret(m.value("namespace", ""), m.value("name", "")))
      queue.add(id);
  };
  kube::InformerHandlers secret_handlers;
  secret_handlers.on_add = on_secret;
  secret_handlers.on_update = [on_secret](const json&, const json& after) { on_secret(after); };
  secret_handlers.on_delete = on_secret;
  for (const auto& ns : namespaces) {
    kube::InformerOptions io;
    io.namespace_ = ns;
    app_informers.push_back(std::make_unique<kube::Informer>(app_client, io, app_handlers));
    // Only Secrets that opted in as registry passwords: no other Secret's data is cached, and
    // removing the label reaches on_secret as a delete (the object leaves the selector).
    io.label_selector = kube::kRegistryCredentialSelector;
    secret_informers.push_back(
        std::make_unique<kube::Informer>(secret_client, io, secret_handlers));
  }
  auto secret_version = [&secret_informers, &o](const std::string& ns, const std::string& name) {
    for (std::size_t i = 0; i < secret_informers.size(); ++i) {
      if (!o.namespaces.empty() && o.namespaces[i] != ns) continue;
      if (auto s = secret_informers[i]->get(ns, name))
        return (*s)["metadata"].value("resourceVersion", std::string());
    }
    return std::string();
  };

  kube::IntakeOptions intake_options;
  intake_options.now = system_now;
  intake_options.new_id = [] { return crypto::random_uuid(); };
  intake_options.deletion_timeout = std::chrono::seconds(o.deletion_timeout_seconds);
  intake_options.secret_version = secret_version;
  kube::AppIntake intake(store, *transport, credential_check, intake_options);

  runtime::ControllerOptions controller_options;
  controller_options.workers = o.workers;
  controller_options.resync_period = std::chrono::seconds(o.resync_seconds);
  controller_options.list_keys = [&store] {
    auto ids = store.list_service_ids();
    return ids.ok() ? std::move(ids).value() : std::vector<std::string>{};
  };
  runtime::Controller controller(
      queue,
      [&intake, &reconciler, &store](const std::string& key) {
        // Every line of this reconcile names the object as a Kubernetes user knows it.
        const auto [ns, name] = store.name_of(key);
        log::ScopedFields fields({{"namespace", ns}, {"name", name}});
        auto taken = intake.run(key);
        if (!taken) {
          // Shown where the user looks (a Warning event, rate limited per object) and logged;
          // the work queue retries with backoff.
          log::warn("reading the AppService's change failed; retrying",
                    {{"app", key}, {"error", taken.error().message}});
          store.emit(key, true, "ReconcileError", taken.error().message);
          return runtime::ReconcileOutcome::retry(taken.error().message);
        }
        if (*taken == kube::IntakeResult::kDone) return runtime::ReconcileOutcome::done();
        return reconciler.reconcile(key);
      },
      controller_options);

  // --- health ---
  std::atomic<bool> leading{false};
  // 1 while this replica leads (or runs alone without --leader-elect), 0 while it stands by;
  // served with every other metric on the health port's /metrics.
  metrics::Gauge& leader_gauge =
      metrics::process_registry()
          .gauge("berth_leader", "1 while this replica is the leader (Kubernetes mode), else 0")
          .get();
  leader_gauge.set(0);
  auto not_ready = [&app_informers, &secret_informers]() -> std::optional<std::string> {
    for (const auto& i : app_informers)
      if (!i->has_synced()) return std::string("the AppService cache has not synced yet");
    for (const auto& i : secret_informers)
      if (!i->has_synced()) return std::string("the Secret cache has not synced yet");
    return std::nullopt;
  };
  std::unique_ptr<api::ApiServer> health;
  if (!o.health_listen.empty()) {
    api::ApiOptions health_options;
    if (!split_listen(o.health_listen, health_options.listen_host, health_options.listen_port)) {
      std::fprintf(stderr, "serve: --health-listen must be HOST:PORT\n");
      return 2;
    }
    health_options.allow_insecure_http = true;  // probes speak plain HTTP; nothing secret here
    health_options.health_only = true;
    health_options.not_ready = not_ready;
    health_options.threads = 1;
    health_options.new_id = [] { return crypto::random_uuid(); };
    health = std::make_unique<api::ApiServer>(std::move(health_options), store, system_now,
                                              [](const std::string&) {});
    if (Status st = health->start(); !st.ok()) {
      log::error("cannot start the health endpoint",
                 {{"listen", o.health_listen}, {"error", st.error().message}});
      return 1;
    }
    if (!o.port_file.empty() && !write_port_file(o.port_file, health->port())) {
      log::error("cannot write the port file", {{"path", o.port_file}});
      return 1;
    }
    log::info("health endpoint listening", {{"address", health->bound_address()}});
  }

  for (auto& i : app_informers) i->start();
  for (auto& i : secret_informers) i->start();

  // --- what only the leader runs ---
  std::mutex lead_mu;
  std::unique_ptr<agentlink::Server> link;
  std::unique_ptr<LocalAgent> local;
  std::atomic<bool> shutting_down{false};
  std::atomic<int> lead_failure{0};
  auto start_leading = [&]() -> Status {
    std::lock_guard lock(lead_mu);
    log::info("leading: loading keys and starting work", {{"identity", identity}});
    auto keys = ensure_keys(*transport, keys_namespace, o.master_key_file);
    if (!keys) return keys.error();
    store.set_keyring(std::move(*keys->keyring));
    store.reset_loaded();
    if (Status st = store.preload(namespaces); !st.ok()) return st;
    std::string agent_listen = o.agent_listen;
    if (agent_listen.empty() && o.local_agent) agent_listen = "127.0.0.1:0";
    if (!agent_listen.empty()) {
      auto server_cert = issue_server_certificate(keys->ca, o.agent_hosts);
      if (!server_cert) return server_cert.error();
      agentlink::ServerOptions link_options;
      link_options.listen = agent_listen;
      link_options.ca_cert_pem = keys->ca.cert_pem;
      link_options.server_cert_pem = server_cert->cert_pem;
      link_options.server_key_pem = server_cert->key_pem;
      link_options.renew_certificate = [ca = keys->ca, hosts = o.agent_hosts] {
        return issue_server_certificate(ca, hosts);
      };
      // Revoked agents: the ConfigMap berth-revoked-agents beside the key Secret.
      auto revocations = KubeRevocations::start(*transport, keys_namespace);
      if (!revocations) return revocations.error();
      link_options.refusal_reason =
          [list = std::shared_ptr<KubeRevocations>(std::move(revocations).value())](
              const agentlink::AgentIdentity& id) { return list->reason(id.name, id.fingerprint); };
      route_link_events(link_options, reconciler, store, system_now);
      link = std::make_unique<agentlink::Server>(std::move(link_options));
      if (Status st = link->start(); !st.ok()) return st;
      gateway.attach(link.get());
      log::info("agent endpoint listening", {{"listen", agent_listen}, {"port", link->port()}});
      if (o.local_agent) {
        const auto dir = std::filesystem::path(o.data_dir) / "local-agent";
        if (Status st = issue_agent_credentials(keys->ca, "local", o.default_zone,
                                                dir / "credentials", 365LL * 24 * 3600);
            !st.ok())
          return st;
        local = std::make_unique<LocalAgent>(local_agent_options(o, link->port()));
        if (Status st = local->start(); !st.ok()) return st;
      }
    }
    if (Status st = reconciler.prime(); !st.ok()) return st;
    progress.start();
    controller.start();
    leading = true;
    leader_gauge.set(1);
    log::info("leading: reconciling", {{"identity", identity}});
    return Status::Ok();
  };

  std::unique_ptr<kube::LeaderElector> elector;
  if (o.leader_elect) {
    kube::LeaderElectionOptions eo;
    eo.namespace_ =
        o.leader_election_namespace.empty() ? keys_namespace : o.leader_election_namespace;
    eo.name = o.leader_election_id;
    eo.identity = identity;
    kube::LeaderCallbacks callbacks;
    callbacks.on_started_leading = [&] {
      if (Status st = start_leading(); !st.ok()) {
        log::error("cannot start leading; exiting so a fresh replica can try",
                   {{"error", st.error().message}});
        std::fflush(stderr);
        std::_Exit(1);
      }
    };
    callbacks.on_stopped_leading = [&] {
      if (shutting_down) return;
      // Another replica may lead already: stop every kind of work now, without draining.
      leader_gauge.set(0);
      log::error("leader lease lost; exiting", {{"identity", identity}});
      std::fflush(stderr);
      std::_Exit(1);
    };
    callbacks.on_new_leader = [&identity](const std::string& holder) {
      if (!holder.empty() && holder != identity)
        log::info("another replica leads", {{"leader", holder}});
    };
    auto created = kube::LeaderElector::create(*transport, eo, callbacks);
    if (!created) {
      std::fprintf(stderr, "serve: %s\n", created.error().message.c_str());
      return 2;
    }
    elector = std::move(created).value();
    elector->start();
  } else if (Status st = start_leading(); !st.ok()) {
    log::error("cannot start", {{"error", st.error().message}});
    return 1;
  }
  (void)lead_failure;
  log::info("controller ready", {{"mode", "kubernetes"},
                                 {"config", origin},
                                 {"identity", identity},
                                 {"leader_election", o.leader_elect}});

  int sig = 0;
  sigwait(&stop_signals, &sig);
  shutting_down = true;
  log::info("controller stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  if (leading) controller.stop();
  if (local) local->stop();
  if (link) link->stop();
  progress.stop();
  // Released last: nothing of this replica runs any more when the next one takes over.
  if (elector) elector->stop();
  for (auto& i : app_informers) i->stop();
  for (auto& i : secret_informers) i->stop();
  if (health) health->stop();
  recorder.shutdown();
  log::info("controller stopped");
  return 0;
}

}  // namespace berth::controller
