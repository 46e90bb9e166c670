# Included by tests/CMakeLists.txt in the main (gcc) build: one bounded libFuzzer run per target
# built by the fuzz build (build/fuzz). Seed corpora live in tests/fuzz/corpus/<name>/.
set(TOLLGATE_FUZZ_BINARY_DIR "${PROJECT_SOURCE_DIR}/build/fuzz" CACHE PATH "clang fuzz build dir")
set(TOLLGATE_FUZZ_SECONDS 20 CACHE STRING "seconds per fuzz target under ctest")
file(GLOB fragments CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.fuzz.cmake)
foreach(f ${fragments})
  get_filename_component(fname ${f} NAME)
  string(REPLACE ".fuzz.cmake" "" name ${fname})
  set(corpus ${CMAKE_CURRENT_LIST_DIR}/corpus/${name})
  add_test(NAME fuzz.${name}
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
      ${CMAKE_CURRENT_LIST_DIR}/run-fuzz ${TOLLGATE_FUZZ_BINARY_DIR}/tests/fuzz/${name}_fuzz
      ${corpus} ${TOLLGATE_FUZZ_SECONDS})
  set_tests_properties(fuzz.${name} PROPERTIES LABELS fuzz TIMEOUT 300)
endforeach()
