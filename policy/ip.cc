#include "policy/ip.h"

#include <arpa/inet.h>

#include <cstring>
#include <functional>

namespace tollgate::policy {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  if (text.find(':') == std::string_view::npos) {
    if (inet_pton(AF_INET, buf, a.bytes.data()) != 1) return std::nullopt;
    a.family = Family::V4;
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
  a.family = Family::V6;
  return a;
}

IpAddress IpAddress::v4(uint32_t hostOrder) {
  IpAddress a;
  a.family = Family::V4;
  a.bytes[0] = static_cast<uint8_t>(hostOrder >> 24);
  a.bytes[1] = static_cast<uint8_t>(hostOrder >> 16);
  a.bytes[2] = static_cast<uint8_t>(hostOrder >> 8);
  a.bytes[3] = static_cast<uint8_t>(hostOrder);
  return a;
}

IpAddress IpAddress::unmapped() const {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (family != Family::V6 || std::memcmp(bytes.data(), kMapped, 12) != 0) return *this;
  IpAddress a;
  a.family = Family::V4;
  std::memcpy(a.bytes.data(), bytes.data() + 12, 4);
  return a;
}

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(isV4() ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

size_t IpAddressHash::operator()(const IpAddress& a) const noexcept {
  uint64_t lo, hi;
  std::memcpy(&lo, a.bytes.data(), 8);
  std::memcpy(&hi, a.bytes.data() + 8, 8);
  return std::hash<uint64_t>{}(lo * 0x9E3779B97F4A7C15ULL ^ hi ^ static_cast<uint64_t>(a.family));
}

namespace {
IpAddress maskTo(IpAddress a, int prefix) {
  int total = a.bits();
  for (int i = 0; i < total / 8; ++i) {
    int keep = prefix - i * 8;
    if (keep >= 8) continue;
    a.bytes[i] &= keep <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
  }
  return a;
}
}  // namespace

std::optional<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  int prefix = addr->bits();
  if (slash != std::string_view::npos) {
    auto p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3) return std::nullopt;
    prefix = 0;
    for (char c : p) {
      if (c < '0' || c > '9') return std::nullopt;
      prefix = prefix * 10 + (c - '0');
    }
    if (prefix > addr->bits()) return std::nullopt;
  }
  return Cidr{maskTo(*addr, prefix), prefix};
}

bool Cidr::contains(const IpAddress& a) const {
  if (a.family != base.family) return false;
  return maskTo(a, prefix) == base;
}

bool Cidr::contains(const Cidr& other) const {
  return other.prefix >= prefix && contains(other.base);
}

std::string Cidr::str() const { return base.str() + "/" + std::to_string(prefix); }

}  // namespace tollgate::policy
