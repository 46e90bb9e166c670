# See cni_config.fuzz.cmake: the enrollment messages, instrumented like the targets.
if(NOT TARGET tollgate_proto)
  add_subdirectory(${PROJECT_SOURCE_DIR}/proto ${PROJECT_BINARY_DIR}/proto)
  target_compile_options(tollgate_proto PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
endif()
tollgate_fuzz_target(enroll_frame SOURCES common/framing.cc LIBS tollgate_proto)
