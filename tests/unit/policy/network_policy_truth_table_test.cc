// Egress truth tables in the style of the Kubernetes e2e netpol suite (test/e2e/network/netpol):
// namespaces x, y, z with pods a, b, c each serving 80/81 on TCP, UDP and SCTP. Each case installs
// one policy (or a set whose rules must union) and checks every (from, to, port, protocol) cell
// against a Reachability table written by hand from the Kubernetes semantics, never derived from
// the code under test.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "policy/config_loader.h"
#include "policy/network_policy_index.h"

namespace tollgate::policy {
namespace {

using Op = LabelRequirement::Op;

constexpr std::array<const char*, 3> kNamespaces{"x", "y", "z"};
constexpr std::array<const char*, 3> kPodNames{"a", "b", "c"};
constexpr std::array<uint16_t, 2> kPorts{80, 81};
constexpr std::array<L4Protocol, 3> kProtocols{L4Protocol::Tcp, L4Protocol::Udp, L4Protocol::Sctp};
constexpr int kPodCount = 9;

// Local on purpose: this table must not depend on model.cc's toString.
const char* protoName(L4Protocol p) {
  switch (p) {
    case L4Protocol::Tcp:
      return "TCP";
    case L4Protocol::Udp:
      return "UDP";
    case L4Protocol::Sctp:
      return "SCTP";
  }
  return "?";
}

const char* protoLower(L4Protocol p) {
  switch (p) {
    case L4Protocol::Tcp:
      return "tcp";
    case L4Protocol::Udp:
      return "udp";
    case L4Protocol::Sctp:
      return "sctp";
  }
  return "?";
}

std::string podLabel(int i) { return fmt::format("{}/{}", kNamespaces[i / 3], kPodNames[i % 3]); }

// How the probes address the destination pod.
enum class Addr { V4, V6, V4Mapped };

std::string podAddress(int i, Addr addr) {
  int ns = i / 3 + 1, pod = i % 3 + 1;
  switch (addr) {
    case Addr::V4:
      return fmt::format("10.244.{}.{}", ns, pod);
    case Addr::V6:
      return fmt::format("fd00:10:244:{}::{}", ns, pod);
    case Addr::V4Mapped:
      return fmt::format("::ffff:10.244.{}.{}", ns, pod);
  }
  return "";
}

IpAddress ip(const std::string& text) {
  auto a = IpAddress::parse(text);
  EXPECT_TRUE(a) << "bad test address " << text;
  return a.value_or(IpAddress{});
}

Cidr cidr(const std::string& text) {
  auto c = Cidr::parse(text);
  EXPECT_TRUE(c) << "bad test cidr " << text;
  return c.value_or(Cidr{});
}

// ---- the cluster ----------------------------------------------------------------------------

Config baseCluster() {
  Config config;
  for (int n = 0; n < 3; ++n) {
    Namespace ns;
    ns.meta.kind = "Namespace";
    ns.meta.name = kNamespaces[n];
    ns.meta.labels = {{"ns", kNamespaces[n]}};
    config.namespaces.push_back(ns);
  }
  for (int i = 0; i < kPodCount; ++i) {
    Pod pod;
    pod.meta.kind = "Pod";
    pod.meta.ns = kNamespaces[i / 3];
    pod.meta.name = kPodNames[i % 3];
    pod.meta.labels = {{"pod", kPodNames[i % 3]}};
    for (L4Protocol proto : kProtocols) {
      for (uint16_t port : kPorts) {
        pod.ports.push_back(
            ContainerPort{fmt::format("serve-{}-{}", port, protoLower(proto)), port, proto});
      }
    }
    pod.podIPs = {ip(podAddress(i, Addr::V4)), ip(podAddress(i, Addr::V6))};
    config.pods.push_back(pod);
  }
  return config;
}

// ---- expected reachability (upstream's Reachability, extended with port and protocol) ------

// "x/a", "x/*", "*/a" or "*".
struct Peer {
  std::string ns;           // empty: any
  std::string pod;          // empty: any
  Peer(const char* text) {  // NOLINT(google-explicit-constructor): reads like upstream
    std::string s = text;
    auto slash = s.find('/');
    std::string n = s.substr(0, slash);
    std::string p = slash == std::string::npos ? "*" : s.substr(slash + 1);
    ns = n == "*" ? "" : n;
    pod = p == "*" ? "" : p;
  }
  bool covers(int i) const {
    return (ns.empty() || ns == kNamespaces[i / 3]) && (pod.empty() || pod == kPodNames[i % 3]);
  }
};

struct Only {
  std::optional<uint16_t> port;
  std::optional<L4Protocol> protocol;
  bool covers(int portIdx, int protoIdx) const {
    return (!port || *port == kPorts[portIdx]) && (!protocol || *protocol == kProtocols[protoIdx]);
  }
};

class Reachability {
 public:
  explicit Reachability(bool allowed) { expectAll(allowed); }

