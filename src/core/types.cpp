#include "core/types.h"

#include <chrono>
#include <cstdio>

namespace berth::core {

std::string format_rfc3339(UnixMillis t) {
  // The C++20 calendar converts without gmtime (not pure) or a time zone database; g++ 12 has
  // no std::format for it yet, so snprintf lays it out.
  using namespace std::chrono;
  const sys_time<milliseconds> at{milliseconds{t}};
  const sys_days day = floor<days>(at);
  const year_month_day date{day};
  const hh_mm_ss<milliseconds> time{at - day};
  char buf[64];
  const int n = std::snprintf(
      buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", static_cast<int>(date.year()),
      static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
      static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
      static_cast<int>(time.seconds().count()));
  const auto millis = static_cast<int>(time.subseconds().count());
  if (millis != 0) {
    std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ".%03dZ", millis);
  } else {
    std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), "Z");
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
