#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policy/ip.h"
#include "policy/model.h"

namespace tollgate::policy {

// What the proxy knows about a flow when it asks for a decision.
enum class AppProtocol { Unknown, Tcp, Tls, Http };

struct PodIdentity {
  std::string ns;
  std::string name;
  Labels labels;
  std::string serviceAccount = "default";
};

struct FlowQuery {
  PodIdentity source;         // the pod the flow came from
  IpAddress dstIp;            // original destination
  uint16_t dstPort = 0;
  L4Protocol l4 = L4Protocol::Tcp;
  AppProtocol app = AppProtocol::Unknown;
  std::optional<std::string> name;  // SNI, Host or the name the pod resolved; raw (normalised inside)
};

enum class Verdict { Allow, Deny };

// Stable reason codes: they appear in access logs, metrics labels and x-tollgate-denied.
enum class Reason {
  AllowedInCluster,          // in-cluster destination, no NetworkPolicy refused it
  AllowedRegistry,           // a visible ServiceEntry matched
  AllowedAllowAny,           // outbound mode ALLOW_ANY, no entry matched
  DeniedNetworkPolicy,       // policies select the pod and none allows this egress
  DeniedNotInRegistry,       // REGISTRY_ONLY and no visible ServiceEntry host/address matched
  DeniedPortNotInRegistry,   // a host matched but not on this port
  DeniedProtocolMismatch,    // the entry's port protocol disagrees with what was sniffed
  DeniedInvalidName,         // name failed normalisation (non-ASCII, empty label, too long)
  DeniedNoName,              // external destination with neither a name nor an address entry
  DeniedRevoked,             // an open connection a newer config no longer allows (cut)
};

std::string_view toString(Reason r);  // "not_in_registry", "network_policy", ...
std::string_view toString(Verdict v);

struct DecidingObject {
  std::string kind;  // "ServiceEntry", "NetworkPolicy", "TollgateConfig", "" for built-in rules
  std::string ns;
  std::string name;
  SourceRef source;
  std::string str() const;  // "ServiceEntry/default/httpbin" or "-"
};

struct Route {
  enum class Kind { None, InCluster, Direct, Gateway };
  Kind kind = Kind::None;
  std::string gatewayName;     // Kind::Gateway
  std::string gatewayAddress;  // Kind::Gateway: host or IP
  uint16_t gatewayPort = 0;
  // Where the flow finally goes: a normalised host name when a name decided, else the original IP.
  std::string upstreamHost;
  uint16_t upstreamPort = 0;   // ServiceEntry targetPort applied
  bool byName = false;         // true: connect to upstreamHost resolved by the proxy/gateway
  std::optional<ClientTlsSettings> tls;  // DestinationRule TLS for this host:port, if any
  std::string destinationRule;           // "DestinationRule/ns/name" that supplied tls
  std::string str() const;     // "in-cluster", "direct 1.2.3.4:80", "gateway egress(10.0.0.1:15008)"
};

struct Decision {
  Verdict verdict = Verdict::Deny;
  Reason reason = Reason::DeniedNotInRegistry;
  DecidingObject decidedBy;
  Route route;
  std::string name;  // normalised name, if any
  bool allowed() const { return verdict == Verdict::Allow; }
};

}  // namespace tollgate::policy
