#pragma once
// The status page (/ui/, docs/api.md "Status page"): read-only HTML, CSS and JavaScript
// compiled into the binary. The page shows nothing by itself: its script reads the account's
// data through the JSON API (GET /app-services...), with the credentials the browser already
// sent for the page, so the page can show only what the API lets that account read.
//
// Contract:
//   - is_ui_path() decides which request targets belong to the page; the handler routes them
//     here only after the request was authenticated like any /app-services request, and only
//     for GET.
//   - serve() answers from the embedded files alone: the path is compared byte for byte with
//     the file names ("/ui/" is index.html), never joined to a directory, so no path (dot
//     segments, encoded slashes, NUL) can name anything else: 404. "/ui" redirects to "/ui/"
//     (the page's relative links need the slash).
//   - Every answer carries a strict Content-Security-Policy (only this origin's files, no
//     inline script or style, no framing), X-Content-Type-Options: nosniff, no Referer, and
//     Cache-Control: private, no-cache with an ETag (a matching If-None-Match is 304), so a
//     browser revalidates after an upgrade and shared caches keep nothing.
//   - Pure: no I/O, no clock, thread-safe.
#include <string_view>

#include "api/http.h"

namespace berth::api::ui {

// "/ui" or anything under "/ui/" (the query already removed).
bool is_ui_path(std::string_view path);

// The answer to an authenticated GET of `path` (no query). `if_none_match` is the request's
// If-None-Match value (empty when absent).
HttpResponse serve(std::string_view path, std::string_view if_none_match);

// The security headers every /ui/ answer carries (also used on its errors).
void add_security_headers(HttpResponse& response);

}  // namespace berth::api::ui
