#include <gtest/gtest.h>

#include "policy/snapshot.h"

namespace tollgate::policy {
namespace {

ServicePort port(uint32_t number, PortProtocol protocol = PortProtocol::Tls,
                 uint32_t targetPort = 0) {
  ServicePort p;
  p.number = number;
  p.protocol = protocol;
  p.targetPort = targetPort;
  return p;
}

ServiceEntry entry(std::string ns, std::string name, std::vector<std::string> hosts,
                   std::vector<ServicePort> ports = {port(443)}) {
  ServiceEntry se;
  se.meta.kind = "ServiceEntry";
  se.meta.ns = std::move(ns);
  se.meta.name = std::move(name);
  se.hosts = std::move(hosts);
  se.ports = std::move(ports);
  return se;
}

IpAddress ip(std::string_view s) { return *IpAddress::parse(s); }
Cidr cidr(std::string_view s) { return *Cidr::parse(s); }

TollgateConfig mesh(std::vector<GatewayConfig> gateways = {}) {
  TollgateConfig t;
  t.meta.name = "mesh";
  t.podCidrs = {cidr("10.244.0.0/16")};
  t.serviceCidrs = {cidr("10.96.0.0/12")};
  t.gateways = std::move(gateways);
  return t;
}

GatewayConfig gateway(std::string name, std::string address, bool isDefault = false) {
  return GatewayConfig{std::move(name), std::move(address), 15008, isDefault};
}

Pod clientPod() {
  Pod p;
  p.meta.ns = "default";
  p.meta.name = "client";
  p.meta.labels = {{"app", "client"}};
  p.serviceAccountName = "client-sa";
  p.podIPs = {ip("10.244.1.5")};
  return p;
}

// Default fixture: one client pod, a gateway, an httpbin-like entry.
Config baseConfig() {
  Config c;
  c.tollgate = mesh({gateway("egress", "10.0.0.9")});
  c.pods.push_back(clientPod());
  auto se = entry("default", "httpbin", {"httpbin.org"},
                  {port(443, PortProtocol::Tls), port(80, PortProtocol::Http, 8080)});
  c.serviceEntries.push_back(se);
  return c;
}

SnapshotPtr compile(Config c) {
  auto s = Snapshot::compile(std::move(c));
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  return s ? *s : nullptr;
}

FlowQuery query(std::string_view dst, uint16_t dport, std::optional<std::string> name,
                AppProtocol app = AppProtocol::Tls) {
  FlowQuery q;
  q.source = PodIdentity{"default", "client", {{"app", "client"}}, "client-sa"};
  q.dstIp = ip(dst);
  q.dstPort = dport;
  q.app = app;
  q.name = std::move(name);
  return q;
}

TEST(Decision, RegistryAllowRoutesByNameThroughDefaultGateway) {
  auto s = compile(baseConfig());
  auto d = s->decide(query("203.0.113.7", 443, "HTTPBIN.org.:443"));
  EXPECT_TRUE(d.allowed());
  EXPECT_EQ(d.reason, Reason::AllowedRegistry);
  EXPECT_EQ(d.decidedBy.str(), "ServiceEntry/default/httpbin");
  EXPECT_EQ(d.name, "httpbin.org");
  EXPECT_EQ(d.route.kind, Route::Kind::Gateway);
  EXPECT_EQ(d.route.gatewayName, "egress");
  EXPECT_EQ(d.route.gatewayAddress, "10.0.0.9");
  EXPECT_EQ(d.route.gatewayPort, 15008);
  EXPECT_EQ(d.route.upstreamHost, "httpbin.org");  // never the IP the app asked for
  EXPECT_TRUE(d.route.byName);
  EXPECT_EQ(d.route.upstreamPort, 443);
}

TEST(Decision, TargetPortBecomesUpstreamPort) {
  auto s = compile(baseConfig());
  auto d = s->decide(query("203.0.113.7", 80, "httpbin.org", AppProtocol::Http));
  ASSERT_TRUE(d.allowed());
  EXPECT_EQ(d.route.upstreamPort, 8080);
}

TEST(Decision, NotInRegistryIsDenied) {
  auto s = compile(baseConfig());
  auto d = s->decide(query("203.0.113.7", 443, "evil.example"));
  EXPECT_FALSE(d.allowed());
  EXPECT_EQ(d.reason, Reason::DeniedNotInRegistry);
  EXPECT_EQ(d.route.kind, Route::Kind::None);
  EXPECT_EQ(d.decidedBy.str(), "TollgateConfig/mesh");
  EXPECT_EQ(toString(d.reason), "not_in_registry");
}

TEST(Decision, InvalidNameIsDenied) {
  auto s = compile(baseConfig());
  auto d = s->decide(query("203.0.113.7", 443, "httpbin\xc3\xa9.org"));
  EXPECT_EQ(d.reason, Reason::DeniedInvalidName);
  EXPECT_FALSE(d.allowed());
  d = s->decide(query("203.0.113.7", 443, "httpbin..org"));
  EXPECT_EQ(d.reason, Reason::DeniedInvalidName);
}

TEST(Decision, NoNameAndNoAddressEntryIsDenied) {
  auto s = compile(baseConfig());
  auto d = s->decide(query("203.0.113.7", 443, std::nullopt, AppProtocol::Tcp));
  EXPECT_FALSE(d.allowed());
  EXPECT_EQ(d.reason, Reason::DeniedNoName);
}

TEST(Decision, PortAndProtocolMismatch) {
  auto s = compile(baseConfig());
  auto d = s->decide(query("203.0.113.7", 8443, "httpbin.org"));
  EXPECT_EQ(d.reason, Reason::DeniedPortNotInRegistry);
  EXPECT_EQ(d.decidedBy.str(), "ServiceEntry/default/httpbin");
  d = s->decide(query("203.0.113.7", 443, "httpbin.org", AppProtocol::Http));
  EXPECT_EQ(d.reason, Reason::DeniedProtocolMismatch);
  EXPECT_FALSE(d.allowed());
}

TEST(Decision, AddressEntryRoutesToOriginalIp) {
  Config c = baseConfig();
  auto db = entry("default", "db", {"db.partner.example"}, {port(5432, PortProtocol::Tcp, 6432)});
  db.addresses = {cidr("198.51.100.0/24")};
  c.serviceEntries.push_back(db);
  auto s = compile(std::move(c));
  auto d = s->decide(query("198.51.100.20", 5432, std::nullopt, AppProtocol::Unknown));
  ASSERT_TRUE(d.allowed());
  EXPECT_EQ(d.reason, Reason::AllowedRegistry);
  EXPECT_EQ(d.decidedBy.str(), "ServiceEntry/default/db");
  EXPECT_FALSE(d.route.byName);
  EXPECT_EQ(d.route.upstreamHost, "198.51.100.20");
  EXPECT_EQ(d.route.upstreamPort, 6432);
  // An IP-literal Host header is decided like a bare address.
  d = s->decide(query("198.51.100.20", 5432, "198.51.100.20:5432", AppProtocol::Http));
  EXPECT_EQ(d.reason, Reason::AllowedRegistry);
  EXPECT_FALSE(d.route.byName);
  // v4-mapped destinations are folded.
  d = s->decide(query("::ffff:198.51.100.20", 5432, std::nullopt, AppProtocol::Unknown));
  EXPECT_EQ(d.reason, Reason::AllowedRegistry);
}

TEST(Decision, AllowAnyAllowsUnknownByNameAndByIp) {
  Config c = baseConfig();
  c.tollgate->outboundMode = OutboundMode::AllowAny;
  auto s = compile(std::move(c));
  auto d = s->decide(query("203.0.113.7", 443, "Anything.Example."));
  ASSERT_TRUE(d.allowed());
  EXPECT_EQ(d.reason, Reason::AllowedAllowAny);
  EXPECT_EQ(d.route.kind, Route::Kind::Gateway);
  EXPECT_EQ(d.route.upstreamHost, "anything.example");
  EXPECT_TRUE(d.route.byName);
  d = s->decide(query("203.0.113.7", 22, std::nullopt, AppProtocol::Tcp));
  ASSERT_TRUE(d.allowed());
  EXPECT_EQ(d.route.upstreamHost, "203.0.113.7");
  EXPECT_EQ(d.route.upstreamPort, 22);
  EXPECT_FALSE(d.route.byName);
  // A registry match still reports the entry.
  d = s->decide(query("203.0.113.7", 443, "httpbin.org"));
  EXPECT_EQ(d.reason, Reason::AllowedRegistry);
}

TEST(Decision, SidecarOutboundModeOverridesMesh) {
  Config c = baseConfig();
  Sidecar sc;
  sc.meta.ns = "default";
  sc.meta.name = "open";
  sc.outboundMode = OutboundMode::AllowAny;
  c.sidecars.push_back(sc);
  auto s = compile(std::move(c));
  auto d = s->decide(query("203.0.113.7", 443, "unlisted.example"));
  EXPECT_EQ(d.reason, Reason::AllowedAllowAny);
  EXPECT_EQ(d.decidedBy.str(), "Sidecar/default/open");
  auto q = query("203.0.113.7", 443, "unlisted.example");
  q.source.ns = "other";
  EXPECT_EQ(s->decide(q).reason, Reason::DeniedNotInRegistry);
}

TEST(Decision, InClusterDestinations) {
  Config c = baseConfig();
  Pod server;
  server.meta.ns = "default";
  server.meta.name = "server";
  server.podIPs = {ip("172.16.0.4")};  // outside the configured CIDRs, known as a pod
  c.pods.push_back(server);
  auto s = compile(std::move(c));
  for (auto dst : {"10.244.3.3", "10.100.0.1", "172.16.0.4"}) {
    auto d = s->decide(query(dst, 8080, "whatever.example", AppProtocol::Http));
    ASSERT_TRUE(d.allowed()) << dst;
    EXPECT_EQ(d.reason, Reason::AllowedInCluster) << dst;
    EXPECT_EQ(d.route.kind, Route::Kind::InCluster);
    EXPECT_EQ(d.route.upstreamHost, dst);
    EXPECT_EQ(d.route.upstreamPort, 8080);
  }
  EXPECT_TRUE(s->isInCluster(ip("10.96.0.10")));
  EXPECT_FALSE(s->isInCluster(ip("10.0.0.9")));
}

TEST(Decision, NetworkPolicyDenyComesBeforeRegistry) {
  Config c = baseConfig();
  NetworkPolicy np;
  np.meta.ns = "default";
  np.meta.name = "deny-egress";
  np.policyTypesEgress = true;  // selects every pod, allows nothing
  c.networkPolicies.push_back(np);
  auto s = compile(std::move(c));
  auto d = s->decide(query("203.0.113.7", 443, "httpbin.org"));
  EXPECT_FALSE(d.allowed());
  EXPECT_EQ(d.reason, Reason::DeniedNetworkPolicy);
  EXPECT_EQ(d.decidedBy.str(), "NetworkPolicy/default/deny-egress");
  d = s->decide(query("10.244.3.3", 80, std::nullopt, AppProtocol::Tcp));
  EXPECT_EQ(d.reason, Reason::DeniedNetworkPolicy);
  // Pods of other namespaces are not selected.
  auto q = query("203.0.113.7", 443, "httpbin.org");
  q.source.ns = "other";
  EXPECT_EQ(s->decide(q).reason, Reason::AllowedRegistry);
}

TEST(Decision, GatewayAnnotationSelectsGateway) {
  Config c = baseConfig();
  c.tollgate->gateways = {gateway("main", "10.0.0.9", true), gateway("pci", "10.0.0.10")};
  auto pci = entry("default", "card", {"card.example"});
  pci.meta.annotations["tollgate.io/gateway"] = "pci";
  c.serviceEntries.push_back(pci);
  auto s = compile(c);
  auto d = s->decide(query("203.0.113.7", 443, "card.example"));
  ASSERT_TRUE(d.allowed());
  EXPECT_EQ(d.route.gatewayName, "pci");
  EXPECT_EQ(d.route.gatewayAddress, "10.0.0.10");
  EXPECT_EQ(s->decide(query("203.0.113.7", 443, "httpbin.org")).route.gatewayName, "main");

  c.serviceEntries.back().meta.annotations["tollgate.io/gateway"] = "nope";
  auto bad = Snapshot::compile(c);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("unknown gateway \"nope\""), std::string::npos);
}

TEST(Decision, DirectWithoutGateways) {
  Config c = baseConfig();
  c.tollgate->gateways.clear();
  auto s = compile(std::move(c));
  auto d = s->decide(query("203.0.113.7", 443, "httpbin.org"));
  ASSERT_TRUE(d.allowed());
  EXPECT_EQ(d.route.kind, Route::Kind::Direct);
  EXPECT_EQ(d.route.str(), "direct httpbin.org:443");
}

TEST(Decision, GatewayValidation) {
  Config c = baseConfig();
  c.tollgate->gateways = {gateway("a", "10.0.0.1", true), gateway("b", "10.0.0.2", true)};
  EXPECT_FALSE(Snapshot::compile(c));
  c.tollgate->gateways = {gateway("a", "10.0.0.1"), gateway("a", "10.0.0.2")};
  auto dup = Snapshot::compile(c);
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().message.find("duplicate gateway name"), std::string::npos);
  c.tollgate->gateways = {gateway("only", "10.0.0.1")};  // lone gateway: the default
  auto s = compile(c);
  EXPECT_EQ(s->decide(query("203.0.113.7", 443, "httpbin.org")).route.gatewayName, "only");
}

