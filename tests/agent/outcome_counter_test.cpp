#include "agent/outcome_counter.h"

#include <catch2/catch.hpp>

using berth::agent::OutcomeCounter;
using berth::metrics::Counter;

TEST_CASE("a deploy task's outcome counts once, also when the controller re-sends it",
          "[agent][metrics]") {
  Counter ok, failed;
  OutcomeCounter counter(ok, failed);
  counter.received("t1");
  counter.answered("t1", true);
  CHECK(ok.value() == 1);
  // Re-sent after a reconnect and answered again from the agent's record.
  counter.received("t1");
  counter.answered("t1", true);
  CHECK(ok.value() == 1);
  counter.received("t2");
  counter.answered("t2", false);
  CHECK(failed.value() == 1);
  CHECK(ok.value() == 1);
}

TEST_CASE("an answer without a received deploy task counts nothing", "[agent][metrics]") {
  Counter ok, failed;
  OutcomeCounter counter(ok, failed);
  counter.answered("restart-task", true);  // a restart or remove result
  CHECK(ok.value() == 0);
  CHECK(failed.value() == 0);
}

TEST_CASE("the counter remembers a bounded number of counted tasks", "[agent][metrics]") {
  Counter ok, failed;
  OutcomeCounter counter(ok, failed, 2);
  for (const char* id : {"a", "b", "c"}) {
    counter.received(id);
    counter.answered(id, true);
  }
  CHECK(ok.value() == 3);
  // "a" was forgotten (only the last two are remembered): a very late re-send counts again,
  // the price of bounded memory; "c" is still remembered.
  counter.received("c");
  counter.answered("c", true);
  CHECK(ok.value() == 3);
  counter.received("a");
  counter.answered("a", true);
  CHECK(ok.value() == 4);
}
