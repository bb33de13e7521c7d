// Kubernetes watch streams and the objects in them, as the API server (or anything holding
// its address and a certificate the cluster CA signed) sends them to the controller: each
// input is the body of one watch response, one JSON event per line. The path is the
// controller's own: ResourceClient::watch decodes the events (an ERROR event through
// status_error), the typed views decode the objects (kube/types.h), AppServices feed the
// KubeStateStore as the informer does, and every app is then loaded and snapshotted, which
// reads the ControllerRevisions and the credential Secret that the stream carried (the fake
// transport answers the store's requests with them).
// Contract checked: no crash, no exception, no sanitizer report; errors are values.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_check.h"
#include "kube/resource_client.h"
#include "kube/state_store.h"
#include "kube/types.h"

namespace {

using nlohmann::json;
namespace kube = berth::kube;

// Plays the input as the watch body; answers list and get requests from the objects seen.
class StreamTransport final : public kube::Transport {
 public:
  explicit StreamTransport(std::string_view body) : body_(body) {}

  std::vector<json> revisions;
  std::vector<json> secrets;

  berth::Result<kube::Response> send(const kube::Request& request) override {
    const bool is_secret = request.target.find("/secrets") != std::string::npos;
    const bool is_revision = request.target.find("/controllerrevisions") != std::string::npos;
    const auto path = request.target.substr(0, request.target.find('?'));
    const bool collection = path.ends_with("/secrets") || path.ends_with("/controllerrevisions");
    if (request.method == "GET" && (is_secret || is_revision)) {
      const auto& objects = is_secret ? secrets : revisions;
      if (collection) {
        json list = {{"items", objects}, {"metadata", {{"resourceVersion", "7"}}}};
        return kube::Response{200, "application/json", list.dump()};
      }
      if (!objects.empty()) return kube::Response{200, "application/json", objects.front().dump()};
    }
    const json status = {{"kind", "Status"},     {"apiVersion", "v1"}, {"status", "Failure"},
                         {"reason", "NotFound"}, {"code", 404},        {"message", "not found"}};
    return kube::Response{404, "application/json", status.dump()};
  }

  berth::Result<int> stream(const kube::Request&,
                            const std::function<bool(std::string_view line)>& on_line,
                            std::stop_token, std::string*) override {
    std::string_view rest = body_;
    while (!rest.empty()) {
      const auto nl = rest.find('\n');
      const std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      if (line.empty()) continue;
      if (!on_line(line)) break;
    }
    return 200;
  }

 private:
  std::string_view body_;
};

void decode_others(const json& object) {
  (void)kube::KubeSecret::from_json(object);
  (void)kube::Lease::from_json(object);
  (void)kube::Event::from_json(object);
  if (auto cr = kube::ControllerRevision::from_json(object)) (void)cr->to_json();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  StreamTransport transport(body);
  kube::KubeStateStore store(
      transport,
      kube::KubeStateStoreOptions{"local", [] { return berth::core::UnixMillis{1}; }, {}});
  kube::ResourceClient client(transport, kube::AppService::kType);
  bool gone = false;
  const auto status = client.watch(
      "", kube::WatchOptions{},
      [&](const kube::WatchEvent& event) {
        FUZZ_CHECK(event.object.is_object());
        const std::string kind = event.object.value("kind", "");
        if (kind == "ControllerRevision") transport.revisions.push_back(event.object);
        if (kind == "Secret") transport.secrets.push_back(event.object);
        decode_others(event.object);
        auto app = kube::AppService::from_json(event.object);
        if (!app) return true;
        (void)kube::app_config_of(app->spec);
        (void)kube::unix_millis_of(app->metadata.creation_timestamp);
        auto round = kube::AppService::from_json(app->to_json());
        FUZZ_CHECK(round.ok());
        if (event.type == "DELETED") {
          store.observe_deleted(*app);
        } else {
          store.observe(*app);
        }
        return true;
      },
      std::stop_token(), &gone);
  if (!status) FUZZ_CHECK(!status.error().message.empty());
  auto ids = store.list_service_ids();
  if (ids) {
    for (const auto& id : *ids) {
      (void)store.load_service(id);
      (void)store.snapshot(id);
    }
  }
  return 0;
}
