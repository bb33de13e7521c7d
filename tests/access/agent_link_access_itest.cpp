// Who may connect to the agent link of a real berth-controller process, the same table in both
// modes (standalone serve, and serve --kubernetes against the test API server): plaintext
// (ws://, an HTTP upgrade and raw bytes over TCP), a TLS 1.2 client and a client without a
// certificate (openssl s_client, a TLS client berth did not write), a certificate from another
// CA, an expired one, an agent claiming another agent's name, a revoked agent (by name, while
// connected, and by fingerprint, through `berth-controller revoke-agent` in each mode). Each is
// refused with the reason docs/agent-link.md gives, seen where it says (the agent's log, the
// controller's log), and a valid agent connects afterwards. Agent credentials come from the
// controller's own CA: `berth-controller agent-credentials`, and crypto/certs.h (what
// controller/pki issues with) for the odd ones.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/asio.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agentlink/client.h"
#include "crypto/certs.h"
#include "kube/kube_itest.h"
#include "kube/types.h"
#include "support/link_certs.h"
#include "support/log_capture.h"
#include "support/skip.h"
#include "support/testenv.h"
#include "support/wait.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using berth::Secret;
using berth::testing::wait_until;

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr const char* kControllerNamespace = "berth-system";

std::string link_slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int link_count(const std::string& text, const std::string& a, const std::string& b = "") {
  int n = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    if (line.find(a) != std::string_view::npos && line.find(b) != std::string_view::npos) ++n;
    start = end + 1;
  }
  return n;
}

