#include "gateway/address_filter.h"

namespace tollgate::gateway {
namespace {

const std::vector<std::pair<policy::Cidr, std::string_view>>& specialRanges() {
  static const auto* ranges = [] {
    auto* v = new std::vector<std::pair<policy::Cidr, std::string_view>>;
    auto add = [&](std::string_view cidr, std::string_view kind) {
      v->emplace_back(*policy::Cidr::parse(cidr), kind);
    };
    add("0.0.0.0/8", "unspecified");
    add("127.0.0.0/8", "loopback");
    add("169.254.0.0/16", "link_local");
    add("224.0.0.0/4", "multicast");
    add("255.255.255.255/32", "broadcast");
    add("::/128", "unspecified");
    add("::1/128", "loopback");
    add("fe80::/10", "link_local");
    add("ff00::/8", "multicast");
    return v;
  }();
  return *ranges;
}

}  // namespace

std::optional<std::string_view> specialAddressKind(const policy::IpAddress& raw,
                                                   const std::vector<policy::Cidr>& clusterCidrs) {
  const policy::IpAddress ip = raw.unmapped();
  for (const auto& [cidr, kind] : specialRanges()) {
    if (cidr.contains(ip)) return kind;
  }
  for (const auto& cidr : clusterCidrs) {
    if (cidr.contains(ip)) return "cluster";
  }
  return std::nullopt;
}

bool isListed(const policy::IpAddress& raw, const std::vector<policy::Cidr>& listed) {
  const policy::IpAddress ip = raw.unmapped();
  for (const auto& cidr : listed) {
    if (cidr.contains(ip)) return true;
  }
  return false;
}

}  // namespace tollgate::gateway
