#include "policy/registry_index.h"

#include <gtest/gtest.h>

namespace tollgate::policy {
namespace {

using Status = RegistryIndex::Status;

ServicePort port(uint32_t number, PortProtocol protocol = PortProtocol::Tcp,
                 uint32_t targetPort = 0) {
  ServicePort p;
  p.number = number;
  p.protocol = protocol;
  p.targetPort = targetPort;
  return p;
}

ServiceEntry entry(std::string ns, std::string name, std::vector<std::string> hosts,
                   std::vector<ServicePort> ports = {port(443, PortProtocol::Tls)}) {
  ServiceEntry se;
  se.meta.kind = "ServiceEntry";
  se.meta.ns = std::move(ns);
  se.meta.name = std::move(name);
  se.hosts = std::move(hosts);
  se.ports = std::move(ports);
  return se;
}

Sidecar sidecar(std::string ns, std::string name, std::vector<std::string> hosts,
                std::optional<Labels> selector = std::nullopt) {
  Sidecar sc;
  sc.meta.ns = std::move(ns);
  sc.meta.name = std::move(name);
  sc.workloadSelector = std::move(selector);
  sc.egress.push_back(SidecarEgress{std::nullopt, std::move(hosts)});
  return sc;
}

PodIdentity pod(std::string ns, Labels labels = {}) {
  return PodIdentity{std::move(ns), "client", std::move(labels), "default"};
}

std::unique_ptr<RegistryIndex> build(const Config& c) {
  auto r = RegistryIndex::build(c);
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? std::move(*r) : nullptr;
}

// Name of the entry that allowed a TLS flow to name:port, or the status when none did.
std::string who(const RegistryIndex& idx, const PodIdentity& p, std::string_view name,
                uint16_t dport = 443, AppProtocol app = AppProtocol::Tls) {
  auto m = idx.lookupName(p, name, dport, L4Protocol::Tcp, app);
  switch (m.status) {
    case Status::Matched:
      return m.entry->meta.ns + "/" + m.entry->meta.name;
    case Status::NoMatch:
      return "no-match";
    case Status::PortNotListed:
      return "port-not-listed";
    case Status::ProtocolMismatch:
      return "protocol-mismatch";
  }
  return "?";
}

TEST(RegistryIndex, ExactAndWildcardDepth) {
  Config c;
  c.serviceEntries.push_back(entry("default", "exact", {"API.example.com"}));
  c.serviceEntries.push_back(entry("default", "wild", {"*.example.com"}));
  auto idx = build(c);
  auto p = pod("default");
  EXPECT_EQ(who(*idx, p, "api.example.com"), "default/exact");  // most specific wins
  EXPECT_EQ(who(*idx, p, "www.example.com"), "default/wild");
  EXPECT_EQ(who(*idx, p, "a.b.c.example.com"), "default/wild");
  EXPECT_EQ(who(*idx, p, "example.com"), "no-match");
  EXPECT_EQ(who(*idx, p, "example.org"), "no-match");
  EXPECT_EQ(who(*idx, p, "xexample.com"), "no-match");
}

TEST(RegistryIndex, DeeperWildcardBeatsShallower) {
  Config c;
  c.serviceEntries.push_back(entry("default", "shallow", {"*.com"}));
  c.serviceEntries.push_back(entry("default", "deep", {"*.b.example.com"}));
  auto idx = build(c);
  EXPECT_EQ(who(*idx, pod("default"), "a.b.example.com"), "default/deep");
  EXPECT_EQ(who(*idx, pod("default"), "b.example.com"), "default/shallow");
}

TEST(RegistryIndex, MatchAllHost) {
  Config c;
  c.serviceEntries.push_back(entry("default", "all", {"*"}));
  auto idx = build(c);
  EXPECT_EQ(who(*idx, pod("default"), "anything.example"), "default/all");
}

TEST(RegistryIndex, PortNotListedAndFallThroughToWildcard) {
  Config c;
  c.serviceEntries.push_back(entry("default", "exact", {"api.example.com"}));
  auto idx = build(c);
  EXPECT_EQ(who(*idx, pod("default"), "api.example.com", 8443), "port-not-listed");
  c.serviceEntries.push_back(entry("default", "wild", {"*.example.com"}, {port(8443)}));
  idx = build(c);
  EXPECT_EQ(who(*idx, pod("default"), "api.example.com", 8443), "default/wild");
}

TEST(RegistryIndex, ProtocolCompatibility) {
  Config c;
  c.serviceEntries.push_back(
      entry("default", "svc", {"svc.example.com"},
            {port(80, PortProtocol::Http), port(443, PortProtocol::Https),
             port(5432, PortProtocol::Tcp), port(27017, PortProtocol::Mongo),
             port(9000, PortProtocol::Unspecified), port(50051, PortProtocol::Grpc)}));
  auto idx = build(c);
  auto p = pod("default");
  EXPECT_EQ(who(*idx, p, "svc.example.com", 80, AppProtocol::Http), "default/svc");
  EXPECT_EQ(who(*idx, p, "svc.example.com", 80, AppProtocol::Unknown), "default/svc");  // DNS
  EXPECT_EQ(who(*idx, p, "svc.example.com", 80, AppProtocol::Tls), "protocol-mismatch");
  EXPECT_EQ(who(*idx, p, "svc.example.com", 50051, AppProtocol::Tcp), "protocol-mismatch");
  EXPECT_EQ(who(*idx, p, "svc.example.com", 443, AppProtocol::Tls), "default/svc");
  EXPECT_EQ(who(*idx, p, "svc.example.com", 443, AppProtocol::Http), "protocol-mismatch");
  EXPECT_EQ(who(*idx, p, "svc.example.com", 443, AppProtocol::Unknown), "protocol-mismatch");
  for (uint16_t dport : {5432, 27017, 9000}) {
    for (auto app : {AppProtocol::Unknown, AppProtocol::Tcp, AppProtocol::Tls, AppProtocol::Http}) {
      EXPECT_EQ(who(*idx, p, "svc.example.com", dport, app), "default/svc") << dport;
    }
  }
  // Without a name an Unknown flow is not HTTP.
  EXPECT_FALSE(RegistryIndex::protocolCompatible(PortProtocol::Http, L4Protocol::Tcp,
                                                 AppProtocol::Unknown, /*byName=*/false));
  EXPECT_FALSE(RegistryIndex::protocolCompatible(PortProtocol::Tcp, L4Protocol::Udp,
                                                 AppProtocol::Unknown, true));
  EXPECT_TRUE(RegistryIndex::protocolCompatible(PortProtocol::Udp, L4Protocol::Udp,
                                                AppProtocol::Unknown, true));
}

TEST(RegistryIndex, ExportToForms) {
  Config c;
  auto all = entry("team-a", "all", {"all.example.com"});
  auto star = entry("team-a", "star", {"star.example.com"});
  star.exportTo = {"*"};
  auto dot = entry("team-a", "dot", {"dot.example.com"});
  dot.exportTo = {"."};
  auto none = entry("team-a", "none", {"none.example.com"});
  none.exportTo = {"~"};
  auto listed = entry("team-a", "listed", {"listed.example.com"});
  listed.exportTo = {"team-b", "."};
  c.serviceEntries = {all, star, dot, none, listed};
  auto idx = build(c);
  auto a = pod("team-a"), b = pod("team-b"), z = pod("team-z");
  EXPECT_EQ(who(*idx, z, "all.example.com"), "team-a/all");
  EXPECT_EQ(who(*idx, z, "star.example.com"), "team-a/star");
  EXPECT_EQ(who(*idx, a, "dot.example.com"), "team-a/dot");
  EXPECT_EQ(who(*idx, b, "dot.example.com"), "no-match");
  EXPECT_EQ(who(*idx, a, "none.example.com"), "no-match");
  EXPECT_EQ(who(*idx, b, "none.example.com"), "no-match");
  EXPECT_EQ(who(*idx, a, "listed.example.com"), "team-a/listed");
  EXPECT_EQ(who(*idx, b, "listed.example.com"), "team-a/listed");
  EXPECT_EQ(who(*idx, z, "listed.example.com"), "no-match");
}

TEST(RegistryIndex, WorkloadSelectorRestrictsToMatchingPodsOfItsNamespace) {
  Config c;
  auto se = entry("team-a", "payments", {"pay.example.com"});
  se.workloadSelector = Labels{{"app", "billing"}};
  c.serviceEntries.push_back(se);
  auto idx = build(c);
  EXPECT_EQ(who(*idx, pod("team-a", {{"app", "billing"}, {"v", "2"}}), "pay.example.com"),
            "team-a/payments");
  EXPECT_EQ(who(*idx, pod("team-a", {{"app", "web"}}), "pay.example.com"), "no-match");
  EXPECT_EQ(who(*idx, pod("team-a"), "pay.example.com"), "no-match");
  EXPECT_EQ(who(*idx, pod("team-b", {{"app", "billing"}}), "pay.example.com"), "no-match");
}

TEST(RegistryIndex, SeveralEntriesPreferOwnNamespaceThenNsNameOrder) {
  Config c;
  c.serviceEntries.push_back(entry("zeta", "z", {"shared.example.com"}));
  c.serviceEntries.push_back(entry("beta", "b2", {"shared.example.com"}));
  c.serviceEntries.push_back(entry("beta", "b1", {"shared.example.com"}));
  auto hidden = entry("alpha", "a", {"shared.example.com"});
  hidden.exportTo = {"."};
  c.serviceEntries.push_back(hidden);
  auto idx = build(c);
  EXPECT_EQ(who(*idx, pod("zeta"), "shared.example.com"), "zeta/z");
  EXPECT_EQ(who(*idx, pod("alpha"), "shared.example.com"), "alpha/a");
  EXPECT_EQ(who(*idx, pod("other"), "shared.example.com"), "beta/b1");  // alpha/a invisible
}

TEST(RegistryIndex, EntriesForTheSameHostMergePorts) {
  Config c;
  c.serviceEntries.push_back(entry("default", "https", {"api.example.com"}));
  c.serviceEntries.push_back(
      entry("default", "http", {"api.example.com"}, {port(80, PortProtocol::Http)}));
  auto idx = build(c);
  EXPECT_EQ(who(*idx, pod("default"), "api.example.com", 443), "default/https");
  EXPECT_EQ(who(*idx, pod("default"), "api.example.com", 80, AppProtocol::Http), "default/http");
}

TEST(RegistryIndex, SidecarEgressHostPatterns) {
  Config base;
  base.serviceEntries.push_back(entry("team-a", "a", {"a.example.com"}));
  base.serviceEntries.push_back(entry("team-b", "b", {"b.example.com"}));
  base.serviceEntries.push_back(entry("team-b", "wild", {"*.wild.example.com"}));
  auto p = pod("team-a");
  {
    Config c = base;
    c.sidecars.push_back(sidecar("team-a", "default", {"./*"}));
    auto idx = build(c);
    EXPECT_EQ(who(*idx, p, "a.example.com"), "team-a/a");
    EXPECT_EQ(who(*idx, p, "b.example.com"), "no-match");
    // Only the pod's namespace sees the Sidecar.
    EXPECT_EQ(who(*idx, pod("team-b"), "b.example.com"), "team-b/b");
  }
  {
    Config c = base;
    c.sidecars.push_back(sidecar("team-a", "default", {"*/*"}));
    auto idx = build(c);
    EXPECT_EQ(who(*idx, p, "a.example.com"), "team-a/a");
    EXPECT_EQ(who(*idx, p, "b.example.com"), "team-b/b");
  }
  {
    Config c = base;
    c.sidecars.push_back(sidecar("team-a", "default", {"~/*"}));
    auto idx = build(c);
    EXPECT_EQ(who(*idx, p, "a.example.com"), "no-match");
    EXPECT_EQ(who(*idx, p, "b.example.com"), "no-match");
  }
  {
    Config c = base;
    c.sidecars.push_back(sidecar("team-a", "default", {"team-b/b.example.com"}));
    auto idx = build(c);
    EXPECT_EQ(who(*idx, p, "b.example.com"), "team-b/b");
    EXPECT_EQ(who(*idx, p, "a.example.com"), "no-match");
    EXPECT_EQ(who(*idx, p, "x.wild.example.com"), "no-match");
  }
  {
    Config c = base;
    c.sidecars.push_back(sidecar("team-a", "default", {"*/*.wild.example.com"}));
    auto idx = build(c);
    EXPECT_EQ(who(*idx, p, "x.wild.example.com"), "team-b/wild");
    EXPECT_EQ(who(*idx, p, "b.example.com"), "no-match");
  }
  {
    Config c = base;
    c.sidecars.push_back(sidecar("team-a", "default", {"team-a/*"}));
    auto idx = build(c);
    EXPECT_EQ(who(*idx, p, "a.example.com"), "team-a/a");
    EXPECT_EQ(who(*idx, p, "b.example.com"), "no-match");
  }
}

TEST(RegistryIndex, SidecarWithSelectorWinsThenNamespaceWideThenRoot) {
  Config c;
  c.serviceEntries.push_back(entry("team-a", "a", {"a.example.com"}));
  c.serviceEntries.push_back(entry("team-b", "b", {"b.example.com"}));
  c.sidecars.push_back(sidecar("team-a", "ns-wide", {"./*"}));
  c.sidecars.push_back(sidecar("team-a", "special", {"team-b/*"}, Labels{{"app", "special"}}));
  c.sidecars.push_back(sidecar("istio-system", "root", {"~/*"}));
  auto idx = build(c);
  auto special = pod("team-a", {{"app", "special"}});
  EXPECT_EQ(idx->sidecarFor(special)->meta.name, "special");
  EXPECT_EQ(who(*idx, special, "b.example.com"), "team-b/b");
  EXPECT_EQ(who(*idx, special, "a.example.com"), "no-match");
  auto plain = pod("team-a", {{"app", "web"}});
  EXPECT_EQ(idx->sidecarFor(plain)->meta.name, "ns-wide");
  EXPECT_EQ(who(*idx, plain, "a.example.com"), "team-a/a");
  EXPECT_EQ(who(*idx, plain, "b.example.com"), "no-match");
  // team-c has no Sidecar: the root namespace's namespace-wide one applies.
  EXPECT_EQ(idx->sidecarFor(pod("team-c"))->meta.name, "root");
  EXPECT_EQ(who(*idx, pod("team-c"), "b.example.com"), "no-match");
}

TEST(RegistryIndex, SidecarEgressPortScopesItsHosts) {
  Config c;
  c.serviceEntries.push_back(entry("default", "svc", {"svc.example.com"},
                                   {port(443, PortProtocol::Tls), port(8443, PortProtocol::Tls)}));
  Sidecar sc = sidecar("default", "default", {});
  sc.egress = {SidecarEgress{443, {"*/*"}}};
  c.sidecars.push_back(sc);
  auto idx = build(c);
  EXPECT_EQ(who(*idx, pod("default"), "svc.example.com", 443), "default/svc");
  EXPECT_EQ(who(*idx, pod("default"), "svc.example.com", 8443), "no-match");
}

TEST(RegistryIndex, SidecarOutboundModeOverridesMesh) {
  Config c;
  Sidecar sc = sidecar("team-a", "default", {"*/*"});
  sc.outboundMode = OutboundMode::AllowAny;
  c.sidecars.push_back(sc);
  auto idx = build(c);
  EXPECT_EQ(idx->outboundMode(pod("team-a"), OutboundMode::RegistryOnly), OutboundMode::AllowAny);
  EXPECT_EQ(idx->outboundMode(pod("team-b"), OutboundMode::RegistryOnly),
            OutboundMode::RegistryOnly);
}

TEST(RegistryIndex, AddressEntriesLongestVisiblePrefix) {
  Config c;
  auto wide = entry("default", "wide", {"db.internal"}, {port(5432)});
  wide.addresses = {*Cidr::parse("192.0.2.0/24")};
  auto narrow = entry("default", "narrow", {"db-primary.internal"}, {port(5432)});
  narrow.addresses = {*Cidr::parse("192.0.2.10/32")};
  narrow.exportTo = {"."};
  c.serviceEntries = {wide, narrow};
  auto idx = build(c);
  auto at = [&](const PodIdentity& p, std::string_view ip, uint16_t dport) {
    auto m =
        idx->lookupAddress(p, *IpAddress::parse(ip), dport, L4Protocol::Tcp, AppProtocol::Unknown);
    return m.status == Status::Matched ? m.entry->meta.name : std::string("none");
  };
  EXPECT_EQ(at(pod("default"), "192.0.2.10", 5432), "narrow");
  EXPECT_EQ(at(pod("other"), "192.0.2.10", 5432), "wide");  // narrow not exported
  EXPECT_EQ(at(pod("default"), "192.0.2.11", 5432), "wide");
  EXPECT_EQ(at(pod("default"), "192.0.3.1", 5432), "none");
  auto m = idx->lookupAddress(pod("default"), *IpAddress::parse("192.0.2.11"), 80, L4Protocol::Tcp,
                              AppProtocol::Unknown);
  EXPECT_EQ(m.status, Status::PortNotListed);
}

TEST(RegistryIndex, DestinationRuleTlsPortLevelOverridesAndExportTo) {
  Config c;
  DestinationRule dr;
  dr.meta.ns = "default";
  dr.meta.name = "api-tls";
  dr.host = "api.example.com";
  dr.trafficPolicy = TrafficPolicy{};
  dr.trafficPolicy->tls = ClientTlsSettings{.mode = TlsMode::Simple, .sni = "api.example.com"};
  dr.trafficPolicy->portLevelSettings.push_back(
      PortTrafficPolicy{8443, ClientTlsSettings{.mode = TlsMode::Mutual}});
  dr.trafficPolicy->portLevelSettings.push_back(PortTrafficPolicy{9443, std::nullopt});
  c.destinationRules.push_back(dr);
  DestinationRule wild;
  wild.meta.ns = "default";
  wild.meta.name = "wild";
  wild.host = "*.example.com";
  wild.exportTo = {"."};
  wild.trafficPolicy = TrafficPolicy{.tls = ClientTlsSettings{.mode = TlsMode::Disable}};
  c.destinationRules.push_back(wild);
  auto idx = build(c);
  auto p = pod("default");
  auto t = idx->tlsFor(p, "api.example.com", 443);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->tls.mode, TlsMode::Simple);
  EXPECT_EQ(t->rule->meta.name, "api-tls");
  t = idx->tlsFor(p, "api.example.com", 8443);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->tls.mode, TlsMode::Mutual);
  t = idx->tlsFor(p, "api.example.com", 9443);  // port level without tls: falls back
  ASSERT_TRUE(t);
  EXPECT_EQ(t->tls.mode, TlsMode::Simple);
  t = idx->tlsFor(p, "other.example.com", 443);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->rule->meta.name, "wild");
  EXPECT_FALSE(idx->tlsFor(pod("elsewhere"), "other.example.com", 443));  // exportTo "."
  EXPECT_FALSE(idx->tlsFor(p, "example.org", 443));
}

