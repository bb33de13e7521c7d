#pragma once
// Helpers shared by the fault suite's files (tests/faults/*_itest.cpp, one binary).
#include <chrono>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "e2e/stack.h"

namespace berth::faults {

using Clock = std::chrono::steady_clock;

// Seconds since `since`, one decimal.
inline double seconds_since(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The suite's figure: one line per fault, on stdout (ctest -V and the CI log show it).
inline void report_recovery(const std::string& fault, const std::string& condition,
                            double seconds) {
  std::cout << "[faults] " << fault << ": condition \"" << condition << "\"; recovered in "
            << static_cast<int>(seconds * 10) / 10.0 << " s" << std::endl;
}

// The sample image `tag` through `host` (a fault proxy in front of the registry) instead of the
// registry's own address: the config a create or a PATCH sends.
inline nlohmann::json via(const std::string& host, const std::string& tag) {
  return {{"image_ref", host + "/" + testenv::Registry::kRepository + ":" + tag}};
}

inline std::string condition_of(const nlohmann::json& service, const std::string& type,
                                const std::string& field) {
  for (const auto& c : service.value("conditions", nlohmann::json::array())) {
    if (c.value("type", "") == type) return c.value(field, "");
  }
  return "";
}

}  // namespace berth::faults
