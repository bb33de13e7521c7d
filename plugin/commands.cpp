#include "commands.h"

#include <algorithm>
#include <ctime>
#include <vector>

#include "kube/resource_client.h"
#include "kube/revision_format.h"
#include "kube/types.h"

namespace berth::plugin {
namespace {

using nlohmann::json;

std::string display_name(const std::string& name) { return "appservice.berth.dev/" + name; }

// A table as kubectl prints one (text/tabwriter, three spaces between columns).
void print_table(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 3, ' ');
    }
    out << line << "\n";
  }
}

std::string short_digest(const std::string& digest) {
  if (digest.empty()) return "<none>";
  // sha256: and 12 hex digits, as `docker images` and `crictl images` shorten them.
  constexpr std::size_t kShown = 7 + 12;
  return digest.size() > kShown ? digest.substr(0, kShown) : digest;
}

std::int64_t current_revision(const json& app) {
  const json* status = app.contains("status") ? &app["status"] : nullptr;
  if (status == nullptr || !status->is_object()) return 0;
  auto it = status->find("currentRevision");
  if (it == status->end() || !it->is_number_integer()) return 0;
  return it->get<std::int64_t>();
}

// A string member of `object`, or `fallback` when it is absent or not a string (json::value
// would throw on the wrong type).
std::string string_member(const json& object, const char* key, const std::string& fallback) {
  if (!object.is_object()) return fallback;
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// What both commands start from: the AppService as the server has it now, and its history.
struct AppHistory {
  json app;
  std::vector<kube::RevisionRecord> revisions;
  std::int64_t current = 0;  // status.currentRevision, 0 when unset
};

Result<AppHistory> load(kube::Transport& transport, const std::string& namespace_,
                        const std::string& name) {
  kube::ResourceClient apps(transport, kube::AppService::kType);
  auto app = apps.get(namespace_, name);
  if (!app) return app.take_error();
  auto revisions = kube::list_revisions(transport, namespace_, name);
  if (!revisions) return revisions.take_error();
  AppHistory h{std::move(app.value()), std::move(revisions.value()), 0};
  h.current = current_revision(h.app);
  return h;
}

// The revision rollback goes to: `to_revision`, or the newest one before the current.
Result<const kube::RevisionRecord*> pick_target(const std::vector<kube::RevisionRecord>& history,
                                                const std::string& name, std::int64_t current,
                                                std::int64_t to_revision) {
  if (to_revision > 0) {
    for (const auto& r : history) {
      if (r.number == to_revision) return &r;
    }
    return make_error(ErrorCode::kFailedPrecondition,
                      "unable to find revision " + std::to_string(to_revision) +
                          " in the history of " + display_name(name));
  }
  if (current == 0) {
    return make_error(ErrorCode::kFailedPrecondition,
                      display_name(name) +
                          " has no current revision yet (status.currentRevision is not set); "
                          "name one with --to-revision");
  }
  const kube::RevisionRecord* best = nullptr;
  for (const auto& r : history) {
    if (r.number < current && (best == nullptr || r.number > best->number)) best = &r;
  }
  if (best == nullptr) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "no revision before revision " + std::to_string(current) +
                          " in the history of " + display_name(name));
  }
  return best;
}

// tm from "2026-11-27T21:11:54Z" (also with fractional seconds), UTC.
bool parse_rfc3339(const std::string& text, std::int64_t& seconds) {
  std::tm tm{};
  const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return false;
  if (*rest == '.') {
    ++rest;
    while (*rest >= '0' && *rest <= '9') ++rest;
  }
  if (std::string_view(rest) != "Z") return false;
  seconds = static_cast<std::int64_t>(::timegm(&tm));
  return true;
}

}  // namespace

Result<std::string> app_name_argument(const std::string& argument) {
  std::string name = argument;
  if (auto slash = argument.find('/'); slash != std::string::npos) {
    const std::string type = argument.substr(0, slash);
    static const char* const kTypes[] = {"appservice", "appservices", "appsvc",
                                         "appservice.berth.dev", "appservices.berth.dev"};
    if (std::find(std::begin(kTypes), std::end(kTypes), type) == std::end(kTypes)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "kubectl berth works on AppServices only, not \"" + type + "\"");
    }
    name = argument.substr(slash + 1);
  }
  if (name.empty())
    return make_error(ErrorCode::kInvalidArgument, "an AppService name is required");
  return name;
}

json merge_patch_between(const json& from, const json& to) {
  if (!from.is_object() || !to.is_object()) return to;
  json patch = json::object();
  for (const auto& [key, value] : from.items()) {
    if (!to.contains(key)) patch[key] = nullptr;
  }
  for (const auto& [key, value] : to.items()) {
    auto old = from.find(key);
    if (old == from.end()) {
      patch[key] = value;
    } else if (*old != value) {
      patch[key] =
          (old->is_object() && value.is_object()) ? merge_patch_between(*old, value) : value;
    }
  }
  return patch;
}

