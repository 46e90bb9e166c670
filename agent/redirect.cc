#include "agent/redirect.h"

#include <fmt/format.h>

#include <algorithm>

namespace tollgate::agent {
namespace {

// ICMPv6 the pod must send for its own link to work: router/neighbour solicitation and neighbour
// advertisement (address resolution, unreachability detection, DAD answers). RFC 4861 makes
// receivers discard these unless the hop limit is 255, so only hop-limit-255 packets are let
// through; a crafted one sent off-link is forwarded by the node and dropped by the host fence.
// MLD reports (hop limit 1, never forwarded) keep multicast-snooping bridges delivering the
// solicited-node multicast that neighbour discovery depends on.
constexpr const char* kNdRule =
    "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } "
    "ip6 hoplimit 255 accept";
constexpr const char* kMldRule =
    "icmpv6 type { mld-listener-report, mld2-listener-report } ip6 hoplimit 1 accept";

std::string render(const RedirectParams& p, const std::vector<std::string>& v4,
                   const std::vector<std::string>& v6) {
  const std::string mark = fmt::format("meta mark 0x{:08x} accept", p.mark);
  std::string t = fmt::format("table inet {} {{\n", kRedirectTable);
  for (const char* c :
       {kCounterDns, kCounterDropUdp, kCounterDropIcmp, kCounterDropTcp, kCounterDropOther}) {
    t += fmt::format("\tcounter {} {{\n\t}}\n\n", c);
  }
  const bool dnsProxy = p.dnsProxyPort != 0;
  if (dnsProxy) t += fmt::format("\tcounter {} {{\n\t}}\n\n", kCounterDropDot);

  // nat output, priority -100 (NF_IP_PRI_NAT_DST): runs before the filter chain, so the filter
  // sees redirected packets already rerouted to lo.
  t += "\tchain nat_output {\n";
  t += "\t\ttype nat hook output priority -100; policy accept;\n";
  t += "\t\t" + mark + "\n";
  if (dnsProxy) {
    // Every DNS query goes to the DNS proxy, whatever address it was sent to (a resolver the
    // pod picked, a loopback stub): before the loopback accept on purpose. DoT is not
    // redirected so that the filter chain drops and counts it.
    t += fmt::format("\t\tmeta l4proto {{ tcp, udp }} th dport {} redirect to :{}\n", p.dnsPort,
                     p.dnsProxyPort);
    t += "\t\tmeta l4proto { tcp, udp } th dport 853 accept\n";
  }
  if (p.loopback == LoopbackMode::AllLocal) {
    t += "\t\toif \"lo\" accept\n";
  } else {
    t += "\t\tip daddr 127.0.0.0/8 accept\n";
    t += "\t\tip6 daddr ::1 accept\n";
  }
  // TCP DNS to a resolver goes out directly, like UDP DNS; the filter chain allows and counts it.
  if (!dnsProxy) {
    for (const auto& a : v4) t += fmt::format("\t\tip daddr {} tcp dport {} accept\n", a, p.dnsPort);
    for (const auto& a : v6) t += fmt::format("\t\tip6 daddr {} tcp dport {} accept\n", a, p.dnsPort);
  }
  if (p.quicPort != 0) t += fmt::format("\t\tudp dport 443 redirect to :{}\n", p.quicPort);
  // TCP from a link-local source to a routable address (a pod whose root routed IPv6 without a
  // global address) cannot be proxied: the listener on [::1] cannot answer a link-local peer, so
  // a redirect would leave the connect() hanging unseen. Not redirected, it meets the filter
  // chain's TCP drop and is counted there.
  t += "\t\tip6 saddr fe80::/10 ip6 daddr != fe80::/10 meta l4proto tcp accept\n";
  t += fmt::format("\t\tmeta l4proto tcp redirect to :{}\n", p.proxyPort);
  t += "\t}\n\n";

  // filter output, priority filter (0), policy drop: what is not allowed here never leaves.
  t += "\tchain output {\n";
  t += "\t\ttype filter hook output priority filter; policy drop;\n";
  t += "\t\t" + mark + "\n";
  // Loopback: the pod's own services (127.0.0.0/8, ::1, its own addresses).
  t += "\t\toif \"lo\" accept\n";
  // The first packet of a redirected flow. Its oif here is still the device of the ORIGINAL route
  // (the hook's output device is fixed before the nat chain rewrites the destination), so
  // `oif "lo"` does not match it; the conntrack DNAT status does, and only our redirect DNATs here.
  t += fmt::format("\t\ttcp dport {} ct status dnat accept\n", p.proxyPort);
  // Replies of connections made TO the pod, and ICMP errors about them.
  t += "\t\tct state established,related accept\n";
  if (dnsProxy) {
    // Like the TCP redirect above: the redirected query still has its original oif here.
    t += fmt::format(
        "\t\tmeta l4proto {{ tcp, udp }} th dport {} ct status dnat counter name \"{}\" accept\n",
        p.dnsProxyPort, kCounterDns);
    t += fmt::format("\t\tmeta l4proto {{ tcp, udp }} th dport 853 counter name \"{}\" drop\n",
                     kCounterDropDot);
  }
  for (const auto& a : dnsProxy ? std::vector<std::string>{} : v4) {
    t += fmt::format(
        "\t\tip daddr {} meta l4proto {{ tcp, udp }} th dport {} counter name \"{}\" "
        "accept\n",
        a, p.dnsPort, kCounterDns);
  }
  for (const auto& a : dnsProxy ? std::vector<std::string>{} : v6) {
    t += fmt::format(
        "\t\tip6 daddr {} meta l4proto {{ tcp, udp }} th dport {} counter name \"{}\" "
        "accept\n",
        a, p.dnsPort, kCounterDns);
  }
  if (p.quicPort != 0) {
    // Delivered to the telemetry socket, which never forwards: dropped as far as the network
    // is concerned, and counted with the rest of UDP.
    t += fmt::format("\t\tudp dport {} ct status dnat counter name \"{}\" accept\n", p.quicPort,
                     kCounterDropUdp);
  }
  t += fmt::format("\t\t{}\n\t\t{}\n", kNdRule, kMldRule);
  t += fmt::format("\t\tmeta l4proto udp counter name \"{}\" drop\n", kCounterDropUdp);
  t += fmt::format("\t\tmeta l4proto {{ icmp, ipv6-icmp }} counter name \"{}\" drop\n",
                   kCounterDropIcmp);
  // TCP that escaped the redirect: untracked/invalid packets from raw sockets, and TCP from a
  // link-local IPv6 source to a routable address (not redirected, see nat_output).
  t += fmt::format("\t\tmeta l4proto tcp counter name \"{}\" drop\n", kCounterDropTcp);
  t += fmt::format("\t\tcounter name \"{}\" drop\n", kCounterDropOther);
  t += "\t}\n";
  t += "}\n";
  return t;
}

Result<std::vector<std::string>> canonicalList(const std::vector<std::string>& in, int family,
                                               const char* what) {
  std::vector<std::string> out;
  for (const auto& a : in) {
    int got = 0;
    auto c = canonicalAddress(a, &got);
    if (!c) return std::unexpected(c.error().wrap(what));
    if (got != family) return fail(fmt::format("{}: \"{}\" is not IPv{}", what, a, family));
    if (std::find(out.begin(), out.end(), *c) == out.end()) out.push_back(*c);
  }
  return out;
}

}  // namespace

Result<NftRedirect> NftRedirect::create(const RedirectParams& params) {
  if (params.mark == 0) return fail("redirect: mark must not be 0");
  if (params.proxyPort == 0) return fail("redirect: proxy port must not be 0");
  if (params.dnsPort == 0) return fail("redirect: DNS port must not be 0");
  if (params.dnsProxyPort != 0 &&
      (params.dnsProxyPort == params.proxyPort || params.dnsProxyPort == params.dnsPort)) {
    return fail("redirect: DNS proxy port must differ from the proxy and DNS ports");
  }
  auto v4 = canonicalList(params.resolversV4, 4, "redirect: resolversV4");
  if (!v4) return std::unexpected(v4.error());
  auto v6 = canonicalList(params.resolversV6, 6, "redirect: resolversV6");
  if (!v6) return std::unexpected(v6.error());
  return NftRedirect(params, render(params, *v4, *v6));
}

Status NftRedirect::install(const PodTarget& pod) const { return table_.install(pod.netns); }
Status NftRedirect::remove(const PodTarget& pod) const { return table_.remove(pod.netns); }
Result<Drift> NftRedirect::verify(const PodTarget& pod) const { return table_.verify(pod.netns); }
Result<Counters> NftRedirect::counters(const PodTarget& pod) const {
  return table_.counters(pod.netns);
}

}  // namespace tollgate::agent
