#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/netns.h"
#include "agent/nft_table.h"
#include "agent/rule_report.h"
#include "common/error.h"

namespace tollgate::agent {

struct GatewayEndpoint {
  std::string address;  // IPv4 or IPv6
  uint16_t port = 15008;
};

struct FenceParams {
  // Interfaces pod traffic arrives on in the node netns: names or prefixes ending in '*'
  // ("tg0", "veth*"). A lone "*" is refused: it would fence the node's uplink too.
  std::vector<std::string> podInterfaces;
  // Destinations inside these are the cluster's business (NetworkPolicy, the proxy): allowed.
  std::vector<std::string> podCidrs;
  std::vector<std::string> serviceCidrs;
  // The only way out of the cluster: TCP to a gateway's tunnel port.
  std::vector<GatewayEndpoint> gateways;
  // DNS (udp and tcp to dnsPort) to these addresses is allowed, forwarded or to the node itself
  // (a node-local resolver). Pods' DNS to a resolver outside the cluster CIDRs needs this.
  std::vector<std::string> resolvers;
  uint16_t dnsPort = 53;
  // Forward: let pods answer connections made TO them from outside the cluster (ingress,
  // LoadBalancer services). Only the reply direction of flows someone else started qualifies; a
  // flow the pod starts is NEW and dropped, so it never becomes a conntrack entry.
  bool allowReplies = true;
  // Input: pods may reach the node itself only for DNS to `resolvers`, a gateway endpoint,
  // nodeTcpPorts, neighbour discovery and replies to connections the node made.
  bool guardNodeInput = true;
  std::vector<uint16_t> nodeTcpPorts;
};

inline constexpr const char* kFenceTable = "tollgate_fence";
inline constexpr const char* kCounterFenceDrop = "fence_drop";
inline constexpr const char* kCounterFenceGateway = "fence_gateway";
inline constexpr const char* kCounterFenceDns = "fence_dns";
inline constexpr const char* kCounterFenceNodeDrop = "fence_node_drop";

// The host fence: table `inet tollgate_fence` in the NODE netns (exact text in docs/rules.md).
// Second line of defence behind the per-pod redirect: even a pod that gets a packet past its own
// netns (raw/AF_PACKET sockets, a missing redirect) cannot reach outside the cluster except a
// gateway's tunnel port.
class HostFence {
 public:
  // Validates params (interface patterns, CIDRs, addresses, ports) and renders the table once.
  static Result<HostFence> create(const FenceParams& params);

  /// Installs the fence in the node netns, atomically replacing a previous version.
  Status install(const Netns& node) const { return table_.install(node); }
  /// Removes the fence; succeeds when nothing is installed.
  Status remove(const Netns& node) const { return table_.remove(node); }
  /// Differences between the node netns and the expected fence (empty when in sync).
  Result<Drift> verify(const Netns& node) const { return table_.verify(node); }
  /// fence_drop, fence_gateway, fence_dns, fence_node_drop.
  Result<Counters> counters(const Netns& node) const { return table_.counters(node); }

  const FenceParams& params() const { return params_; }
  const std::string& ruleset() const { return table_.text(); }

 private:
  HostFence(FenceParams params, std::string text)
      : params_(std::move(params)), table_("inet", kFenceTable, std::move(text)) {}

  FenceParams params_;
  NftTable table_;
};

}  // namespace tollgate::agent
