#include "kube_sim.h"

#include <openssl/rand.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <sstream>
#include <thread>

#include "common/base64.h"
#include "common/process.h"
#include "common/subprocess.h"
#include "crypto/certs.h"
#include "kube/config.h"
#include "kube/types.h"
#include "sim_agent.h"
#include "sim_registry.h"

namespace berth::bench::sim {
namespace {

using nlohmann::json;

constexpr const char* kControllerNamespace = "berth-system";

Status write_file(const fs::path& p, const std::string& text, fs::perms perms) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  if (!out) return make_error(ErrorCode::kInternal, "cannot write " + p.string());
  out << text;
  out.close();
  std::error_code ec;
  fs::permissions(p, perms, fs::perm_options::replace, ec);
  return Status::Ok();
}

std::string read_file_or_empty(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::uint16_t any_free_port() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

// A plain HTTP/1.1 GET on loopback with a 5 s deadline: status code and body (0 on error).
std::pair<unsigned, std::string> http_get(std::uint16_t port, const std::string& path) {
  try {
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    set_socket_deadline(s.native_handle(), 5s);
    http::request<http::empty_body> req(http::verb::get, path, 11);
    req.set(http::field::host, "127.0.0.1");
    http::write(s, req);
    boost::beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(s, buf, res);
    boost::system::error_code ec;
    s.shutdown(tcp::socket::shutdown_both, ec);
    return {res.result_int(), res.body()};
  } catch (const std::exception&) {
    return {0, {}};
  }
}

Status make_namespace(kube::Transport& t, const std::string& name) {
  auto created = kube::ResourceClient(t, {"", "v1", "namespaces", "Namespace", false})
                     .create({{"metadata", {{"name", name}}}});
  if (!created && created.error().code != ErrorCode::kConflict) return created.error();
  return Status::Ok();
}

// Runs fn(i) for i in [0, count) on `threads` threads; the first error wins.
Status parallel(int count, int threads, const std::function<Status(int)>& fn) {
  std::atomic<int> next{0};
  std::mutex mu;
  Status first = Status::Ok();
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < count; i = next++) {
        Status st = fn(i);
        if (!st.ok()) {
          std::lock_guard lock(mu);
          if (first.ok()) first = st;
          return;
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  return first;
}

}  // namespace

KubeSim::KubeSim(KubeSimOptions options) : options_(std::move(options)) {}

KubeSim::~KubeSim() { stop(); }

std::string KubeSim::app_name(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "app-%05d", i);
  return buf;
}

std::string KubeSim::image(const std::string& tag) const {
  return registry_host_ + "/sim/app:" + tag;
}

json KubeSim::app(const std::string& ns, const std::string& name, const std::string& tag) const {
  return {{"apiVersion", "berth.dev/v1alpha1"},
          {"kind", "AppService"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"spec", {{"imageRef", image(tag)}, {"containerPort", 8080}}}};
}

std::uint64_t KubeSim::deploys() const { return arrivals_ ? arrivals_->deploys.load() : 0; }
std::uint64_t KubeSim::results() const { return arrivals_ ? arrivals_->results.load() : 0; }

Status KubeSim::connect() {
  if (client_) return Status::Ok();
  fs::create_directories(options_.dir);
  // The harness's own client: the server's client certificate (user berth-test).
  kube::ClusterConfig config;
  config.server = options_.server;
  config.ca_pem = read_file_or_empty(options_.ca_file);
  config.client_cert_pem = read_file_or_empty(options_.client_cert_file);
  config.client_key_pem = Secret(read_file_or_empty(options_.client_key_file));
  config.origin = "test API server (bench client)";
  kube::TransportOptions to;
  to.qps = 1000;
  to.burst = 1000;
  to.user_agent = "berth-kube-sim";
  auto transport = kube::make_transport(std::move(config), to);
  if (!transport) return transport.error();
  client_ = std::move(transport).value();
  return Status::Ok();
}

Status KubeSim::start() {
  if (Status st = connect(); !st.ok()) return st;
  // The registry every image resolves at.
  auto ca = crypto::create_ca("berth kube-sim registry CA", 24 * 3600);
  if (!ca) return ca.error();
  crypto::CertRequest r;
  r.common_name = "kube-sim-registry";
  r.ip_addresses = {"127.0.0.1"};
  r.server = true;
  auto leaf = crypto::issue_certificate(*ca, r);
  if (!leaf) return leaf.error();
  registry_ca_file_ = (options_.dir / "registry-ca.crt").string();
  if (Status st = write_file(registry_ca_file_, ca->cert_pem,
                             fs::perms::owner_read | fs::perms::owner_write);
      !st.ok())
    return st;
  registry_ = std::make_unique<TlsServer>(
      *leaf, 4, [this](ssl::stream<tcp::socket>& s) { serve_registry(s, registry_heads_); });
  registry_host_ = "127.0.0.1:" + std::to_string(registry_->port());

  if (Status st = write_key_secret(); !st.ok()) return st;
  if (Status st = enrol_agents(); !st.ok()) return st;
  if (Status st = start_controller(); !st.ok()) return st;

  std::vector<berth::sim::AgentCredentials> creds;
  for (int i = 0; i < options_.agents; ++i) {
    const fs::path d = agent_dirs_[static_cast<std::size_t>(i)];
    auto pair = crypto::read_pem_files(d, "agent");
    if (!pair) return pair.error();
    creds.push_back({berth::sim::agent_name(i), read_file_or_empty(d / "ca.crt"), pair->cert_pem,
                     std::move(pair->key_pem)});
  }
  arrivals_ = std::make_unique<berth::sim::Arrivals>();
  berth::sim::SimAgentOptions agent_options;
  agent_options.fallback_digest = fixed_digest();
  auto agents = berth::sim::start_agents(creds, "wss://127.0.0.1:" + std::to_string(agent_port_),
                                         *arrivals_, agent_options);
  if (!agents) return agents.error();
  agents_ = std::move(agents).value();
  const bool connected = wait_for(
      [&] {
        for (const auto& a : agents_)
          if (!a->connected()) return false;
        return true;
      },
      options_.start_limit, 20ms);
  if (!connected)
    return make_error(ErrorCode::kDeadlineExceeded, "not every simulated agent connected");
  return Status::Ok();
}

Status KubeSim::write_key_secret() {
  // What the first leader would create: the agent-link CA and the master key. Written here so
  // the agents' credentials can be issued before the controller runs.
  auto ca = crypto::create_ca("berth agent CA (kube-sim)", 24 * 3600);
  if (!ca) return ca.error();
  const fs::path ca_dir = options_.dir / "agent-ca";
  if (Status st = crypto::write_pem_files(ca_dir / "pki", "ca", *ca); !st.ok()) return st;
  std::string key(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), 32) != 1)
    return make_error(ErrorCode::kInternal, "no randomness for the master key");
  json secret = {
      {"apiVersion", "v1"},
      {"kind", "Secret"},
      {"type", "Opaque"},
      {"metadata", {{"name", "berth-controller-keys"}, {"namespace", kControllerNamespace}}},
      {"data",
       {{"agent-ca.crt", base64::encode(ca->cert_pem)},
        {"agent-ca.key", base64::encode(ca->key_pem.reveal())},
        {"master-key", base64::encode(key)}}}};
  if (Status st = make_namespace(*client_, kControllerNamespace); !st.ok()) return st;
  auto created = kube::ResourceClient(*client_, kube::KubeSecret::kType).create(secret);
  if (!created) return created.error();
  return Status::Ok();
}

