#include "proxy/resolver.h"

#include <gtest/gtest.h>

namespace tollgate::proxy {
namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}

TEST(DnsMessageTest, EncodesARecursiveQuery) {
  auto q = encodeDnsQuery(0x1234, "ab.test.", kDnsTypeA);
  ASSERT_TRUE(q);
  EXPECT_EQ(*q, bytes({0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 2, 'a', 'b', 4, 't', 'e',
                       's', 't', 0, 0, 1, 0, 1}));
}

TEST(DnsMessageTest, RefusesInvalidNames) {
  EXPECT_FALSE(encodeDnsQuery(1, "", kDnsTypeA));
  EXPECT_FALSE(encodeDnsQuery(1, "a..b", kDnsTypeA));
  EXPECT_FALSE(encodeDnsQuery(1, std::string(64, 'a') + ".test", kDnsTypeA));
}

// A response to encodeDnsQuery(0x1234, "ab.test", A) with a CNAME and an A record.
std::string response(int flagsLo = 0x80) {
  std::string r = *encodeDnsQuery(0x1234, "ab.test", kDnsTypeA);
  r[2] = static_cast<char>(0x81);
  r[3] = static_cast<char>(flagsLo);
  r[7] = 2;  // ANCOUNT
  r += bytes({0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, 'x', 0xc0, 0x0f});  // CNAME x.test
  r += bytes({0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 0, 201});
  return r;
}

TEST(DnsMessageTest, ParsesAddressesAndSkipsCnames) {
  auto a = parseDnsResponse(response(), 0x1234, kDnsTypeA);
  ASSERT_TRUE(a) << a.error().str();
  ASSERT_EQ(a->size(), 1u);
  EXPECT_EQ((*a)[0].str(), "198.18.0.201");
}

TEST(DnsMessageTest, RejectsWrongIdNxdomainTruncationAndGarbage) {
  EXPECT_FALSE(parseDnsResponse(response(), 0x4321, kDnsTypeA));
  auto nx = parseDnsResponse(response(0x83), 0x1234, kDnsTypeA);
  ASSERT_FALSE(nx);
  EXPECT_EQ(nx.error().code, 3);
  std::string tc = response();
  tc[2] = static_cast<char>(0x83);  // TC bit
  EXPECT_FALSE(parseDnsResponse(tc, 0x1234, kDnsTypeA));
  std::string cut = response();
  cut.resize(cut.size() - 2);
  EXPECT_FALSE(parseDnsResponse(cut, 0x1234, kDnsTypeA));
  EXPECT_FALSE(parseDnsResponse("short", 0x1234, kDnsTypeA));
}

TEST(DnsMessageTest, ResolverAddressForms) {
  auto a = parseResolverAddress("10.0.0.10");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->str(), "10.0.0.10:53");
  auto b = parseResolverAddress("127.0.0.1:5353");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->port, 5353);
  auto c = parseResolverAddress("[fd00::1]:54");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->str(), "[fd00::1]:54");
  auto d = parseResolverAddress("fd00::1");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->port, 53);
  EXPECT_FALSE(parseResolverAddress("resolver.local"));
  EXPECT_FALSE(parseResolverAddress("1.2.3.4:99999"));
}

}  // namespace
}  // namespace tollgate::proxy
