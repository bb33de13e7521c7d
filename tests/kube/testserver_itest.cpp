// The test API server through its C++ fixture, over real HTTPS: authentication, CRUD with the
// real status codes, list pagination, watch with bookmarks and resume, 410 after compaction,
// RBAC, faults and the request log. The semantics in depth are in testserver_store_test.py.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "support/http_client.h"
#include "support/kube_testenv.h"
#include "support/skip.h"
#include "support/wait.h"

namespace {

using berth::testenv::KubeApiServer;
using berth::testing::HttpClientOptions;
using berth::testing::HttpConnection;
using berth::testing::HttpResult;
using nlohmann::json;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// python3 with python3-cryptography and python3-yaml is the server's only peer.
// Checked once per process.
std::string server_missing() {
  static const std::string missing = [] {
    std::string out;
    if (berth::testenv::run_command({"python3", "-c", "import cryptography, yaml"}, &out) != 0) {
      return std::string(
          "test API server: python3 with python3-cryptography and python3-yaml (apt-get install "
          "python3-cryptography python3-yaml)");
    }
    return std::string();
  }();
  return missing;
}

#define REQUIRE_SERVER_PEERS()                                            \
  do {                                                                    \
    if (const std::string missing = server_missing(); !missing.empty()) { \
      berth::testing::skip_test(missing);                                 \
      return;                                                             \
    }                                                                     \
  } while (0)

struct Client {
  explicit Client(const KubeApiServer& api, std::string token)
      : conn(options(api)), token(std::move(token)) {}

  static HttpClientOptions options(const KubeApiServer& api) {
    HttpClientOptions o;
    o.port =
        static_cast<std::uint16_t>(std::stoi(api.server().substr(api.server().rfind(':') + 1)));
    o.tls = true;
    o.ca_pem = read_file(api.ca_file());
    return o;
  }

  HttpResult call(const std::string& method, const std::string& target, const json& body = {},
                  const std::string& content_type = "application/json") {
    std::map<std::string, std::string> headers = {{"Accept", "application/json"}};
    if (!token.empty()) headers["Authorization"] = "Bearer " + token;
    if (!body.is_null()) headers["Content-Type"] = content_type;
    return conn.request(method, target, body.is_null() ? "" : body.dump(), headers);
  }

  HttpConnection conn;
  std::string token;
};

json configmap(const std::string& name, const std::string& value) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}}},
          {"data", {{"k", value}}}};
}

// Watch events of a finished (timeoutSeconds) watch response: one JSON object per line.
std::vector<json> events(const std::string& body) {
  std::vector<json> out;
  std::stringstream lines(body);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

constexpr const char* kCms = "/api/v1/namespaces/default/configmaps";

}  // namespace

TEST_CASE("test API server: TLS, tokens and the Status of a refused request", "[kube]") {
  REQUIRE_SERVER_PEERS();
  auto started = KubeApiServer::start();
  REQUIRE(started.ok());
  auto& api = started.value();
  CHECK(api.server().rfind("https://127.0.0.1:", 0) == 0);
  CHECK(read_file(api.kubeconfig_file()).find("berth-test") != std::string::npos);

  Client admin(api, api.admin_token());
  auto version = admin.call("GET", "/version");
  REQUIRE(version.status == 200);
  CHECK(version.json()["major"] == "1");

  Client nobody(api, "");
  auto r = nobody.call("GET", kCms);
  CHECK(r.status == 401);
  CHECK(r.json()["kind"] == "Status");
  CHECK(r.json()["reason"] == "Unauthorized");

  Client wrong(api, "not-a-token");
  CHECK(wrong.call("GET", kCms).status == 401);

  // A token the test adds is a user without permissions until RBAC grants them.
  api.set_token("alice", "alice-token");
  Client alice(api, "alice-token");
  r = alice.call("GET", kCms);
  CHECK(r.status == 403);
  CHECK(r.json()["message"] ==
        "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group "
        "\"\" in the namespace \"default\"");
  REQUIRE(admin
              .call("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
                    {{"metadata", {{"name", "cm-reader"}}},
                     {"rules",
                      {{{"apiGroups", {""}},
                        {"resources", {"configmaps"}},
                        {"verbs", {"get", "list"}}}}}})
              .status == 201);
  REQUIRE(admin
              .call("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
                    {{"metadata", {{"name", "alice-reads"}}},
                     {"roleRef",
                      {{"apiGroup", "rbac.authorization.k8s.io"},
                       {"kind", "Role"},
                       {"name", "cm-reader"}}},
                     {"subjects", {{{"kind", "User"}, {"name", "alice"}}}}})
              .status == 201);
  CHECK(alice.call("GET", kCms).status == 200);
  CHECK(alice.call("POST", kCms, configmap("x", "1")).status == 403);
  api.remove_token("alice-token");
  CHECK(alice.call("GET", kCms).status == 401);
}

