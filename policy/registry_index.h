#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "policy/cidr_trie.h"
#include "policy/decision.h"
#include "policy/ip.h"
#include "policy/model.h"

namespace tollgate::policy {

// The compiled registry: ServiceEntries, DestinationRules and Sidecars of a Config, indexed so
// that one lookup costs one hash probe per label of the name (or one trie walk for an address),
// never a scan over entries.
//
// Visibility of an object (ServiceEntry or DestinationRule) to a source pod:
//  - exportTo: empty or "*" = every namespace, "." = the object's own namespace, "~" = none,
//    otherwise the listed namespaces (forms may be combined; "~" alone hides the object).
//  - workloadSelector (tollgate's interpretation): the object is visible only to source pods in
//    the object's own namespace whose labels contain every selector label. Istio uses the field
//    to select endpoints; a node egress agent has no endpoints to select, and restricting who may
//    use the entry is the reading that never widens access.
//  - Sidecar: the pod's Sidecar (one in its namespace whose workloadSelector matches the pod,
//    else the namespace-wide one, else the namespace-wide one of kRootNamespace) limits visible
//    ServiceEntries to its egress[].hosts "ns/host" patterns (ns: a name, "." = the pod's
//    namespace, "*" = any, "~" = none; host: exact, "*" or "*.suffix", matched against the
//    entry host the lookup went through). An egress item with a port applies to that port only.
//    A Sidecar without egress items hides nothing. Its outboundTrafficPolicy overrides the mesh.
//
// Matching: exact hosts first, then "*.suffix" hosts from the most specific suffix up, then "*".
// "*.example.com" matches a.example.com and a.b.example.com, never example.com. At each level
// the visible entries are tried in order (pod's own namespace first, then by namespace/name); the
// first one listing the destination port with a compatible protocol wins. When a level has
// visible host matches but none fits the port, less specific levels are still tried (as Istio's
// per-port listeners would); if nothing fits, the most specific failure is reported.
class RegistryIndex {
 public:
  static constexpr std::string_view kRootNamespace = "istio-system";

  enum class Status { NoMatch, Matched, PortNotListed, ProtocolMismatch };

  struct Match {
    Status status = Status::NoMatch;
    // Matched: the entry and port that allow the flow. PortNotListed/ProtocolMismatch: the most
    // specific visible entry whose host (or address) matched.
    const ServiceEntry* entry = nullptr;
    const ServicePort* port = nullptr;
    // Address matches (and name matches under a Sidecar): the normalised entry host the match
    // went through (may be "*.x"). Empty otherwise: name lookups know their name already, and
    // fetching the host would cost a cache miss per decision.
    std::string_view host;
    // Matched: where the flow goes upstream (the port's targetPort, else the port itself).
    uint32_t upstreamPort = 0;
  };

  struct TlsPolicy {
    ClientTlsSettings tls;
    const DestinationRule* rule = nullptr;
  };

  // Compiles `config` (which must outlive the index). Fails on hosts or Sidecar egress hosts
  // that do not normalise, naming the object and its source.
  static Result<std::unique_ptr<RegistryIndex>> build(const Config& config);

  ~RegistryIndex();

  // `name` must already be normalised (normalizeName).
  Match lookupName(const PodIdentity& source, std::string_view name, uint16_t port, L4Protocol l4,
                   AppProtocol app) const;
  // Address entries (ServiceEntry.addresses), longest prefix first.
  Match lookupAddress(const PodIdentity& source, const IpAddress& ip, uint16_t port, L4Protocol l4,
                      AppProtocol app) const;

  // DestinationRule TLS for a host (a normalised name or an entry host pattern) and service
  // port: portLevelSettings[port].tls overrides trafficPolicy.tls. nullopt: no visible rule
  // sets TLS for it.
  std::optional<TlsPolicy> tlsFor(const PodIdentity& source, std::string_view host,
                                  uint16_t port) const;

  // The Sidecar in effect for the pod (see above), nullptr when none.
  const Sidecar* sidecarFor(const PodIdentity& source) const;
  // The pod's Sidecar outbound mode when set, else `meshDefault`.
  OutboundMode outboundMode(const PodIdentity& source, OutboundMode meshDefault) const;

  // Whether `protocol` on an entry port accepts a flow sniffed as `app` (byName: the flow
  // carries a name, so an Unknown app protocol came with a DNS-derived name).
  static bool protocolCompatible(PortProtocol protocol, L4Protocol l4, AppProtocol app,
                                 bool byName);

 private:
  RegistryIndex() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tollgate::policy
