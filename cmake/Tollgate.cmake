# Helpers shared by every component directory.

# tollgate_library(<component> [DEPS lib...])
# One static library per top-level directory: every *.cc there except main.cc files.
function(tollgate_library component)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  list(FILTER srcs EXCLUDE REGEX "/([a-z_]*_)?main\\.cc$")
  if(NOT srcs)
    # A component whose first sources have not landed yet: headers only.
    add_library(tollgate_${component} INTERFACE)
    target_include_directories(tollgate_${component} INTERFACE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
    target_link_libraries(tollgate_${component} INTERFACE ${ARG_DEPS})
    return()
  endif()
  add_library(tollgate_${component} STATIC ${srcs})
  target_include_directories(tollgate_${component} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(tollgate_${component} PUBLIC ${ARG_DEPS})
endfunction()

# tollgate_tests(<dir under tests/> LABEL <label> DEPS lib... [PROPERTIES prop value...])
# One test executable per test directory, every *_test.cc in it, each gtest case a ctest test;
# PROPERTIES are added to each (fixtures, locks, environment).
function(tollgate_tests dir)
  cmake_parse_arguments(ARG "" "LABEL;TIMEOUT" "DEPS;PROPERTIES" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${dir}/*_test.cc)
  if(NOT srcs)
    return()
  endif()
  string(REPLACE "/" "_" exe "${dir}_tests")
  add_executable(${exe} ${srcs})
  target_link_libraries(${exe} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${exe} PRIVATE
    TOLLGATE_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    TOLLGATE_BINARY_DIR="${PROJECT_BINARY_DIR}")
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  gtest_discover_tests(${exe}
    PROPERTIES LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT} ${ARG_PROPERTIES}
    DISCOVERY_TIMEOUT 60)
  # `gtest_suites` builds every unit and netns test binary (and what they run) but not the rest:
  # the sanitizer builds of `make test` / `make test-sanitize` need nothing more.
  if(NOT TARGET gtest_suites)
    add_custom_target(gtest_suites)
  endif()
  add_dependencies(gtest_suites ${exe})
endfunction()