std::string human_age(const std::string& rfc3339, std::int64_t now_ms) {
  std::int64_t created = 0;
  if (!parse_rfc3339(rfc3339, created)) return "<unknown>";
  const std::int64_t seconds = now_ms / 1000 - created;
  auto s = [](std::int64_t n) { return std::to_string(n); };
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return s(seconds) + "s";
  const std::int64_t minutes = seconds / 60;
  if (minutes < 10)
    return seconds % 60 == 0 ? s(minutes) + "m" : s(minutes) + "m" + s(seconds % 60) + "s";
  if (minutes < 180) return s(minutes) + "m";
  const std::int64_t hours = minutes / 60;
  if (hours < 8) return minutes % 60 == 0 ? s(hours) + "h" : s(hours) + "h" + s(minutes % 60) + "m";
  if (hours < 48) return s(hours) + "h";
  if (hours < 24 * 8)
    return hours % 24 == 0 ? s(hours / 24) + "d" : s(hours / 24) + "d" + s(hours % 24) + "h";
  if (hours < 24 * 365 * 2) return s(hours / 24) + "d";
  const std::int64_t years = hours / 24 / 365;
  const std::int64_t days = (hours / 24) % 365;
  if (hours < 24 * 365 * 8) return days == 0 ? s(years) + "y" : s(years) + "y" + s(days) + "d";
  return s(years) + "y";
}

Status history(kube::Transport& transport, const std::string& namespace_, const std::string& name,
               std::int64_t now_ms, std::ostream& out) {
  auto loaded = load(transport, namespace_, name);
  if (!loaded) return loaded.take_error();
  const AppHistory& h = loaded.value();

  out << display_name(name) << "\n";
  if (h.revisions.empty()) {
    out << "No revisions recorded yet.\n";
    return Status::Ok();
  }
  std::vector<std::vector<std::string>> rows{{"REVISION", "IMAGE", "DIGEST", "STATE", "AGE"}};
  for (const auto& r : h.revisions) {
    std::string number = std::to_string(r.number);
    if (r.number == h.current) number += " (current)";
    rows.push_back({number, string_member(r.spec, "imageRef", "<none>"),
                    short_digest(r.image_digest), core::to_string(r.state),
                    human_age(r.creation_timestamp, now_ms)});
  }
  print_table(rows, out);
  return Status::Ok();
}

Status rollback(kube::Transport& transport, const std::string& namespace_, const std::string& name,
                std::int64_t to_revision, std::ostream& out) {
  auto loaded = load(transport, namespace_, name);
  if (!loaded) return loaded.take_error();
  const AppHistory& h = loaded.value();
  auto picked = pick_target(h.revisions, name, h.current, to_revision);
  if (!picked) return picked.take_error();
  const kube::RevisionRecord& target = *picked.value();

  const json spec = h.app.contains("spec") ? h.app["spec"] : json::object();
  if (!spec.is_object())
    return make_error(ErrorCode::kInternal,
                      display_name(name) + " has a spec that is not an object");
  if (spec == target.spec) {
    return make_error(ErrorCode::kFailedPrecondition,
                      display_name(name) + " is already at revision " +
                          std::to_string(target.number) + " (its spec matches that revision)");
  }
  const json port_now = spec.value("containerPort", json());
  const json port_then = target.spec.value("containerPort", json());
  if (port_now != port_then) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "revision " + std::to_string(target.number) + " has containerPort " +
                          port_then.dump() + " but " + display_name(name) + " has " +
                          port_now.dump() +
                          "; containerPort is immutable, so this revision cannot be restored "
                          "(create a new AppService instead)");
  }

  // The resourceVersion makes the patch a compare-and-swap: a spec changed since the read (an
  // Argo CD sync, another user) gets 409 instead of being overwritten.
  json patch = {
      {"metadata",
       {{"resourceVersion", string_member(h.app.contains("metadata") ? h.app["metadata"] : json(),
                                          "resourceVersion", "")}}},
      {"spec", merge_patch_between(spec, target.spec)}};
  kube::ResourceClient apps(transport, kube::AppService::kType);
  kube::PatchOptions options;
  options.field_manager = "kubectl-berth";
  auto patched = apps.merge_patch(namespace_, name, patch, options);
  if (!patched) {
    Error error = patched.take_error();
    if (error.code == ErrorCode::kConflict) {
      error.message = display_name(name) +
                      " was changed while rolling back (the object has been modified); "
                      "nothing was rolled back, please try again";
    }
    return error;
  }
  out << display_name(name) << " rolled back to revision " << target.number << "\n";
  return Status::Ok();
}

}  // namespace berth::plugin
