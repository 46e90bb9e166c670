// tollgatectl learn's core: observed events in, ServiceEntry YAML out. The YAML is loaded by the
// real config loader and every observed flow is decided by the real `tollgatectl check` in
// REGISTRY_ONLY: what was seen is allowed, what was not stays denied.
#include "cli/learner.h"

#include <gtest/gtest.h>

#include <sstream>

#include "cli/commands.h"
#include "temp_config_dir.h"

namespace tollgate::cli {
namespace {

using testing::TempConfigDir;

constexpr const char* kRegistryOnly = R"(apiVersion: tollgate.io/v1alpha1
kind: TollgateConfig
metadata: {name: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  trustDomain: cluster.local
  clusterCIDRs:
    pods: ["10.244.0.0/16"]
    services: ["10.96.0.0/12"]
)";

admin::LogEvent conn(const std::string& ns, const std::string& sa, const std::string& dst,
                     const std::string& name, const std::string& protocol,
                     const std::string& decision, const std::string& reason) {
  admin::LogEvent e;
  e.set_kind("conn");
  e.set_namespace_(ns);
  e.set_pod(sa + "-pod");
  auto& f = *e.mutable_fields();
  f["identity"] = "spiffe://cluster.local/ns/" + ns + "/sa/" + sa;
  f["dst"] = dst;
  f["name"] = name.empty() ? "-" : name;
  f["protocol"] = protocol;
  f["decision"] = decision;
  f["reason"] = reason;
  return e;
}

int check(const std::string& dir, const std::vector<std::string>& flow, std::string* why) {
  std::vector<std::string> args = {"check", "--config-dir", dir};
  args.insert(args.end(), flow.begin(), flow.end());
  std::ostringstream out, err;
  int rc = runCli(args, out, err);
  *why = out.str() + err.str();
  return rc;
}

class LearnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // What two pods did under ALLOW_ANY, and what a REGISTRY_ONLY node denied.
    for (int i = 0; i < 3; ++i) {
      learner_.add(conn("default", "client", "203.0.113.10:443", "api.example.com", "tls", "allow", "allow_any"));
    }
    learner_.add(conn("shop", "cart", "203.0.113.10:443", "api.example.com", "tls", "allow", "allow_any"));
    learner_.add(conn("default", "client", "203.0.113.11:80", "example.org", "http", "deny", "not_in_registry"));
    learner_.add(conn("default", "client", "203.0.113.11:8080", "example.org", "http", "allow", "allow_any"));
    learner_.add(conn("default", "db", "203.0.113.20:5432", "", "tcp", "allow", "allow_any"));
    // Not for a ServiceEntry to change.
    learner_.add(conn("default", "client", "10.96.0.10:80", "svc.cluster.local", "http", "allow", "in_cluster"));
    learner_.add(conn("default", "client", "203.0.113.30:443", "known.example", "tls", "allow", "registry"));
    learner_.add(conn("default", "client", "203.0.113.40:443", "policed.example", "tls", "deny", "network_policy"));
    admin::LogEvent dns;
    dns.set_kind("dns");
    dns.set_namespace_("default");
    (*dns.mutable_fields())["name"] = "only-resolved.example";
    learner_.add(dns);
  }
  Learner learner_;
};

TEST_F(LearnerTest, OneEntryPerHostWithCountsAndServiceAccounts) {
  EXPECT_EQ(learner_.hosts(), 3u);
  EXPECT_EQ(learner_.connections(), 7u);
  std::string y = learner_.yaml("test events");
  // Sorted by host: the address entry first ("203.0.113.20" < "api..." < "example.org").
  auto a = y.find("# 203.0.113.20:"), b = y.find("# api.example.com:"), c = y.find("# example.org:");
  ASSERT_NE(a, std::string::npos) << y;
  ASSERT_NE(b, std::string::npos) << y;
  ASSERT_NE(c, std::string::npos) << y;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_NE(y.find("# api.example.com: 4 connection(s) from default/client (3), shop/cart (1)"), std::string::npos) << y;
  EXPECT_NE(y.find("# used from namespaces default, shop: placed in default, exported to all"), std::string::npos) << y;
  EXPECT_NE(y.find("decisions: allow allow_any (1), deny not_in_registry (1)"), std::string::npos) << y;
  EXPECT_NE(y.find("{number: 8080, name: http-8080, protocol: HTTP}"), std::string::npos) << y;
  EXPECT_NE(y.find("- 203.0.113.20/32"), std::string::npos) << y;
  EXPECT_NE(y.find("Not learned (a ServiceEntry would not change them): in_cluster (1), network_policy (1), registry (1)"),
            std::string::npos)
      << y;
  EXPECT_NE(y.find("never connected to (no port seen): only-resolved.example (1)"), std::string::npos) << y;
}

