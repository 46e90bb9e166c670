#include "policy/network_policy_index.h"

#include <algorithm>
#include <cstring>
#include <variant>

#include "policy/label_selector.h"

namespace tollgate::policy {

namespace {

// Every namespace carries this label (Kubernetes >= 1.21 sets it on all namespaces), so policies
// can select a namespace by name even when no Namespace object was loaded.
constexpr const char* kNamespaceNameLabel = "kubernetes.io/metadata.name";

// ::ffff:a.b.c.d for a v4 address: lets an ipBlock written in v4-mapped form still match.
std::optional<IpAddress> v4Mapped(const IpAddress& a) {
  if (!a.isV4()) return std::nullopt;
  IpAddress m;
  m.family = IpAddress::Family::V6;
  m.bytes[10] = 0xff;
  m.bytes[11] = 0xff;
  std::memcpy(m.bytes.data() + 12, a.bytes.data(), 4);
  return m;
}

// The destination as evaluate() sees it: folded address, its mapped twin, and the pod behind it.
struct Destination {
  IpAddress ip;
  std::optional<IpAddress> mapped;
  const Pod* pod = nullptr;
};

bool cidrContains(const Cidr& cidr, const Destination& dst) {
  return cidr.contains(dst.ip) || (dst.mapped && cidr.contains(*dst.mapped));
}

bool ipBlockContains(const IpBlock& block, const Destination& dst) {
  if (!cidrContains(block.cidr, dst)) return false;
  return std::none_of(block.except.begin(), block.except.end(),
                      [&](const Cidr& c) { return cidrContains(c, dst); });
}

bool portMatches(const NetworkPolicyPort& rulePort, uint16_t port, L4Protocol protocol,
                 const Destination& dst) {
  if (rulePort.protocol != protocol) return false;
  if (!rulePort.port) return true;
  if (const auto* number = std::get_if<uint32_t>(&*rulePort.port)) {
    if (rulePort.endPort) return *number <= port && port <= *rulePort.endPort;
    return port == *number;
  }
  // A named port means "whatever port the destination pod calls this name for this protocol";
  // an address that is not a known pod has no names, so it never matches.
  if (dst.pod == nullptr) return false;
  const auto& name = std::get<std::string>(*rulePort.port);
  return std::any_of(dst.pod->ports.begin(), dst.pod->ports.end(), [&](const ContainerPort& cp) {
    return cp.name == name && cp.protocol == protocol && cp.containerPort == port;
  });
}

}  // namespace

struct NetworkPolicyIndex::Impl {
  struct PodEntry {
    const Pod* pod = nullptr;
    std::vector<const NetworkPolicy*> applying;  // Egress policies selecting the pod, by name
  };

  struct NamespaceEntry {
    Labels labels;                                     // always includes kNamespaceNameLabel
    std::vector<const NetworkPolicy*> egressPolicies;  // policyTypes has Egress; sorted by name
    std::unordered_map<std::string, PodEntry> pods;    // by pod name
  };

  std::unordered_map<std::string, NamespaceEntry> namespaces;
  // Keyed by the unmapped address. Host-network pods are left out: they share the node's address
  // and Kubernetes leaves policy for them undefined, so they are reachable only through ipBlock.
  std::unordered_map<IpAddress, const Pod*, IpAddressHash> podsByIp;

  NamespaceEntry& namespaceEntry(const std::string& name) {
    auto [it, inserted] = namespaces.try_emplace(name);
    if (inserted) it->second.labels[kNamespaceNameLabel] = name;
    return it->second;
  }

  const Labels* namespaceLabels(const std::string& name) const {
    auto it = namespaces.find(name);
    return it == namespaces.end() ? nullptr : &it->second.labels;
  }

  bool peerMatches(const NetworkPolicy& policy, const NetworkPolicyPeer& peer,
                   const Destination& dst) const {
    // The API server rejects a peer with nothing set; fail closed if one gets here anyway.
    if (!peer.podSelector && !peer.namespaceSelector && !peer.ipBlock) return false;
    // Mixing ipBlock with selectors is also invalid; requiring both keeps it narrow, not wide.
    if (peer.ipBlock && !ipBlockContains(*peer.ipBlock, dst)) return false;
    if (!peer.podSelector && !peer.namespaceSelector) return true;
    if (dst.pod == nullptr) return false;
    if (peer.namespaceSelector) {
      const Labels* nsLabels = namespaceLabels(dst.pod->meta.ns);
      if (nsLabels == nullptr || !matches(*peer.namespaceSelector, *nsLabels)) return false;
    } else if (dst.pod->meta.ns != policy.meta.ns) {
      // A podSelector alone selects pods of the policy's own namespace only.
      return false;
    }
    return !peer.podSelector || matches(*peer.podSelector, dst.pod->meta.labels);
  }

