tollgate_fuzz_target(tls_sniff SOURCES proxy/tls_client_hello.cc)