Status KubeSim::enrol_agents() {
  for (int i = 0; i < options_.agents; ++i) {
    const fs::path out = options_.dir / "agents" / berth::sim::agent_name(i);
    auto r = run_process({options_.controller.string(), "agent-credentials", "--data-dir",
                          (options_.dir / "agent-ca").string(), "--name", berth::sim::agent_name(i),
                          "--zone", "local", "--out", out.string()},
                         60s);
    if (!r) return r.error();
    if (r->exit_code != 0)
      return make_error(ErrorCode::kInternal, "agent-credentials failed: " + r->err);
    agent_dirs_.push_back(out.string());
  }
  return Status::Ok();
}

Status KubeSim::start_controller() {
  agent_port_ = any_free_port();
  const fs::path port_file = options_.dir / "health.port";
  std::vector<std::string> argv = {options_.controller.string(),
                                   "serve",
                                   "--kubernetes",
                                   "--kubeconfig",
                                   options_.kubeconfig,
                                   "--context",
                                   "berth-test",
                                   "--data-dir",
                                   (options_.dir / "controller").string(),
                                   "--agent-listen",
                                   "127.0.0.1:" + std::to_string(agent_port_),
                                   "--registry-ca",
                                   registry_host_ + "=" + registry_ca_file_,
                                   "--health-listen",
                                   "127.0.0.1:0",
                                   "--port-file",
                                   port_file.string(),
                                   "--log-level",
                                   options_.log_level,
                                   "--workers",
                                   std::to_string(options_.workers),
                                   "--kube-api-qps",
                                   std::to_string(options_.kube_qps),
                                   "--kube-api-burst",
                                   std::to_string(options_.kube_burst)};
  fs::create_directories(options_.dir / "controller");
  auto pid = spawn_child(SpawnOptions{argv, SIGTERM});
  if (!pid) return pid.error();
  pid_ = *pid;
  auto alive = [this] { return ::waitpid(pid_, nullptr, WNOHANG) == 0; };
  if (!wait_for([&] { return fs::exists(port_file) || !alive(); }, options_.start_limit, 20ms) ||
      !fs::exists(port_file))
    return make_error(ErrorCode::kUnavailable, "berth-controller wrote no port file");
  // The port file may be seen before its content is complete.
  if (!wait_for(
          [&] {
            const std::string text = read_file_or_empty(port_file);
            if (text.empty() || text.back() != '\n') return false;
            health_port_ = static_cast<std::uint16_t>(std::stoi(text));
            return true;
          },
          5s, 10ms)) {
    health_port_ = static_cast<std::uint16_t>(std::stoi(read_file_or_empty(port_file)));
  }
  if (!wait_for([&] { return http_get(health_port_, "/readyz").first == 200; },
                options_.start_limit, 50ms))
    return make_error(ErrorCode::kUnavailable, "berth-controller did not become ready");
  return Status::Ok();
}

