# ctest driver: compiles cases.cpp with -DCASE_${CASE} (syntax only) and checks the outcome.
#   -DCXX=compiler -DSRC=cases.cpp -DINCLUDES="dir;dir" -DCASE=name -DEXPECT=success|failure
#   -DMESSAGE=text   (failure only: a line of the compiler's output must contain it)
set(args -std=c++20 -fsyntax-only -DCASE_${CASE})
foreach(dir IN LISTS INCLUDES)
  list(APPEND args "-I${dir}")
endforeach()
execute_process(COMMAND ${CXX} ${args} ${SRC} RESULT_VARIABLE rc OUTPUT_VARIABLE out
  ERROR_VARIABLE out)
if(EXPECT STREQUAL "success")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "case ${CASE} should compile but did not (${rc}):\n${out}")
  endif()
else()
  if(rc EQUAL 0)
    message(FATAL_ERROR "case ${CASE} compiled: a Secret reached a formatter")
  endif()
  string(FIND "${out}" "${MESSAGE}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR
      "case ${CASE} failed to compile, but not with \"${MESSAGE}\":\n${out}")
  endif()
endif()
message(STATUS "case ${CASE}: ${EXPECT} as expected")
