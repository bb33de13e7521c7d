#pragma once
// Pieces the Deployer's source files share. Not part of the agent's interface.
#include <algorithm>
#include <chrono>

#include "agent/health_probe.h"
#include "core/types.h"

namespace berth::agent {

// The probe of one container: the app's health-check settings (each at least 1) on its loopback
// port, within the agent's overall deadline. Deploy and restart probe the same way.
inline ProbeSpec probe_spec(const core::HealthCheck& health, int port,
                            std::chrono::milliseconds deadline) {
  ProbeSpec spec;
  spec.port = port;
  spec.path = health.path;
  spec.attempt_timeout = std::chrono::seconds(std::max(1, health.timeout_seconds));
  spec.interval = std::chrono::seconds(std::max(1, health.interval_seconds));
  spec.healthy_threshold = std::max(1, health.healthy_threshold);
  spec.deadline = deadline;
  return spec;
}

// One health check of a serving container (the watch): a single attempt, bounded by the app's
// timeout. The deadline is not after the interval, so the prober makes exactly one attempt.
inline ProbeSpec single_check(const core::HealthCheck& health, int port) {
  ProbeSpec spec = probe_spec(health, port, std::chrono::milliseconds(0));
  spec.healthy_threshold = 1;
  spec.deadline = spec.attempt_timeout;
  spec.interval = spec.attempt_timeout;
  return spec;
}

}  // namespace berth::agent
