#include "core/types.h"

#include <cstdio>

namespace berth::core {

namespace {

// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days), so the
// conversion needs neither gmtime (not pure, not thread-safe) nor a time zone database.
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

std::string format_rfc3339(UnixMillis t) {
  const std::int64_t secs = floor_div(t, 1000);
  const auto millis = static_cast<int>(t - secs * 1000);
  const std::int64_t days = floor_div(secs, 86400);
  const auto sod = static_cast<int>(secs - days * 86400);
  std::int64_t y = 0;
  unsigned m = 0;
  unsigned d = 0;
  civil_from_days(days, y, m, d);
  char buf[64];
  if (millis != 0) {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ",
                  static_cast<long long>(y), m, d, sod / 3600, (sod / 60) % 60, sod % 60, millis);
  } else {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02dZ", static_cast<long long>(y), m,
                  d, sod / 3600, (sod / 60) % 60, sod % 60);
  }
  return buf;
}

const char* to_string(ServiceStatus s) {
  switch (s) {
    case ServiceStatus::kPending:
      return "Pending";
    case ServiceStatus::kRunning:
      return "Running";
    case ServiceStatus::kPendingModification:
      return "PendingModification";
    case ServiceStatus::kFailed:
      return "Failed";
    case ServiceStatus::kDeleting:
      return "Deleting";
  }
  return "Pending";
}

std::optional<ServiceStatus> parse_service_status(std::string_view text) {
  for (auto s :
       {ServiceStatus::kPending, ServiceStatus::kRunning, ServiceStatus::kPendingModification,
        ServiceStatus::kFailed, ServiceStatus::kDeleting}) {
    if (text == to_string(s)) return s;
  }
  return std::nullopt;
}

const char* to_string(RevisionState s) {
  switch (s) {
    case RevisionState::kPending:
      return "pending";
    case RevisionState::kSucceeded:
      return "succeeded";
    case RevisionState::kFailed:
      return "failed";
    case RevisionState::kSuperseded:
      return "superseded";
  }
  return "pending";
}

std::optional<RevisionState> parse_revision_state(std::string_view text) {
  for (auto s : {RevisionState::kPending, RevisionState::kSucceeded, RevisionState::kFailed,
                 RevisionState::kSuperseded}) {
    if (text == to_string(s)) return s;
  }
  return std::nullopt;
}

}  // namespace berth::core
