#include "gateway/authority.h"

#include <gtest/gtest.h>

namespace tollgate::gateway {
namespace {

TEST(Authority, NameAndPort) {
  auto a = parseAuthority("api.example.com:443");
  ASSERT_TRUE(a) << a.error().str();
  EXPECT_EQ(a->host, "api.example.com");
  EXPECT_EQ(a->port, 443);
  EXPECT_FALSE(a->isIp);
  EXPECT_EQ(a->str(), "api.example.com:443");
}

TEST(Authority, Ipv4AndBracketedIpv6) {
  auto v4 = parseAuthority("93.184.216.34:80");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->isIp);
  EXPECT_EQ(v4->host, "93.184.216.34");
  auto v6 = parseAuthority("[2001:db8::1]:8443");
  ASSERT_TRUE(v6) << v6.error().str();
  EXPECT_TRUE(v6->isIp);
  EXPECT_EQ(v6->host, "2001:db8::1");
  EXPECT_EQ(v6->port, 8443);
  EXPECT_EQ(v6->str(), "[2001:db8::1]:8443");
}

TEST(Authority, RejectsWhatIsNotHostPort) {
  for (const char* bad :
       {"", "example.com", "example.com:", ":443", "example.com:0", "example.com:65536",
        "example.com:44a", "user@example.com:443", "example.com/path:443", "exa mple.com:443",
        "2001:db8::1:443", "[2001:db8::1]", "[2001:db8::1:443", "[10.0.0.1]:443",
        "example.com:443?x", "example.com:+443", "example.com:0443443"}) {
    EXPECT_FALSE(parseAuthority(bad)) << bad;
  }
  EXPECT_FALSE(parseAuthority(std::string("a\0b.com:443", 11)));
  EXPECT_FALSE(parseAuthority(std::string(400, 'a') + ":443"));
}

}  // namespace
}  // namespace tollgate::gateway
