#include "policy/model.h"

namespace tollgate::policy {

std::string objectRef(const ObjectMeta& meta) {
  // An object without a name still needs a readable reference in diagnostics.
  const std::string& name = meta.name.empty() ? std::string("<unnamed>") : meta.name;
  std::string kind = meta.kind.empty() ? std::string("<unknown>") : meta.kind;
  if (meta.ns.empty()) return kind + "/" + name;
  return kind + "/" + meta.ns + "/" + name;
}

std::string_view toString(PortProtocol p) {
  switch (p) {
    case PortProtocol::Http:
      return "HTTP";
    case PortProtocol::Https:
      return "HTTPS";
    case PortProtocol::Http2:
      return "HTTP2";
    case PortProtocol::Grpc:
      return "GRPC";
    case PortProtocol::Tls:
      return "TLS";
    case PortProtocol::Tcp:
      return "TCP";
    case PortProtocol::Mongo:
      return "MONGO";
    case PortProtocol::Udp:
      return "UDP";
    case PortProtocol::Unspecified:
      return "UNSPECIFIED";
  }
  return "UNSPECIFIED";
}

std::string_view toString(TlsMode m) {
  switch (m) {
    case TlsMode::Disable:
      return "DISABLE";
    case TlsMode::Simple:
      return "SIMPLE";
    case TlsMode::Mutual:
      return "MUTUAL";
    case TlsMode::IstioMutual:
      return "ISTIO_MUTUAL";
  }
  return "DISABLE";
}

std::string_view toString(OutboundMode m) {
  switch (m) {
    case OutboundMode::RegistryOnly:
      return "REGISTRY_ONLY";
    case OutboundMode::AllowAny:
      return "ALLOW_ANY";
  }
  return "REGISTRY_ONLY";
}

std::string_view toString(L4Protocol p) {
  switch (p) {
    case L4Protocol::Tcp:
      return "TCP";
    case L4Protocol::Udp:
      return "UDP";
    case L4Protocol::Sctp:
      return "SCTP";
  }
  return "TCP";
}

std::string_view toString(Resolution r) {
  switch (r) {
    case Resolution::None:
      return "NONE";
    case Resolution::Static:
      return "STATIC";
    case Resolution::Dns:
      return "DNS";
    case Resolution::DnsRoundRobin:
      return "DNS_ROUND_ROBIN";
  }
  return "NONE";
}

std::string_view toString(Location l) {
  switch (l) {
    case Location::MeshExternal:
      return "MESH_EXTERNAL";
    case Location::MeshInternal:
      return "MESH_INTERNAL";
  }
  return "MESH_EXTERNAL";
}

}  // namespace tollgate::policy