void KubeSim::stop() {
  for (auto& a : agents_) a->stop();
  agents_.clear();
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
  }
  registry_.reset();
}

Status KubeSim::create_apps(const std::string& ns, int count, const std::string& tag, int threads) {
  if (Status st = make_namespace(*client_, ns); !st.ok()) return st;
  kube::ResourceClient apps(*client_, kube::AppService::kType);
  return parallel(count, threads, [&](int i) -> Status {
    auto created = apps.create(app(ns, app_name(i), tag));
    if (!created) return created.error();
    return Status::Ok();
  });
}

Status KubeSim::patch_apps(const std::string& ns, int count, const json& patch, int threads) {
  kube::ResourceClient apps(*client_, kube::AppService::kType);
  return parallel(count, threads, [&](int i) -> Status {
    auto patched = apps.merge_patch(ns, app_name(i), patch, kube::PatchOptions{"kube-sim"});
    if (!patched) return patched.error();
    return Status::Ok();
  });
}

std::string KubeSim::health_get(const std::string& path) const {
  return http_get(health_port_, path).second;
}

double KubeSim::metric(const std::string& name, const std::string& label) const {
  std::istringstream in(health_get("/metrics"));
  std::string line;
  double sum = 0;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;  // another metric with this prefix
    if (!label.empty() && line.find(label) == std::string::npos) continue;
    const auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    sum += std::strtod(line.c_str() + space + 1, nullptr);
  }
  return sum;
}

// --- AppWatch -----------------------------------------------------------------------------------

