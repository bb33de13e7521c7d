// kubeconfig and in-cluster configuration, read from an environment and files held in memory.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "common/base64.h"
#include "crypto/certs.h"
#include "kube/config.h"
#include "kube/config_internal.h"

using namespace berth;
using namespace berth::kube;

namespace {

struct Pems {
  std::string ca;
  std::string cert;
  std::string key;
};

const Pems& pems() {
  static const Pems p = [] {
    auto ca = crypto::create_ca("test-ca", 3600);
    REQUIRE(ca.ok());
    crypto::CertRequest req;
    req.common_name = "berth-test";
    req.client = true;
    auto leaf = crypto::issue_certificate(*ca, req);
    REQUIRE(leaf.ok());
    return Pems{ca->cert_pem, leaf->cert_pem, std::string(leaf->key_pem.reveal())};
  }();
  return p;
}

std::string b64(const std::string& s) { return base64::encode(s); }

// A process environment and a file system in memory.
struct World {
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> files;

  internal::Environment environment() const {
    internal::Environment e;
    e.getenv = [this](const std::string& name) -> std::optional<std::string> {
      auto it = env.find(name);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    e.read_file = [this](const std::string& path) -> Result<std::string> {
      auto it = files.find(path);
      if (it == files.end()) return make_error(ErrorCode::kNotFound, "No such file or directory");
      return it->second;
    };
    return e;
  }
};

constexpr const char* kPath = "/home/op/.kube/config";

// A kubeconfig with one context "dev" -> cluster "c" and user "u"; `cluster` and `user` are
// the indented bodies of the cluster and user mappings.
std::string kubeconfig(const std::string& cluster, const std::string& user,
                       const std::string& context_extra = "") {
  return "apiVersion: v1\nkind: Config\ncurrent-context: dev\n"
         "clusters:\n- name: other\n  cluster:\n    server: https://other.example:6443\n"
         "- name: c\n  cluster:\n" +
         cluster + "users:\n- name: u\n  user:\n" + user +
         "contexts:\n- name: dev\n  context:\n    cluster: c\n    user: u\n" + context_extra;
}

std::string server_lines(const std::string& server = "https://api.example:6443") {
  return "    server: " + server + "\n    certificate-authority-data: " + b64(pems().ca) + "\n";
}

Result<ClusterConfig> parse(const std::string& text, const LoadOptions& options = {},
                            const World& world = {}) {
  return internal::parse_kubeconfig(text, kPath, options, world.environment());
}

std::string error_of(const Result<ClusterConfig>& r) {
  REQUIRE_FALSE(r.ok());
  return r.error().message;
}

}  // namespace

TEST_CASE("the current context gives the server, its CA, the token and the namespace",
          "[kube][config]") {
  auto r = parse(kubeconfig(server_lines(), "    token: abc.def\n", "    namespace: apps\n"));
  REQUIRE(r.ok());
  CHECK(r->server == "https://api.example:6443");
  CHECK(r->ca_pem == pems().ca);
  CHECK(r->token.reveal() == "abc.def");
  CHECK(r->token_file.empty());
  CHECK_FALSE(r->exec.has_value());
  CHECK(r->default_namespace == "apps");
  CHECK(r->origin == "kubeconfig /home/op/.kube/config (context dev)");
}

TEST_CASE("a context without a namespace uses default", "[kube][config]") {
  auto r = parse(kubeconfig(server_lines(), "    token: t\n"));
  REQUIRE(r.ok());
  CHECK(r->default_namespace == "default");
}

TEST_CASE("a named context is used instead of current-context", "[kube][config]") {
  const std::string text = kubeconfig(server_lines(), "    token: t\n") +
                           "- name: prod\n  context:\n    cluster: other\n";
  LoadOptions options;
  options.context = "prod";
  auto r = parse(text, options);
  REQUIRE(r.ok());
  CHECK(r->server == "https://other.example:6443");
  CHECK(r->ca_pem.empty());
  CHECK(r->token.empty());
  CHECK(r->origin == "kubeconfig /home/op/.kube/config (context prod)");
}

TEST_CASE("a trailing slash on the server is dropped and IPv6 servers keep their brackets",
          "[kube][config]") {
  auto r = parse(kubeconfig(server_lines("https://[fd00::1]:6443/"), ""));
  REQUIRE(r.ok());
  CHECK(r->server == "https://[fd00::1]:6443");
}

TEST_CASE("the server must be an https URL", "[kube][config]") {
  CHECK(error_of(parse(kubeconfig(server_lines("http://api.example:8080"), ""))) ==
        "kubeconfig /home/op/.kube/config: clusters[1].cluster.server: not an https URL (berth "
        "talks to the API server over TLS only)");
  CHECK(error_of(parse(kubeconfig(server_lines("https://api.example:99999"), ""))) ==
        "kubeconfig /home/op/.kube/config: clusters[1].cluster.server: not a valid "
        "https://host[:port] URL");
  CHECK(error_of(parse(kubeconfig("    insecure-skip-tls-verify: false\n", ""))) ==
        "kubeconfig /home/op/.kube/config: clusters[1].cluster.server: not set");
}

TEST_CASE("certificate-authority is read relative to the kubeconfig's directory",
          "[kube][config]") {
  World world;
  world.files["/home/op/.kube/certs/ca.crt"] = pems().ca;
  auto r = parse(
      kubeconfig("    server: https://api.example\n    certificate-authority: certs/ca.crt\n", ""),
      {}, world);
  REQUIRE(r.ok());
  CHECK(r->ca_pem == pems().ca);

  world.files["/etc/k/ca.pem"] = pems().ca;
  auto absolute = parse(
      kubeconfig("    server: https://api.example\n    certificate-authority: /etc/k/ca.pem\n", ""),
      {}, world);
  REQUIRE(absolute.ok());
  CHECK(absolute->ca_pem == pems().ca);
}

TEST_CASE("a CA that cannot be used is named by its field", "[kube][config]") {
  CHECK(error_of(
            parse(kubeconfig("    server: https://a\n    certificate-authority: ca.crt\n", ""))) ==
        "kubeconfig /home/op/.kube/config: clusters[1].cluster.certificate-authority: cannot read "
        "/home/op/.kube/ca.crt (No such file or directory)");
  World world;
  world.files["/home/op/.kube/ca.crt"] = "not a certificate";
  CHECK(error_of(parse(kubeconfig("    server: https://a\n    certificate-authority: ca.crt\n", ""),
                       {}, world)) ==
        "kubeconfig /home/op/.kube/config: clusters[1].cluster.certificate-authority: "
        "/home/op/.kube/ca.crt holds no PEM certificate");
  CHECK(error_of(parse(
            kubeconfig("    server: https://a\n    certificate-authority-data: '%%%'\n", ""))) ==
        "kubeconfig /home/op/.kube/config: clusters[1].cluster.certificate-authority-data: not "
        "base64");
  CHECK(
      error_of(parse(kubeconfig(
          "    server: https://a\n    certificate-authority-data: " + b64("hello") + "\n", ""))) ==
      "kubeconfig /home/op/.kube/config: clusters[1].cluster.certificate-authority-data: no "
      "PEM certificate in it");
  world.files["/home/op/.kube/ca.crt"] = pems().ca;
  CHECK(error_of(parse(kubeconfig(server_lines() + "    certificate-authority: ca.crt\n", ""), {},
                       world)) ==
        "kubeconfig /home/op/.kube/config: clusters[1].cluster.certificate-authority-data: "
        "certificate-authority is set too; keep only one of them");
}

TEST_CASE("tls-server-name is kept for SNI and the certificate check", "[kube][config]") {
  auto r = parse(kubeconfig(
      server_lines("https://10.0.0.1:6443") + "    tls-server-name: kubernetes.default.svc\n", ""));
  REQUIRE(r.ok());
  CHECK(r->tls_server_name == "kubernetes.default.svc");
}

TEST_CASE("insecure-skip-tls-verify is refused unless allowed", "[kube][config]") {
  const std::string text =
      kubeconfig("    server: https://a:6443\n    insecure-skip-tls-verify: true\n", "");
  auto refused = parse(text);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::kInvalidArgument);
  CHECK(refused.error().message ==
        "kubeconfig /home/op/.kube/config: clusters[1].cluster.insecure-skip-tls-verify: refused: "
        "the server's certificate would not be verified (allow it explicitly with "
        "--insecure-skip-tls-verify)");
  CHECK(refused.error().field == "clusters[1].cluster.insecure-skip-tls-verify");

