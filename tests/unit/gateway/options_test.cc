#include "gateway/options.h"

#include <gtest/gtest.h>

namespace tollgate::gateway {
namespace {

TEST(GatewayOptions, Defaults) {
  auto o = parseOptions({"tollgate-gateway", "--config-dir", "/c", "--cert", "c.pem", "--key",
                         "k.pem", "--trust-bundle", "ca.pem"});
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(o->listenIp, "0.0.0.0");
  EXPECT_EQ(o->listenPort, 15008);
  EXPECT_EQ(o->metricsPort, 15020);
  EXPECT_EQ(o->healthPort, 15021);
  EXPECT_EQ(o->logFormat, proxy::LogFormat::Text);
  EXPECT_EQ(o->writeStallTimeout, std::chrono::seconds(30));
}

TEST(GatewayOptions, AllFlags) {
  auto o = parseOptions({"gw",
                         "--config-dir=/c",
                         "--cert",
                         "c",
                         "--key",
                         "k",
                         "--trust-bundle",
                         "t",
                         "--listen",
                         "[::]:16008",
                         "--metrics-port",
                         "0",
                         "--health-port",
                         "9",
                         "--credentials-dir",
                         "/creds",
                         "--namespace",
                         "egress",
                         "--access-log",
                         "/tmp/a.log",
                         "--log-format",
                         "json",
                         "--drain-seconds",
                         "3",
                         "--label",
                         "istio=egressgateway",
                         "--label",
                         "app=gw",
                         "--threads",
                         "3",
                         "--h2-idle-seconds",
                         "0",
                         "--h2-write-stall-seconds=7"});
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(o->configDir, "/c");
  EXPECT_EQ(o->listenIp, "::");
  EXPECT_EQ(o->listenPort, 16008);
  EXPECT_EQ(o->metricsPort, 0);
  EXPECT_EQ(o->healthPort, 9);
  EXPECT_EQ(o->credentialsDir, "/creds");
  EXPECT_EQ(o->ns, "egress");
  EXPECT_EQ(o->accessLogPath, "/tmp/a.log");
  EXPECT_EQ(o->logFormat, proxy::LogFormat::Json);
  EXPECT_EQ(o->drain, std::chrono::seconds(3));
  EXPECT_EQ(o->threads, 3u);
  EXPECT_EQ(o->h2IdleTimeout, std::chrono::milliseconds(0));
  EXPECT_EQ(o->writeStallTimeout, std::chrono::seconds(7));
  EXPECT_EQ(o->labels,
            (std::map<std::string, std::string>{{"app", "gw"}, {"istio", "egressgateway"}}));
}

TEST(GatewayOptions, Errors) {
  EXPECT_FALSE(parseOptions({"gw"}));
  EXPECT_FALSE(parseOptions({"gw", "--config-dir", "/c", "--cert", "c", "--key", "k"}));
  const std::vector<std::string> base = {"gw", "--config-dir",   "/c", "--cert", "c", "--key",
                                         "k",  "--trust-bundle", "t"};
  for (const auto& extra : std::vector<std::vector<std::string>>{{"--listen", "15008"},
                                                                 {"--listen", "0.0.0.0:99999"},
                                                                 {"--log-format", "xml"},
                                                                 {"--metrics-port", "-1"},
                                                                 {"--bogus", "1"},
                                                                 {"--drain-seconds"},
                                                                 {"--label", "novalue"},
                                                                 {"--label", "=x"},
                                                                 {"--threads", "many"},
                                                                 {"--h2-write-stall-seconds", "x"}}) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_FALSE(parseOptions(args)) << extra[0];
  }
}

TEST(GatewayOptions, ConfigSource) {
  const std::vector<std::string> creds = {"gw", "--cert", "c", "--key", "k", "--trust-bundle", "t"};
  auto with = [&](std::vector<std::string> extra) {
    auto args = creds;
    args.insert(args.end(), extra.begin(), extra.end());
    return parseOptions(args);
  };
  auto files = with({"--config-dir", "/c"});
  ASSERT_TRUE(files) << files.error().str();
  EXPECT_EQ(files->configSource, "files");

  auto inCluster = with({"--config-source", "kubernetes"});
  ASSERT_TRUE(inCluster) << inCluster.error().str();
  EXPECT_EQ(inCluster->configSource, "kubernetes");
  EXPECT_TRUE(inCluster->kubeconfig.empty());
  EXPECT_TRUE(inCluster->configDir.empty());
  auto kc = with({"--config-source=kubernetes", "--kubeconfig", "/k/config"});
  ASSERT_TRUE(kc) << kc.error().str();
  EXPECT_EQ(kc->kubeconfig, "/k/config");

  auto bad = with({"--config-source", "etcd"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().str(), "--config-source: 'etcd' is not files or kubernetes");
  auto both = with({"--config-source", "kubernetes", "--config-dir", "/c"});
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().str(), "--config-dir and --config-source kubernetes are exclusive");
  auto stray = with({"--config-dir", "/c", "--kubeconfig", "/k"});
  ASSERT_FALSE(stray);
  EXPECT_EQ(stray.error().str(), "--kubeconfig needs --config-source kubernetes");
  auto none = with({});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().str(), "--config-dir is required");
  // The credentials are still required with the kubernetes source.
  EXPECT_FALSE(parseOptions({"gw", "--config-source", "kubernetes", "--cert", "c", "--key", "k"}));
}

}  // namespace
}  // namespace tollgate::gateway
