tollgate_fuzz_target(http_sniff SOURCES proxy/http1_sniffer.cc)
