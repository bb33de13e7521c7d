// REST requests as a client sends them, after the HTTP parser: the request line, the headers
// berth reads itself (Authorization, Content-Type, If-None-Match; names lower-cased as the
// server does) and the body, through api::Handler with the core's parsing, validation and
// credential rules, against an in-memory store holding one app with a succeeded deployment.
// Input format (what the seeds and dictionary use):
//   METHOD SP TARGET LF (NAME ":" SP VALUE LF)* LF BODY
// Contract checked (handler.h): bad input never produces a 5xx, no response carries the
// registry password ("s3cr3t" stands for it: the stored one and any in the request), and an
// error is JSON {"error": ...}.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/handler.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/text.h"
#include "fuzz/fuzz_check.h"
#include "runtime/fakes.h"

namespace {

namespace api = berth::api;
namespace core = berth::core;

// Any Basic credential except the account "nobody", and the token "t0k3n", is account acct-1.
class Store final : public berth::testing::FakeStore {
 public:
  berth::Result<std::string> authenticate_password(std::string_view name,
                                                   const berth::Secret&) override {
    if (name == "nobody") return berth::make_error(berth::ErrorCode::kUnauthenticated, "no");
    return std::string("acct-1");
  }
  berth::Result<std::string> authenticate_token(const berth::Secret& token) override {
    if (token.reveal() != "t0k3n")
      return berth::make_error(berth::ErrorCode::kUnauthenticated, "no");
    return std::string("acct-1");
  }
};

api::HttpRequest parse(std::string_view in) {
  api::HttpRequest req;
  auto line = [&in]() {
    const auto nl = in.find('\n');
    std::string_view l = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    return l;
  };
  const std::string_view first = line();
  const auto sp = first.find(' ');
  req.method = std::string(first.substr(0, sp));
  req.target = sp == std::string_view::npos ? "/" : std::string(first.substr(sp + 1));
  for (std::string_view h = line(); !h.empty(); h = line()) {
    const auto colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = h.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    req.headers[berth::to_lower_ascii(h.substr(0, colon))] = std::string(value);
  }
  req.body = std::string(in);
  return req;
}

struct Rig {
  Store store;
  berth::testing::FakeResolver resolver;
  int next = 0;
  api::Handler handler;

  static berth::metrics::Registry& metrics() {
    static berth::metrics::Registry r;
    return r;
  }

  Rig()
      : handler(
            api::HandlerOptions{"local",
                                [this] { return "id-" + std::to_string(++next); },
                                &resolver,
                                false,
                                {},
                                &metrics(),
                                {}},
            store, [] { return core::UnixMillis{1700000000000}; }, [](const std::string&) {}) {
    // One app (id-1) whose first deployment (id-2) succeeded on agent-1, with a password.
    api::HttpRequest create;
    create.method = "POST";
    create.target = "/app-services";
    create.headers["authorization"] = "Bearer t0k3n";
    create.headers["content-type"] = "application/json";
    create.body = R"({"name":"web","plan_name":"tier-2","app_config":{"image_ref":)"
                  R"("ghcr.io/acme/api:1.0.0","container_port":8080,"registry_username":"bot",)"
                  R"("registry_password":"s3cr3t-stored"}})";
    const auto r = handler.handle(create);
    FUZZ_CHECK(r.status == 201);
    for (auto& [id, rev] : store.revisions) {
      rev.state = core::RevisionState::kSucceeded;
      rev.image_digest = "sha256:" + std::string(64, 'b');
    }
    auto& s = store.services.begin()->second;
    s.agent = "agent-1";
    s.current_deployment_id = store.revisions.begin()->first;
    s.status = core::ServiceStatus::kRunning;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = [] {
    berth::log::set_level(berth::log::Level::kError);
    return true;
  }();
  (void)quiet;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  Rig rig;
  const api::HttpRequest req = parse(in);
  (void)api::route_template(req.target);
  const api::HttpResponse res = rig.handler.handle(req);
  FUZZ_CHECK(res.status >= 200 && res.status < 500);
  // The method is quoted in a 405: a "password" there is the client's own doing.
  if ((req.method + req.target).find("s3cr3t") == std::string::npos) {
    FUZZ_CHECK(res.body.find("s3cr3t") == std::string::npos);
    for (const auto& [name, value] : res.headers) {
      FUZZ_CHECK(value.find("s3cr3t") == std::string::npos);
    }
  }
  if (res.status >= 400) {
    const auto body = nlohmann::json::parse(res.body, nullptr, false);
    FUZZ_CHECK(body.is_object() && body.contains("error") && body["error"].is_string());
  }
  return 0;
}