TEST_F(LearnerTest, TheYamlLoadsAndAllowsExactlyWhatWasObserved) {
  TempConfigDir dir;
  dir.write("00-mesh.yaml", kRegistryOnly);
  dir.write("50-learned.yaml", learner_.yaml("test events"));
  {
    std::ostringstream out, err;
    ASSERT_EQ(runCli({"config", "validate", dir.path()}, out, err), 0) << out.str() << err.str();
  }
  std::string why;
  // Observed: allowed.
  EXPECT_EQ(check(dir.path(), {"--from", "default/client", "203.0.113.10:443", "--sni", "api.example.com"}, &why), 0) << why;
  EXPECT_EQ(check(dir.path(), {"--from", "shop/cart", "203.0.113.10:443", "--sni", "api.example.com"}, &why), 0) << why;
  EXPECT_EQ(check(dir.path(), {"--from", "default/client", "203.0.113.11:80", "--host", "example.org"}, &why), 0) << why;
  EXPECT_EQ(check(dir.path(), {"--from", "default/client", "203.0.113.11:8080", "--host", "example.org"}, &why), 0) << why;
  EXPECT_EQ(check(dir.path(), {"--from", "default/db", "203.0.113.20:5432", "--proto", "tcp"}, &why), 0) << why;
  // Not observed: still denied.
  EXPECT_EQ(check(dir.path(), {"--from", "default/client", "203.0.113.10:8443", "--sni", "api.example.com"}, &why), 1) << why;
  EXPECT_EQ(check(dir.path(), {"--from", "default/client", "203.0.113.12:443", "--sni", "other.example.com"}, &why), 1) << why;
  EXPECT_EQ(check(dir.path(), {"--from", "default/db", "203.0.113.20:5433", "--proto", "tcp"}, &why), 1) << why;
  EXPECT_EQ(check(dir.path(), {"--from", "default/client", "203.0.113.40:443", "--sni", "policed.example"}, &why), 1) << why;
  EXPECT_EQ(check(dir.path(), {"--from", "default/client", "203.0.113.50:443", "--sni", "only-resolved.example"}, &why), 1) << why;
}

TEST(Learner, NamespaceFilterAndNothingSeen) {
  Learner only("shop");
  only.add(conn("default", "client", "203.0.113.10:443", "api.example.com", "tls", "allow", "allow_any"));
  EXPECT_EQ(only.hosts(), 0u);
  std::string y = only.yaml("1m of namespace shop");
  EXPECT_NE(y.find("0 connection(s) to 0 host(s)"), std::string::npos) << y;
  EXPECT_EQ(y.find("kind: ServiceEntry"), std::string::npos) << y;
}

TEST(Learner, ClashingEntryNamesGetASuffixAndStayValid) {
  Learner l;
  l.add(conn("default", "c", "203.0.113.1:443", "a-b.example", "tls", "allow", "allow_any"));
  l.add(conn("default", "c", "203.0.113.2:443", "a.b.example", "tls", "allow", "allow_any"));
  l.add(conn("default", "c", "203.0.113.3:443", std::string(40, 'x') + "." + std::string(40, 'y') + ".example", "tls", "allow", "allow_any"));
  std::string y = l.yaml("t");
  EXPECT_NE(y.find("name: learned-a-b-example\n"), std::string::npos) << y;
  EXPECT_NE(y.find("name: learned-a-b-example-2\n"), std::string::npos) << y;
  TempConfigDir dir;
  dir.write("00-mesh.yaml", kRegistryOnly);
  dir.write("50-learned.yaml", y);
  std::ostringstream out, err;
  EXPECT_EQ(runCli({"config", "validate", dir.path()}, out, err), 0) << out.str() << err.str() << y;
}

}  // namespace
}  // namespace tollgate::cli
