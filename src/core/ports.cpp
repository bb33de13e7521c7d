#include "core/ports.h"

namespace berth::core {

const char* to_string(TaskKind k) {
  switch (k) {
    case TaskKind::kDeploy:
      return "deploy";
    case TaskKind::kRestart:
      return "restart";
    case TaskKind::kRemove:
      return "remove";
  }
  return "deploy";
}

std::optional<TaskKind> parse_task_kind(std::string_view text) {
  for (auto k : {TaskKind::kDeploy, TaskKind::kRestart, TaskKind::kRemove}) {
    if (text == to_string(k)) return k;
  }
  return std::nullopt;
}

const char* to_string(TaskState s) {
  switch (s) {
    case TaskState::kQueued:
      return "queued";
    case TaskState::kSent:
      return "sent";
    case TaskState::kDone:
      return "done";
  }
  return "queued";
}

std::optional<TaskState> parse_task_state(std::string_view text) {
  for (auto s : {TaskState::kQueued, TaskState::kSent, TaskState::kDone}) {
    if (text == to_string(s)) return s;
  }
  return std::nullopt;
}

}  // namespace berth::core
