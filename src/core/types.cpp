#include "core/types.h"

namespace berth::core {

const char* to_string(ServiceStatus s) {
  switch (s) {
    case ServiceStatus::kPending: return "Pending";
    case ServiceStatus::kRunning: return "Running";
    case ServiceStatus::kPendingModification: return "PendingModification";
    case ServiceStatus::kFailed: return "Failed";
    case ServiceStatus::kDeleting: return "Deleting";
  }
  return "Pending";
}

std::optional<ServiceStatus> parse_service_status(std::string_view text) {
  for (auto s : {ServiceStatus::kPending, ServiceStatus::kRunning,
                 ServiceStatus::kPendingModification, ServiceStatus::kFailed,
                 ServiceStatus::kDeleting}) {
    if (text == to_string(s)) return s;
  }
  return std::nullopt;
}

const char* to_string(RevisionState s) {
  switch (s) {
    case RevisionState::kPending: return "pending";
    case RevisionState::kSucceeded: return "succeeded";
    case RevisionState::kFailed: return "failed";
  }
  return "pending";
}

std::optional<RevisionState> parse_revision_state(std::string_view text) {
  for (auto s : {RevisionState::kPending, RevisionState::kSucceeded, RevisionState::kFailed}) {
    if (text == to_string(s)) return s;
  }
  return std::nullopt;
}

}  // namespace berth::core
