#include "agent/options.h"

#include <gtest/gtest.h>

namespace tollgate::agent {
namespace {

TEST(AgentOptionsTest, DefaultsAndRequiredConfigDir) {
  auto o = parseOptions({"--config-dir", "/etc/tollgate"});
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(o->configDir, "/etc/tollgate");
  EXPECT_EQ(o->runDir, "/run/tollgate");
  EXPECT_EQ(o->metricsPort, 15020);
  EXPECT_EQ(o->healthPort, 15021);
  EXPECT_EQ(o->threads, 2);
  EXPECT_EQ(o->logFormat, proxy::LogFormat::Text);
  EXPECT_EQ(o->podInterfaces, std::vector<std::string>{"tg0"});
  EXPECT_FALSE(parseOptions({}));
}

TEST(AgentOptionsTest, EveryFlagBothForms) {
  auto o = parseOptions({"--config-dir=/c", "--run-dir", "/r", "--metrics-port=1", "--health-port",
                         "2", "--log-format", "json", "--access-log=/tmp/a.log", "--threads", "4",
                         "--pod-interface", "veth*", "--pod-interface=tg0"});
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(o->runDir, "/r");
  EXPECT_EQ(o->metricsPort, 1);
  EXPECT_EQ(o->healthPort, 2);
  EXPECT_EQ(o->logFormat, proxy::LogFormat::Json);
  EXPECT_EQ(o->accessLog, "/tmp/a.log");
  EXPECT_EQ(o->threads, 4);
  EXPECT_EQ(o->podInterfaces, (std::vector<std::string>{"veth*", "tg0"}));
}

TEST(AgentOptionsTest, BadValuesAreErrors) {
  EXPECT_FALSE(parseOptions({"--config-dir", "/c", "--threads", "0"}));
  EXPECT_FALSE(parseOptions({"--config-dir", "/c", "--metrics-port", "70000"}));
  EXPECT_FALSE(parseOptions({"--config-dir", "/c", "--log-format", "xml"}));
  EXPECT_FALSE(parseOptions({"--config-dir", "/c", "--bogus", "1"}));
  EXPECT_FALSE(parseOptions({"--config-dir"}));
}

TEST(AgentOptionsTest, DrainTime) {
  auto d = parseOptions({"--config-dir", "/c"});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->drainTime, std::chrono::seconds(30));
  auto o = parseOptions({"--config-dir", "/c", "--drain-time", "90s"});
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(o->drainTime, std::chrono::seconds(90));
  auto zero = parseOptions({"--config-dir=/c", "--drain-time=0"});
  ASSERT_TRUE(zero);
  EXPECT_EQ(zero->drainTime.count(), 0);
  EXPECT_FALSE(parseOptions({"--config-dir", "/c", "--drain-time", "10ms"}));
  EXPECT_FALSE(parseOptions({"--config-dir", "/c", "--drain-time", "soon"}));
  EXPECT_NE(usage().find("--drain-time"), std::string::npos);
}

TEST(AgentOptionsTest, RedirectMode) {
  auto d = parseOptions({"--config-dir", "/c"});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->redirectMode, "");  // the config decides, else nftables
  EXPECT_EQ(d->bpfPinDir, "/sys/fs/bpf/tollgate");
  auto o = parseOptions({"--config-dir", "/c", "--redirect-mode", "ebpf", "--bpf-pin-dir=/b/x"});
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(o->redirectMode, "ebpf");
  EXPECT_EQ(o->bpfPinDir, "/b/x");
  auto bad = parseOptions({"--config-dir", "/c", "--redirect-mode", "bpf"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().str(), "--redirect-mode: 'bpf' is not nftables or ebpf");
  EXPECT_FALSE(parseOptions({"--config-dir", "/c", "--bpf-pin-dir", "relative"}));
  EXPECT_NE(usage().find("--redirect-mode"), std::string::npos);
}

TEST(AgentOptionsTest, Limits) {
  auto d = parseOptions({"--config-dir", "/c"});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sniffTimeout, std::chrono::seconds(5));
  EXPECT_EQ(d->maxConnectionsPerPod, 1024u);
  EXPECT_EQ(d->maxConnectionsPerNode, 16384u);
  auto o = parseOptions({"--config-dir", "/c", "--sniff-timeout", "2s", "--max-connections-per-pod=50",
                         "--max-connections-per-node", "800"});
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(o->sniffTimeout, std::chrono::seconds(2));
  EXPECT_EQ(o->maxConnectionsPerPod, 50u);
  EXPECT_EQ(o->maxConnectionsPerNode, 800u);
  // No limit can be switched off: 0 is refused with the flag named.
  for (const char* flag : {"--sniff-timeout", "--max-connections-per-pod", "--max-connections-per-node"}) {
    auto bad = parseOptions({"--config-dir", "/c", flag, "0"});
    ASSERT_FALSE(bad) << flag;
    EXPECT_NE(bad.error().str().find(flag), std::string::npos) << bad.error().str();
    EXPECT_NE(usage().find(flag), std::string::npos) << flag;
  }
  EXPECT_FALSE(parseOptions({"--config-dir", "/c", "--max-connections-per-pod", "many"}));
}


TEST(AgentOptionsTest, KubernetesConfigSource) {
  ::unsetenv("NODE_NAME");
  auto d = parseOptions({"--config-dir", "/c"});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->configSource, "files");
  auto o = parseOptions({"--config-source", "kubernetes", "--kubeconfig=/k", "--node-name", "n1"});
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(o->configSource, "kubernetes");
  EXPECT_EQ(o->kubeconfig, "/k");
  EXPECT_EQ(o->nodeName, "n1");
  // The node is required (the downward API's NODE_NAME serves as default).
  auto noNode = parseOptions({"--config-source", "kubernetes"});
  ASSERT_FALSE(noNode);
  EXPECT_EQ(noNode.error().str(), "--config-source kubernetes needs --node-name (or NODE_NAME)");
  ::setenv("NODE_NAME", "from-env", 1);
  auto env = parseOptions({"--config-source", "kubernetes"});
  ::unsetenv("NODE_NAME");
  ASSERT_TRUE(env) << env.error().str();
  EXPECT_EQ(env->nodeName, "from-env");
  EXPECT_EQ(env->kubeconfig, "");  // in-cluster
  auto bad = parseOptions({"--config-source", "etcd"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().str(), "--config-source: 'etcd' is not files or kubernetes");
  EXPECT_FALSE(parseOptions({"--config-source", "kubernetes", "--node-name", "n", "--config-dir", "/c"}));
  EXPECT_FALSE(parseOptions({"--config-dir", "/c", "--kubeconfig", "/k"}));
  EXPECT_NE(usage().find("--config-source"), std::string::npos);
}
}  // namespace
}  // namespace tollgate::agent
