tollgate_fuzz_target(dns_message SOURCES proxy/dns_message.cc)
