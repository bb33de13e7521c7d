#pragma once
// An informer: a local cache of one resource type that follows the server (list, then watch),
// so a controller reads objects from memory instead of asking the server each time.
//
// What it promises:
//   - It lists every page, then watches from the list's resourceVersion with bookmarks; each
//     event and each BOOKMARK advances the version it resumes from.
//   - A watch that ends (the server's timeoutSeconds, a dropped connection, a transport error)
//     is resumed from the last version seen, so no event is missed and none is replayed.
//   - 410 Gone (as an HTTP status or an in-stream ERROR with code 410) means the server forgot
//     that version: it relists and reconciles the cache with the new list. Objects deleted
//     while it was away are reported as deletes, changed ones as updates, new ones as adds.
//   - Errors (5xx, 429, refused connections) are retried after a backoff that doubles from
//     `backoff_initial` up to `backoff_max`, with jitter so that many informers do not retry in
//     step; a successful list or a watch that delivered events resets it.
//   - The cache is keyed by "namespace/name" (just "name" for cluster-scoped types) and
//     indexed by namespace.
//
// Threading: start() runs the loop on a thread of its own; handlers are called on that thread,
// one at a time, after the cache already reflects the event and with no lock held (a handler
// may read the cache). get/list/has_synced are safe from any thread. stop() (also run by the
// destructor) ends the watch and joins the thread; after it returns no handler runs. A handler
// must not call stop().
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/metrics.h"
#include "kube/resource_client.h"

namespace berth::kube {

struct InformerHandlers {
  std::function<void(const nlohmann::json& object)> on_add;
  std::function<void(const nlohmann::json& old_object, const nlohmann::json& object)> on_update;
  // The last state the cache held (the server's final state when the watch saw the delete).
  std::function<void(const nlohmann::json& object)> on_delete;
};

struct InformerOptions {
  std::string namespace_;  // "" = all namespaces
  std::string label_selector;
  std::string field_selector;
  int page_size = 500;
  int watch_timeout_seconds = 300;
  std::chrono::milliseconds backoff_initial{800};  // client-go's reflector defaults
  std::chrono::milliseconds backoff_max{std::chrono::seconds(30)};
  // Waits `delay` or until `stop`; returns false when stopped. Tests replace it (and `random`)
  // to run the loop without a clock.
  std::function<bool(std::chrono::milliseconds delay, std::stop_token stop)> sleep;
  std::function<double()> random;  // uniform in [0, 1)
};

class Informer {
 public:
  Informer(ResourceClient& client, InformerOptions options, InformerHandlers handlers);
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  void start();
  void stop();
  // The loop start() runs, on the calling thread, until `stop` is requested. For tests that
  // drive an informer without a second thread; do not mix with start().
  void run(std::stop_token stop);

  // True once the first list has been loaded into the cache (and stays true).
  bool has_synced() const;
  std::optional<nlohmann::json> get(const std::string& namespace_, const std::string& name) const;
  // Every cached object of `namespace_` ("" = all), in name order.
  std::vector<nlohmann::json> list(const std::string& namespace_ = "") const;
  // The version the next watch starts from (the last event, bookmark or list seen).
  std::string resource_version() const;

  // The backoff before retry number `failures` (0-based): min(max, initial * 2^failures),
  // of which the upper half is random. Public for tests.
  std::chrono::milliseconds backoff(int failures, double random) const;

 private:
  bool relist(std::stop_token stop);
  // Applies one watch event; false ends the watch (unknown type).
  bool apply(const WatchEvent& event);
  void upsert(nlohmann::json object);
  void erase(const nlohmann::json& object);
  bool wait(int failures, std::stop_token stop);

  ResourceClient& client_;
  InformerOptions options_;
  InformerHandlers handlers_;
  metrics::Counter* events_;  // berth_kube_watch_events_total{resource}

  mutable std::shared_mutex mu_;
  std::map<std::string, nlohmann::json> objects_;              // "ns/name" -> object
  std::map<std::string, std::set<std::string>> by_namespace_;  // ns -> keys
  std::string resource_version_;
  bool synced_ = false;
  bool events_seen_ = false;  // during the current watch (watch thread only)

  std::mutex lifecycle_mu_;
  std::jthread thread_;
};

}  // namespace berth::kube
