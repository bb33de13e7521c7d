#include "kube/informer.h"

#include <algorithm>
#include <condition_variable>
#include <random>
#include <utility>

#include "common/log.h"
#include "common/metrics.h"
#include "kube/status_error.h"

namespace berth::kube {
namespace {

using nlohmann::json;

std::string meta_string(const json& object, const char* key) {
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return {};
  auto it = meta->find(key);
  return it != meta->end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string key_of(const std::string& namespace_, const std::string& name) {
  return namespace_.empty() ? name : namespace_ + "/" + name;
}

std::string key_of(const json& object) {
  return key_of(meta_string(object, "namespace"), meta_string(object, "name"));
}

bool default_sleep(std::chrono::milliseconds delay, std::stop_token stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  return !cv.wait_for(lock, stop, delay, [] { return false; }) && !stop.stop_requested();
}

double default_random() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

}  // namespace

Informer::Informer(ResourceClient& client, InformerOptions options, InformerHandlers handlers)
    : client_(client),
      options_(std::move(options)),
      handlers_(std::move(handlers)),
      events_(&metrics::process_registry()
                   .counter("berth_kube_watch_events_total",
                            "Watch events an informer applied to its cache and handed to its "
                            "handlers (Kubernetes mode), by resource",
                            {"resource"})
                   .with({client_.type().resource})) {
  if (!options_.sleep) options_.sleep = default_sleep;
  if (!options_.random) options_.random = default_random;
}

Informer::~Informer() { stop(); }

void Informer::start() {
  std::lock_guard lock(lifecycle_mu_);
  if (thread_.joinable()) return;
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void Informer::stop() {
  std::lock_guard lock(lifecycle_mu_);
  if (!thread_.joinable()) return;
  thread_.request_stop();
  thread_.join();
}

bool Informer::has_synced() const {
  std::shared_lock lock(mu_);
  return synced_;
}

std::optional<json> Informer::get(const std::string& namespace_, const std::string& name) const {
  std::shared_lock lock(mu_);
  auto it = objects_.find(key_of(client_.type().namespaced ? namespace_ : "", name));
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

std::vector<json> Informer::list(const std::string& namespace_) const {
  std::shared_lock lock(mu_);
  std::vector<json> out;
  if (namespace_.empty() || !client_.type().namespaced) {
    out.reserve(objects_.size());
    for (const auto& [key, object] : objects_) out.push_back(object);
    return out;
  }
  auto it = by_namespace_.find(namespace_);
  if (it == by_namespace_.end()) return out;
  for (const auto& key : it->second) out.push_back(objects_.at(key));
  return out;
}

std::string Informer::resource_version() const {
  std::shared_lock lock(mu_);
  return resource_version_;
}

std::chrono::milliseconds Informer::backoff(int failures, double random) const {
  auto delay = options_.backoff_initial;
  for (int i = 0; i < failures && delay < options_.backoff_max; ++i) delay *= 2;
  delay = std::min(delay, options_.backoff_max);
  // Equal jitter: half fixed, half random, so retries spread out but never fall to zero.
  const auto half = delay / 2;
  return half + std::chrono::milliseconds(static_cast<long long>(
                    static_cast<double>((delay - half).count()) * std::clamp(random, 0.0, 1.0)));
}

bool Informer::wait(int failures, std::stop_token stop) {
  return options_.sleep(backoff(failures, options_.random()), stop);
}

void Informer::run(std::stop_token stop) {
  const std::string resource = client_.type().resource;
  bool need_list = true;
  int failures = 0;
  while (!stop.stop_requested()) {
    if (need_list) {
      if (!relist(stop)) {
        if (!wait(failures++, stop)) return;
        continue;
      }
      need_list = false;
      failures = 0;
    }
    WatchOptions watch;
    watch.resource_version = resource_version();
    watch.timeout_seconds = options_.watch_timeout_seconds;
    watch.label_selector = options_.label_selector;
    watch.field_selector = options_.field_selector;
    events_seen_ = false;
    bool gone = false;
    Status status = client_.watch(
        options_.namespace_, watch, [this](const WatchEvent& event) { return apply(event); }, stop,
        &gone);
    if (stop.stop_requested()) return;
    if (gone) {
      // The server compacted past our version: only a fresh list can tell what changed.
      log::info("informer relisting after 410",
                {{"resource", resource}, {"resource_version", watch.resource_version}});
      need_list = true;
      continue;
    }
    if (events_seen_) failures = 0;
    if (!status) {
      log::warn("informer watch failed", {{"resource", resource},
                                          {"code", to_string(status.error().code)},
                                          {"error", status.error().message}});
      if (!wait(failures++, stop)) return;
      continue;
    }
    // A watch that ended cleanly with nothing in it (a server or proxy closing streams early)
    // would otherwise be reopened in a tight loop.
    if (!events_seen_ && !wait(0, stop)) return;
  }
}

bool Informer::relist(std::stop_token stop) {
  ListOptions list_options;
  list_options.limit = options_.page_size;
  list_options.label_selector = options_.label_selector;
  list_options.field_selector = options_.field_selector;
  auto page = client_.list_all(options_.namespace_, list_options);
  if (stop.stop_requested()) return false;
  if (!page) {
    log::warn("informer list failed", {{"resource", client_.type().resource},
                                       {"code", to_string(page.error().code)},
                                       {"error", page.error().message}});
    return false;
  }
  std::map<std::string, json> fresh;
  for (auto& item : page->items) {
    std::string key = key_of(item);
    fresh.emplace(std::move(key), std::move(item));
  }
  // Work out the events under the lock, call handlers after it.
  std::vector<json> added;
  std::vector<std::pair<json, json>> updated;
  std::vector<json> deleted;
  {
    std::unique_lock lock(mu_);
    for (const auto& [key, old_object] : objects_) {
      auto it = fresh.find(key);
      if (it == fresh.end()) {
        deleted.push_back(old_object);
      } else if (meta_string(it->second, "resourceVersion") !=
                 meta_string(old_object, "resourceVersion")) {
        updated.emplace_back(old_object, it->second);
      }
    }
    for (const auto& [key, object] : fresh) {
      if (!objects_.count(key)) added.push_back(object);
    }
    objects_ = std::move(fresh);
    by_namespace_.clear();
    for (const auto& [key, object] : objects_) {
      by_namespace_[meta_string(object, "namespace")].insert(key);
    }
    resource_version_ = page->resource_version;
    synced_ = true;
  }
  for (const auto& object : deleted) {
    if (handlers_.on_delete) handlers_.on_delete(object);
  }
  for (const auto& [old_object, object] : updated) {
    if (handlers_.on_update) handlers_.on_update(old_object, object);
  }
  for (const auto& object : added) {
    if (handlers_.on_add) handlers_.on_add(object);
  }
  return true;
}

bool Informer::apply(const WatchEvent& event) {
  const std::string version = meta_string(event.object, "resourceVersion");
  if (event.type == "BOOKMARK") {
    // A bookmark carries only a version: nothing changed up to it, resume from there.
    std::unique_lock lock(mu_);
    if (!version.empty()) resource_version_ = version;
    return true;
  }
  if (event.type != "ADDED" && event.type != "MODIFIED" && event.type != "DELETED") {
    log::warn("informer got an unknown watch event",
              {{"resource", client_.type().resource}, {"type", event.type}});
    return false;
  }
  events_seen_ = true;
  if (event.type == "DELETED") {
    erase(event.object);
  } else {
    upsert(event.object);
  }
  events_->inc();  // after the handlers: an event counts once it is processed
  return true;
}

void Informer::upsert(json object) {
  const std::string key = key_of(object);
  std::optional<json> old_object;
  {
    std::unique_lock lock(mu_);
    auto it = objects_.find(key);
    if (it != objects_.end()) old_object = std::move(it->second);
    by_namespace_[meta_string(object, "namespace")].insert(key);
    objects_[key] = object;
    const std::string version = meta_string(object, "resourceVersion");
    if (!version.empty()) resource_version_ = version;
  }
  // An ADDED for an object already cached (possible right after a relist) is an update.
  if (old_object) {
    if (handlers_.on_update) handlers_.on_update(*old_object, object);
  } else if (handlers_.on_add) {
    handlers_.on_add(object);
  }
}

void Informer::erase(const json& object) {
  const std::string key = key_of(object);
  {
    std::unique_lock lock(mu_);
    objects_.erase(key);
    const std::string namespace_ = meta_string(object, "namespace");
    auto it = by_namespace_.find(namespace_);
    if (it != by_namespace_.end()) {
      it->second.erase(key);
      if (it->second.empty()) by_namespace_.erase(it);
    }
    const std::string version = meta_string(object, "resourceVersion");
    if (!version.empty()) resource_version_ = version;
  }
  if (handlers_.on_delete) handlers_.on_delete(object);
}

}  // namespace berth::kube
