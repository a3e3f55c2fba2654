# Sanitizer and fuzzing builds of checkpoint (README, "Tests"; tools/test.sh, tools/fuzz.sh).
#
#   -DCHECKPOINT_SANITIZE=address,undefined   AddressSanitizer + UndefinedBehaviorSanitizer
#   -DCHECKPOINT_SANITIZE=thread              ThreadSanitizer
#   -DCHECKPOINT_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14
#                                             the libFuzzer targets of tests/fuzz, built with
#                                             address,undefined (or CHECKPOINT_SANITIZE)
#
# Included from the top-level CMakeLists.txt before any target is defined: the flags apply
# to every target of the project (library, tools, tests, fuzz targets). Any report stops
# the program (-fno-sanitize-recover=all): a sanitizer finding fails the test.
set(CHECKPOINT_SANITIZE "" CACHE STRING
  "Build every target with these sanitizers: address,undefined or thread (empty: none)")
option(CHECKPOINT_FUZZ "Build the libFuzzer targets of tests/fuzz (needs clang++)" OFF)

set(checkpoint_sanitizers "${CHECKPOINT_SANITIZE}")
if(CHECKPOINT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "CHECKPOINT_FUZZ=ON needs clang (libFuzzer): configure with "
                        "-DCMAKE_CXX_COMPILER=clang++-14 (got ${CMAKE_CXX_COMPILER_ID})")
  endif()
  if(checkpoint_sanitizers STREQUAL "")
    set(checkpoint_sanitizers "address,undefined")
  endif()
endif()

if(NOT checkpoint_sanitizers STREQUAL "")
  string(REPLACE "," ";" checkpoint_sanitizer_list "${checkpoint_sanitizers}")
  foreach(sanitizer IN LISTS checkpoint_sanitizer_list)
    if(NOT sanitizer MATCHES "^(address|undefined|thread)$")
      message(FATAL_ERROR "CHECKPOINT_SANITIZE: unknown sanitizer '${sanitizer}' "
                          "(use address,undefined or thread)")
    endif()
  endforeach()
  if("thread" IN_LIST checkpoint_sanitizer_list AND "address" IN_LIST checkpoint_sanitizer_list)
    message(FATAL_ERROR "CHECKPOINT_SANITIZE: thread and address cannot be combined; "
                        "build them in separate directories")
  endif()
  set(checkpoint_sanitizer_flags "-fsanitize=${checkpoint_sanitizers}")
  add_compile_options(${checkpoint_sanitizer_flags} -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(${checkpoint_sanitizer_flags})
  if(CHECKPOINT_FUZZ)
    # Coverage instrumentation for libFuzzer everywhere; only the fuzz targets link its main.
    add_compile_options(-fsanitize=fuzzer-no-link)
  endif()
  message(STATUS "checkpoint: sanitizers ${checkpoint_sanitizers}")

  # A sanitized libcheckpoint.so needs its sanitizer runtime loaded first, so a program
  # linked against it must be linked with the same -fsanitize flags. tests/package_test.sh
  # builds such consumers with $CXX: tools/test.sh points CXX at this wrapper.
  set(checkpoint_wrapper_tmp "${PROJECT_BINARY_DIR}/CMakeFiles/sanitized-c++")
  file(WRITE "${checkpoint_wrapper_tmp}"
    "#!/bin/sh\n"
    "# ${CMAKE_CXX_COMPILER} with the sanitizers of this build (see cmake/Sanitizers.cmake).\n"
    "exec '${CMAKE_CXX_COMPILER}' ${checkpoint_sanitizer_flags} \"$@\"\n")
  file(COPY "${checkpoint_wrapper_tmp}" DESTINATION "${PROJECT_BINARY_DIR}"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                        WORLD_READ WORLD_EXECUTE)
endif()
