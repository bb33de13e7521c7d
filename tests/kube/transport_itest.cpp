// The transport against a real TLS peer on loopback (tls_test_server.h): certificate checks,
// credentials, keep-alive, deadlines, streaming and cancellation, 401 handling.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "common/log.h"
#include "kube/config.h"
#include "kube/credentials.h"
#include "kube/transport.h"
#include "kube_itest_support.h"
#include "support/wait.h"
#include "tls_test_server.h"

using namespace berth;
using namespace berth::kube;
using namespace berth::kube::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

ClusterConfig config_for(const TlsTestServer& server) {
  ClusterConfig c;
  c.server = server.server();
  c.ca_pem = server.pki().ca.cert_pem;
  c.origin = "test";
  return c;
}

std::unique_ptr<Transport> transport(ClusterConfig config, TransportOptions options = {}) {
  options.qps = 0;  // the limiter has its own tests; these must not wait on it
  auto t = make_transport(std::move(config), options);
  REQUIRE(t.ok());
  return std::move(*t);
}

Request get(const std::string& target, std::chrono::milliseconds timeout = 10s) {
  Request r;
  r.target = target;
  r.timeout = timeout;
  return r;
}

void ok(const http::request<http::string_body>&, Exchange& ex) { ex.respond(200, "{}"); }

}  // namespace

TEST_CASE("a server certificate from another CA fails TLS verification", "[kube][transport]") {
  TlsTestServer server(ok);
  ClusterConfig config = config_for(server);
  config.ca_pem = Pki::make().ca.cert_pem;
  auto r = transport(config)->send(get("/version"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kFailedPrecondition);
  CHECK_THAT(r.error().message, Catch::Contains("TLS handshake with the Kubernetes API server at "
                                                "127.0.0.1:") &&
                                    Catch::Contains("certificate verify failed"));
  CHECK(server.seen().empty());
}

TEST_CASE("tls-server-name is the name the certificate is checked against", "[kube][transport]") {
  TlsTestServer server(ok);
  ClusterConfig config = config_for(server);
  config.tls_server_name = "kube.test";  // in the certificate's SANs
  auto named = transport(config)->send(get("/version"));
  REQUIRE(named.ok());
  CHECK(named->status == 200);

  config.tls_server_name = "other.test";
  auto wrong = transport(config)->send(get("/version"));
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().code == ErrorCode::kFailedPrecondition);
}

TEST_CASE("a bearer token is sent with every request", "[kube][transport]") {
  TlsTestServer server(ok);
  ClusterConfig config = config_for(server);
  config.token = Secret("tok-123");
  auto t = transport(config);
  REQUIRE(t->send(get("/api")).ok());
  REQUIRE(t->send(get("/apis")).ok());
  auto seen = server.seen();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].authorization == "Bearer tok-123");
  CHECK(seen[1].authorization == "Bearer tok-123");
  CHECK(seen[1].target == "/apis");
}

TEST_CASE("a configured client certificate is presented", "[kube][transport]") {
  TlsTestServer server(ok, /*require_client_cert=*/true);
  ClusterConfig config = config_for(server);
  auto without = transport(config)->send(get("/api"));
  CHECK_FALSE(without.ok());

  config.client_cert_pem = server.pki().client.cert_pem;
  config.client_key_pem = server.pki().client.key_pem;
  auto with = transport(config)->send(get("/api"));
  REQUIRE(with.ok());
  CHECK(with->status == 200);
  CHECK(server.seen().back().client_cn == "berth-client");
  CHECK(server.seen().back().authorization.empty());
}

TEST_CASE("a server path prefix is kept in front of every request", "[kube][transport]") {
  TlsTestServer server(ok);
  ClusterConfig config = config_for(server);
  config.server += "/k8s/clusters/c-1";
  REQUIRE(transport(config)->send(get("/api/v1/namespaces?limit=1")).ok());
  CHECK(server.seen().back().target == "/k8s/clusters/c-1/api/v1/namespaces?limit=1");
}

