# plugin.cc includes the enrollment messages: the fuzz build has no proto/ of its own, so the
# first fragment that needs them adds it, instrumented like the targets.
if(NOT TARGET tollgate_proto)
  add_subdirectory(${PROJECT_SOURCE_DIR}/proto ${PROJECT_BINARY_DIR}/proto)
  target_compile_options(tollgate_proto PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
endif()
tollgate_fuzz_target(cni_config
  SOURCES cni/plugin.cc cni/json.cc common/json.cc common/framing.cc
  LIBS tollgate_proto yaml-cpp)
