// Decision cost against registry size. The goal (DESIGN.md "Decisions": lookups never scan):
// median < 1 us per decision at 100,000 hosts, and within 2x of the 10-host case.
//
// Query mix, cycled over 4096 pre-built flows: 50% exact-host hits, 30% wildcard hits (one to
// three labels below the wildcard), 20% names in no entry (denied), with mixed case and the odd
// trailing dot / port suffix as real SNI/Host values carry.

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <random>

#include "policy/snapshot.h"

namespace tollgate::policy {
namespace {

constexpr int kQueries = 4096;

ServiceEntry makeEntry(int i) {
  ServiceEntry se;
  se.meta.ns = fmt::format("ns{}", i % 50);
  se.meta.name = fmt::format("se{}", i);
  // Half exact, half wildcard hosts.
  se.hosts = {i % 2 == 0 ? fmt::format("api{}.vendor{}.com", i, i % 97)
                         : fmt::format("*.svc{}.vendor{}.com", i, i % 97)};
  ServicePort p443;
  p443.number = 443;
  p443.protocol = PortProtocol::Tls;
  ServicePort p80;
  p80.number = 80;
  p80.protocol = PortProtocol::Http;
  se.ports = {p443, p80};
  return se;
}

Config registryConfig(int hosts) {
  Config c;
  TollgateConfig t;
  t.podCidrs = {*Cidr::parse("10.244.0.0/16")};
  t.serviceCidrs = {*Cidr::parse("10.96.0.0/12")};
  t.gateways = {GatewayConfig{"egress", "10.0.0.9", 15008, true}};
  c.tollgate = t;
  c.serviceEntries.reserve(hosts);
  for (int i = 0; i < hosts; ++i) c.serviceEntries.push_back(makeEntry(i));
  Pod client;
  client.meta.ns = "ns7";
  client.meta.name = "client";
  client.meta.labels = {{"app", "client"}};
  client.podIPs = {*IpAddress::parse("10.244.1.5")};
  c.pods.push_back(client);
  return c;
}

std::vector<FlowQuery> makeQueries(int hosts) {
  std::mt19937 rng(1234);
  std::vector<FlowQuery> qs;
  qs.reserve(kQueries);
  for (int n = 0; n < kQueries; ++n) {
    FlowQuery q;
    q.source = PodIdentity{"ns7", "client", {{"app", "client"}}, "default"};
    q.dstIp = IpAddress::v4(0xCB007100u + (rng() % 200));  // 203.0.113.x
    q.dstPort = 443;
    q.app = AppProtocol::Tls;
    int kind = static_cast<int>(rng() % 10);
    int i = static_cast<int>(rng() % hosts);
    if (kind < 5) {
      i &= ~1;  // even: exact host
      q.name = fmt::format("api{}.vendor{}.com", i, i % 97);
      if (n % 7 == 0) q.name = fmt::format("API{}.Vendor{}.com.", i, i % 97);
    } else if (kind < 8) {
      i |= 1;  // odd: wildcard host
      if (i >= hosts) i = hosts - 1;
      int depth = 1 + static_cast<int>(rng() % 3);
      std::string prefix;
      for (int d = 0; d < depth; ++d) prefix += fmt::format("l{}.", d);
      q.name = fmt::format("{}svc{}.vendor{}.com", prefix, i, i % 97);
      if (n % 5 == 0) {
        q.app = AppProtocol::Http;
        q.dstPort = 80;
        q.name = *q.name + ":80";
      }
    } else {
      q.name = fmt::format("missing{}.elsewhere{}.net", i, i % 13);
    }
    qs.push_back(std::move(q));
  }
  return qs;
}

void runDecisions(benchmark::State& state, const Snapshot& snap, const std::vector<FlowQuery>& qs) {
  size_t n = 0;
  size_t allowed = 0;
  for (auto _ : state) {
    Decision d = snap.decide(qs[n++ & (kQueries - 1)]);
    allowed += d.allowed();
    benchmark::DoNotOptimize(d);
  }
  state.counters["allowed%"] =
      100.0 * static_cast<double>(allowed) / static_cast<double>(std::max<size_t>(n, 1));
}

void BM_DecideRegistry(benchmark::State& state) {
  const int hosts = static_cast<int>(state.range(0));
  auto snap = Snapshot::compile(registryConfig(hosts));
  if (!snap) {
    state.SkipWithError(snap.error().message.c_str());
    return;
  }
  auto qs = makeQueries(hosts);
  runDecisions(state, **snap, qs);
}
BENCHMARK(BM_DecideRegistry)
    ->Arg(10)
    ->Arg(1000)
    ->Arg(100000)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kNanosecond);

// 10,000 NetworkPolicies over 1,000 namespaces; the client's namespace has 10 of them, one of
// which selects the client and allows egress to 0.0.0.0/0 on 443 and 80, so decisions go on to
// the registry (1,000 hosts).
void BM_DecideWithNetworkPolicies(benchmark::State& state) {
  Config c = registryConfig(1000);
  for (int i = 0; i < 10000; ++i) {
    NetworkPolicy np;
    np.meta.ns = (i % 1000 == 7) ? "ns7" : fmt::format("ns{}", i % 1000);
    np.meta.name = fmt::format("np{}", i);
    np.policyTypesEgress = true;
    np.podSelector.matchLabels = {{"app", i == 7 ? "client" : fmt::format("app{}", i)}};
    NetworkPolicyEgressRule rule;
    NetworkPolicyPeer peer;
    peer.ipBlock = IpBlock{*Cidr::parse(i == 7 ? "0.0.0.0/0" : "192.0.2.0/24"), {}};
    rule.to = {peer};
    NetworkPolicyPort p443;
    p443.port = uint32_t{443};
    NetworkPolicyPort p80;
    p80.port = uint32_t{80};
    rule.ports = {p443, p80};
    np.egress = {rule};
    c.networkPolicies.push_back(std::move(np));
  }
  auto snap = Snapshot::compile(std::move(c));
  if (!snap) {
    state.SkipWithError(snap.error().message.c_str());
    return;
  }
  auto qs = makeQueries(1000);
  runDecisions(state, **snap, qs);
}
BENCHMARK(BM_DecideWithNetworkPolicies)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kNanosecond);

}  // namespace
}  // namespace tollgate::policy

BENCHMARK_MAIN();