TEST_CASE(
    "the method, body and content type of a request reach the server, and the answer's "
    "status, content type and body come back",
    "[kube][transport]") {
  std::string got_body, got_type;
  TlsTestServer server([&](const http::request<http::string_body>& req, Exchange& ex) {
    got_body = req.body();
    got_type = std::string(req[http::field::content_type]);
    ex.respond(409, R"({"kind":"Status","code":409})");
  });
  Request r = get("/apis/berth.dev/v1alpha1/namespaces/a/appservices/web");
  r.method = "PATCH";
  r.content_type = "application/merge-patch+json";
  r.body = R"({"spec":{}})";
  auto res = transport(config_for(server))->send(r);
  REQUIRE(res.ok());
  CHECK(res->status == 409);
  CHECK(res->content_type == "application/json");
  CHECK(res->body == R"({"kind":"Status","code":409})");
  CHECK(server.seen().back().method == "PATCH");
  CHECK(got_body == R"({"spec":{}})");
  CHECK(got_type == "application/merge-patch+json");
}

TEST_CASE("sequential requests reuse one keep-alive connection", "[kube][transport]") {
  TlsTestServer server(ok);
  LogCapture logs;
  auto t = transport(config_for(server));
  for (int i = 0; i < 5; ++i) REQUIRE(t->send(get("/api"))->status == 200);
  CHECK(server.connections() == 1);
  CHECK(logs.count("kube connection opened") == 1);
}

TEST_CASE("concurrent requests open connections of their own and pool them", "[kube][transport]") {
  std::atomic<int> inside{0};
  std::promise<void> both_inside;
  std::shared_future<void> together = both_inside.get_future().share();
  TlsTestServer server([&](const http::request<http::string_body>& req, Exchange& ex) {
    // The two requests wait for each other, so they can only succeed on two connections.
    if (req.target() == "/pair") {
      if (++inside == 2)
        both_inside.set_value();
      else
        together.wait_for(10s);
    }
    ex.respond(200, "{}");
  });
  auto t = transport(config_for(server));
  auto a = std::async(std::launch::async, [&] { return t->send(get("/pair")); });
  auto b = std::async(std::launch::async, [&] { return t->send(get("/pair")); });
  REQUIRE(a.get().ok());
  REQUIRE(b.get().ok());
  CHECK(server.connections() == 2);
  for (int i = 0; i < 4; ++i) REQUIRE(t->send(get("/api")).ok());
  CHECK(server.connections() == 2);
}

TEST_CASE("a pooled connection the server closed is replaced without failing the request",
          "[kube][transport]") {
  TlsTestServer server([](const http::request<http::string_body>&, Exchange& ex) {
    ex.respond(200, "{}");
    ex.close_after();  // keep-alive promised, then dropped
  });
  auto t = transport(config_for(server));
  for (int i = 0; i < 3; ++i) {
    auto r = t->send(get("/api"));
    REQUIRE(r.ok());
    CHECK(r->status == 200);
  }
  CHECK(server.connections() == 3);
}

TEST_CASE("a request the server stalls on ends at its deadline", "[kube][transport]") {
  TlsTestServer server([](const http::request<http::string_body>&, Exchange& ex) { ex.hold(); });
  auto r = transport(config_for(server))->send(get("/api/v1/secrets", 300ms));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kDeadlineExceeded);
  CHECK_THAT(r.error().message,
             Catch::Contains("did not answer GET /api/v1/secrets within 300 ms"));
}

TEST_CASE("a refused connection is kUnavailable", "[kube][transport]") {
  std::string address;
  {
    TlsTestServer server(ok);
    address = server.server();
  }
  ClusterConfig config;
  config.server = address;
  config.origin = "test";
  auto r = transport(config)->send(get("/api", 5s));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kUnavailable);
}

TEST_CASE("a body over 64 MiB is an error, not a response", "[kube][transport]") {
  TlsTestServer server([](const http::request<http::string_body>&, Exchange& ex) {
    ex.respond(200, std::string((64u << 20) + 1, 'x'));
  });
  auto r = transport(config_for(server))->send(get("/api/v1/configmaps", 60s));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kPayloadTooLarge);
}

