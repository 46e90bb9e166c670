tollgate_fuzz_target(authority SOURCES gateway/authority.cc policy/ip.cc)
