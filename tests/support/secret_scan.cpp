#include "support/secret_scan.h"

#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

namespace berth::testing {
namespace fs = std::filesystem;

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string json_escaped(std::string_view in) {
  const std::string quoted = nlohmann::json(std::string(in)).dump();
  return quoted.substr(1, quoted.size() - 2);
}

std::string percent_encoded(std::string_view in, bool upper_hex) {
  const char* digits = upper_hex ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (const char c : in) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += digits[u >> 4];
      out += digits[u & 0xfU];
    }
  }
  return out;
}

void SecretScan::add_form(std::string name, std::string bytes) {
  if (bytes.empty()) return;
  const bool seen =
      std::any_of(forms_.begin(), forms_.end(), [&](const Form& f) { return f.bytes == bytes; });
  if (!seen) forms_.push_back({std::move(name), std::move(bytes)});
}

void SecretScan::add(const std::string& secret, const std::string& username) {
  const std::string tag = "#" + std::to_string(secrets_++);
  add_form("raw(" + tag + ")", secret);
  add_form("json(" + tag + ")", json_escaped(secret));
  add_form("url(" + tag + ")", percent_encoded(secret, true));
  add_form("url-lower(" + tag + ")", percent_encoded(secret, false));
  if (!username.empty()) {
    add_form("base64(user:password " + tag + ")", base64(username + ":" + secret));
  }
  // Inside a longer base64 text the secret starts at byte offset 0, 1 or 2 of a 3-byte group.
  // Encode it behind `k` filler bytes and keep only the characters made of the secret's bits
  // alone: those appear in any base64 text holding the secret at that alignment.
  for (std::size_t k = 0; k < 3; ++k) {
    const std::string encoded = base64(std::string(k, '\0') + secret);
    const std::size_t first = (8 * k + 5) / 6;             // ceil(8k / 6)
    const std::size_t last = 8 * (k + secret.size()) / 6;  // floor: no padding bits
    if (last <= first + 8) continue;                       // too short to be a meaningful needle
    const std::string core = encoded.substr(first, last - first);
    add_form("base64(" + tag + " at offset " + std::to_string(k) + ")", core);
    std::string url = core;
    std::replace(url.begin(), url.end(), '+', '-');
    std::replace(url.begin(), url.end(), '/', '_');
    add_form("base64url(" + tag + " at offset " + std::to_string(k) + ")", url);
  }
}

std::vector<std::string> SecretScan::find_in(std::string_view text) const {
  std::vector<std::string> found;
  for (const auto& f : forms_) {
    if (text.find(f.bytes) != std::string_view::npos) found.push_back(f.name);
  }
  return found;
}

std::vector<std::string> SecretScan::lines_in(std::string_view text) const {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    for (const auto& name : find_in(line)) out.push_back(name + ": " + std::string(line));
    start = end + 1;
  }
  return out;
}

std::vector<std::string> SecretScan::files_under(const std::string& root) const {
  std::vector<std::string> hits;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(
           root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
    std::ifstream in(it->path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const auto& name : find_in(bytes)) hits.push_back(it->path().string() + ": " + name);
  }
  return hits;
}

}  // namespace berth::testing