  void expectAll(bool allowed) { expectPeer("*", "*", allowed); }
  void expectAllEgress(const Peer& from, bool allowed) { expectPeer(from, "*", allowed); }
  void expectPeer(const Peer& from, const Peer& to, bool allowed, Only only = {}) {
    for (int f = 0; f < kPodCount; ++f) {
      for (int t = 0; t < kPodCount; ++t) {
        if (!from.covers(f) || !to.covers(t)) continue;
        for (size_t p = 0; p < kPorts.size(); ++p) {
          for (size_t q = 0; q < kProtocols.size(); ++q) {
            if (only.covers(p, q)) cells_[f][t][p][q] = allowed;
          }
        }
      }
    }
  }
  bool expected(int from, int to, int portIdx, int protoIdx) const {
    return cells_[from][to][portIdx][protoIdx];
  }

 private:
  bool cells_[kPodCount][kPodCount][kPorts.size()][kProtocols.size()] = {};
};

// ---- policy builders --------------------------------------------------------------------------

LabelSelector all() { return {}; }
LabelSelector sel(Labels labels) {
  LabelSelector s;
  s.matchLabels = std::move(labels);
  return s;
}
LabelSelector expr(std::string key, Op op, std::vector<std::string> values = {}) {
  LabelSelector s;
  s.matchExpressions.push_back({std::move(key), op, std::move(values)});
  return s;
}

NetworkPolicyPeer pods(LabelSelector s) {
  NetworkPolicyPeer peer;
  peer.podSelector = std::move(s);
  return peer;
}
NetworkPolicyPeer namespaces(LabelSelector s) {
  NetworkPolicyPeer peer;
  peer.namespaceSelector = std::move(s);
  return peer;
}
NetworkPolicyPeer podsIn(LabelSelector ns, LabelSelector pod) {
  NetworkPolicyPeer peer;
  peer.namespaceSelector = std::move(ns);
  peer.podSelector = std::move(pod);
  return peer;
}
NetworkPolicyPeer block(const std::string& c, const std::vector<std::string>& except = {}) {
  IpBlock b{cidr(c), {}};
  for (const auto& e : except) b.except.push_back(cidr(e));
  NetworkPolicyPeer peer;
  peer.ipBlock = b;
  return peer;
}

NetworkPolicyPort port(L4Protocol proto, uint32_t number,
                       std::optional<uint32_t> endPort = std::nullopt) {
  return NetworkPolicyPort{proto, number, endPort};
}
NetworkPolicyPort named(L4Protocol proto, std::string name) {
  return NetworkPolicyPort{proto, std::move(name), std::nullopt};
}
NetworkPolicyPort anyPort(L4Protocol proto) { return NetworkPolicyPort{proto, std::nullopt, {}}; }

NetworkPolicyEgressRule rule(std::vector<NetworkPolicyPeer> to,
                             std::vector<NetworkPolicyPort> ports = {}) {
  return NetworkPolicyEgressRule{std::move(ports), std::move(to)};
}

NetworkPolicy egress(const char* ns, const char* name, LabelSelector podSelector,
                     std::vector<NetworkPolicyEgressRule> rules) {
  NetworkPolicy p;
  p.meta.kind = "NetworkPolicy";
  p.meta.ns = ns;
  p.meta.name = name;
  p.podSelector = std::move(podSelector);
  p.policyTypesEgress = true;
  p.egress = std::move(rules);
  return p;
}

NetworkPolicy withIngress(NetworkPolicy p, bool egressType = true) {
  p.policyTypesIngress = true;
  p.policyTypesEgress = egressType;
  return p;
}

constexpr auto TCP = L4Protocol::Tcp;
constexpr auto UDP = L4Protocol::Udp;
constexpr auto SCTP = L4Protocol::Sctp;

// ---- cases --------------------------------------------------------------------------------

// A probe to something other than a pod of the table (external addresses, unknown pod IPs).
struct ExtraProbe {
  const char* from;
  const char* dst;
  uint16_t port;
  L4Protocol protocol;
  bool allowed;
};

struct TruthCase {
  std::string name;
  std::vector<NetworkPolicy> policies;
  std::function<void(Reachability&)> expect;
  Addr addr = Addr::V4;
  std::vector<ExtraProbe> extra;
  std::function<void(Config&)> mutate;  // cluster changes for this case
  // When set, the policies come from this YAML through ConfigLoader instead of `policies`, so the
  // loader's defaulting (policyTypes, protocol) is checked against the same tables.
  std::string yaml;
};

std::vector<TruthCase> truthCases() {
  std::vector<TruthCase> c;
  auto add = [&](std::string name, std::vector<NetworkPolicy> policies,
                 std::function<void(Reachability&)> expect, Addr addr = Addr::V4,
                 std::vector<ExtraProbe> extra = {}) {
    c.push_back(TruthCase{std::move(name),
                          std::move(policies),
                          std::move(expect),
                          addr,
                          std::move(extra),
                          nullptr,
                          {}});
  };

  add("NoPoliciesAllowEverything", {}, [](Reachability&) {});

  add("DefaultDenyAllEgress", {egress("x", "deny-all", all(), {})},
      [](Reachability& r) { r.expectAllEgress("x/*", false); }, Addr::V4,
      {{"x/a", "198.18.0.10", 443, TCP, false}, {"y/a", "198.18.0.10", 443, TCP, true}});

  add("AllowAllEgress", {egress("x", "allow-all", all(), {rule({})})}, [](Reachability&) {},
      Addr::V4, {{"x/a", "198.18.0.10", 443, TCP, true}});

  add("DenyEgressFromPodsBasedOnPodSelector", {egress("x", "deny-a", sel({{"pod", "a"}}), {})},
      [](Reachability& r) { r.expectAllEgress("x/a", false); });

  add("DenyEgressFromAllPodsInNamespaceWithExistsSelector",
      {egress("x", "deny-all", expr("pod", Op::Exists), {})},
      [](Reachability& r) { r.expectAllEgress("x/*", false); });

  add("PolicySelectingNoPodsIsolatesNothing",
      {egress("x", "deny-nobody", sel({{"pod", "zzz"}}), {})}, [](Reachability&) {});

  add("IngressOnlyPolicyDoesNotIsolateEgress",
      {withIngress(egress("x", "ingress-only", all(), {}), /*egressType=*/false)},
      [](Reachability&) {});

  add("EgressTypeWithOnlyIngressRulesDeniesEgress",
      {withIngress(egress("y", "both-types", all(), {}))},
      [](Reachability& r) { r.expectAllEgress("y/*", false); });

  add("IngressAndEgressSpecifiedTogether",
      {withIngress(egress("x", "both", sel({{"pod", "a"}}), {rule({pods(sel({{"pod", "b"}}))})}))},
      [](Reachability& r) {
        r.expectAllEgress("x/a", false);
        r.expectPeer("x/a", "x/b", true);
      });

  add("AllowEgressToPodInSameNamespace",
      {egress("x", "to-b", all(), {rule({pods(sel({{"pod", "b"}}))})})}, [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "x/b", true);
      });