  LoadOptions allow;
  allow.allow_insecure = true;
  auto allowed = parse(text, allow);
  REQUIRE(allowed.ok());
  CHECK(allowed->insecure_skip_tls_verify);

  CHECK(error_of(parse(
            kubeconfig("    server: https://a\n    insecure-skip-tls-verify: maybe\n", ""))) ==
        "kubeconfig /home/op/.kube/config: clusters[1].cluster.insecure-skip-tls-verify: not a "
        "boolean");
  CHECK(error_of(parse(kubeconfig(server_lines() + "    insecure-skip-tls-verify: true\n", ""),
                       allow)) ==
        "kubeconfig /home/op/.kube/config: clusters[1].cluster.insecure-skip-tls-verify: set "
        "together with a certificate authority; keep only one of them");
}

TEST_CASE("a client certificate and key come from files or from -data fields", "[kube][config]") {
  World world;
  world.files["/home/op/.kube/me.crt"] = pems().cert;
  world.files["/keys/me.key"] = pems().key;
  auto files = parse(
      kubeconfig(server_lines(), "    client-certificate: me.crt\n    client-key: /keys/me.key\n"),
      {}, world);
  REQUIRE(files.ok());
  CHECK(files->client_cert_pem == pems().cert);
  CHECK(files->client_key_pem.reveal() == pems().key);

  auto data =
      parse(kubeconfig(server_lines(), "    client-certificate-data: " + b64(pems().cert) +
                                           "\n    client-key-data: " + b64(pems().key) + "\n"));
  REQUIRE(data.ok());
  CHECK(data->client_cert_pem == pems().cert);
  CHECK(data->client_key_pem.reveal() == pems().key);
}

