// The generic resource client against a scripted transport: paths, query encoding, name
// validation, every write's verb and media type, Status decoding, watch framing and 410s.
#include <catch2/catch.hpp>

#include "kube/fake_transport.h"
#include "kube/resource_client.h"
#include "kube/status_error.h"
#include "kube/types.h"

namespace berth::kube {
namespace {

using nlohmann::json;
using testing::FakeTransport;
using testing::json_response;
using testing::status_body;
using testing::watch_line;
using testing::WatchScript;

const ResourceType kSecrets{"", "v1", "secrets", "Secret", true};
const ResourceType kApps{"berth.dev", "v1alpha1", "appservices", "AppService", true};
const ResourceType kNodes{"", "v1", "nodes", "Node", false};

json object(const std::string& ns, const std::string& name, const std::string& rv = "") {
  json o = {{"apiVersion", "berth.dev/v1alpha1"},
            {"kind", "AppService"},
            {"metadata", {{"name", name}, {"namespace", ns}}}};
  if (!rv.empty()) o["metadata"]["resourceVersion"] = rv;
  return o;
}

TEST_CASE(
    "paths: the core group under /api, named groups under /apis, all namespaces without "
    "the namespace part",
    "[kube]") {
  FakeTransport t;
  CHECK(ResourceClient(t, kSecrets).collection_path("prod") == "/api/v1/namespaces/prod/secrets");
  CHECK(ResourceClient(t, kSecrets).object_path("prod", "db") ==
        "/api/v1/namespaces/prod/secrets/db");
  CHECK(ResourceClient(t, kApps).collection_path("prod") ==
        "/apis/berth.dev/v1alpha1/namespaces/prod/appservices");
  CHECK(ResourceClient(t, kApps).collection_path("") == "/apis/berth.dev/v1alpha1/appservices");
  CHECK(ResourceClient(t, kNodes).object_path("ignored", "n1") == "/api/v1/nodes/n1");
}

TEST_CASE("hostile names and namespaces are refused before any request is sent", "[kube]") {
  FakeTransport t;
  ResourceClient client(t, kApps);
  for (const std::string& bad :
       std::vector<std::string>{"../secrets", "a/b", "Web", "web?watch=1", "%2e%2e", "", "a b",
                                "web#x", std::string(254, 'a'), "web\r\nX: y"}) {
    INFO(bad);
    auto got = client.get("prod", bad);
    REQUIRE_FALSE(got.ok());
    CHECK(got.error().code == ErrorCode::kInvalidArgument);
    CHECK(got.error().message.find('\n') == std::string::npos);
  }
  for (const std::string& bad :
       std::vector<std::string>{"../kube-system", "a.b", "prod/x", "PROD", ""}) {
    INFO(bad);
    auto got = client.get(bad, "web");
    REQUIRE_FALSE(got.ok());
    CHECK(got.error().code == ErrorCode::kInvalidArgument);
  }
  CHECK(client.list("a/b").error().code == ErrorCode::kInvalidArgument);
  CHECK(client.create(object("prod", "../x")).error().code == ErrorCode::kInvalidArgument);
  CHECK(client.merge_patch("prod", "x/y", json::object()).error().code ==
        ErrorCode::kInvalidArgument);
  CHECK(client.remove("prod", "..").error().code == ErrorCode::kInvalidArgument);
  PatchOptions sub;
  sub.subresource = "status/../../x";
  CHECK(client.merge_patch("prod", "web", json::object(), sub).error().code ==
        ErrorCode::kInvalidArgument);
  CHECK(t.requests().empty());
  // The path builders encode on their own too: a segment never becomes two.
  CHECK(client.object_path("prod", "a/b") ==
        "/apis/berth.dev/v1alpha1/namespaces/prod/appservices/a%2Fb");
}

TEST_CASE(
    "list sends URL-encoded selectors, limit and continue, and reads items, version and "
    "continue token",
    "[kube]") {
  FakeTransport t;
  t.push_response(json_response(
      200, {{"kind", "SecretList"},
            {"metadata", {{"resourceVersion", "42"}, {"continue", "tok"}}},
            {"items", json::array({{{"metadata", {{"name", "a"}, {"namespace", "prod"}}}}})}}));
  ResourceClient client(t, kSecrets);
  ListOptions options;
  options.label_selector = "app in (a,b),tier!=x";
  options.limit = 2;
  options.continue_token = "eyJ2IjoibWV0YS/rOjEifQ==+";
  auto page = client.list("prod", options);
  REQUIRE(page.ok());
  CHECK(t.requests().at(0).method == "GET");
  CHECK(t.requests().at(0).target ==
        "/api/v1/namespaces/prod/secrets?labelSelector=app%20in%20%28a%2Cb%29%2Ctier%21%3Dx"
        "&limit=2&continue=eyJ2IjoibWV0YS%2FrOjEifQ%3D%3D%2B");
  CHECK(page->resource_version == "42");
  CHECK(page->continue_token == "tok");
  REQUIRE(page->items.size() == 1);
  // Items of built-in lists come without apiVersion/kind; the client fills them in.
  CHECK(page->items[0]["kind"] == "Secret");
  CHECK(page->items[0]["apiVersion"] == "v1");
}

TEST_CASE("list_all follows continue tokens to the last page", "[kube]") {
  FakeTransport t;
  t.push_response(json_response(200, {{"metadata", {{"resourceVersion", "5"}, {"continue", "p2"}}},
                                      {"items", json::array({object("a", "one")})}}));
  t.push_response(json_response(200, {{"metadata", {{"resourceVersion", "5"}}},
                                      {"items", json::array({object("a", "two")})}}));
  ResourceClient client(t, kApps);
  ListOptions options;
  options.limit = 1;
  auto all = client.list_all("", options);
  REQUIRE(all.ok());
  REQUIRE(all->items.size() == 2);
  CHECK(all->items[1]["metadata"]["name"] == "two");
  CHECK(all->resource_version == "5");
  CHECK(all->continue_token.empty());
  REQUIRE(t.requests().size() == 2);
  CHECK(t.requests()[0].target == "/apis/berth.dev/v1alpha1/appservices?limit=1");
  CHECK(t.requests()[1].target == "/apis/berth.dev/v1alpha1/appservices?limit=1&continue=p2");
}

TEST_CASE("list_all starts over when a continue token has expired (410)", "[kube]") {
  FakeTransport t;
  t.push_response(json_response(200, {{"metadata", {{"resourceVersion", "5"}, {"continue", "p2"}}},
                                      {"items", json::array({object("a", "old")})}}));
  t.push_response(json_response(410, status_body(410, "Expired",
                                                 "The provided continue "
                                                 "parameter is too old")));
  t.push_response(json_response(200, {{"metadata", {{"resourceVersion", "9"}}},
                                      {"items", json::array({object("a", "new")})}}));
  ResourceClient client(t, kApps);
  auto all = client.list_all("a");
  REQUIRE(all.ok());
  REQUIRE(all->items.size() == 1);
  CHECK(all->items[0]["metadata"]["name"] == "new");
  CHECK(all->resource_version == "9");
  CHECK(t.requests()[2].target.find("continue") == std::string::npos);
}

TEST_CASE("create POSTs JSON to the collection of the object's namespace", "[kube]") {
  FakeTransport t;
  t.push_response(json_response(201, object("prod", "web", "7")));
  ResourceClient client(t, kApps);
  auto created = client.create(object("prod", "web"));
  REQUIRE(created.ok());
  CHECK((*created)["metadata"]["resourceVersion"] == "7");
  const Request r = t.requests().at(0);
  CHECK(r.method == "POST");
  CHECK(r.target == "/apis/berth.dev/v1alpha1/namespaces/prod/appservices");
  CHECK(r.content_type == "application/json");
  CHECK(json::parse(r.body)["metadata"]["name"] == "web");
  json no_ns = object("", "web");
  CHECK(client.create(no_ns).error().code == ErrorCode::kInvalidArgument);
}

TEST_CASE("update PUTs with the resourceVersion and refuses an object without one", "[kube]") {
  FakeTransport t;
  ResourceClient client(t, kApps);
  auto refused = client.update(object("prod", "web"));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::kInvalidArgument);
  CHECK(t.requests().empty());