// Grants `user` the `verbs` on `resource` (core group) in default, as Role + RoleBinding `name`.
void grant_in_default(Client& admin, const std::string& name, const std::string& user,
                      const std::string& resource, const json& verbs) {
  REQUIRE(
      admin
          .call("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
                {{"metadata", {{"name", name}}},
                 {"rules", {{{"apiGroups", {""}}, {"resources", {resource}}, {"verbs", verbs}}}}})
          .status == 201);
  REQUIRE(
      admin
          .call("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
                {{"metadata", {{"name", name}}},
                 {"roleRef",
                  {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", name}}},
                 {"subjects", {{{"kind", "User"}, {"name", user}}}}})
          .status == 201);
}

TEST_CASE(
    "test API server: a blockOwnerDeletion owner reference needs update on the owner's "
    "finalizers, changing owner references needs delete, and the request log records both checks "
    "and the API group",
    "[kube]") {
  REQUIRE_SERVER_PEERS();
  auto started = KubeApiServer::start();
  REQUIRE(started.ok());
  auto& api = started.value();
  Client admin(api, api.admin_token());
  auto owner = admin.call("POST", kCms, configmap("owner", "1"));
  REQUIRE(owner.status == 201);
  const std::string uid = owner.json()["metadata"]["uid"];

  api.set_token("bob", "bob-token");
  Client bob(api, "bob-token");
  grant_in_default(admin, "writer", "bob", "configmaps", {"get", "create", "update"});
  json child = configmap("child", "1");
  child["metadata"]["ownerReferences"] = {{{"apiVersion", "v1"},
                                           {"kind", "ConfigMap"},
                                           {"name", "owner"},
                                           {"uid", uid},
                                           {"blockOwnerDeletion", true}}};
  auto refused = bob.call("POST", kCms, child);
  CHECK(refused.status == 403);
  CHECK(refused.json()["reason"] == "Forbidden");
  CHECK(refused.json()["message"] ==
        "configmaps \"child\" is forbidden: cannot set blockOwnerDeletion if an ownerReference "
        "refers to a resource you can't set finalizers on: , <nil>");

  grant_in_default(admin, "finalizers", "bob", "configmaps/finalizers", {"update"});
  auto created = bob.call("POST", kCms, child);
  REQUIRE(created.status == 201);

  // Dropping the owner reference is a change of ownerReferences: delete on the object.
  json orphan = created.json();
  orphan["metadata"].erase("ownerReferences");
  CHECK(bob.call("PUT", std::string(kCms) + "/child", orphan).json()["message"] ==
        "configmaps \"child\" is forbidden: cannot set an ownerRef on a resource you can't "
        "delete: , <nil>");
  grant_in_default(admin, "deleter", "bob", "configmaps", {"delete"});
  CHECK(bob.call("PUT", std::string(kCms) + "/child", orphan).status == 200);
  // The same object again: no change of owner references, no check.
  orphan["data"]["k"] = "2";
  orphan["metadata"].erase("resourceVersion");
  CHECK(bob.call("PUT", std::string(kCms) + "/child", orphan).status == 200);
  // A merge patch that puts the blocking reference back: both checks, both allowed now.
  grant_in_default(admin, "patcher", "bob", "configmaps", {"patch"});
  CHECK(bob.call("PATCH", std::string(kCms) + "/child",
                 {{"metadata", {{"ownerReferences", child["metadata"]["ownerReferences"]}}}},
                 "application/merge-patch+json")
            .status == 200);

  std::vector<json> checks;
  bool rbac_group = false;
  for (const auto& entry : api.requests()) {
    if (entry.value("resource", "") == "rolebindings" &&
        entry.value("group", "") == "rbac.authorization.k8s.io") {
      rbac_group = true;
    }
    if (entry.value("user", "") != "bob") continue;
    CHECK(entry.value("group", "x") == "");
    for (const auto& c : entry.value("checks", json::array())) checks.push_back(c);
  }
  CHECK(rbac_group);
  INFO(json(checks).dump());
  REQUIRE(checks.size() == 6);
  CHECK(checks[0] == json{{"verb", "update"},
                          {"group", ""},
                          {"resource", "configmaps"},
                          {"subresource", "finalizers"},
                          {"namespace", "default"},
                          {"name", "owner"},
                          {"allowed", false}});
  CHECK(checks[1]["allowed"] == true);
  CHECK(checks[2]["verb"] == "delete");
  CHECK(checks[2]["name"] == "child");
  CHECK(checks[2]["allowed"] == false);
  CHECK(checks[3]["allowed"] == true);
  CHECK(checks[4]["verb"] == "delete");
  CHECK(checks[5]["subresource"] == "finalizers");
  CHECK(checks[4]["allowed"] == true);
  CHECK(checks[5]["allowed"] == true);
}

TEST_CASE("test API server: create, 409 on a stale update, pagination", "[kube]") {
  REQUIRE_SERVER_PEERS();
  auto started = KubeApiServer::start();
  REQUIRE(started.ok());
  auto& api = started.value();
  Client c(api, api.admin_token());

  auto created = c.call("POST", kCms, configmap("one", "1"));
  REQUIRE(created.status == 201);
  const json obj = created.json();
  CHECK(!obj["metadata"]["uid"].get<std::string>().empty());
  CHECK(c.call("POST", kCms, configmap("one", "1")).json()["reason"] == "AlreadyExists");

  json update = obj;
  update["data"]["k"] = "2";
  auto updated = c.call("PUT", std::string(kCms) + "/one", update);
  REQUIRE(updated.status == 200);
  CHECK(std::stoll(updated.json()["metadata"]["resourceVersion"].get<std::string>()) >
        std::stoll(obj["metadata"]["resourceVersion"].get<std::string>()));
  // The same write again carries the old resourceVersion.
  auto stale = c.call("PUT", std::string(kCms) + "/one", update);
  CHECK(stale.status == 409);
  CHECK(stale.json()["reason"] == "Conflict");

  CHECK(c.call("GET", std::string(kCms) + "/missing").json()["reason"] == "NotFound");
  CHECK(c.call("POST", "/api/v1/namespaces/nowhere/configmaps", configmap("a", "1"))
            .json()["message"] == "namespaces \"nowhere\" not found");

  for (const char* name : {"two", "three", "four"}) {
    REQUIRE(c.call("POST", kCms, configmap(name, "x")).status == 201);
  }
  std::vector<std::string> names;
  std::string token;
  int pages = 0;
  do {
    auto page =
        c.call("GET", std::string(kCms) + "?limit=3" + (token.empty() ? "" : "&continue=" + token));
    REQUIRE(page.status == 200);
    const json body = page.json();
    for (const auto& item : body["items"]) names.push_back(item["metadata"]["name"]);
    token = body["metadata"].value("continue", "");
    ++pages;
  } while (!token.empty());
  CHECK(pages == 2);
  CHECK(names == std::vector<std::string>{"four", "one", "three", "two"});
}

TEST_CASE("test API server: watch with bookmarks, resume, and 410 after compaction", "[kube]") {
  REQUIRE_SERVER_PEERS();
  auto started = KubeApiServer::start();
  REQUIRE(started.ok());
  auto& api = started.value();
  Client c(api, api.admin_token());

  auto first = c.call("POST", kCms, configmap("a", "1"));
  REQUIRE(first.status == 201);
  const std::string rv1 = first.json()["metadata"]["resourceVersion"];
  REQUIRE(c.call("POST", kCms, configmap("b", "1")).status == 201);

  // Resume after the first object: only the second arrives, then a bookmark, then the server
  // ends the stream at timeoutSeconds.
  auto w = c.call("GET", std::string(kCms) +
                             "?watch=true&allowWatchBookmarks=true&timeoutSeconds=1"
                             "&resourceVersion=" +
                             rv1);
  REQUIRE(w.status == 200);
  auto evs = events(w.body);
  REQUIRE(evs.size() >= 2);
  CHECK(evs[0]["type"] == "ADDED");
  CHECK(evs[0]["object"]["metadata"]["name"] == "b");
  CHECK(evs[1]["type"] == "BOOKMARK");
  CHECK(evs[1]["object"]["metadata"].size() == 1);

  // A page of a list taken before the compaction.
  auto page = c.call("GET", std::string(kCms) + "?limit=1");
  REQUIRE(page.status == 200);
  const std::string token = page.json()["metadata"]["continue"];
  REQUIRE(!token.empty());

  api.compact();
  // A watch from before the compaction is admitted, then told in the stream (as the real watch
  // cache does): HTTP 200, one ERROR event carrying a 410 Expired Status, end of stream.
  auto gone = c.call("GET", std::string(kCms) + "?watch=true&resourceVersion=" + rv1);
  REQUIRE(gone.status == 200);
  evs = events(gone.body);
  REQUIRE(evs.size() == 1);
  CHECK(evs[0]["type"] == "ERROR");
  CHECK(evs[0]["object"]["kind"] == "Status");
  CHECK(evs[0]["object"]["code"] == 410);
  CHECK(evs[0]["object"]["reason"] == "Expired");
  CHECK(evs[0]["object"]["message"].get<std::string>().rfind(
            "too old resource version: " + rv1 + " (", 0) == 0);
  // A continue token from before the compaction stays an HTTP 410.
  auto expired = c.call("GET", std::string(kCms) + "?limit=1&continue=" + token);
  CHECK(expired.status == 410);
  CHECK(expired.json()["reason"] == "Expired");

  // A fault turns the next watch into an in-stream 410.
  api.inject_fault({{"kind", "gone-in-stream"}, {"resource", "configmaps"}, {"count", 1}});
  auto list = c.call("GET", kCms);
  const std::string list_rv = list.json()["metadata"]["resourceVersion"];
  w = c.call("GET", std::string(kCms) + "?watch=true&timeoutSeconds=5&resourceVersion=" + list_rv);
  REQUIRE(w.status == 200);
  evs = events(w.body);
  REQUIRE(evs.size() == 1);
  CHECK(evs[0]["type"] == "ERROR");
  CHECK(evs[0]["object"]["code"] == 410);
}

TEST_CASE("test API server: injected status faults and the request log", "[kube]") {
  REQUIRE_SERVER_PEERS();
  auto started = KubeApiServer::start();
  REQUIRE(started.ok());
  auto& api = started.value();
  Client c(api, api.admin_token());

  api.inject_fault({{"kind", "status"},
                    {"verb", "list"},
                    {"resource", "configmaps"},
                    {"code", 429},
                    {"count", 1}});
  auto r = c.call("GET", kCms);
  CHECK(r.status == 429);
  CHECK(!r.header("retry-after").empty());
  CHECK(c.call("GET", kCms).status == 200);

  api.inject_fault({{"kind", "status"}, {"code", 500}, {"count", 5}});
  api.clear_faults();
  CHECK(c.call("GET", kCms).status == 200);

  bool seen = false;
  for (const auto& entry : api.requests()) {
    if (entry["verb"] == "list" && entry["resource"] == "configmaps" && entry["code"] == 429 &&
        entry["namespace"] == "default" && entry["user"] == "admin") {
      seen = true;
    }
  }
  CHECK(seen);
}

TEST_CASE("test API server: a drop-watch fault ends an open watch", "[kube]") {
  REQUIRE_SERVER_PEERS();
  auto started = KubeApiServer::start();
  REQUIRE(started.ok());
  auto& api = started.value();

  // The watch would run for 10 minutes and the client gives up after 10 s, so a completed
  // response means the server ended the stream.
  HttpResult watched;
  std::thread watcher([&] {
    Client c(api, api.admin_token());
    watched = c.call("GET", std::string(kCms) + "?watch=true&timeoutSeconds=600");
  });
  const bool open = berth::testing::wait_until(
      [&] {
        for (const auto& entry : api.requests()) {
          if (entry["verb"] == "watch" && entry["resource"] == "configmaps") return true;
        }
        return false;
      },
      std::chrono::seconds(10));
  api.inject_fault({{"kind", "drop-watch"}, {"resource", "configmaps"}, {"count", 1}});
  watcher.join();
  REQUIRE(open);
  CHECK(watched.ok());
  CHECK(watched.status == 200);
  CHECK(events(watched.body).empty());
}

TEST_CASE("test API server: custom resources, status subresource and patch types", "[kube]") {
  REQUIRE_SERVER_PEERS();
  auto started = KubeApiServer::start();
  REQUIRE(started.ok());
  auto& api = started.value();
  Client c(api, api.admin_token());
  const std::string apps = "/apis/berth.dev/v1alpha1/namespaces/default/appservices";

  // Discovery serves the CRD the fixture loaded.
  auto discovery = c.call("GET", "/apis/berth.dev/v1alpha1");
  REQUIRE(discovery.status == 200);
  CHECK(discovery.body.find("\"appservices/status\"") != std::string::npos);

  json app = {{"apiVersion", "berth.dev/v1alpha1"},
              {"kind", "AppService"},
              {"metadata", {{"name", "web"}}},
              {"spec", {{"imageRef", "nginx:1.25"}, {"containerPort", 8080}}}};
  REQUIRE(c.call("POST", apps, app).status == 201);

  auto status = c.call("PATCH", apps + "/web/status", {{"status", {{"phase", "Running"}}}},
                       "application/merge-patch+json");
  REQUIRE(status.status == 200);
  CHECK(status.json()["status"]["phase"] == "Running");
  CHECK(status.json()["metadata"]["generation"] == 1);

  // Status through the main resource is ignored; a spec change bumps generation.
  auto spec = c.call("PATCH", apps + "/web",
                     {{"spec", {{"imageRef", "nginx:1.26"}}}, {"status", {{"phase", "Failed"}}}},
                     "application/merge-patch+json");
  REQUIRE(spec.status == 200);
  CHECK(spec.json()["metadata"]["generation"] == 2);
  CHECK(spec.json()["status"]["phase"] == "Running");

  auto jp = c.call(
      "PATCH", apps + "/web",
      json::array({{{"op", "replace"}, {"path", "/spec/imageRef"}, {"value", "nginx:1.27"}}}),
      "application/json-patch+json");
  CHECK(jp.status == 200);
  CHECK(c.call("PATCH", apps + "/web", {{"spec", {{"imageRef", "x"}}}},
               "application/strategic-merge-patch+json")
            .status == 415);

  // Server-side apply without a field manager is refused; with one it records it.
  std::map<std::string, std::string> yaml_headers = {
      {"Authorization", "Bearer " + api.admin_token()},
      {"Content-Type", "application/apply-patch+yaml"}};
  const std::string applied =
      "apiVersion: berth.dev/v1alpha1\nkind: AppService\nmetadata:\n  name: web\n"
      "spec:\n  imageRef: nginx:1.28\n  containerPort: 8080\n";
  CHECK(c.conn.request("PATCH", apps + "/web", applied, yaml_headers).status == 400);
  auto apply = c.conn.request("PATCH", apps + "/web?fieldManager=berth-controller&force=true",
                              applied, yaml_headers);
  REQUIRE(apply.status == 200);
  bool managed = false;
  const json applied_obj = apply.json();
  for (const auto& entry : applied_obj["metadata"]["managedFields"]) {
    if (entry["manager"] == "berth-controller" && entry["operation"] == "Apply") managed = true;
  }
  CHECK(managed);

  // fieldValidation=Strict refuses an undeclared field with the codec's wording.
  json typo = app;
  typo["metadata"]["name"] = "typo";
  typo["spec"]["foo"] = 1;
  auto strict = c.call("POST", apps + "?fieldValidation=Strict", typo);
  CHECK(strict.status == 400);
  CHECK(strict.json()["message"] ==
        "AppService in version \"v1alpha1\" cannot be handled as a AppService: strict decoding "
        "error: unknown field \"spec.foo\"");

  // The OpenAPI documents publish /status where it is served.
  auto v3 = c.call("GET", "/openapi/v3/apis/berth.dev/v1alpha1");
  REQUIRE(v3.status == 200);
  CHECK(v3.json()["paths"].contains(
      "/apis/berth.dev/v1alpha1/namespaces/{namespace}/appservices/{name}/status"));
  // v2 is JSON only: asked for protobuf alone (as kubectl asks) the answer is 406, which makes
  // kubectl go on without it.
  auto v2 = c.call("GET", "/openapi/v2");
  REQUIRE(v2.status == 200);
  CHECK(v2.json()["paths"].contains(
      "/apis/berth.dev/v1alpha1/namespaces/{namespace}/appservices/{name}/status"));
  CHECK(c.conn
            .request("GET", "/openapi/v2", "",
                     {{"Authorization", "Bearer " + api.admin_token()},
                      {"Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}})
            .status == 406);

  // A self-subject access review answers from the same authorizer.
  auto review = c.call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                       {{"apiVersion", "authorization.k8s.io/v1"},
                        {"kind", "SelfSubjectAccessReview"},
                        {"spec",
                         {{"resourceAttributes",
                           {{"verb", "patch"},
                            {"group", "berth.dev"},
                            {"resource", "appservices"},
                            {"subresource", "status"}}}}}});
  REQUIRE(review.status == 201);
  CHECK(review.json()["status"]["allowed"] == true);
}

TEST_CASE("test API server: client certificates authenticate", "[kube]") {
  REQUIRE_SERVER_PEERS();
  if (!berth::testenv::on_path("curl")) {
    berth::testing::skip_test("curl is not installed (apt-get install curl)");
    return;
  }
  auto started = KubeApiServer::start();
  REQUIRE(started.ok());
  auto& api = started.value();
  std::string out;
  const int rc = berth::testenv::run_command(
      {"curl", "-sS", "--fail", "--cacert", api.ca_file(), "--cert", api.client_cert_file(),
       "--key", api.client_key_file(), api.server() + "/api/v1/namespaces/default/configmaps"},
      &out);
  CHECK(rc == 0);
  CHECK(out.find("\"ConfigMapList\"") != std::string::npos);
  bool seen = false;
  for (const auto& entry : api.requests()) {
    if (entry["user"] == "berth-test" && entry["code"] == 200) seen = true;
  }
  CHECK(seen);
}

TEST_CASE("test API server: a client that never finishes its TLS handshake blocks no one",
          "[kube]") {
  REQUIRE_SERVER_PEERS();
  auto started = KubeApiServer::start();
  REQUIRE(started.ok());
  auto& api = started.value();
  // Connected (queued for accept ahead of the next client) and silent.
  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(silent >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(
      static_cast<std::uint16_t>(std::stoi(api.server().substr(api.server().rfind(':') + 1))));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  Client c(api, api.admin_token());
  auto r = c.call("GET", kCms);
  ::close(silent);
  CHECK(r.ok());
  CHECK(r.status == 200);
}

TEST_CASE("test API server: a server that cannot start says why", "[kube]") {
  REQUIRE_SERVER_PEERS();
  const std::string dir = berth::testenv::make_temp_dir("kubeapi-bad-crd");
  const std::string crd = dir + "/crd.yaml";
  {
    std::ofstream out(crd);
    out << "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
           "metadata: {name: wrong}\nspec: {group: example.com}\n";
  }
  berth::testenv::KubeApiServerOptions options;
  options.default_crds = false;
  options.crd_files = {crd};
  auto started = KubeApiServer::start(options);
  std::filesystem::remove_all(dir);
  REQUIRE_FALSE(started.ok());
  CHECK(started.error().message.find("exited before it was ready") != std::string::npos);
  CHECK(started.error().message.find("is invalid") != std::string::npos);
}

TEST_CASE("test API server: a watch ends when its client goes away", "[kube]") {
  REQUIRE_SERVER_PEERS();
  auto started = KubeApiServer::start();
  REQUIRE(started.ok());
  auto& api = started.value();
  Client admin(api, api.admin_token());
  auto open_watches = [&] { return admin.call("GET", "/_test/watches").json()["open"].get<int>(); };

  {
    // The client gives up after 1 s on a watch the server would keep for 10 minutes.
    auto options = Client::options(api);
    options.timeout = std::chrono::milliseconds(1000);
    HttpConnection impatient(options);
    auto r = impatient.request("GET", std::string(kCms) + "?watch=true&timeoutSeconds=600", "",
                               {{"Authorization", "Bearer " + api.admin_token()}});
    CHECK_FALSE(r.ok());
  }
  CHECK(berth::testing::wait_until([&] { return open_watches() == 0; }, std::chrono::seconds(10)));
}

TEST_CASE("test API server: dry runs, collection deletes, a 410 into an open watch", "[kube]") {
  REQUIRE_SERVER_PEERS();
  auto started = KubeApiServer::start();
  REQUIRE(started.ok());
  auto& api = started.value();
  Client c(api, api.admin_token());

  auto dry = c.call("POST", std::string(kCms) + "?dryRun=All", configmap("dry", "1"));
  CHECK(dry.status == 201);
  CHECK(c.call("GET", std::string(kCms) + "/dry").status == 404);

  json labelled = configmap("l1", "1");
  labelled["metadata"]["labels"] = {{"app", "x"}};
  REQUIRE(c.call("POST", kCms, labelled).status == 201);
  labelled["metadata"]["name"] = "l2";
  REQUIRE(c.call("POST", kCms, labelled).status == 201);
  REQUIRE(c.call("POST", kCms, configmap("other", "1")).status == 201);
  CHECK(c.call("DELETE", std::string(kCms) + "?labelSelector=app%3Dx").status == 200);
  const json left = c.call("GET", kCms).json();
  REQUIRE(left["items"].size() == 1);
  CHECK(left["items"][0]["metadata"]["name"] == "other");

  // A watch that is already open gets the in-stream 410, then the server ends it.
  HttpResult watched;
  std::thread watcher([&] {
    Client w(api, api.admin_token());
    watched = w.call("GET", std::string(kCms) + "?watch=true&timeoutSeconds=600&resourceVersion=" +
                                left["metadata"]["resourceVersion"].get<std::string>());
  });
  const bool open = berth::testing::wait_until(
      [&] { return c.call("GET", "/_test/watches").json()["open"] == 1; },
      std::chrono::seconds(10));
  api.inject_fault({{"kind", "gone-in-stream"}, {"resource", "configmaps"}});
  watcher.join();
  REQUIRE(open);
  REQUIRE(watched.status == 200);
  const auto evs = events(watched.body);
  REQUIRE(evs.size() == 1);
  CHECK(evs[0]["type"] == "ERROR");
  CHECK(evs[0]["object"]["reason"] == "Expired");
}
