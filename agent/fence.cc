#include "agent/fence.h"

#include <fmt/format.h>

#include <algorithm>

namespace tollgate::agent {
namespace {

struct Addr {
  std::string text;  // canonical
  int family = 4;
  const char* match() const { return family == 4 ? "ip daddr" : "ip6 daddr"; }
};

template <typename T>
void addUnique(std::vector<T>& v, T item) {
  auto same = [&](const T& x) { return x.text == item.text; };
  if (std::find_if(v.begin(), v.end(), same) == v.end()) v.push_back(std::move(item));
}

struct Validated {
  std::vector<std::string> interfaces;
  std::vector<Addr> cidrs;
  std::vector<std::pair<Addr, uint16_t>> gateways;
  std::vector<Addr> resolvers;
};

Result<Validated> validate(const FenceParams& p) {
  Validated v;
  if (p.podInterfaces.empty()) return fail("fence: no pod interfaces given");
  for (const auto& i : p.podInterfaces) {
    if (auto st = validateInterfacePattern(i); !st)
      return std::unexpected(st.error().wrap("fence"));
    if (std::find(v.interfaces.begin(), v.interfaces.end(), i) == v.interfaces.end()) {
      v.interfaces.push_back(i);
    }
  }
  for (const auto* list : {&p.podCidrs, &p.serviceCidrs}) {
    for (const auto& c : *list) {
      int family = 0;
      auto text = canonicalCidr(c, &family);
      if (!text) return std::unexpected(text.error().wrap("fence: cluster CIDR"));
      // A /0 "cluster" would make everything in-cluster and the fence a no-op.
      if (text->ends_with("/0")) return fail("fence: cluster CIDR \"" + c + "\" covers everything");
      addUnique(v.cidrs, Addr{*text, family});
    }
  }
  for (const auto& g : p.gateways) {
    int family = 0;
    auto text = canonicalAddress(g.address, &family);
    if (!text) return std::unexpected(text.error().wrap("fence: gateway"));
    if (g.port == 0) return fail("fence: gateway " + g.address + ": port must not be 0");
    std::pair<Addr, uint16_t> item{Addr{*text, family}, g.port};
    if (std::find_if(v.gateways.begin(), v.gateways.end(), [&](const auto& x) {
          return x.first.text == item.first.text && x.second == item.second;
        }) == v.gateways.end()) {
      v.gateways.push_back(item);
    }
  }
  for (const auto& r : p.resolvers) {
    int family = 0;
    auto text = canonicalAddress(r, &family);
    if (!text) return std::unexpected(text.error().wrap("fence: resolver"));
    addUnique(v.resolvers, Addr{*text, family});
  }
  if (p.dnsPort == 0 && !v.resolvers.empty()) return fail("fence: DNS port must not be 0");
  for (uint16_t port : p.nodeTcpPorts) {
    if (port == 0) return fail("fence: node TCP port must not be 0");
  }
  return v;
}

void renderAllowed(std::string& t, const FenceParams& p, const Validated& v) {
  for (const auto& [addr, port] : v.gateways) {
    t += fmt::format("\t\t{} {} tcp dport {} counter name \"{}\" accept\n", addr.match(), addr.text,
                     port, kCounterFenceGateway);
  }
  for (const auto& r : v.resolvers) {
    t += fmt::format(
        "\t\t{} {} meta l4proto {{ tcp, udp }} th dport {} counter name \"{}\" accept\n", r.match(),
        r.text, p.dnsPort, kCounterFenceDns);
  }
}

std::string render(const FenceParams& p, const Validated& v) {
  std::string t = fmt::format("table inet {} {{\n", kFenceTable);
  for (const char* c :
       {kCounterFenceDrop, kCounterFenceGateway, kCounterFenceDns, kCounterFenceNodeDrop}) {
    t += fmt::format("\tcounter {} {{\n\t}}\n\n", c);
  }
  // Base chains only dispatch on the ingress interface: policy accept, so the node's own and
  // transit traffic is untouched; everything from a pod interface ends in pod_* with a verdict.
  t += "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n";
  for (const auto& i : v.interfaces) t += fmt::format("\t\tiifname \"{}\" jump pod_forward\n", i);
  t += "\t}\n\n";
  if (p.guardNodeInput) {
    t += "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n";
    for (const auto& i : v.interfaces) t += fmt::format("\t\tiifname \"{}\" jump pod_input\n", i);
    t += "\t}\n\n";
  }

  t += "\tchain pod_forward {\n";
  if (p.allowReplies) t += "\t\tct direction reply accept\n";
  // Neighbour discovery between pods on one bridge. With br_netfilter loaded (kube-proxy loads
  // it) bridged IPv6 passes this hook too, and a solicitation to a solicited-node multicast
  // group is in no cluster CIDR: without this, pod-to-pod IPv6 never resolves its neighbour. Hop
  // limit 255 proves the packet was not routed (forwarding decrements it before this hook), so
  // it cannot leave the link.
  t += "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept\n";
  for (const auto& c : v.cidrs) t += fmt::format("\t\t{} {} accept\n", c.match(), c.text);
  renderAllowed(t, p, v);
  t += fmt::format("\t\tcounter name \"{}\" drop\n", kCounterFenceDrop);
  t += "\t}\n";

  if (p.guardNodeInput) {
    t += "\n\tchain pod_input {\n";
    // Replies to connections the node made into pods (kubelet probes, the agent).
    t += "\t\tct direction reply accept\n";
    // Neighbour discovery towards the node's bridge address; see redirect.cc for the hop limits.
    t += "\t\ticmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } "
         "ip6 hoplimit 255 accept\n";
    t += "\t\ticmpv6 type { mld-listener-report, mld2-listener-report } ip6 hoplimit 1 accept\n";
    renderAllowed(t, p, v);
    for (uint16_t port : p.nodeTcpPorts) t += fmt::format("\t\ttcp dport {} accept\n", port);
    t += fmt::format("\t\tcounter name \"{}\" drop\n", kCounterFenceNodeDrop);
    t += "\t}\n";
  }
  t += "}\n";
  return t;
}

}  // namespace

Result<HostFence> HostFence::create(const FenceParams& params) {
  auto v = validate(params);
  if (!v) return std::unexpected(v.error());
  return HostFence(params, render(params, *v));
}

}  // namespace tollgate::agent