  t.push_response(json_response(200, object("prod", "web", "8")));
  REQUIRE(client.update(object("prod", "web", "7"), "status").ok());
  const Request r = t.requests().at(0);
  CHECK(r.method == "PUT");
  CHECK(r.target == "/apis/berth.dev/v1alpha1/namespaces/prod/appservices/web/status");
  CHECK(json::parse(r.body)["metadata"]["resourceVersion"] == "7");
}

TEST_CASE("merge_patch sends application/merge-patch+json with the field manager", "[kube]") {
  FakeTransport t;
  t.push_response(json_response(200, object("prod", "web", "8")));
  ResourceClient client(t, kApps);
  PatchOptions options;
  options.subresource = "status";
  REQUIRE(client.merge_patch("prod", "web", {{"status", {{"phase", "Running"}}}}, options).ok());
  const Request r = t.requests().at(0);
  CHECK(r.method == "PATCH");
  CHECK(r.content_type == "application/merge-patch+json");
  CHECK(r.target ==
        "/apis/berth.dev/v1alpha1/namespaces/prod/appservices/web/status?fieldManager=berth-"
        "controller");
  CHECK(json::parse(r.body) == json{{"status", {{"phase", "Running"}}}});
}

TEST_CASE("apply is a server-side apply patch with fieldManager=berth-controller and force",
          "[kube]") {
  FakeTransport t;
  t.push_response(json_response(200, object("prod", "web", "8")));
  ResourceClient client(t, kApps);
  json body = {{"metadata", {{"name", "web"}, {"namespace", "prod"}}},
               {"status", {{"phase", "Running"}}}};
  PatchOptions options;
  options.force = true;
  options.subresource = "status";
  REQUIRE(client.apply(body, options).ok());
  const Request r = t.requests().at(0);
  CHECK(r.method == "PATCH");
  CHECK(r.content_type == "application/apply-patch+yaml");
  CHECK(r.target ==
        "/apis/berth.dev/v1alpha1/namespaces/prod/appservices/web/status"
        "?fieldManager=berth-controller&force=true");
  const json sent = json::parse(r.body);
  CHECK(sent["apiVersion"] == "berth.dev/v1alpha1");
  CHECK(sent["kind"] == "AppService");

  json other = body;
  other["kind"] = "Secret";
  CHECK(client.apply(other).error().code == ErrorCode::kInvalidArgument);
  CHECK(t.requests().size() == 1);
}

TEST_CASE("remove sends a uid precondition and reports an absent object as kNotFound", "[kube]") {
  FakeTransport t;
  t.push_response(json_response(200, status_body(200, "", "")));
  t.push_response(
      json_response(404, status_body(404, "NotFound", "appservices.berth.dev \"web\" not found")));
  ResourceClient client(t, kApps);
  REQUIRE(client.remove("prod", "web", "uid-1").ok());
  const Request r = t.requests().at(0);
  CHECK(r.method == "DELETE");
  CHECK(json::parse(r.body)["preconditions"]["uid"] == "uid-1");
  Status gone = client.remove("prod", "web");
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == ErrorCode::kNotFound);
  CHECK(gone.error().message == "appservices.berth.dev \"web\" not found");
  CHECK(t.requests().at(1).body.empty());
}