TEST(Decision, DestinationRuleTlsGoesIntoRoute) {
  Config c = baseConfig();
  DestinationRule dr;
  dr.meta.ns = "default";
  dr.meta.name = "httpbin-tls";
  dr.host = "httpbin.org";
  dr.trafficPolicy = TrafficPolicy{};
  dr.trafficPolicy->portLevelSettings.push_back(
      PortTrafficPolicy{80, ClientTlsSettings{.mode = TlsMode::Simple, .sni = "httpbin.org"}});
  c.destinationRules.push_back(dr);
  auto s = compile(std::move(c));
  auto d = s->decide(query("203.0.113.7", 80, "httpbin.org", AppProtocol::Http));
  ASSERT_TRUE(d.allowed());
  ASSERT_TRUE(d.route.tls);
  EXPECT_EQ(d.route.tls->mode, TlsMode::Simple);
  EXPECT_EQ(d.route.destinationRule, "DestinationRule/default/httpbin-tls");
  d = s->decide(query("203.0.113.7", 443, "httpbin.org"));
  EXPECT_FALSE(d.route.tls);  // no tls for 443 in this rule
  EXPECT_TRUE(d.route.destinationRule.empty());
}

TEST(Decision, MeshDefaultsWhenTollgateConfigAbsent) {
  Config c;
  c.serviceEntries.push_back(entry("default", "httpbin", {"httpbin.org"}));
  auto s = compile(std::move(c));
  EXPECT_EQ(s->mesh().outboundMode, OutboundMode::RegistryOnly);
  auto d = s->decide(query("203.0.113.7", 443, "httpbin.org"));
  EXPECT_EQ(d.route.kind, Route::Kind::Direct);
  d = s->decide(query("203.0.113.7", 443, "other.org"));
  EXPECT_EQ(d.reason, Reason::DeniedNotInRegistry);
  EXPECT_EQ(d.decidedBy.str(), "-");
}

