#include "gateway/authority.h"

#include <fmt/format.h>

#include "policy/ip.h"

namespace tollgate::gateway {

std::string Authority::str() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Result<Authority> parseAuthority(std::string_view text) {
  if (text.empty()) return fail("authority: empty");
  if (text.size() > 300) return fail("authority: too long");
  for (unsigned char c : text) {
    if (c <= 0x20 || c >= 0x7f || c == '/' || c == '@' || c == '?' || c == '#' || c == '\\') {
      return fail(fmt::format("authority: invalid character 0x{:02x}", c));
    }
  }
  Authority a;
  std::string_view portText;
  if (text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return fail("authority: unterminated '['");
    a.host = std::string(text.substr(1, close - 1));
    auto rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return fail("authority: missing port");
    portText = rest.substr(1);
    auto ip = policy::IpAddress::parse(a.host);
    if (!ip || ip->isV4()) return fail("authority: bracketed host is not an IPv6 address");
    a.isIp = true;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("authority: missing port");
    a.host = std::string(text.substr(0, colon));
    portText = text.substr(colon + 1);
    if (a.host.find(':') != std::string::npos) {
      return fail("authority: IPv6 address must be bracketed");
    }
    a.isIp = policy::IpAddress::parse(a.host).has_value();
  }
  if (a.host.empty()) return fail("authority: empty host");
  if (portText.empty() || portText.size() > 5) return fail("authority: bad port");
  uint32_t port = 0;
  for (char c : portText) {
    if (c < '0' || c > '9') return fail("authority: bad port");
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port == 0 || port > 65535) return fail("authority: port out of range");
  a.port = static_cast<uint16_t>(port);
  return a;
}

}  // namespace tollgate::gateway