TEST_CASE("update_with_retry re-reads and retries after a 409", "[kube]") {
  FakeTransport t;
  int reads = 0;
  int writes = 0;
  t.on_send = [&](const Request& r) -> Result<Response> {
    if (r.method == "GET") {
      ++reads;
      json o = object("prod", "web", std::to_string(reads));
      o["spec"] = {{"replicas", reads}};
      return json_response(200, o);
    }
    ++writes;
    if (writes == 1) {
      return json_response(409,
                           status_body(409, "Conflict",
                                       "Operation cannot be fulfilled on appservices.berth.dev "
                                       "\"web\": the object has been modified; please apply "
                                       "your changes to the latest version and try again"));
    }
    return json_response(200, json::parse(r.body));
  };
  ResourceClient client(t, kApps);
  auto result = client.update_with_retry("prod", "web", [](json& o) {
    o["metadata"]["labels"] = {{"seen", "yes"}};
    return true;
  });
  REQUIRE(result.ok());
  CHECK(reads == 2);
  CHECK(writes == 2);
  // The second write is based on the second read.
  CHECK((*result)["metadata"]["resourceVersion"] == "2");
  CHECK((*result)["metadata"]["labels"]["seen"] == "yes");
}

TEST_CASE(
    "update_with_retry gives up after its attempts with the conflict, and skips the write "
    "when mutate says so",
    "[kube]") {
  FakeTransport t;
  t.on_send = [&](const Request& r) -> Result<Response> {
    if (r.method == "GET") return json_response(200, object("prod", "web", "1"));
    return json_response(409, status_body(409, "Conflict", "the object has been modified"));
  };
  ResourceClient client(t, kApps);
  auto result = client.update_with_retry(
      "prod", "web", [](json&) { return true; }, "", 3);
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == ErrorCode::kConflict);
  CHECK(t.requests().size() == 6);

  FakeTransport t2;
  t2.push_response(json_response(200, object("prod", "web", "1")));
  ResourceClient client2(t2, kApps);
  auto skipped = client2.update_with_retry("prod", "web", [](json&) { return false; });
  REQUIRE(skipped.ok());
  CHECK(t2.requests().size() == 1);
}