TEST_CASE("client certificate errors name the field", "[kube][config]") {
  const std::string cert = "    client-certificate-data: " + b64(pems().cert) + "\n";
  const std::string key = "    client-key-data: " + b64(pems().key) + "\n";
  CHECK(error_of(parse(kubeconfig(server_lines(), cert + "    client-key-data: '!!'\n"))) ==
        "kubeconfig /home/op/.kube/config: users[0].user.client-key-data: not base64");
  CHECK(error_of(parse(kubeconfig(server_lines(),
                                  cert + "    client-key-data: " + b64(pems().cert) + "\n"))) ==
        "kubeconfig /home/op/.kube/config: users[0].user.client-key-data: no PEM private key in "
        "it");
  CHECK(error_of(parse(kubeconfig(server_lines(), cert))) ==
        "kubeconfig /home/op/.kube/config: users[0].user.client-key: not set, but a client "
        "certificate is");
  CHECK(error_of(parse(kubeconfig(server_lines(), key))) ==
        "kubeconfig /home/op/.kube/config: users[0].user.client-certificate: not set, but a "
        "client key is");
  CHECK(error_of(parse(kubeconfig(
            server_lines(), "    client-certificate-data: " + b64(pems().key) + "\n" + key))) ==
        "kubeconfig /home/op/.kube/config: users[0].user.client-certificate-data: no PEM "
        "certificate in it");
  World world;
  world.files["/home/op/.kube/me.crt"] = pems().cert;
  world.files["/home/op/.kube/me.key"] = "garbage";
  CHECK(error_of(parse(kubeconfig(server_lines(), cert + "    client-certificate: me.crt\n" + key),
                       {}, world)) ==
        "kubeconfig /home/op/.kube/config: users[0].user.client-certificate-data: "
        "client-certificate is set too; keep only one");
  CHECK(error_of(parse(kubeconfig(server_lines(), cert + key + "    client-key: me.key\n"), {},
                       world)) ==
        "kubeconfig /home/op/.kube/config: users[0].user.client-key-data: client-key is set "
        "too; keep only one");
  CHECK(error_of(parse(kubeconfig(server_lines(), cert + "    client-key: me.key\n"), {}, world)) ==
        "kubeconfig /home/op/.kube/config: users[0].user.client-key: /home/op/.kube/me.key holds "
        "no PEM private key");
  CHECK(error_of(parse(kubeconfig(server_lines(), "    client-certificate: gone.crt\n" + key), {},
                       world)) ==
        "kubeconfig /home/op/.kube/config: users[0].user.client-certificate: cannot read "
        "/home/op/.kube/gone.crt (No such file or directory)");
}

