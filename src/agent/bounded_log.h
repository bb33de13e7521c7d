#pragma once
// Bounds on what the agent sends: a TaskResult (with its deploy log) and every Progress entry
// must fit the link's frame limit (1 MiB, agentlink/messages.cpp), or the frame is refused,
// the link drops and the re-sent result is refused again. The agent bounds them where they are
// made, with a visible marker, instead of hoping the runtime's output is short:
//   - each text (message, detail, error) is cut to its cap with " [truncated: N bytes omitted]";
//   - the entries of one result are kept from the first until their budget is spent, and a
//     last entry (step "truncated", status "info") says "truncated: N entries / B bytes omitted".
// Sizes are counted as JSON-escaped bytes, so a control character counts 6. Text is also made
// valid UTF-8 (invalid bytes become U+FFFD): a JSON encoder refuses invalid UTF-8, and a
// container's log may hold anything.
//
// Pure functions, thread-safe.
#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "agentlink/messages.h"
#include "core/types.h"

namespace berth::agent {

inline constexpr std::size_t kMaxMessageBytes = 4 * 1024;
inline constexpr std::size_t kMaxDetailBytes = 64 * 1024;
inline constexpr std::size_t kMaxErrorBytes = 4 * 1024;
// All entries of one result together: with the other fields the frame stays far below 1 MiB.
inline constexpr std::size_t kMaxLogBytes = 512 * 1024;

// `text` as valid UTF-8 whose JSON-escaped size is at most `max` plus the marker.
std::string bounded_text(std::string text, std::size_t max);
// One entry with its message and detail bounded.
core::DeployLogEntry bounded_entry(core::DeployLogEntry entry);
// The entries that fit in `budget` (each already bounded), then the marker entry if any were
// dropped.
std::vector<core::DeployLogEntry> bounded_logs(std::vector<core::DeployLogEntry> logs,
                                               std::size_t budget = kMaxLogBytes);
// The result with its error and logs bounded.
agentlink::TaskResult bounded_result(agentlink::TaskResult result);

}  // namespace berth::agent