TEST_CASE("Status objects become errors with the server's message and a mapped code", "[kube]") {
  struct Row {
    int http;
    ErrorCode code;
  };
  for (const Row row :
       {Row{400, ErrorCode::kInvalidArgument}, Row{401, ErrorCode::kUnauthenticated},
        Row{403, ErrorCode::kPermissionDenied}, Row{404, ErrorCode::kNotFound},
        Row{409, ErrorCode::kConflict}, Row{410, ErrorCode::kFailedPrecondition},
        Row{422, ErrorCode::kValidation}, Row{429, ErrorCode::kUnavailable},
        Row{500, ErrorCode::kUnavailable}, Row{503, ErrorCode::kUnavailable},
        Row{504, ErrorCode::kDeadlineExceeded}, Row{418, ErrorCode::kInternal}}) {
    INFO(row.http);
    const Error e = status_error(row.http, status_body(row.http, "X", "it failed").dump());
    CHECK(e.code == row.code);
    CHECK(e.message == (row.http == 410 ? "expired: it failed" : "it failed"));
  }
  const Error invalid = status_error(
      422, json{{"kind", "Status"},
                {"code", 422},
                {"reason", "Invalid"},
                {"message",
                 "AppService.berth.dev \"web\" is invalid: spec.containerPort: "
                 "Invalid value: 0"},
                {"details", {{"causes", json::array({{{"field", "spec.containerPort"}}})}}}}
               .dump());
  CHECK(invalid.code == ErrorCode::kValidation);
  CHECK(invalid.field == "spec.containerPort");
  CHECK(is_expired(
      status_error(410, status_body(410, "Expired", "too old resource version").dump())));
  CHECK_FALSE(is_expired(status_error(409, "")));
  CHECK(status_error(500, status_body(500, "Timeout", "timed out").dump()).code ==
        ErrorCode::kDeadlineExceeded);
}

TEST_CASE("an error body that is not a Status still gives one clear printable line", "[kube]") {
  const Error e = status_error(502, "<html>\r\nBad Gateway\x01</html>");
  CHECK(e.code == ErrorCode::kUnavailable);
  CHECK(e.message.rfind("the API server answered HTTP 502", 0) == 0);
  CHECK(e.message.find('\n') == std::string::npos);
  CHECK(e.message.find('\r') == std::string::npos);
  CHECK(e.message.find("\\x01") != std::string::npos);
  CHECK(status_error(500, std::string(5000, 'x')).message.size() < 600);
}

