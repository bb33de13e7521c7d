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

}  // namespace berth
