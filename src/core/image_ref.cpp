// A hand-written equivalent of distribution/reference v0.6.0 ParseNormalizedNamed.
//
// Upstream matches one big regular expression. std::regex is not used here on purpose: libstdc++
// implements it with a recursive backtracking matcher that is slow and overflows the stack on
// inputs of a few thousand characters, and image references arrive from untrusted API callers.
// The upstream grammar is unambiguous once you notice three facts, which is what makes a single
// left-to-right pass enough:
//   * no part after the name (tag, digest) may contain '/', so the name holds every '/';
//   * a host is never followed by anything but '/', so it is exactly the text before the first
//     '/' (and only when that text matches host[:port]);
//   * path components contain neither ':' nor '@', so the name ends at the first ':' or '@'
//     after the host.
#include "core/image_ref.h"

#include <cstddef>
#include <string>

#include "common/text.h"

namespace berth::core {
namespace {

// Upstream RepositoryNameTotalLengthMax (NameTotalLengthMax before v0.6.0). Since v0.6.0 it bounds
// the path only, without the domain (reference.go Parse: len(repo.path) > 255).
constexpr std::size_t kRepositoryPathLengthMax = 255;
constexpr std::size_t kTagLengthMax = 128;  // [\w][\w.-]{0,127}
constexpr std::size_t kDigestHexMin = 32;   // [[:xdigit:]]{32,}

constexpr std::string_view kDefaultDomain = "docker.io";
constexpr std::string_view kLegacyDefaultDomain = "index.docker.io";
constexpr std::string_view kOfficialRepoPrefix = "library/";
constexpr std::string_view kDockerHubLegacyAuthKey = "https://index.docker.io/v1/";

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_xdigit(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_word(char c) { return is_alnum(c) || c == '_'; }  // regexp \w

bool has_upper(std::string_view s) {
  for (char c : s) {
    if (is_upper(c)) return true;
  }
  return false;
}

// Reasons are built without the field name; parse_image_ref puts it in front.
Error invalid(std::string reason) { return make_error(ErrorCode::kValidation, std::move(reason)); }

// Messages never quote the reference: it came from an API caller and a mistaken paste can hold
// a secret (https://user:token@host/...). They name the part and a 1-based position in the
// text as submitted instead.
class Positions {
 public:
  // `full` is what the grammar is matched against: `text` with the default host (and
  // library/) put in front, or with index.docker.io shortened; both end with the same suffix.
  Positions(std::string_view text, std::string_view full)
      : full_(full),
        shift_(static_cast<std::ptrdiff_t>(full.size()) -
               static_cast<std::ptrdiff_t>(text.size())) {}
  // Position of the first character of `part` (a view into `full`) in the submitted text.
  std::size_t of(std::string_view part) const { return at(part, 0); }
  // Position of `part[i]`.
  std::size_t at(std::string_view part, std::size_t i) const {
    const std::ptrdiff_t in_full = part.data() - full_.data() + static_cast<std::ptrdiff_t>(i);
    const std::ptrdiff_t in_text = in_full - shift_;
    return in_text < 0 ? 1 : static_cast<std::size_t>(in_text) + 1;
  }
  std::string span(std::string_view part) const {
    if (part.size() <= 1) return "at position " + std::to_string(of(part));
    return "at positions " + std::to_string(of(part)) + "-" +
           std::to_string(at(part, part.size() - 1));
  }

 private:
  std::string_view full_;
  std::ptrdiff_t shift_;
};

std::string position(std::size_t p) { return "at position " + std::to_string(p); }

Error invalid_host(const Positions& pos, std::string_view host) {
  return invalid("registry host " + pos.span(host) +
                 " is not a valid host name, IPv4 address or [IPv6] address with an "
                 "optional :port");
}

// Bytes that no part of the grammar allows anywhere; reporting them first gives the clearest
// message ("contains a space") without changing what is accepted.
Status check_printable(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == ' ') return invalid("contains a space " + position(i + 1));
    if (c < 0x20 || c == 0x7f) return invalid("contains a control character " + position(i + 1));
    if (c > 0x7f) return invalid("contains a non-ASCII byte " + position(i + 1));
  }
  return Status::Ok();
}

// path-component := [a-z0-9]+ ( ( [._] | __ | [-]+ ) [a-z0-9]+ )*
bool is_path_component(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  if (n == 0 || !is_lower_alnum(s[0])) return false;
  while (i < n) {
    while (i < n && is_lower_alnum(s[i])) ++i;
    if (i == n) return true;
    // A separator, which must be followed by an alphanumeric run.
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      ++i;
      if (i < n && s[i] == '_') ++i;
    } else if (s[i] == '-') {
      while (i < n && s[i] == '-') ++i;
    } else {
      return false;
    }
    if (i == n || !is_lower_alnum(s[i])) return false;
  }
  return true;
}

// domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool is_domain_component(std::string_view s) {
  if (s.empty() || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  for (char c : s) {
    if (!is_alnum(c) && c != '-') return false;
  }
  return true;
}

// domain-name := domain-component ( '.' domain-component )*
bool is_domain_name(std::string_view s) {
  while (true) {
    const std::size_t dot = s.find('.');
    if (!is_domain_component(s.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    s.remove_prefix(dot + 1);
  }
}

// host [':' port] where host := domain-name | '[' [a-fA-F0-9:]+ ']' and port := [0-9]+.
// Upstream deliberately accepts any hex/colon mix between brackets (no zone ids, no dotted
// IPv4 tails) and does not range-check the port; neither does this.
bool is_domain_and_port(std::string_view s) {
  std::string_view host = s;
  std::string_view port;
  bool has_port = false;
  if (!s.empty() && s.front() == '[') {
    const std::size_t close = s.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (char c : s.substr(1, close - 1)) {
      if (!is_xdigit(c) && c != ':') return false;
    }
    host = s.substr(0, close + 1);
    const std::string_view after = s.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return false;
      has_port = true;
      port = after.substr(1);
    }
  } else {
    const std::size_t colon = s.find(':');
    if (colon != std::string_view::npos) {
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
      has_port = true;
    }
    if (!is_domain_name(host)) return false;
  }
  if (has_port) {
    if (port.empty()) return false;
    for (char c : port) {
      if (!is_digit(c)) return false;
    }
  }
  return true;
}

bool is_digest_algorithm(std::string_view s) {
  // digest-algorithm := component ( [-_+.] component )*, component := [A-Za-z][A-Za-z0-9]*
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (true) {
    if (i == n || !is_alpha(s[i])) return false;
    ++i;
    while (i < n && is_alnum(s[i])) ++i;
    if (i == n) return true;
    if (s[i] != '-' && s[i] != '_' && s[i] != '+' && s[i] != '.') return false;
    ++i;
  }
}

// Registered go-digest algorithms and their hex lengths (hash size * 2).
std::size_t registered_hex_length(std::string_view algorithm) {
  if (algorithm == "sha256") return 64;
  if (algorithm == "sha384") return 96;
  if (algorithm == "sha512") return 128;
  return 0;
}

struct Match {
  std::string_view domain;  // empty when the first segment is not a host
  std::string_view path;
  std::string_view tag;
  std::string_view digest;
};

// Why a path component breaks path-component: the first offending character, or the
// separator rule when every character is allowed.
Error invalid_component(const Positions& pos, std::string_view c) {
  for (std::size_t i = 0; i < c.size(); ++i) {
    const char ch = c[i];
    if (is_upper(ch)) {
      return invalid("repository path must be lowercase (uppercase letter " +
                     position(pos.at(c, i)) + ")");
    }
    if (!is_lower_alnum(ch) && ch != '.' && ch != '_' && ch != '-') {
      return invalid("repository path has a character that is not allowed " +
                     position(pos.at(c, i)) +
                     " (allowed: lowercase letters, digits, '.', '_', '-' and '/')");
    }
  }
  return invalid("repository path component " + pos.span(c) +
                 " must start and end with a lowercase letter or digit, with '.', '_', '__' "
                 "or one or more '-' between them");
}

Error wrong_hex_length(std::string_view algorithm, std::size_t want, std::size_t got) {
  // `algorithm` is one of the registered names here, never arbitrary input.
  return invalid("digest algorithm " + std::string(algorithm) + " requires " +
                 std::to_string(want) + " hex characters, got " + std::to_string(got));
}

// The shape check, i.e. what upstream's anchored ReferenceRegexp decides. Returns the captures
// or the reason the text does not have the shape of a reference.
Result<Match> match_reference(std::string_view s, const Positions& pos) {
  Match m;
  std::string_view rest = s;
  const std::size_t slash = s.find('/');
  if (slash != std::string_view::npos) {
    const std::string_view first = s.substr(0, slash);
    if (is_domain_and_port(first)) {
      m.domain = first;
      rest = s.substr(slash + 1);
    } else if (!is_path_component(first)) {
      if (first.find_first_of(".:[") != std::string_view::npos || has_upper(first)) {
        return invalid_host(pos, first);
      }
    }
  }

  const std::size_t name_end = rest.find_first_of(":@");
  const std::string_view path = rest.substr(0, name_end);
  std::string_view suffix =
      name_end == std::string_view::npos ? std::string_view{} : rest.substr(name_end);

  std::string_view components = path;
  while (true) {
    const std::size_t sep = components.find('/');
    const std::string_view component = components.substr(0, sep);
    if (component.empty()) {
      return invalid("repository path has an empty component " + position(pos.of(component)) +
                     " (leading, trailing or doubled '/')");
    }
    if (!is_path_component(component)) return invalid_component(pos, component);
    if (sep == std::string_view::npos) break;
    components.remove_prefix(sep + 1);
  }
  m.path = path;

  if (!suffix.empty() && suffix.front() == ':') {
    const std::size_t at = suffix.find('@');
    const std::string_view tag = suffix.substr(1, at == std::string_view::npos ? at : at - 1);
    if (tag.empty()) return invalid("tag after ':' " + position(pos.of(suffix)) + " is empty");
    if (tag.front() == '.' || tag.front() == '-') {
      return invalid("tag " + position(pos.of(tag)) + " must start with a letter, digit or '_'");
    }
    for (std::size_t i = 0; i < tag.size(); ++i) {
      if (!is_word(tag[i]) && tag[i] != '.' && tag[i] != '-') {
        return invalid("tag has a character that is not allowed " + position(pos.at(tag, i)) +
                       " (allowed: letters, digits, '_', '.' and '-')");
      }
    }
    if (tag.size() > kTagLengthMax) {
      return invalid("tag is longer than 128 characters (" + std::to_string(tag.size()) + ")");
    }
    m.tag = tag;
    suffix = at == std::string_view::npos ? std::string_view{} : suffix.substr(at);
  }

  if (!suffix.empty()) {  // starts with '@'
    const std::string_view digest = suffix.substr(1);
    const std::size_t colon = digest.find(':');
    if (digest.empty() || colon == std::string_view::npos) {
      return invalid("digest after '@' " + position(pos.of(suffix)) +
                     " must have the form <algorithm>:<hex>");
    }
    const std::string_view algorithm = digest.substr(0, colon);
    const std::string_view hex = digest.substr(colon + 1);
    if (!is_digest_algorithm(algorithm)) {
      return invalid("digest algorithm " + pos.span(algorithm) +
                     " is invalid: letters and digits starting with a letter, joined by '-', "
                     "'_', '+' or '.'");
    }
    for (std::size_t i = 0; i < hex.size(); ++i) {
      if (!is_xdigit(hex[i])) {
        return invalid("digest has a character that is not hex " + position(pos.at(hex, i)));
      }
    }
    if (hex.size() < kDigestHexMin) {
      if (const std::size_t want = registered_hex_length(algorithm); want != 0) {
        return wrong_hex_length(algorithm, want, hex.size());
      }
      return invalid("digest needs at least 32 hex characters, got " + std::to_string(hex.size()));
    }
    m.digest = digest;
  }
  return m;
}

// go-digest Digest.Validate for a digest that already has the reference grammar's shape.
Status validate_digest(std::string_view digest, const Positions& pos) {
  const std::size_t colon = digest.find(':');
  const std::string_view algorithm = digest.substr(0, colon);
  const std::string_view hex = digest.substr(colon + 1);
  const std::size_t want = registered_hex_length(algorithm);
  if (want == 0) {
    return invalid("digest algorithm " + pos.span(algorithm) +
                   " is not supported (use sha256, sha384 or sha512)");
  }
  if (hex.size() != want) return wrong_hex_length(algorithm, want, hex.size());
  for (std::size_t i = 0; i < hex.size(); ++i) {
    if (is_upper(hex[i])) {
      return invalid("digest must use lowercase hex (uppercase letter " + position(pos.at(hex, i)) +
                     ")");
    }
  }
  return Status::Ok();
}

bool is_hex_identifier(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!is_digit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

// upstream splitDockerDomain: decides whether the first segment is a host.
void split_docker_domain(std::string_view text, std::string& domain, std::string& remainder) {
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    domain = kDefaultDomain;
    remainder = std::string(kOfficialRepoPrefix) + std::string(text);
    return;
  }
  const std::string_view first = text.substr(0, slash);
  const std::string_view after = text.substr(slash + 1);
  if (first == "localhost" || first.find_first_of(".:") != std::string_view::npos ||
      has_upper(first)) {
    domain = first == kLegacyDefaultDomain ? kDefaultDomain : first;
    remainder = after;
  } else {
    domain = kDefaultDomain;
    remainder = text;
  }
  if (domain == kDefaultDomain && remainder.find('/') == std::string::npos) {
    remainder.insert(0, kOfficialRepoPrefix);
  }
}

}  // namespace