TEST_CASE("tokenFile is resolved against the kubeconfig and must be readable", "[kube][config]") {
  World world;
  world.files["/home/op/.kube/token"] = "tok\n";
  auto r = parse(kubeconfig(server_lines(), "    tokenFile: token\n"), {}, world);
  REQUIRE(r.ok());
  CHECK(r->token_file == "/home/op/.kube/token");
  CHECK(r->token.empty());

  CHECK(error_of(parse(kubeconfig(server_lines(), "    tokenFile: missing\n"))) ==
        "kubeconfig /home/op/.kube/config: users[0].user.tokenFile: cannot read "
        "/home/op/.kube/missing (No such file or directory)");
  CHECK(error_of(
            parse(kubeconfig(server_lines(), "    token: t\n    tokenFile: token\n"), {}, world)) ==
        "kubeconfig /home/op/.kube/config: users[0].user.tokenFile: token is set too; keep only "
        "one");
  CHECK(error_of(parse(kubeconfig(server_lines(), "    token: {a: b}\n"))) ==
        "kubeconfig /home/op/.kube/config: users[0].user.token: not a string");
}

TEST_CASE("an exec plugin's every field is read", "[kube][config]") {
  auto r = parse(kubeconfig(server_lines(),
                            "    exec:\n"
                            "      apiVersion: client.authentication.k8s.io/v1\n"
                            "      command: bin/get-token\n"
                            "      args: [--cluster, dev]\n"
                            "      env:\n      - name: REGION\n        value: eu-1\n"
                            "      interactiveMode: Never\n"
                            "      provideClusterInfo: true\n"));
  REQUIRE(r.ok());
  REQUIRE(r->exec.has_value());
  CHECK(r->exec->command == "/home/op/.kube/bin/get-token");
  CHECK(r->exec->args == std::vector<std::string>{"--cluster", "dev"});
  REQUIRE(r->exec->env.size() == 1);
  CHECK(r->exec->env[0] == std::pair<std::string, std::string>{"REGION", "eu-1"});
  CHECK(r->exec->api_version == "client.authentication.k8s.io/v1");
  CHECK(r->exec->interactive_mode == "Never");
  CHECK(r->exec->provide_cluster_info);
}

TEST_CASE(
    "an exec command without a slash is looked up on PATH, and v1beta1 defaults "
    "interactiveMode",
    "[kube][config]") {
  auto r = parse(kubeconfig(server_lines(),
                            "    exec:\n"
                            "      apiVersion: client.authentication.k8s.io/v1beta1\n"
                            "      command: aws\n"));
  REQUIRE(r.ok());
  CHECK(r->exec->command == "aws");
  CHECK(r->exec->interactive_mode == "IfAvailable");
  CHECK_FALSE(r->exec->provide_cluster_info);
}

