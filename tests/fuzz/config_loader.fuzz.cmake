tollgate_fuzz_target(config_loader
  SOURCES policy/config_loader.cc policy/model.cc policy/ip.cc
  LIBS yaml-cpp)
