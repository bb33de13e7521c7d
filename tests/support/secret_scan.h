#pragma once
// One scanner for every "the password never shows" check. A leak rarely keeps the raw bytes: an
// auth file holds base64("user:password"), a Basic header base64 of the same, a JSON log or body
// the JSON-escaped form, a URL or form body the percent-encoded one. SecretScan looks for all of
// them, so a test that plants a canary with a character JSON escapes (testenv::Registry's does)
// catches each kind of leak.
//
//   testing::SecretScan scan;
//   scan.add(reg.password(), reg.username());
//   CHECK(scan.find_in(log).empty());               // names of the forms found, e.g. "json(#0)"
//   CHECK(scan.lines_in(log).empty());              // "form: line" for failure messages
//   CHECK(scan.files_under(data_dir).empty());      // "path: form"
//
// Pure apart from files_under (reads files). Not thread-safe for add(); the const finders may be
// called from several threads at once.
#include <string>
#include <string_view>
#include <vector>

namespace berth::testing {

class SecretScan {
 public:
  struct Form {
    std::string name;   // e.g. "raw(#0)", "base64(user:password #0)", "url(#1)"
    std::string bytes;  // what is searched for
  };

  SecretScan() = default;
  // Shortcut for one secret.
  explicit SecretScan(const std::string& secret, const std::string& username = {}) {
    add(secret, username);
  }

  // Adds `secret` (#N in form names, N counting from 0) in every encoded form: raw,
  // JSON-escaped, percent-encoded (upper and lower hex), base64 and base64url of the secret
  // alone at each of the three byte alignments (so it is found inside a longer base64 text, as
  // in base64("user:" + secret)), and, with a username, base64 of "username:secret". Forms that
  // equal one already listed are not repeated.
  void add(const std::string& secret, const std::string& username = {});

  const std::vector<Form>& forms() const { return forms_; }

  // Names of the forms that occur in `text`.
  std::vector<std::string> find_in(std::string_view text) const;
  // "FORM: LINE" for every line of `text` holding a form (empty when clean).
  std::vector<std::string> lines_in(std::string_view text) const;
  // "PATH: FORM" for every regular file under `root` (recursively, symlinks not followed) that
  // holds a form.
  std::vector<std::string> files_under(const std::string& root) const;

 private:
  void add_form(std::string name, std::string bytes);
  std::vector<Form> forms_;
  int secrets_ = 0;
};

// Encoders the scan uses, exposed for the scan's own tests.
std::string base64(std::string_view in);
std::string json_escaped(std::string_view in);  // the JSON string body, without quotes
std::string percent_encoded(std::string_view in, bool upper_hex = true);

}  // namespace berth::testing
