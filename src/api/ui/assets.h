#pragma once
// The status page's files as compiled into the binary (embedded_files.cpp, generated at build
// time by embed.cmake from src/api/ui/*.html, *.css, *.js). Read-only, static storage: safe
// from any thread. Callers outside ui.cpp are tests.
#include <span>
#include <string_view>

namespace berth::api::ui {

struct EmbeddedFile {
  std::string_view name;  // the file name, e.g. "app.js" (no directory)
  std::string_view body;  // the file's bytes
  std::string_view etag;  // a quoted strong validator from the bytes' SHA-256
};

std::span<const EmbeddedFile> embedded_files();

}  // namespace berth::api::ui