TEST(RegistryIndex, ManyPortsAndTargetPorts) {
  Config c;
  std::vector<ServicePort> ports;
  for (uint32_t i = 0; i < 6; ++i) ports.push_back(port(9000 + i, PortProtocol::Tcp, 19000 + i));
  ports.push_back(port(9443, PortProtocol::Tls));
  c.serviceEntries.push_back(entry("default", "many", {"many.example.com"}, ports));
  c.serviceEntries.push_back(
      entry("default", "few", {"few.example.com"}, {port(80, PortProtocol::Http, 8080)}));
  auto idx = build(c);
  auto m =
      idx->lookupName(pod("default"), "many.example.com", 9005, L4Protocol::Tcp, AppProtocol::Tcp);
  ASSERT_EQ(m.status, Status::Matched);
  EXPECT_EQ(m.port->number, 9005u);
  EXPECT_EQ(m.upstreamPort, 19005u);
  EXPECT_EQ(who(*idx, pod("default"), "many.example.com", 9443, AppProtocol::Http),
            "protocol-mismatch");
  m = idx->lookupName(pod("default"), "few.example.com", 80, L4Protocol::Tcp, AppProtocol::Http);
  ASSERT_EQ(m.status, Status::Matched);
  EXPECT_EQ(m.port->targetPort, 8080u);
  EXPECT_EQ(m.upstreamPort, 8080u);
  c.serviceEntries.push_back(entry("default", "bad", {"bad.example.com"}, {port(70000)}));
  EXPECT_FALSE(RegistryIndex::build(c));
}

TEST(RegistryIndex, BuildRejectsInvalidHostsNamingTheObject) {
  Config c;
  c.serviceEntries.push_back(entry("default", "broken", {"bad host.example.com"}));
  c.serviceEntries.back().meta.source = SourceRef{"se.yaml", 12};
  auto r = RegistryIndex::build(c);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("ServiceEntry/default/broken (se.yaml:12)"), std::string::npos)
      << r.error().message;
  Config s;
  s.sidecars.push_back(sidecar("default", "s", {"/a.example.com"}));
  EXPECT_FALSE(RegistryIndex::build(s));
  Config w;
  w.serviceEntries.push_back(entry("default", "mid", {"a.*.example.com"}));
  EXPECT_FALSE(RegistryIndex::build(w));
}

}  // namespace
}  // namespace tollgate::policy
