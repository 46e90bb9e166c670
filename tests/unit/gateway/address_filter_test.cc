#include "gateway/address_filter.h"

#include <gtest/gtest.h>

namespace tollgate::gateway {
namespace {

policy::IpAddress ip(const char* s) { return *policy::IpAddress::parse(s); }
policy::Cidr cidr(const char* s) { return *policy::Cidr::parse(s); }

TEST(SpecialAddress, KindsOfSpecialUse) {
  const std::vector<policy::Cidr> none;
  EXPECT_EQ(specialAddressKind(ip("127.0.0.1"), none), "loopback");
  EXPECT_EQ(specialAddressKind(ip("127.8.9.10"), none), "loopback");
  EXPECT_EQ(specialAddressKind(ip("::1"), none), "loopback");
  EXPECT_EQ(specialAddressKind(ip("169.254.169.254"), none), "link_local");
  EXPECT_EQ(specialAddressKind(ip("fe80::1"), none), "link_local");
  EXPECT_EQ(specialAddressKind(ip("0.0.0.0"), none), "unspecified");
  EXPECT_EQ(specialAddressKind(ip("::"), none), "unspecified");
  EXPECT_EQ(specialAddressKind(ip("224.0.0.251"), none), "multicast");
  EXPECT_EQ(specialAddressKind(ip("ff02::1"), none), "multicast");
  EXPECT_EQ(specialAddressKind(ip("255.255.255.255"), none), "broadcast");
}

TEST(SpecialAddress, V4MappedIsJudgedAsV4) {
  EXPECT_EQ(specialAddressKind(ip("::ffff:169.254.169.254"), {}), "link_local");
  EXPECT_EQ(specialAddressKind(ip("::ffff:127.0.0.1"), {}), "loopback");
}

TEST(SpecialAddress, ClusterCidrs) {
  std::vector<policy::Cidr> cluster = {cidr("10.244.0.0/16"), cidr("10.96.0.0/12")};
  EXPECT_EQ(specialAddressKind(ip("10.244.3.4"), cluster), "cluster");
  EXPECT_EQ(specialAddressKind(ip("10.96.0.10"), cluster), "cluster");
  EXPECT_EQ(specialAddressKind(ip("10.200.0.1"), cluster), std::nullopt);
  EXPECT_EQ(specialAddressKind(ip("10.244.3.4"), {}), std::nullopt);
}

TEST(SpecialAddress, PublicAddressesAreOrdinary) {
  for (const char* s :
       {"93.184.216.34", "8.8.8.8", "198.18.0.10", "2001:db8::1", "169.255.0.1", "128.0.0.1"}) {
    EXPECT_EQ(specialAddressKind(ip(s), {}), std::nullopt) << s;
  }
}

TEST(SpecialAddress, ListedAddresses) {
  std::vector<policy::Cidr> listed = {cidr("127.0.0.1/32"), cidr("169.254.0.0/16")};
  EXPECT_TRUE(isListed(ip("127.0.0.1"), listed));
  EXPECT_TRUE(isListed(ip("::ffff:127.0.0.1"), listed));
  EXPECT_TRUE(isListed(ip("169.254.169.254"), listed));
  EXPECT_FALSE(isListed(ip("127.0.0.2"), listed));
  EXPECT_FALSE(isListed(ip("::1"), listed));
}

}  // namespace
}  // namespace tollgate::gateway
