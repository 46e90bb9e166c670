// NetworkPolicyIndex behaviour outside the reachability tables: which policy is reported, how a
// source is found, addresses that are not plain pod IPs, and the cost of large namespaces.

#include "policy/network_policy_index.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

namespace tollgate::policy {
namespace {

IpAddress ip(const char* text) { return IpAddress::parse(text).value(); }
Cidr cidr(const char* text) { return Cidr::parse(text).value(); }

LabelSelector sel(Labels labels) {
  LabelSelector s;
  s.matchLabels = std::move(labels);
  return s;
}

NetworkPolicy policy(std::string ns, std::string name, LabelSelector podSelector,
                     std::vector<NetworkPolicyEgressRule> egress = {}) {
  NetworkPolicy p;
  p.meta.kind = "NetworkPolicy";
  p.meta.ns = std::move(ns);
  p.meta.name = std::move(name);
  p.podSelector = std::move(podSelector);
  p.policyTypesEgress = true;
  p.egress = std::move(egress);
  return p;
}

NetworkPolicyEgressRule toPods(LabelSelector s) {
  NetworkPolicyPeer peer;
  peer.podSelector = std::move(s);
  return NetworkPolicyEgressRule{{}, {peer}};
}

NetworkPolicyEgressRule toBlock(const char* c) {
  NetworkPolicyPeer peer;
  peer.ipBlock = IpBlock{cidr(c), {}};
  return NetworkPolicyEgressRule{{}, {peer}};
}

Pod pod(std::string ns, std::string name, Labels labels, std::vector<IpAddress> ips) {
  Pod p;
  p.meta.kind = "Pod";
  p.meta.ns = std::move(ns);
  p.meta.name = std::move(name);
  p.meta.labels = std::move(labels);
  p.podIPs = std::move(ips);
  return p;
}

PodIdentity identity(const Pod& p) { return PodIdentity{p.meta.ns, p.meta.name, p.meta.labels}; }

std::string name(const NetworkPolicy* p) { return p ? p->meta.name : "<none>"; }

TEST(NetworkPolicyIndexTest, NotIsolatedWithoutPoliciesReportsNoPolicy) {
  Config config;
  config.pods = {pod("x", "a", {{"pod", "a"}}, {ip("10.0.0.1")})};
  NetworkPolicyIndex index(config);
  auto r = index.evaluate(identity(config.pods[0]), ip("1.2.3.4"), 443, L4Protocol::Tcp);
  EXPECT_FALSE(r.isolated);
  EXPECT_TRUE(r.allowed);
  EXPECT_EQ(r.decidedBy, nullptr);
}

TEST(NetworkPolicyIndexTest, DeniedReportsFirstSelectingPolicyByName) {
  Config config;
  config.pods = {pod("x", "a", {{"pod", "a"}}, {ip("10.0.0.1")})};
  // Config order deliberately differs from name order.
  config.networkPolicies = {policy("x", "zeta", {}), policy("x", "mid", sel({{"pod", "b"}})),
                            policy("x", "alpha", sel({{"pod", "a"}}))};
  NetworkPolicyIndex index(config);
  for (bool known : {true, false}) {
    PodIdentity src = identity(config.pods[0]);
    if (!known) src.name = "not-in-config";
    auto r = index.evaluate(src, ip("1.2.3.4"), 443, L4Protocol::Tcp);
    EXPECT_TRUE(r.isolated);
    EXPECT_FALSE(r.allowed);
    EXPECT_EQ(name(r.decidedBy), "alpha") << (known ? "known pod" : "identity only");
  }
}

TEST(NetworkPolicyIndexTest, AllowedReportsTheAllowingPolicy) {
  Config config;
  config.pods = {pod("x", "a", {{"pod", "a"}}, {ip("10.0.0.1")})};
  config.networkPolicies = {policy("x", "b-allow-external", {}, {toBlock("1.2.3.0/24")}),
                            policy("x", "a-deny-all", {}),
                            policy("x", "c-allow-all", {}, {NetworkPolicyEgressRule{}})};
  NetworkPolicyIndex index(config);
  auto r = index.evaluate(identity(config.pods[0]), ip("1.2.3.4"), 443, L4Protocol::Tcp);
  EXPECT_TRUE(r.allowed);
  EXPECT_EQ(name(r.decidedBy), "b-allow-external") << "first allowing policy by name";
  r = index.evaluate(identity(config.pods[0]), ip("5.6.7.8"), 443, L4Protocol::Tcp);
  EXPECT_TRUE(r.allowed);
  EXPECT_EQ(name(r.decidedBy), "c-allow-all");
}

TEST(NetworkPolicyIndexTest, IdentityLabelsWinOverConfigLabelsForKnownPod) {
  Config config;
  config.pods = {pod("x", "a", {{"pod", "a"}}, {ip("10.0.0.1")})};
  config.networkPolicies = {policy("x", "deny-a", sel({{"pod", "a"}}))};
  NetworkPolicyIndex index(config);
  PodIdentity relabelled{"x", "a", {{"pod", "b"}}};
  EXPECT_FALSE(index.evaluate(relabelled, ip("1.2.3.4"), 80, L4Protocol::Tcp).isolated);
  EXPECT_TRUE(
      index.evaluate(identity(config.pods[0]), ip("1.2.3.4"), 80, L4Protocol::Tcp).isolated);
}

TEST(NetworkPolicyIndexTest, SourceInUnknownNamespaceIsNotIsolated) {
  Config config;
  config.networkPolicies = {policy("x", "deny-all", {})};
  NetworkPolicyIndex index(config);
  EXPECT_FALSE(index.evaluate(PodIdentity{"elsewhere", "p", {}}, ip("1.2.3.4"), 80, L4Protocol::Tcp)
                   .isolated);
  EXPECT_TRUE(
      index.evaluate(PodIdentity{"x", "p", {}}, ip("1.2.3.4"), 80, L4Protocol::Tcp).isolated);
}

TEST(NetworkPolicyIndexTest, PolicyWithoutEgressTypeIsIgnoredEvenWithEgressRules) {
  Config config;
  auto p = policy("x", "ingress-only", {}, {toBlock("9.9.9.9/32")});
  p.policyTypesEgress = false;
  p.policyTypesIngress = true;
  config.networkPolicies = {p};
  NetworkPolicyIndex index(config);
  auto r = index.evaluate(PodIdentity{"x", "a", {}}, ip("1.2.3.4"), 80, L4Protocol::Tcp);
  EXPECT_FALSE(r.isolated);
  EXPECT_TRUE(r.allowed);
}

TEST(NetworkPolicyIndexTest, HostNetworkPodsAreNotSelectableByPodSelector) {
  Config config;
  config.pods = {pod("x", "a", {{"pod", "a"}}, {ip("10.0.0.1")}),
                 pod("x", "h", {{"pod", "h"}}, {ip("192.168.0.10")})};
  config.pods[1].hostNetwork = true;
  config.networkPolicies = {
      policy("x", "to-h", sel({{"pod", "a"}}), {toPods(sel({{"pod", "h"}}))}),
      policy("x", "to-node", sel({{"pod", "a"}}), {toBlock("192.168.0.0/24")})};
  NetworkPolicyIndex index(config);
  auto r = index.evaluate(identity(config.pods[0]), ip("192.168.0.10"), 80, L4Protocol::Tcp);
  EXPECT_TRUE(r.allowed);
  EXPECT_EQ(name(r.decidedBy), "to-node") << "only the ipBlock reaches a host-network address";
}

TEST(NetworkPolicyIndexTest, MappedFormIpBlockMatchesV4AndMappedDestinations) {
  Config config;
  config.networkPolicies = {policy("x", "mapped", {}, {toBlock("::ffff:10.244.0.0/112")})};
  NetworkPolicyIndex index(config);
  PodIdentity src{"x", "a", {}};
  EXPECT_TRUE(index.evaluate(src, ip("10.244.3.4"), 80, L4Protocol::Tcp).allowed);
  EXPECT_TRUE(index.evaluate(src, ip("::ffff:10.244.3.4"), 80, L4Protocol::Tcp).allowed);
  EXPECT_FALSE(index.evaluate(src, ip("10.245.0.1"), 80, L4Protocol::Tcp).allowed);
}

TEST(NetworkPolicyIndexTest, PeerWithNothingSetMatchesNothing) {
  Config config;
  config.pods = {pod("x", "a", {{"pod", "a"}}, {ip("10.0.0.1")})};
  config.networkPolicies = {policy("x", "empty-peer", {}, {NetworkPolicyEgressRule{{}, {{}}}})};
  NetworkPolicyIndex index(config);
  EXPECT_FALSE(
      index.evaluate(PodIdentity{"x", "b", {}}, ip("10.0.0.1"), 80, L4Protocol::Tcp).allowed);
}

TEST(NetworkPolicyIndexTest, CopiesShareTheCompiledIndex) {
  Config config;
  config.pods = {pod("x", "a", {{"pod", "a"}}, {ip("10.0.0.1")})};
  config.networkPolicies = {policy("x", "self", {}, {toPods(sel({{"pod", "a"}}))})};
  NetworkPolicyIndex copy = [&] {
    NetworkPolicyIndex original(config);
    return original;
  }();
  EXPECT_TRUE(
      copy.evaluate(PodIdentity{"x", "b", {}}, ip("10.0.0.1"), 80, L4Protocol::Tcp).allowed);
}

// 10,000 policies in one namespace: every known pod gets exactly its own policy. Speed is measured
// by bench/policy (BM_DecideWithNetworkPolicies), never by a timed test.
TEST(NetworkPolicyIndexTest, TenThousandPoliciesDecideEachPodByItsOwnPolicy) {
  constexpr int kPolicies = 10'000, kPods = 100, kEvaluations = 20'000;
  Config config;
  config.networkPolicies.reserve(kPolicies);
  for (int i = 0; i < kPolicies; ++i) {
    config.networkPolicies.push_back(
        policy("big", fmt::format("p{:05}", i), sel({{"app", fmt::format("svc-{}", i)}}),
               {toPods(sel({{"app", fmt::format("svc-{}", (i + 1) % kPolicies)}}))}));
  }
  for (int i = 0; i < kPods; ++i) {
    config.pods.push_back(pod("big", fmt::format("pod-{}", i), {{"app", fmt::format("svc-{}", i)}},
                              {IpAddress::v4(0x0af40000u + static_cast<uint32_t>(i) + 1)}));
  }
  NetworkPolicyIndex index(config);

  // Correctness first: svc-7 may reach svc-8 only.
  PodIdentity src = identity(config.pods[7]);
  auto ok = index.evaluate(src, config.pods[8].podIPs[0], 80, L4Protocol::Tcp);
  EXPECT_TRUE(ok.allowed);
  EXPECT_EQ(name(ok.decidedBy), "p00007");
  EXPECT_FALSE(index.evaluate(src, config.pods[9].podIPs[0], 80, L4Protocol::Tcp).allowed);

  int allowed = 0;
  for (int n = 0; n < kEvaluations; ++n) {
    const Pod& from = config.pods[n % kPods];
    const Pod& to = config.pods[(n + 1) % kPods];
    allowed += index.evaluate(identity(from), to.podIPs[0], 80, L4Protocol::Tcp).allowed;
  }
  EXPECT_EQ(allowed, kEvaluations - kEvaluations / kPods) << "svc-99 -> svc-0 has no rule";
}

}  // namespace
}  // namespace tollgate::policy