TEST_CASE("exec plugin errors name the field", "[kube][config]") {
  const std::string v1 = "      apiVersion: client.authentication.k8s.io/v1\n";
  auto exec = [&](const std::string& body) {
    return error_of(parse(kubeconfig(server_lines(), "    exec:\n" + body)));
  };
  const std::string at = "kubeconfig /home/op/.kube/config: users[0].user.exec.";
  CHECK(exec(v1 + "      interactiveMode: Never\n") == at + "command: not set");
  CHECK(exec("      command: x\n      interactiveMode: Never\n") == at + "apiVersion: not set");
  CHECK(exec("      command: x\n      apiVersion: client.authentication.k8s.io/v1alpha1\n") ==
        at + "apiVersion: \"client.authentication.k8s.io/v1alpha1\" is not "
             "client.authentication.k8s.io/v1 or client.authentication.k8s.io/v1beta1");
  CHECK(exec(v1 + "      command: x\n") == at + "interactiveMode: not set (required in v1)");
  CHECK(exec(v1 + "      command: x\n      interactiveMode: Sometimes\n") ==
        at + "interactiveMode: \"Sometimes\" is not Never, IfAvailable or Always");
  CHECK(exec(v1 + "      command: x\n      interactiveMode: Always\n") ==
        at + "interactiveMode: Always needs a terminal, and berth runs exec plugins without one");
  CHECK(exec(v1 + "      command: x\n      interactiveMode: Never\n      args: x\n") ==
        at + "args: not a list");
  CHECK(exec(v1 + "      command: x\n      interactiveMode: Never\n      env: [{value: v}]\n") ==
        at + "env[0].name: not a variable name");
  CHECK(
      exec(v1 + "      command: x\n      interactiveMode: Never\n      provideClusterInfo: 3\n") ==
      at + "provideClusterInfo: not a boolean");
  CHECK(error_of(parse(kubeconfig(server_lines(), "    token: t\n    exec:\n" + v1 +
                                                      "      command: x\n"
                                                      "      interactiveMode: Never\n"))) ==
        "kubeconfig /home/op/.kube/config: users[0].user.exec: a token is set too; keep only one "
        "way to get a token");
}

TEST_CASE("auth providers and basic auth are refused by name", "[kube][config]") {
  CHECK(error_of(parse(kubeconfig(server_lines(), "    auth-provider:\n      name: gcp\n"))) ==
        "kubeconfig /home/op/.kube/config: users[0].user.auth-provider: not supported by berth "
        "(use a token, a client certificate or an exec plugin)");
  CHECK(error_of(parse(kubeconfig(server_lines(), "    username: admin\n"))) ==
        "kubeconfig /home/op/.kube/config: users[0].user.username: not supported by berth (use a "
        "token, a client certificate or an exec plugin)");
}

TEST_CASE("contexts, clusters and users that do not resolve are named", "[kube][config]") {
  LoadOptions missing;
  missing.context = "nope";
  CHECK(error_of(parse(kubeconfig(server_lines(), ""), missing)) ==
        "kubeconfig /home/op/.kube/config: context: no context named \"nope\"");
  CHECK(error_of(parse("clusters: []\ncontexts: []\n")) ==
        "kubeconfig /home/op/.kube/config: current-context: not set, and no context was chosen "
        "(--context)");
  CHECK(error_of(parse("current-context: x\ncontexts: []\n")) ==
        "kubeconfig /home/op/.kube/config: current-context: no context named \"x\"");
  CHECK(error_of(parse("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: k\n")) ==
        "kubeconfig /home/op/.kube/config: contexts[0].context.cluster: no cluster named \"k\"");
  CHECK(error_of(parse("current-context: x\ncontexts:\n- name: x\n  context:\n    user: u\n")) ==
        "kubeconfig /home/op/.kube/config: contexts[0].context.cluster: not set");
  CHECK(error_of(parse("current-context: x\nclusters:\n- name: k\n  cluster:\n    server: "
                       "https://a\ncontexts:\n- name: x\n  context:\n    cluster: k\n    user: "
                       "me\n")) ==
        "kubeconfig /home/op/.kube/config: contexts[0].context.user: no user named \"me\"");
  CHECK(error_of(parse("current-context: x\nclusters: {a: b}\ncontexts:\n- name: x\n  context:\n"
                       "    cluster: k\n")) ==
        "kubeconfig /home/op/.kube/config: clusters: not a list");
  CHECK(error_of(parse("current-context: x\ncontexts:\n- just a string\n")) ==
        "kubeconfig /home/op/.kube/config: contexts[0]: not a mapping");
  CHECK(error_of(parse("current-context: x\ncontexts:\n- name: x\n  context: [1]\n")) ==
        "kubeconfig /home/op/.kube/config: contexts[0].context: not a mapping");
}

