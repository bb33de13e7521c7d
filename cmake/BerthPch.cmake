# Precompiled headers (BERTH_PCH, off by default until measured as a gain; docs/testing.md): most of a cold build is the compiler reading the
# same third-party headers in every translation unit (Catch2's single header, nlohmann/json and
# the standard library: ~100,000 preprocessed lines in a typical test file). Two headers are
# compiled once per build and reused by every target through REUSE_FROM:
#   berth_pch_lib   the standard library headers berth uses everywhere and nlohmann/json:
#                   every module, executable and benchmark (berth_warnings() attaches it);
#   berth_pch_test  the same plus catch2/catch.hpp: every test executable and test library
#                   (berth_test_pch()).
# Boost.Asio/Beast stay out: a .gch with them is ~300 MB and costs ~3 s to load in every file,
# while only a dozen files use them.
# REUSE_FROM needs the owner and its users compiled with the same flags: the owners are compiled
# with berth_warnings()' flags and the build's own (-O, -g, sanitizers, -std), as every user is.
# A file that configures a header in it before including it (catch_main.cpp's
# CATCH_CONFIG_RUNNER) must set SKIP_PRECOMPILE_HEADERS.
# The price: a file that forgets `#include <map>` still compiles with the PCH. Configure with
# -DBERTH_PCH=OFF to check a file's includes.
option(BERTH_PCH "Use precompiled headers for the standard library, nlohmann/json and Catch2" OFF)

set(BERTH_PCH_STD_HEADERS
  <algorithm> <array> <atomic> <chrono> <condition_variable> <cstddef> <cstdint> <cstdlib>
  <cstring> <deque> <filesystem> <fstream> <functional> <map> <memory> <mutex> <optional> <set>
  <sstream> <string> <string_view> <thread> <unordered_map> <utility> <variant> <vector>
  <nlohmann/json.hpp>)

# The owners. They are OBJECT libraries with an empty source that only exist to build the .gch;
# their flags are BERTH_WARNINGS and the build's own, like their users'.
function(berth_pch_owners)
  if(NOT BERTH_PCH)
    return()
  endif()
  add_library(berth_pch_lib OBJECT ${PROJECT_SOURCE_DIR}/cmake/pch/anchor.cpp)
  target_link_libraries(berth_pch_lib PRIVATE nlohmann_json::nlohmann_json)
  target_compile_options(berth_pch_lib PRIVATE ${BERTH_WARNINGS})
  target_precompile_headers(berth_pch_lib PRIVATE ${BERTH_PCH_STD_HEADERS})
endfunction()

function(berth_pch_test_owner)
  if(NOT BERTH_PCH)
    return()
  endif()
  add_library(berth_pch_test OBJECT ${PROJECT_SOURCE_DIR}/cmake/pch/anchor.cpp)
  target_link_libraries(berth_pch_test PRIVATE nlohmann_json::nlohmann_json Catch2::Catch2)
  # The same flags as the test code that reuses it (cmake/BerthModule.cmake: BERTH_TEST_OPT).
  target_compile_options(berth_pch_test PRIVATE ${BERTH_WARNINGS} ${BERTH_TEST_OPT_FLAGS})
  target_precompile_headers(berth_pch_test PRIVATE ${BERTH_PCH_STD_HEADERS} <catch2/catch.hpp>)
endfunction()

# berth_pch_attach(TARGET OWNER): TARGET reuses OWNER's precompiled header, unless it already
# reuses one (a test target given berth_pch_test before berth_warnings()).
function(berth_pch_attach target owner)
  if(NOT BERTH_PCH OR NOT TARGET ${owner})
    return()
  endif()
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    return()
  endif()
  get_target_property(reused ${target} PRECOMPILE_HEADERS_REUSE_FROM)
  if(reused)
    return()
  endif()
  target_precompile_headers(${target} REUSE_FROM ${owner})
endfunction()
