// libFuzzer target for the gateway's CONNECT target (gateway/authority.cc: the h2 :authority and
// the HTTP/1.1 CONNECT request target). Whatever the bytes: a value or an error with a message;
// an accepted authority has a non-empty host of printable bytes without '/', '@' or spaces, a
// port in 1..65535, and its str() parses back to the same host and port.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "gateway/authority.h"

namespace gw = tollgate::gateway;

namespace {

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "authority_fuzz: property failed: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto a = gw::parseAuthority(text);
  if (!a) {
    check(!a.error().str().empty(), "error has a message");
    return 0;
  }
  check(!a->host.empty(), "host non-empty");
  check(a->port != 0, "port non-zero");
  for (unsigned char c : a->host) {
    check(c > 0x20 && c < 0x7f && c != '/' && c != '@' && c != '?' && c != '#' && c != '\\',
          "host bytes printable, no URI delimiters");
  }
  auto again = gw::parseAuthority(a->str());
  check(again.has_value(), "str() parses again");
  check(again->host == a->host && again->port == a->port && again->isIp == a->isIp,
        "str() round-trips");
  return 0;
}
