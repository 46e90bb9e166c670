#include "policy/decision.h"

#include <fmt/format.h>

namespace tollgate::policy {

std::string_view toString(Reason r) {
  switch (r) {
    case Reason::AllowedInCluster:
      return "in_cluster";
    case Reason::AllowedRegistry:
      return "registry";
    case Reason::AllowedAllowAny:
      return "allow_any";
    case Reason::DeniedNetworkPolicy:
      return "network_policy";
    case Reason::DeniedNotInRegistry:
      return "not_in_registry";
    case Reason::DeniedPortNotInRegistry:
      return "port_not_in_registry";
    case Reason::DeniedProtocolMismatch:
      return "protocol_mismatch";
    case Reason::DeniedInvalidName:
      return "invalid_name";
    case Reason::DeniedNoName:
      return "no_name";
    case Reason::DeniedRevoked:
      return "revoked";
  }
  return "unknown";
}

std::string_view toString(Verdict v) { return v == Verdict::Allow ? "allow" : "deny"; }

std::string DecidingObject::str() const {
  if (kind.empty()) return "-";
  if (ns.empty()) return fmt::format("{}/{}", kind, name);
  return fmt::format("{}/{}/{}", kind, ns, name);
}

namespace {
// "host:port", bracketing IPv6 literals.
std::string hostPort(std::string_view host, uint16_t port) {
  if (host.find(':') != std::string_view::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}
}  // namespace

std::string Route::str() const {
  switch (kind) {
    case Kind::None:
      return "none";
    case Kind::InCluster:
      return "in-cluster";
    case Kind::Direct:
      return "direct " + hostPort(upstreamHost, upstreamPort);
    case Kind::Gateway:
      return fmt::format("gateway {}({}) -> {}", gatewayName, hostPort(gatewayAddress, gatewayPort),
                         hostPort(upstreamHost, upstreamPort));
  }
  return "none";
}

}  // namespace tollgate::policy
