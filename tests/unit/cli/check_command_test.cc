#include "cli/check_command.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <sstream>

#include "cli/commands.h"
#include "temp_config_dir.h"

namespace tollgate::cli {
namespace {

using testing::TempConfigDir;

class CheckCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    dir_.write("mesh.yaml", testing::kMeshYaml);
    dir_.write("registry.yaml", testing::kRegistryYaml);
    dir_.write("pods.yaml", testing::kPodsYaml);
  }

  int check(std::vector<std::string> args) {
    out_.str("");
    err_.str("");
    args.insert(args.begin(), {"check", "--config-dir", dir_.path()});
    return runCli(args, out_, err_);
  }

  TempConfigDir dir_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(CheckCommandTest, AllowedRegistryHostNamesObjectFileLineAndRoute) {
  EXPECT_EQ(check({"--from", "default/client", "httpbin.org:443", "--sni", "httpbin.org"}), 0)
      << err_.str();
  const std::string out = out_.str();
  EXPECT_NE(out.find("decision:   ALLOW"), std::string::npos) << out;
  EXPECT_NE(out.find("reason:     registry"), std::string::npos) << out;
  EXPECT_NE(out.find("ServiceEntry/default/httpbin (" + dir_.file("registry.yaml") + ":1)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("gateway egress(10.0.0.2:15008) -> httpbin.org:443"), std::string::npos);
  EXPECT_NE(out.find("SIMPLE (DestinationRule/default/httpbin-tls)"), std::string::npos) << out;
  EXPECT_NE(out.find("sa client-sa, labels app=client"), std::string::npos) << out;
  EXPECT_EQ(err_.str(), "");  // a known pod: no note
}

TEST_F(CheckCommandTest, JsonIsOneObjectWithDecisionAndRoute) {
  EXPECT_EQ(
      check({"--from", "default/client", "203.0.113.7:443", "--sni", "HTTPBIN.org.", "-o", "json"}),
      0);
  const std::string out = out_.str();
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  YAML::Node j = YAML::Load(out);
  EXPECT_EQ(j["decision"].as<std::string>(), "allow");
  EXPECT_TRUE(j["allowed"].as<bool>());
  EXPECT_EQ(j["reason"].as<std::string>(), "registry");
  EXPECT_EQ(j["decidedBy"]["ref"].as<std::string>(), "ServiceEntry/default/httpbin");
  EXPECT_EQ(j["decidedBy"]["file"].as<std::string>(), dir_.file("registry.yaml"));
  EXPECT_EQ(j["decidedBy"]["line"].as<int>(), 1);
  // An allowed SNI on an arbitrary IP reaches the allowed host by name, never that IP.
  EXPECT_EQ(j["route"]["upstreamHost"].as<std::string>(), "httpbin.org");
  EXPECT_TRUE(j["route"]["byName"].as<bool>());
  EXPECT_EQ(j["route"]["tls"].as<std::string>(), "SIMPLE");
  EXPECT_EQ(j["flow"]["dstIp"].as<std::string>(), "203.0.113.7");
  EXPECT_EQ(j["flow"]["app"].as<std::string>(), "tls");
  EXPECT_EQ(j["source"]["labels"]["app"].as<std::string>(), "client");
}

TEST_F(CheckCommandTest, DeniedExitsOneWithReason) {
  EXPECT_EQ(check({"--from", "default/client", "blocked.example.com:443", "--proto", "tls"}), 1);
  EXPECT_NE(out_.str().find("decision:   DENY"), std::string::npos);
  EXPECT_NE(out_.str().find("reason:     not_in_registry"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("TollgateConfig/mesh"), std::string::npos) << out_.str();

  // HTTP on the HTTPS port of a registry host.
  EXPECT_EQ(check({"--from", "default/client", "httpbin.org:443", "--host", "httpbin.org"}), 1);
  EXPECT_NE(out_.str().find("protocol_mismatch"), std::string::npos) << out_.str();

  // UDP to an outside resolver.
  EXPECT_EQ(check({"--from", "default/client", "8.8.8.8:53", "--proto", "udp"}), 1);
}

TEST_F(CheckCommandTest, PodLabelsFromConfigSelectNetworkPolicy) {
  EXPECT_EQ(check({"--from", "default/locked", "httpbin.org:80", "--host", "httpbin.org"}), 1);
  EXPECT_NE(out_.str().find("reason:     network_policy"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("NetworkPolicy/default/only-dns"), std::string::npos);
  // The same flow from a pod the policy does not select is allowed.
  EXPECT_EQ(check({"--from", "default/client", "httpbin.org:80", "--host", "httpbin.org"}), 0);
}

TEST_F(CheckCommandTest, UnknownPodUsesNamespaceDefaultsAndSaysSo) {
  EXPECT_EQ(
      check({"--from", "team-x/ghost", "httpbin.org:80", "--host", "httpbin.org", "-o", "json"}),
      0);
  EXPECT_NE(err_.str().find("team-x/ghost is not in the configuration"), std::string::npos);
  YAML::Node j = YAML::Load(out_.str());
  EXPECT_FALSE(j["source"]["known"].as<bool>());
  EXPECT_EQ(j["source"]["serviceAccount"].as<std::string>(), "default");
  EXPECT_EQ(j["source"]["namespace"].as<std::string>(), "team-x");
}

TEST_F(CheckCommandTest, InClusterAndIpv6Destinations) {
  EXPECT_EQ(check({"--from", "default/client", "10.96.0.10:53", "--proto", "tcp"}), 0);
  EXPECT_NE(out_.str().find("reason:     in_cluster"), std::string::npos) << out_.str();
  EXPECT_EQ(check({"--from", "default/client", "[2001:db8::1]:443", "--proto", "tcp"}), 1);
  EXPECT_NE(out_.str().find("2001:db8::1"), std::string::npos) << out_.str();
}

TEST_F(CheckCommandTest, BadInputExitsTwo) {
  EXPECT_EQ(check({"httpbin.org:80"}), 2);  // no --from
  EXPECT_NE(err_.str().find("--from"), std::string::npos);
  EXPECT_EQ(check({"--from", "client", "httpbin.org:80"}), 2);
  EXPECT_EQ(check({"--from", "default/client"}), 2);
  EXPECT_EQ(check({"--from", "default/client", "httpbin.org"}), 2);
  EXPECT_EQ(check({"--from", "default/client", "httpbin.org:99999"}), 2);
  EXPECT_EQ(check({"--from", "default/client", "httpbin.org:80", "--proto", "sctp"}), 2);
  EXPECT_EQ(check({"--from", "default/client", "x:443", "--sni", "a", "--host", "b"}), 2);
  EXPECT_EQ(check({"--from", "default/client", "x:443", "--sni", "a", "--proto", "http"}), 2);
  EXPECT_NE(err_.str().find("contradicts --sni"), std::string::npos) << err_.str();
  EXPECT_EQ(check({"--from", "default/client", "x:443", "--bogus"}), 2);
  EXPECT_EQ(check({"--from", "default/client", "x:443", "-o", "xml"}), 2);
}

TEST_F(CheckCommandTest, ConfigErrorsExitTwoWithFileLine) {
  dir_.write("broken.yaml", R"(apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: bad
  namespace: default
spec:
  hosts: [bad.example.com]
  ports:
  - number: 70000
    name: x
    protocol: TCP
)");
  EXPECT_EQ(check({"--from", "default/client", "httpbin.org:80", "--host", "httpbin.org"}), 2);
  EXPECT_NE(err_.str().find(dir_.file("broken.yaml") + ":"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("ServiceEntry/default/bad"), std::string::npos) << err_.str();
  EXPECT_EQ(out_.str(), "");

  std::ostringstream out, err;
  EXPECT_EQ(
      runCli({"check", "--config-dir", "/nonexistent/tollgate", "--from", "a/b", "x:1"}, out, err),
      2);
  EXPECT_NE(err.str().find("/nonexistent/tollgate"), std::string::npos) << err.str();
}

TEST(CheckDestination, ParsesIpv4Ipv6AndNames) {
  auto v4 = parseDestination("10.1.2.3:80");
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->ip->str(), "10.1.2.3");
  EXPECT_EQ(v4->port, 80);
  auto v6 = parseDestination("[fd00::1]:443");
  ASSERT_TRUE(v6.has_value());
  EXPECT_FALSE(v6->ip->isV4());
  EXPECT_EQ(v6->port, 443);
  auto name = parseDestination("edition.cnn.com:443");
  ASSERT_TRUE(name.has_value());
  EXPECT_FALSE(name->ip.has_value());
  EXPECT_EQ(name->host, "edition.cnn.com");
  EXPECT_FALSE(parseDestination("fd00::1:443").has_value());  // v6 needs brackets
  EXPECT_FALSE(parseDestination("[10.0.0.1]:80").has_value());
  EXPECT_FALSE(parseDestination("host:0").has_value());
  EXPECT_FALSE(parseDestination(":80").has_value());
  EXPECT_FALSE(parseDestination("a b:80").has_value());
}

TEST(Cli, HelpAndUnknownCommand) {
  std::ostringstream out, err;
  EXPECT_EQ(runCli({"--help"}, out, err), 0);
  EXPECT_NE(out.str().find("Usage: tollgatectl"), std::string::npos);
  out.str("");
  EXPECT_EQ(runCli({"check", "--help"}, out, err), 0);
  EXPECT_NE(out.str().find("--config-dir DIR"), std::string::npos);
  out.str("");
  EXPECT_EQ(runCli({"config", "dump", "--help"}, out, err), 0);
  EXPECT_NE(out.str().find("-o, --output FORMAT"), std::string::npos);
  EXPECT_EQ(runCli({"frobnicate"}, out, err), 2);
  EXPECT_NE(err.str().find("unknown command \"frobnicate\""), std::string::npos);
  EXPECT_NE(err.str().find("Usage: tollgatectl"), std::string::npos);
  EXPECT_EQ(runCli({}, out, err), 2);
  EXPECT_EQ(runCli({"config", "frob"}, out, err), 2);
}

}  // namespace
}  // namespace tollgate::cli
