#pragma once
// Pause points: named moments of a rollout where a test can hold a process still and SIGKILL it
// exactly there (the crash suite, tests/crash; docs/testing.md "Crash suite" lists the points).
//
// Off unless the environment has BERTH_TEST_PAUSE_FILE naming a file; without it a call costs
// one getenv() and does nothing, so a production process is never paused. With it (only the
// crash suite sets it, for the processes it starts), each call reads the file, and when its
// first line is exactly `point` the calling thread logs "test pause point reached" {point} at
// warn and waits, re-reading the file every 20 ms, until the file names something else (or is
// gone) or 30 s have passed; then it goes on as if nothing had happened. Only the calling
// thread waits. The first call that finds the variable set logs "test pause points armed" at
// warn, so an armed process says so in its log.
//
// Thread-safe. Never fails: an unreadable file is a file that names no point.
#include <string_view>

namespace berth {

void pause_point(std::string_view point);

}  // namespace berth