TEST_CASE("a watch stream delivers whole lines however the chunks cut them",
          "[kube][transport][watch]") {
  TlsTestServer server([](const http::request<http::string_body>&, Exchange& ex) {
    ex.start_chunked();
    ex.chunk("{\"type\":\"ADDED\",\"n\":1}\n{\"type\":\"MOD");
    ex.chunk("IFIED\",\"n\":2}");
    ex.chunk("\n\n{\"type\":\"DELETED\",\"n\":3}\n{\"type\":\"BOOKMARK\"}\n");
    ex.chunk("{\"last\":true}");  // no newline before the end of the body
    ex.finish_chunked();
  });
  std::vector<std::string> lines;
  auto status = transport(config_for(server))
                    ->stream(get("/api/v1/secrets?watch=1"),
                             [&](std::string_view line) {
                               lines.emplace_back(line);
                               return true;
                             },
                             {});
  REQUIRE(status.ok());
  CHECK(*status == 200);
  CHECK(lines == std::vector<std::string>{"{\"type\":\"ADDED\",\"n\":1}",
                                          "{\"type\":\"MODIFIED\",\"n\":2}",
                                          "{\"type\":\"DELETED\",\"n\":3}",
                                          "{\"type\":\"BOOKMARK\"}", "{\"last\":true}"});
}

TEST_CASE("a watch refused with an error status returns the body and no lines",
          "[kube][transport][watch]") {
  TlsTestServer server([](const http::request<http::string_body>&, Exchange& ex) {
    ex.respond(410, R"({"kind":"Status","code":410,"reason":"Expired"})");
  });
  int calls = 0;
  std::string body;
  auto status = transport(config_for(server))
                    ->stream(
                        get("/api/v1/secrets?watch=1"),
                        [&](std::string_view) {
                          ++calls;
                          return true;
                        },
                        {}, &body);
  REQUIRE(status.ok());
  CHECK(*status == 410);
  CHECK(calls == 0);
  CHECK(body == R"({"kind":"Status","code":410,"reason":"Expired"})");
}

TEST_CASE("a stop request ends a watch that is waiting for events", "[kube][transport][watch]") {
  TlsTestServer server([](const http::request<http::string_body>&, Exchange& ex) {
    ex.start_chunked();
    ex.chunk("{\"type\":\"ADDED\"}\n");
    ex.hold();  // an idle watch: nothing more until the server stops
  });
  auto t = transport(config_for(server));
  std::stop_source stop;
  std::atomic<int> lines{0};
  auto watch = std::async(std::launch::async, [&] {
    return t->stream(
        get("/api/v1/secrets?watch=1", 600s),
        [&](std::string_view) {
          ++lines;
          return true;
        },
        stop.get_token());
  });
  REQUIRE(berth::testing::wait_until([&] { return lines.load() == 1; }, 10s));
  stop.request_stop();
  // The watch was given ten minutes; it returns because of the stop, long before.
  REQUIRE(watch.wait_for(30s) == std::future_status::ready);
  auto status = watch.get();
  REQUIRE(status.ok());
  CHECK(*status == 200);
}

TEST_CASE("a watch stopped before it starts sends nothing", "[kube][transport][watch]") {
  TlsTestServer server(ok);
  std::stop_source stop;
  stop.request_stop();
  auto r = transport(config_for(server))
               ->stream(
                   get("/api/v1/secrets?watch=1"), [](std::string_view) { return true; },
                   stop.get_token());
  REQUIRE_FALSE(r.ok());
  CHECK(server.seen().empty());
}

TEST_CASE("a watch ends when its timeout passes or the consumer says stop",
          "[kube][transport][watch]") {
  TlsTestServer server([](const http::request<http::string_body>&, Exchange& ex) {
    ex.start_chunked();
    ex.chunk("{\"n\":1}\n{\"n\":2}\n");
    ex.hold();
  });
  auto t = transport(config_for(server));
  int lines = 0;
  auto timed = t->stream(get("/w", 500ms),
                         [&](std::string_view) {
                           ++lines;
                           return true;
                         },
                         {});
  REQUIRE(timed.ok());
  CHECK(*timed == 200);
  CHECK(lines == 2);

  lines = 0;
  auto enough = t->stream(get("/w", 600s),
                          [&](std::string_view) {
                            ++lines;
                            return false;
                          },
                          {});
  REQUIRE(enough.ok());
  CHECK(lines == 1);
}

