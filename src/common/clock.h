#pragma once
// The wall clock, read in one place. Only composition roots and adapters call it; the core
// takes time as a value (UnixMillis in core/types.h is the same integer).
#include <cstdint>

namespace berth {

// Milliseconds since the Unix epoch (std::chrono::system_clock).
std::int64_t system_now();
// Milliseconds of a monotonic clock (std::chrono::steady_clock), for intervals that must not
// follow a wall-clock step; meaningless across processes.
std::int64_t steady_now_ms();

}  // namespace berth