bool AppWatch::ready(const json& app, int revision) {
  const json status = app.value("status", json::object());
  const json meta = app.value("metadata", json::object());
  if (status.value("phase", "") != "Running") return false;
  if (status.value("observedGeneration", 0) != meta.value("generation", 0)) return false;
  if (status.value("currentRevision", 0) != revision) return false;
  if (status.value("endpoint", "").empty()) return false;
  for (const auto& c : status.value("conditions", json::array()))
    if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
  return false;
}

AppWatch::AppWatch(kube::Transport& transport, const std::string& ns)
    : client_(transport, kube::AppService::kType) {
  kube::InformerOptions io;
  io.namespace_ = ns;
  kube::InformerHandlers h;
  h.on_add = [this](const json& o) { seen(o); };
  h.on_update = [this](const json&, const json& o) { seen(o); };
  h.on_delete = [this](const json&) { ++events_; };
  informer_ = std::make_unique<kube::Informer>(client_, io, h);
  informer_->start();
  wait_for([&] { return informer_->has_synced(); }, 30s, 10ms);
}

AppWatch::~AppWatch() { informer_->stop(); }

void AppWatch::seen(const json& object) {
  ++events_;
  const std::string name = object["metadata"].value("name", "");
  const json status = object.value("status", json::object());
  const int revision = status.value("currentRevision", 0);
  {
    std::lock_guard lock(mu_);
    revision_ready_[name] = revision > 0 && ready(object, revision) ? revision : 0;
  }
  cv_.notify_all();
}

int AppWatch::ready_at(int revision) const {
  std::lock_guard lock(mu_);
  int n = 0;
  for (const auto& [name, r] : revision_ready_)
    if (r == revision) ++n;
  return n;
}

bool AppWatch::wait_ready(int count, int revision, std::chrono::milliseconds limit) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, limit, [&] {
    int n = 0;
    for (const auto& [name, r] : revision_ready_)
      if (r == revision) ++n;
    return n >= count;
  });
}

bool AppWatch::wait_events(std::uint64_t count, std::chrono::milliseconds limit) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, limit, [&] { return events_.load() >= count; });
}

// --- BareController -----------------------------------------------------------------------------

BareController::BareController(kube::Transport& transport, const std::string& ns, int workers)
    : client_(transport, kube::AppService::kType) {
  kube::InformerOptions io;
  io.namespace_ = ns;
  kube::InformerHandlers h;
  h.on_add = [this](const json& o) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(o["metadata"]);
    }
    cv_.notify_one();
  };
  informer_ = std::make_unique<kube::Informer>(client_, io, h);
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  informer_->start();
  wait_for([&] { return informer_->has_synced(); }, 30s, 10ms);
}

BareController::~BareController() {
  informer_->stop();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void BareController::work() {
  for (;;) {
    json meta;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      meta = std::move(queue_.back());
      queue_.pop_back();
    }
    const std::string now = "2026-01-01T00:00:00Z";
    json status = {{"phase", "Running"},
                   {"observedGeneration", meta.value("generation", 1)},
                   {"currentRevision", 1},
                   {"endpoint", "http://127.0.0.1:20000"},
                   {"conditions",
                    {{{"type", "Ready"},
                      {"status", "True"},
                      {"reason", "Running"},
                      {"message", "bare controller"},
                      {"lastTransitionTime", now},
                      {"observedGeneration", meta.value("generation", 1)}}}}};
    auto patched =
        client_.merge_patch(meta.value("namespace", ""), meta.value("name", ""),
                            {{"status", status}}, kube::PatchOptions{"bare", false, "status"});
    if (patched) ++writes_;
  }
}

bool counted_request(const json& r, const std::string& user, bool include_watches) {
  if (r.value("user", "") != user) return false;
  if (r.value("resource", "").rfind("/_test/", 0) == 0) return false;  // the bench's own
  return include_watches || r.value("verb", "") != "watch";
}

int count_requests(const json& log, const std::string& user, bool include_watches) {
  int n = 0;
  for (const auto& r : log) n += counted_request(r, user, include_watches) ? 1 : 0;
  return n;
}

}  // namespace berth::bench::sim