TEST_CASE("a 401 re-reads the token file and retries once with the new token",
          "[kube][transport][credentials]") {
  std::mutex mu;
  std::string accepted = "Bearer old";
  TlsTestServer server([&](const http::request<http::string_body>& req, Exchange& ex) {
    std::lock_guard lock(mu);
    ex.respond(req[http::field::authorization] == accepted ? 200 : 401, "{}");
  });
  TempDir dir;
  dir.write("token", "old\n");
  ClusterConfig config = config_for(server);
  config.token_file = (dir.path / "token").string();
  auto t = transport(config);
  REQUIRE(t->send(get("/api"))->status == 200);

  // The token rotates on disk and the server stops accepting the old one.
  dir.write("token", "new\n");
  {
    std::lock_guard lock(mu);
    accepted = "Bearer new";
  }
  auto r = t->send(get("/api"));
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  auto seen = server.seen();
  REQUIRE(seen.size() == 3);
  CHECK(seen[1].authorization == "Bearer old");
  CHECK(seen[2].authorization == "Bearer new");

  // Nothing new on disk: the 401 comes back after one attempt.
  {
    std::lock_guard lock(mu);
    accepted = "Bearer newer";
  }
  auto refused = t->send(get("/api"));
  REQUIRE(refused.ok());
  CHECK(refused->status == 401);
  CHECK(server.seen().size() == 4);
}

TEST_CASE("a 401 with a fixed token is the answer", "[kube][transport][credentials]") {
  TlsTestServer server(
      [](const http::request<http::string_body>&, Exchange& ex) { ex.respond(401, "{}"); });
  ClusterConfig config = config_for(server);
  config.token = Secret("revoked");
  auto r = transport(config)->send(get("/api"));
  REQUIRE(r.ok());
  CHECK(r->status == 401);
  CHECK(server.seen().size() == 1);
}

TEST_CASE("a token file is re-read once a minute", "[kube][credentials]") {
  TempDir dir;
  dir.write("token", "first\n");
  auto now = std::chrono::steady_clock::time_point{};
  auto source = make_token_file_source((dir.path / "token").string(), std::chrono::minutes(1),
                                       [&] { return now; });
  auto deadline = std::chrono::steady_clock::now() + 10s;
  auto a = source->get(deadline);
  REQUIRE(a.ok());
  CHECK(a->token.reveal() == "first");
  dir.write("token", "second\n");
  now += 59s;
  CHECK(source->get(deadline)->token.reveal() == "first");
  now += 1s;
  auto b = source->get(deadline);
  CHECK(b->token.reveal() == "second");
  CHECK(b->generation != a->generation);

  // A file that vanishes mid-rotation keeps the last good token.
  fs::remove(dir.path / "token");
  now += 2min;
  CHECK(source->get(deadline)->token.reveal() == "second");
}

TEST_CASE("a missing token file is kUnauthenticated", "[kube][credentials]") {
  auto source = make_token_file_source("/nonexistent/berth/token");
  auto r = source->get(std::chrono::steady_clock::now() + 1s);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kUnauthenticated);
}

TEST_CASE(
    "requests past the burst wait for the rate limiter, and fail when the wait would pass "
    "their deadline",
    "[kube][transport]") {
  TlsTestServer server(ok);
  TransportOptions options;
  options.qps = 0.001;  // one token in 1000 s
  options.burst = 2;
  auto t = make_transport(config_for(server), options);
  REQUIRE(t.ok());
  REQUIRE((*t)->send(get("/a"))->status == 200);
  REQUIRE((*t)->send(get("/b"))->status == 200);
  auto limited = (*t)->send(get("/c", 5s));
  REQUIRE_FALSE(limited.ok());
  CHECK(limited.error().code == ErrorCode::kDeadlineExceeded);
  CHECK_THAT(limited.error().message, Catch::Contains("rate limit"));
  CHECK(server.seen().size() == 2);
}