  add("AllowEgressToAllPodsInSameNamespaceWithEmptyPodSelector",
      {egress("x", "to-own-ns", sel({{"pod", "a"}}), {rule({pods(all())})})}, [](Reachability& r) {
        r.expectAllEgress("x/a", false);
        r.expectPeer("x/a", "x/*", true);
      });

  add("AllowEgressToNamespaceByLabel",
      {egress("x", "to-y", all(), {rule({namespaces(sel({{"ns", "y"}}))})})}, [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "y/*", true);
      });

  add("AllowEgressToAllNamespacesWithEmptyNamespaceSelector",
      {egress("x", "to-all-pods", sel({{"pod", "c"}}), {rule({namespaces(all())})})},
      [](Reachability&) {}, Addr::V4,
      {{"x/c", "198.18.0.10", 80, TCP, false}, {"x/c", "10.244.9.9", 80, TCP, false}});

  add("AllowEgressByDefaultNamespaceNameLabel",
      {egress("x", "to-z", all(),
              {rule({namespaces(sel({{"kubernetes.io/metadata.name", "z"}}))})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "z/*", true);
      });

  add("PodSelectorAndNamespaceSelectorInOnePeer",
      {egress("x", "to-y-b", sel({{"pod", "a"}}),
              {rule({podsIn(sel({{"ns", "y"}}), sel({{"pod", "b"}}))})})},
      [](Reachability& r) {
        r.expectAllEgress("x/a", false);
        r.expectPeer("x/a", "y/b", true);
      });

  add("PodSelectorOrNamespaceSelectorAsTwoPeers",
      {egress("x", "to-b-or-y", sel({{"pod", "a"}}),
              {rule({pods(sel({{"pod", "b"}})), namespaces(sel({{"ns", "y"}}))})})},
      [](Reachability& r) {
        r.expectAllEgress("x/a", false);
        r.expectPeer("x/a", "x/b", true);
        r.expectPeer("x/a", "y/*", true);
      });

  add("NamespaceSelectorWithMatchExpressionsNotIn",
      {egress("x", "not-x", all(), {rule({namespaces(expr("ns", Op::NotIn, {"x"}))})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "y/*", true);
        r.expectPeer("x/*", "z/*", true);
      });

  add("MultiplePodSelectorsAndNamespaceSelectorsWithMatchExpressionsIn",
      {egress("x", "y-z-a-c", sel({{"pod", "b"}}),
              {rule({podsIn(expr("ns", Op::In, {"y", "z"}), expr("pod", Op::In, {"a", "c"}))})})},
      [](Reachability& r) {
        r.expectAllEgress("x/b", false);
        for (const char* to : {"y/a", "y/c", "z/a", "z/c"}) r.expectPeer("x/b", to, true);
      });

  add("PodSelectorWithMatchExpressionsIn",
      {egress("x", "to-b-c", all(), {rule({pods(expr("pod", Op::In, {"b", "c"}))})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "x/b", true);
        r.expectPeer("x/*", "x/c", true);
      });

  add("PodSelectorNotInAcrossAllNamespaces",
      {egress("x", "not-a", sel({{"pod", "a"}}),
              {rule({podsIn(all(), expr("pod", Op::NotIn, {"a"}))})})},
      [](Reachability& r) {
        r.expectAllEgress("x/a", false);
        r.expectPeer("x/a", "*/b", true);
        r.expectPeer("x/a", "*/c", true);
      });

  add("PodSelectorDoesNotExistSelectsNoPod",
      {egress("x", "no-pod", sel({{"pod", "a"}}), {rule({pods(expr("pod", Op::DoesNotExist))})})},
      [](Reachability& r) { r.expectAllEgress("x/a", false); });

  add("NamespaceSelectorExistsWithPodSelector",
      {egress("x", "any-ns-c", sel({{"pod", "a"}}),
              {rule({podsIn(expr("ns", Op::Exists), sel({{"pod", "c"}}))})})},
      [](Reachability& r) {
        r.expectAllEgress("x/a", false);
        r.expectPeer("x/a", "*/c", true);
      });

  add("AllowEgressToServerInCidrBlock",
      {egress("x", "to-cidr", sel({{"pod", "a"}}), {rule({block("10.244.2.2/32")})})},
      [](Reachability& r) {
        r.expectAllEgress("x/a", false);
        r.expectPeer("x/a", "y/b", true);
      });

  add("EnforceExceptClauseInCidrBlock",
      {egress("x", "except-x-b", sel({{"pod", "a"}}),
              {rule({block("10.244.0.0/16", {"10.244.1.2/32"})})})},
      [](Reachability& r) { r.expectPeer("x/a", "x/b", false); });

  add("IpOverlappingCidrAndExceptIsAllowedByAnotherRule",
      {egress("x", "overlap", sel({{"pod", "a"}}),
              {rule({block("10.244.0.0/16", {"10.244.1.2/32"})}), rule({block("10.244.1.2/32")})})},
      [](Reachability&) {});

  add("CidrWithSeveralExcepts",
      {egress("x", "only-y", all(),
              {rule({block("10.244.0.0/16", {"10.244.1.0/24", "10.244.3.0/24"})})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "y/*", true);
      });

  add("EgressOnPort80TcpOnly", {egress("x", "tcp-80", all(), {rule({}, {port(TCP, 80)})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "*", true, {80, TCP});
      });

  add("EgressOnPort81UdpOnly", {egress("x", "udp-81", all(), {rule({}, {port(UDP, 81)})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "*", true, {81, UDP});
      });

  add("EndPortRange80To81Tcp", {egress("x", "tcp-80-81", all(), {rule({}, {port(TCP, 80, 81)})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "*", true, {std::nullopt, TCP});
      });

  add("EndPortRange81To85Udp",
      {egress("y", "udp-81-85", sel({{"pod", "b"}}), {rule({}, {port(UDP, 81, 85)})})},
      [](Reachability& r) {
        r.expectAllEgress("y/b", false);
        r.expectPeer("y/b", "*", true, {81, UDP});
      });

  add("AllowEgressOnOneNamedPort",
      {egress("x", "named-80", all(), {rule({}, {named(TCP, "serve-80-tcp")})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "*", true, {80, TCP});
      });

  add("NamedPortWithOtherProtocolNeverMatches",
      {egress("x", "named-udp-as-tcp", all(), {rule({}, {named(TCP, "serve-80-udp")})})},
      [](Reachability& r) { r.expectAllEgress("x/*", false); });

  add("NamedUdpPortToNamespace",
      {egress("x", "named-udp-81", all(),
              {rule({namespaces(sel({{"ns", "y"}}))}, {named(UDP, "serve-81-udp")})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "y/*", true, {81, UDP});
      });

  add("SctpIsNotTreatedAsTcp", {egress("x", "sctp-80", all(), {rule({}, {port(SCTP, 80)})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "*", true, {80, SCTP});
      });

  add("AnyPortOnSpecificProtocol", {egress("x", "udp-any", all(), {rule({}, {anyPort(UDP)})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "*", true, {std::nullopt, UDP});
      });

  add("EmptyToWithSeveralPorts",
      {egress("x", "81-tcp-sctp", sel({{"pod", "a"}}),
              {rule({}, {port(TCP, 81), port(SCTP, 81)})})},
      [](Reachability& r) {
        r.expectAllEgress("x/a", false);
        r.expectPeer("x/a", "*", true, {81, TCP});
        r.expectPeer("x/a", "*", true, {81, SCTP});
      });

  add("PortsAndPeersOfOneRuleAreAndedNotMixedAcrossRules",
      {egress("x", "two-rules", sel({{"pod", "a"}}),
              {rule({namespaces(sel({{"ns", "z"}}))}, {port(TCP, 80)}),
               rule({pods(sel({{"pod", "b"}}))}, {port(UDP, 81)})})},
      [](Reachability& r) {
        r.expectAllEgress("x/a", false);
        r.expectPeer("x/a", "z/*", true, {80, TCP});
        r.expectPeer("x/a", "x/b", true, {81, UDP});
      });

  add("NamedAndNumericPortsWithPodAndNamespaceSelector",
      {egress("x", "z-c", sel({{"pod", "c"}}),
              {rule({podsIn(sel({{"ns", "z"}}), sel({{"pod", "c"}}))},
                    {port(TCP, 81), named(SCTP, "serve-80-sctp")})})},
      [](Reachability& r) {
        r.expectAllEgress("x/c", false);
        r.expectPeer("x/c", "z/c", true, {81, TCP});
        r.expectPeer("x/c", "z/c", true, {80, SCTP});
      });

  add("IpBlockWithPorts",
      {egress("x", "y-cidr-udp-80", all(), {rule({block("10.244.2.0/24")}, {port(UDP, 80)})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "y/*", true, {80, UDP});
      });

  add("MultiplePoliciesUnion",
      {egress("x", "all-to-y", all(), {rule({namespaces(sel({{"ns", "y"}}))})}),
       egress("x", "a-to-z-c", sel({{"pod", "a"}}),
              {rule({podsIn(sel({{"ns", "z"}}), sel({{"pod", "c"}}))})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "y/*", true);
        r.expectPeer("x/a", "z/c", true);
      });

  add("MultipleEgressPoliciesWithAllowAllTakingPrecedence",
      {egress("x", "tcp-80", all(), {rule({}, {port(TCP, 80)})}),
       egress("x", "allow-all", all(), {rule({})})},
      [](Reachability&) {});

  add("DenyAllUnionedWithAllowForOnePod",
      {egress("x", "deny-all", all(), {}),
       egress("x", "b-to-own-ns", sel({{"pod", "b"}}), {rule({pods(all())})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/b", "x/*", true);
      });

  add("ThreePoliciesUnionByPort",
      {egress("z", "tcp-80", all(), {rule({}, {port(TCP, 80)})}),
       egress("z", "udp-81", all(), {rule({}, {port(UDP, 81)})}),
       egress("z", "sctp-to-x", all(), {rule({namespaces(sel({{"ns", "x"}}))}, {anyPort(SCTP)})})},
      [](Reachability& r) {
        r.expectAllEgress("z/*", false);
        r.expectPeer("z/*", "*", true, {80, TCP});
        r.expectPeer("z/*", "*", true, {81, UDP});
        r.expectPeer("z/*", "x/*", true, {std::nullopt, SCTP});
      });

  add("PolicyInNamespaceYDoesNotAffectX", {egress("y", "deny-all", all(), {})},
      [](Reachability& r) { r.expectAllEgress("y/*", false); });

  add("DenyEgressOnClientSideEvenIfServerAllowsIngress",
      {egress("x", "deny-all", all(), {}),
       withIngress(egress("y", "allow-ingress", all(), {}), /*egressType=*/false)},
      [](Reachability& r) { r.expectAllEgress("x/*", false); });

  add("PoliciesInSeveralNamespacesAreIndependent",
      {egress("x", "own-ns", all(), {rule({namespaces(sel({{"ns", "x"}}))})}),
       egress("z", "a-to-a", sel({{"pod", "a"}}), {rule({podsIn(all(), sel({{"pod", "a"}}))})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "x/*", true);
        r.expectAllEgress("z/a", false);
        r.expectPeer("z/a", "*/a", true);
      });

  add("Ipv6IpBlock",
      {egress("x", "v6-y", all(), {rule({block("fd00:10:244:2::/64"), block("10.244.3.0/24")})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "y/*", true);  // z only through its v4 block, not probed here
      },
      Addr::V6,
      {{"x/a", "10.244.3.1", 80, TCP, true}, {"x/a", "fd00:10:244:3::1", 80, TCP, false}});

  add(
      "Ipv6DestinationsResolveToPods",
      {egress("x", "z-named-81", all(),
              {rule({namespaces(sel({{"ns", "z"}}))}, {named(TCP, "serve-81-tcp")})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "z/*", true, {81, TCP});
      },
      Addr::V6);

  add(
      "V4MappedDestinationsMatchV4IpBlock",
      {egress("x", "except-x-b", sel({{"pod", "a"}}),
              {rule({block("10.244.0.0/16", {"10.244.1.2/32"})})})},
      [](Reachability& r) { r.expectPeer("x/a", "x/b", false); }, Addr::V4Mapped);

  add(
      "V4MappedDestinationsResolveToPods",
      {egress("x", "y-named-80", all(),
              {rule({namespaces(sel({{"ns", "y"}}))}, {named(TCP, "serve-80-tcp")})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "y/*", true, {80, TCP});
      },
      Addr::V4Mapped);

  add("EgressToExternalIpViaIpBlockAllExceptCluster",
      {egress("x", "external-only", sel({{"pod", "a"}}),
              {rule({block("0.0.0.0/0", {"10.244.0.0/16"})})})},
      [](Reachability& r) { r.expectAllEgress("x/a", false); }, Addr::V4,
      {{"x/a", "198.18.0.10", 443, TCP, true},
       {"x/a", "::ffff:198.18.0.10", 443, UDP, true},
       {"x/a", "10.244.9.9", 80, TCP, false},
       {"x/a", "2001:db8::1", 443, TCP, false},
       {"x/b", "10.244.9.9", 80, TCP, true}});

  add("NamedPortNeverMatchesNonPodDestination",
      {egress("x", "named-anywhere", all(),
              {rule({block("0.0.0.0/0")}, {named(TCP, "serve-80-tcp")})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "*", true, {80, TCP});
      },
      Addr::V4, {{"x/a", "198.18.0.10", 80, TCP, false}});

  // Namespaces without Namespace objects still carry kubernetes.io/metadata.name, and nothing
  // else: a selector on ns=y then matches no namespace.
  c.push_back(TruthCase{"DefaultNamespaceLabelWithoutNamespaceObjects",
                        {egress("x", "by-name", all(),
                                {rule({namespaces(sel({{"kubernetes.io/metadata.name", "y"}})),
                                       namespaces(sel({{"ns", "z"}}))})})},
                        [](Reachability& r) {
                          r.expectAllEgress("x/*", false);
                          r.expectPeer("x/*", "y/*", true);
                        },
                        Addr::V4,
                        {},
                        [](Config& config) { config.namespaces.clear(); },
                        {}});

  // A Namespace object cannot override the name label with a different value.
  c.push_back(TruthCase{
      "NamespaceNameLabelCannotBeSpoofed",
      {egress("x", "by-name", all(),
              {rule({namespaces(sel({{"kubernetes.io/metadata.name", "y"}}))})})},
      [](Reachability& r) {
        r.expectAllEgress("x/*", false);
        r.expectPeer("x/*", "y/*", true);
      },
      Addr::V4,
      {},
      [](Config& config) { config.namespaces[2].meta.labels["kubernetes.io/metadata.name"] = "y"; },
      {}});

  // A pod missing the named port is not reached through it.
  c.push_back(TruthCase{"NamedPortResolvedPerDestinationPod",
                        {egress("x", "named-80", all(), {rule({}, {named(TCP, "serve-80-tcp")})})},
                        [](Reachability& r) {
                          r.expectAllEgress("x/*", false);
                          r.expectPeer("x/*", "*", true, {80, TCP});
                          r.expectPeer("x/*", "y/c", false);
                        },
                        Addr::V4,
                        {},
                        [](Config& config) {
                          auto& ports = config.pods[5].ports;  // y/c
                          std::erase_if(ports, [](const ContainerPort& p) {
                            return p.name == "serve-80-tcp";
                          });
                        },
                        {}});

  auto addYaml = [&](std::string name, std::string yaml,
                     std::function<void(Reachability&)> expect) {
    c.push_back(
        TruthCase{std::move(name), {}, std::move(expect), Addr::V4, {}, nullptr, std::move(yaml)});
  };

  addYaml("YamlDefaultDenyAllEgress", R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Egress]
)",
          [](Reachability& r) { r.expectAllEgress("x/*", false); });

  // No policyTypes and no egress section: Kubernetes defaults to [Ingress] only.
  addYaml("YamlPolicyTypesDefaultWithoutEgressIsIngressOnly", R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ingress-default, namespace: x}
spec:
  podSelector: {}
)",
          [](Reachability&) {});

  // No policyTypes but an egress section: defaults to [Ingress, Egress].
  addYaml("YamlPolicyTypesDefaultWithEgressSection", R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-default, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  egress:
  - to:
    - namespaceSelector: {matchLabels: {ns: y}}
      podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}
    ports:
    - port: 80
    - port: serve-81-udp
      protocol: UDP
)",
          [](Reachability& r) {
            r.expectAllEgress("x/a", false);
            for (const char* to : {"y/b", "y/c"}) {
              r.expectPeer("x/a", to, true, {80, TCP});
              r.expectPeer("x/a", to, true, {81, UDP});
            }
          });

  addYaml("YamlIpBlockExceptAndEndPort", R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cidr-range, namespace: z}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 10.244.0.0/16, except: [10.244.3.0/24, 10.244.1.1/32]}
    ports:
    - {protocol: SCTP, port: 80, endPort: 81}
)",
          [](Reachability& r) {
            r.expectAllEgress("z/*", false);
            r.expectPeer("z/*", "*", true, {std::nullopt, SCTP});
            r.expectPeer("z/*", "z/*", false);
            r.expectPeer("z/*", "x/a", false);
          });

  addYaml("YamlMultiplePoliciesUnion", R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: to-own-namespace, namespace: y}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c-to-x-by-name, namespace: y}
spec:
  podSelector: {matchLabels: {pod: c}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}}]
    ports: [{protocol: UDP}]
)",
          [](Reachability& r) {
            r.expectAllEgress("y/*", false);
            r.expectPeer("y/*", "y/*", true);
            r.expectPeer("y/c", "x/*", true, {std::nullopt, UDP});
          });

  return c;
}

// ---- the check --------------------------------------------------------------------------------

std::string describe(const NetworkPolicyIndex::Result& r) {
  return fmt::format("isolated={} allowed={} decidedBy={}", r.isolated, r.allowed,
                     r.decidedBy ? r.decidedBy->meta.ns + "/" + r.decidedBy->meta.name : "-");
}

// Mismatches as upstream prints them: one grid per (protocol, port) slice that differs, rows are
// clients, columns servers. '.' agrees, 'A' allowed but expected denied, 'D' denied but expected
// allowed.
std::string mismatchTable(const std::function<bool(int, int, int, int)>& observed,
                          const Reachability& want, int* count) {
  std::ostringstream out;
  *count = 0;
  for (size_t q = 0; q < kProtocols.size(); ++q) {
    for (size_t p = 0; p < kPorts.size(); ++p) {
      std::ostringstream grid;
      int sliceMismatches = 0;
      grid << fmt::format("{:>4}/{:<3}", protoName(kProtocols[q]), kPorts[p]);
      for (int t = 0; t < kPodCount; ++t) grid << fmt::format(" {:>4}", podLabel(t));
      grid << "\n";
      for (int f = 0; f < kPodCount; ++f) {
        grid << fmt::format("{:<8}", podLabel(f));
        for (int t = 0; t < kPodCount; ++t) {
          bool got = observed(f, t, p, q), exp = want.expected(f, t, p, q);
          char mark = got == exp ? '.' : (got ? 'A' : 'D');
          sliceMismatches += got != exp;
          grid << fmt::format(" {:>4}", mark);
        }
        grid << "\n";
      }
      if (sliceMismatches > 0) out << grid.str();
      *count += sliceMismatches;
    }
  }
  return out.str();
}

// gtest prints a failing parameter; show its name instead of its bytes.
void PrintTo(const TruthCase& tc, std::ostream* os) { *os << tc.name; }

class NetworkPolicyTruthTable : public testing::TestWithParam<TruthCase> {};

TEST_P(NetworkPolicyTruthTable, EveryCellMatchesExpectedReachability) {
  const TruthCase& tc = GetParam();
  Config config = baseCluster();
  config.networkPolicies = tc.policies;
  if (!tc.yaml.empty()) {
    auto loaded = ConfigLoader::loadString(tc.yaml, tc.name + ".yaml");
    if (!loaded) {
      std::string diags;
      for (const auto& d : loaded.error()) diags += d.str() + "\n";
      FAIL() << "YAML did not load:\n" << diags;
    }
    ASSERT_FALSE(loaded->config.networkPolicies.empty());
    config.networkPolicies = loaded->config.networkPolicies;
  }
  if (tc.mutate) tc.mutate(config);
  NetworkPolicyIndex index(config);

  Reachability want(true);
  tc.expect(want);

  std::array<IpAddress, kPodCount> dst;
  for (int t = 0; t < kPodCount; ++t) dst[t] = ip(podAddress(t, tc.addr));

  // Both ways of finding the source's policies must agree with the table: the per-pod cache
  // (a known pod) and the on-the-fly scan (same labels, a name the config does not list).
  for (bool known : {true, false}) {
    auto source = [&](int i) {
      const Pod& pod = config.pods[i];
      return PodIdentity{pod.meta.ns, known ? pod.meta.name : pod.meta.name + "-unlisted",
                         pod.meta.labels, "default"};
    };
    auto observed = [&](int f, int t, int p, int q) {
      return index.evaluate(source(f), dst[t], kPorts[p], kProtocols[q]).allowed;
    };
    int mismatches = 0;
    std::string table = mismatchTable(observed, want, &mismatches);
    EXPECT_EQ(mismatches, 0) << (known ? "known-pod source" : "identity-only source") << ", "
                             << mismatches << " of " << kPodCount * kPodCount * 6
                             << " cells differ (A: allowed, expected denied; D: denied, "
                                "expected allowed):\n"
                             << table;

    for (const auto& probe : tc.extra) {
      Peer from(probe.from);
      int f = 0;
      while (f < kPodCount && !from.covers(f)) ++f;
      ASSERT_LT(f, kPodCount) << probe.from;
      auto result = index.evaluate(source(f), ip(probe.dst), probe.port, probe.protocol);
      EXPECT_EQ(result.allowed, probe.allowed)
          << probe.from << " -> " << probe.dst << ":" << probe.port << "/"
          << protoName(probe.protocol) << (known ? " (known pod)" : " (identity only)") << ": "
          << describe(result);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Egress, NetworkPolicyTruthTable, testing::ValuesIn(truthCases()),
                         [](const testing::TestParamInfo<TruthCase>& info) {
                           return info.param.name;
                         });

TEST(NetworkPolicyTruthTableMeta, HasAtLeastThirtyCases) { EXPECT_GE(truthCases().size(), 30u); }

}  // namespace
}  // namespace tollgate::policy
