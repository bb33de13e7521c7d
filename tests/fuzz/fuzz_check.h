#pragma once
// What a fuzz target asserts beyond "no sanitizer report": a broken contract aborts, so
// libFuzzer keeps the input as a crash like any other (and the replay test fails on it).
#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)
