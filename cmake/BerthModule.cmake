# berth_module(NAME DEPS <modules and libraries>...)
# One static library per folder under src/: every .cpp in src/NAME, headers included as
# "NAME/file.h" from src/. Project code builds with -Wall -Wextra -Werror; third-party headers
# come in as system headers through their imported targets.
set(BERTH_WARNINGS -Wall -Wextra -Werror -Wno-missing-field-initializers)

# Every project target goes through here, so this is also where it gets the shared precompiled
# header (cmake/BerthPch.cmake) unless it already has the test one.
function(berth_warnings target)
  target_compile_options(${target} PRIVATE ${BERTH_WARNINGS})
  berth_pch_attach(${target} berth_pch_lib)
endfunction()

# Test code (tests/**, the test support libraries) is compiled at BERTH_TEST_OPT (-O0) in the
# optimised flavours, while product code keeps -O2: tests only drive the product code, and a
# test file spends most of its compile time optimising Catch2's expanded assertions. Measured
# in instructions, 11 typical test files cost 422 G at -O2, 307 G at -O1, 251 G at -O0
# (docs/testing.md "CI time"). The sanitize flavour (Debug) is -O0 already.
set(BERTH_TEST_OPT "-O0" CACHE STRING "Optimisation of test code in Release/RelWithDebInfo builds")
set(BERTH_TEST_OPT_FLAGS $<$<CONFIG:Release,RelWithDebInfo>:${BERTH_TEST_OPT}>)

# berth_test_pch(TARGET): TARGET is test code: it gets BERTH_TEST_OPT and reuses the test
# precompiled header (Catch2 included). Call it before berth_warnings().
function(berth_test_pch target)
  target_compile_options(${target} PRIVATE ${BERTH_TEST_OPT_FLAGS})
  berth_pch_attach(${target} berth_pch_test)
endfunction()

function(berth_module name)
  cmake_parse_arguments(ARG "" "" "DEPS;LABELS" ${ARGN})
  # Labels beyond "<kind>;<module>" (e.g. e2e, which the sanitize run leaves out).
  set(extra_labels "")
  foreach(label IN LISTS ARG_LABELS)
    string(APPEND extra_labels ";${label}")
  endforeach()
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${name}/*.cpp)
  # The fuzz build leaves the network adapters out (cmake/BerthFuzz.cmake).
  foreach(skipped IN LISTS BERTH_FUZZ_SKIP_SOURCES)
    list(REMOVE_ITEM sources ${CMAKE_CURRENT_SOURCE_DIR}/${skipped})
  endforeach()
  if(sources)
    add_library(berth_${name} STATIC ${sources})
    target_include_directories(berth_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(berth_${name} PUBLIC ${ARG_DEPS})
    berth_warnings(berth_${name})
  else()
    # A module with headers only (or not yet written) is an interface library.
    add_library(berth_${name} INTERFACE)
    target_include_directories(berth_${name} INTERFACE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(berth_${name} INTERFACE ${ARG_DEPS})
  endif()
endfunction()

# berth_tests(MODULE DEPS ...): tests/MODULE/*_test.cpp form the unit suite (label "unit"),
# tests/MODULE/*_itest.cpp the integration suite (label "integration": real sockets, files,
# processes). Each suite is one Catch2 executable; ctest sees every TEST_CASE. Exit code 77 is
# ctest's "Skipped": a test whose peer is missing (tests/support/skip.h).
function(berth_tests module)
  cmake_parse_arguments(ARG "" "" "DEPS;LABELS" ${ARGN})
  # Labels beyond "<kind>;<module>" (e.g. e2e, which the sanitize run leaves out).
  set(extra_labels "")
  foreach(label IN LISTS ARG_LABELS)
    string(APPEND extra_labels ";${label}")
  endforeach()
  foreach(kind unit integration)
    if(kind STREQUAL "unit")
      set(pattern "*_test.cpp")
    else()
      set(pattern "*_itest.cpp")
    endif()
    file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${module}/${pattern})
    if(sources)
      set(target berth_${module}_${kind}_tests)
      add_executable(${target} ${sources})
      target_link_libraries(${target} PRIVATE berth_test_main ${ARG_DEPS})
      target_include_directories(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
      berth_test_pch(${target})
      berth_warnings(${target})
      # Catch2 v2's PROPERTIES flattens lists, so labels and environment are applied by a
      # second ctest include file that runs after the discovered tests are defined.
      catch_discover_tests(${target} TEST_PREFIX "${module}/" TEST_LIST ${target}_TESTS)
      set(props ${CMAKE_CURRENT_BINARY_DIR}/${target}_properties.cmake)
      file(WRITE ${props}
        "foreach(t IN LISTS ${target}_TESTS)\n"
        "  set_tests_properties(\"\${t}\" PROPERTIES LABELS \"${kind};${module}${extra_labels}\"\n"
        "    SKIP_RETURN_CODE 77\n"
        "    ENVIRONMENT \"BERTH_BIN_DIR=${CMAKE_BINARY_DIR}/bin;BERTH_SOURCE_DIR=${PROJECT_SOURCE_DIR}\")\n"
        "endforeach()\n")
      set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${props})
    endif()
  endforeach()
endfunction()
