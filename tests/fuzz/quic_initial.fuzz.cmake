tollgate_fuzz_target(quic_initial SOURCES proxy/quic_initial.cc proxy/tls_client_hello.cc
  LIBS OpenSSL::SSL OpenSSL::Crypto)
