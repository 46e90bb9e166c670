#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "policy/ip.h"

namespace tollgate::policy {

// Longest-prefix match from CIDRs to small values (indexes into the caller's tables).
// A path-compressed binary trie per address family: a lookup walks at most one node per
// distinct prefix length on the path (<= 33 for IPv4, <= 129 for IPv6), independent of how
// many CIDRs are stored. IPv4 and IPv6 never match each other; fold v4-mapped addresses with
// IpAddress::unmapped() before looking up.
class CidrTrie {
 public:
  // Stores `value` for `cidr`. When the exact prefix is already present the stored value is kept
  // and false is returned (callers group duplicates themselves via findExact()).
  bool insert(const Cidr& cidr, uint32_t value);

  // The value of the most specific CIDR containing `ip`.
  std::optional<uint32_t> lookupLongest(const IpAddress& ip) const;

  // Values of every CIDR containing `ip`, most specific first (at most bits+1 of them).
  std::vector<uint32_t> lookupAll(const IpAddress& ip) const;

  // The value stored for exactly this prefix.
  std::optional<uint32_t> findExact(const Cidr& cidr) const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  static constexpr int32_t kNone = -1;
  struct Node {
    std::array<uint8_t, 16> key{};  // bits beyond len are zero
    int len = 0;
    bool hasValue = false;
    uint32_t value = 0;
    int32_t child[2] = {kNone, kNone};
  };
  struct Tree {
    std::vector<Node> nodes;
    int32_t root = kNone;
  };

  const Tree& treeFor(const IpAddress& ip) const { return ip.isV4() ? v4_ : v6_; }
  template <typename Visit>
  void walk(const IpAddress& ip, Visit&& visit) const;

  Tree v4_;
  Tree v6_;
  size_t size_ = 0;
};

}  // namespace tollgate::policy
