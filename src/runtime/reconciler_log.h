#pragma once
// Helpers shared by the reconciler's files (reconciler.cpp: the plan steps; task_results.cpp:
// results and link events): deploy-log entries, operator log fields, error texts, backoff.
#include <algorithm>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/execution.h"
#include "core/types.h"

namespace berth::runtime::detail {

inline core::DeployLogEntry log_entry(std::string step, std::string status, std::string message,
                                      core::UnixMillis at) {
  core::DeployLogEntry e;
  e.step = std::move(step);
  e.status = std::move(status);
  e.message = std::move(message);
  e.started_at = at;
  return e;
}

// Operator log lines name the app by id (`app`, the key every process logs it under: the API,
// the reconciler, the agent) and by name (`app_name`).
inline nlohmann::json app_fields(const core::AppService& s) {
  return {{"app", s.id}, {"app_name", s.name}};
}

// "step: error" of a failed task, from the first failed log entry the agent sent.
inline std::string failed_step_text(const core::TaskOutcome& outcome, const char* fallback_step) {
  for (const auto& e : outcome.logs) {
    if (e.status == "failed" && !e.step.empty()) {
      return e.step + ": " + (outcome.error.empty() ? e.message : outcome.error);
    }
  }
  return std::string(fallback_step) + ": " + outcome.error;
}

// 1 s doubling, capped at `cap_ms`.
inline core::UnixMillis next_delay(int count, std::int64_t cap_ms) {
  return std::min<std::int64_t>(1000LL << std::min(count, 16), cap_ms);
}

}  // namespace berth::runtime::detail
