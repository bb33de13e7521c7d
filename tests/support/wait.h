#pragma once
// Waiting on state instead of sleeping: polls `pred` until it holds or `limit` passes. The limit
// only bounds the wait; a test asserts on the state, never on how long it took.
//
//   REQUIRE(berth::testing::wait_until([&] { return server.connected().size() == 1; }, 10s));
//
// Returns whether `pred` held (it is asked once more at the deadline). Call from any thread; the
// predicate runs on the caller's.
#include <chrono>
#include <thread>

namespace berth::testing {

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit,
                std::chrono::milliseconds poll = std::chrono::milliseconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(poll);
  }
  return pred();
}

}  // namespace berth::testing