TEST_CASE("a kubeconfig that is not YAML, empty, or not a mapping is refused with the file name",
          "[kube][config]") {
  auto bad = parse("clusters: [\n  - name: a\n  cluster: {");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == ErrorCode::kInvalidArgument);
  CHECK_THAT(bad.error().message,
             Catch::StartsWith("kubeconfig /home/op/.kube/config: not valid YAML at line "));
  CHECK(error_of(parse("")) == "kubeconfig /home/op/.kube/config: empty file");
  CHECK(error_of(parse("- a\n- b\n")) ==
        "kubeconfig /home/op/.kube/config: not a kubeconfig (the top level is not a mapping)");
}

TEST_CASE("a kubeconfig file that cannot be read is named", "[kube][config]") {
  World world;
  auto r = internal::load_kubeconfig("/nope/config", {}, world.environment());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kNotFound);
  CHECK(r.error().message == "kubeconfig /nope/config: cannot read it (No such file or directory)");
}

TEST_CASE("server URLs are split into host, port and path prefix", "[kube][config]") {
  auto a = internal::parse_server("https://api.example");
  REQUIRE(a);
  CHECK(a->host == "api.example");
  CHECK(a->port == "443");
  CHECK(a->host_header == "api.example:443");
  CHECK(a->path_prefix.empty());
  auto b = internal::parse_server("https://[::1]:6443/k8s/clusters/c-1/");
  REQUIRE(b);
  CHECK(b->host == "::1");
  CHECK(b->port == "6443");
  CHECK(b->host_header == "[::1]:6443");
  CHECK(b->path_prefix == "/k8s/clusters/c-1");
  CHECK_FALSE(internal::parse_server("http://a"));
  CHECK_FALSE(internal::parse_server("https://"));
  CHECK_FALSE(internal::parse_server("https://a:"));
  CHECK_FALSE(internal::parse_server("https://a:0"));
  CHECK_FALSE(internal::parse_server("https://a:x1"));
  CHECK_FALSE(internal::parse_server("https://[::1"));
  CHECK_FALSE(internal::parse_server("https://user@a"));
  CHECK_FALSE(internal::parse_server("https://a/?q=1"));
}

namespace {

World in_cluster_world(const std::string& host) {
  World w;
  w.env["KUBERNETES_SERVICE_HOST"] = host;
  w.env["KUBERNETES_SERVICE_PORT"] = "443";
  w.files["/sa/token"] = "sa-token\n";
  w.files["/sa/ca.crt"] = pems().ca;
  w.files["/sa/namespace"] = "berth-system\n";
  return w;
}

LoadOptions sa_dir() {
  LoadOptions o;
  o.service_account_dir = "/sa";
  return o;
}

}  // namespace

