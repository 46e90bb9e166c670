#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

namespace tollgate::gateway {

// The target of a CONNECT request: `host:port` (RFC 9110 9.3.6 authority-form; RFC 9113 8.5
// :authority). A port is mandatory; IPv6 literals are bracketed.
struct Authority {
  std::string host;  // as written, brackets removed for IPv6 literals; not normalised
  uint16_t port = 0;
  bool isIp = false;  // host is an IPv4/IPv6 literal

  std::string str() const;  // "host:port", "[::1]:443"
};

// Rejects anything that is not exactly host:port: userinfo, paths, spaces, control bytes, an
// empty host, a missing, zero or non-numeric port. Names are not normalised here (the decision
// does that); this only refuses input no decision should ever see.
Result<Authority> parseAuthority(std::string_view text);

}  // namespace tollgate::gateway
