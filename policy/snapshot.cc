#include "policy/snapshot.h"

#include <fmt/format.h>

#include <atomic>
#include <functional>
#include <unordered_map>

#include "policy/cidr_trie.h"
#include "policy/name.h"
#include "policy/network_policy_index.h"
#include "policy/registry_index.h"

namespace tollgate::policy {
namespace {

constexpr std::string_view kGatewayAnnotation = "tollgate.io/gateway";

std::atomic<uint64_t> nextGeneration{1};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

DecidingObject decidingObject(std::string_view kind, const ObjectMeta& meta) {
  return DecidingObject{std::string(kind), meta.ns, meta.name, meta.source};
}

std::string podKey(std::string_view ns, std::string_view name) {
  std::string k;
  k.reserve(ns.size() + 1 + name.size());
  k.append(ns).push_back('/');
  k.append(name);
  return k;
}

}  // namespace

struct Snapshot::Impl {
  std::unique_ptr<RegistryIndex> registry;
  std::unique_ptr<NetworkPolicyIndex> networkPolicies;
  CidrTrie clusterCidrs;
  StringMap<const Pod*> podsByName;  // "ns/name"
  std::unordered_map<IpAddress, const Pod*, IpAddressHash> podsByIp;
  StringMap<const Labels*> namespaceLabels;
  StringMap<const GatewayConfig*> gateways;
  const GatewayConfig* defaultGateway = nullptr;
  // ServiceEntry -> the gateway its annotation names (absent: default).
  std::unordered_map<const ServiceEntry*, const GatewayConfig*> entryGateway;
  Labels noLabels;
};

Snapshot::~Snapshot() = default;

Result<std::shared_ptr<const Snapshot>> Snapshot::compile(Config config) {
  std::shared_ptr<Snapshot> snap(new Snapshot());
  snap->config_ = std::move(config);
  const Config& cfg = snap->config_;
  snap->mesh_ = cfg.tollgate ? *cfg.tollgate : TollgateConfig{};
  snap->impl_ = std::make_unique<Impl>();
  Impl& im = *snap->impl_;
  const TollgateConfig& mesh = snap->mesh_;

  // Gateways: unique names, at most one default; a lone gateway is the default.
  for (const auto& gw : mesh.gateways) {
    if (gw.name.empty()) return fail("TollgateConfig: spec.gateways: a gateway has no name");
    if (!im.gateways.emplace(gw.name, &gw).second) {
      return fail(
          fmt::format("TollgateConfig: spec.gateways: duplicate gateway name \"{}\"", gw.name));
    }
    if (gw.isDefault) {
      if (im.defaultGateway) {
        return fail(
            fmt::format("TollgateConfig: spec.gateways: \"{}\" and \"{}\" are both marked default",
                        im.defaultGateway->name, gw.name));
      }
      im.defaultGateway = &gw;
    }
  }
  if (!im.defaultGateway && mesh.gateways.size() == 1) im.defaultGateway = &mesh.gateways[0];

  for (const auto& se : cfg.serviceEntries) {
    auto it = se.meta.annotations.find(std::string(kGatewayAnnotation));
    if (it == se.meta.annotations.end()) continue;
    auto gw = im.gateways.find(it->second);
    if (gw == im.gateways.end()) {
      return fail(fmt::format("ServiceEntry/{}/{}: annotation {}: unknown gateway \"{}\"",
                              se.meta.ns, se.meta.name, kGatewayAnnotation, it->second));
    }
    im.entryGateway[&se] = gw->second;
  }

  for (const Cidr& c : mesh.podCidrs) im.clusterCidrs.insert(c, 0);
  for (const Cidr& c : mesh.serviceCidrs) im.clusterCidrs.insert(c, 0);

  for (const auto& pod : cfg.pods) {
    im.podsByName.emplace(podKey(pod.meta.ns, pod.meta.name), &pod);
    // hostNetwork pods share the node's address: that IP does not identify them.
    if (pod.hostNetwork) continue;
    for (const auto& ip : pod.podIPs) im.podsByIp.emplace(ip.unmapped(), &pod);
  }
  for (const auto& ns : cfg.namespaces) im.namespaceLabels.emplace(ns.meta.name, &ns.meta.labels);

  auto registry = RegistryIndex::build(cfg);
  if (!registry) return std::unexpected(registry.error());
  im.registry = std::move(*registry);
  im.networkPolicies = std::make_unique<NetworkPolicyIndex>(cfg);

  snap->generation_ = nextGeneration.fetch_add(1, std::memory_order_relaxed);
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

const Pod* Snapshot::findPod(std::string_view ns, std::string_view name) const {
  auto it = impl_->podsByName.find(podKey(ns, name));
  return it == impl_->podsByName.end() ? nullptr : it->second;
}

const Pod* Snapshot::findPodByIp(const IpAddress& ip) const {
  auto it = impl_->podsByIp.find(ip.unmapped());
  return it == impl_->podsByIp.end() ? nullptr : it->second;
}

const Labels& Snapshot::namespaceLabels(std::string_view ns) const {
  auto it = impl_->namespaceLabels.find(ns);
  return it == impl_->namespaceLabels.end() ? impl_->noLabels : *it->second;
}

std::optional<PodIdentity> Snapshot::identityOf(std::string_view ns, std::string_view name) const {
  const Pod* pod = findPod(ns, name);
  if (!pod) return std::nullopt;
  return PodIdentity{pod->meta.ns, pod->meta.name, pod->meta.labels, pod->serviceAccountName};
}

bool Snapshot::nameVisible(const PodIdentity& source, std::string_view name) const {
  // Port 0 is never listed, so a visible host match reports PortNotListed: the name is visible.
  return impl_->registry->lookupName(source, name, 0, L4Protocol::Tcp, AppProtocol::Unknown)
             .status != RegistryIndex::Status::NoMatch;
}

bool Snapshot::isInCluster(const IpAddress& ip) const {
  return impl_->clusterCidrs.lookupLongest(ip.unmapped()).has_value();
}

Decision Snapshot::decide(const FlowQuery& q) const {
  const Impl& im = *impl_;
  const IpAddress dst = q.dstIp.unmapped();
  Decision d;

  // (1) NetworkPolicy egress applies to every destination, in-cluster or not.
  auto np = im.networkPolicies->evaluate(q.source, dst, q.dstPort, q.l4);
  if (!np.allowed) {
    d.verdict = Verdict::Deny;
    d.reason = Reason::DeniedNetworkPolicy;
    if (np.decidedBy) d.decidedBy = decidingObject("NetworkPolicy", np.decidedBy->meta);
    return d;
  }

  // (2) In-cluster: straight to the original destination.
  if (isInCluster(dst) || findPodByIp(dst)) {
    d.verdict = Verdict::Allow;
    d.reason = Reason::AllowedInCluster;
    if (np.isolated && np.decidedBy) {
      d.decidedBy = decidingObject("NetworkPolicy", np.decidedBy->meta);
    }
    d.route.kind = Route::Kind::InCluster;
    d.route.upstreamHost = dst.str();
    d.route.upstreamPort = q.dstPort;
    return d;
  }

  // (3) External.
  const Sidecar* sidecar = im.registry->sidecarFor(q.source);
  const OutboundMode mode =
      sidecar && sidecar->outboundMode ? *sidecar->outboundMode : mesh_.outboundMode;
  // Who set the mode, named on registry misses.
  DecidingObject modeSource;
  if (sidecar && sidecar->outboundMode) {
    modeSource = decidingObject("Sidecar", sidecar->meta);
  } else if (config_.tollgate) {
    modeSource = decidingObject("TollgateConfig", config_.tollgate->meta);
  }

  std::optional<std::string> name;
  if (q.name) {
    auto n = normalizeName(*q.name);
    if (!n) {
      d.verdict = Verdict::Deny;
      d.reason = Reason::DeniedInvalidName;
      return d;
    }
    // An IP literal (Host: 1.2.3.4:8080) names no host: decide on the address like a bare flow.
    if (!isIpLiteral(*n)) name = std::move(*n);
  }

  RegistryIndex::Match m = name ? im.registry->lookupName(q.source, *name, q.dstPort, q.l4, q.app)
                                : im.registry->lookupAddress(q.source, dst, q.dstPort, q.l4, q.app);
  if (name) d.name = *name;

  const GatewayConfig* gateway = im.defaultGateway;
  if (m.status == RegistryIndex::Status::Matched) {
    d.verdict = Verdict::Allow;
    d.reason = Reason::AllowedRegistry;
    d.decidedBy = decidingObject("ServiceEntry", m.entry->meta);
    if (!im.entryGateway.empty()) {
      if (auto it = im.entryGateway.find(m.entry); it != im.entryGateway.end()) {
        gateway = it->second;
      }
    }
  } else if (mode == OutboundMode::AllowAny) {
    d.verdict = Verdict::Allow;
    d.reason = Reason::AllowedAllowAny;
    d.decidedBy = modeSource;
  } else {
    d.verdict = Verdict::Deny;
    switch (m.status) {
      case RegistryIndex::Status::PortNotListed:
        d.reason = Reason::DeniedPortNotInRegistry;
        d.decidedBy = decidingObject("ServiceEntry", m.entry->meta);
        break;
      case RegistryIndex::Status::ProtocolMismatch:
        d.reason = Reason::DeniedProtocolMismatch;
        d.decidedBy = decidingObject("ServiceEntry", m.entry->meta);
        break;
      default:
        d.reason = name ? Reason::DeniedNotInRegistry : Reason::DeniedNoName;
        d.decidedBy = modeSource;
        break;
    }
    return d;
  }

  Route& r = d.route;
  if (gateway) {
    r.kind = Route::Kind::Gateway;
    r.gatewayName = gateway->name;
    r.gatewayAddress = gateway->address;
    r.gatewayPort = gateway->port;
  } else {
    r.kind = Route::Kind::Direct;
  }
  r.byName = name.has_value();
  r.upstreamHost = name ? *name : dst.str();  // v4-mapped folded to plain IPv4
  r.upstreamPort = q.dstPort;
  if (m.status == RegistryIndex::Status::Matched) {
    r.upstreamPort = static_cast<uint16_t>(m.upstreamPort);
  }
  if (m.status == RegistryIndex::Status::Matched) {
    // DestinationRules are looked up by the name asked for (a rule for api.example.com applies
    // under a *.example.com entry); address matches use the entry host they went through.
    std::string_view drHost = name ? std::string_view(*name) : m.host;
    if (!drHost.empty()) {
      if (auto tls = im.registry->tlsFor(q.source, drHost, q.dstPort)) {
        r.tls = std::move(tls->tls);
        r.destinationRule =
            fmt::format("DestinationRule/{}/{}", tls->rule->meta.ns, tls->rule->meta.name);
      }
    }
  }
  return d;
}

}  // namespace tollgate::policy
