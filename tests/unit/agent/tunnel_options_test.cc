// Agent flags for workload identity and gateway tunnels.
#include <gtest/gtest.h>

#include "agent/options.h"

namespace tollgate::agent {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(TunnelOptionsTest, CaFlagsAndDefaults) {
  auto o = parseOptions({"--config-dir", "/c"});
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_TRUE(o->caCert.empty());
  EXPECT_EQ(o->svidLifetime, hours(24));
  EXPECT_EQ(o->tunnelConnections, 2);

  o = parseOptions({"--config-dir", "/c", "--ca-cert", "/ca/ca-cert.pem", "--ca-key=/ca/ca-key.pem",
                    "--ca-chain", "/ca/cert-chain.pem", "--svid-lifetime", "2h",
                    "--tunnel-connections", "0"});
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(o->caCert, "/ca/ca-cert.pem");
  EXPECT_EQ(o->caKey, "/ca/ca-key.pem");
  EXPECT_EQ(o->caChain, "/ca/cert-chain.pem");
  EXPECT_EQ(o->svidLifetime, hours(2));
  EXPECT_EQ(o->tunnelConnections, 0);
}

TEST(TunnelOptionsTest, CaCertAndKeyGoTogether) {
  auto o = parseOptions({"--config-dir", "/c", "--ca-cert", "/ca/ca-cert.pem"});
  ASSERT_FALSE(o);
  EXPECT_NE(o.error().str().find("--ca-key"), std::string::npos) << o.error().str();
  EXPECT_FALSE(parseOptions({"--config-dir", "/c", "--ca-key", "/k"}));
  EXPECT_FALSE(parseOptions({"--config-dir", "/c", "--ca-chain", "/chain"}));
  EXPECT_FALSE(parseOptions({"--config-dir", "/c", "--tunnel-connections", "65"}));
}

TEST(TunnelOptionsTest, Durations) {
  EXPECT_EQ(*parseDuration("--svid-lifetime", "90s"), seconds(90));
  EXPECT_EQ(*parseDuration("--svid-lifetime", "30m"), minutes(30));
  EXPECT_EQ(*parseDuration("--svid-lifetime", "24h"), hours(24));
  EXPECT_EQ(*parseDuration("--svid-lifetime", "1d"), hours(24));
  EXPECT_EQ(*parseDuration("--svid-lifetime", "7200"), hours(2));
  for (const char* bad : {"", "h", "59s", "1x", "-1h", "367d", "99999999999999999999d"}) {
    auto d = parseDuration("--svid-lifetime", bad);
    EXPECT_FALSE(d) << bad;
    if (!d) {
      EXPECT_NE(d.error().str().find("--svid-lifetime"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace tollgate::agent