std::string ImageRef::name() const { return registry_host + "/" + repository; }

std::string ImageRef::normalized() const {
  std::string out = name();
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

std::string ImageRef::familiar() const {
  std::string out;
  if (registry_host == kDefaultDomain) {
    std::string_view path = repository;
    // Only a single component under library/ is an official image; library/a/b stays as is.
    if (path.starts_with(kOfficialRepoPrefix) &&
        path.substr(kOfficialRepoPrefix.size()).find('/') == std::string_view::npos) {
      path.remove_prefix(kOfficialRepoPrefix.size());
    }
    // A first component that parsing would read as a host (docker.io/zonaws.com/x) keeps the
    // domain: without it the short form would name another registry.
    const std::string_view first = path.substr(0, path.find('/'));
    const bool reads_as_host =
        path.find('/') != std::string_view::npos &&
        (first == "localhost" || first.find_first_of(".:") != std::string_view::npos);
    out = reads_as_host ? name() : std::string(path);
  } else {
    out = name();
  }
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

std::vector<std::string> ImageRef::auth_keys() const {
  if (registry_host == kDefaultDomain) {
    return {std::string(kDefaultDomain), std::string(kDockerHubLegacyAuthKey)};
  }
  return {registry_host};
}

std::string ImageRef::pinned(std::string_view pin) const { return name() + "@" + std::string(pin); }

std::string ImageRef::with_default_tag() const {
  if (tag.empty() && digest.empty()) return name() + ":latest";
  return normalized();
}

namespace {

Result<ImageRef> parse(std::string_view text) {
  if (text.empty()) return invalid("is empty");
  if (Status s = check_printable(text); !s) return s.error();
  if (is_hex_identifier(text)) {
    return invalid(
        "is a 64-character hexadecimal image ID, not a repository name (cannot specify 64-byte "
        "hexadecimal strings)");
  }

  std::string domain;
  std::string remainder;
  split_docker_domain(text, domain, remainder);
  const std::string full = domain + "/" + remainder;
  const Positions pos(text, full);

  // upstream: everything before the first ':' after the host must be lowercase.
  const std::string_view remote =
      std::string_view(full).substr(domain.size() + 1, remainder.find(':'));
  for (std::size_t i = 0; i < remote.size(); ++i) {
    if (!is_upper(remote[i])) continue;
    // Without a tag that text runs on into the digest (an upstream quirk kept here).
    const bool in_digest = remote.substr(0, i).find('@') != std::string_view::npos;
    return invalid(std::string(in_digest ? "digest" : "repository path") +
                   " must be lowercase (uppercase letter " + position(pos.at(remote, i)) + ")");
  }

  auto match = match_reference(full, pos);
  if (!match.ok()) {
    const std::string lowered = to_lower_ascii(full);
    if (lowered != full && match_reference(lowered, Positions(text, lowered)).ok()) {
      for (std::size_t i = 0; i < text.size(); ++i) {
        if (is_upper(text[i])) {
          return invalid("repository path must be lowercase (uppercase letter " + position(i + 1) +
                         ")");
        }
      }
    }
    return match.take_error();
  }
  const Match& m = match.value();

  if (m.path.size() > kRepositoryPathLengthMax) {
    return invalid("repository path is longer than 255 characters (" +
                   std::to_string(m.path.size()) +
                   " after normalization; the registry host does not count)");
  }
  if (!m.digest.empty()) {
    if (Status s = validate_digest(m.digest, pos); !s.ok()) return s.error();
  }
  if (m.domain.empty()) {
    // Upstream accepts e.g. "my_registry.example.com/app" with an empty domain (the first
    // segment looked like a host to splitDockerDomain but is not one to the grammar). A
    // reference without a host cannot be pulled or matched to a credential, so berth rejects it.
    return invalid_host(pos, std::string_view(full).substr(0, domain.size()));
  }

  ImageRef ref;
  ref.registry_host = std::string(m.domain);
  ref.repository = std::string(m.path);
  ref.tag = std::string(m.tag);
  ref.digest = std::string(m.digest);
  ref.ecr = is_ecr_host(ref.registry_host);
  return ref;
}

}  // namespace

Result<ImageRef> parse_image_ref(std::string_view text, std::string_view field) {
  auto ref = parse(text);
  if (!ref.ok()) return validation_error(std::string(field), ref.error().message);
  return ref;
}

bool is_ecr_host(std::string_view host) {
  const std::string h = to_lower_ascii(host);
  std::string_view s = h;
  if (s.ends_with(".amazonaws.com.cn")) {
    s.remove_suffix(std::string_view(".amazonaws.com.cn").size());
  } else if (s.ends_with(".amazonaws.com")) {
    s.remove_suffix(std::string_view(".amazonaws.com").size());
  } else {
    return false;
  }
  if (s.size() < 12) return false;
  for (char c : s.substr(0, 12)) {
    if (!is_digit(c)) return false;
  }
  s.remove_prefix(12);
  constexpr std::string_view kEcr = ".dkr.ecr";
  if (!s.starts_with(kEcr)) return false;
  s.remove_prefix(kEcr.size());
  if (s.starts_with("-fips")) s.remove_prefix(5);
  if (!s.starts_with('.')) return false;
  s.remove_prefix(1);
  // The region: "us-east-1", "cn-north-1", "us-gov-west-1".
  if (s.empty() || !is_alpha(s.front())) return false;
  for (char c : s) {
    if (!is_lower_alnum(c) && c != '-') return false;
  }
  return true;
}

}  // namespace berth::core