namespace {

// Sets environment variables for one test and restores them afterwards.
struct ScopedEnv {
  explicit ScopedEnv(std::vector<std::pair<std::string, std::string>> vars) {
    for (auto& [k, v] : vars) {
      const char* old = ::getenv(k.c_str());
      saved.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
      ::setenv(k.c_str(), v.c_str(), 1);
    }
  }
  ~ScopedEnv() {
    for (auto& [k, v] : saved) {
      if (v)
        ::setenv(k.c_str(), v->c_str(), 1);
      else
        ::unsetenv(k.c_str());
    }
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
};

}  // namespace

TEST_CASE("in-cluster configuration reaches the server with the service-account token",
          "[kube][transport][config]") {
  TlsTestServer server(ok);
  TempDir sa;
  sa.write("token", "sa-token\n");
  sa.write("ca.crt", server.pki().ca.cert_pem);
  sa.write("namespace", "berth-system");
  const std::string port = server.server().substr(server.server().rfind(':') + 1);
  ScopedEnv env({{"KUBERNETES_SERVICE_HOST", "127.0.0.1"}, {"KUBERNETES_SERVICE_PORT", port}});
  LoadOptions options;
  options.service_account_dir = sa.path.string();
  auto config = load_in_cluster(options);
  REQUIRE(config.ok());
  CHECK(config->default_namespace == "berth-system");
  auto r = transport(*config)->send(get("/api"));
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(server.seen().back().authorization == "Bearer sa-token");
}

TEST_CASE("a stop request ends a watch the server has not answered yet",
          "[kube][transport][watch]") {
  TlsTestServer server([](const http::request<http::string_body>&, Exchange& ex) { ex.hold(); });
  auto t = transport(config_for(server));
  std::stop_source stop;
  auto watch = std::async(std::launch::async, [&] {
    return t->stream(
        get("/api/v1/secrets?watch=1", 600s), [](std::string_view) { return true; },
        stop.get_token());
  });
  REQUIRE(berth::testing::wait_until([&] { return server.seen().size() == 1; }, 10s));
  stop.request_stop();
  REQUIRE(watch.wait_for(30s) == std::future_status::ready);
  auto r = watch.get();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "the watch was cancelled before the server answered");
}

// ---- against the test API server (hack/testenv/kubeapi) -------------------------------------

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ClusterConfig config_for(const testenv::KubeApiServer& api) {
  ClusterConfig c;
  c.server = api.server();
  c.ca_pem = slurp(api.ca_file());
  c.origin = "test API server";
  return c;
}

Request list_configmaps(std::chrono::milliseconds timeout = 10s) {
  return get("/api/v1/namespaces/default/configmaps", timeout);
}

}  // namespace

TEST_CASE("the test API server: a wrong CA fails verification", "[kube][transport][apiserver]") {
  BERTH_START_KUBE_API_SERVER(api);
  ClusterConfig config = config_for(api);
  config.ca_pem = Pki::make().ca.cert_pem;
  config.token = Secret(api.admin_token());
  auto r = transport(config)->send(list_configmaps());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kFailedPrecondition);
}

TEST_CASE("the test API server: token auth, client-certificate auth, and a removed token's 401",
          "[kube][transport][apiserver]") {
  BERTH_START_KUBE_API_SERVER(api);
  ClusterConfig config = config_for(api);
  config.token = Secret(api.admin_token());
  auto admin = transport(config)->send(list_configmaps());
  REQUIRE(admin.ok());
  CHECK(admin->status == 200);
  CHECK(nlohmann::json::parse(admin->body)["kind"] == "ConfigMapList");

  ClusterConfig by_cert = config_for(api);
  by_cert.client_cert_pem = slurp(api.client_cert_file());
  by_cert.client_key_pem = Secret(slurp(api.client_key_file()));
  auto cert = transport(by_cert)->send(list_configmaps());
  REQUIRE(cert.ok());
  CHECK(cert->status == 200);
  CHECK(api.requests().back()["user"] == "berth-test");

  api.set_token("alice", "alice-token");
  ClusterConfig alice = config_for(api);
  alice.token = Secret("alice-token");
  auto t = transport(alice);
  REQUIRE(t->send(get("/api"))->status == 200);
  api.remove_token("alice-token");
  auto removed = t->send(get("/api"));
  REQUIRE(removed.ok());
  CHECK(removed->status == 401);
}

