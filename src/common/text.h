#pragma once
// Small text rules more than one module needs, written once. ASCII only and independent of the
// C locale (std::tolower and <cctype> follow setlocale, and a DNS name or an HTTP token must
// not change meaning with the process locale). Pure; safe from any thread.
#include <cstddef>
#include <string>
#include <string_view>

namespace berth {

// 'A'-'Z' become 'a'-'z'; every other byte is kept.
std::string to_lower_ascii(std::string_view s);

// Equal ignoring ASCII case (HTTP header names, auth schemes, media types).
bool iequals_ascii(std::string_view a, std::string_view b);

// `s` without leading and trailing spaces, tabs, CRs and LFs (a view into `s`).
std::string_view trim_ascii_whitespace(std::string_view s);

// An RFC 1123 DNS label: 1 to max_length of [a-z0-9-], starting and ending with a letter or
// digit. Uppercase is not accepted (callers that fold case do it first).
bool is_dns_label(std::string_view s, std::size_t max_length = 63);

// Percent-encodes every byte but RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~), with
// uppercase hex digits: the result is safe as a query value or a path segment, so a selector such
// as "app in (a,b)", a continue token (base64 with '=' and '/') or a Bearer scope goes in intact.
std::string url_encode(std::string_view s);

}  // namespace berth
