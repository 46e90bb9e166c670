#include "policy/cidr_trie.h"

namespace tollgate::policy {
namespace {

inline int bitAt(const std::array<uint8_t, 16>& key, int i) {
  return (key[static_cast<size_t>(i) / 8] >> (7 - i % 8)) & 1;
}

// Length of the common prefix of a and b, looking at no more than `limit` bits.
int commonPrefix(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, int limit) {
  int n = 0;
  for (size_t i = 0; n < limit; ++i, n += 8) {
    uint8_t diff = a[i] ^ b[i];
    if (diff != 0) {
      n += __builtin_clz(static_cast<unsigned>(diff)) - 24;
      break;
    }
  }
  return n < limit ? n : limit;
}

std::array<uint8_t, 16> masked(const std::array<uint8_t, 16>& key, int len) {
  std::array<uint8_t, 16> out{};
  for (int i = 0; i < 16; ++i) {
    int keep = len - i * 8;
    if (keep <= 0) break;
    out[i] = keep >= 8 ? key[i] : static_cast<uint8_t>(key[i] & (0xff << (8 - keep)));
  }
  return out;
}

}  // namespace

bool CidrTrie::insert(const Cidr& cidr, uint32_t value) {
  Tree& tree = cidr.base.isV4() ? v4_ : v6_;
  const int len = cidr.prefix;
  const auto key = masked(cidr.base.bytes, len);
  auto newNode = [&](const std::array<uint8_t, 16>& k, int l) {
    Node n;
    n.key = masked(k, l);
    n.len = l;
    tree.nodes.push_back(n);
    return static_cast<int32_t>(tree.nodes.size() - 1);
  };
  // The slot pointing at the current node, as (parent, side); parent kNone means the root.
  int32_t parent = kNone;
  int side = 0;
  auto slot = [&]() -> int32_t& {
    return parent == kNone ? tree.root : tree.nodes[parent].child[side];
  };
  for (;;) {
    int32_t cur = slot();
    if (cur == kNone) {
      int32_t n = newNode(key, len);
      tree.nodes[n].hasValue = true;
      tree.nodes[n].value = value;
      slot() = n;
      ++size_;
      return true;
    }
    const int curLen = tree.nodes[cur].len;
    const int common = commonPrefix(tree.nodes[cur].key, key, std::min(curLen, len));
    if (common == curLen) {
      if (len == curLen) {
        Node& node = tree.nodes[cur];
        if (node.hasValue) return false;
        node.hasValue = true;
        node.value = value;
        ++size_;
        return true;
      }
      parent = cur;
      side = bitAt(key, curLen);
      continue;
    }
    // Split: a new interior (or value) node at the common prefix adopts the current node.
    int32_t split = newNode(key, common);
    tree.nodes[split].child[bitAt(tree.nodes[cur].key, common)] = cur;
    if (common == len) {
      tree.nodes[split].hasValue = true;
      tree.nodes[split].value = value;
    } else {
      int32_t leaf = newNode(key, len);
      tree.nodes[leaf].hasValue = true;
      tree.nodes[leaf].value = value;
      tree.nodes[split].child[bitAt(key, common)] = leaf;
    }
    slot() = split;
    ++size_;
    return true;
  }
}

template <typename Visit>
void CidrTrie::walk(const IpAddress& ip, Visit&& visit) const {
  const Tree& tree = treeFor(ip);
  const int bits = ip.bits();
  int32_t idx = tree.root;
  while (idx != kNone) {
    const Node& node = tree.nodes[idx];
    if (commonPrefix(node.key, ip.bytes, node.len) < node.len) return;
    if (node.hasValue) visit(node.value);
    if (node.len >= bits) return;
    idx = node.child[bitAt(ip.bytes, node.len)];
  }
}

std::optional<uint32_t> CidrTrie::lookupLongest(const IpAddress& ip) const {
  std::optional<uint32_t> best;
  walk(ip, [&](uint32_t v) { best = v; });
  return best;
}

std::vector<uint32_t> CidrTrie::lookupAll(const IpAddress& ip) const {
  std::vector<uint32_t> out;
  walk(ip, [&](uint32_t v) { out.push_back(v); });
  return {out.rbegin(), out.rend()};
}

std::optional<uint32_t> CidrTrie::findExact(const Cidr& cidr) const {
  const Tree& tree = treeFor(cidr.base);
  const auto key = masked(cidr.base.bytes, cidr.prefix);
  int32_t idx = tree.root;
  while (idx != kNone) {
    const Node& node = tree.nodes[idx];
    if (node.len > cidr.prefix || commonPrefix(node.key, key, node.len) < node.len) break;
    if (node.len == cidr.prefix) {
      if (node.hasValue) return node.value;
      break;
    }
    idx = node.child[bitAt(key, node.len)];
  }
  return std::nullopt;
}

}  // namespace tollgate::policy
