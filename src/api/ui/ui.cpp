#include "api/ui/ui.h"

#include "api/ui/assets.h"

namespace berth::api::ui {
namespace {

constexpr std::string_view kPrefix = "/ui/";

// Scripts, styles, images and fetches from this origin only; nothing inline (the page has no
// inline script or style, so an injected one cannot run); no plugins, no <base> rewriting, no
// form posts, and no framing (clickjacking).
constexpr const char* kPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

std::string_view content_type(std::string_view name) {
  auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  return "application/octet-stream";
}

const EmbeddedFile* find(std::string_view name) {
  for (const auto& file : embedded_files()) {
    if (file.name == name) return &file;
  }
  return nullptr;
}

// If-None-Match is a list of entity tags or "*" (RFC 9110 13.1.2); weak tags compare by
// their opaque part.
bool matches(std::string_view if_none_match, std::string_view etag) {
  std::size_t pos = 0;
  while (pos < if_none_match.size()) {
    std::size_t comma = if_none_match.find(',', pos);
    if (comma == std::string_view::npos) comma = if_none_match.size();
    std::string_view tag = if_none_match.substr(pos, comma - pos);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
    pos = comma + 1;
  }
  return false;
}

}  // namespace

bool is_ui_path(std::string_view path) {
  return path == "/ui" || path.substr(0, kPrefix.size()) == kPrefix;
}

void add_security_headers(HttpResponse& response) {
  response.headers["Content-Security-Policy"] = kPolicy;
  response.headers["X-Content-Type-Options"] = "nosniff";
  response.headers["X-Frame-Options"] = "DENY";
  response.headers["Referrer-Policy"] = "no-referrer";
  response.headers["Cache-Control"] = "private, no-cache";
}

HttpResponse serve(std::string_view path, std::string_view if_none_match) {
  HttpResponse r;
  if (path == "/ui") {
    r = json_error(308, "the status page is at /ui/");
    r.headers["Location"] = "/ui/";
    add_security_headers(r);
    return r;
  }
  std::string_view name = path.substr(kPrefix.size());
  if (name.empty()) name = "index.html";
  const EmbeddedFile* file = find(name);
  if (file == nullptr) {
    r = json_error(404, "no such page");
    add_security_headers(r);
    return r;
  }
  add_security_headers(r);
  r.headers["ETag"] = std::string(file->etag);
  if (matches(if_none_match, file->etag)) {
    r.status = 304;
    return r;
  }
  r.headers["Content-Type"] = std::string(content_type(file->name));
  r.body = std::string(file->body);
  return r;
}

}  // namespace berth::api::ui
