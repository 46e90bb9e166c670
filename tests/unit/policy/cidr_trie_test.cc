#include "policy/cidr_trie.h"

#include <gtest/gtest.h>

#include <random>

namespace tollgate::policy {
namespace {

Cidr cidr(std::string_view s) {
  auto c = Cidr::parse(s);
  EXPECT_TRUE(c) << s;
  return *c;
}
IpAddress ip(std::string_view s) {
  auto a = IpAddress::parse(s);
  EXPECT_TRUE(a) << s;
  return *a;
}

TEST(CidrTrie, LongestPrefixWins) {
  CidrTrie t;
  EXPECT_TRUE(t.insert(cidr("10.0.0.0/8"), 1));
  EXPECT_TRUE(t.insert(cidr("10.1.0.0/16"), 2));
  EXPECT_TRUE(t.insert(cidr("10.1.2.0/24"), 3));
  EXPECT_TRUE(t.insert(cidr("10.1.2.3/32"), 4));
  EXPECT_EQ(t.lookupLongest(ip("10.1.2.3")), 4u);
  EXPECT_EQ(t.lookupLongest(ip("10.1.2.4")), 3u);
  EXPECT_EQ(t.lookupLongest(ip("10.1.3.1")), 2u);
  EXPECT_EQ(t.lookupLongest(ip("10.200.0.1")), 1u);
  EXPECT_EQ(t.lookupLongest(ip("11.0.0.1")), std::nullopt);
  EXPECT_EQ(t.size(), 4u);
}

TEST(CidrTrie, InsertOrderDoesNotMatter) {
  CidrTrie t;
  t.insert(cidr("10.1.2.3/32"), 4);
  t.insert(cidr("10.1.0.0/16"), 2);
  t.insert(cidr("10.0.0.0/8"), 1);
  t.insert(cidr("10.1.2.0/24"), 3);
  EXPECT_EQ(t.lookupLongest(ip("10.1.2.3")), 4u);
  EXPECT_EQ(t.lookupLongest(ip("10.1.2.9")), 3u);
  EXPECT_EQ(t.lookupLongest(ip("10.1.9.9")), 2u);
  EXPECT_EQ(t.lookupLongest(ip("10.9.9.9")), 1u);
  EXPECT_EQ(t.lookupAll(ip("10.1.2.3")), (std::vector<uint32_t>{4, 3, 2, 1}));
}

TEST(CidrTrie, SiblingSplitKeepsBoth) {
  CidrTrie t;
  t.insert(cidr("192.168.1.0/24"), 1);
  t.insert(cidr("192.168.2.0/24"), 2);
  EXPECT_EQ(t.lookupLongest(ip("192.168.1.77")), 1u);
  EXPECT_EQ(t.lookupLongest(ip("192.168.2.77")), 2u);
  EXPECT_EQ(t.lookupLongest(ip("192.168.3.77")), std::nullopt);
  EXPECT_EQ(t.findExact(cidr("192.168.0.0/22")), std::nullopt);  // interior split node only
}

TEST(CidrTrie, DuplicateKeepsFirstValue) {
  CidrTrie t;
  EXPECT_TRUE(t.insert(cidr("10.0.0.0/8"), 1));
  EXPECT_FALSE(t.insert(cidr("10.9.0.0/8"), 2));  // same prefix after masking
  EXPECT_EQ(t.findExact(cidr("10.0.0.0/8")), 1u);
  EXPECT_EQ(t.size(), 1u);
}

TEST(CidrTrie, DefaultRouteAndHostRoutes) {
  CidrTrie t;
  t.insert(cidr("0.0.0.0/0"), 7);
  t.insert(cidr("::/0"), 8);
  EXPECT_EQ(t.lookupLongest(ip("203.0.113.5")), 7u);
  EXPECT_EQ(t.lookupLongest(ip("2001:db8::5")), 8u);
}

TEST(CidrTrie, FamiliesAreSeparate) {
  CidrTrie t;
  t.insert(cidr("2001:db8::/32"), 1);
  t.insert(cidr("2001:db8:1::/48"), 2);
  EXPECT_EQ(t.lookupLongest(ip("2001:db8:1::9")), 2u);
  EXPECT_EQ(t.lookupLongest(ip("2001:db8:2::9")), 1u);
  // 32.1.13.184 has the same leading bytes as 2001:0db8 but is IPv4.
  EXPECT_EQ(t.lookupLongest(ip("32.1.13.184")), std::nullopt);
  EXPECT_EQ(t.lookupLongest(ip("::ffff:10.0.0.1")), std::nullopt);
}

// Cross-checks against a brute-force scan over random prefixes.
TEST(CidrTrie, MatchesBruteForce) {
  std::mt19937 rng(42);
  std::vector<Cidr> cidrs;
  CidrTrie t;
  for (uint32_t i = 0; i < 2000; ++i) {
    uint32_t base = rng() & 0x0fffffff;  // cluster them so prefixes nest
    int prefix = static_cast<int>(rng() % 33);
    Cidr c = *Cidr::parse(IpAddress::v4(base).str() + "/" + std::to_string(prefix));
    if (t.insert(c, static_cast<uint32_t>(cidrs.size()))) cidrs.push_back(c);
  }
  for (int q = 0; q < 5000; ++q) {
    IpAddress a = IpAddress::v4(rng() & 0x0fffffff);
    int bestLen = -1;
    std::optional<uint32_t> best;
    for (uint32_t i = 0; i < cidrs.size(); ++i) {
      if (cidrs[i].contains(a) && cidrs[i].prefix > bestLen) {
        bestLen = cidrs[i].prefix;
        best = i;
      }
    }
    ASSERT_EQ(t.lookupLongest(a), best) << a.str();
  }
}

}  // namespace
}  // namespace tollgate::policy
