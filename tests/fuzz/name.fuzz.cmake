tollgate_fuzz_target(name SOURCES policy/name.cc policy/ip.cc)