TEST(Snapshot, GenerationsIncrease) {
  auto a = compile(baseConfig());
  auto b = compile(baseConfig());
  EXPECT_GT(b->generation(), a->generation());
  EXPECT_GT(a->generation(), 0u);
}

TEST(Snapshot, PodAndNamespaceLookups) {
  Config c = baseConfig();
  Namespace ns;
  ns.meta.name = "default";
  ns.meta.labels = {{"team", "core"}};
  c.namespaces.push_back(ns);
  auto s = compile(std::move(c));
  const Pod* p = s->findPod("default", "client");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(s->findPodByIp(ip("10.244.1.5")), p);
  EXPECT_EQ(s->findPodByIp(ip("::ffff:10.244.1.5")), p);
  EXPECT_EQ(s->findPodByIp(ip("10.244.1.6")), nullptr);
  EXPECT_EQ(s->findPod("default", "nobody"), nullptr);
  EXPECT_EQ(s->findPod("defaul", "t/client"), nullptr);
  EXPECT_EQ(s->namespaceLabels("default").at("team"), "core");
  EXPECT_TRUE(s->namespaceLabels("unknown").empty());
  auto id = s->identityOf("default", "client");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->serviceAccount, "client-sa");
  EXPECT_EQ(id->labels.at("app"), "client");
  EXPECT_FALSE(s->identityOf("default", "nobody"));
}

}  // namespace
}  // namespace tollgate::policy