TEST_CASE("the test API server: a rotated token file is picked up after the 401",
          "[kube][transport][apiserver]") {
  BERTH_START_KUBE_API_SERVER(api);
  api.set_token("sa", "sa-token-1");
  TempDir dir;
  dir.write("token", "sa-token-1\n");
  ClusterConfig config = config_for(api);
  config.token_file = (dir.path / "token").string();
  auto t = transport(config);
  REQUIRE(t->send(get("/api"))->status == 200);

  api.set_token("sa", "sa-token-2");
  api.remove_token("sa-token-1");
  dir.write("token", "sa-token-2\n");
  auto r = t->send(get("/api"));
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  std::vector<int> codes;
  for (const auto& req : api.requests())
    if (req["resource"] != "/_test/requests" && req["user"] != "admin")
      codes.push_back(req["code"]);
  CHECK(codes == std::vector<int>{200, 401, 200});
}

TEST_CASE("the test API server: sequential requests share one connection",
          "[kube][transport][apiserver]") {
  BERTH_START_KUBE_API_SERVER(api);
  ClusterConfig config = config_for(api);
  config.token = Secret(api.admin_token());
  LogCapture logs;
  auto t = transport(config);
  for (int i = 0; i < 5; ++i) REQUIRE(t->send(list_configmaps())->status == 200);
  CHECK(logs.count("kube connection opened") == 1);
}

TEST_CASE("the test API server: a stalled request ends at its deadline",
          "[kube][transport][apiserver]") {
  BERTH_START_KUBE_API_SERVER(api);
  api.inject_fault(
      {{"kind", "stall"}, {"verb", "list"}, {"resource", "configmaps"}, {"seconds", 5}});
  ClusterConfig config = config_for(api);
  config.token = Secret(api.admin_token());
  auto t = transport(config);
  auto r = t->send(list_configmaps(500ms));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kDeadlineExceeded);
  // The fault is spent; the transport is still usable on a new connection.
  REQUIRE(t->send(list_configmaps())->status == 200);
}

TEST_CASE("the test API server: a watch streams events and a stop request ends it",
          "[kube][transport][apiserver][watch]") {
  BERTH_START_KUBE_API_SERVER(api);
  ClusterConfig config = config_for(api);
  config.token = Secret(api.admin_token());
  auto t = transport(config);
  auto list = t->send(list_configmaps());
  REQUIRE(list.ok());
  const std::string rv =
      nlohmann::json::parse(list->body)["metadata"]["resourceVersion"].get<std::string>();

  std::stop_source stop;
  std::mutex mu;
  std::vector<nlohmann::json> events;
  auto watch = std::async(std::launch::async, [&] {
    return t->stream(
        get("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=" + rv, 600s),
        [&](std::string_view line) {
          std::lock_guard lock(mu);
          events.push_back(nlohmann::json::parse(line));
          return true;
        },
        stop.get_token());
  });
  Request create;
  create.method = "POST";
  create.target = "/api/v1/namespaces/default/configmaps";
  create.content_type = "application/json";
  create.body =
      R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"seen"},"data":{"a":"1"}})";
  REQUIRE(t->send(create)->status == 201);
  REQUIRE(berth::testing::wait_until(
      [&] {
        std::lock_guard lock(mu);
        for (const auto& e : events)
          if (e["type"] == "ADDED" && e["object"]["metadata"]["name"] == "seen") return true;
        return false;
      },
      10s));
  stop.request_stop();
  REQUIRE(watch.wait_for(30s) == std::future_status::ready);
  auto status = watch.get();
  REQUIRE(status.ok());
  CHECK(*status == 200);
}