std::uint16_t link_free_port() {
  net::io_context ioc;
  tcp::acceptor a(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

// berth-controller with stdout+stderr in `log`; SIGTERM, then SIGKILL, and reaped on destruction.
struct LinkController {
  pid_t pid = -1;
  fs::path log;
  LinkController(std::vector<std::string> args, fs::path log_path) : log(std::move(log_path)) {
    const std::string exe = berth::testenv::berth_binary("berth-controller");
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_CREAT | O_WRONLY | O_APPEND, 0600);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> argv{const_cast<char*>(exe.c_str())};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      ::_exit(127);
    }
  }
  LinkController(const LinkController&) = delete;
  LinkController& operator=(const LinkController&) = delete;
  ~LinkController() {
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    if (!wait_until([&] { return ::waitpid(pid, nullptr, WNOHANG) == pid; }, 10s)) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  bool running() const { return ::waitpid(pid, nullptr, WNOHANG) == 0; }
  std::string output() const { return link_slurp(log); }
};

int link_cli(const std::vector<std::string>& args, std::string* output) {
  std::vector<std::string> argv{berth::testenv::berth_binary("berth-controller")};
  argv.insert(argv.end(), args.begin(), args.end());
  return berth::testenv::run_command(argv, output, {}, 60);
}

struct LinkCredentials {
  std::string cert_pem;
  Secret key_pem;
};

// One controller under test, whatever its mode.
struct LinkTarget {
  std::string mode;
  fs::path dir;
  std::uint16_t port = 0;
  std::unique_ptr<LinkController> controller;
  fs::path issuer;            // a data dir whose pki/ holds the controller's CA (agent-credentials)
  berth::crypto::PemPair ca;  // the same CA, for the odd certificates
  std::vector<std::string> revoke_args;                    // revoke-agent's arguments after NAME
  std::function<void(const std::string&)> append_to_list;  // a line, as an operator's editor would

  LinkTarget() = default;
  LinkTarget(const LinkTarget&) = delete;
  LinkTarget& operator=(const LinkTarget&) = delete;
  ~LinkTarget() {
    if (dir.empty()) return;
    controller.reset();  // stopped before its files go
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  std::string log() const { return controller->output(); }
  int count(const std::string& a, const std::string& b = "") const {
    return link_count(log(), a, b);
  }
  LinkCredentials credentials(const std::string& name) {
    const fs::path out = dir / ("creds-" + name);
    std::string output;
    const int code = link_cli({"agent-credentials", "--data-dir", issuer.string(), "--name", name,
                               "--zone", "eu-1", "--out", out.string()},
                              &output);
    INFO(output);
    REQUIRE(code == 0);
    return {link_slurp(out / "agent.crt"), Secret(link_slurp(out / "agent.key"))};
  }
  void revoke(const std::string& name, const std::string& fingerprint = "") {
    std::vector<std::string> args{"revoke-agent", name};
    args.insert(args.end(), revoke_args.begin(), revoke_args.end());
    if (!fingerprint.empty()) args.insert(args.end(), {"--fingerprint", fingerprint});
    std::string output;
    const int code = link_cli(args, &output);
    INFO(output);
    REQUIRE(code == 0);
  }
};

void link_wait_listening(LinkTarget& t) {
  const bool up = wait_until(
      [&] { return t.count("agent endpoint listening") > 0 || !t.controller->running(); }, 30s);
  INFO(t.log());
  REQUIRE(up);
  REQUIRE(t.controller->running());
}

void start_standalone(LinkTarget& t) {
  t.mode = "standalone";
  t.dir = berth::testenv::make_temp_dir("linkaccess");
  t.issuer = t.dir / "data";  // standalone: the controller's own data dir
  t.port = link_free_port();
  t.revoke_args = {"--data-dir", t.issuer.string()};
  t.append_to_list = [file = t.issuer / "pki" / "revoked-agents"](const std::string& line) {
    std::ofstream(file, std::ios::app) << line;
  };
  // The first agent-credentials creates the CA that serve then uses.
  t.credentials("vm-good");
  t.controller = std::make_unique<LinkController>(
      std::vector<std::string>{"serve", "--data-dir", t.issuer.string(), "--listen", "127.0.0.1:0",
                               "--agent-listen", "127.0.0.1:" + std::to_string(t.port)},
      t.dir / "controller.log");
  link_wait_listening(t);
  auto ca = berth::crypto::read_pem_files(t.issuer / "pki", "ca");
  REQUIRE(ca.ok());
  t.ca = std::move(ca).value();
}

// manifests/rbac.yaml applied as kustomize would (namespaced objects in berth-system), and a
// kubeconfig for the controller's service account: the controller runs with exactly the
// permissions it ships with (the ConfigMap watch included). Returns that kubeconfig's path.
std::string link_install_rbac(berth::testenv::KubeApiServer& server,
                              berth::kube::Transport& transport, const fs::path& dir) {
  using berth::kube::ResourceType;
  static const std::map<std::string, ResourceType> types = {
      {"ClusterRole", {"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false}},
      {"ClusterRoleBinding",
       {"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false}},
      {"Role", {"rbac.authorization.k8s.io", "v1", "roles", "Role", true}},
      {"RoleBinding", {"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true}},
  };
  for (auto object :
       berth::kube::itest::load_manifests(berth::testenv::source_dir() + "/manifests/rbac.yaml")) {
    const ResourceType& type = types.at(object["kind"].get<std::string>());
    if (type.namespaced) object["metadata"]["namespace"] = kControllerNamespace;
    auto created = berth::kube::ResourceClient(transport, type).create(object);
    INFO(object.dump());
    REQUIRE(created.ok());
  }
  const std::string token = "link-access-sa-token";
  server.set_token("system:serviceaccount:berth-system:berth-controller", token);
  std::string config = link_slurp(server.kubeconfig_file());
  const std::string admin = server.admin_token();
  const auto at = config.find(admin);
  REQUIRE(at != std::string::npos);
  config.replace(at, admin.size(), token);
  const fs::path path = dir / "controller.kubeconfig";
  {
    std::ofstream out(path);
    out << config;
  }
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
  return path.string();
}

// Kubernetes mode: the leader keeps the CA in the key Secret and the revocation list in the
// ConfigMap berth-revoked-agents (controller/kube_revocations.h).
void start_kube(LinkTarget& t, berth::testenv::KubeApiServer& server,
                berth::kube::Transport& transport) {
  t.mode = "kubernetes";
  t.dir = berth::testenv::make_temp_dir("linkaccess-kube");
  t.port = link_free_port();
  berth::kube::itest::make_namespace(transport, kControllerNamespace);
  const std::string controller_kubeconfig = link_install_rbac(server, transport, t.dir);
  t.revoke_args = {"--kube", "--kubeconfig", server.kubeconfig_file(), "--namespace",
                   kControllerNamespace};
  t.append_to_list = [&transport](const std::string& line) {
    berth::kube::ResourceClient client(transport, {"", "v1", "configmaps", "ConfigMap", true});
    auto cm = client.get(kControllerNamespace, "berth-revoked-agents");
    REQUIRE(cm.ok());
    (*cm)["data"]["revoked-agents"] = (*cm)["data"]["revoked-agents"].get<std::string>() + line;
    REQUIRE(client.update(*cm).ok());
  };
  t.controller = std::make_unique<LinkController>(
      std::vector<std::string>{"serve", "--kubernetes", "--kubeconfig", controller_kubeconfig,
                               "--data-dir", (t.dir / "scratch").string(), "--agent-listen",
                               "127.0.0.1:" + std::to_string(t.port), "--controller-namespace",
                               kControllerNamespace},
      t.dir / "controller.log");
  link_wait_listening(t);
  auto keys = berth::kube::Typed<berth::kube::KubeSecret>(transport).get(kControllerNamespace,
                                                                         "berth-controller-keys");
  REQUIRE(keys.ok());
  t.ca.cert_pem = std::string(keys->data.at("agent-ca.crt").reveal());
  t.ca.key_pem = keys->data.at("agent-ca.key");
  t.issuer = t.dir / "issuer";
  REQUIRE(berth::crypto::write_pem_files(t.issuer / "pki", "ca", t.ca).ok());
}

berth::agentlink::ClientOptions link_agent(const LinkTarget& t, const LinkCredentials& creds,
                                           const std::string& hello_name) {
  berth::agentlink::ClientOptions o;
  o.url = "wss://127.0.0.1:" + std::to_string(t.port);
  o.ca_cert_pem = t.ca.cert_pem;
  o.cert_pem = creds.cert_pem;
  o.key_pem = creds.key_pem;
  o.backoff.initial = 100ms;
  o.backoff.cap = 500ms;
  o.connect_timeout = 5s;
  o.hello = [hello_name] { return berth::agentlink::Hello{hello_name, "eu-1", "test", {}}; };
  return o;
}

LinkCredentials link_pair(const berth::crypto::PemPair& p) { return {p.cert_pem, p.key_pem}; }

// Writes `bytes` over plain TCP and reads until the controller closes: what it answered.
// `closed` is false when the read ran into the 15 s deadline instead.
std::string link_plaintext(std::uint16_t port, const std::string& bytes, bool* closed) {
  net::io_context ioc;
  tcp::socket sock(ioc);
  sock.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  net::write(sock, net::buffer(bytes));
  std::string received;
  std::array<char, 4096> buf{};
  boost::system::error_code ec;
  *closed = false;
  std::function<void()> read_more = [&] {
    sock.async_read_some(net::buffer(buf), [&](boost::system::error_code e, std::size_t n) {
      received.append(buf.data(), n);
      if (e) {
        ec = e;
        *closed = true;
        return;
      }
      read_more();
    });
  };
  read_more();
  ioc.run_for(15s);
  return received;
}

// `openssl s_client` to the link with `extra` arguments; its output (stdin is /dev/null).
std::string link_s_client(const LinkTarget& t, const std::vector<std::string>& extra) {
  const fs::path ca_file = t.dir / "ca-for-s_client.crt";
  std::ofstream(ca_file) << t.ca.cert_pem;
  std::vector<std::string> argv{"openssl",  "s_client",
                                "-connect", "127.0.0.1:" + std::to_string(t.port),
                                "-CAfile",  ca_file.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  std::string output;
  berth::testenv::run_command(argv, &output, {}, 30);
  return output;
}

// Waits until the controller logged `a` (with `b`) once more than `before` times.
void link_wait_controller(const LinkTarget& t, int before, const std::string& a,
                          const std::string& b = "") {
  const bool seen = wait_until([&] { return t.count(a, b) > before; }, 15s);
  INFO(t.mode << " controller log:\n" << t.log());
  REQUIRE(seen);
}

// The refusal table, against a running controller in either mode.
void link_refusal_table(LinkTarget& t) {
  berth::testing::LogCapture agent_logs;  // the in-process agents' logs
  auto agent_log_has = [&](const std::string& a, const std::string& b) {
    for (const auto& line : agent_logs.matching(a))
      if (line.find(b) != std::string::npos) return true;
    return false;
  };
  const std::string handshake_failed = "agent link TLS handshake failed";

  // A valid agent, connected for the whole table: nothing below displaces it.
  const LinkCredentials good = t.credentials("vm-good");
  berth::agentlink::Client good_agent(link_agent(t, good, "vm-good"));
  REQUIRE(good_agent.start().ok());
  {
    const bool connected = wait_until([&] { return good_agent.connected(); }, 15s);
    INFO(t.log());
    REQUIRE(connected);
  }

  {
    INFO(t.mode << ": ws:// is refused by the agent itself");
    auto o = link_agent(t, good, "vm-good");
    o.url = "ws://127.0.0.1:" + std::to_string(t.port);
    berth::agentlink::Client plain(o);
    const auto started = plain.start();
    REQUIRE_FALSE(started.ok());
    CHECK(started.error().message.find("wss://") != std::string::npos);
  }
  {
    INFO(t.mode << ": a plaintext WebSocket upgrade over TCP gets no HTTP answer");
    const int before = t.count(handshake_failed, "http request");
    bool closed = false;
    const std::string reply = link_plaintext(
        t.port,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        &closed);
    CHECK(closed);
    CHECK(reply.find("HTTP/1.1") == std::string::npos);
    link_wait_controller(t, before, handshake_failed, "http request");
  }
  {
    INFO(t.mode << ": raw bytes over TCP are closed at the TLS handshake");
    const int before = t.count(handshake_failed, "wrong version number");
    bool closed = false;
    const std::string reply =
        link_plaintext(t.port, std::string("\x00\x01garbage\r\n\r\n", 13), &closed);
    CHECK(closed);
    CHECK(reply.find("HTTP") == std::string::npos);
    link_wait_controller(t, before, handshake_failed, "wrong version number");
  }
  const fs::path good_cert = t.dir / "good.crt";
  const fs::path good_key = t.dir / "good.key";
  std::ofstream(good_cert) << good.cert_pem;
  {
    std::ofstream key(good_key);
    key << good.key_pem.reveal();
  }
  fs::permissions(good_key, fs::perms::owner_read | fs::perms::owner_write,
                  fs::perm_options::replace);
  {
    INFO(t.mode << ": a TLS 1.2 client with a valid certificate");
    const int before = t.count(handshake_failed, "unsupported protocol");
    const std::string out =
        link_s_client(t, {"-tls1_2", "-cert", good_cert.string(), "-key", good_key.string()});
    INFO(out);
    CHECK(out.find("alert protocol version") != std::string::npos);
    link_wait_controller(t, before, handshake_failed, "unsupported protocol");
  }
  {
    INFO(t.mode << ": a TLS 1.3 client without a certificate");
    const int before = t.count(handshake_failed, "peer did not return a certificate");
    const std::string out = link_s_client(t, {"-tls1_3"});
    INFO(out);
    link_wait_controller(t, before, handshake_failed, "peer did not return a certificate");
  }
  {
    INFO(t.mode << ": a certificate from another CA");
    const auto rogue = berth::testing::link_ca("rogue CA");
    const int before = t.count(handshake_failed, "unable to get local issuer certificate");
    berth::agentlink::Client agent(link_agent(
        t, link_pair(berth::testing::link_agent_cert(rogue, "vm-good", "eu-1")), "vm-good"));
    REQUIRE(agent.start().ok());
    link_wait_controller(t, before, handshake_failed, "unable to get local issuer certificate");
    CHECK(
        wait_until([&] { return agent_log_has("agent link connect failed", "unknown ca"); }, 10s));
    CHECK_FALSE(agent.connected());
  }
  {
    INFO(t.mode << ": an expired certificate from the controller's CA");
    const int before = t.count(handshake_failed, "certificate has expired");
    berth::agentlink::Client agent(link_agent(
        t, link_pair(berth::testing::link_agent_cert(t.ca, "vm-good", "eu-1", -3600)), "vm-good"));
    REQUIRE(agent.start().ok());
    link_wait_controller(t, before, handshake_failed, "certificate has expired");
    CHECK(wait_until(
        [&] { return agent_log_has("agent link connect failed", "certificate expired"); }, 10s));
    CHECK_FALSE(agent.connected());
  }
  {
    INFO(t.mode << ": another agent's certificate-holder claiming vm-good's name");
    const LinkCredentials thief = t.credentials("vm-thief");
    const int before = t.count("agent hello refused: name differs from certificate", "vm-thief");
    berth::agentlink::Client agent(link_agent(t, thief, "vm-good"));
    REQUIRE(agent.start().ok());
    link_wait_controller(t, before, "agent hello refused: name differs from certificate",
                         "vm-thief");
    CHECK(wait_until(
        [&] {
          return agent_log_has("the controller refused this agent",
                               "hello name does not match the certificate");
        },
        10s));
    CHECK_FALSE(agent.connected());
    // The real vm-good was never displaced.
    CHECK(good_agent.connected());
    CHECK(t.count("agent connection replaced by a newer one") == 0);
  }
  {
    INFO(t.mode << ": revoke-agent by name closes a connected agent and refuses it after");
    const LinkCredentials rev = t.credentials("vm-rev");
    berth::agentlink::Client agent(link_agent(t, rev, "vm-rev"));
    REQUIRE(agent.start().ok());
    REQUIRE(wait_until([&] { return agent.connected(); }, 15s));
    t.revoke("vm-rev");
    // Within one maintenance tick (5 s) after the change reaches the controller.
    CHECK(wait_until(
        [&] {
          return agent_log_has("agent link closed by the controller",
                               "agent vm-rev is revoked by the controller");
        },
        20s));
    CHECK(wait_until(
        [&] {
          return agent_log_has("the controller refused this agent",
                               "agent vm-rev is revoked by the controller");
        },
        10s));
    CHECK_FALSE(agent.connected());
    link_wait_controller(t, 0, "agent refused", "vm-rev");
    CHECK(t.count("connected agent refused; closing its connection", "vm-rev") >= 1);
  }
  {
    INFO(t.mode << ": revoke-agent --fingerprint refuses that certificate only");
    const LinkCredentials leaked = t.credentials("vm-fp");
    const auto reissued = berth::testing::link_agent_cert(t.ca, "vm-fp", "eu-1");
    t.revoke("vm-fp", berth::testing::link_fingerprint(
                          berth::crypto::PemPair{leaked.cert_pem, leaked.key_pem}));
    berth::agentlink::Client copy(link_agent(t, leaked, "vm-fp"));
    REQUIRE(copy.start().ok());
    CHECK(wait_until(
        [&] {
          return agent_log_has("the controller refused this agent",
                               "this certificate of agent vm-fp is revoked");
        },
        15s));
    CHECK_FALSE(copy.connected());
    copy.stop();
    berth::agentlink::Client renewed(link_agent(t, link_pair(reissued), "vm-fp"));
    REQUIRE(renewed.start().ok());
    CHECK(wait_until([&] { return renewed.connected(); }, 15s));
  }
  {
    INFO(t.mode << ": a list that turns malformed keeps the last good one");
    t.append_to_list("Not_A_Label\n");
    const LinkCredentials rev = t.credentials("vm-rev");
    auto refusals = [&] {
      int n = 0;
      for (const auto& line : agent_logs.matching("the controller refused this agent"))
        if (line.find("agent vm-rev is revoked") != std::string::npos) ++n;
      return n;
    };
    const int before = refusals();
    berth::agentlink::Client agent(link_agent(t, rev, "vm-rev"));
    REQUIRE(agent.start().ok());
    link_wait_controller(t, 0, "agent revocation list unreadable; keeping the last one read");
    CHECK(wait_until([&] { return refusals() > before; }, 10s));
    CHECK_FALSE(agent.connected());
  }
  // After all of it, the valid agent is still up, and a new connection of it is accepted.
  CHECK(good_agent.connected());
  good_agent.stop();
  berth::agentlink::Client again(link_agent(t, good, "vm-good"));
  REQUIRE(again.start().ok());
  CHECK(wait_until([&] { return again.connected(); }, 15s));
  INFO(t.mode << " controller log:\n" << t.log());
  CHECK(t.controller->running());
}

}  // namespace

TEST_CASE(
    "Standalone: the agent link refuses plaintext, TLS 1.2, no or foreign or expired "
    "certificates, a claimed name and revoked agents",
    "[access][agentlink][integration]") {
  if (!berth::testenv::on_path("openssl")) {
    berth::testing::skip_test("openssl (the TLS 1.2 and certificate-less client) is not on PATH");
    return;
  }
  LinkTarget t;
  start_standalone(t);
  link_refusal_table(t);
}

TEST_CASE(
    "Kubernetes mode: the agent link refuses plaintext, TLS 1.2, no or foreign or expired "
    "certificates, a claimed name and revoked agents (revocation list in a ConfigMap)",
    "[access][agentlink][kube][integration]") {
  if (!berth::testenv::on_path("openssl")) {
    berth::testing::skip_test("openssl (the TLS 1.2 and certificate-less client) is not on PATH");
    return;
  }
  BERTH_KUBE_CLUSTER(cluster);
  LinkTarget t;
  start_kube(t, cluster.server, *cluster.transport);
  link_refusal_table(t);
}

TEST_CASE(
    "Kubernetes mode: revoke-agent --kube appends to the ConfigMap and a malformed list "
    "keeps the leader from starting",
    "[access][agentlink][kube][integration]") {
  BERTH_KUBE_CLUSTER(cluster);
  berth::kube::itest::make_namespace(*cluster.transport, kControllerNamespace);
  const berth::kube::ResourceType configmaps{"", "v1", "configmaps", "ConfigMap", true};
  berth::kube::ResourceClient client(*cluster.transport, configmaps);
  // Written by hand with kubectl, say: no trailing newline, and a comment.
  REQUIRE(client
              .create({{"apiVersion", "v1"},
                       {"kind", "ConfigMap"},
                       {"metadata",
                        {{"name", "berth-revoked-agents"}, {"namespace", kControllerNamespace}}},
                       {"data", {{"revoked-agents", "# lost laptop\nvm-7"}}}})
              .ok());
  const std::vector<std::string> kube_args{"--kube", "--kubeconfig",
                                           cluster.server.kubeconfig_file(), "--namespace",
                                           kControllerNamespace};
  auto revoke = [&](std::vector<std::string> args, std::string* output) {
    args.insert(args.begin(), "revoke-agent");
    args.insert(args.end(), kube_args.begin(), kube_args.end());
    return link_cli(args, output);
  };
  std::string output;
  CHECK(revoke({"vm-8"}, &output) == 0);
  INFO(output);
  auto cm = client.get(kControllerNamespace, "berth-revoked-agents");
  REQUIRE(cm.ok());
  CHECK((*cm)["data"]["revoked-agents"] == "# lost laptop\nvm-7\nvm-8\n");
  // The same validation as standalone, and one mode at a time.
  CHECK(revoke({"Not_A_Label"}, &output) == 2);
  CHECK(output.find("DNS label") != std::string::npos);
  CHECK(link_cli({"revoke-agent", "vm-9", "--kube", "--data-dir", "/nonexistent"}, &output) == 2);
  CHECK(output.find("exactly one of") != std::string::npos);

  // A line the controller cannot honour: the leader does not start rather than ignore it.
  (*cm)["data"]["revoked-agents"] = "vm-7 not-a-fingerprint\n";
  REQUIRE(client.update(*cm).ok());
  const fs::path dir = berth::testenv::make_temp_dir("linkaccess-bad");
  {
    LinkController controller(
        {"serve", "--kubernetes", "--kubeconfig", cluster.server.kubeconfig_file(), "--data-dir",
         (dir / "scratch").string(), "--agent-listen", "127.0.0.1:0", "--controller-namespace",
         kControllerNamespace},
        dir / "controller.log");
    int status = 0;
    const bool exited = wait_until(
        [&] { return ::waitpid(controller.pid, &status, WNOHANG) == controller.pid; }, 30s);
    INFO(controller.output());
    REQUIRE(exited);
    controller.pid = -1;
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 1);
    CHECK(link_count(controller.output(), "agent revocation list unreadable", "line 1") == 1);
    CHECK(link_count(controller.output(), "cannot start", "is malformed") == 1);
    CHECK(link_count(controller.output(), "agent endpoint listening") == 0);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}
