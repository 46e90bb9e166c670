#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "policy/ip.h"

namespace tollgate::cli {

// The DEST:PORT argument of `tollgatectl check`: "1.2.3.4:443", "[2001:db8::1]:443" or
// "example.com:443" (a name: decided by name, destination address unknown).
struct Destination {
  std::optional<policy::IpAddress> ip;
  std::string host;  // set when DEST is a name
  uint16_t port = 0;
};

Result<Destination> parseDestination(std::string_view text);

}  // namespace tollgate::cli