TEST_CASE(
    "in-cluster configuration uses the service host, the token file, the CA and the "
    "namespace",
    "[kube][config]") {
  World w = in_cluster_world("10.96.0.1");
  auto r = internal::load_in_cluster(sa_dir(), w.environment());
  REQUIRE(r.ok());
  CHECK(r->server == "https://10.96.0.1:443");
  CHECK(r->token_file == "/sa/token");
  CHECK(r->token.empty());
  CHECK(r->ca_pem == pems().ca);
  CHECK(r->default_namespace == "berth-system");
  CHECK(r->origin == "in-cluster");

  World v6 = in_cluster_world("fd00:10:96::1");
  v6.files.erase("/sa/namespace");
  auto r6 = internal::load_in_cluster(sa_dir(), v6.environment());
  REQUIRE(r6.ok());
  CHECK(r6->server == "https://[fd00:10:96::1]:443");
  CHECK(r6->default_namespace == "default");
}

TEST_CASE("in-cluster configuration errors say what is missing", "[kube][config]") {
  World none;
  auto outside = internal::load_in_cluster(sa_dir(), none.environment());
  REQUIRE_FALSE(outside.ok());
  CHECK(outside.error().code == ErrorCode::kNotFound);
  CHECK(outside.error().message ==
        "in-cluster: not running in a cluster (KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT are not both set)");

  World no_token = in_cluster_world("10.96.0.1");
  no_token.files.erase("/sa/token");
  CHECK(error_of(internal::load_in_cluster(sa_dir(), no_token.environment())) ==
        "in-cluster: cannot read the service-account token /sa/token (No such file or "
        "directory)");
  World no_ca = in_cluster_world("10.96.0.1");
  no_ca.files.erase("/sa/ca.crt");
  CHECK(error_of(internal::load_in_cluster(sa_dir(), no_ca.environment())) ==
        "in-cluster: cannot read the cluster CA /sa/ca.crt (No such file or directory)");
  World bad_ca = in_cluster_world("10.96.0.1");
  bad_ca.files["/sa/ca.crt"] = "junk";
  CHECK(error_of(internal::load_in_cluster(sa_dir(), bad_ca.environment())) ==
        "in-cluster: /sa/ca.crt holds no PEM certificate");
  World bad_port = in_cluster_world("10.96.0.1");
  bad_port.env["KUBERNETES_SERVICE_PORT"] = "https";
  CHECK(error_of(internal::load_in_cluster(sa_dir(), bad_port.environment())) ==
        "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT do not form a valid "
        "address (https://10.96.0.1:https)");
}

TEST_CASE(
    "load_config tries --kubeconfig, then KUBECONFIG's first file, then in-cluster, then "
    "~/.kube/config",
    "[kube][config]") {
  const std::string explicit_cfg = kubeconfig(server_lines("https://explicit"), "");
  const std::string env_cfg = kubeconfig(server_lines("https://from-env"), "");
  const std::string home_cfg = kubeconfig(server_lines("https://from-home"), "");
  World w = in_cluster_world("10.96.0.1");
  w.env["HOME"] = "/home/op";
  w.env["KUBECONFIG"] = ":/env/first:/env/second";
  w.files["/x/explicit"] = explicit_cfg;
  w.files["/env/first"] = env_cfg;
  w.files["/env/second"] = explicit_cfg;
  w.files["/home/op/.kube/config"] = home_cfg;
  LoadOptions options = sa_dir();

  auto server = [&] {
    auto r = internal::load_config(options, w.environment());
    REQUIRE(r.ok());
    return r->server;
  };
  options.kubeconfig = "/x/explicit";
  CHECK(server() == "https://explicit");
  options.kubeconfig.clear();
  CHECK(server() == "https://from-env");
  w.env.erase("KUBECONFIG");
  CHECK(server() == "https://10.96.0.1:443");
  w.env.erase("KUBERNETES_SERVICE_HOST");
  CHECK(server() == "https://from-home");
  w.files.erase("/home/op/.kube/config");
  auto none = internal::load_config(options, w.environment());
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().code == ErrorCode::kNotFound);
  CHECK(none.error().message ==
        "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, run in a cluster, or "
        "create ~/.kube/config");

  w.env["KUBECONFIG"] = "/env/missing";
  auto missing = internal::load_config(options, w.environment());
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message ==
        "kubeconfig /env/missing: cannot read it (No such file or directory)");
}
