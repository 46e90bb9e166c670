#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tollgate::policy {

// An IPv4 or IPv6 address. IPv4 is stored as-is (not v4-mapped) so that 10.0.0.1 and
// ::ffff:10.0.0.1 are distinct on input; use unmapped() to fold a v4-mapped v6 address.
struct IpAddress {
  enum class Family : uint8_t { V4, V6 };
  Family family = Family::V4;
  std::array<uint8_t, 16> bytes{};  // V4 uses the first 4

  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(uint32_t hostOrder);

  bool isV4() const { return family == Family::V4; }
  int bits() const { return isV4() ? 32 : 128; }
  // ::ffff:a.b.c.d -> a.b.c.d; anything else unchanged.
  IpAddress unmapped() const;
  std::string str() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
};

struct IpAddressHash {
  size_t operator()(const IpAddress& a) const noexcept;
};

struct Cidr {
  IpAddress base;  // host bits cleared
  int prefix = 0;

  // "10.0.0.0/8", "2001:db8::/32", or a bare address (/32 or /128).
  static std::optional<Cidr> parse(std::string_view text);
  bool contains(const IpAddress& a) const;
  bool contains(const Cidr& other) const;
  std::string str() const;

  friend bool operator==(const Cidr&, const Cidr&) = default;
};

}  // namespace tollgate::policy