TEST_CASE("a transport failure is returned as it is", "[kube]") {
  FakeTransport t;
  t.on_send = [](const Request&) -> Result<Response> {
    return make_error(ErrorCode::kDeadlineExceeded, "timed out");
  };
  CHECK(ResourceClient(t, kApps).get("a", "b").error().code == ErrorCode::kDeadlineExceeded);
}

TEST_CASE(
    "watch asks for bookmarks from a version with a server timeout and a longer client "
    "deadline, and delivers events in order",
    "[kube]") {
  FakeTransport t;
  WatchScript script;
  script.lines = {watch_line("ADDED", object("a", "one", "11")), "\n",
                  watch_line("BOOKMARK", {{"metadata", {{"resourceVersion", "12"}}}}),
                  watch_line("DELETED", object("a", "one", "13"))};
  t.push_watch(script);
  ResourceClient client(t, kApps);
  WatchOptions options;
  options.resource_version = "10";
  options.timeout_seconds = 60;
  options.label_selector = "a=b";
  std::vector<std::string> seen;
  bool gone = true;
  Status st = client.watch(
      "a", options,
      [&](const WatchEvent& e) {
        seen.push_back(e.type + ":" + e.object["metadata"]["resourceVersion"].get<std::string>());
        return true;
      },
      std::stop_token{}, &gone);
  REQUIRE(st.ok());
  CHECK_FALSE(gone);
  CHECK(seen == std::vector<std::string>{"ADDED:11", "BOOKMARK:12", "DELETED:13"});
  const Request r = t.stream_requests().at(0);
  CHECK(r.target ==
        "/apis/berth.dev/v1alpha1/namespaces/a/appservices?watch=true&allowWatchBookmarks=true"
        "&resourceVersion=10&timeoutSeconds=60&labelSelector=a%3Db");
  CHECK(r.timeout > std::chrono::seconds(60));
}

TEST_CASE("watch stops when the handler returns false", "[kube]") {
  FakeTransport t;
  t.push_watch({200,
                {watch_line("ADDED", object("a", "one", "1")),
                 watch_line("ADDED", object("a", "two", "2"))}});
  int count = 0;
  REQUIRE(ResourceClient(t, kApps)
              .watch(
                  "a", {}, [&](const WatchEvent&) { return ++count < 1; }, std::stop_token{})
              .ok());
  CHECK(count == 1);
}

TEST_CASE("watch reports 410 Gone, as HTTP status or in-stream ERROR, as expired with `gone` set",
          "[kube]") {
  FakeTransport t;
  t.push_watch({410, {}, status_body(410, "Expired", "too old resource version: 1 (5)").dump()});
  t.push_watch({200,
                {watch_line("ADDED", object("a", "one", "6")),
                 watch_line("ERROR", status_body(410, "Expired", "too old resource version"))}});
  t.push_watch({200, {watch_line("ERROR", status_body(500, "InternalError", "etcd is sad"))}});
  ResourceClient client(t, kApps);
  auto ignore = [](const WatchEvent&) { return true; };
  bool gone = false;
  Status http = client.watch("a", {}, ignore, std::stop_token{}, &gone);
  REQUIRE_FALSE(http.ok());
  CHECK(gone);
  CHECK(http.error().message.rfind("expired:", 0) == 0);
  gone = false;
  Status in_stream = client.watch("a", {}, ignore, std::stop_token{}, &gone);
  REQUIRE_FALSE(in_stream.ok());
  CHECK(gone);
  CHECK(is_expired(in_stream.error()));
  Status other = client.watch("a", {}, ignore, std::stop_token{}, &gone);
  REQUIRE_FALSE(other.ok());
  CHECK_FALSE(gone);
  CHECK(other.error().code == ErrorCode::kUnavailable);
  CHECK(other.error().message == "etcd is sad");
}

TEST_CASE("a malformed watch line ends the watch with a retryable error", "[kube]") {
  FakeTransport t;
  t.push_watch({200, {"{not json\n"}});
  Status st = ResourceClient(t, kApps).watch(
      "a", {}, [](const WatchEvent&) { return true; }, std::stop_token{});
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().retryable());
}

}  // namespace
}  // namespace berth::kube
