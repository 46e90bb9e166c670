#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "policy/ip.h"

namespace tollgate::gateway {

// Why an upstream address is special-use, or nullopt for an ordinary public address.
// Loopback, link-local (which holds the cloud metadata endpoint 169.254.169.254), unspecified,
// multicast and broadcast addresses, and the cluster's own pod/service CIDRs: a name that
// resolves there would let a tunnel reach the gateway host or the cluster from outside policy
// (DNS rebinding). v4-mapped IPv6 addresses are judged as their IPv4 address.
std::optional<std::string_view> specialAddressKind(const policy::IpAddress& ip,
                                                   const std::vector<policy::Cidr>& clusterCidrs);

// True when one of `listed` (a ServiceEntry's addresses or static endpoints) covers ip: an
// operator who wrote the address down meant it.
bool isListed(const policy::IpAddress& ip, const std::vector<policy::Cidr>& listed);

}  // namespace tollgate::gateway