  bool ruleAllows(const NetworkPolicy& policy, const NetworkPolicyEgressRule& rule,
                  const Destination& dst, uint16_t port, L4Protocol protocol) const {
    bool portOk = rule.ports.empty() ||
                  std::any_of(rule.ports.begin(), rule.ports.end(),
                              [&](const auto& p) { return portMatches(p, port, protocol, dst); });
    if (!portOk) return false;
    return rule.to.empty() || std::any_of(rule.to.begin(), rule.to.end(), [&](const auto& peer) {
             return peerMatches(policy, peer, dst);
           });
  }
};

NetworkPolicyIndex::NetworkPolicyIndex(const Config& config) {
  auto impl = std::make_shared<Impl>();

  for (const auto& ns : config.namespaces) {
    auto& entry = impl->namespaceEntry(ns.meta.name);
    for (const auto& [key, value] : ns.meta.labels) {
      if (key != kNamespaceNameLabel) entry.labels[key] = value;
    }
  }

  for (const auto& policy : config.networkPolicies) {
    auto& entry = impl->namespaceEntry(policy.meta.ns);
    if (policy.policyTypesEgress) entry.egressPolicies.push_back(&policy);
  }
  for (auto& [name, entry] : impl->namespaces) {
    // Name order makes "the first policy that selected the pod" deterministic; stable so that
    // duplicate names (rejected upstream) keep file order.
    std::stable_sort(
        entry.egressPolicies.begin(), entry.egressPolicies.end(),
        [](const NetworkPolicy* a, const NetworkPolicy* b) { return a->meta.name < b->meta.name; });
  }

  for (const auto& pod : config.pods) {
    auto& nsEntry = impl->namespaceEntry(pod.meta.ns);
    auto [it, inserted] = nsEntry.pods.try_emplace(pod.meta.name);
    if (!inserted) continue;  // duplicate ns/name: the first one wins
    it->second.pod = &pod;
    for (const NetworkPolicy* policy : nsEntry.egressPolicies) {
      if (matches(policy->podSelector, pod.meta.labels)) it->second.applying.push_back(policy);
    }
    if (pod.hostNetwork) continue;
    for (const auto& ip : pod.podIPs) impl->podsByIp.try_emplace(ip.unmapped(), &pod);
  }

  impl_ = std::move(impl);
}

NetworkPolicyIndex::Result NetworkPolicyIndex::evaluate(const PodIdentity& source,
                                                        const IpAddress& dstIp, uint16_t dstPort,
                                                        L4Protocol protocol) const {
  auto nsIt = impl_->namespaces.find(source.ns);
  if (nsIt == impl_->namespaces.end()) return Result{};
  const auto& nsEntry = nsIt->second;

  const std::vector<const NetworkPolicy*>* applying = nullptr;
  std::vector<const NetworkPolicy*> computed;
  auto podIt = nsEntry.pods.find(source.name);
  // The cached list holds only while the caller's view of the pod's labels is the config's;
  // otherwise the labels the caller gives are the truth and the list is computed from them.
  if (podIt != nsEntry.pods.end() && podIt->second.pod->meta.labels == source.labels) {
    applying = &podIt->second.applying;
  } else {
    for (const NetworkPolicy* policy : nsEntry.egressPolicies) {
      if (matches(policy->podSelector, source.labels)) computed.push_back(policy);
    }
    applying = &computed;
  }
  if (applying->empty()) return Result{};

  Destination dst;
  dst.ip = dstIp.unmapped();
  dst.mapped = v4Mapped(dst.ip);
  if (auto it = impl_->podsByIp.find(dst.ip); it != impl_->podsByIp.end()) dst.pod = it->second;

  for (const NetworkPolicy* policy : *applying) {
    for (const auto& rule : policy->egress) {
      if (impl_->ruleAllows(*policy, rule, dst, dstPort, protocol)) {
        return Result{.isolated = true, .allowed = true, .decidedBy = policy};
      }
    }
  }
  return Result{.isolated = true, .allowed = false, .decidedBy = applying->front()};
}

}  // namespace tollgate::policy
