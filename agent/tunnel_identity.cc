#include "agent/tunnel_identity.h"

namespace tollgate::agent {

proxy::TunnelIdentity toTunnelIdentity(const identity::Svid& svid) {
  proxy::TunnelIdentity id;
  id.spiffeId = svid.spiffeId;
  id.certPem = svid.certPem;
  id.keyPem = svid.keyPem;
  id.chainPem = svid.chainPem;
  id.trustBundlePem = svid.trustBundlePem;
  id.notAfter = svid.notAfter;
  return id;
}

proxy::SvidSource makeSvidSource(identity::SvidManager& svids) {
  return [&svids](std::string_view ns, std::string_view sa) -> Result<proxy::TunnelIdentityPtr> {
    auto svid = svids.svidFor(ns, sa);
    if (!svid) return std::unexpected(svid.error());
    return std::make_shared<const proxy::TunnelIdentity>(toTunnelIdentity(**svid));
  };
}

}  // namespace tollgate::agent
