# The fuzz build (BERTH_FUZZ=ON, hack/fuzz.sh): libFuzzer targets (tests/fuzz/) built with clang,
# every translation unit instrumented for coverage and checked by ASan and UBSan. It builds the
# fuzz targets and the parts of src/ they link, nothing else: no executables, no test suites.
#
# The network adapters of the modules the targets link (Beast/Asio sessions and clients) are
# left out of their libraries here: no target reaches them, and they are most of the compile
# time of a cold build. A fuzz target that links an object needing one of them fails to link,
# which says the parser it feeds is not where it should be (registry/protocol.h, not client.cpp).
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "BERTH_FUZZ needs clang (libFuzzer): configure with "
                      "-DCMAKE_CXX_COMPILER=clang++-14, or run hack/fuzz.sh")
endif()
if(BERTH_SANITIZE)
  message(FATAL_ERROR "BERTH_FUZZ brings its own sanitizers: leave BERTH_SANITIZE off")
endif()

set(BERTH_FUZZ_SKIP_SOURCES
  api/server.cpp api/metrics_server.cpp
  registry/client.cpp registry/digest_resolver.cpp
  agentlink/client.cpp agentlink/connection.cpp agentlink/io_thread.cpp agentlink/server.cpp
  agentlink/tls.cpp
  kube/transport.cpp)

# Coverage instrumentation everywhere (the targets link -fsanitize=fuzzer, tests/fuzz), and a
# sanitizer report is a crash: libFuzzer stops and writes the input.
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
  -fno-sanitize-recover=all)
add_link_options(-fsanitize=address,undefined)
